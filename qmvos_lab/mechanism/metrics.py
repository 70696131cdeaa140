"""Is QMVOS's attention object-specific? Per-frame numbers of the QCIM cross-attention
(QMVOS Sec. 3.3, QMVOS Eq. 4) and of the query-to-query self-attention of the SIM (QMVOS Eq. 2) and of
the QCIM (the SA of QMVOS Eq. 3), each set against what uniform attention would give.

QCIM cross-attention of the query of object q (one head, or the mean over heads), A_q: No x h x w,
summing to 1 over every position of every object's readout (the per-query numbers of
`viz.explorer_metrics.query_metrics` are reused: own-object mass, in-mask ratio, entropy, centroid):
    own-object mass / share   own-object mass x No (1: the uniform share 1/No);
    preference                A_q's mass on readout q minus the mean mass the OTHER queries put on
                              readout q (0: object-blind; when every query's map is the same, the
                              own-object mass averages to exactly 1/N wherever they look);
    query-map cosine          mean cosine of A_q with every other query's map (1: they look at the
                              same places);
    in-mask ratio / share     the in-mask ratio over the mask's share of the grid (1: uniform);
    entropy / uniform         entropy over log(No h w) (1: uniform);
    spatial preference        where A_q looks in space, over all readouts (S_q = sum over objects of
                              A_q, h x w): r_pq = S_p's mass inside object q's mask over that mask's
                              share of the grid; query q's r_qq minus the mean r_pq of the OTHER
                              queries p (0: uniform, and 0 on average over queries whose maps are
                              the same; > 0: query q looks at its own object more than the others
                              do). Defined for qcim-f16 too (its one map is already spatial).
Self-attention of the N queries, W: N x N (row q: the weights query q gives every query):
    own weight, own weight / share (x N), preference (W_qq minus the mean of W_pq, p != q),
    query-map cosine (of the rows), entropy / uniform (over log N).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..viz.common import to_numpy
from ..viz.explorer_metrics import GridGeometry, mask_centroid, query_metrics

CROSS = "QCIM cross"
QCIM_SELF = "QCIM self"
SIM_SELF = "SIM self"
CROSS_METRICS = ("own-object mass", "own-object mass / share", "preference", "query-map cosine", "in-mask ratio",
                 "in-mask ratio / share", "entropy", "entropy / uniform", "centroid distance", "spatial preference")
SELF_METRICS = ("own weight", "own weight / share", "preference", "query-map cosine", "entropy / uniform")
COLUMNS = ["video", "frame", "query", "head", "attention", "metric", "value"]


def mean_cosine(maps: np.ndarray) -> np.ndarray:
    """maps: N x ... -> N: each map's mean cosine similarity with the N - 1 others (NaN for N = 1)."""
    flat = maps.reshape(maps.shape[0], -1).astype(np.float64)  # N x D
    n = flat.shape[0]
    if n < 2:
        return np.full(n, math.nan)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-300)
    cosine = unit @ unit.T  # N x N
    return (cosine.sum(1) - np.diag(cosine)) / (n - 1)


def preference(mass: np.ndarray) -> np.ndarray:
    """mass: N x N, mass[p, q] = what query p gives object q (its readout, or query q) -> N:
    mass[q, q] minus the mean of mass[p, q] over the other queries p (NaN for N = 1)."""
    n = mass.shape[0]
    if n < 2:
        return np.full(n, math.nan)
    own = np.diag(mass)
    return own - (mass.sum(0) - own) / (n - 1)


