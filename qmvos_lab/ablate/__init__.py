"""Rerun QMVOS's Table 3 with seeds and paired intervals (the ablation runner).

    from qmvos_lab import ablate
    runs = ablate.run_ablations(["xmem", "qmvos", "no-interaction"], seeds=[0, 1, 2], preset="cpu-tiny")
    summary = ablate.compare(runs, reference="qmvos")   # differences, intervals, Holm p, power, paper
    ablate.jf_points(runs, summary); ablate.differences(summary)
    ablate.speed_table()                                 # Table 3a: QMVOS / XMem time per frame

`qmvos-lab ablate --preset P --variants a,b --seeds 0,1,2 --output DIR` does the same and writes
DIR/runs.csv, DIR/summary.csv and the figures. See runner.py (the runs' table), specs.py (variants,
seeds, the plan), eval_set.py (what runs are scored on), run.py (one run in the cache), backends.py
(this process, worker processes, submitit), summary.py (the comparison), stats.py (intervals,
tests, Holm, verdicts), power.py (what the design can detect), aggregates.py (IQM, probability of
improvement), paper.py (the paper's Tables 1-3 as reference data), figures.py, speed.py, dose.py (the
QMVOS - XMem gap against object similarity and count: `qmvos-lab dose-response`).

Names are imported on first use, so that a command line error costs no scipy or seaborn import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_MODULES = {
    "figures": ["differences", "jf_points"],
    "paper": ["CITATION", "INCONSISTENCIES", "PAPER_FPS", "TABLE1", "TABLE2", "TABLE3", "PaperRow", "Score"],
    "report": ["format_summary", "write_outputs"],
    "runner": ["run_ablations"],
    "specs": ["RunSpec", "Variant", "parse_pairs", "plan", "seeds_from", "variants_from"],
    "eval_set": ["DEFAULT_EVAL_SET", "EvalSet", "eval_set_from"],
    "run": ["run_one"],
    "backends": ["slurm_executor"],
    "speed": ["speed_table"],
    "stats": ["bootstrap_interval", "caveats", "holm", "per_seed", "per_video", "sign_flip_pvalue",
              "two_stage_interval"],
    "summary": ["compare"],
    "dose": ["run_dose_response"],
    "power": ["design", "paper_effects"],
    "aggregates": ["iqm", "iqm_interval", "improvement_interval", "probability_of_improvement"],
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _MODULES:  # the submodules themselves (ablate.stats, ablate.runner, ...)
        return importlib.import_module(f".{name}", __name__)
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_MODULES))


if TYPE_CHECKING:  # for IDEs and type checkers
    from .figures import differences, jf_points
    from .paper import CITATION, INCONSISTENCIES, PAPER_FPS, TABLE1, TABLE2, TABLE3, PaperRow, Score
    from .report import format_summary, write_outputs
    from .backends import slurm_executor
    from .eval_set import DEFAULT_EVAL_SET, EvalSet, eval_set_from
    from .run import run_one
    from .runner import run_ablations
    from .specs import RunSpec, Variant, parse_pairs, plan, seeds_from, variants_from
    from .speed import speed_table
    from .aggregates import improvement_interval, iqm, iqm_interval, probability_of_improvement
    from .power import design, paper_effects
    from .stats import (bootstrap_interval, caveats, holm, per_seed, per_video, sign_flip_pvalue,
                        two_stage_interval)
    from .summary import compare
    from .dose import run_dose_response
