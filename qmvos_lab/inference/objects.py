"""What inference carries per tracked object from frame to frame, besides the memory bank: the
sensory memory (XMem Sec. 3.4, a GRU-like hidden state per object) and, for QMVOS, the object
queries (QMVOS Sec. 3.2). One object owns both, so that adding and deleting objects keeps them
aligned with each other and with the memory groups."""

from __future__ import annotations

import torch


class ObjectState:
    def __init__(self, hidden_dim: int):
        self.hidden_dim = hidden_dim
        self.hidden: torch.Tensor | None = None  # 1 x N x Ch x h x w: the sensory memory
        self.queries: torch.Tensor | None = None  # 1 x N x C: QMVOS's queries for the next frame

    @property
    def num_objects(self) -> int:
        return 0 if self.hidden is None else self.hidden.shape[1]

    def add_objects(self, num_objects: int, like: torch.Tensor) -> None:
        """Zero sensory memory for objects beyond those known (up to `num_objects` in all), on the
        grid, device and dtype of `like` (a 1 x C x h x w key). New objects' queries come from the
        SIM when the frame is done (`set_queries`)."""
        height, width = like.shape[-2:]
        have = self.num_objects
        if num_objects > have:
            fresh = torch.zeros(1, num_objects - have, self.hidden_dim, height, width,
                                device=like.device, dtype=like.dtype)  # 1 x n x Ch x h x w
            self.hidden = fresh if self.hidden is None else torch.cat([self.hidden, fresh], 1)

    def set_hidden(self, hidden: torch.Tensor | None) -> None:
        self.hidden = hidden

    def set_queries(self, queries: torch.Tensor | None) -> None:
        self.queries = queries

    def delete(self, objects: list[int]) -> None:
        """Forget 1-based object indices; the others keep their order."""
        gone = {obj - 1 for obj in objects}
        if self.hidden is not None:
            self.hidden = self.hidden[:, [i for i in range(self.hidden.shape[1]) if i not in gone]]
        if self.queries is not None:
            self.queries = self.queries[:, [i for i in range(self.queries.shape[1]) if i not in gone]]
