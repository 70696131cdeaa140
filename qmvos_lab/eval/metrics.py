"""Region similarity J and boundary accuracy F, exactly as the official DAVIS evaluation
(davisvideochallenge/davis2017-evaluation, davis2017/metrics.py and utils.py; Perazzi et al.,
CVPR 2016, Sec. 3), vectorised over frames.

J (Jaccard): |pred & gt| / |pred | gt| per frame; 1 when both masks are empty.
F (boundary F-measure): boundary maps of both masks (`boundary_map`), each dilated by a disk of
radius ceil(0.008 * image diagonal); precision = fraction of predicted boundary pixels within the
dilated ground-truth boundary, recall the converse; F = 2PR / (P + R). Both empty: F = 1; one
empty: F = 0.
Statistics per object (`statistics`): Mean, Recall (fraction of frames > 0.5) and Decay (mean of
the first quarter of the frames minus mean of the last quarter, with the official bin edges).

The official code dilates with OpenCV and scikit-image's disk; here the same disk dilation is done
with shifted ORs on the bounding box of the boundaries (a pixel's dilated value depends only on
boundary pixels, all of which lie inside that box), so no extra dependency is needed.
"""

from __future__ import annotations

import math

import numpy as np

BOUNDARY_THRESHOLD = 0.008


def jaccard(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-frame J of boolean masks T x H x W (or one H x W mask) -> T values (or a float)."""
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    inter = np.logical_and(gt, pred).sum(axis=(-2, -1))
    union = np.logical_or(gt, pred).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inter / union
    return np.where(union == 0, 1.0, j) if j.ndim else (1.0 if union == 0 else float(j))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundaries of boolean masks (... x H x W), as the official `_seg2bmap`.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour.
    Border rules: the last row compares with its right neighbour only, the last column with its
    lower neighbour only, and the bottom-right pixel is never a boundary.
    """
    seg = np.asarray(mask, dtype=bool)
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    below_right = np.zeros_like(seg)
    right[..., :, :-1] = seg[..., :, 1:]
    below[..., :-1, :] = seg[..., 1:, :]
    below_right[..., :-1, :-1] = seg[..., 1:, 1:]
    boundary = (seg ^ right) | (seg ^ below) | (seg ^ below_right)
    boundary[..., -1, :] = seg[..., -1, :] ^ right[..., -1, :]
    boundary[..., :, -1] = seg[..., :, -1] ^ below[..., :, -1]
    boundary[..., -1, -1] = False
    return boundary


def boundary_radius(height: int, width: int, threshold: float = BOUNDARY_THRESHOLD) -> int:
    """The dilation radius in pixels: ceil(threshold * diagonal), or `threshold` itself if >= 1."""
    return int(threshold) if threshold >= 1 else math.ceil(threshold * math.hypot(height, width))


def disk_half_widths(radius: int) -> list[int]:
    """Half-width of each row dy = -r..r of the disk {dx^2 + dy^2 <= r^2} (scikit-image's disk)."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(-radius, radius + 1)]


def dilate_disk(boundary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of an H x W map by a disk of `radius`, zeros outside the image.

    The disk is a stack of horizontal segments: dilate horizontally by every half-width
    (incrementally, one shift per step), then OR the rows shifted vertically.
    """
    height, width = boundary.shape
    half_widths = disk_half_widths(radius)
    horizontal = [boundary]
    for _ in range(max(half_widths)):
        prev = horizontal[-1]
        grown = prev.copy()
        grown[:, 1:] |= prev[:, :-1]
        grown[:, :-1] |= prev[:, 1:]
        horizontal.append(grown)
    out = np.zeros_like(boundary)
    for dy, half_width in zip(range(-radius, radius + 1), half_widths):
        if abs(dy) >= height:
            continue
        rows = horizontal[half_width]
        if dy >= 0:  # out[y] |= rows[y + dy]
            out[: height - dy] |= rows[dy:]
        else:
            out[-dy:] |= rows[: height + dy]
    return out


def f_measure(gt: np.ndarray, pred: np.ndarray, threshold: float = BOUNDARY_THRESHOLD) -> float:
    """Boundary F-measure of two H x W boolean masks (official `f_measure`)."""
    pred_boundary, gt_boundary = boundary_map(pred), boundary_map(gt)
    return _f_from_boundaries(gt_boundary, pred_boundary, boundary_radius(*gt.shape[-2:], threshold))


def _f_from_boundaries(gt_boundary: np.ndarray, pred_boundary: np.ndarray, radius: int) -> float:
    n_pred, n_gt = int(pred_boundary.sum()), int(gt_boundary.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # precision or recall is 0 while the other is 1
    rows = np.flatnonzero((pred_boundary | gt_boundary).any(axis=1))
    cols = np.flatnonzero((pred_boundary | gt_boundary).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    pred_box, gt_box = pred_boundary[box], gt_boundary[box]
    precision = np.logical_and(pred_box, dilate_disk(gt_box, radius)).sum() / float(n_pred)
    recall = np.logical_and(gt_box, dilate_disk(pred_box, radius)).sum() / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def f_measure_frames(gt: np.ndarray, pred: np.ndarray, threshold: float = BOUNDARY_THRESHOLD) -> np.ndarray:
    """Per-frame F of boolean masks T x H x W -> T values."""
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    radius = boundary_radius(*gt.shape[-2:], threshold)
    gt_boundaries, pred_boundaries = boundary_map(gt), boundary_map(pred)  # T x H x W each
    return np.array([_f_from_boundaries(g, p, radius) for g, p in zip(gt_boundaries, pred_boundaries)])


def decay_bin_edges(num_frames: int) -> np.ndarray:
    """Official bin edges round(linspace(1, N, 5)) - 1 (each bin inclusive at both ends).

    The official code stores them as uint8, which wraps around for sequences of more than 255
    evaluated frames: at 256 the slice end 255 + 1 becomes 0, so the last bin is empty and the
    decay is NaN; beyond, edges wrap (300 frames: edge 299 becomes 43) and the decay is wrong.
    Here they are int64: identical up to 255 frames, and what the formula intends beyond.
    """
    return (np.round(np.linspace(1, num_frames, 5) + 1e-10) - 1).astype(np.int64)


def statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """Mean (nanmean), Recall (fraction of frames > 0.5) and Decay of per-frame values."""
    values = np.asarray(per_frame, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan  # as the official nanmean of nothing
    mean = float(np.nanmean(values))
    recall = float(np.mean(values > 0.5))
    edges = decay_bin_edges(len(values))
    first, last = values[edges[0]: edges[1] + 1], values[edges[3]: edges[4] + 1]
    decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay
