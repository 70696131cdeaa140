"""The XMem network (Cheng & Schwing, ECCV 2022) as four stages that map onto Fig. 3 of the paper:

    encode_key    frame -> key, shrinkage, selection and multi-scale features f16, f8, f4
    encode_value  frame + masks (+ f16, sensory memory) -> per-object memory values
    read_memory   query key/selection vs. memory keys -> per-object readout (training path;
                  inference uses the memory manager, which adds top-k and long-term memory)
    segment       f16/f8/f4 + readout + sensory memory -> logits, probabilities, new sensory memory

State-dict keys and shapes are exactly those of the official implementation, so the released
checkpoints load with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import ModelConfig
from .aggregate import aggregate
from .decoder import Decoder
from .encoders import KeyEncoder, KeyProjection, ValueEncoder
from .memory_read import read_memory


def others_mask(masks: torch.Tensor) -> torch.Tensor:
    """For every object, the sum of the other objects' masks: B x N x H x W -> B x N x H x W."""
    if masks.shape[1] == 1:
        return torch.zeros_like(masks)
    return masks.sum(dim=1, keepdim=True) - masks


class XMem(nn.Module):
    uses_queries = False

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        f16_dim = c.feature_dims[0]
        self.key_encoder = KeyEncoder(c.backbone)
        self.value_encoder = ValueEncoder(c.value_dim, c.hidden_dim, c.single_object, f16_dim)
        self.key_proj = KeyProjection(f16_dim, c.key_dim)
        self.decoder = Decoder(c.value_dim, c.hidden_dim, c.feature_dims, c.decoder_dims)

    @property
    def key_dim(self) -> int:
        return self.config.key_dim

    @property
    def value_dim(self) -> int:
        return self.config.value_dim

    @property
    def hidden_dim(self) -> int:
        return self.config.hidden_dim

    def encode_key(self, frame: torch.Tensor, need_shrinkage: bool = True, need_selection: bool = True):
        """frame: B x 3 x H x W (or B x T x 3 x H x W), ImageNet-normalised, H and W divisible by 16.

        Returns key (B x Ck x H/16 x W/16), shrinkage (B x 1 x ...), selection (B x Ck x ...), f16, f8, f4.
        For a B x T input, key/shrinkage/selection come as B x C x T x H x W (memory layout) and
        the features as B x T x C x H x W.
        """
        video = frame.dim() == 5
        if video:
            batch_size, num_frames = frame.shape[:2]
            frame = frame.flatten(0, 1)  # BT x 3 x H x W
        elif frame.dim() != 4:
            raise ValueError(f"encode_key expects B x 3 x H x W or B x T x 3 x H x W, got {tuple(frame.shape)}")
        f16, f8, f4 = self.key_encoder(frame)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        if video:
            def to_memory_layout(x):  # BT x C x h x w -> B x C x T x h x w
                return None if x is None else x.view(batch_size, num_frames, *x.shape[1:]).transpose(1, 2).contiguous()

            def to_video(x):  # BT x C x h x w -> B x T x C x h x w
                return x.view(batch_size, num_frames, *x.shape[1:])

            key, shrinkage, selection = map(to_memory_layout, (key, shrinkage, selection))
            f16, f8, f4 = map(to_video, (f16, f8, f4))
        return key, shrinkage, selection, f16, f8, f4

    def encode_value(self, frame: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor | None,
                     masks: torch.Tensor, deep_update: bool = True):
        """frame: B x 3 x H x W; f16: B x C16 x h x w; masks: B x N x H x W (soft or hard);
        hidden: B x N x Ch x h x w. Returns values B x N x Cv x h x w and the (updated) hidden."""
        return self.value_encoder(frame, f16, hidden, masks, others_mask(masks), deep_update)

    def read_memory(self, query_key, query_selection, mem_key, mem_shrinkage, mem_value, top_k=None):
        """Dense readout for training (no top-k by default). Shapes: see memory_read.read_memory."""
        return read_memory(query_key, query_selection, mem_key, mem_shrinkage, mem_value, top_k)

    def segment(self, features, memory_readout: torch.Tensor, hidden: torch.Tensor | None,
                selector: torch.Tensor | None = None, h_out: bool = True, strip_bg: bool = True):
        """features: (f16, f8, f4); memory_readout: B x N x Cv x h x w.

        Returns (hidden, logits, prob): the new sensory memory (None when h_out is False),
        aggregated logits B x (N+1) x H x W and probabilities (background stripped by default).
        `selector` (B x N x 1 x 1) zeroes the objects that a training clip does not have.
        """
        hidden, logits = self.decoder(*features, hidden, memory_readout, h_out=h_out)
        prob = torch.sigmoid(logits)  # B x N x H x W
        if selector is not None:
            prob = prob * selector
        logits, prob = aggregate(prob, dim=1, return_logits=True)  # B x (N+1) x H x W
        if strip_bg:
            prob = prob[:, 1:]
        return hidden, logits, prob

    def forward(self, stage: str, *args, **kwargs):
        """Dispatch by stage name, so that DistributedDataParallel sees every call as forward()."""
        stages = {"encode_key": self.encode_key, "encode_value": self.encode_value,
                  "read_memory": self.read_memory, "segment": self.segment}
        if stage not in stages:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(stages)}")
        return stages[stage](*args, **kwargs)
