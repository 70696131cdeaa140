"""QMVOS (Zhou et al., ICME 2024, arXiv 2403.11529): XMem with object queries.

Per frame, on top of XMem's stages:
  sim / init_queries / propagate_queries
                 the SIM (QMVOS Sec. 3.2): one query per object from the fused F16+F8 map
                 (QMVOS Eq. 1) pooled under the object's mask, then multi-object interaction (QMVOS Eq. 2);
                 `propagate_queries` is the frame-to-frame rule (Table 3e) that inference and
                 training both call: frame t's features pooled under frame t's predicted mask give
                 the queries used on frame t+1;
  segment        XMem's decoder fusion, then the QCIM (QMVOS Sec. 3.3, Eq. 3-4): the queries attend
                 to each other and to the serialised readout of all objects; then each query acts as
                 a dynamic filter on its object's stride-4 decoder feature: logit_i = <q_i, g4_i>
                 (no bias, no scale; `dynamic_filter_logits`), replacing XMem's prediction conv.
                 The sensory update still sees the logit.

With the default switches the state dict is that of the released network (XMem's keys without
`decoder.pred.*`, plus `simple_upsample_block.*`, `input_proj.*`, `query_SelfAtt_FFN.*`,
`decoder.g16_proj.*`, `decoder.QCIM.*`), so its weights load strictly.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .aggregate import hard_masks
from .decoder import QueryDecoder
from .network import SegmentOutput, XMem, finish_segmentation
from .sim import DownsampleFuse, QueryInteraction, UpsampleFuse, masked_average_pooling, scale_fusion


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
        self.decoder = QueryDecoder(c.value_dim, c.hidden_dim, dim, c.qcim_source, c.feature_dims, c.decoder_dims,
                                    c.qcim_identity)

    uses_queries = True

    # ------------------------------------------------------------------------------ SIM
    def sim_feature(self, f16: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        """The map that queries are pooled from (QMVOS Sec. 3.2, scale-aware initialisation; the
        scale fusion of QMVOS Eq. 1 for the default F16+F8): B x C x h x w."""
        scales = self.config.sim_scales
        if scales == ("f16",):
            return self.input_proj(f16)  # stride 16
        if scales == ("f8",):
            return self.f8_proj(f8)  # stride 8
        feature = scale_fusion(f16, f8, self.input_proj, self.simple_upsample_block)  # stride 8 (QMVOS Eq. 1)
        if "f4" in scales:
            feature = self.f4_fuse(feature, f4)
        return feature

    def sim(self, features, masks: torch.Tensor, object_valid: torch.Tensor | None = None,
            need_weights: bool = False):
        """The SIM (QMVOS Sec. 3.2). features: (f16, f8, f4) of one frame; masks: B x N x H x W (hard
        masks: the previous frame's prediction, or the given ones); object_valid: B x N (False =
        a padded object of a training clip). Returns queries B x N x C and the interaction's
        self-attention weights B x heads x N x N (None unless `need_weights`)."""
        return self.sim_on_feature(self.sim_feature(*features), masks, object_valid, need_weights)

    def sim_on_feature(self, feature: torch.Tensor, masks: torch.Tensor, object_valid: torch.Tensor | None = None,
                       need_weights: bool = False):
        """The SIM given its fused map (`sim_feature`, B x C x h x w): masked average pooling (the
        prose after QMVOS Eq. 1), then the multi-object interaction (QMVOS Eq. 2)."""
        queries = masked_average_pooling(feature, masks)  # B x N x C
        weights = None
        if self.config.sim_interaction:  # QMVOS Eq. 2 (Table 3c switches it off)
            queries, weights = self.query_SelfAtt_FFN(queries, object_valid, need_weights)
        return queries, weights

    def init_queries(self, features, masks: torch.Tensor, object_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Queries B x N x C from hard masks B x N x H x W: the SIM without its weights."""
        return self.sim(features, masks, object_valid)[0]

    def propagate_queries(self, features, prob_with_bg: torch.Tensor, previous: torch.Tensor | None,
                          object_valid: torch.Tensor | None = None, *, need_weights: bool = False):
        """The queries for the next frame (QMVOS Sec. 3.2 and Table 3e), one rule for inference
        and training, as released: the SIM pools this frame's features under this frame's hard
        masks (the argmax of `prob_with_bg`, B x (N + 1) x H x W, background first).

        With query_propagation="first", objects that already have a query (`previous`, B x M x C,
        M <= N) keep it, and only objects new on this frame take the SIM's. Returns the queries
        B x N x C and the SIM self-attention weights (B x heads x N x N, or None).
        """
        feature = self.sim_feature(*features)  # B x C x h x w
        # The pooling samples the hard masks on the feature's grid (nearest). Sampling the
        # probabilities first and taking the per-pixel winner after gives the same masks, pixel for
        # pixel, with 64 (stride 8) or 256 (stride 16) times fewer pixels to compare.
        on_grid = F.interpolate(prob_with_bg, size=feature.shape[-2:], mode="nearest")  # B x (N+1) x h x w
        queries, weights = self.sim_on_feature(feature, hard_masks(on_grid), object_valid, need_weights)
        if self.config.query_propagation == "first" and previous is not None:
            queries = torch.cat([previous, queries[:, previous.shape[1]:]], dim=1)  # known objects keep theirs
        return queries, weights

    # ------------------------------------------------------------------------------ decoding
    def segment(self, features, readout: torch.Tensor, hidden: torch.Tensor | None, *,
                queries: torch.Tensor | None = None, selector: torch.Tensor | None = None,
                object_valid: torch.Tensor | None = None, update_hidden: bool = True,
                need_weights: bool = False) -> SegmentOutput:
        """As XMem.segment, with the object queries (B x N x C, from the SIM) and the QCIM
        (QMVOS Eq. 3-4), then the queries as dynamic filters (QMVOS Sec. 3.3, last paragraph).

        object_valid: B x N (False = a padded object; its readout is not attended to).
        need_weights: return the QCIM attention in `.attention` (see `attention_maps`).
        """
        if queries is None:
            raise ValueError("QMVOS.segment needs the object queries (init_queries / propagate_queries)")
        f16, f8, f4 = features
        image_content = self.input_proj(f16) if self.config.qcim_source == "f16" else None
        decoded = self.decoder(f16, f8, f4, hidden, readout, queries=queries, object_valid=object_valid,
                               image_content=image_content, update_hidden=update_hidden, need_weights=need_weights)
        attention = attention_maps(decoded.weights, readout.shape[1]) if need_weights else None
        return finish_segmentation(decoded.logits, decoded.hidden, selector, attention, decoded.queries)


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
