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

Panels ("attention" view): the frame with ground truth and with the prediction; the selected
query's cross-attention over the selected object's readout, on the frame; the matrix of the
chosen layer (QCIM cross-attention mass, queries x objects, or the QCIM / SIM self-attention);
the selected query's attention over every object's readout; and over time its own-object mass,
in-mask ratio, entropy and centroid distance (`explorer_metrics`) with the video's events.
The "memory" view is XMem's side (Sec. 3.2): the top-k affinity of one pixel over the memory
frames it reads, drawn on those frames (QMVOS reads memory the same way).

Responsiveness: every figure is built once; a control change updates its artists (`set_data`,
`set_clim`, texts), blits them over a cached background and encodes a PNG for the widget; the
upsampling is precomputed (`GridGeometry`) and so are the metrics of every head. About 0.1-0.2 s
per change for 30 frames at 240p on a laptop core (tests/viz/test_explorer.py prints it).
Widget callbacks read only their arguments and the explorer they close over.
"""

from __future__ import annotations

import io
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from PIL import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import UserError
from .common import ATTENTION_CMAP, bare, mark_events, to_numpy
from .explorer_metrics import METRICS, GridGeometry, attention_metrics
from .overlay import overlay
from .save import save_figure

LAYERS = {"cross": "QCIM cross-attention mass (QMVOS Eq. 4)",
          "qcim-self": "QCIM self-attention (QMVOS Eq. 3)", "sim-self": "SIM self-attention (QMVOS Eq. 2)"}
SCALES = ("shared", "per panel")
VIEWS = ("attention", "memory")
# the views each control changes
AFFECTS = {"frame": VIEWS, "readout": VIEWS, "scale": VIEWS, "pixel": ("memory",), "query": ("attention",),
           "head": ("attention",), "layer": ("attention",)}


# ---------------------------------------------------------------------------------- recording
@dataclass
class Recording:
    """One traced run over a video. frames T x H x W x 3 uint8; ground_truth and predictions
    T x H x W label maps (original ids); traces: a FrameTrace per frame; object_ids[t]: the
    original ids of frame t's objects in internal order (query k belongs to object_ids[t][k]);
    size: the `InferenceConfig.size` it was segmented with (-1: the frame's own);
    per_object: the queries attend to one memory readout per object (False: to F16 image
    features, the qcim-f16 ablation)."""

    name: str
    frames: np.ndarray
    ground_truth: np.ndarray | None
    predictions: np.ndarray
    traces: list
    object_ids: list[list[int]]
    size: int = -1
    per_object: bool = True

    @property
    def has_queries(self) -> bool:
        return any(t.qcim_attention is not None for t in self.traces)

    @property
    def ids(self) -> list[int]:
        """Every object id of the video, in order of appearance."""
        return list(dict.fromkeys(i for ids in self.object_ids for i in ids))

    def groups(self) -> list[list[int]]:
        """The original ids of each memory object group (objects given on the same frame share one)."""
        groups = []
        for trace, ids in zip(self.traces, self.object_ids):
            added = trace.events.get("objects_added") or []
            if added:
                groups.append([ids[k - 1] for k in added])
        return groups

    def metrics(self, head: int | str = "mean") -> pd.DataFrame:
        """The tidy metric table (frame, query, metric, value) of `explorer_metrics.attention_metrics`."""
        if self.ground_truth is None:
            raise UserError(f"{self.name}: the metrics need ground truth; record(..., ground_truth=labels)")
        return attention_metrics(self.traces, self.ground_truth, self.object_ids, self.size, head, self.per_object)


def record(network, frames, given_masks: Mapping[int, np.ndarray], ground_truth=None, config=None,
           name: str = "video", device: str = "cpu") -> Recording:
    """Segment `frames` (T x H x W x 3 uint8) with `network`, giving `given_masks[t]` on frame t,
    with the trace on (`VideoSegmenter(..., trace=True)`; `config` defaults to the size the
    network's recipe segments generated videos at, `generated_config(network)`)."""
    from ..inference import VideoSegmenter
    from ..train.validate import generated_config

    if 0 not in given_masks:
        raise UserError(f"{name}: record needs a mask on frame 0 (given_masks[0]), where tracking starts")
    config = config or generated_config(network)
    frames = to_numpy(frames)
    segmenter = VideoSegmenter(network, config, device=device, trace=True)
    results = [segmenter.step(frame, given_masks.get(t), end=t == len(frames) - 1) for t, frame in enumerate(frames)]
    return Recording(name, frames, None if ground_truth is None else to_numpy(ground_truth),
                     np.stack([r.labels for r in results]), [r.trace for r in results],
                     [list(r.internal_ids or []) for r in results], config.size,
                     getattr(getattr(network, "config", None), "qcim_source", "readout") == "readout")


# ---------------------------------------------------------------------------------- helpers
def outline(labels: np.ndarray, object_id: int, colour: Sequence[float]) -> np.ndarray:
    """H x W x 4 RGBA: `colour` on the one-pixel boundary of the object's region, transparent elsewhere."""
    inside = labels == object_id
    edge = np.zeros_like(inside)
    edge[:-1] |= inside[:-1] != inside[1:]
    edge[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    out = np.zeros((*labels.shape, 4), np.float32)
    out[edge] = (*colour[:3], 1.0)
    return out


def select_head(weights: np.ndarray, head: int | str, axis: int) -> np.ndarray:
    """One head of `weights` along `axis`, or their mean ("mean"; also when the layer has fewer heads)."""
    if head == "mean" or int(head) >= weights.shape[axis]:
        return weights.mean(axis)
    return np.take(weights, int(head), axis=axis)


def png_bytes(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's current pixels as PNG (fast compression: these are redrawn often)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------- the explorer
class AttentionExplorer:
    """See the module docstring. `events`: a `scene_events` table (frame, event, objects), or a
    mapping event name -> frames for every query. Controls (`set` keywords): frame, query (object
    id), head (int or "mean"), readout (object id), layer (LAYERS), scale (SCALES), pixel (row,
    column on the readout grid).

    Drawing: each view's Figure draws its static parts (axes, ticks, event marks) once into a
    cached background; a control change restores it and draws only the changed artists on top
    (blitting, as interactive matplotlib backends do). The background is redrawn when what it
    shows changes (the query's events, the objects on the frame, the matrix layer).
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
        self.figures: dict[str, Figure] = {}
        self.dynamic: dict[str, list] = {}  # per view: the artists redrawn on every change, in order
        self._backgrounds: dict[str, tuple] = {}  # per view: (static key, saved pixels)
        self._widget = None
        self._exports = False  # inside `_exporting`: ordinary draws
        self._syncing = False  # the controls are being set to the state
        if self.has_queries:
            self.figures["attention"] = self._build_attention()
        self.figures["memory"] = self._build_memory()
        for view, fig in self.figures.items():
            FigureCanvasAgg(fig)
            fig.canvas.draw()  # the constrained layout, once ...
            fig.set_layout_engine("none")  # ... then frozen: redraws move no axes
            # spines go over the images and lines, as in an ordinary draw
            self.dynamic[view] += [spine for ax in fig.axes for spine in ax.spines.values()
                                   if spine not in self.dynamic[view]]
            for artist in self._dynamic(view):
                artist.set_animated(True)
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
                if self._widget is not None:
                    self._widget_images[view].value = self.images[view]
        if self._widget is not None:
            self._sync_controls()
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

    # ------------------------------------------------------------------------------ drawing
    def _redraw(self, view: str) -> None:
        """Update `view`'s artists from the state, blit them over its background, render the PNG."""
        fig = self.figures[view]
        update, static = (self._update_attention, self._static_attention) if view == "attention" else \
            (self._update_memory, self._static_memory)
        key = static(apply=False)
        if self._backgrounds.get(view, (None,))[0] != key:
            static(apply=True)
            fig.canvas.draw()  # the static parts only: the dynamic artists are animated
            self._backgrounds[view] = (key, fig.canvas.copy_from_bbox(fig.bbox))
        else:
            fig.canvas.restore_region(self._backgrounds[view][1])
        update()
        renderer = fig.canvas.get_renderer()
        for artist in self._dynamic(view):
            if artist.get_visible() and (artist.axes is None or artist.axes.get_visible()):
                artist.draw(renderer)
        self.images[view] = png_bytes(fig.canvas)

    def _dynamic(self, view: str) -> list:
        """The artists of `view` drawn on every change, in drawing order (the legend last)."""
        legend = self.time_axes[0].get_legend() if view == "attention" else None
        return self.dynamic.get(view, []) + ([legend] if legend is not None else [])

    @contextmanager
    def _exporting(self, view: str):
        """Draw every artist in an ordinary draw (savefig, to_jshtml), then back to blitting."""
        for artist in self._dynamic(view):
            artist.set_animated(False)
        self._exports = True
        try:
            yield
        finally:
            self._exports = False
            for artist in self._dynamic(view):
                artist.set_animated(True)
            self._backgrounds.pop(view, None)  # the canvas was drawn over: redraw the background next time

    def _build_attention(self) -> Figure:
        height, width = self.rec.frames.shape[1:3]
        frame_height = self.width / 4 * height / width
        fig = Figure(figsize=(self.width, 2 * frame_height + 3.4), dpi=self.dpi, layout="constrained")
        rows = fig.add_gridspec(3, 1, height_ratios=[frame_height + 0.4, frame_height + 0.35, 2.2])
        top = rows[0].subgridspec(1, 4)
        self.ax_truth, self.ax_pred, self.ax_big, self.ax_matrix = (fig.add_subplot(top[0, k]) for k in range(4))
        blank = np.zeros((height, width), np.float32)
        self.im_truth = self.ax_truth.imshow(self.truth_images[0])
        self.im_pred = self.ax_pred.imshow(self.prediction_images[0])
        self.im_big_frame = self.ax_big.imshow(self.rec.frames[0])
        self.im_big = self.ax_big.imshow(blank, cmap=ATTENTION_CMAP, vmin=0, vmax=1, alpha=0.6)
        self.im_big_outline = self.ax_big.imshow(np.zeros((height, width, 4), np.float32))
        for ax in (self.ax_truth, self.ax_pred, self.ax_big):
            bare(ax)
        spines = [spine for ax in (self.ax_truth, self.ax_pred, self.ax_big) for spine in ax.spines.values()]
        self.ax_truth.set_title(" ", fontsize=9)
        self.ax_pred.set_title("prediction", fontsize=9)
        self.ax_big.set_title(" \n ", fontsize=8)
        dynamic = [self.im_truth, self.ax_truth.title, self.im_pred, self.im_big_frame, self.im_big,
                   self.im_big_outline, self.ax_big.title, *spines]
        # the matrix: a fixed-size image (NaN outside the current rows x columns) and its texts
        size = max(len(self.ids), self.max_sources, 1)
        cmap = matplotlib.colormaps[ATTENTION_CMAP].with_extremes(bad="0.92")
        self.im_matrix = self.ax_matrix.imshow(np.full((size, size), np.nan), cmap=cmap, vmin=0, vmax=1)
        self.matrix_texts = [[self.ax_matrix.text(c, r, "", ha="center", va="center", fontsize=8) for c in range(size)]
                             for r in range(size)]
        self.matrix_box = self.ax_matrix.add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="cyan",
                                                             linewidth=2))
        self.ax_matrix.set_title(" \n ", fontsize=8)
        dynamic += [self.im_matrix, *(t for row in self.matrix_texts for t in row), self.matrix_box,
                    self.ax_matrix.title]
        # the selected query over every object's readout
        middle = rows[1].subgridspec(1, max(self.max_sources, 4))
        self.small_axes, self.small_heats = [], []
        for k in range(self.max_sources):
            ax = fig.add_subplot(middle[0, k])
            frame_image = ax.imshow(self.rec.frames[0])
            self.small_heats.append((frame_image, ax.imshow(blank, cmap=ATTENTION_CMAP, vmin=0, vmax=1, alpha=0.6)))
            bare(ax)
            ax.set_title(" ", fontsize=8)
            self.small_axes.append(ax)
            dynamic += [frame_image, self.small_heats[-1][1], ax.title, *ax.spines.values()]
        # over time
        bottom = rows[2].subgridspec(1, 3)
        self.time_axes = [fig.add_subplot(bottom[0, k]) for k in range(3)]
        frames = np.arange(self.num_frames)
        nan = np.full(self.num_frames, np.nan)
        self.time_lines = {}
        for k, name in ((0, "own-object mass"), (0, "in-mask ratio"), (1, "entropy"), (2, "centroid distance")):
            (self.time_lines[name],) = self.time_axes[k].plot(frames, nan, marker=".", label=name)
        self.now_lines = [ax.axvline(0, color="0.3", linewidth=1.5) for ax in self.time_axes]
        for ax, ylabel in zip(self.time_axes, ("share of attention", "entropy (nats)", "pixels")):
            ax.set_xlim(-0.5, self.num_frames - 0.5)
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
        self.time_axes[0].set_ylim(-0.02, 1.02)
        for k, name in ((1, "entropy"), (2, "centroid distance")):
            values = [v[name] for v in self.series.values() if np.isfinite(v[name]).any()]
            self.time_axes[k].set_ylim(0, 1.05 * max((float(np.nanmax(v)) for v in values), default=1.0) + 1e-6)
        self.time_axes[0].set_title(" ", fontsize=9)
        self.time_axes[1].set_title("entropy", fontsize=9)
        self.time_axes[2].set_title("centroid distance to ground truth", fontsize=9)
        self.event_artists: list = []
        dynamic += [*self.time_lines.values(), *self.now_lines, self.time_axes[0].title]
        self.dynamic["attention"] = dynamic
        return fig

    def _matrix(self, t: int):
        """The matrix panel's weights (rows x columns) on frame t, and its column labels."""
        s, layer = self.state, self.state["layer"]
        ids = self.rec.object_ids[t]
        if layer == "cross":
            weights = None if self.cross[t] is None else select_head(self.cross[t].sum((-2, -1)), s["head"], 1)
            columns = [f"obj {i}" for i in ids] if self.per_object else ["F16"]
        elif layer == "qcim-self":
            weights = None if self.qcim_self[t] is None else select_head(self.qcim_self[t], s["head"], 1)
            columns = [f"q {i}" for i in ids]
        else:
            weights = None if self.sim_self[t] is None else select_head(self.sim_self[t], s["head"], 0)
            columns = [f"q {i}" for i in ids]
        rows = len(ids) if weights is None else weights.shape[0]
        columns = columns if weights is None else columns[: weights.shape[1]]
        return weights, [f"q {i}" for i in ids[:rows]], columns

    def _static_attention(self, apply: bool):
        """The background of the attention view: its key, and (apply) the artists it depends on."""
        s = self.state
        _, rows, columns = self._matrix(s["frame"])
        key = (s["query"], tuple(rows), tuple(columns))
        if not apply:
            return key
        ax = self.ax_matrix
        ax.set_xlim(-0.5, max(len(columns), 1) - 0.5)
        ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
        ax.set_xticks(range(len(columns)), columns, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        for artist in self.event_artists:  # event marks follow the query's object
            artist.remove()
        before = [list(a.collections) for a in self.time_axes]
        events = self.events_for(s["query"])
        for a in self.time_axes:
            mark_events(a, events)
        self.event_artists = [c for a, old in zip(self.time_axes, before) for c in a.collections if c not in old]
        if events or self.series:
            legend = self.time_axes[0].legend(fontsize=6, loc="upper right", framealpha=0.6)
            legend.set_animated(not self._exports)  # drawn over the lines, with the dynamic artists
            self.event_artists.append(legend)
        return key

    def _update_attention(self) -> None:
        s = self.state
        t, head = s["frame"], s["head"]
        frame = self.rec.frames[t]
        blank = np.zeros(frame.shape[:2], np.float32)
        self.im_truth.set_data(self.truth_images[t])
        self.ax_truth.set_title(f"frame {t}: ground truth", fontsize=9)
        self.im_pred.set_data(self.prediction_images[t])
        head_name = "mean of heads" if head == "mean" else f"head {head}"
        maps = self.query_attention()  # No x h x w or None
        upsampled = None if maps is None else self.geometry.upsample(maps)  # No x H x W
        shared_max = 1.0 if upsampled is None else float(upsampled.max()) or 1.0
        # the selected readout, large, with the query's (cyan) and the readout object's (white) outlines
        o = self.query_index(t, s["readout"]) if self.per_object else 0
        self.im_big_frame.set_data(frame)
        if upsampled is None or o is None or o >= len(upsampled):
            missing = s["query"] if maps is None else s["readout"]
            self.im_big.set_data(blank)
            self.ax_big.set_title("no query attention on this frame\n(masks given)" if self.cross[t] is None else
                                  f"object {missing} has no query\non this frame yet", fontsize=8)
        else:
            vmax = shared_max if s["scale"] == "shared" else float(upsampled[o].max()) or 1.0
            self.im_big.set_data(upsampled[o])
            self.im_big.set_clim(0, vmax)
            source = f"readout of object {s['readout']}" if self.per_object else "F16 image features"
            self.ax_big.set_title(f"query {s['query']} ({head_name}) on {source}\nmass {maps[o].sum():.2f}, "
                                  f"colours 0 to {vmax:.3g}", fontsize=8)
        outlines = np.zeros((*frame.shape[:2], 4), np.float32)
        if self.truth is not None:
            outlines = outline(self.truth[t], s["readout"], (1.0, 1.0, 1.0))
            query_edge = outline(self.truth[t], s["query"], (0.0, 1.0, 1.0))
            outlines[query_edge[..., 3] > 0] = query_edge[query_edge[..., 3] > 0]
        self.im_big_outline.set_data(outlines)
        # every readout, small
        sources = self.rec.object_ids[t] if self.per_object else ["F16"]
        for k, (ax, (im_frame, im_heat)) in enumerate(zip(self.small_axes, self.small_heats)):
            im_frame.set_data(frame)
            if upsampled is None or k >= len(upsampled):
                im_heat.set_data(blank)
                ax.set_title(" ", fontsize=8)
                selected = False
            else:
                im_heat.set_data(upsampled[k])
                im_heat.set_clim(0, shared_max if s["scale"] == "shared" else float(upsampled[k].max()) or 1.0)
                label = f"readout of object {sources[k]}" if self.per_object else "F16 image features"
                ax.set_title(f"{label}: mass {maps[k].sum():.2f}", fontsize=8)
                selected = self.per_object and sources[k] == s["readout"]
            for spine in ax.spines.values():
                spine.set(edgecolor="cyan" if selected else "black", linewidth=2.5 if selected else 0.8)
        self._update_matrix(t)
        # over time
        column = self.ids.index(s["query"])
        series = self.series.get(head, {})
        for name, line in self.time_lines.items():
            if name in series:
                line.set_ydata(series[name][:, column])
        for line in self.now_lines:
            line.set_xdata([t, t])
        self.time_axes[0].set_title(f"query {s['query']} ({head_name})", fontsize=9)

    def _update_matrix(self, t: int) -> None:
        s = self.state
        weights, rows, columns = self._matrix(t)
        size = len(self.matrix_texts)
        data = np.full((size, size), np.nan)
        if weights is not None:
            data[: weights.shape[0], : weights.shape[1]] = weights
        self.im_matrix.set_data(data)
        for r, c in np.ndindex(size, size):
            text, value = self.matrix_texts[r][c], data[r, c]
            text.set_visible(bool(np.isfinite(value)))
            if np.isfinite(value):
                text.set_text(f"{value:.2f}")
                text.set_color("black" if value > 0.6 else "white")
        q = self.query_index(t, s["query"])
        self.matrix_box.set_visible(weights is not None and q is not None and q < len(rows))
        self.matrix_box.set_bounds(-0.5, (q or 0) - 0.5, max(len(columns), 1), 1)
        title = LAYERS[s["layer"]] + ("" if s["head"] == "mean" else f", head {s['head']}")
        self.ax_matrix.set_title(f"{title}\n" + ("rows: queries" if weights is not None else "(none on this frame)"),
                                 fontsize=8)

    def _build_memory(self) -> Figure:
        height, width = self.rec.frames.shape[1:3]
        slots = max([1] + [len(t.working_frames) for t in self.rec.traces])
        columns = min(slots + 1, 6)
        rows = math.ceil((slots + 1) / columns)
        panel = self.width / columns
        fig = Figure(figsize=(self.width, rows * (panel * height / width + 0.45) + 0.5), dpi=self.dpi,
                     layout="constrained")
        axes = list(fig.subplots(rows, columns, squeeze=False).flat)
        for ax in axes[slots + 1:]:
            ax.remove()
        self.ax_query = axes[0]
        self.im_query = self.ax_query.imshow(self.prediction_images[0])
        (self.query_marker,) = self.ax_query.plot([0], [0], marker="+", markersize=14, markeredgewidth=2, color="cyan")
        bare(self.ax_query)
        self.ax_query.set_title(" ", fontsize=8)
        blank = np.zeros((height, width), np.float32)
        self.memory_axes, self.memory_heats = axes[1: slots + 1], []
        dynamic = [self.im_query, self.query_marker, self.ax_query.title, *self.ax_query.spines.values()]
        for ax in self.memory_axes:
            frame_image = ax.imshow(self.rec.frames[0])
            self.memory_heats.append((frame_image, ax.imshow(blank, cmap=ATTENTION_CMAP, vmin=0, vmax=1, alpha=0.6)))
            bare(ax)
            ax.set_title(" ", fontsize=8)
            dynamic += [*self.memory_heats[-1], ax.title, *ax.spines.values()]
        self.memory_title = fig.suptitle(" ", fontsize=9)
        self.dynamic["memory"] = dynamic + [self.memory_title]
        return fig

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

    def _static_memory(self, apply: bool):
        s = self.state
        read = self.pixel_affinity(s["frame"], s["readout"], s["pixel"])
        shown = 0 if read is None else len(read[1])
        if apply:
            for k, ax in enumerate(self.memory_axes):
                ax.set_visible(k < shown)
        return (shown,)

    def _update_memory(self) -> None:
        s = self.state
        t = s["frame"]
        self.im_query.set_data(self.prediction_images[t])
        read = self.pixel_affinity(t, s["readout"], s["pixel"])
        pixel = s["pixel"] if read is None else read[-1]
        y, x = self.centres[pixel[0], pixel[1]]
        self.query_marker.set_data([x], [y])
        self.ax_query.set_title(f"frame {t} (prediction), pixel {tuple(int(p) for p in pixel)}", fontsize=8)
        if read is None:
            self.memory_title.set_text(f"XMem memory affinity (Sec. 3.2): frame {t} read no memory")
            return
        working, frames, long_weight, long_size, _ = read
        maps = self.geometry.upsample(working)  # n x H x W
        shared_max = float(maps.max()) or 1.0
        for k, (ax, (im_frame, im_heat)) in enumerate(zip(self.memory_axes, self.memory_heats)):
            if k >= len(maps):
                continue
            vmax = shared_max if s["scale"] == "shared" else float(maps[k].max()) or 1.0
            im_frame.set_data(self.rec.frames[frames[k]])
            im_heat.set_data(maps[k])
            im_heat.set_clim(0, vmax)
            ax.set_title(f"memory frame {frames[k]}: weight {working[k].sum():.2f}\ncolours 0 to {vmax:.3g}",
                         fontsize=8)
        group = next((ids for ids in self.groups if s["readout"] in ids), [])
        self.memory_title.set_text(
            f"XMem memory affinity (Sec. 3.2): where one pixel of frame {t} reads the memory of objects {group} "
            f"(top-k); long-term memory: {long_size} elements, weight {long_weight:.2f}")

    # ------------------------------------------------------------------------------ exports
    def png(self, view: str = "attention") -> bytes:
        """The current picture of `view` ("attention" or "memory") as PNG bytes."""
        self._check_view(view)
        return self.images[view]

    def save_png(self, path, view: str = "attention"):
        """Write the current picture of `view` to `path` (a PNG, atomically: `save_figure`)."""
        self._check_view(view)
        with self._exporting(view):
            return save_figure(self.figures[view], path, dpi=self.dpi, bbox_inches=None)

    def animation(self, view: str = "attention", frames: Sequence[int] | None = None, fps: float = 4.0) -> str:
        """`view` over `frames` (default: all), the other controls as they are, as a self-contained
        HTML animation (matplotlib's to_jshtml: plays in static HTML renders and in CI)."""
        from .animation import animation_of

        self._check_view(view)
        frames = list(range(self.num_frames)) if frames is None else list(frames)
        before = self.state["frame"]
        update, static = (self._update_attention, self._static_attention) if view == "attention" else \
            (self._update_memory, self._static_memory)

        exporting = [True]  # matplotlib's animation may call `draw` again on a later canvas draw: ignore it

        def draw(k: int):
            if exporting[0]:
                self.state["frame"] = frames[k]
                static(apply=True)
                update()

        try:
            with self._exporting(view):
                return animation_of(self.figures[view], draw, len(frames), fps)
        finally:
            exporting[0] = False
            self.state["frame"] = before
            self._redraw(view)

    def to_html(self, path, view: str | None = None, frames: Sequence[int] | None = None, title: str | None = None):
        """One standalone HTML file (inline pictures of `view` over `frames`, a slider, the metric plot;
        no kernel needed), written atomically: `html_export.write_html`."""
        from .html_export import write_html

        return write_html(self, path, view, frames, title)

    def head_grid(self, frame: int | None = None, query: int | None = None) -> Figure:
        """Every head's cross-attention of one query on one frame, as small multiples: `head_grid.head_grid`."""
        from .head_grid import head_grid

        return head_grid(self, frame, query)

    def _check_view(self, view: str) -> None:
        if view not in self.figures:
            hint = " (an XMem network has no queries)" if view == "attention" else ""
            raise UserError(f"AttentionExplorer: no {view!r} view{hint}; use one of {list(self.figures)}")

    # ------------------------------------------------------------------------------ the widget
    @property
    def widget(self):
        """The ipywidgets app (built on first use); `widget.controls` names its controls."""
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def _build_widget(self):
        import ipywidgets as w

        s = self.state
        frame = w.IntSlider(s["frame"], 0, self.num_frames - 1, description="frame", continuous_update=False)
        play = w.Play(value=s["frame"], min=0, max=self.num_frames - 1, interval=800, description="play")
        w.jslink((play, "value"), (frame, "value"))
        ids = [(f"object {i}", i) for i in self.ids]
        no_queries = not self.has_queries
        query = w.Dropdown(options=ids, value=s["query"], description="query", disabled=no_queries)
        head = w.Dropdown(options=[("mean", "mean")] + [(f"head {h}", h) for h in range(self.heads)], value="mean",
                          description="head", disabled=no_queries)
        readout = w.Dropdown(options=ids, value=s["readout"], description="readout of")
        layer = w.Dropdown(options=[(v, k) for k, v in LAYERS.items()], value=s["layer"], description="matrix",
                           disabled=no_queries, layout=w.Layout(width="400px"))
        scale = w.ToggleButtons(options=list(SCALES), value=s["scale"], description="colours")
        row = w.IntSlider(s["pixel"][0], 0, self.grid[0] - 1, description="pixel row", continuous_update=False)
        col = w.IntSlider(s["pixel"][1], 0, self.grid[1] - 1, description="pixel col", continuous_update=False)
        status = w.HTML()
        controls = {"frame": frame, "query": query, "head": head, "readout": readout, "layer": layer, "scale": scale}
        for name, control in controls.items():
            control.observe(lambda change, name=name: self._on_change(status, **{name: change["new"]}), "value")
        for control in (row, col):
            control.observe(lambda change: self._on_change(status, pixel=(row.value, col.value)), "value")
        self._widget_images = {view: w.Image(value=self.images[view], format="png") for view in self.figures}
        children = [w.HBox([play, frame]), w.HBox([query, head, readout]), w.HBox([layer, scale])]
        if "attention" in self.figures:
            children.append(self._widget_images["attention"])
        children += [w.HBox([row, col]), self._widget_images["memory"], status]
        box = w.VBox(children)
        box.controls = {**controls, "play": play, "pixel row": row, "pixel col": col}  # for tests and scripts
        from .pixel_pick import attach

        box.pick_events = attach(self, self._widget_images["memory"])  # click to pick (with ipyevents)
        return box

    def _on_change(self, status, **changes) -> None:
        if self._syncing:  # a control following `set`, not a person
            return
        seconds = self.set(**changes)
        status.value = f"<small>redrawn in {1000 * seconds:.0f} ms</small>"

    def _sync_controls(self) -> None:
        """Show the state in the controls (after `set` from Python), without redrawing again."""
        controls, s = self._widget.controls, self.state
        values = {name: s[name] for name in ("frame", "query", "head", "readout", "layer", "scale")}
        values.update({"pixel row": s["pixel"][0], "pixel col": s["pixel"][1]})
        self._syncing = True
        try:
            for name, value in values.items():
                if controls[name].value != value:
                    controls[name].value = value
        finally:
            self._syncing = False

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# ---------------------------------------------------------------------------------- across variants
def metrics_across_variants(table: pd.DataFrame, metrics: Sequence[str] = METRICS, query: int | None = None,
                            events: Mapping[str, Sequence[int]] | None = None) -> Figure:
    """One panel per metric over time, one line per variant: `table` is tidy (variant, frame,
    query, metric, value), e.g. `Recording.metrics()` of each network with a `variant` column;
    the value is the mean over queries (or that of `query`). Missing metrics (own-object mass of
    qcim-f16) leave no line."""
    from .plots import metric_over_time

    missing = {"variant", "frame", "query", "metric", "value"} - set(table.columns)
    if missing:
        raise UserError(f"metrics_across_variants: the table lacks column(s) {sorted(missing)}")
    if query is not None:
        table = table[table["query"] == query]
    frames = sorted(table["frame"].unique())
    fig = Figure(figsize=(3.4 * len(metrics), 3.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, name in zip(axes, metrics):
        part = table[table["metric"] == name].groupby(["variant", "frame"])["value"].mean()
        values = {variant: part[variant].reindex(frames).to_numpy() for variant in table["variant"].unique()
                  if variant in part.index.get_level_values(0) and np.isfinite(part[variant]).any()}
        metric_over_time(frames, values, events, ax=ax, ylabel=name, title=name)
        if ax is not axes[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle("QCIM cross-attention metrics " + ("(mean over queries)" if query is None else f"(query {query})"))
    return fig
