"""Visualisation: overlays, videos, and plots that return Figures (pure functions).

Plots take numpy arrays or torch tensors (any device) and return a `matplotlib.figure.Figure`
built without pyplot (nothing to close; a notebook cell that returns one shows it); they never write
files, switch the backend or show a window. Save with `save_figure(fig, "out.png")`.

Names are imported on first use, so `qmvos_lab.viz.overlay` (used by the segment command) does not
pull in matplotlib and seaborn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# the overlay helpers are light (no matplotlib) and the function `overlay` shares its module's name:
# import them now, so that `viz.overlay` is always the function
from .overlay import VideoWriter, overlay, palette_colours, write_video  # noqa: E402,F401

_MODULES = {
    "animation": ["animate_frames", "animation_of"],
    "diagram": ["architecture", "forward_shapes"],
    "attention": ["affinity_over_memory", "attention_figure", "attention_mass", "attention_mass_matrix",
                  "attention_per_object", "cross_attention"],
    "common": ["ATTENTION_CMAP", "FEATURE_CMAP", "events_by_name", "to_numpy"],
    "heatmaps": ["readout_channels", "show_heatmaps"],
    "plots": ["jf_per_variant", "jf_per_video", "loss_curves", "memory_over_time", "metric_over_time", "show_frames"],
    "save": ["save_figure"],
    "trace_io": ["load_recording", "open_explorer", "save_recording"],
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted([*_WHERE, "VideoWriter", "overlay", "palette_colours", "write_video"])


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for IDEs and type checkers
    from .animation import animate_frames, animation_of
    from .diagram import architecture, forward_shapes
    from .attention import (affinity_over_memory, attention_figure, attention_mass, attention_mass_matrix,
                            attention_per_object, cross_attention)
    from .common import ATTENTION_CMAP, FEATURE_CMAP, events_by_name, to_numpy
    from .heatmaps import readout_channels, show_heatmaps
    from .plots import jf_per_variant, jf_per_video, loss_curves, memory_over_time, metric_over_time, show_frames
    from .save import save_figure
    from .trace_io import load_recording, open_explorer, save_recording
