"""The Scale-aware Interaction Module, SIM (QMVOS Sec. 3.2, Eq. 1-2).

1. Scale-aware initialisation: fuse the backbone's F16 and F8 into one 256-channel map at stride 8
   (F16 -> 1x1 conv -> x2 bilinear -> 1x1 conv + GroupNorm; concatenate F8; 1x1 conv + GroupNorm;
   no activations, as released), then pool it under each object's previous mask (masked average
   pooling, Eq. 1): one query per object.
2. Multi-object interaction: the queries of a video attend to each other in a post-norm
   Transformer block (8 heads, FFN 1024), ignoring padded objects (Eq. 2).

The Table 3b variants take {F16} alone (stride 16), {F8} alone (1x1 conv + GroupNorm), or add F4
(max-pooled to stride 8, 3x3 conv + GroupNorm, fused with the F16+F8 map) - the last is our
construction after the paper's description, with the released code's unused fusion as a guide.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attend, feed_forward, padding_mask, residual_norm


class UpsampleFuse(nn.Module):
    """Low-resolution map x2 (bilinear, corners aligned) + 1x1 conv + GN, concatenated with a
    high-resolution map, 1x1 conv + GN. Attribute names match the released `simple_upsample_block`."""

    def __init__(self, low_dim: int, high_dim: int, mid_dim: int, out_dim: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                nn.Conv2d(low_dim, mid_dim, 1, bias=False), nn.GroupNorm(32, mid_dim))
        self.output_conv = nn.Sequential(nn.Conv2d(mid_dim + high_dim, out_dim, 1, bias=False),
                                         nn.GroupNorm(32, out_dim))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.output_conv(torch.cat([self.up(low), high], 1))  # B x out x H_high x W_high


class DownsampleFuse(nn.Module):
    """A stride-4 map max-pooled to stride 8, 3x3 conv + GN, fused with a stride-8 map (1x1 conv + GN)."""

    def __init__(self, fine_dim: int, dim: int):
        super().__init__()
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(fine_dim, dim, 3, padding=1, bias=False),
                                  nn.GroupNorm(32, dim))
        self.output_conv = nn.Sequential(nn.Conv2d(2 * dim, dim, 1, bias=False), nn.GroupNorm(32, dim))

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return self.output_conv(torch.cat([coarse, self.down(fine)], 1))


def masked_average_pooling(feature: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 1: the mean feature under each mask.

    feature: B x C x h x w; masks: B x N x H x W (any resolution, resized here by nearest).
    Returns B x N x C. As released, 5e-4 is added to the area so that an empty mask gives 0.
    """
    masks = F.interpolate(masks.to(feature.dtype), size=feature.shape[-2:], mode="nearest")  # B x N x h x w
    area = masks.sum(dim=(-2, -1)) + 5e-4  # B x N
    pooled = torch.einsum("bchw,bnhw->bnc", feature, masks)  # B x N x C
    return pooled / area.unsqueeze(-1)


class QueryInteraction(nn.Module):
    """Eq. 2: self-attention among the queries of one video + FFN, post-norm.
    Attribute names match the released `query_SelfAtt_FFN`."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, object_valid: torch.Tensor | None = None, need_weights: bool = False):
        """queries: B x N x C; object_valid: B x N (False = padding). Returns queries and the
        self-attention weights B x heads x N x N (or None)."""
        attended, weights = attend(self.self_attn, queries, queries, padding_mask(object_valid), need_weights)
        queries = residual_norm(queries, attended, self.norm1, self.dropout, self.training)
        # the released block calls a missing `forward_ffn` here (a crash); this is the FFN it describes
        ffn = feed_forward(queries, self.linear1, self.linear2, self.dropout, self.training)
        queries = residual_norm(queries, ffn, self.norm2, self.dropout, self.training)
        return queries, weights
