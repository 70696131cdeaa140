"""The mechanism metrics (metrics.py) of a network over a set of generated videos, with the two
baselines computed the same way: an untrained network of the same config, and uniform attention
(the trained network's frames, queries and masks, every attention weight 1 / its keys); and the
summary over videos (means with 95 % BCa intervals, `ablate.stats.bootstrap_interval`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..ablate.stats import bootstrap_interval
from ..eval.videos import generated_config
from .metrics import recording_metrics


def record_videos(network, videos: Sequence, config=None) -> list:
    """A traced `viz.explorer.Recording` per generated video (each object's mask given on its first
    frame), segmented with `config` (default: `generated_config(network)`, as validation does)."""
    from ..viz.explorer import record

    config = config or generated_config(network)
    return [record(network, v.frames, v.given_masks(), v.labels, config, name=v.name) for v in videos]


def mechanism_metrics(network, videos: Sequence, config=None, heads: bool = False,
                      uniform: bool = False) -> pd.DataFrame:
    """The tidy table (metrics.COLUMNS) of `network` over `videos` (uniform: the uniform baseline on
    this network's recordings)."""
    tables = [recording_metrics(r, heads, uniform) for r in record_videos(network, videos, config)]
    return pd.concat(tables, ignore_index=True)


def untrained_like(network, seed: int = 0):
    """A freshly initialised network of `network`'s config (seeded), in eval mode, segmenting
    generated videos at the same size."""
    from ..model import build_network

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        fresh = build_network(network.config).eval()
    finally:
        torch.random.set_rng_state(state)
    fresh.inference_size = getattr(network, "inference_size", -1)
    return fresh


def with_baselines(network, videos: Sequence, config=None, heads: bool = False, seed: int = 0,
                   name: str = "trained") -> pd.DataFrame:
    """The table of `network` (column `network` = name), of an untrained network of its config
    ("untrained") and of uniform attention ("uniform"), over the same videos."""
    recordings = record_videos(network, videos, config)
    parts = {name: [recording_metrics(r, heads) for r in recordings],
             "uniform": [recording_metrics(r, heads, uniform=True) for r in recordings],
             "untrained": [recording_metrics(r, heads)
                           for r in record_videos(untrained_like(network, seed), videos, config)]}
    return pd.concat([pd.concat(t, ignore_index=True).assign(network=k) for k, t in parts.items()],
                     ignore_index=True)


def summarise(table: pd.DataFrame, by: Sequence[str] = ("network", "attention", "metric"),
              head="mean", confidence: float = 0.95) -> pd.DataFrame:
    """Means over videos with a BCa bootstrap interval: each video first averages its frames and
    queries (the unit of resampling is the video). One row per `by` group (of the rows of `head`):
    mean, low, high, videos."""
    by = [c for c in by if c in table.columns]
    rows = table[table["head"].astype(str) == str(head)] if head is not None else table
    per_video = rows.groupby([*by, "video"], sort=False)["value"].mean().dropna().reset_index()
    out = []
    for key, group in per_video.groupby(by, sort=False):
        values = np.round(group["value"].to_numpy(np.float64), 12)  # float noise is no spread
        low, high = bootstrap_interval(values, confidence)
        out.append((*(key if isinstance(key, tuple) else (key,)), float(values.mean()), low, high, len(values)))
    return pd.DataFrame(out, columns=[*by, "mean", "low", "high", "videos"])
