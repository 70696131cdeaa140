"""QMVOS (Zhou et al., ICME 2024, arXiv 2403.11529): XMem with object queries.

Per frame, on top of XMem's stages:
  init_queries   the SIM (Sec. 3.2): one query per object from the fused F16+F8 map pooled under
                 the object's previous mask, then multi-object interaction;
  segment        XMem's decoder fusion, then the QCIM (Sec. 3.3): the queries attend to each other
                 and to the serialised readout of all objects; then each query acts as a dynamic
                 filter on its object's stride-4 decoder feature: logit_i = <q_i, g4_i> (no bias, no
                 scale), replacing XMem's prediction conv. The sensory update still sees the logit.

With the default switches the state dict is that of the released network (XMem's keys without
`decoder.pred.*`, plus `simple_upsample_block.*`, `input_proj.*`, `query_SelfAtt_FFN.*`,
`decoder.g16_proj.*`, `decoder.QCIM.*`), so its weights load strictly.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .aggregate import aggregate
from .blocks import GConv2D
from .decoder import Decoder
from .network import XMem
from .qcim import QueryContentInteraction, serialise_readout
from .sim import DownsampleFuse, QueryInteraction, UpsampleFuse, masked_average_pooling


class QueryDecoder(Decoder):
    """XMem's decoder with the QCIM and dynamic-filter logits instead of the prediction conv."""

    def __init__(self, value_dim: int, hidden_dim: int, query_dim: int, qcim_source: str,
                 feature_dims: tuple[int, int, int] = (1024, 512, 256),
                 decoder_dims: tuple[int, int, int] = (512, 256, 256)):
        super().__init__(value_dim, hidden_dim, feature_dims, decoder_dims, with_prediction=False)
        self.qcim_source = qcim_source
        if qcim_source == "readout":
            self.g16_proj = GConv2D(decoder_dims[0], query_dim, kernel_size=1)
        self.QCIM = QueryContentInteraction(query_dim, ffn_dim=4 * query_dim)
        # the refined queries end in a LayerNorm, so <q, g4> of fresh layers has a standard deviation
        # of about sqrt(C) |g4| and the sigmoid saturates: fresh networks (from scratch, or the new
        # modules of QMVOS initialised from XMem) start with zero queries, i.e. logit 0. Loaded weights
        # overwrite this.
        nn.init.zeros_(self.QCIM.norm3.weight)

    def forward(self, f16, f8, f4, hidden, memory_readout, queries, object_valid=None, h_out=True,
                image_content=None, need_weights=False):
        """queries: B x N x C; object_valid: B x N; image_content: B x C x h x w (the "f16" source).

        Returns (hidden, logits B x N x H x W, refined queries, attention weights or None).
        """
        g16, g8, g4 = self.decode(f16, f8, f4, hidden, memory_readout)
        if self.qcim_source == "readout":
            content = serialise_readout(self.g16_proj(g16))  # B x (N h w) x C
            area = g16.shape[-2] * g16.shape[-1]
            content_valid = None if object_valid is None else object_valid.repeat_interleave(area, dim=1)
        else:
            content = image_content.flatten(2).transpose(1, 2)  # B x hw x C
            content_valid = None
        queries, weights = self.QCIM(queries, content, object_valid, content_valid, need_weights)
        logits4 = torch.einsum("bnc,bnchw->bnhw", queries, g4)  # B x N x H4 x W4: the dynamic filters
        hidden = self.update_hidden(g16, g8, g4, logits4, hidden) if h_out else None
        logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # B x N x H x W
        if weights is not None:
            weights["cross_grid"] = g16.shape[-2:] if self.qcim_source == "readout" else image_content.shape[-2:]
        return hidden, logits, queries, weights


