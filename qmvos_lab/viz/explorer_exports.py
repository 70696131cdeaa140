"""The attention explorer's pictures outside the widget: a view as a PNG file, and a view over the
frames as a self-contained HTML animation (matplotlib's to_jshtml). The standalone page is
`html_export`, the grid of every head `head_grid`."""

from __future__ import annotations

from typing import Sequence

from .animation import animation_of
from .save import save_figure


def save_png(explorer, path, view: str = "attention"):
    """Write the current picture of `view` to `path` (a PNG, atomically: `save_figure`)."""
    explorer._check_view(view)
    with explorer.views[view].exporting():
        return save_figure(explorer.figures[view], path, dpi=explorer.dpi, bbox_inches=None)


def animation(explorer, view: str = "attention", frames: Sequence[int] | None = None, fps: float = 4.0) -> str:
    """`view` over `frames` (default: all), the other controls as they are, as a self-contained
    HTML animation; the explorer's frame is as it was afterwards."""
    explorer._check_view(view)
    frames = list(range(explorer.num_frames)) if frames is None else list(frames)
    before = explorer.state["frame"]
    shown = explorer.views[view]
    exporting = [True]  # matplotlib's animation may call `draw` again on a later canvas draw: ignore it

    def draw(k: int):
        if exporting[0]:
            explorer.state["frame"] = frames[k]
            shown.static(apply=True)
            shown.update()

    try:
        with shown.exporting():
            return animation_of(explorer.figures[view], draw, len(frames), fps)
    finally:
        exporting[0] = False
        explorer.state["frame"] = before
        explorer._redraw(view)
