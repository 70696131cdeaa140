"""The mechanism study's figure (issue 26): each metric of the QCIM cross-attention (QMVOS Eq. 4) and
of the SIM's self-attention (QMVOS Eq. 2) against training iterations, one colour per variant, with
the untrained network and uniform attention as baselines (`mechanism.over_training`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..errors import UserError

NEEDED = {"variant", "iterations", "split", "network", "attention", "metric", "mean", "low", "high"}


def metrics_over_training(summary: pd.DataFrame, metrics: Sequence[tuple[str, str]], split: str = "synthetic-hard",
                          curves: pd.DataFrame | None = None, columns: int = 3) -> Figure:
    """One panel per (attention, metric): the trained networks' means with their intervals
    (`over_training.study_summary`) at their training lengths (log scale), joined per variant; the
    untrained networks' mean (dashes in each variant's colour) and uniform attention (black dots) as
    horizontal lines;
    `curves` (`over_training.training_curves`): the probe's values during training, thin lines."""
    missing = NEEDED - set(summary.columns)
    if missing:
        raise UserError(f"metrics_over_training: the summary lacks column(s) {sorted(missing)}")
    rows = summary[summary["split"] == split]
    variants = list(dict.fromkeys(rows["variant"]))
    colours = {v: f"C{i}" for i, v in enumerate(variants)}
    n_rows = -(-len(metrics) // columns)
    fig = Figure(figsize=(3.6 * columns, 2.9 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, columns, squeeze=False).ravel()
    for ax, (attention, metric) in zip(axes, metrics):
        here = rows[(rows["attention"] == attention) & (rows["metric"] == metric)]
        if curves is not None and len(curves):
            lines = curves[(curves["attention"] == attention) & (curves["metric"] == metric)]
            for (label, seed), line in lines.groupby(["label", "seed"], sort=False):
                variant = here.loc[here["label"] == label, "variant"]
                colour = colours.get(variant.iloc[0], "C7") if len(variant) else "C7"
                ax.plot(line["iteration"], line["value"], color=colour, lw=0.7, alpha=0.5)
        for variant, points in here[here["network"] == "trained"].groupby("variant", sort=False):
            points = points.sort_values("iterations")
            x = points["iterations"].to_numpy(np.float64) * (1 + 0.04 * variants.index(variant))  # jitter
            error = np.stack([points["mean"] - points["low"], points["high"] - points["mean"]]).clip(min=0)
            ax.errorbar(x, points["mean"], yerr=error, marker="o", ms=4, capsize=2, color=colours[variant],
                        label=variant)
        for variant, base in here[here["network"] == "untrained"].groupby("variant", sort=False):
            ax.axhline(float(base["mean"].mean()), lw=1, ls="--", color=colours[variant], alpha=0.6,
                       label=f"untrained {variant}")  # each variant's untrained config (they differ)
        uniform = here[here["network"] == "uniform"]["mean"]
        if len(uniform):
            ax.axhline(float(uniform.mean()), lw=1, ls=":", color="k", label="uniform")
        ax.set_xscale("log")
        ticks = sorted(set(rows["iterations"].astype(int)))
        ax.set_xticks(ticks, [str(t) for t in ticks])  # the training lengths, not log-scale decades
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{attention}: {metric}", fontsize=9)
        ax.set_xlabel("training iterations")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
    fig.suptitle(f"Mechanism metrics over training ({split}; mean over seeds and videos, 95 % interval)",
                 fontsize=10)
    return fig