class QMVOS(XMem):
    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(queries=True)
        if not config.queries:
            raise ValueError("QMVOS needs ModelConfig(queries=True); use XMem for the baseline")
        super().__init__(config)
        c, dim = config, config.query_dim
        scales = c.sim_scales
        f16_dim, f8_dim, f4_dim = c.feature_dims
        if "f16" in scales or c.qcim_source == "f16":
            self.input_proj = nn.Conv2d(f16_dim, dim, kernel_size=1)  # F16 -> query space
        if scales == ("f8",):
            self.f8_proj = nn.Sequential(nn.Conv2d(f8_dim, dim, 1, bias=False), nn.GroupNorm(32, dim))
        if "f16" in scales and "f8" in scales:
            self.simple_upsample_block = UpsampleFuse(dim, f8_dim, dim, dim)
        if "f4" in scales:
            self.f4_fuse = DownsampleFuse(f4_dim, dim)
        if c.sim_interaction:
            self.query_SelfAtt_FFN = QueryInteraction(dim, ffn_dim=4 * dim)
        self.decoder = QueryDecoder(c.value_dim, c.hidden_dim, dim, c.qcim_source, c.feature_dims, c.decoder_dims)

    uses_queries = True

    # ------------------------------------------------------------------------------ SIM
    def sim_feature(self, f16: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        """The map that queries are pooled from (Sec. 3.2, scale-aware initialisation): B x C x h x w."""
        scales = self.config.sim_scales
        if scales == ("f16",):
            return self.input_proj(f16)  # stride 16
        if scales == ("f8",):
            return self.f8_proj(f8)  # stride 8
        feature = self.simple_upsample_block(self.input_proj(f16), f8)  # stride 8
        if "f4" in scales:
            feature = self.f4_fuse(feature, f4)
        return feature

    def init_queries(self, features, masks: torch.Tensor, object_valid: torch.Tensor | None = None,
                     need_weights: bool = False):
        """features: (f16, f8, f4) of one frame; masks: B x N x H x W (the previous frame's hard
        masks, or the given ones); object_valid: B x N. Returns queries B x N x C and the
        interaction's weights (B x heads x N x N) or None."""
        f16, f8, f4 = features
        queries = masked_average_pooling(self.sim_feature(f16, f8, f4), masks)  # B x N x C
        weights = None
        if self.config.sim_interaction:
            queries, weights = self.query_SelfAtt_FFN(queries, object_valid, need_weights)
        return queries, weights

    # ------------------------------------------------------------------------------ decoding
    def segment(self, features, memory_readout: torch.Tensor, hidden: torch.Tensor | None,
                queries: torch.Tensor | None = None, object_valid: torch.Tensor | None = None,
                selector: torch.Tensor | None = None, h_out: bool = True, strip_bg: bool = True,
                need_weights: bool = False):
        """As XMem.segment, with the queries (B x N x C). Returns (hidden, logits, prob) and, with
        `need_weights`, a 4th item: the QCIM attention (see `attention_maps`)."""
        if queries is None:
            raise ValueError("QMVOS.segment needs the object queries (from init_queries)")
        f16, f8, f4 = features
        image_content = self.input_proj(f16) if self.config.qcim_source == "f16" else None
        hidden, logits, _, weights = self.decoder(f16, f8, f4, hidden, memory_readout, queries, object_valid,
                                                  h_out, image_content, need_weights)
        prob = torch.sigmoid(logits)  # B x N x H x W
        if selector is not None:
            prob = prob * selector
        logits, prob = aggregate(prob, dim=1, return_logits=True)
        if strip_bg:
            prob = prob[:, 1:]
        if need_weights:
            return hidden, logits, prob, attention_maps(weights, memory_readout.shape[1])
        return hidden, logits, prob

    def forward(self, stage: str, *args, **kwargs):
        if stage == "init_queries":
            return self.init_queries(*args, **kwargs)
        return super().forward(stage, *args, **kwargs)


def attention_maps(weights: dict, num_objects: int) -> dict:
    """Reshape the QCIM weights for visualisation.

    "self":  B x N_query x heads x N_query
    "cross": B x N_query x heads x N_obj x H x W (the readout grid of each object; N_obj = 1 for
             the "f16" source, which is one image feature for all objects)
    """
    cross = weights["cross"]  # B x heads x N x S
    height, width = weights["cross_grid"]
    batch, heads, num_queries, _ = cross.shape
    cross = cross.view(batch, heads, num_queries, -1, height, width).transpose(1, 2)
    return {"self": weights["self"].transpose(1, 2), "cross": cross}
