"""Numbers behind the attention explorer: where each QMVOS query looks (QCIM cross-attention,
QMVOS Sec. 3.3, Eq. 4), measured against the ground truth, per frame. Pure functions of a trace.

For the query of object q, on one frame, take its cross-attention A (No x h x w: the weights it
gives every position of every object's readout; they sum to 1 over all of them, for one head or
averaged over heads). Then
  own-object mass:   sum of A over object q's readout (QMVOS claims a query also reads the others);
  in-mask ratio:     of the attention on object q's readout, the share that falls inside q's ground
                     truth (each grid cell counts with the fraction of its 16 x 16 pixels inside);
  entropy:           -sum A log A over all No x h x w positions, in nats (log(No h w) = uniform);
  centroid distance: pixels between the attention-weighted centre of the grid cells of q's
                     readout and the centre of q's ground-truth mask.
When the queries attend to image features instead of per-object readouts (the qcim-f16 ablation,
No = 1), own-object mass is undefined (NaN) and the other three use that one map.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..inference.preprocess import resized_shape
from .common import to_numpy

STRIDE = 16  # the readout grid's stride over the (resized, padded) frame
METRICS = ("own-object mass", "in-mask ratio", "entropy", "centroid distance")


def interpolation_matrix(source: int, target: int) -> np.ndarray:
    """target x source: bilinear resampling of one axis (align_corners=False, as F.interpolate)."""
    eye = torch.eye(source).view(source, 1, source, 1)  # source one-hot images of source x 1
    return F.interpolate(eye, size=(target, 1), mode="bilinear", align_corners=False)[:, 0, :, 0].T.numpy()


class GridGeometry:
    """Where the h x w readout grid of a trace lies on the H x W frame: the frame was resized to
    `resized_shape(H, W, size)` (size -1: kept) and padded, centred, to multiples of 16.

    `upsample` is precomputed as two matrices (rows, columns), so that bringing a map onto the
    frame costs two small matrix products: rows @ map @ columns.T equals F.interpolate (bilinear)
    of the map to the padded frame, cropped, and resized back to the frame.
    """

    def __init__(self, frame_shape: tuple[int, int], grid: tuple[int, int], size: int = -1):
        self.frame_shape, self.grid = tuple(frame_shape), tuple(grid)
        self.net_shape = resized_shape(*self.frame_shape, size)
        padded = (grid[0] * STRIDE, grid[1] * STRIDE)
        self.pad = []  # (before, after) per axis, as inference/preprocess.pad_to_multiple
        for net, full in zip(self.net_shape, padded):
            extra = full - net
            if not 0 <= extra < STRIDE:
                raise UserError(f"GridGeometry: a {grid[0]} x {grid[1]} grid does not cover a {self.net_shape[0]} x "
                                f"{self.net_shape[1]} frame; pass the `size` the video was segmented with")
            self.pad.append((extra // 2, extra - extra // 2))
        self.rows, self.columns = (  # H x h, W x w
            self._axis(n, net, full, before, frame)
            for n, net, full, (before, _), frame in zip(grid, self.net_shape, padded, self.pad, self.frame_shape))

    @staticmethod
    def _axis(n: int, net: int, full: int, before: int, frame: int) -> np.ndarray:
        """frame x n: grid -> padded net frame, the padding cropped, net frame -> frame."""
        matrix = interpolation_matrix(n, full)[before:before + net]  # net x n
        if net != frame:
            matrix = interpolation_matrix(net, frame) @ matrix  # frame x n
        return matrix.astype(np.float32)

    def upsample(self, maps) -> np.ndarray:
        """... x h x w -> ... x H x W float32."""
        m = to_numpy(maps, np.float32)
        return np.einsum("Hh,...hw,Ww->...HW", self.rows, m, self.columns, optimize=True).astype(np.float32)

    def coverage(self, mask) -> np.ndarray:
        """H x W bool -> h x w: the fraction of each grid cell's pixels inside the mask, as the
        network sees it (resized with nearest neighbour, padding outside)."""
        m = torch.as_tensor(to_numpy(mask).astype(np.float32))
        if tuple(m.shape) != self.frame_shape:
            raise UserError(f"GridGeometry.coverage: the mask is {tuple(m.shape)}, the frame {self.frame_shape}")
        if self.net_shape != self.frame_shape:
            m = F.interpolate(m[None, None], size=self.net_shape, mode="nearest")[0, 0]
        (top, bottom), (left, right) = self.pad
        m = F.pad(m, (left, right, top, bottom))  # padded frame
        h, w = self.grid
        return m.view(h, STRIDE, w, STRIDE).mean(dim=(1, 3)).numpy()  # h x w

    def cell_centres(self) -> np.ndarray:
        """h x w x 2: the centre (row, column) of each grid cell, in frame pixel coordinates."""
        axes = []
        for n, (before, _), net, frame in zip(self.grid, self.pad, self.net_shape, self.frame_shape):
            centre = (np.arange(n) + 0.5) * STRIDE - 0.5 - before  # in net-frame pixels
            axes.append((centre + 0.5) * frame / net - 0.5)
        rows, cols = np.meshgrid(*axes, indexing="ij")
        return np.stack([rows, cols], -1)


def mask_centroid(mask) -> np.ndarray | None:
    """(row, column) mean of the mask's pixels, or None for an empty mask."""
    ys, xs = np.nonzero(to_numpy(mask))
    return None if len(ys) == 0 else np.array([ys.mean(), xs.mean()])


