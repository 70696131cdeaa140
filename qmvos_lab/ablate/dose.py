"""The similarity and object-count dose-response (issue 27): a qualitative claim of QMVOS as a curve.

QMVOS (Sec. 4.2, "Qualitative Results", and Fig. 3) shows a few frames on which it beats XMem and
says it "significantly outperforms XMem in multi-object segmentation scenarios and similar object
segmentation scenarios" (Fig. 3's caption: better at "discriminating similarities"). The paper
gives no number for it. Here it is measured: the QMVOS − XMem J&F gap, paired by video, against

- the objects' appearance similarity (`SyntheticConfig.similarity`, e.g. 0, 0.5, 0.8, 0.95) with
  the object count held at AT_COUNT, and
- the object count (e.g. 1, 2, 4, 6) with the similarity held at AT_SIMILARITY,

every other knob as synthetic-hard's (occlusions 0.7, speed 1.4). Every cell is a held-out generated
split, DOSE_SPLIT, whose scene seeds no training or evaluation split uses (SPLITS). Video i of every
cell is drawn from the same seed (the background, the camera path and the objects' shared family
of shapes and textures), while the objects' own layout and motion change with the knobs; so the
*trend* (the gap at the last level minus the gap at the first, the lab's reading of "better where
objects are more similar / more numerous") is paired by seed, a weaker pairing than the cells'.

Each cell is one `run_ablations` call: the networks are trained once into the cache (the same
(variant, seed, preset) runs as the Table 3 rerun) and each cell's scores are stored in their cache
entries, so a rerun reads them in seconds. Per cell and per trend: the gap with its videos-only BCa
interval and its two-stage interval (runs, then videos, resampled: the training noise counts), the
exact sign-flip p, Holm-adjusted over every cell and trend, and the smallest gap the design detects
with 80 % power at the Holm level of the first test (alpha / rows). A design whose smallest
possible Holm p (rows x 2 / 2^videos) cannot reach alpha is marked not decidable.
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
DEFAULT_VIDEOS = 12  # with 10 rows (8 cells, 2 trends) the smallest Holm p is 10 x 2 / 2^12 = 0.005
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
    if length is not None and length < 3:
        raise UserError(f"dose-response videos need at least 3 frames (the DAVIS protocol scores the frames "
                        f"between the first and the last), got length {length}")
    for name, levels in (("a similarity", similarities), ("an object count", counts)):
        if len(set(levels)) != len(levels):
            raise UserError(f"{name} is given twice ({', '.join(f'{v:g}' for v in levels)})")
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
    cell's `axis`, `level`, `num_objects` and `similarity` in front (`objects` stays the runner's: the
    objects in the video's first annotated frame)."""
    from tqdm.auto import tqdm

    from .runner import run_ablations

    if variant == reference:
        raise UserError(f"the dose-response compares two variants; got {variant!r} twice")
    planned = cells(similarities, counts, videos, length)
    tables = []
    for cell in tqdm(planned, desc="dose-response cells", unit="cell", disable=not progress):
        runs = run_ablations([reference, variant], seeds, preset, eval_set=cell.eval_set, jobs=jobs, cache=cache,
                             smoke=smoke, progress=progress)  # the first cell trains what is missing
        knobs = dict(cell.eval_set.overrides)
        tables.append(runs.assign(axis=cell.axis, level=cell.level, num_objects=knobs["num_objects"],
                                  similarity=knobs["similarity"]))
    table = pd.concat(tables, ignore_index=True)
    front = ["axis", "level", "num_objects", "similarity"]
    return table[front + [c for c in table if c not in front]]


def direction(variant: str, reference: str) -> int | None:
    """The paper's sign for the gap `variant` − `reference`: +1 for qmvos over xmem (Sec. 4.2), −1 for
    the reverse, None (no claim: a verdict can only say "differs") for any other pair."""
    return {("qmvos", "xmem"): 1, ("xmem", "qmvos"): -1}.get((variant, reference))


def _cell_gap(cell: pd.DataFrame, variant: str, reference: str, alpha: float) -> dict:
    """One cell's gap `variant` − `reference` (compare's columns, renamed; mdd at `alpha`) and both J&Fs."""
    from .summary import compare

    summary = compare(cell, reference=reference, baseline=reference, alpha=alpha).set_index("variant")
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


def _trend(table: pd.DataFrame, axis: str, variant: str, reference: str, alpha: float) -> dict | None:
    """The gap at the sweep's last level minus the gap at its first, paired by seed and scene: does
    the gap grow along the axis? Each network is scored at both levels, so per (network, video)
    the change last − first is one number; the trend is the paired difference of those changes
    between `variant` and `reference`, with the same statistics as a cell (two-stage interval, exact
    sign-flip p over videos, mdd). None with fewer than two levels."""
    from .power import design
    from .stats import two_stage_interval
    from .summary import _complete, seed_video

    rows = table[table["axis"] == axis]
    levels = sorted(rows["level"].unique())
    if len(levels) < 2:
        return None
    last, first = rows[rows["level"] == levels[-1]], rows[rows["level"] == levels[0]]
    change = {name: seed_video(last, name) - seed_video(first, name)
              for name in (variant, reference)}  # seed x video: last - first, per network
    a, r = _complete(change[variant], change[reference])  # the videos every seed of both has
    d = a.mean(axis=0) - r.mean(axis=0) if a.size else np.array([])  # per video, seeds averaged
    low, high = bootstrap_interval(d)
    runs_low, runs_high = two_stage_interval(a, r) if a.size and r.size else (math.nan, math.nan)
    plan = design(a, r) if a.shape[1] > 1 and r.size else None
    seeds = min(a.shape[0], r.shape[0])
    return {"axis": axis, "level": f"{levels[-1]:g} vs {levels[0]:g}", "row": "trend", "videos": int(d.size),
            "seeds": seeds, "gap": float(d.mean()) if d.size else math.nan, "gap_low": low, "gap_high": high,
            "gap_runs_low": runs_low, "gap_runs_high": runs_high, "p_value": sign_flip_pvalue(d),
            "p_method": sign_flip_method(d.size), "mdd": plan.detectable(alpha=alpha) if plan else math.nan,
            "caveat": caveats(d, seeds, seeds)}


