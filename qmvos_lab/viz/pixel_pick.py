"""Pick the memory view's pixel by clicking on the frame (ipyevents, optional), not only by sliders.

The memory view shows where one pixel of the frame reads XMem's memory (XMem Sec. 3.2). A click on
the view's frame panel becomes that pixel: the click's position on the picture -> the panel's data
coordinates (frame pixels) -> the nearest cell of the readout grid -> `explorer.set(pixel=...)`.
`on_click` is the Python side of the widget (testable without a browser); `attach` wires it to the
widget's image with ipyevents when that package is installed (`pip install ipyevents`), and does
nothing otherwise (the pixel sliders stay).
"""

from __future__ import annotations

import numpy as np


def pixel_at(explorer, x: float, y: float) -> tuple[int, int] | None:
    """The readout-grid cell (row, column) under the point (x, y) of the memory view's picture, in
    its pixels from the top-left corner; None outside the frame panel."""
    fig, ax = explorer.figures["memory"], explorer.views["memory"].ax_query
    display = (x, fig.bbox.height - y)  # matplotlib's display coordinates start at the bottom
    if not ax.bbox.contains(*display):
        return None
    column, row = ax.transData.inverted().transform(display)  # frame pixels
    distance = ((explorer.centres - np.array([row, column])) ** 2).sum(-1)  # h x w
    cell = np.unravel_index(int(np.argmin(distance)), distance.shape)
    return int(cell[0]), int(cell[1])


def event_position(explorer, event: dict) -> tuple[float, float]:
    """Where an ipyevents mouse event fell on the picture, in the picture's own pixels: its image
    coordinates when given (dataX/arrayX), else the position on the shown (maybe scaled) widget."""
    for x_key, y_key in (("dataX", "dataY"), ("arrayX", "arrayY")):
        if x_key in event and y_key in event:
            return float(event[x_key]), float(event[y_key])
    width, height = explorer.figures["memory"].bbox.size
    scale_x = width / float(event.get("boundingRectWidth") or width)
    scale_y = height / float(event.get("boundingRectHeight") or height)
    return float(event["relativeX"]) * scale_x, float(event["relativeY"]) * scale_y


def on_click(explorer, event: dict) -> bool:
    """Handle a click on the memory view: set the pixel under it. True when the pixel changed."""
    if event.get("type", "click") != "click":
        return False
    cell = pixel_at(explorer, *event_position(explorer, event))
    if cell is None or tuple(explorer.state["pixel"]) == cell:
        return False
    explorer.set(pixel=cell)
    return True


def attach(explorer, image_widget):
    """Clicks on `image_widget` (the memory view's ipywidgets Image) pick the pixel; returns the
    ipyevents Event, or None without ipyevents."""
    try:
        from ipyevents import Event
    except ImportError:
        return None
    event = Event(source=image_widget, watched_events=["click"])
    event.on_dom_event(lambda e: on_click(explorer, e))
    return event
