"""The per-frame inference step of XMem (Sec. 3.1 and Fig. 2), with QMVOS's queries: encode the
frame's key, read the memory, segment, merge a given mask, carry the queries on, and (on memory
frames) encode the value and store it.

`InferenceCore` works on prepared tensors and internal object indices 1..N; `VideoSegmenter`
(video.py) wraps it with image/label I/O, resizing and label-id mapping. Semantics follow the
official `InferenceCore.step`; the network's own rules (`segment`, `propagate_queries`) make the
same code serve XMem and QMVOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import InferenceConfig
from ..model import XMem
from ..model.aggregate import aggregate
from .memory_manager import MemoryManager
from .objects import ObjectState
from .preprocess import pad_to_multiple, unpad
from .trace import FrameTrace, grid_pixels, group_affinities, to_cpu


@dataclass
class FramePlan:
    """What a frame does, decided before any computation (as upstream)."""

    memory_frame: bool  # store this frame's key and value (every mem_every frames, and with a mask)
    segment: bool  # predict (not frame 0, nor a frame whose mask defines every object)
    deep_update: bool  # refresh the sensory memory through the value encoder
    normal_update: bool  # take the decoder's sensory update (not on deep-update frames when synchronised)


class InferenceCore:
    """network: an XMem or QMVOS network in eval mode.
    record_attention: keep the QCIM attention of the last segmented frame in `last_attention`.
    trace: record a `FrameTrace` of every frame in `last_trace` (see trace.py); `trace_pixels` is
        the most query pixels whose memory affinity is kept (all of them on small frames).
    """

    def __init__(self, network: XMem, config: InferenceConfig | None = None, record_attention: bool = False,
                 trace: bool = False, trace_pixels: int = 1024):
        self.network = network
        self.config = config or InferenceConfig()
        self.record_attention = record_attention or trace
        self.trace = trace
        self.trace_pixels = trace_pixels
        self.clear_memory()

    def clear_memory(self) -> None:
        self.frame_index = -1
        self.last_memory_index = 0
        self.last_deep_update_index = -self.config.deep_update_every
        self.memory = MemoryManager(self.config)
        self.objects = ObjectState(self.network.hidden_dim)
        self.all_labels: list[int] = []  # internal object indices 1..N
        self.last_attention: dict | None = None
        self.last_trace: FrameTrace | None = None
        self._sim_attention = None  # the SIM weights behind the current queries (traced only)
        self._consolidations_seen = 0  # consolidations before the current frame (traced only)

    @property
    def num_objects(self) -> int:
        return len(self.all_labels)

    @property
    def queries(self) -> torch.Tensor | None:
        """QMVOS: the queries for the next frame, 1 x N x C (None for XMem)."""
        return self.objects.queries

    def set_all_labels(self, labels: list[int]) -> None:
        self.all_labels = list(labels)

    # ------------------------------------------------------------------------------ the step
    def plan(self, has_mask: bool, valid_labels: list[int] | None, end: bool) -> FramePlan:
        config, t = self.config, self.frame_index
        deep_sync = config.deep_update_every < 0
        memory_frame = (t - self.last_memory_index >= config.mem_every or has_mask) and not end
        segment = t > 0 and (valid_labels is None or len(self.all_labels) != len(valid_labels))
        deep_update = ((deep_sync and memory_frame) or
                       (not deep_sync and t - self.last_deep_update_index >= config.deep_update_every)) and not end
        normal_update = (not deep_sync or not deep_update) and not end
        return FramePlan(memory_frame, segment, deep_update, normal_update)

    @torch.inference_mode()
    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None,
             valid_labels: list[int] | None = None, end: bool = False) -> torch.Tensor:
        """Process one frame.

        image: 3 x H x W, normalised. mask: N x H x W (one channel per known object, N =
        len(all_labels)) or None. valid_labels: the objects that `mask` defines; the others keep
        their prediction outside the mask's foreground. end: the last frame (nothing is stored).
        Returns probabilities (N + 1) x H x W, background first.
        """
        self.frame_index += 1
        image, pad = pad_to_multiple(image, 16)
        image = image.unsqueeze(0)  # 1 x 3 x H' x W'
        plan = self.plan(mask is not None, valid_labels, end)
        trace = FrameTrace(self.frame_index, tuple(image.shape[-2:])) if self.trace else None
        known_before = self.objects.num_objects

        key, shrinkage, selection, f16, f8, f4 = self.network.encode_key(
            image, need_shrinkage=plan.memory_frame or self.trace,
            need_selection=self.config.enable_long_term or plan.segment or self.trace)
        features = (f16, f8, f4)
        if trace is not None:
            trace.grid = tuple(key.shape[-2:])
            trace.key, trace.shrinkage, trace.selection = to_cpu(key), to_cpu(shrinkage), to_cpu(selection)
            trace.hidden_before = to_cpu(self.objects.hidden)
            trace.queries_sim, trace.sim_attention = to_cpu(self.objects.queries), self._sim_attention

        prob_with_bg = self.segment(key, selection, features, plan, trace) if plan.segment else None
        if mask is not None:
            prob_with_bg = self.merge_given_mask(mask, prob_with_bg, valid_labels, image.dtype)
            self.objects.add_objects(len(self.all_labels), key)
        if not end:  # the queries for the next frame (QMVOS; XMem has none)
            queries, sim_weights = self.network.propagate_queries(features, prob_with_bg.unsqueeze(0),
                                                                  self.objects.queries, need_weights=self.trace)
            self.objects.set_queries(queries)
            self._sim_attention = to_cpu(sim_weights) if self.trace else None
        if plan.memory_frame:
            self.memorise(image, key, shrinkage, selection, f16, prob_with_bg, plan)

        if trace is not None:
            self.finish_trace(trace, plan, known_before)
        return unpad(prob_with_bg, pad)

    def segment(self, key, selection, features, plan: FramePlan, trace: FrameTrace | None) -> torch.Tensor:
        """Read the memory and decode: (N + 1) x H x W probabilities, background first."""
        need_affinity = trace is not None
        read = self.memory.match_memory(key, selection, return_affinity=need_affinity)
        readout, affinities = read if need_affinity else (read, None)
        readout = readout.unsqueeze(0)  # 1 x N x Cv x h x w
        out = self.network.segment(features, readout, self.objects.hidden, queries=self.objects.queries,
                                   update_hidden=plan.normal_update, need_weights=self.record_attention)
        self.last_attention = out.attention
        if plan.normal_update:
            self.objects.set_hidden(out.hidden)
        if trace is not None:
            height, width = key.shape[-2:]
            trace.pixels = grid_pixels(height, width, self.trace_pixels)
            trace.affinity = group_affinities(affinities, trace.pixels, width, self.config.top_k,
                                              self.long_term_sizes())
            trace.readout = to_cpu(readout)
            trace.queries_qcim, trace.qcim_attention = to_cpu(out.queries), to_cpu(out.attention)
        return out.prob[0]  # (N + 1) x H' x W'

    def merge_given_mask(self, mask: torch.Tensor, prob_with_bg: torch.Tensor | None,
                         valid_labels: list[int] | None, dtype: torch.dtype) -> torch.Tensor:
        """The given mask wins where it is foreground; objects it does not define keep their
        prediction elsewhere. Returns (N + 1) x H x W probabilities."""
        mask, _ = pad_to_multiple(mask, 16)
        if prob_with_bg is None:
            return aggregate(mask.to(dtype), dim=0)
        prob_no_bg = prob_with_bg[1:].clone()  # N x H x W
        mask = mask.to(prob_no_bg.dtype).clone()
        prob_no_bg[:, mask.sum(0) > 0.5] = 0
        kept = [i for i in range(prob_no_bg.shape[0]) if (i + 1) not in (valid_labels or [])]
        mask[kept] = prob_no_bg[kept]
        return aggregate(mask, dim=0)

    def memorise(self, image, key, shrinkage, selection, f16, prob_with_bg: torch.Tensor, plan: FramePlan) -> None:
        """Encode this frame's value from its probabilities and add it to working memory; on
        deep-update frames the value encoder also refreshes the sensory memory."""
        value, hidden = self.network.encode_value(image, f16, self.objects.hidden, prob_with_bg[1:].unsqueeze(0),
                                                  deep_update=plan.deep_update)
        self.memory.add_memory(key, shrinkage, value, self.all_labels,
                               selection=selection if self.config.enable_long_term else None,
                               frame_index=self.frame_index)
        self.last_memory_index = self.frame_index
        if plan.deep_update:
            self.objects.set_hidden(hidden)
            self.last_deep_update_index = self.frame_index

    # ------------------------------------------------------------------------------ tracing
    def long_term_sizes(self) -> list[int]:
        """Per object group, how many long-term elements it reads (0 before consolidation)."""
        long_mem = self.memory.long_mem
        engaged = long_mem is not None and long_mem.engaged()
        return [long_mem.value_size(g) if engaged and g < long_mem.num_groups else 0
                for g in range(self.memory.work_mem.num_groups)]

    def finish_trace(self, trace: FrameTrace, plan: FramePlan, known_before: int) -> None:
        memory = self.memory
        trace.hidden_after = to_cpu(self.objects.hidden)
        trace.working_frames = list(memory.work_frames)
        trace.working_size = memory.work_mem.size
        trace.long_term_size = memory.long_mem.size if memory.long_mem is not None else 0
        trace.events = {"segmented": plan.segment, "memory_frame": plan.memory_frame,
                        "deep_update": plan.memory_frame and plan.deep_update,
                        "consolidation": memory.num_consolidations > self._consolidations_seen,
                        "objects_added": list(range(known_before + 1, self.objects.num_objects + 1))}
        self._consolidations_seen = memory.num_consolidations
        self.last_trace = trace

    # ------------------------------------------------------------------------------ objects
    def delete_objects(self, labels: list[int]) -> None:
        """Forget internal objects (1-based); the remaining ones are renumbered 1..N in order."""
        self.memory.delete_objects(labels)
        self.objects.delete(labels)
        self.all_labels = list(range(1, len(self.all_labels) - len(set(labels)) + 1))
