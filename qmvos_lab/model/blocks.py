"""Building blocks of the XMem network (Cheng & Schwing, ECCV 2022, Sec. 3 and Fig. 3).

Naming follows XMem: `x` is a feature that depends on the image only (B x C x H x W); `g` is a
"group" feature that also depends on an object's mask and so carries an object axis
(B x N x C x H x W). Every group module is equivariant to permutations of the N objects: it
folds N into the batch, applies a 2-D operation, and unfolds.
The trailing number of a name is its stride (`g16` lives at 1/16 resolution).

Module and attribute names mirror the official implementation so that its state-dict keys
(e.g. `fuser.block1.conv1.weight`, `attention.ChannelGate.mlp.1.weight`) load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
# Group helpers: apply a 2-D op to every object of a B x N x C x H x W tensor.
# --------------------------------------------------------------------------------------------
def resize_groups(g: torch.Tensor, ratio: float, mode: str) -> torch.Tensor:
    """Rescale every object's map by `ratio` (bilinear up, area down, as XMem)."""
    batch_size, num_objects = g.shape[:2]
    align = False if mode == "bilinear" else None
    g = F.interpolate(g.flatten(0, 1), scale_factor=ratio, mode=mode, align_corners=align)  # BN x C x H' x W'
    return g.view(batch_size, num_objects, *g.shape[1:])  # B x N x C x H' x W'


def upsample_groups(g: torch.Tensor, ratio: float = 2) -> torch.Tensor:
    return resize_groups(g, ratio, "bilinear")


def downsample_groups(g: torch.Tensor, ratio: float = 1 / 2) -> torch.Tensor:
    return resize_groups(g, ratio, "area")


def broadcast_to_objects(x: torch.Tensor, num_objects: int) -> torch.Tensor:
    """Repeat an image feature for every object: B x C x H x W -> B x N x C x H x W (a view)."""
    return x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)


class GConv2D(nn.Conv2d):
    """A 2-D convolution shared by all objects: B x N x Cin x H x W -> B x N x Cout x H' x W'."""

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        batch_size, num_objects = g.shape[:2]
        g = super().forward(g.flatten(0, 1))  # BN x Cout x H' x W'
        return g.view(batch_size, num_objects, *g.shape[1:])


class GroupResBlock(nn.Module):
    """Pre-activation residual block on group features (two 3x3 convs, projected skip if needed)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.downsample = None if in_dim == out_dim else GConv2D(in_dim, out_dim, 3, padding=1)
        self.conv1 = GConv2D(in_dim, out_dim, 3, padding=1)
        self.conv2 = GConv2D(out_dim, out_dim, 3, padding=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        skip = g if self.downsample is None else self.downsample(g)
        return out + skip


# --------------------------------------------------------------------------------------------
# CBAM (Woo et al., ECCV 2018): channel then spatial attention, used inside the fusion block.
# --------------------------------------------------------------------------------------------
class ChannelGate(nn.Module):
    """Channel attention: a shared MLP on the average- and max-pooled channel descriptors."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        # indices 1 and 3 hold the weights (`mlp.1.weight`, `mlp.3.weight`), as upstream
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x C x H x W
        avg = F.adaptive_avg_pool2d(x, 1)  # B x C x 1 x 1
        peak = F.adaptive_max_pool2d(x, 1)  # B x C x 1 x 1
        scale = torch.sigmoid(self.mlp(avg) + self.mlp(peak))  # B x C
        return x * scale[:, :, None, None]


class _Conv(nn.Module):
    """A bare convolution held as `.conv`, only so that the key `spatial.conv.weight` matches."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialGate(nn.Module):
    """Spatial attention: a 7x7 conv over the channel-wise max and mean maps."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.spatial = _Conv(2, 1, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x C x H x W
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)  # B x 2 x H x W
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