def spatial_preference(maps: np.ndarray, coverages) -> np.ndarray:
    """maps: Nq x h x w (each sums to 1), coverages[q]: h x w share of each cell inside query q's
    object (or None) -> Nq: `preference` of r, r[p, q] = (maps[p] * coverages[q]).sum() / mean
    coverage of q (NaN where a coverage is missing or empty, and for one query)."""
    n = maps.shape[0]
    if coverages is None or n < 2:
        return np.full(n, math.nan)
    ratios = np.full((n, n), math.nan)  # ratios[p, q]: query p's mass in object q's mask over its share
    for q, coverage in enumerate(coverages[:n]):
        if coverage is None:
            continue
        cover = to_numpy(coverage, np.float64)
        share = cover.mean()
        if share > 0:
            ratios[:, q] = (maps * cover).sum((1, 2)) / share
    return preference(ratios)


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def cross_frame_metrics(cross, per_object: bool = True, coverages=None, centres=None,
                        centroids=None) -> list[dict[str, float]]:
    """One frame's QCIM cross-attention, cross: Nq x No x h x w (each query's map sums to 1),
    -> a dict of CROSS_METRICS per query. per_object: No readouts, one per query (False: one image
    feature for all, the qcim-f16 ablation: no own object). coverages[q]: h x w share of each cell
    inside query q's ground truth (or None); centroids[q]: its centre; centres: h x w x 2."""
    a = to_numpy(cross, np.float64)  # Nq x No x h x w
    nq, no, h, w = a.shape
    own = per_object and no == nq
    masses = a.sum((2, 3))  # Nq x No: the mass each query gives each readout
    prefer = preference(masses) if own else np.full(nq, math.nan)
    cosine = mean_cosine(a)
    spatial = spatial_preference(a.sum(1), coverages)  # Nq x h x w: each query's map over all readouts
    out = []
    for q in range(nq):
        coverage = None if coverages is None else coverages[q]
        values = query_metrics(a[q], q if own else None, coverage, centres,
                               None if centroids is None else centroids[q])
        share = math.nan if coverage is None else float(to_numpy(coverage, np.float64).mean())
        values.update({
            "own-object mass / share": values["own-object mass"] * no,
            "preference": float(prefer[q]),
            "query-map cosine": float(cosine[q]),
            "in-mask ratio / share": values["in-mask ratio"] / share if share and share > 0 else math.nan,
            "entropy / uniform": values["entropy"] / math.log(no * h * w) if no * h * w > 1 else math.nan,
            "spatial preference": float(spatial[q]),
        })
        out.append(values)
    return out


def self_frame_metrics(weights) -> list[dict[str, float]]:
    """Query-to-query attention W: N x N (row q sums to 1) -> a dict of SELF_METRICS per query."""
    wts = to_numpy(weights, np.float64)
    n = wts.shape[0]
    prefer, cosine = preference(wts), mean_cosine(wts)
    return [{"own weight": float(wts[q, q]), "own weight / share": float(wts[q, q] * n),
             "preference": float(prefer[q]), "query-map cosine": float(cosine[q]),
             "entropy / uniform": entropy(wts[q]) / math.log(n) if n > 1 else math.nan} for q in range(n)]


def head_views(weights: np.ndarray, axis: int, heads: bool):
    """(head label, weights without the head axis): the mean over heads, then each head when asked."""
    yield "mean", weights.mean(axis)
    if heads:
        for k in range(weights.shape[axis]):
            yield k, np.take(weights, k, axis=axis)


def recording_metrics(recording, heads: bool = False, uniform: bool = False) -> pd.DataFrame:
    """The tidy table (COLUMNS) of one traced video (`viz.explorer.Recording`, ground truth
    included): `query` is the original id of the query's object, `head` "mean" (over heads) or the
    head's index (with `heads`), `attention` CROSS, QCIM_SELF or SIM_SELF. uniform: the same frames,
    queries and masks with every attention replaced by uniform weights (the uniform baseline)."""
    labels = to_numpy(recording.ground_truth)
    rows, geometry = [], None

    def add(frame, ids, attention, head, values):
        for object_id, metrics in zip(ids, values):
            rows.extend((recording.name, frame, int(object_id), head, attention, name, value)
                        for name, value in metrics.items())

    for trace, ids in zip(recording.traces, recording.object_ids):
        qcim = trace.qcim_attention
        if qcim is not None:
            cross = to_numpy(qcim["cross"], np.float64)[0]  # Nq x heads x No x h x w
            nq, _, no, h, w = cross.shape
            if uniform:
                cross = np.full(cross.shape, 1.0 / (no * h * w))
            if geometry is None or geometry.grid != (h, w):
                geometry = GridGeometry(labels.shape[1:], (h, w), recording.size)
                centres = geometry.cell_centres()
            masks = [labels[trace.index] == i for i in ids[:nq]]
            coverages = [geometry.coverage(m) for m in masks]
            centroids = [mask_centroid(m) for m in masks]
            for head, maps in head_views(cross, 1, heads):  # Nq x No x h x w
                add(trace.index, ids[:nq], CROSS, head,
                    cross_frame_metrics(maps, recording.per_object, coverages, centres, centroids))
            self_weights = to_numpy(qcim["self"], np.float64)[0]  # Nq x heads x Nq
            if uniform:
                self_weights = np.full(self_weights.shape, 1.0 / nq)
            for head, wts in head_views(self_weights, 1, heads):
                add(trace.index, ids[:nq], QCIM_SELF, head, self_frame_metrics(wts))
        sim = trace.sim_attention
        if sim is not None:
            sim = to_numpy(sim, np.float64)[0]  # heads x N x N
            if uniform:
                sim = np.full(sim.shape, 1.0 / sim.shape[-1])
            for head, wts in head_views(sim, 0, heads):
                add(trace.index, ids[: wts.shape[0]], SIM_SELF, head, self_frame_metrics(wts))
    return pd.DataFrame(rows, columns=COLUMNS)
