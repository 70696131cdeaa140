"""The Query-Content Interaction Module, QCIM (QMVOS Sec. 3.3, Eq. 3-4).

The object queries first attend to each other, then to the *serialised* memory readout of all
objects (the decoder-fused stride-16 feature of every object, projected 512 -> 256 and flattened
object-major into B x (N*H*W) x 256), then pass an FFN; each step has a residual and a
LayerNorm (post-norm, as released). Every query may attend to the positions of every valid
object, which is how one object's query learns what the others look like.

Attribute names match the released `decoder.QCIM` (note its numbering: norm2 after the
self-attention, norm1 after the cross-attention, norm3 after the FFN).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import attend, feed_forward, padding_mask, residual_norm


class QueryContentInteraction(nn.Module):
    """Eq. 3 is the queries' self-attention (`self_attn`, then `norm2`); Eq. 4 is their
    cross-attention to the serialised readout (`cross_attn`, then `norm1`); an FFN (`norm3`) follows."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, content: torch.Tensor, object_valid: torch.Tensor | None = None,
                content_valid: torch.Tensor | None = None, need_weights: bool = False):
        """queries: B x N x C; content: B x S x C (the serialised readout, S = N*H*W);
        object_valid: B x N and content_valid: B x S (False = padding).

        Returns the queries and a dict of weights ("self": B x heads x N x N,
        "cross": B x heads x N x S) when `need_weights`, else None.
        """
        # Eq. 3: the queries attend to each other
        attended, self_weights = attend(self.self_attn, queries, queries, padding_mask(object_valid), need_weights)
        queries = residual_norm(queries, attended, self.norm2, self.dropout, self.training)
        # Eq. 4: each query attends to the serialised readout of every object
        attended, cross_weights = attend(self.cross_attn, queries, content, padding_mask(content_valid), need_weights)
        queries = residual_norm(queries, attended, self.norm1, self.dropout, self.training)
        ffn = feed_forward(queries, self.linear1, self.linear2, self.dropout, self.training)
        queries = residual_norm(queries, ffn, self.norm3, self.dropout, self.training)
        weights = {"self": self_weights, "cross": cross_weights} if need_weights else None
        return queries, weights


def serialise_readout(g16: torch.Tensor) -> torch.Tensor:
    """B x N x C x H x W -> B x (N*H*W) x C, object-major (all of object 1's positions first)."""
    return g16.permute(0, 1, 3, 4, 2).flatten(1, 3)  # B x N x H x W x C -> B x NHW x C