# --------------------------------------------------------------------------------------------
# Fusion of an image feature with per-object features, and the two sensory-memory updates.
# --------------------------------------------------------------------------------------------
class FeatureFusionBlock(nn.Module):
    """Concatenate x with each object's g, then ResBlock -> CBAM (residual) -> ResBlock.

    Used twice: in the value encoder (f16 with the mask features) and in the decoder
    (f16 with the memory readout and the sensory memory).
    """

    def __init__(self, x_in_dim: int, g_in_dim: int, g_mid_dim: int, g_out_dim: int):
        super().__init__()
        self.block1 = GroupResBlock(x_in_dim + g_in_dim, g_mid_dim)
        self.attention = CBAM(g_mid_dim)
        self.block2 = GroupResBlock(g_mid_dim, g_out_dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        num_objects = g.shape[1]
        if num_objects > 1 and self.block1.downsample is not None:
            g = res_block_on_concat(self.block1, x, g)  # the same, with x's share computed once
        else:
            g = self.block1(torch.cat([broadcast_to_objects(x, num_objects), g], 2))  # on B x N x (Cx+Cg) x H x W
        r = self.attention(g.flatten(0, 1)).view_as(g)  # B x N x Cmid x H x W
        return self.block2(g + r)


def res_block_on_concat(block: GroupResBlock, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """`block(cat([x, g_i]))` for every object i, with the image feature's share computed once.

    The two convolutions that see the block's input are linear in it: with the weight split along
    its input channels, W = [W_x | W_g], conv(cat[x, g_i]) = conv_x(x) + conv_g(g_i), and the
    pre-activation relu acts channel by channel. conv_x(x) is the same for all N objects, so it
    runs once instead of N times (in XMem's decoder it is 64 % of the fusion's first two convs).
    Equal to the plain path up to fp32 summation order. x: B x Cx x H x W; g: B x N x Cg x H x W.
    """
    if block.downsample is None:
        raise ValueError("res_block_on_concat needs a block with a projected skip (in_dim != out_dim)")
    num_x = x.shape[1]

    def split_conv(conv: GConv2D, x_in: torch.Tensor, g_in: torch.Tensor) -> torch.Tensor:
        settings = (conv.stride, conv.padding, conv.dilation, conv.groups)
        shared = F.conv2d(x_in, conv.weight[:, :num_x], None, *settings)  # B x Cout x H x W
        own = F.conv2d(g_in.flatten(0, 1), conv.weight[:, num_x:], conv.bias, *settings)  # BN x Cout x H x W
        return own.view(*g_in.shape[:2], *own.shape[1:]) + shared.unsqueeze(1)  # B x N x Cout x H x W

    out = block.conv2(F.relu(split_conv(block.conv1, F.relu(x), F.relu(g))))
    return out + split_conv(block.downsample, x, g)


def gated_update(values: torch.Tensor, h: torch.Tensor, hidden_dim: int) -> torch.Tensor:
    """XMem's GRU-like sensory update (Sec. 3.4).

    `values` (B x N x 3C x H x W) holds the forget gate, the update gate and the candidate.
    As upstream (and unlike a textbook GRU) the candidate is not gated by the reset/forget
    gate: h' = f * h * (1 - u) + u * tanh(c).
    """
    forget_gate = torch.sigmoid(values[:, :, :hidden_dim])
    update_gate = torch.sigmoid(values[:, :, hidden_dim:hidden_dim * 2])
    candidate = torch.tanh(values[:, :, hidden_dim * 2:])
    return forget_gate * h * (1 - update_gate) + update_gate * candidate


class SensoryUpdater(nn.Module):
    """Decoder-side sensory update from the multi-scale decoder features (XMem Sec. 3.4).

    Kept under the attribute name `hidden_update` (the official key prefix).
    """

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.g16_conv = GConv2D(g_dims[0], mid_dim, kernel_size=1)
        self.g8_conv = GConv2D(g_dims[1], mid_dim, kernel_size=1)
        self.g4_conv = GConv2D(g_dims[2], mid_dim, kernel_size=1)
        self.transform = GConv2D(mid_dim + hidden_dim, hidden_dim * 3, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, g: list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        g16, g8, g4 = g
        g = (self.g16_conv(g16) + self.g8_conv(downsample_groups(g8, 1 / 2))
             + self.g4_conv(downsample_groups(g4, 1 / 4)))  # B x N x mid x H16 x W16
        values = self.transform(torch.cat([g, h], 2))  # B x N x 3C x H16 x W16
        return gated_update(values, h, self.hidden_dim)


class SensoryReinforcer(nn.Module):
    """Value-encoder-side ("deep") sensory update from the new memory value (XMem Sec. 3.4).

    Kept under the attribute name `hidden_reinforce` (the official key prefix).
    """

    def __init__(self, g_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.transform = GConv2D(g_dim + hidden_dim, hidden_dim * 3, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        values = self.transform(torch.cat([g, h], 2))  # B x N x 3C x H16 x W16
        return gated_update(values, h, self.hidden_dim)


class UpsampleBlock(nn.Module):
    """Decoder step: x2 bilinear upsampling of g, plus a 3x3-projected skip feature, then a ResBlock."""

    def __init__(self, skip_dim: int, g_up_dim: int, g_out_dim: int, scale_factor: int = 2):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, g_up_dim, kernel_size=3, padding=1)
        self.out_conv = GroupResBlock(g_up_dim, g_out_dim)
        self.scale_factor = scale_factor

    def forward(self, skip_f: torch.Tensor, up_g: torch.Tensor) -> torch.Tensor:
        skip_f = self.skip_conv(skip_f)  # B x Cup x H x W
        g = upsample_groups(up_g, self.scale_factor)  # B x N x Cup x H x W
        return self.out_conv(broadcast_to_objects(skip_f, g.shape[1]) + g)
