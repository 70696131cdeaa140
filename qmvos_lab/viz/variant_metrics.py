"""The explorer's metrics across variants: how the QCIM cross-attention (QMVOS Sec. 3.3, Eq. 4)
of differently trained networks behaves over one video, one line per variant (`explorer_metrics`
for what each metric measures)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import UserError
from .explorer_metrics import METRICS
from .plots import metric_over_time


def metrics_across_variants(table: pd.DataFrame, metrics: Sequence[str] = METRICS, query: int | None = None,
                            events: Mapping[str, Sequence[int]] | None = None) -> Figure:
    """One panel per metric over time, one line per variant: `table` is tidy (variant, frame,
    query, metric, value), e.g. `Recording.metrics()` of each network with a `variant` column;
    the value is the mean over queries (or that of `query`). Missing metrics (own-object mass of
    qcim-f16) leave no line."""
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
