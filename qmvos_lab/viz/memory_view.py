"""The explorer's "memory" view: XMem's side (XMem Sec. 3.2). The top-k affinity of one pixel of
the frame over the memory frames it reads, drawn on those frames (QMVOS reads memory the same way),
with the frame's prediction and the pixel marked. Drawn by blitting (`blit.BlittedView`)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .blit import BlittedView
from .common import ATTENTION_CMAP, bare


class MemoryView(BlittedView):
    """The memory view of an `AttentionExplorer` (see the module docstring); the affinity comes
    from `AttentionExplorer.pixel_affinity`."""

    def build(self) -> Figure:
        ex = self.explorer
        height, width = ex.rec.frames.shape[1:3]
        slots = max([1] + [len(t.working_frames) for t in ex.rec.traces])
        columns = min(slots + 1, 6)
        rows = math.ceil((slots + 1) / columns)
        panel = ex.width / columns
        fig = Figure(figsize=(ex.width, rows * (panel * height / width + 0.45) + 0.5), dpi=ex.dpi,
                     layout="constrained")
        axes = list(fig.subplots(rows, columns, squeeze=False).flat)
        for ax in axes[slots + 1:]:
            ax.remove()
        self.ax_query = axes[0]
        self.im_query = self.ax_query.imshow(ex.prediction_images[0])
        (self.query_marker,) = self.ax_query.plot([0], [0], marker="+", markersize=14, markeredgewidth=2, color="cyan")
        bare(self.ax_query)
        self.ax_query.set_title(" ", fontsize=8)
        blank = np.zeros((height, width), np.float32)
        self.memory_axes, self.memory_heats = axes[1: slots + 1], []
        dynamic = [self.im_query, self.query_marker, self.ax_query.title, *self.ax_query.spines.values()]
        for ax in self.memory_axes:
            frame_image = ax.imshow(ex.rec.frames[0])
            self.memory_heats.append((frame_image, ax.imshow(blank, cmap=ATTENTION_CMAP, vmin=0, vmax=1, alpha=0.6)))
            bare(ax)
            ax.set_title(" ", fontsize=8)
            dynamic += [*self.memory_heats[-1], ax.title, *ax.spines.values()]
        self.memory_title = fig.suptitle(" ", fontsize=9)
        self.dynamic = dynamic + [self.memory_title]
        return fig

    def static(self, apply: bool):
        """The background: which memory panels are shown (as many as the frames the pixel reads)."""
        s = self.explorer.state
        read = self.explorer.pixel_affinity(s["frame"], s["readout"], s["pixel"])
        shown = 0 if read is None else len(read[1])
        if apply:
            for k, ax in enumerate(self.memory_axes):
                ax.set_visible(k < shown)
        return (shown,)

    def update(self) -> None:
        ex = self.explorer
        s = ex.state
        t = s["frame"]
        self.im_query.set_data(ex.prediction_images[t])
        read = ex.pixel_affinity(t, s["readout"], s["pixel"])
        pixel = s["pixel"] if read is None else read[-1]
        y, x = ex.centres[pixel[0], pixel[1]]
        self.query_marker.set_data([x], [y])
        self.ax_query.set_title(f"frame {t} (prediction), pixel {tuple(int(p) for p in pixel)}", fontsize=8)
        if read is None:
            self.memory_title.set_text(f"XMem memory affinity (Sec. 3.2): frame {t} read no memory")
            return
        working, frames, long_weight, long_size, _ = read
        maps = ex.geometry.upsample(working)  # n x H x W
        shared_max = float(maps.max()) or 1.0
        for k, (ax, (im_frame, im_heat)) in enumerate(zip(self.memory_axes, self.memory_heats)):
            if k >= len(maps):
                continue
            vmax = shared_max if s["scale"] == "shared" else float(maps[k].max()) or 1.0
            im_frame.set_data(ex.rec.frames[frames[k]])
            im_heat.set_data(maps[k])
            im_heat.set_clim(0, vmax)
            ax.set_title(f"memory frame {frames[k]}: weight {working[k].sum():.2f}\ncolours 0 to {vmax:.3g}",
                         fontsize=8)
        group = next((ids for ids in ex.groups if s["readout"] in ids), [])
        self.memory_title.set_text(
            f"XMem memory affinity (Sec. 3.2): where one pixel of frame {t} reads the memory of objects {group} "
            f"(top-k); long-term memory: {long_size} elements, weight {long_weight:.2f}")
