"""A key-value memory store: the data structure under XMem's working and long-term memory
(XMem Sec. 3.3 and 3.5).

Keys (with their shrinkage and selection) are shared by all objects and stored once, flattened
over frames and positions: `key` is 1 x Ck x N. Values are per object and stored by *object group*:
objects that entered the video on the same frame form a group, and a group's values cover only
the memory elements added since it entered, i.e. the last `value_size(g)` keys:
`values[g]` is n_g x Cv x N_g with N_g <= N. For DAVIS-style videos there is a single group.

Usage (how much the top-k readout relied on each element) is counted per key, together with the
element's age ("life"), and drives consolidation and pruning.

The semantics follow the official XMem implementation (inference/kv_memory_store.py), including
its slicing of values by absolute key positions; the one extension is `remove_obsolete`, which
handles several object groups (the official code raises NotImplementedError there).
"""

from __future__ import annotations

import torch


class KeyValueStore:
    def __init__(self, count_usage: bool):
        self.count_usage = count_usage
        self.key: torch.Tensor | None = None  # 1 x Ck x N
        self.shrinkage: torch.Tensor | None = None  # 1 x 1 x N
        self.selection: torch.Tensor | None = None  # 1 x Ck x N
        self.values: list[torch.Tensor] = []  # per group: n_g x Cv x N_g
        self.groups: list[list[int]] = []  # per group: 0-based object indices, ascending
        self.use_count: torch.Tensor | None = None  # 1 x 1 x N
        self.life_count: torch.Tensor | None = None  # 1 x 1 x N

    # ---------------------------------------------------------------------------------- sizes
    @property
    def size(self) -> int:
        return 0 if self.key is None else self.key.shape[-1]

    @property
    def num_groups(self) -> int:
        return len(self.values)

    def engaged(self) -> bool:
        return self.key is not None

    def value_size(self, group: int) -> int:
        return self.values[group].shape[-1]

    # ---------------------------------------------------------------------------------- adding
    def add(self, key: torch.Tensor, value, shrinkage: torch.Tensor | None, selection: torch.Tensor | None,
            objects: list[int] | None = None) -> None:
        """Append elements.

        Working memory: `value` is num_objects x Cv x M for all objects known so far and `objects`
        their 1-based ids; objects not yet in a group form a new group.
        Long-term memory: `value` is a list with one tensor (or None) per existing/new group.
        """
        count = torch.zeros(key.shape[0], 1, key.shape[2], device=key.device, dtype=torch.float32)
        life = count + 1e-7  # as upstream, so that fresh elements have a finite usage
        self.key = key if self.key is None else torch.cat([self.key, key], -1)
        if shrinkage is not None:
            self.shrinkage = shrinkage if self.shrinkage is None else torch.cat([self.shrinkage, shrinkage], -1)
        if selection is not None:
            self.selection = selection if self.selection is None else torch.cat([self.selection, selection], -1)
        if self.count_usage:
            self.use_count = count if self.use_count is None else torch.cat([self.use_count, count], -1)
            self.life_count = life if self.life_count is None else torch.cat([self.life_count, life], -1)

        if objects is not None:
            remaining = [obj - 1 for obj in objects]
            for g, group in enumerate(self.groups):
                for obj in group:
                    remaining.remove(obj)
                self.values[g] = torch.cat([self.values[g], value[group]], -1)
            if remaining:
                if self.groups and min(remaining) <= max(max(g) for g in self.groups):
                    raise ValueError("objects must enter memory in ascending order of their index")
                self.values.append(value[remaining])
                self.groups.append(list(remaining))
        else:
            for g, group_value in enumerate(value):
                if group_value is None:
                    continue
                if g < self.num_groups:
                    self.values[g] = torch.cat([self.values[g], group_value], -1)
                else:
                    self.values.append(group_value)

    # ---------------------------------------------------------------------------------- usage
    def update_usage(self, usage: torch.Tensor) -> None:
        """Add the readout usage of every element (N values) and age every element by one."""
        if not self.count_usage:
            return
        self.use_count += usage.view_as(self.use_count)
        self.life_count += 1

    def usage(self) -> torch.Tensor:
        """Usage normalised by age: 1 x 1 x N."""
        if not self.count_usage:
            raise RuntimeError("this store does not count usage")
        return self.use_count / self.life_count

    # ---------------------------------------------------------------------------------- slicing
    def sliced(self, start: int, end: int):
        """(key, shrinkage, selection, usage) of elements start:end (end 0 = to the end)."""
        window = slice(start, None if end == 0 else end)

        def pick(x):
            return None if x is None else x[:, :, window]

        return pick(self.key), pick(self.shrinkage), pick(self.selection), self.usage()[:, :, window]

    def sieve_by_range(self, start: int, end: int, min_size: int) -> None:
        """Drop elements start:end (end 0 = to the end). Values of groups smaller than `min_size`
        are left untouched (they were not consolidated), as upstream."""
        def cut(x):
            if x is None:
                return None
            return x[:, :, :start] if end == 0 else torch.cat([x[:, :, :start], x[:, :, end:]], -1)

        self.key, self.shrinkage, self.selection = cut(self.key), cut(self.shrinkage), cut(self.selection)
        if self.count_usage:
            self.use_count, self.life_count = cut(self.use_count), cut(self.life_count)
        self.values = [cut(v) if v.shape[-1] >= min_size else v for v in self.values]

    def remove_obsolete(self, max_size: int) -> None:
        """Prune the least-used elements until at most `max_size` remain (ties may prune more).

        Each group's values cover the last N_g keys, so its survivors are the last N_g entries of
        the key survivors (the official code supports one group only).
        """
        if self.size <= max_size:  # nothing to prune (the official code fails on k = 0 here)
            return
        usage = self.usage().flatten()
        lowest, _ = torch.topk(usage, k=self.size - max_size, largest=False, sorted=True)
        survived = usage > lowest[-1]  # N
        self.key = self.key[:, :, survived]
        self.shrinkage = self.shrinkage[:, :, survived] if self.shrinkage is not None else None
        self.selection = self.selection[:, :, survived] if self.selection is not None else None
        self.values = [v[:, :, survived[-v.shape[-1]:]] for v in self.values]
        self.use_count = self.use_count[:, :, survived]
        self.life_count = self.life_count[:, :, survived]

    # ---------------------------------------------------------------------------------- objects
    def keep_object_rows(self, rows_per_group: list[list[int]]) -> None:
        """Keep only the given rows (objects) of each group's values; a group left with no rows is
        dropped. Used to delete objects: the memory manager passes the same rows to the working and
        the long-term store, so that their groups stay aligned."""
        kept = []
        for g, value in enumerate(self.values):
            rows = rows_per_group[g]
            if rows:
                kept.append(value[rows])
        self.values = kept
        self._drop_uncovered_elements()

    def _drop_uncovered_elements(self) -> None:
        """Drop the oldest elements that no group has values for any more (after the first group
        was deleted), so that group 0 again covers every element, as reading assumes."""
        if self.key is None:
            return
        covered = max((v.shape[-1] for v in self.values), default=0)
        if covered == self.size:
            return
        if covered == 0:
            self.key = self.shrinkage = self.selection = self.use_count = self.life_count = None
            return

        def last(x):
            return None if x is None else x[:, :, -covered:]

        self.key, self.shrinkage, self.selection = last(self.key), last(self.shrinkage), last(self.selection)
        self.use_count, self.life_count = last(self.use_count), last(self.life_count)
