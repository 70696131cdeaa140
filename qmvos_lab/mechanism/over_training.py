"""The mechanism over training and across variants (issue 26, item 3): the metrics of study.py for
several cached zoo networks (a variant, a preset, a training length, a few seeds), each set against an
untrained network of its config and against uniform attention, summarised with intervals over seeds
and videos, and the probe's curve of each run (the metrics logged during training, probe.py).

A network's per-video metrics are cached beside its checkpoint (`<cache_folder>/mechanism/...csv`,
keyed by split, videos, length and METRICS_VERSION), so a rerun of the study reads tables instead of
segmenting videos again. The interval of a mean is the two-stage bootstrap the ablation runner uses
(`ablate.stats.two_stage_interval`: seeds resampled, then videos), so it holds the training noise when
there are several seeds; with one seed it holds the videos' spread only (the `seeds` column says so).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .. import zoo
from ..ablate.stats import two_stage_interval
from ..atomic import atomic_path
from ..data.synthetic import split_videos
from .metrics import CROSS, SIM_SELF
from .probe import LOGGED, MechanismProbe, probe_period
from .study import with_baselines

METRICS_VERSION = 2  # bump when metrics.py changes what a cached table holds
LONGER = 4  # the long run: LONGER x the cpu-tiny preset's iterations
KEY_METRICS = ((CROSS, "own-object mass / share"), (CROSS, "preference"), (CROSS, "spatial preference"),
               (CROSS, "query-map cosine"), (CROSS, "in-mask ratio / share"), (CROSS, "entropy / uniform"),
               (SIM_SELF, "preference"))
PER_VIDEO = ["network", "attention", "metric", "video", "value"]


@dataclasses.dataclass(frozen=True)
class StudyNetwork:
    """One network of the study: a zoo name ("qmvos-small"), a preset, an optional number of
    iterations (None: the preset's) and its seeds (None: the study's)."""

    name: str
    preset: str
    iterations: int | None = None
    seeds: tuple[int, ...] | None = None

    @property
    def variant(self) -> str:
        return zoo.variant_of(self.name)

    @property
    def label(self) -> str:
        return f"{self.variant} {self.preset}" + ("" if self.iterations is None else f" {self.iterations} it")

    def overrides(self) -> dict:
        return {} if self.iterations is None else {"iterations": self.iterations}

    def train_iterations(self, smoke: bool) -> int:
        return zoo.training_config(self.name, self.preset, 0, smoke, **self.overrides()).iterations


def default_networks(long_seeds: Sequence[int] = (0,)) -> list[StudyNetwork]:
    """The study of issue 26: QMVOS-small at three lengths (cpu-quick, cpu-tiny and LONGER x cpu-tiny,
    the last on `long_seeds` only, about 27 minutes a seed on 2 cores; none when empty), the variants without the SIM's
    interaction (cpu-quick and cpu-tiny), without per-object readouts (qcim-f16, cpu-quick) and with
    the object-identity remedy (qcim-identity, beyond the paper; cpu-quick and cpu-tiny)."""
    from ..train.presets import PRESETS

    longer = LONGER * PRESETS["cpu-tiny"]["iterations"]
    networks = [StudyNetwork("qmvos-small", "cpu-quick"), StudyNetwork("qmvos-small", "cpu-tiny"),
                StudyNetwork("no-interaction-small", "cpu-quick"), StudyNetwork("no-interaction-small", "cpu-tiny"),
                StudyNetwork("qcim-f16-small", "cpu-quick"),
                StudyNetwork("qcim-identity-small", "cpu-quick"), StudyNetwork("qcim-identity-small", "cpu-tiny")]
    if long_seeds:  # last: the one that may have to train for long
        networks.append(StudyNetwork("qmvos-small", "cpu-tiny", longer, tuple(long_seeds)))
    return networks


def trained_network(spec: StudyNetwork, seed: int, *, smoke: bool | None = None, progress: bool = False,
                    probe_videos: int = 2, cache=None):
    """The cached network of `spec` and `seed` (trained when missing, with a MechanismProbe on
    `probe_videos` synthetic-hard videos logging about 16 points of its curve into metrics.jsonl)."""
    smoke = zoo.smoke_mode() if smoke is None else smoke
    iterations = spec.train_iterations(smoke)
    log_every = 1 if smoke else zoo.training_config(spec.name, spec.preset, seed).log_every
    every = probe_period(iterations, log_every)
    probe = MechanismProbe(list(split_videos("synthetic-hard", probe_videos)), every=every) if probe_videos else None
    return zoo.trained(spec.name, spec.preset, seed, smoke=smoke, progress=progress, cache=cache, probe=probe,
                       **spec.overrides())


def table_path(network, split: str, videos: int, length: int | None, seed: int = 0):
    """Where `network_metrics` caches a table: beside the network, keyed by what determines it (the
    seed is the untrained baseline's)."""
    folder = network.cache_folder / "mechanism"
    return folder / f"{split}-{videos}v-{length or 'all'}f-s{seed}-v{METRICS_VERSION}.csv"


def network_metrics(network, split: str, videos: int, length: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Per-video means (over frames and queries, head mean) of every metric of `network`, of an
    untrained network of its config and of uniform attention (column `network`: trained, untrained,
    uniform) on the first `videos` of `split`, the untrained network seeded with `seed`; read from the
    network's cache folder when there."""
    path = table_path(network, split, videos, length, seed)
    if path.is_file():
        return pd.read_csv(path)
    clips = list(split_videos(split, videos, **({} if length is None else {"length": length})))
    table = with_baselines(network, clips, seed=seed)
    table = table[table["head"].astype(str) == "mean"]
    per_video = table.groupby(PER_VIDEO[:-1], sort=False)["value"].mean().reset_index()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        per_video.to_csv(tmp, index=False)
    return per_video


def study_table(networks: Iterable[StudyNetwork], seeds: Sequence[int] = (0, 1, 2),
                splits: Sequence[str] = ("synthetic-hard",), videos: int = 8, length: int | None = None, *,
                smoke: bool | None = None, progress: bool = True, cache=None) -> pd.DataFrame:
    """The per-video table of the study: one row per (network label, seed, split, network kind,
    attention, metric, video), with the variant, preset and training iterations."""
    smoke = zoo.smoke_mode() if smoke is None else smoke
    parts = []
    for spec in networks:
        for seed in spec.seeds or seeds:
            network = trained_network(spec, seed, smoke=smoke, progress=progress, cache=cache)
            for split in splits:
                if progress:
                    print(f"mechanism metrics: {spec.label}, seed {seed}, {videos} {split} videos")
                part = network_metrics(network, split, videos, length, seed)
                parts.append(part.assign(label=spec.label, variant=spec.variant, preset=spec.preset,
                                         iterations=spec.train_iterations(smoke), seed=seed, split=split))
    return pd.concat(parts, ignore_index=True)


def seed_video_table(rows: pd.DataFrame) -> np.ndarray:
    """rows of one (label, split, network, attention, metric) -> seeds x videos (the videos every seed has)."""
    wide = rows.pivot_table(index="seed", columns="video", values="value", aggfunc="mean")
    return wide.dropna(axis=1).to_numpy(np.float64)


def mean_interval(table: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Two-stage bootstrap interval (seeds, then videos) of the mean of a seeds x videos table: the
    ablation runner's interval of a difference, taken against a reference of zeros."""
    if table.size == 0:
        return float("nan"), float("nan")
    return two_stage_interval(table, np.zeros((1, table.shape[1])), confidence)


GROUP = ["label", "variant", "preset", "iterations", "split", "network", "attention", "metric"]


def study_summary(table: pd.DataFrame, metrics: Sequence[tuple[str, str]] | None = KEY_METRICS,
                  confidence: float = 0.95) -> pd.DataFrame:
    """One row per (network label, split, network kind, attention, metric): the mean over seeds and
    videos, its two-stage interval, the seeds and videos it rests on, and each seed's mean."""
    if metrics is not None:
        keep = pd.MultiIndex.from_frame(table[["attention", "metric"]]).isin(list(metrics))
        table = table[keep]
    out = []
    for key, rows in table.groupby(GROUP, sort=False):
        grid = seed_video_table(rows)
        low, high = mean_interval(grid, confidence)
        seed_means = rows.groupby("seed")["value"].mean()
        out.append((*key, float(grid.mean()) if grid.size else np.nan, low, high, grid.shape[0], grid.shape[1],
                    " ".join(f"{s}:{m:.3f}" for s, m in seed_means.items())))
    return pd.DataFrame(out, columns=[*GROUP, "mean", "low", "high", "seeds", "videos", "per seed"])


def difference(table: pd.DataFrame, label: str, reference: str, split: str, attention: str, metric: str,
               confidence: float = 0.95) -> tuple[float, float, float]:
    """The trained `label` minus the trained `reference` on one metric (videos paired, seeds resampled
    independently; the ablation runner's two-stage interval): (difference, low, high)."""
    def grid(name):
        rows = table[(table["label"] == name) & (table["split"] == split) & (table["network"] == "trained")
                     & (table["attention"] == attention) & (table["metric"] == metric)]
        return rows.pivot_table(index="seed", columns="video", values="value", aggfunc="mean")

    a, b = grid(label), grid(reference)
    shared = a.columns.intersection(b.columns)
    keep = shared[a[shared].notna().all().to_numpy() & b[shared].notna().all().to_numpy()]  # videos both have
    a, b = a[keep].to_numpy(np.float64), b[keep].to_numpy(np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    low, high = two_stage_interval(a, b, confidence)
    return float(a.mean() - b.mean()), low, high


def training_curves(networks: Iterable[StudyNetwork], seeds: Sequence[int] = (0, 1, 2), *,
                    smoke: bool | None = None, cache=None) -> pd.DataFrame:
    """The probe's lines of each cached run's metrics.jsonl (networks trained without a probe have
    none): columns label, seed, iteration, attention, metric, value. Reads only; trains nothing."""
    smoke = zoo.smoke_mode() if smoke is None else smoke
    keys = {MechanismProbe.key(a, m): (a, m) for a, m in LOGGED}
    rows = []
    for spec in networks:
        for seed in spec.seeds or seeds:
            config = zoo.training_config(spec.name, spec.preset, seed, smoke, **spec.overrides())
            path = zoo.entry_for(config, cache).folder / "metrics.jsonl"
            if not path.is_file():
                continue
            for line in path.read_text().splitlines():
                record = json.loads(line) if line.strip() else {}
                for key, (attention, metric) in keys.items():
                    if record.get(key) is not None:
                        rows.append((spec.label, seed, record["iteration"], attention, metric, float(record[key])))
    return pd.DataFrame(rows, columns=["label", "seed", "iteration", "attention", "metric", "value"])
