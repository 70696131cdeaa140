"""The explorer's "attention" view: where QMVOS's object queries look (QCIM, QMVOS Sec. 3.3).

Panels: the frame with ground truth and with the prediction; the selected query's cross-attention
(QMVOS Eq. 4) over the selected object's readout, on the frame, with both objects' outlines; the
matrix of the chosen layer (QCIM cross-attention mass, queries x objects, or the QCIM / SIM
self-attention, QMVOS Eq. 3 / Eq. 2); the selected query's attention over every object's readout;
and over time its own-object mass, in-mask ratio, entropy and centroid distance
(`explorer_metrics`) with the video's events. Drawn by blitting (`blit.BlittedView`).
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .blit import BlittedView
from .common import ATTENTION_CMAP, bare, mark_events
from .explorer_metrics import select_head
from .overlay import outline

LAYERS = {"cross": "QCIM cross-attention mass (QMVOS Eq. 4)",
          "qcim-self": "QCIM self-attention (QMVOS Eq. 3)", "sim-self": "SIM self-attention (QMVOS Eq. 2)"}


class AttentionView(BlittedView):
    """The attention view of an `AttentionExplorer` (see the module docstring)."""

    def build(self) -> Figure:
        ex = self.explorer
        height, width = ex.rec.frames.shape[1:3]
        frame_height = ex.width / 4 * height / width
        fig = Figure(figsize=(ex.width, 2 * frame_height + 3.4), dpi=ex.dpi, layout="constrained")
        rows = fig.add_gridspec(3, 1, height_ratios=[frame_height + 0.4, frame_height + 0.35, 2.2])
        top = rows[0].subgridspec(1, 4)
        self.ax_truth, self.ax_pred, self.ax_big, self.ax_matrix = (fig.add_subplot(top[0, k]) for k in range(4))
        blank = np.zeros((height, width), np.float32)
        self.im_truth = self.ax_truth.imshow(ex.truth_images[0])
        self.im_pred = self.ax_pred.imshow(ex.prediction_images[0])
        self.im_big_frame = self.ax_big.imshow(ex.rec.frames[0])
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
        size = max(len(ex.ids), ex.max_sources, 1)
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
        middle = rows[1].subgridspec(1, max(ex.max_sources, 4))
        self.small_axes, self.small_heats = [], []
        for k in range(ex.max_sources):
            ax = fig.add_subplot(middle[0, k])
            frame_image = ax.imshow(ex.rec.frames[0])
            self.small_heats.append((frame_image, ax.imshow(blank, cmap=ATTENTION_CMAP, vmin=0, vmax=1, alpha=0.6)))
            bare(ax)
            ax.set_title(" ", fontsize=8)
            self.small_axes.append(ax)
            dynamic += [frame_image, self.small_heats[-1][1], ax.title, *ax.spines.values()]
        # over time
        bottom = rows[2].subgridspec(1, 3)
        self.time_axes = [fig.add_subplot(bottom[0, k]) for k in range(3)]
        frames = np.arange(ex.num_frames)
        nan = np.full(ex.num_frames, np.nan)
        self.time_lines = {}
        for k, name in ((0, "own-object mass"), (0, "in-mask ratio"), (1, "entropy"), (2, "centroid distance")):
            (self.time_lines[name],) = self.time_axes[k].plot(frames, nan, marker=".", label=name)
        self.now_lines = [ax.axvline(0, color="0.3", linewidth=1.5) for ax in self.time_axes]
        for ax, ylabel in zip(self.time_axes, ("share of attention", "entropy (nats)", "pixels")):
            ax.set_xlim(-0.5, ex.num_frames - 0.5)
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
        self.time_axes[0].set_ylim(-0.02, 1.02)
        for k, name in ((1, "entropy"), (2, "centroid distance")):
            values = [v[name] for v in ex.series.values() if np.isfinite(v[name]).any()]
            self.time_axes[k].set_ylim(0, 1.05 * max((float(np.nanmax(v)) for v in values), default=1.0) + 1e-6)
        self.time_axes[0].set_title(" ", fontsize=9)
        self.time_axes[1].set_title("entropy", fontsize=9)
        self.time_axes[2].set_title("centroid distance to ground truth", fontsize=9)
        self.event_artists: list = []
        dynamic += [*self.time_lines.values(), *self.now_lines, self.time_axes[0].title]
        self.dynamic = dynamic
        return fig

    def artists(self) -> list:
        """The dynamic artists, and the legend last (it goes over the lines)."""
        legend = self.time_axes[0].get_legend()
        return self.dynamic + ([legend] if legend is not None else [])

    def matrix(self, t: int):
        """The matrix panel's weights (rows x columns) on frame t, and its row and column labels."""
        ex = self.explorer
        s, layer = ex.state, ex.state["layer"]
        ids = ex.rec.object_ids[t]
        if layer == "cross":
            weights = None if ex.cross[t] is None else select_head(ex.cross[t].sum((-2, -1)), s["head"], 1)
            columns = [f"obj {i}" for i in ids] if ex.per_object else ["F16"]
        elif layer == "qcim-self":
            weights = None if ex.qcim_self[t] is None else select_head(ex.qcim_self[t], s["head"], 1)
            columns = [f"q {i}" for i in ids]
        else:
            weights = None if ex.sim_self[t] is None else select_head(ex.sim_self[t], s["head"], 0)
            columns = [f"q {i}" for i in ids]
        rows = len(ids) if weights is None else weights.shape[0]
        columns = columns if weights is None else columns[: weights.shape[1]]
        return weights, [f"q {i}" for i in ids[:rows]], columns

    def static(self, apply: bool):
        """The background: the matrix's rows and columns, and the selected query's event marks."""
        ex = self.explorer
        s = ex.state
        _, rows, columns = self.matrix(s["frame"])
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
        events = ex.events_for(s["query"])
        for a in self.time_axes:
            mark_events(a, events)
        self.event_artists = [c for a, old in zip(self.time_axes, before) for c in a.collections if c not in old]
        if events or ex.series:
            legend = self.time_axes[0].legend(fontsize=6, loc="upper right", framealpha=0.6)
            legend.set_animated(self.animated)  # drawn over the lines, with the dynamic artists
            self.event_artists.append(legend)
        return key

    def update(self) -> None:
        ex = self.explorer
        s = ex.state
        t, head = s["frame"], s["head"]
        frame = ex.rec.frames[t]
        blank = np.zeros(frame.shape[:2], np.float32)
        self.im_truth.set_data(ex.truth_images[t])
        self.ax_truth.set_title(f"frame {t}: ground truth", fontsize=9)
        self.im_pred.set_data(ex.prediction_images[t])
        head_name = "mean of heads" if head == "mean" else f"head {head}"
        maps = ex.query_attention()  # No x h x w or None
        upsampled = None if maps is None else ex.geometry.upsample(maps)  # No x H x W
        shared_max = 1.0 if upsampled is None else float(upsampled.max()) or 1.0
        # the selected readout, large, with the query's (cyan) and the readout object's (white) outlines
        o = ex.query_index(t, s["readout"]) if ex.per_object else 0
        self.im_big_frame.set_data(frame)
        if upsampled is None or o is None or o >= len(upsampled):
            missing = s["query"] if maps is None else s["readout"]
            self.im_big.set_data(blank)
            self.ax_big.set_title("no query attention on this frame\n(masks given)" if ex.cross[t] is None else
                                  f"object {missing} has no query\non this frame yet", fontsize=8)
        else:
            vmax = shared_max if s["scale"] == "shared" else float(upsampled[o].max()) or 1.0
            self.im_big.set_data(upsampled[o])
            self.im_big.set_clim(0, vmax)
            source = f"readout of object {s['readout']}" if ex.per_object else "F16 image features"
            self.ax_big.set_title(f"query {s['query']} ({head_name}) on {source}\nmass {maps[o].sum():.2f}, "
                                  f"colours 0 to {vmax:.3g}", fontsize=8)
        outlines = np.zeros((*frame.shape[:2], 4), np.float32)
        if ex.truth is not None:
            outlines = outline(ex.truth[t], s["readout"], (1.0, 1.0, 1.0))
            query_edge = outline(ex.truth[t], s["query"], (0.0, 1.0, 1.0))
            outlines[query_edge[..., 3] > 0] = query_edge[query_edge[..., 3] > 0]
        self.im_big_outline.set_data(outlines)
        # every readout, small
        sources = ex.rec.object_ids[t] if ex.per_object else ["F16"]
        for k, (ax, (im_frame, im_heat)) in enumerate(zip(self.small_axes, self.small_heats)):
            im_frame.set_data(frame)
            if upsampled is None or k >= len(upsampled):
                im_heat.set_data(blank)
                ax.set_title(" ", fontsize=8)
                selected = False
            else:
                im_heat.set_data(upsampled[k])
                im_heat.set_clim(0, shared_max if s["scale"] == "shared" else float(upsampled[k].max()) or 1.0)
                label = f"readout of object {sources[k]}" if ex.per_object else "F16 image features"
                ax.set_title(f"{label}: mass {maps[k].sum():.2f}", fontsize=8)
                selected = ex.per_object and sources[k] == s["readout"]
            for spine in ax.spines.values():
                spine.set(edgecolor="cyan" if selected else "black", linewidth=2.5 if selected else 0.8)
        self.update_matrix(t)
        # over time
        column = ex.ids.index(s["query"])
        series = ex.series.get(head, {})
        for name, line in self.time_lines.items():
            if name in series:
                line.set_ydata(series[name][:, column])
        for line in self.now_lines:
            line.set_xdata([t, t])
        self.time_axes[0].set_title(f"query {s['query']} ({head_name})", fontsize=9)

    def update_matrix(self, t: int) -> None:
        """The matrix panel on frame t: weights, their values as text, the selected query's row boxed."""
        ex = self.explorer
        s = ex.state
        weights, rows, columns = self.matrix(t)
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
        q = ex.query_index(t, s["query"])
        self.matrix_box.set_visible(weights is not None and q is not None and q < len(rows))
        self.matrix_box.set_bounds(-0.5, (q or 0) - 0.5, max(len(columns), 1), 1)
        title = LAYERS[s["layer"]] + ("" if s["head"] == "mean" else f", head {s['head']}")
        self.ax_matrix.set_title(f"{title}\n" + ("rows: queries" if weights is not None else "(none on this frame)"),
                                 fontsize=8)
