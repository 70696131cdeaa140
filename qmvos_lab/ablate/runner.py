"""The ablation runner: train and evaluate (variant, seed) runs of a preset, reusing finished runs.

A run is one entry of the trained-network cache (`qmvos_lab.zoo`: keyed by a hash of the model
config, the training config and the recipe version) plus its evaluation, stored in the same
entry folder as `eval-<key>.json` (the key hashes the evaluation set, its size and knobs, the
inference config and EVAL_VERSION), written atomically. So rerunning skips every finished run; a run
stopped midway (Ctrl-C, SIGTERM: the trainer saves a checkpoint) resumes from its checkpoint.

Back ends: in this process (default; the notebook), `jobs=N` local worker processes (spawned),
or a submitit executor (`executor=`; Slurm, or submitit's local executor for tests), so the same
table runs on a cluster by changing one argument.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__, zoo
from ..ablations import ABLATIONS
from ..atomic import atomic_path
from ..config import InferenceConfig, ModelConfig, TrainConfig
from ..cache import cache_setting, check_cache
from ..locks import entry_lock
from ..errors import UserError
from ..train.data import check_data
from ..train.settings import check_config

EVAL_VERSION = 1  # bump when the evaluation (metrics, protocol) changes what it reports
DEFAULT_EVAL_SET = "synthetic-hard"  # held out: similar objects, occlusions (never trained on)
TRAINING_SPLITS = ("synthetic-train",)
RUN_COLUMNS = ["preset", "iterations", "training_time_s", "eval_time_s", "final_loss", "checkpoint",
               "code_version"]


# ---------------------------------------------------------------------------------- what a run is
@dataclass(frozen=True)
class Variant:
    """A Table 3 variant by name (ABLATIONS), or a custom one: ModelConfig `overrides` on top of
    the switches of the named ablation `base`."""

    name: str
    base: str | None = None  # None: `name` is in ABLATIONS
    overrides: tuple = ()  # sorted (field, value) pairs

    def model(self, size: str) -> ModelConfig | None:
        """The custom ModelConfig (None for a named ablation)."""
        if self.base is None:
            return None
        try:
            return ModelConfig.of_size(size, **{**ABLATIONS[self.base], **dict(self.overrides)})
        except (TypeError, ValueError) as error:
            raise UserError(f"variant {self.name!r}: {error}") from None


FIELD_KINDS = {"int": (int, "an integer"), "bool": (bool, "true or false"), "str": (str, "a word")}


def _check_field_type(variant: str, key: str, value) -> None:
    """A custom variant's ModelConfig value has its field's type (`hidden_dim=abc` is refused by name)."""
    kind = {f.name: str(f.type) for f in dataclasses.fields(ModelConfig)}[key]
    if kind not in FIELD_KINDS:  # tuples: checked by ModelConfig itself
        return
    expected, words = FIELD_KINDS[kind]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"variant {variant!r}: {key}={value!r}: {key} must be {words}")


def variants_from(variants: Sequence[str] | Mapping[str, Mapping] | str) -> list[Variant]:
    """Names of ABLATIONS (a list or "a,b,c"), or a mapping name -> ModelConfig overrides (with an
    optional "base" ablation, default qmvos; an empty mapping for a named ablation)."""
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    items = variants.items() if isinstance(variants, Mapping) else ((v, None) for v in variants)
    out = []
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name, overrides in items:
        if not isinstance(name, str) or not name:
            raise UserError(f"variant names must be non-empty strings, got {name!r}")
        if not overrides:
            if name not in ABLATIONS:
                raise UserError(f"unknown variant {name!r}; choose from {', '.join(ABLATIONS)}, or define your own "
                                "from ModelConfig fields (CLI: --custom NAME FIELD=VALUE; API: {NAME: {FIELD: VALUE}})")
            out.append(Variant(name))
            continue
        overrides = dict(overrides)
        base = overrides.pop("base", "qmvos")
        if base not in ABLATIONS:
            raise UserError(f"variant {name!r}: unknown base {base!r}; choose from {', '.join(ABLATIONS)}")
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise UserError(f"variant {name!r}: unknown ModelConfig field(s) {unknown}; "
                            f"known: {', '.join(sorted(fields))}")
        if name in ABLATIONS:
            raise UserError(f"variant {name!r} is a Table 3 name; give the custom variant another name")
        for key in ("sim_scales", "decoder_dims"):  # "f16,f8" or [..] -> a tuple
            value = overrides.get(key)
            if isinstance(value, str):
                items = [x.strip() for x in value.split(",") if x.strip()]
                overrides[key] = tuple(int(x) if x.isdigit() else x for x in items)
        for key, value in overrides.items():
            _check_field_type(name, key, value)
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()))
        out.append(Variant(name, base, frozen))
        out[-1].model("small")  # a value that ModelConfig refuses fails here, before any training
    if not out:
        raise UserError("no variants given; choose from " + ", ".join(ABLATIONS))
    names = [v.name for v in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"variant(s) {duplicates} given twice; list each once")
    return out


def parse_pairs(pairs: Sequence[str], option: str) -> dict:
    """KEY=VALUE strings (a command line's --custom / --slurm) -> {key: value}; values are JSON
    where they parse (numbers, true/false, lists), text otherwise."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} {pair}: expected KEY=VALUE, e.g. hidden_dim=0")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def seeds_from(seeds: Sequence[int] | str | int) -> list[int]:
    """Seeds as a list of distinct non-negative integers, from a list, "0,1,2" or one integer."""
    raw = [s.strip() for s in seeds.split(",") if s.strip()] if isinstance(seeds, str) else (
        [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds))
    out = []
    for s in raw:
        try:
            value = int(s)
            ok = value >= 0 and (not isinstance(s, float) or s == value) and not isinstance(s, bool)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"bad seed {s!r} in seeds {seeds!r}; give distinct non-negative integers such as 0,1,2")
        out.append(value)
    if not out:
        raise UserError("no seeds given; give distinct non-negative integers such as 0,1,2")
    if len(set(out)) != len(out):
        raise UserError(f"seeds {seeds!r} repeat a seed; give distinct non-negative integers such as 0,1,2")
    return out


