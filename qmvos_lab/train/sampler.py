"""The training sampler: which items each rank draws in each epoch, and at what training progress.

The permutation is fixed by (seed, epoch), so a resumed run draws exactly the items it would have
drawn, and ranks split it without overlap (under DDP every rank builds its own sampler).
"""

from __future__ import annotations

import torch


class EpochSampler(torch.utils.data.Sampler):
    """Items of one epoch: a permutation fixed by (seed, epoch), split across ranks, from `start`.

    Each item comes as (index, progress): the training progress of the iteration that will use it,
    so that the data curriculum does not depend on how far workers prefetch.
    """

    def __init__(self, length: int, seed: int, batch_size: int, iterations: int, rank: int = 0, world: int = 1):
        self.length, self.seed, self.rank, self.world = length, seed, rank, world
        self.batch_size, self.iterations = batch_size, iterations
        self.epoch, self.start, self.first_iteration = 0, 0, 0

    def set_position(self, epoch: int, start: int, first_iteration: int) -> None:
        self.epoch, self.start, self.first_iteration = epoch, start, first_iteration

    def indices(self) -> list[int]:
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        return order[self.rank::self.world].tolist()

    def __iter__(self):
        for k, index in enumerate(self.indices()[self.start:]):
            yield index, (self.first_iteration + k // self.batch_size) / self.iterations

    def __len__(self) -> int:
        return len(self.indices()) - self.start
