"""One run: train (or resume, or load) one (variant, seed) network and evaluate it, reusing a
finished run.

A run is one entry of the trained-network cache (`qmvos_lab.zoo`: keyed by a hash of the model
config, the training config and the recipe version) plus its evaluation, stored in the same
entry folder as `eval-<key>.json` (the key hashes the evaluation set, its size and knobs, the
inference config and EVAL_VERSION), written atomically. So rerunning skips every finished run; a run
stopped midway (Ctrl-C, SIGTERM: the trainer saves a checkpoint) resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, zoo
from ..atomic import atomic_path
from ..eval.videos import score_videos
from ..locks import entry_lock
from .eval_set import EvalSet, eval_videos
from .specs import RunSpec


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe` of the checkout the package runs from, else the package version."""
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                                 capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


@dataclass
class RunResult:
    """A run's per-video rows and per-run columns; `reused`: read from the cache, not run now."""

    spec_name: str
    rows: list = field(default_factory=list)  # one dict per video
    info: dict = field(default_factory=dict)  # the per-run columns
    reused: bool = False


def read_result(spec: RunSpec) -> RunResult | None:
    """The stored result of a finished run, or None."""
    path = spec.result_path
    if not path.is_file() or not spec.entry.checkpoint.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        return RunResult(spec.train.name, stored["rows"], stored["info"], reused=True)
    except (OSError, json.JSONDecodeError, KeyError):
        return None  # unreadable: evaluate again


def _final_loss(folder: Path) -> float:
    """The mean training loss over the last tenth of the run's metrics log (NaN without one)."""
    from ..train.run_files import read_metrics

    records = [r["loss"] for r in read_metrics(folder) if "loss" in r]
    tail = records[-max(1, len(records) // 10):] if records else []  # the last tenth of the log
    return float(np.mean(tail)) if tail else math.nan


def evaluate(network, eval_set: EvalSet, progress: bool = False) -> list[dict]:
    """Per-video J, F, J&F and copy_J&F of `network` on `eval_set` (`eval.videos.score_videos`), at
    the eval set's inference settings."""
    return score_videos(network, eval_videos(eval_set), eval_set.inference_config(network), progress)


def run_one(spec: RunSpec) -> RunResult:
    """Train (or resume, or load) one run and evaluate it; the result is stored atomically in the
    run's cache entry. Module level, so that worker processes and Slurm jobs can call it."""
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    done = read_result(spec)
    if done is not None:
        return done
    # two ablations on one cache: the second waits for the first, then reuses its run
    with entry_lock(spec.entry.folder, Path(spec.cache) / "locks"):
        done = read_result(spec)
        return done if done is not None else _train_and_evaluate(spec)


def _train_and_evaluate(spec: RunSpec) -> RunResult:
    """Load the run's network (training or resuming it first when it is not finished), evaluate it
    and store the rows and the run columns (runner.RUN_COLUMNS) in `spec.result_path`."""
    entry = spec.entry
    network = zoo.load_entry(entry)
    if network is None:
        zoo.train_entry(entry, spec.progress)
        network = zoo.load_entry(entry)
        if network is None:
            raise RuntimeError(f"training {entry.name} did not produce {entry.checkpoint}")
    tic = time.perf_counter()
    rows = evaluate(network, spec.eval_set, spec.progress)
    info = zoo.read_info(entry)
    run = {"preset": spec.preset, "iterations": info.get("iterations", spec.train.iterations),
           "training_time_s": info.get("training_time_s", math.nan), "eval_time_s": time.perf_counter() - tic,
           "final_loss": _final_loss(entry.folder), "checkpoint": str(entry.checkpoint),
           "code_version": code_version()}
    with atomic_path(spec.result_path) as tmp:
        tmp.write_text(json.dumps({"rows": rows, "info": run, "eval_set": dataclasses.asdict(spec.eval_set)},
                                  indent=1, default=str) + "\n")
    return RunResult(spec.train.name, rows, run)
