"""Blitting for the explorer's views: redraw only what a control changes, as interactive
matplotlib backends do, and render the result to PNG for a widget.

A view (`BlittedView`) builds its Figure once, with the artists that change marked animated; its
static parts (axes, ticks, event marks) are drawn once into a cached background, keyed by what
they show. A redraw restores that background, updates the animated artists and draws them on top.
`exporting` turns blitting off for an ordinary draw (savefig, to_jshtml).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Hashable

import numpy as np
from PIL import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_bytes(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's current pixels as PNG (fast compression: these are redrawn often)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class BlittedView(ABC):
    """One view of an explorer, drawn by blitting. A subclass implements

        build() -> Figure      the figure, once; fills `self.dynamic` (the artists every change redraws)
        static(apply) -> key   the key of the background; with apply, set the artists it depends on
        update() -> None       set the dynamic artists from the explorer's state

    and reads the state and data from `self.explorer`. `animated` is False while exporting: a
    subclass gives the dynamic artists it adds in `static` that animated flag.
    """

    def __init__(self, explorer):
        self.explorer = explorer
        self.dynamic: list = []  # the artists redrawn on every change, in drawing order
        self.animated = True  # False inside `exporting`: ordinary draws
        self._background: tuple | None = None  # (static key, saved pixels)
        self.figure = self.build()
        FigureCanvasAgg(self.figure)
        self.figure.canvas.draw()  # the constrained layout, once ...
        self.figure.set_layout_engine("none")  # ... then frozen: redraws move no axes
        # spines go over the images and lines, as in an ordinary draw
        self.dynamic += [spine for ax in self.figure.axes for spine in ax.spines.values() if spine not in self.dynamic]
        for artist in self.artists():
            artist.set_animated(True)

    @abstractmethod
    def build(self) -> Figure:
        """The view's Figure, built once; fills `self.dynamic`."""

    @abstractmethod
    def static(self, apply: bool) -> Hashable:
        """The key of the background for the current state; with `apply`, set what it shows."""

    @abstractmethod
    def update(self) -> None:
        """Set the dynamic artists from the explorer's state."""

    def artists(self) -> list:
        """The artists drawn on every change, in drawing order (a subclass may add some last)."""
        return self.dynamic

    def redraw(self) -> bytes:
        """Update the artists from the state, blit them over the background; the picture as PNG."""
        canvas = self.figure.canvas
        key = self.static(apply=False)
        if self._background is None or self._background[0] != key:
            self.static(apply=True)
            canvas.draw()  # the static parts only: the dynamic artists are animated
            self._background = (key, canvas.copy_from_bbox(self.figure.bbox))
        else:
            canvas.restore_region(self._background[1])
        self.update()
        renderer = canvas.get_renderer()
        for artist in self.artists():
            if artist.get_visible() and (artist.axes is None or artist.axes.get_visible()):
                artist.draw(renderer)
        return png_bytes(canvas)

    @contextmanager
    def exporting(self):
        """Draw every artist in an ordinary draw (savefig, to_jshtml), then back to blitting."""
        for artist in self.artists():
            artist.set_animated(False)
        self.animated = False
        try:
            yield
        finally:
            self.animated = True
            for artist in self.artists():
                artist.set_animated(True)
            self._background = None  # the canvas was drawn over: redraw the background next time
