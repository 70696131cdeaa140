"""Grids of heatmaps (d2l's `show_heatmaps`) and of feature channels (a readout, a key)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import UserError
from .common import ATTENTION_CMAP, FEATURE_CMAP, bare, grid, to_image, to_numpy, upsample


def draw_heatmap(ax: Axes, matrix: np.ndarray, background: np.ndarray | None = None, cmap: str = ATTENTION_CMAP,
                 vmin: float | None = None, vmax: float | None = None, alpha: float = 0.6):
    """One h x w map on `ax`, upsampled over an H x W x 3 `background` frame when given; the AxesImage."""
    if background is None:
        return ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.imshow(background)
    if matrix.shape != background.shape[:2]:
        matrix = upsample(matrix, background.shape[:2])  # h x w -> H x W
    bare(ax)
    return ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)


def show_heatmaps(matrices, row_titles: Sequence[str] | None = None, column_titles: Sequence[str] | None = None,
                  cmap: str = ATTENTION_CMAP, shared_scale: bool = True, background=None, alpha: float = 0.6,
                  xlabel: str | None = None, ylabel: str | None = None, colorbar_label: str | None = None,
                  suptitle: str | None = None, vmin: float | None = None, vmax: float | None = None) -> Figure:
    """A rows x cols grid of h x w heatmaps in one call (d2l); `matrices` is rows x cols x h x w
    (or cols x h x w, or h x w). With `shared_scale` every image has the same vmin/vmax (the data's
    range unless given) and one colour bar. `background`: an H x W x 3 frame under every map, or
    cols x H x W x 3 (one per column)."""
    m = to_numpy(matrices, np.float32)
    m = m.reshape((1,) * (4 - m.ndim) + m.shape) if m.ndim in (2, 3) else m  # rows x cols x h x w
    if m.ndim != 4:
        raise UserError(f"show_heatmaps: matrices must be rows x cols x h x w, got shape {m.shape}")
    rows, cols = m.shape[:2]
    backgrounds = None if background is None else to_numpy(background)
    if backgrounds is not None:
        backgrounds = [to_image(b) for b in backgrounds] if backgrounds.ndim == 4 else [to_image(backgrounds)] * cols
    if shared_scale:
        vmin = float(np.nanmin(m)) if vmin is None else vmin
        vmax = float(np.nanmax(m)) if vmax is None else vmax
    height, width = backgrounds[0].shape[:2] if backgrounds else m.shape[2:]
    fig, axes = grid(rows, cols, panel=(2.2, max(1.2, 2.2 * height / width)))
    for r, c in np.ndindex(rows, cols):
        ax = axes[r, c]
        image = draw_heatmap(ax, m[r, c], backgrounds[c] if backgrounds else None, cmap, vmin, vmax, alpha)
        if r == 0 and column_titles is not None:
            ax.set_title(column_titles[c], fontsize=9)
        if c == 0:
            ax.set_ylabel("\n".join(t for t in ((row_titles or [None] * rows)[r], ylabel) if t))
        if r == rows - 1 and xlabel:
            ax.set_xlabel(xlabel)
    if shared_scale:
        fig.colorbar(image, ax=axes, shrink=0.8, label=colorbar_label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def readout_channels(readout, channels: int | Sequence[int] | None = None, columns: int = 8,
                     cmap: str = FEATURE_CMAP, shared_scale: bool = False) -> Figure:
    """Channel maps of a C x h x w readout (XMem Eq. 1: the affinity applied to the values) or any
    feature map (1 x C x h x w is accepted). channels: indices, a count (the first n), or None (up to 32).
    Each map has its own colour scale unless `shared_scale`."""
    r = to_numpy(readout, np.float32)
    r = r[0] if r.ndim == 4 and r.shape[0] == 1 else r  # C x h x w
    if r.ndim != 3:
        raise UserError(f"readout_channels: the readout must be C x h x w, got shape {r.shape}")
    if channels is None or isinstance(channels, int):
        channels = range(min(r.shape[0], 32 if channels is None else channels))
    channels = list(channels)
    if not channels or max(channels) >= r.shape[0]:
        raise UserError(f"readout_channels: channels {channels} are not within the readout's {r.shape[0]}")
    columns = max(1, min(columns, len(channels)))
    vmin, vmax = (float(r[channels].min()), float(r[channels].max())) if shared_scale else (None, None)
    fig, axes = grid(math.ceil(len(channels) / columns), columns, panel=(1.6, 1.6 * r.shape[1] / r.shape[2] + 0.25))
    for ax in axes.flat[len(channels):]:
        ax.remove()
    for k, ax in enumerate(axes.flat[: len(channels)]):
        image = ax.imshow(r[channels[k]], cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(f"channel {channels[k]}", fontsize=8)
        bare(ax)
    if shared_scale:
        fig.colorbar(image, ax=list(axes.flat[: len(channels)]), shrink=0.8)
    fig.suptitle(f"{len(channels)} of {r.shape[0]} channels ({r.shape[1]} x {r.shape[2]})")
    return fig
