"""The similarity and object-count dose-response (issue 27): QMVOS's qualitative claim as a curve.

QMVOS (Sec. 4.3, Fig. 3) shows, on a few chosen frames, that it does better than XMem "in terms of
detailing and discriminating similarities" and in multi-object scenes. Here that claim is a
measured curve: the QMVOS − XMem J&F gap, paired by video, against

- the objects' appearance similarity (`SyntheticConfig.similarity`, e.g. 0, 0.5, 0.8, 0.95) with
  the object count held at AT_COUNT, and
- the object count (e.g. 1, 2, 4, 6) with the similarity held at AT_SIMILARITY,

every other knob as synthetic-hard's (occlusions 0.7, speed 1.4). Every cell is a held-out generated
split, DOSE_SPLIT, whose scene seeds no training or evaluation split uses (SPLITS), so video i of
every cell is the same scene (seed) drawn with other knobs: the trend (the gap at the last level
minus the gap at the first) is paired by scene too.

Each cell is one `run_ablations` call: the networks are trained once into the cache (the same
(variant, seed, preset) runs as the Table 3 rerun) and each cell's scores are stored in their cache
entries, so a rerun reads them in seconds. The statistics are the ablation runner's (`compare`):
the gap with its videos-only BCa interval and its two-stage interval (runs and videos resampled),
the exact sign-flip p (Holm-adjusted here over all cells and trends), the smallest gap the design
detects at 80 % power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import UserError
from .eval_set import EvalSet
from .stats import bootstrap_interval, caveats, holm, sign_flip_method, sign_flip_pvalue, verdict

DOSE_SPLIT = "synthetic-dose"  # in data.synthetic.SPLITS: synthetic-hard's knobs, seeds of its own
SIMILARITIES = (0.0, 0.5, 0.8, 0.95)
COUNTS = (1, 2, 4, 6)
AT_COUNT = 4  # the similarity sweep's object count (synthetic-hard's)
AT_SIMILARITY = 0.9  # the object-count sweep's similarity (synthetic-hard's)
DEFAULT_VIDEOS = 8
AXES = ("similarity", "objects")


@dataclass(frozen=True)
class Cell:
    """One point of a sweep: `axis` ("similarity" or "objects") at `level`, scored on `eval_set`."""

    axis: str
    level: float
    eval_set: EvalSet


def cells(similarities: Sequence[float] = SIMILARITIES, counts: Sequence[int] = COUNTS,
          videos: int = DEFAULT_VIDEOS, length: int | None = None) -> list[Cell]:
    """The cells of both sweeps (similarity at AT_COUNT objects, then objects at AT_SIMILARITY);
    `length` shortens the videos (smoke runs, tests)."""
    if videos < 1:
        raise UserError(f"dose-response videos per cell must be positive, got {videos}")
    for s in similarities:
        if not 0 <= s <= 1:
            raise UserError(f"dose-response similarity {s} is outside [0, 1]")
    for k in counts:
        if int(k) != k or not 1 <= k <= 254:
            raise UserError(f"dose-response object count {k} must be a whole number in 1..254")
    if length is not None and length < 2:
        raise UserError(f"dose-response videos need at least 2 frames, got length {length}")
    extra = () if length is None else (("length", int(length)),)

    def cell(axis, level, objects, similarity):
        return Cell(axis, level, EvalSet(DOSE_SPLIT, videos, tuple(sorted(
            (("num_objects", objects), ("similarity", similarity)) + extra))))

    return ([cell("similarity", float(s), AT_COUNT, float(s)) for s in similarities]
            + [cell("objects", int(k), int(k), AT_SIMILARITY) for k in counts])


def run_dose_response(variant: str = "qmvos", reference: str = "xmem", seeds=(0, 1, 2),
                      preset: str = "cpu-tiny", *, similarities: Sequence[float] = SIMILARITIES,
                      counts: Sequence[int] = COUNTS, videos: int = DEFAULT_VIDEOS, length: int | None = None,
                      jobs: int = 1, cache=None, smoke: bool | None = None, progress: bool = True) -> pd.DataFrame:
    """Score `variant` and `reference` (each seed of `preset`, trained once into the cache) on every
    cell: the ablation runner's tidy table (variant, seed, video, J, F, J&F, copy_J&F, ...) with the
    cell's `axis`, `level`, `objects` and `similarity` in front."""
    from tqdm.auto import tqdm

    from .runner import run_ablations

    if variant == reference:
        raise UserError(f"the dose-response compares two variants; got {variant!r} twice")
    planned = cells(similarities, counts, videos, length)
    tables = []
    for cell in tqdm(planned, desc="dose-response cells", unit="cell", disable=not progress):
        runs = run_ablations([reference, variant], seeds, preset, eval_set=cell.eval_set, jobs=jobs, cache=cache,
                             smoke=smoke, progress=False)
        knobs = dict(cell.eval_set.overrides)
        tables.append(runs.assign(axis=cell.axis, level=cell.level, objects=knobs["num_objects"],
                                  similarity=knobs["similarity"]))
    table = pd.concat(tables, ignore_index=True)
    front = ["axis", "level", "objects", "similarity"]
    return table[front + [c for c in table if c not in front]]


