"""XMem's memory manager (Sec. 3.3-3.5): working memory, long-term memory, and the consolidation that moves working memory into long-term prototypes.

* Reading (`match_memory`): anisotropic-L2 similarity of the query key to every long-term and
  working-memory key, top-k softmax, readout of each object's values. Objects of later groups
  only see the keys they have values for, so the softmax is taken group by group.
* Usage: every readout adds, to each memory element, the affinity it received; divided by the
  element's age it ranks candidates for consolidation and long-term elements for pruning.
* Consolidation (`compress`): when working memory holds T_max frames, keep its first frame and
  its newest T_min - 1 frames; among the others pick the P most-used elements as prototypes, and
  give each prototype the affinity-weighted average of the candidates' values and shrinkage
  ("memory potentiation"); append them to long-term memory, pruned to LT_max by usage.

Semantics follow the official implementation (inference/memory_manager.py). Deliberate
differences, none of which changes the output where the official code runs:
  - long-term usage is always counted (the official code counts it only when a formula on the
    video length predicts pruning, and crashes if pruning happens anyway);
  - the number of prototypes is capped by the number of candidates (the official topk fails on
    tiny frames);
  - pruning long-term memory works with several object groups (the official code raises).
"""

from __future__ import annotations

import torch

from ..config import InferenceConfig
from ..model.memory_read import get_similarity, softmax_affinity
from .memory_store import KeyValueStore