def select_head(weights: np.ndarray, head: int | str, axis: int) -> np.ndarray:
    """One head of `weights` along `axis`, or their mean ("mean"; also when the layer has fewer heads)."""
    if head == "mean" or int(head) >= weights.shape[axis]:
        return weights.mean(axis)
    return np.take(weights, int(head), axis=axis)


def head_attention(cross, query: int, head: int | str = "mean") -> np.ndarray:
    """cross: (1 x) Nq x heads x No x h x w -> No x h x w, one head or the mean over heads
    (`select_head`; a head the layer lacks is an error here)."""
    c = to_numpy(cross, np.float32)
    c = c[0] if c.ndim == 6 else c  # Nq x heads x No x h x w
    if head != "mean" and not 0 <= int(head) < c.shape[1]:
        raise UserError(f"head_attention: head {head} is not one of the {c.shape[1]} heads; "
                        f"pick 0..{c.shape[1] - 1} or 'mean'")
    return select_head(c[query], head, 0)  # No x h x w


def query_metrics(attention, own: int | None, coverage=None, centres=None, centroid=None) -> dict[str, float]:
    """The four metrics (module docstring) of one query's attention `attention` (No x h x w, sums
    to 1). own: the index of its object's readout (None: the source is not per object, use map 0);
    coverage: h x w share of each cell inside its ground truth; centres: h x w x 2 cell centres;
    centroid: its ground-truth centre (row, column). Missing ground truth gives NaN."""
    a = to_numpy(attention, np.float64)
    source = a[0 if own is None else own]  # h x w
    mass = float(source.sum())
    p = a[a > 0]
    out = {"own-object mass": math.nan if own is None else mass,
           "entropy": float(-(p * np.log(p)).sum()),
           "in-mask ratio": math.nan, "centroid distance": math.nan}
    if coverage is not None and mass > 0 and to_numpy(coverage).sum() > 0:
        out["in-mask ratio"] = float((source * to_numpy(coverage, np.float64)).sum() / mass)
    if centres is not None and centroid is not None and mass > 0:
        centre = (source[..., None] * to_numpy(centres, np.float64)).sum((0, 1)) / mass  # 2
        out["centroid distance"] = float(np.linalg.norm(centre - np.asarray(centroid, np.float64)))
    return out


def attention_metrics(traces: Sequence, ground_truth, object_ids: Sequence[Sequence[int]], size: int = -1,
                      head: int | str = "mean", per_object: bool | None = None) -> pd.DataFrame:
    """A tidy table (frame, query, metric, value) over a video: `traces` are its FrameTraces,
    `ground_truth` T x H x W label maps, `object_ids[t]` the original ids of frame t's objects in
    internal order (`FrameResult.internal_ids`); `query` is the id of the query's object. Frames
    without QCIM attention (given masks, XMem) have no rows. per_object: whether the queries attend
    to one readout per object (False for qcim-f16; None: when there are as many maps as queries)."""
    labels = to_numpy(ground_truth)
    rows = []
    geometry = None
    for trace, ids in zip(traces, object_ids):
        attention = getattr(trace, "qcim_attention", None)
        if attention is None:
            continue
        cross = to_numpy(attention["cross"], np.float32)[0]  # Nq x heads x No x h x w
        if geometry is None or geometry.grid != tuple(cross.shape[-2:]):
            geometry = GridGeometry(labels.shape[1:], cross.shape[-2:], size)
            centres = geometry.cell_centres()
        readouts = cross.shape[2] == cross.shape[0] if per_object is None else per_object
        for q, object_id in enumerate(ids[: cross.shape[0]]):
            mask = labels[trace.index] == object_id
            values = query_metrics(head_attention(cross, q, head), q if readouts else None,
                                   geometry.coverage(mask), centres, mask_centroid(mask))
            rows.extend((trace.index, int(object_id), name, values[name]) for name in METRICS)
    return pd.DataFrame(rows, columns=["frame", "query", "metric", "value"])
