"""The ablation runner: train and evaluate (variant, seed) runs of a preset, reusing finished runs,
and gather them in one tidy table (`run_ablations`).

specs.py plans the runs (variants, seeds, `RunSpec`), eval_set.py says what they are scored on,
run.py trains and evaluates one run in its cache entry (so rerunning skips every finished run,
and a run stopped midway resumes from its checkpoint), backends.py runs the plan in this process
(default; the notebook), in `jobs=N` local worker processes, or through a submitit executor
(`executor=`; Slurm), so the same table runs on a cluster by changing one argument.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from .. import zoo
from ..cache import cache_setting, check_cache
from ..errors import UserError
from .backends import _in_process, _processes, _submitit, slurm_executor
from .eval_set import DEFAULT_EVAL_SET, EvalSet, check_eval_set, eval_set_from
from .run import RunResult, read_result, run_one
from .specs import RunSpec, Variant, parse_pairs, plan, seeds_from, variants_from

__all__ = ["DEFAULT_EVAL_SET", "EvalSet", "RUN_COLUMNS", "RunSpec", "Variant", "eval_set_from", "parse_pairs",
           "plan", "run_ablations", "run_one", "seeds_from", "slurm_executor", "tidy", "variants_from"]

RUN_COLUMNS = ["preset", "iterations", "training_time_s", "eval_time_s", "final_loss", "checkpoint",
               "code_version"]


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

    if progress and todo:
        print(estimate(todo, [results[i] for i in sorted(results)]), flush=True)
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
    """One row per (variant, seed, video): the run's per-video scores and its RUN_COLUMNS."""
    rows = [{"variant": spec.variant.name, "seed": spec.seed, **row, **result.info}
            for spec, result in zip(specs, results) for row in result.rows]
    columns = ["variant", "seed", "video", "objects", "J", "F", "J&F", "copy_J&F", *RUN_COLUMNS]
    table = pd.DataFrame(rows)
    return table[[c for c in columns if c in table] + [c for c in table if c not in columns]]


WHOLE_RUN_FACTOR = 0.8  # a whole run's iteration / the decision's timed one (0.78-0.86 measured, fast_path.py)


def estimate(todo: Sequence[RunSpec], finished: Sequence[RunResult] = ()) -> str:
    """One line printed before the runs start: how many runs train or only evaluate, and the time
    expected on this machine: training from the CPU's timed iteration in the fast-path decisions
    file (never timed here), evaluation from the finished runs' `eval_time_s`; what is not known is
    said so (the progress bar's rate then tells)."""
    import dataclasses
    import math

    from ..machine import describe_cpu, read_decisions
    from ..train.fast_path import FastPath, decision_key

    to_train = [s for s in todo if not s.entry.checkpoint.is_file()]  # the others only evaluate
    evaluate_only = len(todo) - len(to_train)
    train_s, unknown = 0.0, 0
    cpu = describe_cpu()
    for spec in to_train:
        auto = dataclasses.replace(spec.train, amp=None, channels_last=None)  # the key "auto" was timed under
        timed = (read_decisions(spec.cache).get(decision_key(auto, cpu)) or {}).get("median_s", {})
        label = FastPath(bool(spec.train.amp), bool(spec.train.channels_last)).label  # what the run trains in
        if label in timed:
            train_s += spec.train.iterations * timed[label] * WHOLE_RUN_FACTOR
        else:
            unknown += 1
    eval_times = [r.info.get("eval_time_s", math.nan) for r in finished]
    eval_times = [t for t in eval_times if isinstance(t, (int, float)) and not math.isnan(t)]
    eval_s = len(todo) * float(sum(eval_times) / len(eval_times)) if eval_times else math.nan
    parts = [f"{len(to_train)} run(s) to train"
             + (f" (~{train_s / 60:.0f} min from this CPU's timed iteration)" if to_train and not unknown else
                f" ({unknown} without a timed iteration on this CPU: see the progress bar)" if unknown else ""),
             f"{evaluate_only} to evaluate only",
             f"evaluation ~{eval_s / 60:.0f} min" if not math.isnan(eval_s) else "evaluation time unknown"]
    if to_train and not unknown and not math.isnan(eval_s):
        parts.append(f"about {(train_s + eval_s) / 60:.0f} min in all, in one process")
    return "ablation estimate: " + "; ".join(parts)
