"""Statistical power of an ablation comparison: what the design that was run (seeds x videos) could
have detected, and how many seeds or videos a difference would need.

The design. Each variant is a seed x video table X[s, v] of J&F (every seed of a variant is one
trained network, scored on the same held-out videos). The effect of a variant A against the
reference R is D = mean over videos of (mean over A's seeds - mean over R's seeds). Runs of A and R
are independent trainings; videos are shared (paired). With the crossed random-effects model
    X[s, v] = mu + r_s + c_v + e_sv   (for each of A and R; r: the run, c: the video, e: the rest)
the variance of D is (method of moments, as in a two-way ANOVA without replication)
    Var(D) = s2_run_A / S_A + s2_run_R / S_R + s2_video / V + s2_e_A / (S_A V) + s2_e_R / (S_R V)
where s2_video is the variance over videos of the per-video difference c_v(A) - c_v(R). So the
training noise (s2_run) shrinks only with more seeds, and the video noise only with more videos.

Power uses the two-sided t-test of D = 0 on that variance, with Satterthwaite's degrees of freedom:
power = P(|T| > t_{1 - alpha/2, df}) for T ~ noncentral t(df, delta / SE(D)), computed exactly with
`scipy.stats.nct` (the formula statsmodels' TTestPower uses for the one-sample / paired t-test;
with one variance term it is that test). No simulation: the tests check it against a simulation.

The paper's differences are put on our scale by `paper_effects`: each row's J&F difference as a share
of the full model's margin over its baseline (QMVOS - XMem, Table 3a), which times our own margin
gives the difference we would expect here if the effects scaled with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import optimize, stats

POWER = 0.8
ALPHA = 0.05
MAX_SEEDS = 1000  # searched for `seeds_needed`; more is reported as inf
MAX_VIDEOS = 100_000


def t_power(effect, se, df, alpha: float = ALPHA):
    """Power of the two-sided t-test at level `alpha` for a true difference `effect` whose
    estimate has standard error `se`, on `df` degrees of freedom (noncentral t, exact)."""
    effect, se, df = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (effect, se, df)))
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = np.abs(effect) / se
    upper = stats.nct.sf(critical, df, noncentrality)
    lower = stats.nct.cdf(-critical, df, noncentrality)  # the wrong tail: at most Phi(-noncentrality)
    lower = np.where(np.isnan(lower) & ~np.isnan(upper), 0.0, lower)  # scipy's NaN far in that tail
    power = upper + lower
    return power if power.ndim else float(power)


def detectable(se: float, df: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The minimum detectable difference: the smallest true |difference| that the two-sided t-test
    finds with probability `power` (NaN when the standard error is unknown)."""
    if not (se > 0 and df > 0) or math.isnan(se) or math.isnan(df):
        return math.nan
    upper = se * (stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * 4 + se  # power(upper) > power
    return float(optimize.brentq(lambda d: t_power(d, se, df, alpha) - power, 0.0, upper, xtol=se * 1e-9))


def _satterthwaite(terms):
    """Welch-Satterthwaite degrees of freedom of sum(coefficient * mean_square), from
    (coefficient, expected mean square, its df) triples (arrays broadcast); at least 1."""
    total = sum(a * m for a, m, _ in terms)
    spread = sum((a * m) ** 2 / df for a, m, df in terms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, np.maximum(1.0, total ** 2 / spread), np.nan)


@dataclass(frozen=True)
class Design:
    """Variance components of a paired comparison (see the module docstring), estimated from the
    seed x video tables that were run, and what they imply for other numbers of seeds and videos.
    `seeds` / `videos` arguments default to the design that was run and may be arrays."""

    run_a: float  # s2_run of the variant: the training noise of one run's mean over infinitely many videos
    run_r: float  # s2_run of the reference
    video: float  # s2_video: the variance over videos of the (true) per-video difference
    residual_a: float  # s2_e of the variant (seed x video interaction)
    residual_r: float
    seeds_a: int
    seeds_r: int
    videos: int

    def _shape(self, seeds, videos):
        s_a = np.asarray(self.seeds_a if seeds is None else seeds, dtype=np.float64)
        s_r = np.asarray(self.seeds_r if seeds is None else seeds, dtype=np.float64)
        v = np.asarray(self.videos if videos is None else videos, dtype=np.float64)
        return s_a, s_r, v

    def variance(self, seeds=None, videos=None):
        """Var(D) with `seeds` per variant and `videos`."""
        s_a, s_r, v = self._shape(seeds, videos)
        variance = (self.run_a / s_a + self.run_r / s_r + self.video / v + self.residual_a / (s_a * v)
                    + self.residual_r / (s_r * v))
        return variance if variance.ndim else float(variance)

    def df(self, seeds=None, videos=None):
        """Satterthwaite degrees of freedom of Var(D) from the mean squares such a design would
        give: the seed means of each variant (S - 1 df each) and the per-video differences (V - 1).
        NaN with fewer than 2 seeds or videos (the training noise is then unknown)."""
        s_a, s_r, v = self._shape(seeds, videos)
        seeds_a = self.run_a + self.residual_a / v  # E[variance of A's seed means]
        seeds_r = self.run_r + self.residual_r / v
        videos_d = self.video + self.residual_a / s_a + self.residual_r / s_r  # E[variance of the d_v]
        with np.errstate(divide="ignore", invalid="ignore"):
            df = _satterthwaite([(1 / s_a, seeds_a, s_a - 1), (1 / s_r, seeds_r, s_r - 1), (1 / v, videos_d, v - 1)])
        df = np.where((np.minimum(s_a, s_r) < 2) | (v < 2), np.nan, df)
        return df if df.ndim else float(df)

    def se(self, seeds=None, videos=None):
        se = np.sqrt(self.variance(seeds, videos))
        return se if np.ndim(se) else float(se)

    def detectable(self, power: float = POWER, alpha: float = ALPHA, seeds: int | None = None,
                   videos: int | None = None) -> float:
        """The minimum detectable difference of this design (or of `seeds` x `videos`)."""
        return detectable(float(self.se(seeds, videos)), float(self.df(seeds, videos)), power, alpha)

    def seeds_needed(self, effect: float, power: float = POWER, alpha: float = ALPHA) -> float:
        """The fewest seeds per variant (2 or more; same videos) that detect `effect` with `power`;
        inf when no number up to MAX_SEEDS does (the video noise alone is too large), NaN when the
        design cannot tell (one seed)."""
        return self._needed(effect, power, alpha, "seeds", MAX_SEEDS)

    def videos_needed(self, effect: float, power: float = POWER, alpha: float = ALPHA) -> float:
        """The fewest videos (2 or more; same seeds) that detect `effect` with `power`; inf when
        the training noise alone is too large for any number up to MAX_VIDEOS."""
        return self._needed(effect, power, alpha, "videos", MAX_VIDEOS)

    def _needed(self, effect, power, alpha, what, largest) -> float:
        if math.isnan(effect) or math.isnan(self.df()):
            return math.nan
        if effect == 0:
            return math.inf
        def first(n):  # the first of the counts n that reaches the power, or None
            reached = t_power(effect, self.se(**{what: n}), self.df(**{what: n}), alpha) >= power
            return int(np.argmax(reached)) if reached.any() else None

        # every count up to 200, then a geometric grid; then every count between the grid's last miss and first hit
        grid = np.unique(np.concatenate([np.arange(2, 201), np.geomspace(200, largest, 300).astype(int)]))
        k = first(grid)
        if k is None:
            return math.inf
        if k == 0 or grid[k] - grid[k - 1] == 1:
            return float(grid[k])
        between = np.arange(grid[k - 1] + 1, grid[k] + 1)
        return float(between[first(between)])


def _mean_squares(table: np.ndarray) -> tuple[float, float]:
    """Two-way ANOVA without replication of a seeds x videos table: (variance of the seed means,
    residual mean square); NaN where a table has one seed."""
    s, v = table.shape
    if s < 2:
        return math.nan, math.nan
    rows, columns, grand = table.mean(1, keepdims=True), table.mean(0, keepdims=True), table.mean()
    residual = ((table - rows - columns + grand) ** 2).sum() / ((s - 1) * (v - 1))
    return float(np.var(rows, ddof=1)), float(residual)


def design(variant: np.ndarray, reference: np.ndarray) -> Design:
    """Method-of-moments variance components from two seeds x videos tables on the same videos
    (columns in the same order). E[variance of seed means] = s2_run + s2_e / V, E[residual mean
    square] = s2_e, E[variance of the per-video differences of seed means] = s2_video + s2_e_A / S_A
    + s2_e_R / S_R; negative estimates are set to 0."""
    variant, reference = np.asarray(variant, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if variant.ndim != 2 or reference.ndim != 2 or variant.shape[1] != reference.shape[1]:
        raise ValueError(f"need seeds x videos tables on the same videos, got {variant.shape} and {reference.shape}")
    v = variant.shape[1]
    seeds_a, residual_a = _mean_squares(variant)
    seeds_r, residual_r = _mean_squares(reference)
    differences = variant.mean(0) - reference.mean(0)  # (V,) one per video, seeds averaged
    spread = float(np.var(differences, ddof=1)) if v > 1 else math.nan
    s_a, s_r = variant.shape[0], reference.shape[0]
    return Design(run_a=max(0.0, seeds_a - residual_a / v), run_r=max(0.0, seeds_r - residual_r / v),
                  video=max(0.0, spread - residual_a / s_a - residual_r / s_r),
                  residual_a=residual_a, residual_r=residual_r, seeds_a=s_a, seeds_r=s_r, videos=v)


# ---------------------------------------------------------------------------------- the paper's scale
def paper_effects(table3: Mapping, full: str = "qmvos", baseline: str = "xmem") -> dict[str, tuple[float, float]]:
    """variant -> (its J&F difference to the full model in the paper, in J&F points; that difference
    as a share of the full model's margin over `baseline`), from rows with a `.jf` (QMVOS Table 3,
    DAVIS-2017 val). NaN where the paper prints no number (e.g. "unable to converge")."""
    def jf(name):
        value = getattr(table3.get(name), "jf", None)
        return math.nan if value is None else float(value)

    top, base = jf(full), jf(baseline)
    margin = top - base
    out = {}
    for name in table3:
        diff = jf(name) - top
        out[name] = (diff, diff / margin if margin and not math.isnan(margin) else math.nan)
    return out
