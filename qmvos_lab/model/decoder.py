"""The XMem decoder (Sec. 3.4 and Fig. 3): fuse f16 with the memory readout and the sensory
memory, upsample 16 -> 8 -> 4 with skip connections, predict one logit map per object, and
update the sensory memory from the multi-scale decoder features."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import FeatureFusionBlock, SensoryUpdater, UpsampleBlock


class Decoder(nn.Module):
    """feature_dims: channels of the backbone's f16, f8, f4 (1024, 512, 256 for ResNet-50);
    decoder_dims: channels of g16, g8, g4 (512, 256, 256 as released)."""

    def __init__(self, value_dim: int, hidden_dim: int, feature_dims: tuple[int, int, int] = (1024, 512, 256),
                 decoder_dims: tuple[int, int, int] = (512, 256, 256), with_prediction: bool = True):
        super().__init__()
        (f16_dim, f8_dim, f4_dim), (g16_dim, g8_dim, g4_dim) = feature_dims, decoder_dims
        self.fuser = FeatureFusionBlock(f16_dim, value_dim + hidden_dim, g16_dim, g16_dim)
        # the sensory update sees g16, g8 and g4 + the logit (hence g4 + 1)
        self.hidden_update = (SensoryUpdater((g16_dim, g8_dim, g4_dim + 1), g8_dim, hidden_dim)
                              if hidden_dim > 0 else None)
        self.up_16_8 = UpsampleBlock(f8_dim, g16_dim, g8_dim)  # 1/16 -> 1/8
        self.up_8_4 = UpsampleBlock(f4_dim, g8_dim, g4_dim)  # 1/8 -> 1/4
        if with_prediction:  # QMVOS replaces this conv by its queries (dynamic filters)
            self.pred = nn.Conv2d(g4_dim, 1, kernel_size=3, padding=1)
            # fresh networks start at logit 0 (p = 0.5) rather than saturated (a from-scratch choice;
            # loaded weights overwrite it)
            nn.init.zeros_(self.pred.weight)
            nn.init.zeros_(self.pred.bias)

    def decode(self, f16: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor,
               hidden: torch.Tensor | None, memory_readout: torch.Tensor):
        """Fusion and upsampling: returns g16, g8, g4 (B x N x C x H x W; 512, 256, 256 channels as released)."""
        if self.hidden_update is not None:
            memory_readout = torch.cat([memory_readout, hidden], 2)  # B x N x (Cv+Ch) x H16 x W16
        g16 = self.fuser(f16, memory_readout)  # B x N x C16 x H16 x W16
        g8 = self.up_16_8(f8, g16)  # B x N x C8 x H8 x W8
        g4 = self.up_8_4(f4, g8)  # B x N x C4 x H4 x W4
        return g16, g8, g4

    def update_hidden(self, g16, g8, g4, logits4, hidden):
        """Sensory update from the decoder features and the stride-4 logits (B x N x H4 x W4)."""
        if self.hidden_update is None:
            return None
        g4 = torch.cat([g4, logits4.unsqueeze(2)], 2)  # B x N x (C4 + 1) x H4 x W4
        return self.hidden_update([g16, g8, g4], hidden)

    def forward(self, f16, f8, f4, hidden, memory_readout, h_out: bool = True):
        """Returns the new sensory memory (or None) and the logits at full resolution (B x N x H x W)."""
        batch_size, num_objects = memory_readout.shape[:2]
        g16, g8, g4 = self.decode(f16, f8, f4, hidden, memory_readout)
        logits4 = self.pred(F.relu(g4.flatten(0, 1)))  # BN x 1 x H4 x W4
        logits4 = logits4.view(batch_size, num_objects, *logits4.shape[-2:])  # B x N x H4 x W4
        hidden = self.update_hidden(g16, g8, g4, logits4, hidden) if h_out else None
        logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # B x N x H x W
        return hidden, logits
