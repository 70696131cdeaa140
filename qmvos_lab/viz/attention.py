"""Figures of memory affinity (XMem Sec. 3.2) and of QMVOS's query-to-readout attention (QCIM, Sec. 3.3).

All attention figures use one colour map (`common.ATTENTION_CMAP`, "magma") and, within a figure,
one colour scale, so that panels can be compared.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import UserError
from .common import ATTENTION_CMAP, bare, grid, to_image, to_numpy, upsample
from .heatmaps import draw_heatmap, show_heatmaps


def affinity_over_memory(affinity, memory_frames=None, query_pixel: tuple[int, int] | None = None,
                         query_frame=None, memory_labels: Sequence[str] | None = None, columns: int = 6,
                         cmap: str = ATTENTION_CMAP, alpha: float = 0.6) -> Figure:
    """The memory affinity of ONE query pixel: `affinity` is T_mem x h x w, the weight it gives each
    position of each memory frame (top-k: most are zero; all sum to 1). Drawn over the memory frames
    (T_mem x H x W x 3) when given, on one colour scale; `query_pixel` (row, col on the h x w grid) is
    marked on `query_frame` (H x W x 3), the first panel."""
    a = to_numpy(affinity, np.float32)  # T_mem x h x w
    if a.ndim != 3:
        raise UserError(f"affinity_over_memory: affinity must be T_mem x h x w (one query pixel), got {a.shape}")
    frames = None if memory_frames is None else [to_image(f) for f in memory_frames]
    if frames is not None and len(frames) != len(a):
        raise UserError(f"affinity_over_memory: {len(a)} affinity maps but {len(frames)} memory frames")
    panels = len(a) + (query_frame is not None)
    columns = max(1, min(columns, panels))
    fig, axes = grid(math.ceil(panels / columns), columns)
    axes = list(axes.flat)
    for ax in axes[panels:]:
        ax.remove()
    if query_frame is not None:
        query_ax, axes = axes[0], axes[1:]
        image = to_image(query_frame)
        query_ax.imshow(image)
        bare(query_ax)
        query_ax.set_title("query frame" if query_pixel is None else f"query pixel {tuple(query_pixel)}", fontsize=9)
        if query_pixel is not None:  # the centre of the grid cell, in frame pixels
            y, x = ((p + 0.5) * size / n - 0.5 for p, size, n in zip(query_pixel, image.shape[:2], a.shape[1:]))
            query_ax.plot([x], [y], marker="+", markersize=14, markeredgewidth=2, color="cyan")
    vmax = max(float(a.max()), 1e-12)
    for t, ax in enumerate(axes[: len(a)]):
        shown = draw_heatmap(ax, a[t], frames[t] if frames else None, cmap, 0.0, vmax, alpha)
        label = memory_labels[t] if memory_labels is not None else f"memory {t}"
        ax.set_title(f"{label}\nweight {a[t].sum():.2f}", fontsize=9)
    fig.colorbar(shown, ax=axes[: len(a)], shrink=0.8, label="affinity weight")
    fig.suptitle(f"Affinity of one query pixel over memory ({int((a > 0).sum())} of {a.size} positions non-zero)")
    return fig


def attention_mass(cross):
    """QCIM cross-attention summed over the readout grid: ... x Nq x heads x No x h x w -> ... x Nq x heads x No.
    Numpy in, numpy out; torch in, torch out. Each (query, head) row sums to 1 over objects."""
    return cross.sum(dim=(-2, -1)) if isinstance(cross, torch.Tensor) else np.asarray(cross).sum(axis=(-2, -1))


def attention_mass_matrix(mass, query_labels: Sequence[str] | None = None, object_labels: Sequence[str] | None = None,
                          ax=None, cmap: str = ATTENTION_CMAP) -> Figure:
    """Nq x No attention mass (see `attention_mass`; Nq x heads x No is averaged over heads), each
    cell annotated: how much of each query's attention lands on each object's readout."""
    m = to_numpy(mass, np.float32)
    averaged = m.ndim == 3
    m = m.mean(1) if averaged else m  # Nq x No
    if m.ndim != 2:
        raise UserError(f"attention_mass_matrix: mass must be Nq x No (or Nq x heads x No), got {m.shape}")
    if ax is None:
        fig = Figure(figsize=(1.0 * m.shape[1] + 2.2, 0.8 * m.shape[0] + 1.2), layout="constrained")
        ax = fig.add_subplot()
    fig, vmax = ax.figure, max(1.0, float(m.max()))
    image = ax.imshow(m, cmap=cmap, vmin=0.0, vmax=vmax)
    for q, o in np.ndindex(m.shape):
        ax.text(o, q, f"{m[q, o]:.2f}", ha="center", va="center", fontsize=9,
                color="black" if m[q, o] > 0.6 * vmax else "white")
    ax.set_xticks(range(m.shape[1]), object_labels or [f"object {o}" for o in range(m.shape[1])])
    ax.set_yticks(range(m.shape[0]), query_labels or [f"query {q}" for q in range(m.shape[0])])
    ax.set_xlabel("readout of")
    ax.set_title("Attention mass" + (" (mean over heads)" if averaged else ""))
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def cross_attention(cross, frame=None, query: int | None = None, heads: str = "each",
                    object_labels: Sequence[str] | None = None, query_labels: Sequence[str] | None = None,
                    cmap: str = ATTENTION_CMAP, alpha: float = 0.6) -> Figure:
    """QCIM cross-attention of one frame, `cross` Nq x heads x No x h x w (a leading batch of 1 is
    dropped): objects in columns; rows are the heads of `query` (heads="each"), or each query with
    heads averaged (heads="mean"; all queries when `query` is None). One colour scale from 0 to the
    largest weight shown, upsampled over `frame` (H x W x 3) when given."""
    c = to_numpy(cross, np.float32)
    c = c[0] if c.ndim == 6 and c.shape[0] == 1 else c  # Nq x heads x No x h x w
    if c.ndim != 5:
        raise UserError(f"cross_attention: cross must be Nq x heads x No x h x w, got shape {c.shape}")
    if heads not in ("each", "mean"):
        raise UserError(f"cross_attention: heads={heads!r}; use 'each' or 'mean'")
    if query is not None and not 0 <= query < c.shape[0]:
        raise UserError(f"cross_attention: query {query} is not one of the {c.shape[0]} queries")
    query_labels = query_labels or [f"query {q}" for q in range(c.shape[0])]
    rows, titles = [], []
    for q in range(c.shape[0]) if query is None else [query]:
        if heads == "mean":
            rows.append(c[q].mean(0))  # No x h x w
            titles.append(query_labels[q])
        else:
            rows.extend(c[q])  # heads x (No x h x w)
            titles.extend(f"{query_labels[q]}, head {h}" for h in range(c.shape[1]))
    return show_heatmaps(np.stack(rows), titles, object_labels or [f"object {o}" for o in range(c.shape[2])],
                         cmap=cmap, shared_scale=True, vmin=0.0, background=frame, alpha=alpha,
                         colorbar_label="attention weight", suptitle="QCIM cross-attention (QMVOS Eq. 4)")


def attention_per_object(cross, image_shape: tuple[int, int]) -> np.ndarray:
    """cross: 1 x Nq x heads x No x h x w -> Nq x No x H x W, averaged over heads, upsampled."""
    return upsample(to_numpy(cross, np.float32)[0].mean(1), image_shape)


def attention_figure(image: np.ndarray, result) -> Figure:
    """The QCIM attention of one segmented frame (a `FrameResult` recorded with attention): for each
    query (row, heads averaged) its attention over each object's readout (column), over the frame."""
    if result.attention is None:
        raise UserError("attention_figure: this frame has no recorded attention; segment with "
                        "record_attention=True, and pick a frame without a given mask")
    cross, ids = result.attention["cross"], result.internal_ids or []
    objects = cross.shape[-3]
    object_labels = [f"readout of object {i}" for i in ids] if objects == len(ids) else ["F16"] * objects
    fig = cross_attention(cross, image, heads="mean", object_labels=object_labels,
                          query_labels=[f"query {i}" for i in ids] if len(ids) == cross.shape[-5] else None)
    fig.suptitle("QCIM: where each object's query looks, over every object's memory readout")
    return fig
