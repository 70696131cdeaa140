"""The Scale-aware Interaction Module, SIM (QMVOS Sec. 3.2, Eq. 1-2).

1. Scale-aware initialisation. The scale fusion (QMVOS Eq. 1, `scale_fusion`) makes one 256-channel
   map at stride 8 from the backbone's F16 and F8; the queries are then pooled from it under each
   object's mask (masked average pooling, `masked_average_pooling`; the paper describes it in prose
   after QMVOS Eq. 1, it has no number of its own): one query per object.
2. Multi-object interaction (QMVOS Eq. 2, `QueryInteraction`): the queries of a video attend to each
   other in a post-norm Transformer block, ignoring padded objects.

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
    high-resolution map, 1x1 conv + GN: the Upsample, Conv1 and Conv2 of QMVOS Eq. 1 (see
    `scale_fusion`). Attribute names match the released `simple_upsample_block`."""

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


def scale_fusion(f16: torch.Tensor, f8: torch.Tensor, input_proj: nn.Module, fuse: UpsampleFuse) -> torch.Tensor:
    """The scale fusion of the SIM (QMVOS Sec. 3.2, Eq. 1), as printed:

        F^16   = Conv1(Upsample(F16))
        F_fuse = Conv2(Concat(F^16, F8))

    with Upsample a linear interpolation x2 and Conv1, Conv2 two 1x1 convolutions.

    The released code (and this kit, so that its weights load) differs in order and adds norms:
    F16 (1024 ch, stride 16) is first projected to 256 channels by a 1x1 conv with bias
    (`input_proj`, the same layer the "f16" QCIM source uses), *then* upsampled x2 (bilinear,
    corners aligned), then a 1x1 conv without bias + GroupNorm(32) (`fuse.up`); the concatenation
    with F8 (512 ch) goes through a 1x1 conv without bias + GroupNorm(32) (`fuse.output_conv`). No
    activations. So there are three 1x1 convs, two GroupNorms, and the upsampling acts on 256
    channels rather than 1024.

    f16: B x C16 x H/16 x W/16; f8: B x C8 x H/8 x W/8. Returns F_fuse: B x 256 x H/8 x W/8.
    """
    return fuse(input_proj(f16), f8)  # B x 256 x H/8 x W/8


def masked_average_pooling(feature: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The mean feature under each mask: the queries of the SIM (QMVOS Sec. 3.2, the prose after Eq. 1:
    the mask is pooled to the resolution of F_fuse, multiplied with it, then globally average-pooled).

        q_n = sum_xy m_n(x, y) F_fuse(x, y) / (sum_xy m_n(x, y) + 5e-4)

    feature: B x C x h x w; masks: B x N x H x W (any resolution, resized here by nearest).
    Returns B x N x C. As released, 5e-4 is added to the area so that an empty mask gives 0 (the
    paper does not say how an empty mask is handled), and the mask is resized by nearest sampling.
    """
    masks = F.interpolate(masks.to(feature.dtype), size=feature.shape[-2:], mode="nearest")  # B x N x h x w
    area = masks.sum(dim=(-2, -1)) + 5e-4  # B x N
    pooled = torch.einsum("bchw,bnhw->bnc", feature, masks)  # B x N x C
    return pooled / area.unsqueeze(-1)


class QueryInteraction(nn.Module):
    """The multi-object interaction of the SIM (QMVOS Sec. 3.2, Eq. 2), as printed:

        SA(X)  = Softmax(Q K^T / sqrt(d)) V        (Q, K, V: linear maps of the queries X, N x Cv)
        X^     = LN(SA(X) + X)
        X_sim  = LN(FFN(X^) + X^)                  (FFN: two fully connected layers)

    The released code (and this kit) uses torch's multi-head attention: 8 heads of d = C / 8 = 32
    channels, each scaled by 1/sqrt(32), and an output projection; dropout 0.1 on the attention
    weights and on each residual branch while training; the FFN is 256 -> 1024 -> 256 with a ReLU;
    the queries live in 256 channels (the paper writes Cv, XMem's value width is 512); padded
    objects of a training batch are masked out of the keys. Attribute names match the released
    `query_SelfAtt_FFN`."""

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