class MemoryManager:
    def __init__(self, config: InferenceConfig):
        self.config = config
        self.top_k = config.top_k
        self.enable_long_term = config.enable_long_term
        self.work_mem = KeyValueStore(count_usage=self.enable_long_term)
        self.long_mem = KeyValueStore(count_usage=True) if self.enable_long_term else None
        self.value_dim: int | None = None
        self.area: int | None = None  # h x w: memory elements per frame
        # bookkeeping for figures and traces (no effect on reading): the video frame of each
        # working-memory frame (its elements are area-sized blocks, oldest first), and how many
        # consolidations have happened
        self.work_frames: list[int] = []
        self.num_consolidations = 0

    # ------------------------------------------------------------------------------ reading
    def match_memory(self, query_key: torch.Tensor, selection: torch.Tensor | None,
                     return_affinity: bool = False):
        """query_key, selection: 1 x Ck x h x w -> readout N x Cv x h x w (all objects).

        With `return_affinity`, also return the affinities of each group (list of
        1 x M_g x hw tensors over [long-term, working] elements), for visualisation.
        """
        num_groups = self.work_mem.num_groups
        height, width = query_key.shape[-2:]
        query_key = query_key.flatten(start_dim=2)  # 1 x Ck x hw
        selection = selection.flatten(start_dim=2) if selection is not None else None
        top_k = self.top_k

        if self.enable_long_term and self.long_mem.engaged():
            long_size = self.long_mem.size
            mem_key = torch.cat([self.long_mem.key, self.work_mem.key], -1)  # 1 x Ck x (L + W)
            mem_shrinkage = torch.cat([self.long_mem.shrinkage, self.work_mem.shrinkage], -1)
            similarity = get_similarity(mem_key, mem_shrinkage, query_key, selection)  # 1 x (L + W) x hw
            long_sim, work_sim = similarity[:, :long_size], similarity[:, long_size:]
            # group 0 has values for every element: its usage is the usage
            affinity0, usage = softmax_affinity(
                torch.cat([long_sim[:, -self.long_mem.value_size(0):], work_sim], 1), top_k, return_usage=True)
            affinities = [affinity0]
            for g in range(1, num_groups):
                if g < self.long_mem.num_groups:
                    group_sim = torch.cat([long_sim[:, -self.long_mem.value_size(g):],
                                           work_sim[:, -self.work_mem.value_size(g):]], 1)
                else:
                    group_sim = work_sim[:, -self.work_mem.value_size(g):]
                affinities.append(softmax_affinity(group_sim, top_k))
            values = [torch.cat([self.long_mem.values[g], v], -1) if g < self.long_mem.num_groups else v
                      for g, v in enumerate(self.work_mem.values)]
            self.work_mem.update_usage(usage[:, long_size:].flatten())
            self.long_mem.update_usage(usage[:, :long_size].flatten())
        else:
            similarity = get_similarity(self.work_mem.key, self.work_mem.shrinkage, query_key, selection)
            if self.enable_long_term:
                affinity0, usage = softmax_affinity(similarity, top_k, return_usage=True)
                self.work_mem.update_usage(usage.flatten())
            else:
                affinity0 = softmax_affinity(similarity, top_k)
            affinities = [affinity0] + [softmax_affinity(similarity[:, -self.work_mem.value_size(g):], top_k)
                                        for g in range(1, num_groups)]
            values = self.work_mem.values

        # the affinity is shared by the objects of a group: n_g x Cv x M_g @ M_g x hw
        readout = torch.cat([value @ affinity for value, affinity in zip(values, affinities)], 0)  # N x Cv x hw
        readout = readout.view(readout.shape[0], self.value_dim, height, width)
        return (readout, affinities) if return_affinity else readout

    # ------------------------------------------------------------------------------ writing
    def add_memory(self, key: torch.Tensor, shrinkage: torch.Tensor, value: torch.Tensor,
                   objects: list[int], selection: torch.Tensor | None = None, frame_index: int = -1) -> None:
        """key: 1 x Ck x h x w; shrinkage: 1 x 1 x h x w; value: 1 x N x Cv x h x w for the objects
        `objects` (1-based, all known objects); selection is kept for long-term consolidation;
        `frame_index` (the video frame) is only recorded in `work_frames`."""
        self.work_frames.append(frame_index)
        if self.area is None:
            self.area = key.shape[-2] * key.shape[-1]
        key = key.flatten(start_dim=2)  # 1 x Ck x hw
        shrinkage = shrinkage.flatten(start_dim=2)  # 1 x 1 x hw
        value = value[0].flatten(start_dim=2)  # N x Cv x hw
        self.value_dim = value.shape[1]
        selection = selection.flatten(start_dim=2) if (selection is not None and self.enable_long_term) else None
        self.work_mem.add(key, value, shrinkage, selection, objects)

        if self.enable_long_term and self.work_mem.size >= self.config.max_mid_term_frames * self.area:
            capacity = self.config.max_long_term_elements - self.config.num_prototypes
            if self.long_mem.size >= capacity:
                self.long_mem.remove_obsolete(capacity)
            self.compress()

    def compress(self) -> None:
        """Consolidate the middle of working memory into long-term prototypes (XMem Sec. 3.5)."""
        area = self.area
        min_work = self.config.min_mid_term_frames * area
        start, end = area, area - min_work  # keep the first frame and the newest T_min - 1 frames
        window = slice(start, end if end != 0 else None)  # end 0 (T_min = 1) means "to the end"
        total = self.work_mem.size
        candidate_values = []
        for value in self.work_mem.values:
            size = value.shape[-1]
            # a group that entered late may be too young to have candidates
            candidate_values.append(value[:, :, window] if (size == total or size > min_work + area) else None)
        prototype_key, prototype_value, prototype_shrinkage = self.consolidate(
            *self.work_mem.sliced(start, end), candidate_values)
        self.work_mem.sieve_by_range(start, end, min_size=min_work + area)
        self.long_mem.add(prototype_key, prototype_value, prototype_shrinkage, selection=None, objects=None)
        kept = self.config.min_mid_term_frames - 1  # the first frame and the newest T_min - 1 stay
        self.work_frames = self.work_frames[:1] + (self.work_frames[-kept:] if kept else [])
        self.num_consolidations += 1

    def consolidate(self, key, shrinkage, selection, usage, candidate_values):
        """Pick the most-used candidates as prototypes and read their values from the candidates."""
        num_candidates = key.shape[-1]
        k = min(self.config.num_prototypes, num_candidates)
        _, top_indices = torch.topk(usage, k=k, dim=-1, sorted=True)
        prototype_indices = top_indices.flatten()
        # a prototype is valid for a group only if the group has a value at that position
        validity = [prototype_indices >= (num_candidates - v.shape[-1]) if v is not None else None
                    for v in candidate_values]
        prototype_key = key[:, :, prototype_indices]  # 1 x Ck x P
        prototype_selection = selection[:, :, prototype_indices] if selection is not None else None
        similarity = get_similarity(key, shrinkage, prototype_key, prototype_selection)  # 1 x M x P
        affinities = []
        for value, valid in zip(candidate_values, validity):
            if value is None:
                affinities.append(None)
                continue
            affinity = softmax_affinity(similarity[:, -value.shape[-1]:, valid])
            affinities.append(affinity if affinity.shape[-1] > 0 else None)
        prototype_values = [v @ a if a is not None else None for v, a in zip(candidate_values, affinities)]
        prototype_shrinkage = shrinkage @ affinities[0] if shrinkage is not None else None  # 1 x 1 x P
        return prototype_key, prototype_values, prototype_shrinkage

    # ------------------------------------------------------------------------------ objects
    def delete_objects(self, objects: list[int]) -> None:
        """Forget 1-based object indices everywhere; the others are renumbered in order."""
        gone = {obj - 1 for obj in objects}
        rows = [[i for i, obj in enumerate(group) if obj not in gone] for group in self.work_mem.groups]
        survivors = sorted(obj for group in self.work_mem.groups for obj in group if obj not in gone)
        renumber = {old: new for new, old in enumerate(survivors)}
        self.work_mem.keep_object_rows(rows)
        if self.long_mem is not None:
            self.long_mem.keep_object_rows(rows)
        self.work_mem.groups = [[renumber[o] for o in g if o not in gone] for g in self.work_mem.groups]
        self.work_mem.groups = [g for g in self.work_mem.groups if g]
        if not self.work_mem.engaged():  # every object is gone: start afresh
            self.area = None
        frames_left = 0 if self.area is None else self.work_mem.size // self.area
        self.work_frames = self.work_frames[len(self.work_frames) - frames_left:]
