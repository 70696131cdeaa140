"""Figures of an ablation table (Figures, as every `qmvos_lab.viz` plot; save with viz.save_figure)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..viz.common import figure_and_axes
from .stats import per_seed


def jf_points(runs: pd.DataFrame, summary: pd.DataFrame, metric: str = "J&F", ax: Axes | None = None,
              order: Sequence[str] | None = None) -> Figure:
    """J&F per variant: one grey dot per seed (its mean over the videos), the mean over videos
    (seeds averaged per video) with its 95 % bootstrap interval, and the copy baseline as a line.
    The intervals are each variant's own (unpaired): two that overlap can still differ, since the
    paired differences (`differences`) remove what makes a video hard for every network."""
    order = list(order) if order is not None else list(summary["variant"])
    fig, ax = figure_and_axes(ax, size=(max(4.5, 0.95 * len(order) + 2), 3.6))
    seeds = per_seed(runs, metric).reset_index().melt(id_vars="seed", var_name="variant", value_name=metric)
    sns.stripplot(data=seeds, x="variant", y=metric, order=order, color="0.55", size=5, jitter=0.12, ax=ax,
                  label="seed")
    rows = summary.set_index("variant").loc[order]
    x = np.arange(len(order))
    ax.errorbar(x, rows[metric], yerr=[rows[metric] - rows["ci_low"], rows["ci_high"] - rows[metric]],
                fmt="o", color="C0", capsize=4, label="mean over videos, 95% CI (unpaired)")
    if "copy_J&F" in runs and metric == "J&F":
        ax.axhline(runs.groupby("video")["copy_J&F"].first().mean(), color="C3", linestyle=":",
                   label="copy the first mask")
    handles, labels = ax.get_legend_handles_labels()
    keep = {label: handle for handle, label in zip(handles, labels)}  # one legend entry per kind
    ax.legend(keep.values(), keep.keys(), fontsize=8, loc="best")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("")
    seeds_n = int(summary["seeds"].max()) if len(summary) else 0
    ax.set_title(f"{metric} per variant ({seeds_n} seed{'s' if seeds_n != 1 else ''}, "
                 f"{int(summary['videos'].max()) if len(summary) else 0} videos)")
    return fig


def differences(summary: pd.DataFrame, reference: str = "qmvos", metric: str = "J&F",
                ax: Axes | None = None) -> Figure:
    """Each variant minus `reference`: the mean paired difference over videos with its 95 %
    two-stage interval (runs and videos resampled, the one the verdict uses; green: reproduces the
    paper's direction, red: contradicts it, grey: inconclusive or not decidable), the videos-only
    BCa interval (thin black), the range of the per-seed differences (grey bar), and the paper's
    direction."""
    rows = summary[summary["variant"] != reference].dropna(subset=["diff"])
    fig, ax = figure_and_axes(ax, size=(6.5, max(2.0, 0.5 * len(rows) + 1.2)))
    y = np.arange(len(rows))[::-1]
    colours = {"reproduces": "C2", "contradicts": "C3"}
    for yi, (_, row) in zip(y, rows.iterrows()):
        if not np.isnan(row["diff_seed_min"]):
            ax.plot([row["diff_seed_min"], row["diff_seed_max"]], [yi - 0.2] * 2, color="0.75", lw=3,
                    solid_capstyle="butt")
        low, high = (row["diff_runs_low"], row["diff_runs_high"]) if "diff_runs_low" in row else (
            row["diff_low"], row["diff_high"])
        ax.errorbar(row["diff"], yi, xerr=[[row["diff"] - low], [high - row["diff"]]], fmt="o",
                    color=colours.get(row["verdict"], "0.35"), capsize=4, lw=2)
        if "diff_runs_low" in row:
            ax.plot([row["diff_low"], row["diff_high"]], [yi + 0.15] * 2, color="0.1", lw=0.8)
    ax.axvline(0, color="0.2", lw=0.8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(y)
    labels = []
    for _, row in rows.iterrows():
        paper = f"paper: {row['paper_direction']}" if row["paper_direction"] else "not in the paper"
        labels.append(f"{row['variant']}\n({paper}; {row['verdict'].split(';')[0] or 'n/a'})")
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"{metric} − {reference} (paired over videos, seeds averaged)")
    ax.set_title("Paired differences, 95% intervals: runs and videos resampled (thin: videos only; "
                 "grey bar: range over seeds)", fontsize=9)
    return fig
