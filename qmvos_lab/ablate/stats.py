"""Statistics of an ablation table that stay honest with few seeds.

The unit of pairing is the video: every variant segments the same held-out videos, so the effect
of a variant is the mean over videos of d_v = J&F(variant, v) - J&F(full model, v), each J&F first
averaged over the seeds. Two kinds of inference, and what each speaks about:
    - about THESE trained networks (videos resampled, seeds averaged): a 95 % BCa bootstrap
      interval of the mean d_v (scipy.stats.bootstrap) and a two-sided sign-flip p-value (under
      "no effect" each d_v is as likely as -d_v), exact over all 2^n sign patterns up to
      EXACT_MAX_VIDEOS videos (the smallest possible p is then 2 / 2^n), Monte Carlo with
      MONTE_CARLO_RESAMPLES patterns beyond;
    - about the DESIGN (training noise inside): a two-stage bootstrap that resamples the runs
      (seeds, within each variant, independently) and then the videos, and the power analysis of
      `power.py` on the same crossed seeds x videos variance.
A verdict needs both: the two-stage interval excludes 0 and the sign-flip p, Holm-adjusted over the
comparisons that share the reference, is below 0.05; and no caveat (`caveats`: too few videos or
seeds, all-equal differences, no paired videos). Otherwise the result is "inconclusive at this
power" (with the difference the design could have detected), not "no effect".
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError

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


EXACT_MAX_VIDEOS = 24  # up to 2^24 sign patterns are enumerated (exact p); beyond, Monte Carlo
MONTE_CARLO_RESAMPLES = 999_999  # Monte Carlo standard error of p near 0.05: sqrt(0.05 * 0.95 / 1e6) = 0.0002


def _sign_sums(values: np.ndarray) -> np.ndarray:
    """sum_i s_i * values_i for all 2^n sign patterns s (n small)."""
    sums = np.zeros(1)
    for v in values:
        sums = np.concatenate([sums + v, sums - v])  # (2^k,) after k values
    return sums


def sign_flip_pvalue(differences, n_resamples: float = np.inf, seed: int = 0) -> float:
    """Two-sided paired permutation p-value of mean(differences) = 0 (sign flips): the share of
    sign patterns whose |mean| reaches the observed |mean|. As scipy's `permutation_test`:
    exact when 2^n <= n_resamples (all 2^n patterns, enumerated as two halves whose sums are added;
    the smallest p is then 2 / 2^n), else Monte Carlo with n_resamples random patterns and
    p = (count + 1) / (n_resamples + 1). The default, np.inf, is exact up to EXACT_MAX_VIDEOS
    differences and Monte Carlo with MONTE_CARLO_RESAMPLES patterns beyond. NaN for fewer than two."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2 or np.isnan(d).any():
        return math.nan
    observed = abs(d.sum())
    reach = observed * (1 - 1e-9) - 1e-15  # float slack: mirror patterns count as reaching it
    if 2.0 ** d.size <= n_resamples and d.size <= EXACT_MAX_VIDEOS:
        half = d.size // 2
        left, right = _sign_sums(d[:half]), _sign_sums(d[half:])  # (2^h,), (2^(n-h),)
        count = 0
        for start in range(0, left.size, 256):  # (256, 2^(n-h)) blocks of the 2^n sums
            count += int((np.abs(left[start:start + 256, None] + right[None, :]) >= reach).sum())
        return count / 2.0 ** d.size
    n_resamples = MONTE_CARLO_RESAMPLES if math.isinf(n_resamples) else int(n_resamples)
    rng = np.random.default_rng(seed)
    count, done = 0, 0
    while done < n_resamples:
        batch = min(20_000, n_resamples - done)
        signs = rng.integers(0, 2, size=(batch, d.size)) * 2 - 1  # (batch, n)
        count += int((np.abs(signs @ d) >= reach).sum())
        done += batch
    return (count + 1) / (n_resamples + 1)


