"""The XMem network (Cheng & Schwing, ECCV 2022) as four stages that map onto Fig. 3 of the paper:

    encode_key    frame -> key, shrinkage, selection and multi-scale features f16, f8, f4
    encode_value  frame + masks (+ f16, sensory memory) -> per-object memory values
    read_memory   query key/selection vs. memory keys -> per-object readout (training path;
                  inference uses the memory manager, which adds top-k and long-term memory)
    segment       f16/f8/f4 + readout + sensory memory -> logits, probabilities, new sensory memory

QMVOS (qmvos.py) has the same stages and call shapes; XMem answers its query calls
(`init_queries`, `propagate_queries`) with None, so callers never branch on the model kind. There
is no string dispatch: training calls the stages through `qmvos_lab.train.TrainWrapper`.

State-dict keys and shapes are exactly those of the official implementation, so the released
checkpoints load with strict=True.
"""

from __future__ import annotations

from typing import NamedTuple

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
    uses_queries = False  # for information (checkpoint info, figures); callers need not branch on it

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        f16_dim = c.feature_dims[0]
        self.key_encoder = KeyEncoder(c.backbone)
        self.value_encoder = ValueEncoder(c.value_dim, c.hidden_dim, c.single_object, f16_dim)
        self.key_proj = KeyProjection(f16_dim, c.key_dim)
        self.decoder = Decoder(c.value_dim, c.hidden_dim, c.feature_dims, c.decoder_dims)
        # the shorter side to which this network resizes generated frames (its training recipe's
        # TrainConfig.inference_size, saved in its checkpoints; -1: their own size). Not a weight.
        self.inference_size = -1

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

    def segment(self, features, readout: torch.Tensor, hidden: torch.Tensor | None, *,
                queries: torch.Tensor | None = None, selector: torch.Tensor | None = None,
                object_valid: torch.Tensor | None = None, update_hidden: bool = True,
                need_weights: bool = False) -> SegmentOutput:
        """Decode one frame (XMem Sec. 3.4): features (f16, f8, f4); readout B x N x Cv x h x w;
        hidden (the sensory memory) B x N x Ch x h x w.

        queries, object_valid, need_weights: QMVOS's (accepted and ignored here, so that callers
            never branch on the model kind).
        selector: B x N, 1 for the objects a training clip has (the others get probability 0).
        update_hidden: compute the new sensory memory (False on frames whose update is skipped).
        """
        decoded = self.decoder(*features, hidden, readout, update_hidden=update_hidden)
        return finish_segmentation(decoded.logits, decoded.hidden, selector)

    def init_queries(self, features, masks: torch.Tensor, object_valid: torch.Tensor | None = None):
        """XMem has no object queries: None."""
        return None

    def propagate_queries(self, features, prob_with_bg: torch.Tensor, previous: torch.Tensor | None,
                          object_valid: torch.Tensor | None = None, *, need_weights: bool = False):
        """XMem has no object queries: (None, None). See QMVOS.propagate_queries."""
        return None, None

    def forward(self, *args, **kwargs):
        raise RuntimeError("call the stages (encode_key, encode_value, read_memory, segment) directly; "
                           "for training, wrap the network in qmvos_lab.train.TrainWrapper")


class SegmentOutput(NamedTuple):
    """What `segment` returns for one frame.

    hidden:    B x N x Ch x h x w, the new sensory memory (None when not updated or absent)
    logits:    B x (N + 1) x H x W, aggregated logits, background first
    prob:      B x (N + 1) x H x W, aggregated probabilities, background first
    attention: QMVOS with need_weights: the QCIM weights (see qmvos.attention_maps); else None
    queries:   QMVOS: the queries after the QCIM (B x N x C), the dynamic filters; else None
    """

    hidden: torch.Tensor | None
    logits: torch.Tensor
    prob: torch.Tensor
    attention: dict | None = None
    queries: torch.Tensor | None = None

    @property
    def object_prob(self) -> torch.Tensor:
        """B x N x H x W: the probabilities of the objects (background dropped)."""
        return self.prob[:, 1:]


def finish_segmentation(object_logits: torch.Tensor, hidden: torch.Tensor | None, selector: torch.Tensor | None,
                        attention: dict | None = None, queries: torch.Tensor | None = None) -> SegmentOutput:
    """Per-object logits B x N x H x W -> sigmoid, selector, soft aggregation with the background."""
    prob = torch.sigmoid(object_logits)  # B x N x H x W
    if selector is not None:
        prob = prob * selector.view(*selector.shape[:2], 1, 1).to(prob.dtype)
    logits, prob = aggregate(prob, dim=1, return_logits=True)  # B x (N + 1) x H x W
    return SegmentOutput(hidden, logits, prob, attention, queries)