def _cell_gap(cell: pd.DataFrame, variant: str, reference: str) -> dict:
    """One cell's gap `variant` − `reference` (compare's columns, renamed) and both J&Fs."""
    from .summary import compare

    summary = compare(cell, reference=reference, baseline=reference).set_index("variant")
    if variant not in summary.index or reference not in summary.index:
        raise UserError(f"the dose-response table lacks {variant!r} or {reference!r} runs")
    row = summary.loc[variant]
    return {variant: row["J&F"], reference: summary.loc[reference, "J&F"],
            "copy": float(cell.groupby("video")["copy_J&F"].first().mean()) if "copy_J&F" in cell else math.nan,
            "videos": int(row["videos"]), "seeds": int(min(row["seeds"], summary.loc[reference, "seeds"])),
            "gap": row["diff"], "gap_low": row["diff_low"], "gap_high": row["diff_high"],
            "gap_runs_low": row["diff_runs_low"], "gap_runs_high": row["diff_runs_high"],
            "p_value": row["p_value"], "p_method": row["p_method"], "mdd": row["mdd"],
            "caveat": row["caveat"]}


def _trend(table: pd.DataFrame, axis: str, variant: str, reference: str) -> dict | None:
    """The gap at the sweep's last level minus the gap at its first, paired by scene (video name):
    does the gap grow along the axis? None with fewer than two levels."""
    rows = table[table["axis"] == axis]
    levels = sorted(rows["level"].unique())
    if len(levels) < 2:
        return None

    def gap(level):  # per video (seeds averaged): variant - reference
        wide = rows[rows["level"] == level].pivot_table(index="video", columns="variant", values="J&F",
                                                        aggfunc="mean")
        return wide[variant] - wide[reference]

    d = (gap(levels[-1]) - gap(levels[0])).dropna().to_numpy()
    low, high = bootstrap_interval(d)
    seeds = int(rows.groupby("variant")["seed"].nunique().min())
    return {"axis": axis, "level": f"{levels[-1]:g} vs {levels[0]:g}", "row": "trend", "videos": int(d.size),
            "seeds": seeds, "gap": float(d.mean()) if d.size else math.nan, "gap_low": low, "gap_high": high,
            "p_value": sign_flip_pvalue(d), "p_method": sign_flip_method(d.size),
            "caveat": caveats(d, seeds, seeds)}


def gaps(table: pd.DataFrame, variant: str = "qmvos", reference: str = "xmem", alpha: float = 0.05) -> pd.DataFrame:
    """One row per cell (`row` = "cell"): both J&Fs, copying the first mask, the gap with its
    intervals, p, mdd; then per axis the trend (`row` = "trend": last level's gap minus the first's,
    paired by scene; videos-only interval). `p_holm` adjusts over all cells and trends; the verdict
    reads the two-stage interval (cells) or the videos-only one (trends, whose scenes are the unit),
    with the paper's direction (+1: QMVOS above XMem, the gap growing with similarity and count)."""
    missing = {"axis", "level", "variant", "seed", "video", "J&F"} - set(table.columns)
    if missing:
        raise UserError(f"dose-response table lacks column(s) {sorted(missing)}")
    rows = []
    for (axis, level), cell in table.groupby(["axis", "level"], sort=False):
        rows.append({"axis": axis, "level": level, "row": "cell", **_cell_gap(cell, variant, reference)})
    for axis in dict.fromkeys(table["axis"]):
        trend = _trend(table, axis, variant, reference)
        if trend is not None:
            rows.append(trend)
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"])
    out["verdict"] = [
        verdict(r.gap, *((r.gap_runs_low, r.gap_runs_high) if r.row == "cell" else (r.gap_low, r.gap_high)),
                r.p_holm, +1, alpha, r.caveat or "", r.mdd if r.row == "cell" else math.nan)
        for r in out.itertuples()]
    return out


