"""The attention explorer as one standalone HTML file: `explorer.to_html("run.html")`.

Like BertViz's standalone HTML, the page needs no kernel, no server and no network: every picture
is inline (base64 PNG) and a few lines of JavaScript move through them. It holds

* the chosen view ("attention": the QCIM cross-attention of the chosen query, head and readout,
  QMVOS Sec. 3.3, Eq. 4; or "memory": XMem's top-k memory affinity of the chosen pixel, Sec. 3.2),
  drawn by the explorer itself for every frame, with the other controls as they are;
* a slider over the frames;
* the metric plot: the chosen query's `explorer_metrics` over time (own-object mass and entropy need
  no ground truth; in-mask ratio and centroid distance do), a marker at the slider's frame, and
  the values of that frame in a table.

Written atomically (`atomic.atomic_path`); the explorer's controls are as they were afterwards.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..errors import UserError
from .explorer_metrics import METRICS, attention_metrics

SCRIPT = """
const data = JSON.parse(document.getElementById("explorer-data").textContent);
const slider = document.getElementById("frame");
function show(k) {
  document.getElementById("view").src = "data:image/png;base64," + data.images[k];
  document.getElementById("frame-label").textContent = "frame " + data.frames[k];
  data.panels.forEach((panel, p) => {
    const marker = document.getElementById("now-" + p);
    marker.style.left = (100 * panel.x[k]) + "%";
  });
  data.metrics.forEach((name, m) => {
    const value = data.values[m][k];
    document.getElementById("value-" + m).textContent = value === null ? "-" : value.toFixed(3);
  });
}
slider.addEventListener("input", () => show(Number(slider.value)));
show(Number(slider.value));
"""

STYLE = """
body { font-family: sans-serif; margin: 1em; max-width: 70em; }
.controls { margin: 0.5em 0; }
#frame { width: 40em; vertical-align: middle; }
img { max-width: 100%; }
#plot { position: relative; display: inline-block; }
.now { position: absolute; width: 2px; background: rgba(0, 170, 255, 0.8); pointer-events: none; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #ccc; }
"""


def png_base64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def query_metric_series(explorer, frames: Sequence[int]) -> dict[str, list[float | None]]:
    """metric -> the chosen query's value on each of `frames` (None where it has none). Without
    ground truth, the metrics that need none (own-object mass, entropy)."""
    rec, s = explorer.rec, explorer.state
    if not explorer.has_queries:
        return {}
    truth = rec.ground_truth if rec.ground_truth is not None else np.zeros(rec.frames.shape[:3], np.uint8)
    table = attention_metrics(rec.traces, truth, rec.object_ids, rec.size, s["head"], rec.per_object)
    table = table[table["query"] == s["query"]]
    out = {}
    for name in METRICS:
        values = table[table["metric"] == name].set_index("frame")["value"].reindex(frames)
        if np.isfinite(values.to_numpy(np.float64)).any():
            out[name] = [float(v) if np.isfinite(v) else None for v in values]
    return out


def metric_plot(series: dict, frames: Sequence[int], query: int, width: float, dpi: float):
    """The metric panels as PNG bytes, and per panel where the axes lie (figure fractions) and where
    each frame falls on them (x fractions), for the page's marker."""
    fig = Figure(figsize=(width, 2.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (name, values) in zip(axes, series.items()):
        ax.plot(frames, [np.nan if v is None else v for v in values], marker=".")
        ax.set_xlim(frames[0] - 0.5, frames[-1] + 0.5)  # every frame on the axis, with or without a value
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"query {query}: QCIM cross-attention metrics (QMVOS Eq. 4)", fontsize=9)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fig.set_layout_engine("none")
    panels = []
    for ax in axes:
        box = ax.get_position()  # figure fractions, y from the bottom
        x = [float(fig.transFigure.inverted().transform(ax.transData.transform((f, 0)))[0]) for f in frames]
        panels.append({"x": x, "top": 1.0 - box.y1, "height": box.height})
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # no bbox_inches: the fractions above stay true
    return buffer.getvalue(), panels


def explorer_html(explorer, view: str | None = None, frames: Sequence[int] | None = None,
                  title: str | None = None) -> str:
    """The page (see the module docstring) as a string; `view` defaults to "attention" when the
    network has queries, else "memory"; `frames` to every frame."""
    view = view or ("attention" if "attention" in explorer.figures else "memory")
    explorer._check_view(view)
    frames = list(range(explorer.num_frames)) if frames is None else [int(f) for f in frames]
    if not frames or not all(0 <= f < explorer.num_frames for f in frames):
        raise UserError(f"to_html: frames must lie in 0..{explorer.num_frames - 1}, got {frames}")
    s = explorer.state
    before = s["frame"]
    images = []
    try:
        for t in frames:
            explorer.set(frame=t)
            images.append(png_base64(explorer.png(view)))
    finally:
        explorer.set(frame=before)
    series = query_metric_series(explorer, frames)
    plot, panels = metric_plot(series, frames, s["query"], explorer.width, explorer.dpi) if series else (None, [])
    chosen = (f"query {s['query']}, head {s['head']}, readout of object {s['readout']}, matrix {s['layer']}"
              if view == "attention" else f"readout of object {s['readout']}, pixel {tuple(s['pixel'])}")
    title = title or f"{explorer.rec.name}: {view} view"
    data = {"frames": frames, "images": images, "panels": panels, "metrics": list(series),
            "values": list(series.values())}
    start = frames.index(before) if before in frames else 0
    markers = "".join(f'<div class="now" id="now-{p}" style="top: {100 * panel["top"]:.3f}%; '
                      f'height: {100 * panel["height"]:.3f}%"></div>' for p, panel in enumerate(panels))
    metric_block = (f'<div id="plot"><img id="metric-plot" alt="metrics over time" '
                    f'src="data:image/png;base64,{png_base64(plot)}">{markers}</div>'
                    '<table id="metric-values"><tr><th>metric</th><th>this frame</th></tr>'
                    + "".join(f'<tr><td>{html.escape(name)}</td><td id="value-{m}">-</td></tr>'
                              for m, name in enumerate(series)) + "</table>"
                    if series else "<p>No attention metrics: this network has no queries.</p>")
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(chosen)}; {len(frames)} frames. Made by QMVOS Lab's AttentionExplorer.to_html.</p>
<div class="controls"><input type="range" id="frame" min="0" max="{len(frames) - 1}" step="1" value="{start}">
<span id="frame-label">frame {frames[start]}</span></div>
<img id="view" alt="{view} view" src="data:image/png;base64,{images[start]}">
{metric_block}
<script type="application/json" id="explorer-data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""


def write_html(explorer, path: str | os.PathLike, view: str | None = None, frames: Sequence[int] | None = None,
               title: str | None = None) -> Path:
    """Write `explorer_html(...)` to `path` atomically; returns the path."""
    page = explorer_html(explorer, view, frames, title)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return Path(path)
