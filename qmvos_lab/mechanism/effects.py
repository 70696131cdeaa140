"""What the queries cause: J&F of a network with each intervention (interventions.py) against the
intact network on the same videos, paired by video, with the ablation runner's statistics (a 95 %
BCa bootstrap interval of the mean difference and the two-sided sign-flip p, `ablate.stats`)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..ablate.stats import bootstrap_interval, holm, sign_flip_pvalue
from ..eval.videos import generated_config, jf_table, segment_videos
from .interventions import available_interventions

INTACT = "intact"


def per_video_jf(videos: Sequence, predictions: Sequence[np.ndarray]) -> pd.Series:
    """J&F per video: (mean J + mean F) / 2 over its objects, each over the evaluated frames."""
    table = jf_table(list(videos), list(predictions))
    table["video"] = table["Sequence"].str.rsplit("_", n=1).str[0]  # "<video>_<object>"
    means = table.groupby("video", sort=False)[["J-Mean", "F-Mean"]].mean()
    return (means["J-Mean"] + means["F-Mean"]) / 2


def intervention_jf(network, videos: Sequence, chosen: Mapping[str, Callable] | None = None,
                    config=None) -> pd.DataFrame:
    """J&F per video (rows) of the intact network and under each intervention (columns)."""
    videos = list(videos)
    config = config or generated_config(network)
    chosen = available_interventions(network) if chosen is None else chosen
    columns = {INTACT: per_video_jf(videos, segment_videos(network, videos, config)[0])}
    for name, intervention in chosen.items():
        with intervention(network):
            columns[name] = per_video_jf(videos, segment_videos(network, videos, config)[0])
    return pd.DataFrame(columns)


def reading(name: str, diff: float, low: float, high: float, p: float, alpha: float = 0.05) -> str:
    """One line on what the interval and the (Holm-adjusted) sign-flip p say (a verdict needs both)."""
    if np.isnan(low) or np.isnan(p):
        return "too few videos for an interval"
    if low <= 0 <= high:
        if name == "permuted queries":
            return ("no effect detected at this power: swapping the queries between objects costs nothing "
                    "measurable, so the queries carry no object identity the decoder uses")
        return "no effect detected at this power"
    if p >= alpha:
        return f"inconclusive: the interval excludes 0 but Holm p = {p:.3g} (too few videos for the test)"
    return f"{'costs' if diff < 0 else 'gains'} J&F (interval excludes 0, Holm p = {p:.3g})"


def effect_table(jf: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """From `intervention_jf`'s table: per intervention, the mean paired difference ΔJ&F
    (intervention - intact) over videos, its BCa interval, the sign-flip p, p_holm (Holm over the
    table's interventions: a table of k interventions makes k tests) and a reading from both."""
    rows = []
    for name in [c for c in jf.columns if c != INTACT]:
        d = np.round((jf[name] - jf[INTACT]).dropna().to_numpy(np.float64), 12)  # float noise is no spread
        low, high = bootstrap_interval(d, confidence)
        rows.append((name, float(d.mean()), low, high, sign_flip_pvalue(d), len(d)))
    table = pd.DataFrame(rows, columns=["intervention", "ΔJ&F", "low", "high", "p", "videos"])
    table.insert(5, "p_holm", holm(table["p"].to_numpy()) if len(table) else [])
    table["reading"] = [reading(*args) for args in zip(table["intervention"], table["ΔJ&F"], table["low"],
                                                       table["high"], table["p_holm"])]
    return table


def intervention_effects(network, videos: Sequence, chosen: Mapping[str, Callable] | None = None,
                         config=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(J&F per video and intervention, the ΔJ&F table of `effect_table`)."""
    jf = intervention_jf(network, videos, chosen, config)
    return jf, effect_table(jf)
