"""The mechanism metrics during training: `Trainer(config, run_dir, probe=MechanismProbe(videos))`
adds, on the logged iterations it is due (every `every` iterations), the mean over `videos` of a few
metrics (metrics.py; head mean) to that line of metrics.jsonl, as "mechanism/<attention>/<metric>".
Off unless a probe is passed; the network is put in eval mode for it and its modes and torch's random
state are restored after, so a probed run trains the same weights as an unprobed one."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .metrics import CROSS, SIM_SELF
from .study import mechanism_metrics

LOGGED = ((CROSS, "own-object mass / share"), (CROSS, "preference"), (CROSS, "spatial preference"),
          (CROSS, "query-map cosine"), (CROSS, "in-mask ratio / share"), (CROSS, "entropy / uniform"),
          (SIM_SELF, "own weight / share"), (SIM_SELF, "preference"))


def probe_period(iterations: int, log_every: int, points: int = 16) -> int:
    """Iterations between probes for about `points` probes over a run: a multiple of `log_every`
    (the probe runs on logged iterations), at least one logging period."""
    return max(log_every, iterations // points // log_every * log_every)


class MechanismProbe:
    """videos: generated videos (e.g. `list(split_videos("synthetic-hard", 2))`); every: probe on
    logged iterations that are multiples of it; config: the InferenceConfig (default: the size
    validation segments at); metrics: (attention, metric) pairs to log."""

    def __init__(self, videos: Sequence, every: int = 1, config=None, metrics=LOGGED):
        if every < 1:
            raise ValueError(f"MechanismProbe: every must be at least 1, got {every}")
        self.videos, self.every, self.config, self.metrics = list(videos), every, config, tuple(metrics)

    @staticmethod
    def key(attention: str, metric: str) -> str:
        return f"mechanism/{attention}/{metric}"

    def measure(self, network) -> dict:
        """{key: mean over videos (each the mean over its frames and queries)}; None where undefined."""
        modes = {module: module.training for module in network.modules()}
        state = torch.random.get_rng_state()
        network.eval()
        try:
            table = mechanism_metrics(network, self.videos, self.config)
        finally:
            torch.random.set_rng_state(state)
            for module, mode in modes.items():
                module.training = mode
        table = table[table["head"].astype(str) == "mean"]
        per_video = table.groupby(["attention", "metric", "video"])["value"].mean()
        out = {}
        for attention, metric in self.metrics:
            try:
                value = float(per_video.loc[(attention, metric)].mean())
            except KeyError:  # the network has no such attention (XMem, no-interaction)
                value = math.nan
            out[self.key(attention, metric)] = None if math.isnan(value) else value
        return out

    def __call__(self, network, iteration: int) -> dict:
        return self.measure(network) if iteration % self.every == 0 else {}