def gap_figure(gap_table: pd.DataFrame, variant: str = "qmvos", reference: str = "xmem") -> Figure:
    """Per sweep (columns: similarity, object count): top, the J&F of both variants and of copying
    the first mask; bottom, the gap with its two-stage interval (thick) and videos-only interval
    (thin), and 0."""
    from ..viz.common import grid

    cellrows = gap_table[gap_table["row"] == "cell"]
    axes_present = [a for a in AXES if a in set(cellrows["axis"])]
    fig, panels = grid(2, max(1, len(axes_present)), panel=(4.2, 2.7))
    labels = {"similarity": f"object similarity ({AT_COUNT} objects)",
              "objects": f"objects in the video (similarity {AT_SIMILARITY})"}
    for column, axis in enumerate(axes_present):
        rows = cellrows[cellrows["axis"] == axis].sort_values("level")
        x = rows["level"].to_numpy(dtype=float)
        top, bottom = panels[0, column], panels[1, column]
        top.plot(x, rows[variant], "o-", label=variant)
        top.plot(x, rows[reference], "s-", label=reference)
        top.plot(x, rows["copy"], ":", color="C3", label="copy the first mask")
        top.set_ylabel("J&F")
        top.legend(fontsize=8)
        gap = rows["gap"].to_numpy(dtype=float)
        bottom.errorbar(x, gap, yerr=[gap - rows["gap_runs_low"], rows["gap_runs_high"] - gap], fmt="o-",
                        capsize=4, lw=2, color="C0", label="two-stage 95% interval (runs, videos)")
        bottom.errorbar(x + 0.01 * (np.ptp(x) or 1), gap, yerr=[gap - rows["gap_low"], rows["gap_high"] - gap],
                        fmt="none", lw=0.8, color="0.1", capsize=2, label="videos only")
        bottom.axhline(0, color="0.3", lw=0.8)
        bottom.set_ylabel(f"{variant} − {reference} J&F")
        bottom.set_xlabel(labels[axis])
        bottom.legend(fontsize=7)
    seeds = int(cellrows["seeds"].max()) if len(cellrows) else 0
    videos = int(cellrows["videos"].max()) if len(cellrows) else 0
    fig.suptitle(f"{variant} − {reference} against similarity and object count ({seeds} seeds, {videos} "
                 "held-out videos a point)", fontsize=10)
    return fig



def format_gaps(gap_table: pd.DataFrame, variant: str = "qmvos", reference: str = "xmem") -> str:
    """The gap table as text, one line per point and trend, then what the columns mean."""
    lines = []
    for r in gap_table.itertuples():
        where = f"{r.axis} {r.level:g}" if r.row == "cell" else f"{r.axis} trend ({r.level})"
        scores = (f"{variant} {getattr(r, variant):.3f}  {reference} {getattr(r, reference):.3f}  copy {r.copy:.3f}  "
                  if r.row == "cell" else "")
        interval = (f"[{r.gap_runs_low:+.3f}, {r.gap_runs_high:+.3f}]" if r.row == "cell"
                    else f"[{r.gap_low:+.3f}, {r.gap_high:+.3f}]")
        mdd = f"  mdd {r.mdd:.3f}" if r.row == "cell" and not math.isnan(r.mdd) else ""
        lines.append(f"{where:<28} {scores}gap {r.gap:+.3f} {interval}  p {r.p_value:.3g} (Holm {r.p_holm:.3g})"
                     f"{mdd}  {r.verdict}")
    lines += ["", f"gap: {variant} - {reference} J&F per video (seeds averaged); points: 95 % two-stage interval "
                  "(seeds, then videos, resampled); trends: the last point's gap minus the first's, paired by "
                  "scene, 95 % BCa interval over scenes; p: exact sign-flip, Holm over all rows; mdd: the smallest "
                  "gap this design detects with 80 % power; the paper's direction: positive gaps, growing."]
    return "\n".join(lines)