def gaps(table: pd.DataFrame, variant: str = "qmvos", reference: str = "xmem", alpha: float = 0.05) -> pd.DataFrame:
    """One row per cell (`row` = "cell"): both J&Fs, copying the first mask, the gap with its
    intervals, p, mdd; then per axis the trend (`row` = "trend": the last level's gap minus the
    first's, paired by seed and scene). `p_holm` adjusts over all cells and trends; `mdd` is at the
    Holm level of the first test (alpha / rows). The verdict reads the two-stage interval and the
    Holm p, with the paper's direction where it has one (`direction`: qmvos above xmem; for the
    trends, the lab's reading: the gap grows with similarity and with the object count). A design
    whose smallest possible Holm p, rows x 2 / 2^videos, cannot reach alpha is not decidable."""
    missing = {"axis", "level", "variant", "seed", "video", "J&F"} - set(table.columns)
    if missing:
        raise UserError(f"dose-response table lacks column(s) {sorted(missing)}")
    axes = list(dict.fromkeys(table["axis"]))
    rows_expected = table.groupby(["axis", "level"]).ngroups + sum(table[table["axis"] == a]["level"].nunique() > 1
                                                                  for a in axes)
    level = alpha / max(1, rows_expected)  # Holm's first threshold: the power a single row has at least
    rows = []
    for (axis, at), cell in table.groupby(["axis", "level"], sort=False):
        rows.append({"axis": axis, "level": at, "row": "cell", **_cell_gap(cell, variant, reference, level)})
    for axis in axes:
        trend = _trend(table, axis, variant, reference, level)
        if trend is not None:
            rows.append(trend)
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"])
    floor = len(out) * 2 / 2.0 ** out["videos"].clip(upper=60)  # the smallest Holm p the exact test can give
    out["caveat"] = [c if f < alpha else "; ".join(filter(None, [c, f"{n} videos cannot reach Holm p < {alpha:g} "
                                                                 f"over {len(out)} rows"]))
                     for c, f, n in zip(out["caveat"].fillna(""), floor, out["videos"])]
    sign = direction(variant, reference)
    out["verdict"] = [verdict(r.gap, r.gap_runs_low, r.gap_runs_high, r.p_holm, sign, alpha, r.caveat, r.mdd)
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
        runs_err = np.clip([gap - rows["gap_runs_low"].to_numpy(float), rows["gap_runs_high"].to_numpy(float) - gap],
                           0, None)  # percentile intervals may miss the mean by a hair
        videos_err = np.clip([gap - rows["gap_low"].to_numpy(float), rows["gap_high"].to_numpy(float) - gap], 0, None)
        bottom.errorbar(x, gap, yerr=runs_err, fmt="o-",
                        capsize=4, lw=2, color="C0", label="two-stage 95% interval (runs, videos)")
        bottom.errorbar(x + 0.01 * (np.ptp(x) or 1), gap, yerr=videos_err,
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
    for r in gap_table.to_dict("records"):  # records: variant names need not be identifiers
        where = f"{r['axis']} {r['level']:g}" if r["row"] == "cell" else f"{r['axis']} trend ({r['level']})"
        scores = (f"{variant} {r[variant]:.3f}  {reference} {r[reference]:.3f}  copy {r['copy']:.3f}  "
                  if r["row"] == "cell" else "")
        mdd = f"  mdd {r['mdd']:.3f}" if not math.isnan(r["mdd"]) else ""
        lines.append(f"{where:<28} {scores}gap {r['gap']:+.3f} [{r['gap_runs_low']:+.3f}, {r['gap_runs_high']:+.3f}]"
                     f"  p {r['p_value']:.3g} (Holm {r['p_holm']:.3g}){mdd}  {r['verdict']}")
    sign = direction(variant, reference)
    claim = ("the paper's direction (Sec. 4.2): positive gaps; trends read as growing gaps (the lab's reading)"
             if sign == 1 else "the paper's direction (Sec. 4.2): negative gaps (the pair reversed)" if sign == -1
             else "no paper claim for this pair: a verdict says only 'differs'")
    lines += ["", f"gap: {variant} - {reference} J&F per video (seeds averaged); [ ]: 95 % two-stage interval (seeds, "
                  "then videos, resampled); trend: the last point's gap minus the first's, paired by seed and scene; "
                  "p: exact sign-flip over videos, Holm over all rows; mdd: the smallest gap this design detects with "
                  f"80 % power at alpha / rows; {claim}."]
    return "\n".join(lines)
