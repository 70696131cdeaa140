"""Figures of frames, memory and metrics over time, training curves and J&F tables.

Every function takes data (numpy or torch) and returns a `matplotlib.figure.Figure`; none writes a
file (see `save.save_figure`), switches the backend or shows anything (see `common` for why
figures are built without pyplot).
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import UserError
from .common import bare, figure_and_axes, grid, mark_events, to_image, to_numpy
from .overlay import overlay


def show_frames(frames, ground_truth=None, prediction=None, titles: Sequence[str] | None = None,
                columns: int = 6, palette: bytes | None = None, alpha: float = 0.5) -> Figure:
    """A grid of frames (T x H x W x 3) with label maps (T x H x W) overlaid.

    Each band of `columns` frames has one row per layer: "ground truth" and/or "prediction"
    (the frames alone when neither is given); titles default to "frame t".
    """
    images = [to_image(frame) for frame in frames]
    layers = {name: [to_numpy(m).astype(np.int64) for m in masks]
              for name, masks in (("ground truth", ground_truth), ("prediction", prediction)) if masks is not None}
    for name, masks in layers.items():
        if len(masks) != len(images):
            raise UserError(f"show_frames: {len(images)} frames but {len(masks)} {name} masks; pass one per frame")
    if titles is not None and len(titles) != len(images):
        raise UserError(f"show_frames: {len(images)} frames but {len(titles)} titles; pass one per frame")
    layer_rows = list(layers.items()) or [("frame", None)]  # one row per layer in each band
    columns = max(1, min(columns, len(images)))
    bands = math.ceil(len(images) / columns)
    height, width = images[0].shape[:2]
    fig, axes = grid(bands * len(layer_rows), columns, panel=(2.2, 2.2 * height / width + 0.3))
    for row, col in np.ndindex(axes.shape):
        band, r = divmod(row, len(layer_rows))
        t, ax = band * columns + col, axes[row, col]
        if t >= len(images):  # the last band's unused columns
            ax.remove()
            continue
        name, masks = layer_rows[r]
        ax.imshow(images[t] if masks is None else overlay(images[t], masks[t], palette, alpha))
        bare(ax)
        if r == 0:
            ax.set_title(titles[t] if titles is not None else f"frame {t}", fontsize=9)
        if col == 0 and masks is not None:
            ax.set_ylabel(name)
    return fig


def metric_over_time(frames: Sequence[int], values: Mapping[str, Sequence[float]],
                     events: Mapping[str, Sequence[int]] | None = None, ax: Axes | None = None,
                     ylabel: str | None = None, title: str | None = None) -> Figure:
    """One line per named per-frame series (name -> T values), events as dotted vertical lines."""
    fig, ax = figure_and_axes(ax)
    frames = to_numpy(frames)
    for name, series in values.items():
        series = to_numpy(series, np.float64)
        if len(series) != len(frames):
            raise UserError(f"metric_over_time: {name!r} has {len(series)} values for {len(frames)} frames")
        ax.plot(frames, series, marker=".", label=name)
    mark_events(ax, events, first_colour=len(values))
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel or "")
    if title:
        ax.set_title(title)
    if values or events:
        ax.legend(fontsize=8)
    return fig


def memory_over_time(frames: Sequence[int], working: Sequence[int], long_term: Sequence[int],
                     events: Mapping[str, Sequence[int]] | None = None, ax: Axes | None = None) -> Figure:
    """Working and long-term memory sizes (elements: frames x h x w positions) after each frame.

    events: name -> frame indices ("memory frame", "deep update", "consolidation", "objects added");
    `common.events_by_name` turns a per-frame list of event names into this mapping.
    """
    fig, ax = figure_and_axes(ax)
    frames = to_numpy(frames)
    for name, sizes in (("working memory", working), ("long-term memory", long_term)):
        ax.plot(frames, to_numpy(sizes), drawstyle="steps-post", label=name)
    mark_events(ax, events)
    ax.set_xlabel("frame")
    ax.set_ylabel("memory elements")
    ax.set_title("Memory size over the video (XMem Sec. 3.3: working -> long-term)")
    ax.legend(fontsize=8)
    return fig


def loss_curves(records_or_run_dir: Sequence[dict] | str | os.PathLike,
                terms: Sequence[str] = ("loss", "ce", "dice"), ax: Axes | None = None,
                log_scale: bool = False) -> Figure:
    """Loss terms against the iteration, from `metrics.jsonl` records or a run folder."""
    records = records_or_run_dir
    if isinstance(records, (str, os.PathLike)):
        from ..train.run_files import read_metrics  # lazy: plotting does not need the training stack

        records = read_metrics(records_or_run_dir)
        if not records:
            raise UserError(f"loss_curves: {records_or_run_dir}/metrics.jsonl is missing or empty; "
                            "pass the folder of a run that has logged")
    present = [term for term in terms if any(term in r for r in records)]
    if not present:
        keys = sorted({k for r in records for k in r} - {"iteration"})
        raise UserError(f"loss_curves: none of {list(terms)} is in the records; they have {keys}")
    fig, ax = figure_and_axes(ax)
    for term in present:
        points = [(r["iteration"], r[term]) for r in records if term in r]
        ax.plot(*zip(*points), label=term)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (mean over each log window)")
    if log_scale:
        ax.set_yscale("log")
    ax.set_title("Training losses")
    ax.legend(fontsize=8)
    return fig


def _jf_columns(table: pd.DataFrame, needed: Sequence[str], metric: str, where: str) -> pd.DataFrame:
    """The table, with J&F = (J + F) / 2 added when only J and F are there; one-line error if columns lack."""
    if metric == "J&F" and "J&F" not in table and {"J", "F"} <= set(table.columns):
        table = table.assign(**{"J&F": (table["J"] + table["F"]) / 2})
    missing = [c for c in (*needed, metric) if c not in table]
    if missing:
        raise UserError(f"{where}: the table lacks column(s) {missing}; it has {list(table.columns)}")
    return table


def jf_per_video(table: pd.DataFrame, metric: str = "J&F", hue: str | None = "variant",
                 ax: Axes | None = None, order: Sequence[str] | None = None) -> Figure:
    """Bars of `metric` per video (tidy table: video, [variant], [seed], J&F / J / F), one colour per
    variant; with several seeds the bar is their mean and the error bar their standard deviation."""
    hue = hue if hue is not None and hue in table else None
    table = _jf_columns(table, ["video"], metric, "jf_per_video")
    fig, ax = figure_and_axes(ax, size=(max(6.0, 0.5 * table["video"].nunique() + 2), 3.5))
    sns.barplot(data=table, x="video", y=metric, hue=hue, order=order, ax=ax,
                errorbar="sd" if "seed" in table else None, **({} if hue else {"color": "C0"}))
    ax.tick_params(axis="x", labelrotation=60)
    ax.set_ylim(0, 1)
    ax.set_title(f"{metric} per video")
    return fig


def jf_per_variant(table: pd.DataFrame, metric: str = "J&F", ax: Axes | None = None,
                   order: Sequence[str] | None = None) -> Figure:
    """Mean `metric` per variant: with a `seed` column, one grey point per seed (its mean over
    videos) and their mean ± standard deviation; without, the mean over videos with a 95% CI."""
    table = _jf_columns(table, ["variant"], metric, "jf_per_variant")
    order = list(order) if order is not None else list(table["variant"].unique())  # as in the table
    fig, ax = figure_and_axes(ax, size=(max(4.0, 0.9 * len(order) + 2), 3.5))
    if "seed" in table:
        per_seed = table.groupby(["variant", "seed"], as_index=False)[metric].mean()
        sns.stripplot(data=per_seed, x="variant", y=metric, order=order, color="0.6", size=4, ax=ax)
        sns.pointplot(data=per_seed, x="variant", y=metric, order=order, errorbar="sd",
                      linestyle="none", color="C0", capsize=0.2, ax=ax)
        spread = f"mean ± sd over {per_seed['seed'].nunique()} seeds"
    else:
        sns.pointplot(data=table, x="variant", y=metric, order=order, errorbar=("ci", 95), seed=0,
                      linestyle="none", color="C0", capsize=0.2, ax=ax)
        spread = "mean over videos, 95% CI"
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(f"{metric} per variant ({spread})")
    return fig
