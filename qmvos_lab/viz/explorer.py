"""The attention explorer: where QMVOS's object queries look, per frame, query, head and object,
and which memory XMem reads for a pixel, interactively (ipywidgets) and as exports.

QMVOS claims that each object query reads the memory readout of its own *and the other* objects
(QCIM cross-attention, QMVOS Sec. 3.3, Eq. 4, after the queries' self-attention in QMVOS Eq. 3), and
motivates the SIM's multi-object interaction (QMVOS Eq. 2) with occlusions and similar objects. The explorer shows it:

    recording = record(net, video.frames, video.given_masks(), video.labels)   # one traced run
    explorer = AttentionExplorer(recording, events=scene_events(config, seed, video.labels))
    explorer.widget                     # the app (a notebook cell's last expression shows it)
    explorer.set(frame=7, query=2, head=3)   # the same controls from Python
    explorer.png("attention"); explorer.animation("attention")   # exports (PNG bytes, to_jshtml)
    explorer.to_html("run.html"); explorer.head_grid()   # a standalone page; every head of one query

The views: `attention_view` (the frame with ground truth and prediction, the selected query's
cross-attention over each object's readout, the matrix of the chosen layer, the query's
`explorer_metrics` over time with the video's events) and `memory_view` (XMem's side, XMem Sec. 3.2:
the top-k affinity of one pixel over the memory frames it reads). Here: the explorer's data and
state and its API. Elsewhere: the recording (`recording`, `trace_io`), the blitting (`blit`), the
widget (`explorer_widget`), the exports (`explorer_exports`, `html_export`, `head_grid`), and the
plot of several networks' metrics (`variant_metrics`).

Responsiveness: every figure is built once; a control change updates its artists (`set_data`,
`set_clim`, texts), blits them over a cached background and encodes a PNG for the widget; the
upsampling is precomputed (`GridGeometry`) and so are the metrics of every head. About 0.1-0.2 s
per change for 30 frames at 240p on a laptop core (tests/viz/test_explorer.py prints it).
Widget callbacks read only their arguments and the explorer they close over.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import UserError
from .attention_view import LAYERS, AttentionView
from .blit import BlittedView
from .common import to_numpy
from . import explorer_exports
from .explorer_metrics import METRICS, GridGeometry, select_head
from .memory_view import MemoryView
from .overlay import overlay
from .recording import Recording, record
from .variant_metrics import metrics_across_variants

__all__ = ["AFFECTS", "LAYERS", "SCALES", "VIEWS", "AttentionExplorer", "Recording", "metrics_across_variants",
           "record"]

SCALES = ("shared", "per panel")
VIEWS = ("attention", "memory")
# the views each control changes
AFFECTS = {"frame": VIEWS, "readout": VIEWS, "scale": VIEWS, "pixel": ("memory",), "query": ("attention",),
           "head": ("attention",), "layer": ("attention",)}


class AttentionExplorer:
    """See the module docstring. `events`: a `scene_events` table (frame, event, objects), or a
    mapping event name -> frames for every query. Controls (`set` keywords): frame, query (object
    id), head (int or "mean"), readout (object id), layer (LAYERS), scale (SCALES), pixel (row,
    column on the readout grid).

    Drawing: each view (`views`: `AttentionView`, `MemoryView`) draws its static parts (axes,
    ticks, event marks) once into a cached background; a control change restores it and draws only
    the changed artists on top (blitting, `blit.BlittedView`). The background is redrawn when what
    it shows changes (the query's events, the objects on the frame, the matrix layer).
    """

    def __init__(self, recording: Recording, events: pd.DataFrame | Mapping[str, Sequence[int]] | None = None,
                 width: float = 11.0, dpi: float = 72.0):
        self.rec, self.events, self.width, self.dpi = recording, events, width, dpi
        traces = recording.traces
        self.num_frames = len(traces)
        self.ids = recording.ids
        self.grid = tuple(traces[-1].grid)
        self.geometry = GridGeometry(recording.frames.shape[1:3], self.grid, recording.size)
        self.centres = self.geometry.cell_centres()  # h x w x 2, in frame pixels
        truth = recording.ground_truth
        self.truth = None if truth is None else truth.astype(np.int64)
        self.truth_images = (list(recording.frames) if truth is None else
                             [overlay(frame, gt) for frame, gt in zip(recording.frames, truth)])
        self.prediction_images = [overlay(frame, pred) for frame, pred in zip(recording.frames, recording.predictions)]
        self.cross = [None if t.qcim_attention is None else to_numpy(t.qcim_attention["cross"], np.float32)[0]
                      for t in traces]  # per frame: Nq x heads x No x h x w
        self.qcim_self = [None if t.qcim_attention is None else to_numpy(t.qcim_attention["self"], np.float32)[0]
                          for t in traces]  # Nq x heads x N
        self.sim_self = [None if t.sim_attention is None else to_numpy(t.sim_attention, np.float32)[0]
                         for t in traces]  # heads x N x N
        present = [c for c in self.cross if c is not None]
        self.has_queries = bool(present)
        self.heads = max((c.shape[1] for c in present), default=0)
        self.per_object = recording.per_object
        self.max_sources = max((c.shape[2] for c in present), default=0)
        self.groups = recording.groups()
        self.state = {"frame": next((t for t, c in enumerate(self.cross) if c is not None), 0),
                      "query": self.ids[0], "head": "mean", "readout": self.ids[0], "layer": "cross",
                      "scale": "shared", "pixel": (self.grid[0] // 2, self.grid[1] // 2)}
        self.series = self._series() if self.has_queries and self.truth is not None else {}
        self.timings: list[tuple[str, float]] = []  # (controls, seconds to redraw and render)
        self.images: dict[str, bytes] = {}
        self.app = None  # the ipywidgets app (`explorer_widget.ExplorerWidget`), built on first use
        self.views: dict[str, BlittedView] = {}
        if self.has_queries:
            self.views["attention"] = AttentionView(self)
        self.views["memory"] = MemoryView(self)
        self.figures: dict[str, Figure] = {name: view.figure for name, view in self.views.items()}
        for view in self.views:
            self._redraw(view)

    # ------------------------------------------------------------------------------ data
    def _series(self) -> dict:
        """head option -> metric -> T x len(ids) values (NaN where there is none)."""
        out = {}
        for head in ["mean", *range(self.heads)]:
            table = self.rec.metrics(head)
            out[head] = {}
            for name in METRICS:
                wide = table[table.metric == name].pivot(index="frame", columns="query", values="value")
                wide = wide.reindex(index=range(self.num_frames), columns=self.ids)
                out[head][name] = wide.to_numpy(np.float64)
        return out

    def query_index(self, frame: int, object_id: int) -> int | None:
        """Internal index of `object_id` on `frame` (None before it appears)."""
        ids = self.rec.object_ids[frame]
        return ids.index(object_id) if object_id in ids else None

    def events_for(self, object_id: int) -> dict[str, list[int]]:
        """The events to mark for the query of `object_id`."""
        if self.events is None:
            return {}
        if isinstance(self.events, pd.DataFrame):
            from ..data.synthetic_events import events_of

            return events_of(self.events, object_id)
        return {name: list(frames) for name, frames in self.events.items()}

    def query_attention(self, frame: int | None = None, query: int | None = None, head=None) -> np.ndarray | None:
        """No x h x w: the cross-attention of the query of object `query` on `frame` (one head, or
        their mean) over each readout; None where it has none. Defaults: the current controls."""
        s = self.state
        frame, query, head = (s["frame"] if frame is None else frame, s["query"] if query is None else query,
                              s["head"] if head is None else head)
        cross, q = self.cross[frame], self.query_index(frame, query)
        if cross is None or q is None or q >= cross.shape[0]:  # a query given on this frame has none yet
            return None
        return select_head(cross[q], head, 0)

    def pixel_affinity(self, frame: int, object_id: int, pixel: tuple[int, int]):
        """The memory affinity of one grid pixel on `frame`, through the memory group of
        `object_id`: (working maps n x h x w, their video frames, long-term weight, long-term
        elements, the traced pixel used), or None where the frame read no memory. The group's
        working elements are the newest: the last n frames of working memory after the previous frame."""
        trace = self.rec.traces[frame]
        group = next((g for g, ids in enumerate(self.groups) if object_id in ids), None)
        if frame == 0 or trace.affinity is None or group is None or group >= len(trace.affinity):
            return None
        affinity = trace.affinity[group]
        pixels = to_numpy(trace.pixels)
        k = int(np.argmin(np.abs(pixels - np.asarray(pixel)).sum(1)))  # the traced pixel nearest `pixel`
        dense = to_numpy(affinity.dense()[k], np.float32)  # long_term + working
        h, w = trace.grid
        n = affinity.working // (h * w)
        working = dense[affinity.long_term:].reshape(n, h, w)  # n x h x w
        frames = self.rec.traces[frame - 1].working_frames[-n:] if n else []
        return working, list(frames), float(dense[: affinity.long_term].sum()), affinity.long_term, tuple(pixels[k])

    # ------------------------------------------------------------------------------ controls
    def set(self, **changes) -> float:
        """Change controls (see the class docstring), redraw the views they affect and render
        them to PNG (`images`); returns the seconds that took (also appended to `timings`)."""
        unknown = set(changes) - set(self.state)
        if unknown:
            raise UserError(f"AttentionExplorer.set: unknown control(s) {sorted(unknown)}; use {sorted(self.state)}")
        self._check(changes)
        tic = time.perf_counter()
        self.state.update(changes)
        views = {view for name in changes for view in AFFECTS[name]}
        for view in VIEWS:
            if view in views and view in self.figures:
                self._redraw(view)
                if self.app is not None:
                    self.app.show(view)
        if self.app is not None:
            self.app.sync()
        seconds = time.perf_counter() - tic
        self.timings.append((",".join(sorted(changes)), seconds))
        return seconds

    def _check(self, changes: dict) -> None:
        where = "AttentionExplorer.set"
        if "frame" in changes and not 0 <= changes["frame"] < self.num_frames:
            raise UserError(f"{where}: frame {changes['frame']} is not within 0..{self.num_frames - 1}")
        for name in ("query", "readout"):
            if name in changes and changes[name] not in self.ids:
                raise UserError(f"{where}: {name} {changes[name]!r} is not an object id of the video ({self.ids})")
        if "head" in changes and changes["head"] != "mean" and not 0 <= int(changes["head"]) < max(self.heads, 1):
            raise UserError(f"{where}: head {changes['head']!r}; use 'mean' or 0..{self.heads - 1}")
        if "layer" in changes and changes["layer"] not in LAYERS:
            raise UserError(f"{where}: layer {changes['layer']!r}; use one of {list(LAYERS)}")
        if "scale" in changes and changes["scale"] not in SCALES:
            raise UserError(f"{where}: scale {changes['scale']!r}; use one of {list(SCALES)}")
        if "pixel" in changes:
            row, col = changes["pixel"]
            if not (0 <= row < self.grid[0] and 0 <= col < self.grid[1]):
                raise UserError(f"{where}: pixel {tuple(changes['pixel'])} is not on the {self.grid[0]} x "
                                f"{self.grid[1]} readout grid")

    def _redraw(self, view: str) -> None:
        """Redraw `view` from the state (blitting) and keep its PNG in `images`."""
        self.images[view] = self.views[view].redraw()

    def _exporting(self, view: str):
        """`view` drawn in ordinary draws (savefig, to_jshtml) inside this context: `BlittedView.exporting`."""
        return self.views[view].exporting()

    def _check_view(self, view: str) -> None:
        if view not in self.figures:
            hint = " (an XMem network has no queries)" if view == "attention" else ""
            raise UserError(f"AttentionExplorer: no {view!r} view{hint}; use one of {list(self.figures)}")

    # ------------------------------------------------------------------------------ exports
    def png(self, view: str = "attention") -> bytes:
        """The current picture of `view` ("attention" or "memory") as PNG bytes."""
        self._check_view(view)
        return self.images[view]

    def save_png(self, path, view: str = "attention"):
        """Write the current picture of `view` to `path` (a PNG, atomically: `save_figure`)."""
        return explorer_exports.save_png(self, path, view)

    def animation(self, view: str = "attention", frames: Sequence[int] | None = None, fps: float = 4.0) -> str:
        """`view` over `frames` (default: all), the other controls as they are, as a self-contained
        HTML animation (matplotlib's to_jshtml: plays in static HTML renders and in CI)."""
        return explorer_exports.animation(self, view, frames, fps)

    def to_html(self, path, view: str | None = None, frames: Sequence[int] | None = None, title: str | None = None):
        """One standalone HTML file (inline pictures of `view` over `frames`, a slider, the metric plot;
        no kernel needed), written atomically: `html_export.write_html`."""
        from .html_export import write_html

        return write_html(self, path, view, frames, title)

    def head_grid(self, frame: int | None = None, query: int | None = None) -> Figure:
        """Every head's cross-attention of one query on one frame, as small multiples: `head_grid.head_grid`."""
        from .head_grid import head_grid

        return head_grid(self, frame, query)

    # ------------------------------------------------------------------------------ the widget
    @property
    def widget(self):
        """The ipywidgets app (built on first use: `explorer_widget`); `widget.controls` names its controls."""
        if self.app is None:
            from .explorer_widget import ExplorerWidget

            self.app = ExplorerWidget(self)
        return self.app.box

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
