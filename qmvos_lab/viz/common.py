"""What every plot shares: arrays from numpy or torch, figure grids, colour maps, event marks.

Figures are built with `matplotlib.figure.Figure` directly, not through pyplot: nothing is
registered globally, so nothing needs closing and a notebook cell that returns one shows it once.
To use `plt.show()`, pass an `ax` from `plt.subplots()` to a function that takes one.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import UserError

ATTENTION_CMAP = "magma"  # attention, affinity, attention mass: non-negative weights
FEATURE_CMAP = "viridis"  # feature channels (readout, keys): any sign, one scale per map


def to_numpy(x, dtype=None) -> np.ndarray:
    """A numpy array from a numpy array, a list or a torch tensor (any device; half/bfloat16 -> float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        x = (x.float() if x.is_floating_point() else x).cpu().numpy()
    x = np.asarray(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def to_image(frame) -> np.ndarray:
    """H x W x 3 uint8 from H x W x 3 or 3 x H x W, uint8 or float in [0, 1]."""
    image = to_numpy(frame)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)  # 3 x H x W -> H x W x 3
    if image.ndim != 3 or image.shape[-1] != 3:
        raise UserError(f"viz: a frame must be H x W x 3 (or 3 x H x W), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = (image.astype(np.float32).clip(0, 1) * 255).round().astype(np.uint8)
    return image


def upsample(maps, size: tuple[int, int]) -> np.ndarray:
    """... x h x w -> ... x H x W float32, bilinear (the weights of a stride-16 grid over the frame)."""
    maps = torch.as_tensor(to_numpy(maps, np.float32))
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])  # (...) x 1 x h x w
    flat = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return flat.reshape(*lead, *size).numpy()


def grid(rows: int, cols: int, panel: tuple[float, float] = (2.2, 2.0), **figure_kwargs) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Figure with rows x cols axes (always a 2-D array)."""
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained", **figure_kwargs)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def figure_and_axes(ax: Axes | None, size: tuple[float, float] = (6.0, 3.5)) -> tuple[Figure, Axes]:
    """The figure of `ax`, or a new one-axes Figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def bare(ax: Axes) -> None:
    """No ticks (images)."""
    ax.set_xticks([])
    ax.set_yticks([])


def events_by_name(per_frame: Sequence, frames: Sequence[int] | None = None,
                   names: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Per-frame events -> name: frame indices, for `mark_events`. Each frame's events are a list of
    names (["memory frame", "deep update"]) or a mapping whose true values count (a trace's
    {"memory_frame": True, "objects_added": [2], ...}); `names` keeps only those."""
    frames = list(range(len(per_frame))) if frames is None else list(frames)
    events: dict[str, list[int]] = {name: [] for name in names or []}
    for frame, happened in zip(frames, per_frame):
        happened = [k for k, v in happened.items() if v] if isinstance(happened, Mapping) else happened
        for name in happened:
            if names is None or name in names:
                events.setdefault(name, []).append(frame)
    return events


def mark_events(ax: Axes, events: Mapping[str, Sequence[int]] | None, first_colour: int = 2) -> None:
    """One set of dotted vertical lines per event name (one LineCollection each), in the legend."""
    styles = (":", "--", "-.")
    for k, (name, frames) in enumerate((events or {}).items()):
        ax.vlines(list(frames), 0, 1, transform=ax.get_xaxis_transform(), colors=f"C{first_colour + k}",
                  linestyles=styles[k % len(styles)], linewidth=1.0, label=name)
