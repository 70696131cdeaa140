"""The summary table of an ablation: one row per variant, its statistics against the reference and
the paper's row beside them (the statistics themselves live in stats.py, power.py, aggregates.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .aggregates import improvement_interval, iqm, iqm_interval, probability_of_improvement
from .paper import TABLE3
from .power import ALPHA, POWER, design, paper_effects
from .stats import (bootstrap_interval, caveats, holm, per_seed, per_video, reading, sign_flip_method,
                    sign_flip_pvalue, two_stage_interval, verdict)


def seed_video(runs: pd.DataFrame, variant: str, metric: str = "J&F") -> pd.DataFrame:
    """seed x video table of one variant's `metric` (rows: its trained networks)."""
    return runs[runs["variant"] == variant].pivot_table(index="seed", columns="video", values=metric, aggfunc="mean")


def _complete(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The two seeds x videos tables on the videos every seed of both has scored (same column order)."""
    videos = [v for v in a.columns if v in b.columns and a[v].notna().all() and b[v].notna().all()]
    return a[videos].to_numpy(), b[videos].to_numpy()


def _versus(runs, variant, reference, table, seeds, metric, confidence, n_resamples, seed, power, alpha) -> dict:
    """The columns of one comparison `variant` - `reference` (see `compare`)."""
    paired = (table[variant] - table[reference]).dropna()  # one difference per shared video, seeds averaged
    d = paired.to_numpy()
    out = {"diff": float(d.mean()) if d.size else math.nan}
    out["diff_low"], out["diff_high"] = bootstrap_interval(d, confidence, n_resamples, seed) if d.size else (
        math.nan, math.nan)
    out["p_value"], out["p_method"] = sign_flip_pvalue(d), sign_flip_method(d.size)
    a, r = _complete(seed_video(runs, variant, metric), seed_video(runs, reference, metric))
    out["diff_runs_low"], out["diff_runs_high"] = (two_stage_interval(a, r, confidence, n_resamples, seed)
                                                   if a.size and r.size else (math.nan, math.nan))
    plan = design(a, r) if a.shape[1] > 1 and r.size else None
    effect = abs(out["diff"])
    out["mdd"] = plan.detectable(power, alpha) if plan else math.nan
    out["seeds_needed"] = plan.seeds_needed(effect, power, alpha) if plan else math.nan
    out["videos_needed"] = plan.videos_needed(effect, power, alpha) if plan else math.nan
    out["p_improve"] = probability_of_improvement(a, r) if a.size and r.size else math.nan
    out["p_improve_low"], out["p_improve_high"] = (improvement_interval(a, r, confidence, seed=seed)
                                                   if a.size and r.size else (math.nan, math.nan))
    by_seed = (seeds[variant] - seeds[reference]).dropna()  # the same seed of both
    out["diff_seed_min"], out["diff_seed_max"] = ((float(by_seed.min()), float(by_seed.max())) if len(by_seed) > 1
                                                  else (math.nan, math.nan))
    out["caveat"] = caveats(d, int(seeds[variant].notna().sum()), int(seeds[reference].notna().sum()))
    return out


def compare(runs: pd.DataFrame, reference: str = "qmvos", metric: str = "J&F", confidence: float = 0.95,
            n_resamples: int = 9999, seed: int = 0, baseline: str = "xmem", power: float = POWER,
            alpha: float = ALPHA) -> pd.DataFrame:
    """One row per variant, in the order of `runs`:
    - its mean `metric` over videos (seeds averaged per video) with a BCa interval, its IQM over all
      seed x video scores with a stratified bootstrap interval, the per-seed means;
    - against `reference`, paired over videos: the difference with its BCa interval (these networks)
      and its two-stage interval (runs and videos resampled: the design), the sign-flip p-value
      (`p_method`: exact or Monte Carlo) and its Holm adjustment over all comparisons with the
      reference, the probability of improvement P(variant > reference) with its interval;
    - power (80 %, alpha 0.05, the seeds x videos design that was run): the minimum detectable
      difference `mdd`, and the seeds (same videos) or videos (same seeds) that would detect the
      observed difference with that power if it were real (inf: no number of them alone would);
    - the paper (QMVOS Table 3, DAVIS-2017 val): its direction, its J&F and difference to the full
      model where transcribed, that difference as a share of the full model's margin over
      `baseline`, the same share of OUR margin (`paper_scaled`, NaN unless the full model beats the
      baseline here), and whether our design could detect it;
    - a `caveat` (why the row cannot back a verdict) and the verdict (see stats.verdict): it uses the
      two-stage interval and the Holm-adjusted p."""
    table = per_video(runs, metric)
    seeds = per_seed(runs, metric)
    variants = list(dict.fromkeys(runs["variant"]))  # in the order of the table
    has_reference = reference in table
    rows = []
    for variant in variants:
        values = table[variant].dropna()
        low, high = bootstrap_interval(values.to_numpy(), confidence, n_resamples, seed)
        scores = seed_video(runs, variant, metric).dropna(axis=1)  # seeds x videos every seed scored
        seed_means = seeds[variant].dropna()
        row = {"variant": variant, "videos": len(values), "seeds": len(seed_means), metric: float(values.mean()),
               "ci_low": low, "ci_high": high, "IQM": iqm(scores.to_numpy())}
        row["iqm_low"], row["iqm_high"] = iqm_interval(scores.to_numpy(), confidence, n_resamples, seed)
        row.update({"seed_means": " ".join(f"{s}:{m:.3f}" for s, m in seed_means.items()),
                    "seed_min": float(seed_means.min()), "seed_max": float(seed_means.max())})
        if has_reference and variant != reference:
            row.update(_versus(runs, variant, reference, table, seeds, metric, confidence, n_resamples, seed,
                               power, alpha))
        else:
            row.update({"diff": 0.0 if variant == reference else math.nan,
                        "caveat": "" if variant == reference else f"no {reference} runs to compare with"})
        rows.append(row)
    summary = pd.DataFrame(rows)
    for column in ("diff_low", "diff_high", "diff_runs_low", "diff_runs_high", "p_value", "mdd", "seeds_needed",
                   "videos_needed", "p_improve", "p_improve_low", "p_improve_high", "diff_seed_min", "diff_seed_max"):
        if column not in summary:
            summary[column] = math.nan
    if "p_method" not in summary:
        summary["p_method"] = ""
    summary["p_method"] = summary["p_method"].fillna("")
    summary["p_holm"] = holm(summary["p_value"].where(summary["variant"] != reference))
    _paper_columns(summary, reference, baseline)
    summary["verdict"] = [
        "" if r.variant == reference else verdict(r.diff, r.diff_runs_low, r.diff_runs_high, r.p_holm,
                                                  TABLE3[r.variant].direction if r.variant in TABLE3 else None,
                                                  alpha, r.caveat, r.mdd)
        for r in summary.itertuples()]
    summary["interval_excludes_0"] = [None if math.isnan(lo) else bool(not lo <= 0 <= hi)
                                      for lo, hi in zip(summary["diff_runs_low"], summary["diff_runs_high"])]
    summary["direction_agrees"] = [
        bool(np.sign(r.diff) == TABLE3[r.variant].direction) if r.variant in TABLE3 and TABLE3[r.variant].direction
        and not math.isnan(r.diff) and r.diff != 0 else None for r in summary.itertuples()]
    summary["reading"] = [reading(r.variant, reference, r.diff, r.diff_runs_low, r.diff_runs_high, r.p_holm,
                                  (r.diff_seed_min, r.diff_seed_max), r.verdict) for r in summary.itertuples()]
    first = [c for c in COLUMNS if c in summary]
    return summary[first + [c for c in summary if c not in first]]


COLUMNS = ["variant", "videos", "seeds", "J&F", "ci_low", "ci_high", "IQM", "iqm_low", "iqm_high", "seed_means",
           "seed_min", "seed_max", "diff", "diff_low", "diff_high", "diff_runs_low", "diff_runs_high", "p_value",
           "p_method", "p_holm", "p_improve", "p_improve_low", "p_improve_high", "diff_seed_min", "diff_seed_max",
           "mdd", "seeds_needed", "videos_needed", "paper_table", "paper_direction", "paper_jf", "paper_diff",
           "paper_share", "paper_scaled", "paper_detectable", "paper_note", "caveat", "verdict"]  # the order of summary.csv


def _paper_columns(summary: pd.DataFrame, reference: str, baseline: str) -> None:
    """The paper's row beside ours (in place); see `compare`."""
    effects = paper_effects(TABLE3, reference, baseline)
    rows = summary.set_index("variant")
    margin = -rows.loc[baseline, "diff"] if baseline in rows.index else math.nan  # ours: reference - baseline
    paper = [TABLE3.get(v) for v in summary["variant"]]
    summary["paper_table"] = [p.table if p else "" for p in paper]
    summary["paper_direction"] = [{-1: "below", 0: "reference", 1: "above"}.get(p.direction, "") if p else ""
                                  for p in paper]
    summary["paper_jf"] = [p.jf if p and p.jf is not None else math.nan for p in paper]  # 0-100, as printed
    summary["paper_note"] = [p.note if p else "" for p in paper]
    summary["paper_diff"] = [effects.get(v, (math.nan, math.nan))[0] for v in summary["variant"]]
    summary["paper_share"] = [effects.get(v, (math.nan, math.nan))[1] for v in summary["variant"]]
    summary["paper_scaled"] = summary["paper_share"] * (margin if margin > 0 else math.nan)
    summary["paper_detectable"] = [None if math.isnan(s) or math.isnan(m) else bool(abs(s) >= m)
                                   for s, m in zip(summary["paper_scaled"], summary["mdd"])]