def sign_flip_method(n: int) -> str:
    """How `sign_flip_pvalue` computes p for n differences."""
    if n < 2:
        return ""
    return f"exact (2^{n})" if n <= EXACT_MAX_VIDEOS else f"Monte Carlo ({MONTE_CARLO_RESAMPLES})"


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family: the non-NaN entries; NaN stays NaN): the k-th
    smallest of m p-values becomes max over j <= k of (m - j + 1) p_(j), capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def two_stage_replicates(variant: np.ndarray, reference: np.ndarray, n_resamples: int = 9999,
                         seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of the paired difference with training noise inside: each replicate
    resamples the seeds (runs) of the variant and, independently, of the reference, with replacement,
    then the videos (the same for both, paired), and takes the mean over the resampled videos of
    (mean over the variant's resampled seeds - the reference's). Tables: seeds x videos."""
    variant, reference = np.asarray(variant, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    videos = variant.shape[1]
    ia = rng.integers(0, variant.shape[0], size=(n_resamples, variant.shape[0]))  # (B, S_A)
    ir = rng.integers(0, reference.shape[0], size=(n_resamples, reference.shape[0]))  # (B, S_R)
    iv = rng.integers(0, videos, size=(n_resamples, videos))  # (B, V)
    profile = variant[ia].mean(axis=1) - reference[ir].mean(axis=1)  # (B, V): per-video difference
    return np.take_along_axis(profile, iv, axis=1).mean(axis=1)  # (B,)


def two_stage_interval(variant, reference, confidence: float = 0.95, n_resamples: int = 9999,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `two_stage_replicates` (NaN when either table is empty). With S seeds
    the resampled seed means vary by (S - 1) / S of their variance: with 3 seeds the interval is
    somewhat narrow, and with one seed it holds no training noise at all (the caveats say so)."""
    variant, reference = np.asarray(variant, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if variant.size == 0 or reference.size == 0:
        return math.nan, math.nan
    replicates = two_stage_replicates(variant, reference, n_resamples, seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


MIN_VIDEOS = 5  # fewer paired videos: the interval and p are shown but back no verdict
MIN_SEEDS = 2  # fewer: the training noise is unknown


def caveats(differences, seeds_variant: int, seeds_reference: int) -> str:
    """Why a comparison cannot back a verdict ("" when it can): no paired videos (a NaN row),
    fewer than MIN_VIDEOS of them, all differences equal (a zero-width interval), or fewer than
    MIN_SEEDS seeds on either side (no training noise in the interval)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return "no paired videos"
    notes = []
    if d.size < MIN_VIDEOS:
        notes.append(f"{d.size} paired videos (< {MIN_VIDEOS})")
    if d.size > 1 and np.ptp(d) == 0:
        notes.append("all paired differences equal (zero-width interval)")
    if min(seeds_variant, seeds_reference) < MIN_SEEDS:
        notes.append(f"{min(seeds_variant, seeds_reference)} seed (< {MIN_SEEDS}): training noise unknown")
    return "; ".join(notes)


def per_video(runs: pd.DataFrame, metric: str = "J&F") -> pd.DataFrame:
    """variant x video table of `metric`, averaged over the seeds (rows: videos, columns: variants)."""
    missing = {"variant", "seed", "video", metric} - set(runs.columns)
    if missing:
        raise UserError(f"ablation table lacks column(s) {sorted(missing)}; it has {list(runs.columns)}")
    return runs.pivot_table(index="video", columns="variant", values=metric, aggfunc="mean")


def per_seed(runs: pd.DataFrame, metric: str = "J&F") -> pd.DataFrame:
    """seed x variant table of each seed's mean `metric` over the videos."""
    return runs.pivot_table(index="seed", columns="variant", values=metric, aggfunc="mean")


def verdict(diff: float, low: float, high: float, p: float, direction: int | None, alpha: float = 0.05,
            caveat: str = "", detectable: float = math.nan) -> str:
    """'reproduces' / 'contradicts' (the interval excludes 0 and p < alpha, with / against the
    paper's sign; 'differs' for a variant the paper does not have); 'inconclusive at this power'
    otherwise, with the smallest difference the design would have found (80 % power) when known;
    'not decidable: <caveat>' when the comparison cannot back a verdict (see `caveats`). Pass the
    interval that holds the training noise (two-stage) and the multiplicity-adjusted p (Holm)."""
    if caveat:
        return f"not decidable: {caveat}"
    if any(math.isnan(x) for x in (diff, low, high, p)):
        return "not decidable: no interval or p-value"
    if low <= 0 <= high or p >= alpha:
        tail = f"; could have detected >= {detectable:.3g}" if not math.isnan(detectable) else ""
        return f"inconclusive at this power{tail}"
    if not direction:
        return "differs"
    return "reproduces" if np.sign(diff) == direction else "contradicts"


def reading(variant: str, reference: str, diff: float, low: float, high: float, p: float, seeds: tuple,
            outcome: str) -> str:
    """One plain sentence per variant (`low`, `high`: the two-stage interval; `p`: Holm-adjusted)."""
    if variant == reference:
        return "the full model (reference)"
    if math.isnan(diff):
        return f"no paired videos with {reference}"
    effect = f"{diff:+.3f} J&F [{low:+.3f}, {high:+.3f}], Holm p = {p:.3g}"
    spread = f"seeds {seeds[0]:+.3f}..{seeds[1]:+.3f}" if not math.isnan(seeds[0]) else "one seed"
    if outcome.startswith(("inconclusive", "not decidable")):
        if outcome.startswith("not decidable"):
            why = outcome.removeprefix("not decidable: ")
        elif low <= 0 <= high:
            why = "the interval (runs and videos resampled) contains 0"
        else:
            why = "Holm-adjusted p >= 0.05"
        return f"{outcome}: {effect}; {why} ({spread})"
    side = "above" if diff > 0 else "below"
    tail = {"reproduces": "as the paper", "contradicts": "against the paper"}.get(outcome, "")
    return f"{side} {reference}: {effect} ({spread}){'; ' + tail if tail else ''}"
