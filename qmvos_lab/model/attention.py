"""Post-norm Transformer pieces shared by the SIM and the QCIM (QMVOS Sec. 3.2-3.3).

Each sub-layer is `x = LayerNorm(x + Dropout(sublayer(x)))` (post-norm, as released). Attention
is torch's nn.MultiheadAttention (batch first; the same parameter names as the released
checkpoint). Weights are computed only when asked for (`need_weights`), per head, so the default
path keeps PyTorch's fused attention.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def attend(attention: nn.MultiheadAttention, queries: torch.Tensor, keys: torch.Tensor,
           key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
           values: torch.Tensor | None = None):
    """queries: B x L x C attend to keys: B x S x C (the values too, unless `values` is given:
    B x S x C); key_padding_mask: B x S (True = ignore).

    Returns B x L x C and, when asked, the per-head weights B x heads x L x S (else None).
    """
    out, weights = attention(queries, keys, keys if values is None else values, key_padding_mask=key_padding_mask,
                             need_weights=need_weights, average_attn_weights=False)
    return out, weights


def residual_norm(x: torch.Tensor, update: torch.Tensor, norm: nn.LayerNorm, dropout: float,
                  training: bool) -> torch.Tensor:
    """The post-norm sub-layer: LayerNorm(x + Dropout(update)), with `update` = sublayer(x)."""
    return norm(x + F.dropout(update, dropout, training))


def feed_forward(x: torch.Tensor, linear1: nn.Linear, linear2: nn.Linear, dropout: float, training: bool):
    """linear2(dropout(relu(linear1(x)))), the FFN of a Transformer block."""
    return linear2(F.dropout(F.relu(linear1(x)), dropout, training))


def padding_mask(object_valid: torch.Tensor | None) -> torch.Tensor | None:
    """B x N validity (True = a real object) -> key padding mask (True = ignore), or None."""
    if object_valid is None or bool(object_valid.all()):
        return None
    return ~object_valid