DAVIS_PREFIXES = ("davis2017:", "davis2016:")  # eval sets read from a DAVIS folder: "davis2017:ROOT"


@dataclass(frozen=True)
class EvalSet:
    """What a run is scored on: a generated split (`name` in SPLITS; `overrides` are SyntheticConfig
    knobs such as length) or "davis2017:ROOT" / "davis2016:ROOT" (the val split of a DAVIS folder)."""

    name: str = DEFAULT_EVAL_SET
    videos: int | None = None  # None: the whole split
    overrides: tuple = ()
    inference: tuple = ()  # InferenceConfig fields (sorted pairs); size=-1 keeps the frame size

    def inference_config(self, network=None) -> InferenceConfig:
        """The given InferenceConfig fields; the size, unless given, is the network's recipe's for a
        generated split (`network.inference_size`, which the run's cache key already fixes) and the
        frames' own for DAVIS."""
        size = -1 if self.is_davis else getattr(network, "inference_size", -1)
        return InferenceConfig(**{"size": size, **dict(self.inference)})

    @property
    def is_davis(self) -> bool:
        """A DAVIS folder's val split (real frames), not a generated split."""
        return self.name.startswith(DAVIS_PREFIXES)

    def key(self) -> str:
        blob = json.dumps({"set": self.name, "videos": self.videos, "overrides": list(self.overrides),
                           "inference": self.inference_config().to_dict(), "version": EVAL_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def eval_set_from(name: str = DEFAULT_EVAL_SET, videos: int | None = None, overrides: Mapping | None = None,
                  inference: Mapping | None = None) -> EvalSet:
    from ..data.synthetic import SPLITS

    if name in TRAINING_SPLITS:
        raise UserError(f"eval set {name!r} is the training split; evaluate on a held-out one "
                        f"({', '.join(s for s in SPLITS if s not in TRAINING_SPLITS)})")
    if name not in SPLITS and not name.startswith(DAVIS_PREFIXES):
        held_out = ", ".join(s for s in SPLITS if s not in TRAINING_SPLITS)
        raise UserError(f"unknown eval set {name!r}; choose from {held_out} or davis2017:ROOT / davis2016:ROOT "
                        "(a DAVIS folder)")
    if videos is not None and videos <= 0:
        raise UserError(f"eval videos must be positive, got {videos}")
    try:
        inference_pairs = tuple(sorted((inference or {}).items()))
        InferenceConfig(**{"size": -1, **dict(inference_pairs)})
    except (TypeError, ValueError) as error:
        raise UserError(f"inference settings: {error}") from None
    return EvalSet(name, videos, tuple(sorted((overrides or {}).items())), inference_pairs)


def check_eval_set(eval_set: EvalSet) -> None:
    """What would otherwise fail only after every run has trained: a DAVIS root without the val
    sequences, generated-set knobs that the generator refuses."""
    if eval_set.is_davis:
        from ..data.readers import read_davis

        year, _, root = eval_set.name.partition(":")
        if not Path(root).expanduser().is_dir():
            raise UserError(f"eval set {eval_set.name}: {root or '(empty)'} is not a folder; give the DAVIS root "
                            "(the folder holding JPEGImages, Annotations and ImageSets)")
        sequences = read_davis(root, split="val", year=int(year[-4:]))  # lists files only; one-line errors
        if not sequences:
            raise UserError(f"eval set {eval_set.name}: no val sequences in {root}")
        return
    import dataclasses as dc

    from ..data.synthetic import SPLITS

    try:
        dc.replace(SPLITS[eval_set.name].config, **dict(eval_set.overrides))
    except (TypeError, ValueError) as error:
        raise UserError(f"eval set {eval_set.name}: {error}") from None


@functools.lru_cache(maxsize=4)
def eval_videos(eval_set: EvalSet) -> list:
    """The videos of an eval set (GeneratedVideo: frames, labels, given_masks), cached in memory."""
    if eval_set.is_davis:
        from .davis import davis_videos

        year, _, root = eval_set.name.partition(":")
        return davis_videos(root, int(year[-4:]), eval_set.videos)
    from ..data.synthetic import split_videos

    try:
        return list(split_videos(eval_set.name, eval_set.videos, **dict(eval_set.overrides)))
    except (TypeError, ValueError) as error:
        raise UserError(f"eval set {eval_set.name}: {error}") from None


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
class RunSpec:
    """Everything one (variant, seed, preset) run needs; picklable, for worker processes and Slurm."""

    variant: Variant
    seed: int
    preset: str
    train: TrainConfig
    eval_set: EvalSet
    cache: str
    model: ModelConfig | None = None
    progress: bool = False
    threads: int | None = None  # torch CPU threads in a worker

    @property
    def entry(self) -> zoo.Entry:
        return zoo.entry_for(self.train, self.cache, self.model)

    @property
    def result_path(self) -> Path:
        return self.entry.folder / f"eval-{self.eval_set.key()}.json"


@dataclass
class RunResult:
    spec_name: str
    rows: list = field(default_factory=list)  # one dict per video
    info: dict = field(default_factory=dict)  # the per-run columns
    reused: bool = False


def plan(variants, seeds, preset: str, eval_set: EvalSet, overrides: Mapping | None = None,
         smoke: bool | None = None, cache=None, progress: bool = False) -> list[RunSpec]:
    """The RunSpecs of variants x seeds (one-line errors for bad names, seeds, presets, settings)."""
    variants, seeds = variants_from(variants), seeds_from(seeds)
    cache = str(zoo.cache_root(cache).resolve())
    specs = []
    for variant in variants:
        for seed in seeds:
            try:
                train = zoo.training_config(variant.base or variant.name, preset, seed,
                                            zoo.smoke_mode() if smoke is None else smoke, **dict(overrides or {}))
            except TypeError as error:  # unknown TrainConfig fields come as ValueError from preset()
                raise UserError(f"training settings: {error}") from None
            except ValueError as error:
                raise UserError(str(error)) from None
            check_config(train)
            check_data(train)
            train.name = f"{variant.name}-{train.model_size}"  # "<variant>-small", as zoo.trained names it
            specs.append(RunSpec(variant, seed, preset, train, eval_set, cache, variant.model(train.model_size),
                                 progress))
    return specs


# ---------------------------------------------------------------------------------- one run
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
    from ..train.trainer import read_metrics

    records = [r["loss"] for r in read_metrics(folder) if "loss" in r]
    tail = records[-max(1, len(records) // 10):] if records else []  # the last tenth of the log
    return float(np.mean(tail)) if tail else math.nan


def evaluate(network, eval_set: EvalSet, progress: bool = False) -> list[dict]:
    """Per-video J, F and J&F of `network` (mean over the video's objects, DAVIS protocol), with the
    "copy the first mask" baseline on the same video."""
    import torch

    from ..train.validate import copy_first_mask, jf_table, segment_generated

    videos = eval_videos(eval_set)
    config = eval_set.inference_config(network)
    if progress:
        from tqdm.auto import tqdm

        videos = tqdm(videos, desc="evaluate", unit="video", leave=False)
    rows = []
    with torch.no_grad():
        for video in videos:
            (prediction,), _ = segment_generated(network, [video], config)
            table = jf_table([video], [prediction])
            copy = jf_table([video], copy_first_mask([video]))
            j, f = float(table["J-Mean"].mean()), float(table["F-Mean"].mean())
            copy_jf = float((copy["J-Mean"].mean() + copy["F-Mean"].mean()) / 2)
            rows.append({"video": video.name, "objects": len(table), "J": j, "F": f, "J&F": (j + f) / 2,
                         "copy_J&F": copy_jf})
    return rows


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


# ---------------------------------------------------------------------------------- back ends
def _in_process(specs, bar):
    for spec in specs:
        bar.set_postfix_str(f"{spec.variant.name} seed {spec.seed}")
        yield spec, run_one(spec)


def _finish(failed: list, total: int) -> None:
    """After the other runs have finished: say which failed, then raise the first failure."""
    if failed:
        names = ", ".join(f"{spec.variant.name} seed {spec.seed}" for spec, _ in failed)
        print(f"ablate: {len(failed)} of {total} runs failed ({names}); the finished runs are cached: "
              "run again to retry the failed ones", file=sys.stderr)
        raise failed[0][1]


def _processes(specs, jobs: int, bar):
    """Worker processes (spawned); a failed run does not stop the others. On an interruption the
    workers get SIGTERM, so that a run that is training saves its checkpoint."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    failed = []
    try:
        futures = {pool.submit(run_one, dataclasses.replace(spec, progress=False, threads=threads)): spec
                   for spec in specs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - reported and raised once the others finish
                failed.append((futures[future], error))
                continue
            yield futures[future], result
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _finish(failed, len(specs))


def _submitit(specs, executor, bar):
    """submitit jobs (Slurm or local), polled; jobs still pending are cancelled on an interruption."""
    pending = [(spec, executor.submit(run_one, dataclasses.replace(spec, progress=False))) for spec in specs]
    failed = []
    try:
        while pending:
            for item in [item for item in pending if item[1].done()]:
                pending.remove(item)
                try:
                    result = item[1].result()
                except Exception as error:  # noqa: BLE001 - reported and raised once the others finish
                    failed.append((item[0], error))
                    continue
                yield item[0], result
            if pending:
                time.sleep(1.0)
    except BaseException:
        for _, job in pending:
            job.cancel(check=False)
        raise
    _finish(failed, len(specs))


def slurm_executor(folder, **parameters):
    """A submitit executor for `run_ablations(executor=...)`: Slurm when available (parameters such
    as slurm_partition, timeout_min, gpus_per_node, cpus_per_task), or cluster="local" / "debug"."""
    try:
        import submitit
    except ImportError:
        raise UserError("the cluster back end needs submitit: pip install 'qmvos-lab[cluster]'") from None
    cluster = parameters.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    parameters.setdefault("timeout_min", 120)
    try:
        executor.update_parameters(**parameters)
    except (TypeError, ValueError) as error:
        raise UserError(f"submitit parameters: {str(error).splitlines()[0]}") from None
    return executor


# ---------------------------------------------------------------------------------- the table
def run_ablations(variants=("xmem", "qmvos"), seeds=(0, 1, 2), preset: str = zoo.DEFAULT_PRESET, *,
                  eval_set: str | EvalSet = DEFAULT_EVAL_SET, eval_videos: int | None = None,
                  eval_overrides: Mapping | None = None, inference: Mapping | None = None,
                  overrides: Mapping | None = None, jobs: int = 1, executor=None, cache=None,
                  smoke: bool | None = None, progress: bool = True) -> pd.DataFrame:
    """Train and evaluate every (variant, seed) run of `preset`, reusing finished runs.

    variants: names of ABLATIONS, or a mapping name -> ModelConfig overrides (see `variants_from`).
    overrides: TrainConfig fields on top of the preset (part of each run's cache key).
    eval_set: a held-out generated split (default synthetic-hard) or davis2017:ROOT / davis2016:ROOT;
        eval_videos / eval_overrides (SyntheticConfig knobs) / inference (InferenceConfig fields).
    jobs: local worker processes; executor: a submitit executor (see `slurm_executor`).
    Returns one tidy row per (variant, seed, video): J, F, J&F, copy_J&F, and the run columns
    (preset, iterations, training time, checkpoint, code version, ...); `.attrs["reused"]` counts
    the runs that were already finished.
    """
    if not isinstance(eval_set, EvalSet):
        eval_set = eval_set_from(eval_set, eval_videos, eval_overrides, inference)
    if jobs < 1:
        raise UserError(f"jobs must be at least 1, got {jobs}")
    in_process = jobs == 1 and executor is None
    check_eval_set(eval_set)  # before any run trains: it is read only after training
    check_cache(zoo.cache_root(cache), cache_setting(cache))  # runs and their results are written there
    specs = plan(variants, seeds, preset, eval_set, overrides, smoke, cache, progress and in_process)
    results: dict[int, RunResult] = {}
    todo = []
    for index, spec in enumerate(specs):
        done = read_result(spec)
        if done is not None:
            results[index] = done
        else:
            todo.append(spec)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), initial=len(results), desc="ablation runs", unit="run", disable=not progress)
    try:
        if executor is not None:
            backend = _submitit(todo, executor, bar)
        elif jobs > 1 and len(todo) > 1:
            backend = _processes(todo, jobs, bar)
        else:
            backend = _in_process(todo, bar)
        for spec, result in backend:
            results[specs.index(spec)] = result
            bar.update(1)
    finally:
        bar.close()
    table = tidy(specs, [results[i] for i in range(len(specs))])
    table.attrs["reused"] = sum(r.reused for r in results.values())
    return table


def tidy(specs: Sequence[RunSpec], results: Sequence[RunResult]) -> pd.DataFrame:
    rows = [{"variant": spec.variant.name, "seed": spec.seed, **row, **result.info}
            for spec, result in zip(specs, results) for row in result.rows]
    columns = ["variant", "seed", "video", "objects", "J", "F", "J&F", "copy_J&F", *RUN_COLUMNS]
    table = pd.DataFrame(rows)
    return table[[c for c in columns if c in table] + [c for c in table if c not in columns]]
