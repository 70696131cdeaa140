"""Statistics of an ablation table that stay honest with few seeds.

The unit of pairing is the video: every variant segments the same held-out videos, so the effect
of a variant is the mean over videos of d_v = J&F(variant, v) - J&F(full model, v), each J&F first
averaged over the seeds. On those paired differences:
    - a 95 % bootstrap interval of the mean (scipy.stats.bootstrap, BCa),
    - a two-sided sign-flip permutation p-value (scipy.stats.permutation_test with
      permutation_type="samples": under "no effect" each d_v is as likely as -d_v; exact
      enumeration of the 2^n sign patterns when 2^n <= n_resamples).
Seeds are shown separately (each seed's mean over videos, min-max): 3 seeds alone cannot give
p < 0.05, and the spread between seeds is the noise of training itself.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from .paper import TABLE3

METRICS = ("J&F", "J", "F")


def seed_kwargs(function, seed: int) -> dict:
    """The seeding keyword of a scipy.stats resampling function (`rng` since scipy 1.15)."""
    key = "rng" if "rng" in inspect.signature(function).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def bootstrap_interval(values, confidence: float = 0.95, n_resamples: int = 9999,
                       seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of `values` (1-D); a point when they are all equal."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:  # no spread: BCa is undefined, the interval is the value itself
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), _mean, vectorized=True, method="BCa", confidence_level=confidence,
                             n_resamples=n_resamples, **seed_kwargs(stats.bootstrap, seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def sign_flip_pvalue(differences, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided paired permutation p-value of mean(differences) = 0 (random sign flips); NaN for
    fewer than two differences."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size < 2:
        return math.nan
    result = stats.permutation_test((differences,), _mean, vectorized=True, permutation_type="samples",
                                    alternative="two-sided", n_resamples=n_resamples,
                                    **seed_kwargs(stats.permutation_test, seed))
    return float(result.pvalue)


def per_video(runs: pd.DataFrame, metric: str = "J&F") -> pd.DataFrame:
    """variant x video table of `metric`, averaged over the seeds (rows: videos, columns: variants)."""
    missing = {"variant", "seed", "video", metric} - set(runs.columns)
    if missing:
        raise UserError(f"ablation table lacks column(s) {sorted(missing)}; it has {list(runs.columns)}")
    return runs.pivot_table(index="video", columns="variant", values=metric, aggfunc="mean")


def per_seed(runs: pd.DataFrame, metric: str = "J&F") -> pd.DataFrame:
    """seed x variant table of each seed's mean `metric` over the videos."""
    return runs.pivot_table(index="seed", columns="variant", values=metric, aggfunc="mean")


def verdict(diff: float, low: float, high: float, p: float, direction: int | None, alpha: float = 0.05) -> str:
    """'reproduces' / 'contradicts' (the interval excludes 0 and p < alpha, with / against the
    paper's sign; 'differs' for a variant the paper does not have), 'within noise' otherwise, or ''
    when there is nothing to compare."""
    if any(math.isnan(x) for x in (diff, low, high, p)):
        return ""
    if low <= 0 <= high or p >= alpha:
        return "within noise"
    if not direction:
        return "differs"
    return "reproduces" if np.sign(diff) == direction else "contradicts"


def reading(variant: str, reference: str, diff: float, low: float, high: float, p: float, seeds: tuple,
            outcome: str) -> str:
    """One plain sentence per variant."""
    if variant == reference:
        return "the full model (reference)"
    if math.isnan(diff):
        return f"no paired videos with {reference}"
    effect = f"{diff:+.3f} J&F [{low:+.3f}, {high:+.3f}], p = {p:.3g}"
    spread = f"seeds {seeds[0]:+.3f}..{seeds[1]:+.3f}" if not math.isnan(seeds[0]) else "one seed"
    if outcome == "within noise":
        why = "the interval contains 0" if low <= 0 <= high else "p >= 0.05 (too few videos to tell)"
        return f"within noise: {effect}; {why} ({spread})"
    side = "above" if diff > 0 else "below"
    tail = {"reproduces": "as the paper", "contradicts": "against the paper"}.get(outcome, "")
    return f"{side} {reference}: {effect} ({spread}){'; ' + tail if tail else ''}"


def compare(runs: pd.DataFrame, reference: str = "qmvos", metric: str = "J&F", confidence: float = 0.95,
            n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """One row per variant: its mean `metric` (videos, seeds averaged per video) with a bootstrap
    interval, the per-seed means, and, against `reference`, the paired difference with its
    interval and sign-flip p-value, the paper's direction (Table 3) and a verdict: an effect
    counts only when its interval excludes 0 and p < 0.05; otherwise it is "within noise"."""
    table = per_video(runs, metric)
    seeds = per_seed(runs, metric)
    variants = list(dict.fromkeys(runs["variant"]))  # in the order of the table
    rows = []
    for variant in variants:
        values = table[variant].dropna()
        low, high = bootstrap_interval(values.to_numpy(), confidence, n_resamples, seed)
        seed_means = seeds[variant].dropna()
        row = {"variant": variant, "videos": len(values), "seeds": len(seed_means), metric: float(values.mean()),
               "ci_low": low, "ci_high": high,
               "seed_means": " ".join(f"{s}:{m:.3f}" for s, m in seed_means.items()),
               "seed_min": float(seed_means.min()), "seed_max": float(seed_means.max())}
        diff = d_low = d_high = p = math.nan
        d_seeds = (math.nan, math.nan)
        if reference in table and variant != reference:
            paired = (table[variant] - table[reference]).dropna()  # one difference per shared video
            if len(paired):
                diff = float(paired.mean())
                d_low, d_high = bootstrap_interval(paired.to_numpy(), confidence, n_resamples, seed)
                p = sign_flip_pvalue(paired.to_numpy(), n_resamples, seed)
            by_seed = (seeds[variant] - seeds[reference]).dropna()  # the same seed of both
            if len(by_seed) > 1:
                d_seeds = (float(by_seed.min()), float(by_seed.max()))
        elif variant == reference:
            diff = 0.0
        paper = TABLE3.get(variant)
        direction = paper.direction if paper else None
        outcome = verdict(diff, d_low, d_high, p, direction) if variant != reference else ""
        row.update({"diff": diff, "diff_low": d_low, "diff_high": d_high, "p_value": p,
                    "diff_seed_min": d_seeds[0], "diff_seed_max": d_seeds[1],
                    "paper_table": paper.table if paper else "",
                    "paper_direction": {-1: "below", 0: "reference", 1: "above"}.get(direction, ""),
                    "paper_jf": paper.jf if paper and paper.jf is not None else math.nan,  # 0-100, as printed
                    "paper_note": paper.note if paper else "",
                    "direction_agrees": (bool(np.sign(diff) == direction) if direction and not math.isnan(diff)
                                         and diff != 0 else None),
                    "interval_excludes_0": None if math.isnan(d_low) else bool(not d_low <= 0 <= d_high),
                    "verdict": outcome,
                    "reading": reading(variant, reference, diff, d_low, d_high, p, d_seeds, outcome)})
        rows.append(row)
    return pd.DataFrame(rows)
