"""The two encoders and the key projection of XMem (Sec. 3.2 and 3.3, Fig. 3).

* Key encoder: a torchvision ResNet-50 up to layer3, run once per frame; it gives the
  multi-scale image features f16 (1024 ch), f8 (512) and f4 (256). The "small" network size
  uses a ResNet-18 instead (256, 128 and 64 channels), as Cutie-small does.
* Key projection: from f16 to the key k (3x3 conv), the shrinkage s = d^2 + 1 (>= 1) and the
  selection e = sigmoid(.) in (0, 1) of the anisotropic L2 similarity (XMem Eq. 3).
* Value encoder: a torchvision ResNet-18 (layer1-3) whose first convolution also sees the
  object's mask and the sum of the other objects' masks, fused with f16 (CBAM fusion block),
  and the "deep" sensory update (hidden reinforcer).

Deliberate differences from the official code, none of which changes a forward pass:
torchvision's ResNet classes replace XMem's copy of them (same layers, same key names), and the
freshly built networks use torchvision's initialisation with the last BatchNorm of every residual
block at zero (`zero_init_residual`: each block starts as the identity, which keeps training from
scratch stable); loaded weights overwrite both.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from .blocks import FeatureFusionBlock, SensoryReinforcer


class KeyEncoder(nn.Module):
    """ResNet stem + layer1-3. Attribute names (`res2` for layer1) follow the official keys."""

    def __init__(self, backbone: str = "resnet50"):
        super().__init__()
        resnet = getattr(torchvision.models, backbone)(weights=None, zero_init_residual=True)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.res2 = resnet.layer1  # 1/4, 256
        self.layer2 = resnet.layer2  # 1/8, 512
        self.layer3 = resnet.layer3  # 1/16, 1024

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))  # B x 64 x H/4 x W/4
        f4 = self.res2(x)  # B x 256 x H/4 x W/4
        f8 = self.layer2(f4)  # B x 512 x H/8 x W/8
        f16 = self.layer3(f8)  # B x 1024 x H/16 x W/16
        return f16, f8, f4


class KeyProjection(nn.Module):
    """f16 -> key, shrinkage s = d^2 + 1 and selection e = sigmoid (XMem Sec. 3.2, Eq. 3)."""

    def __init__(self, in_dim: int, key_dim: int):
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, kernel_size=3, padding=1)  # shrinkage
        self.e_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)  # selection
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(self.key_proj.bias)

    def forward(self, f16: torch.Tensor, need_shrinkage: bool = True, need_selection: bool = True):
        key = self.key_proj(f16)  # B x Ck x H x W
        shrinkage = self.d_proj(f16) ** 2 + 1 if need_shrinkage else None  # B x 1 x H x W
        selection = torch.sigmoid(self.e_proj(f16)) if need_selection else None  # B x Ck x H x W
        return key, shrinkage, selection


class ValueEncoder(nn.Module):
    """Mask + image -> per-object memory value at 1/16 (and the deep sensory update).

    The first convolution takes RGB + the object's mask + the sum of the other objects' masks
    (5 channels), or RGB + mask (4 channels) in single-object mode.
    """

    def __init__(self, value_dim: int, hidden_dim: int, single_object: bool = False, f16_dim: int = 1024):
        super().__init__()
        self.single_object = single_object
        resnet = torchvision.models.resnet18(weights=None, zero_init_residual=True)
        in_channels = 4 if single_object else 5
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1, self.relu, self.maxpool = resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1 = resnet.layer1  # 1/4, 64
        self.layer2 = resnet.layer2  # 1/8, 128
        self.layer3 = resnet.layer3  # 1/16, 256
        self.fuser = FeatureFusionBlock(f16_dim, 256, value_dim, value_dim)
        self.hidden_reinforce = SensoryReinforcer(value_dim, hidden_dim) if hidden_dim > 0 else None

    def forward(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor | None,
                masks: torch.Tensor, others: torch.Tensor, deep_update: bool = True):
        """image: B x 3 x H x W; f16: B x C16 x H/16 x W/16; masks, others: B x N x H x W;
        hidden: B x N x Ch x H/16 x W/16. Returns the value (B x N x Cv x H/16 x W/16) and hidden."""
        batch_size, num_objects = masks.shape[:2]
        mask_channels = masks.unsqueeze(2) if self.single_object else torch.stack([masks, others], 2)  # B x N x (1|2) x H x W
        image = image.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)  # B x N x 3 x H x W
        g = torch.cat([image, mask_channels], 2).flatten(0, 1)  # BN x (4|5) x H x W
        # the official order is conv -> bn -> maxpool -> relu (relu and maxpool commute)
        g = self.relu(self.maxpool(self.bn1(self.conv1(g))))  # BN x 64 x H/4 x W/4
        g = self.layer3(self.layer2(self.layer1(g)))  # BN x 256 x H/16 x W/16
        g = g.view(batch_size, num_objects, *g.shape[1:])  # B x N x 256 x H/16 x W/16
        g = self.fuser(f16, g)  # B x N x Cv x H/16 x W/16
        if deep_update and self.hidden_reinforce is not None:
            hidden = self.hidden_reinforce(g, hidden)
        return g, hidden
