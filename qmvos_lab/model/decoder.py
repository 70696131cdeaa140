"""The XMem decoder (Cheng & Schwing, ECCV 2022; QMVOS Sec. 3.4 keeps "the same iterative upsampling
architecture ... as in XMem"): fuse f16 with the memory readout and the sensory
memory, upsample 16 -> 8 -> 4 with skip connections, predict one logit map per object, and
update the sensory memory from the multi-scale decoder features.

`QueryDecoder` is QMVOS's variant (QMVOS Sec. 3.3): the same fusion and upsampling, then the QCIM
(QMVOS Eq. 3-4) and the queries as dynamic filters in place of the prediction conv."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import FeatureFusionBlock, GConv2D, SensoryUpdater, UpsampleBlock
from .qcim import ObjectIdentity, QueryContentInteraction, dynamic_filter_logits, serialise_readout


class Decoded(NamedTuple):
    """What a decoder returns: the new sensory memory (B x N x Ch x h x w, or None when not updated or
    absent), the logits at full resolution (B x N x H x W), and for QMVOS the refined queries
    (B x N x C) and the QCIM attention weights (or None)."""

    hidden: torch.Tensor | None
    logits: torch.Tensor
    queries: torch.Tensor | None = None
    weights: dict | None = None


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
               hidden: torch.Tensor | None, readout: torch.Tensor):
        """Fusion and upsampling: returns g16, g8, g4 (B x N x C x H x W; 512, 256, 256 channels as released)."""
        if self.hidden_update is not None:
            readout = torch.cat([readout, hidden], 2)  # B x N x (Cv+Ch) x H16 x W16
        g16 = self.fuser(f16, readout)  # B x N x C16 x H16 x W16
        g8 = self.up_16_8(f8, g16)  # B x N x C8 x H8 x W8
        g4 = self.up_8_4(f4, g8)  # B x N x C4 x H4 x W4
        return g16, g8, g4

    def update_hidden(self, g16, g8, g4, logits4, hidden):
        """Sensory update from the decoder features and the stride-4 logits (B x N x H4 x W4)."""
        if self.hidden_update is None:
            return None
        g4 = torch.cat([g4, logits4.unsqueeze(2)], 2)  # B x N x (C4 + 1) x H4 x W4
        return self.hidden_update([g16, g8, g4], hidden)

    def forward(self, f16, f8, f4, hidden, readout, *, update_hidden: bool = True) -> Decoded:
        """readout: B x N x Cv x h x w; hidden: B x N x Ch x h x w (or None without sensory memory).
        update_hidden: compute the new sensory memory (else `.hidden` is None)."""
        batch_size, num_objects = readout.shape[:2]
        g16, g8, g4 = self.decode(f16, f8, f4, hidden, readout)
        logits4 = self.pred(F.relu(g4.flatten(0, 1)))  # BN x 1 x H4 x W4
        logits4 = logits4.view(batch_size, num_objects, *logits4.shape[-2:])  # B x N x H4 x W4
        hidden = self.update_hidden(g16, g8, g4, logits4, hidden) if update_hidden else None
        logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # B x N x H x W
        return Decoded(hidden, logits)


class QueryDecoder(Decoder):
    """XMem's decoder with the QCIM and dynamic-filter logits instead of the prediction conv."""

    def __init__(self, value_dim: int, hidden_dim: int, query_dim: int, qcim_source: str,
                 feature_dims: tuple[int, int, int] = (1024, 512, 256),
                 decoder_dims: tuple[int, int, int] = (512, 256, 256), qcim_identity: bool = False):
        super().__init__(value_dim, hidden_dim, feature_dims, decoder_dims, with_prediction=False)
        self.qcim_source = qcim_source
        if qcim_source == "readout":
            self.g16_proj = GConv2D(decoder_dims[0], query_dim, kernel_size=1)
        if qcim_identity:  # beyond the paper (ModelConfig.qcim_identity); absent as released
            if qcim_source != "readout":
                raise ValueError("qcim_identity marks the positions of each object's readout: it needs "
                                 "qcim_source='readout'")
            self.object_identity = ObjectIdentity(query_dim)
        self.QCIM = QueryContentInteraction(query_dim, ffn_dim=4 * query_dim)
        # the refined queries end in a LayerNorm, so <q, g4> of fresh layers has a standard deviation
        # of about sqrt(C) |g4| and the sigmoid saturates: fresh networks (from scratch, or the new
        # modules of QMVOS initialised from XMem) start with zero queries, i.e. logit 0. Loaded weights
        # overwrite this.
        nn.init.zeros_(self.QCIM.norm3.weight)

    def forward(self, f16, f8, f4, hidden, readout, *, queries: torch.Tensor,
                object_valid: torch.Tensor | None = None, image_content: torch.Tensor | None = None,
                update_hidden: bool = True, need_weights: bool = False) -> Decoded:
        """As Decoder.forward, with queries: B x N x C; object_valid: B x N; image_content: B x C x h x w
        (the "f16" source). Also returns the refined queries and the attention weights (or None).
        The logits are the queries used as dynamic filters on g4 (QMVOS Sec. 3.3, last paragraph).
        """
        g16, g8, g4 = self.decode(f16, f8, f4, hidden, readout)
        if self.qcim_source == "readout":
            content = serialise_readout(self.g16_proj(g16))  # B x (N h w) x C: M, as released (see its docstring)
            area = g16.shape[-2] * g16.shape[-1]
            content_valid = None if object_valid is None else object_valid.repeat_interleave(area, dim=1)
        else:
            content = image_content.flatten(2).transpose(1, 2)  # B x hw x C
            content_valid = None
        identity = self.object_identity(queries.shape[1], area) if hasattr(self, "object_identity") else None
        queries, weights = self.QCIM(queries, content, object_valid, content_valid, need_weights, identity=identity)
        # QMVOS Sec. 3.3 (last paragraph): each refined query is a dynamic 1x1 filter on its
        # object's stride-4 decoder feature, logit_i = <q_i, g4_i>, in place of XMem's prediction conv
        logits4 = dynamic_filter_logits(queries, g4)  # B x N x H4 x W4
        hidden = self.update_hidden(g16, g8, g4, logits4, hidden) if update_hidden else None
        logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # B x N x H x W
        if weights is not None:
            weights["cross_grid"] = g16.shape[-2:] if self.qcim_source == "readout" else image_content.shape[-2:]
        return Decoded(hidden, logits, queries, weights)
