"""A per-frame record of what happens inside inference, for notebooks and figures.

`InferenceCore(..., trace=True)` (or `VideoSegmenter(..., trace=True)`) fills one `FrameTrace` per
frame. Everything is detached and moved to the CPU; nothing is recorded when tracing is off, so
the fast path has no extra copies or host syncs. Objects are in internal order (1..N, the order
in which they appeared); tensors keep the batch axis of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def to_cpu(x):
    """Detach tensors (and dicts of tensors) onto the CPU as float32; None stays None."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: to_cpu(v) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu() if x.is_floating_point() else x.detach().cpu()
    return x


@dataclass
class GroupAffinity:
    """The top-k memory affinity of the traced query pixels for one object group (XMem Sec. 3.2).

    Elements are indexed over the group's memory: its `long_term` long-term elements first, then
    its `working` working-memory elements (the newest ones of working memory).
    indices, weights: P x k (P traced pixels), the k memory elements each pixel reads and their
        weights (each row sums to 1).
    """

    indices: torch.Tensor
    weights: torch.Tensor
    long_term: int
    working: int

    def dense(self) -> torch.Tensor:
        """P x (long_term + working): the full affinity matrix (zeros outside the top k)."""
        out = torch.zeros(self.indices.shape[0], self.long_term + self.working)
        return out.scatter_(1, self.indices.long(), self.weights)


@dataclass
class FrameTrace:
    """One frame. Shapes use h x w for the stride-16 grid of the padded frame, C for channels.

    key, shrinkage, selection: 1 x Ck x h x w, 1 x 1 x h x w, 1 x Ck x h x w (XMem Sec. 3.2)
    pixels:     the traced query pixels, P x 2 (row, column) on the h x w grid
    affinity:   per object group, the top-k affinity of those pixels (None on unsegmented frames)
    readout:    1 x N x Cv x h x w, the memory readout of every object
    hidden_before / hidden_after: 1 x N x Ch x h x w, the sensory memory entering and leaving the frame
    queries_sim: 1 x N x C, the queries this frame was segmented with (the SIM's output on the
                previous frame), with `sim_attention` 1 x heads x N x N that produced them
    queries_qcim: 1 x N x C after the QCIM (the dynamic filters)
    qcim_attention: {"self": 1 x N x heads x N, "cross": 1 x N x heads x N_obj x h x w}
    working_frames: the video frames in working memory after this frame (area-sized blocks)
    working_size, long_term_size: memory elements after this frame
    events:     memory_frame, deep_update, consolidation, segmented (bools) and objects_added
                (internal ids given on this frame for the first time)
    """

    index: int
    grid: tuple[int, int]
    key: torch.Tensor | None = None
    shrinkage: torch.Tensor | None = None
    selection: torch.Tensor | None = None
    pixels: torch.Tensor | None = None
    affinity: list[GroupAffinity] | None = None
    readout: torch.Tensor | None = None
    hidden_before: torch.Tensor | None = None
    hidden_after: torch.Tensor | None = None
    queries_sim: torch.Tensor | None = None
    sim_attention: torch.Tensor | None = None
    queries_qcim: torch.Tensor | None = None
    qcim_attention: dict | None = None
    working_frames: list[int] = field(default_factory=list)
    working_size: int = 0
    long_term_size: int = 0
    events: dict = field(default_factory=dict)


def grid_pixels(height: int, width: int, max_pixels: int) -> torch.Tensor:
    """Every pixel of an h x w grid when it has at most `max_pixels`, else a regular subgrid: P x 2."""
    stride = 1
    while ((height + stride - 1) // stride) * ((width + stride - 1) // stride) > max_pixels:
        stride += 1
    rows, cols = torch.meshgrid(torch.arange(0, height, stride), torch.arange(0, width, stride), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], 1)  # P x 2


def group_affinities(affinities: list[torch.Tensor], pixels: torch.Tensor, width: int, top_k: int,
                     long_sizes: list[int]) -> list[GroupAffinity]:
    """Dense per-group affinities (1 x M_g x hw) -> the top-k rows of the traced pixels."""
    flat = pixels[:, 0] * width + pixels[:, 1]  # P
    out = []
    for affinity, long_size in zip(affinities, long_sizes):
        columns = affinity[0][:, flat.to(affinity.device)].transpose(0, 1)  # P x M_g
        k = min(top_k, columns.shape[1])
        weights, indices = columns.topk(k, dim=1)  # P x k
        out.append(GroupAffinity(indices.cpu().int(), weights.float().cpu(), long_size,
                                 columns.shape[1] - long_size))
    return out
