"""The aggregates reviewers expect beside the mean: the interquartile mean (IQM) with its stratified
bootstrap interval, and the probability of improvement, as rliable defines them (Agarwal et al.,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021; the `rliable`
package). Implemented here with numpy and scipy (rliable is not a dependency of the kit); the tests
check both against numbers computed by hand.

Scores are a runs x tasks table: here one row per seed (a trained network) and one column per video.
    - IQM: the mean of the middle 50 % of all runs x tasks scores, `scipy.stats.trim_mean(scores,
      0.25, axis=None)` as in rliable (int(0.25 n) scores cut from each end).
    - Stratified bootstrap: each replicate resamples the runs with replacement within every task
      independently (the tasks are the strata, kept as they are); a 95 % percentile interval.
    - Probability of improvement P(X > Y): for each task m, the Mann-Whitney count
      P(X_m > Y_m) = 1 / (N K) sum_i sum_j S(x_mi, y_mj), S = 1 if x > y, 1/2 if equal, 0 if not,
      over the N runs of X and K runs of Y on that task; then the mean over the tasks. Its interval
      resamples the runs of X and of Y independently within each task.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def iqm(scores) -> float:
    """Interquartile mean of all runs x tasks scores (rliable's `aggregate_iqm`)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(stats.trim_mean(scores, 0.25, axis=None)) if scores.size else math.nan


def _iqm_batch(scores: np.ndarray) -> np.ndarray:
    """IQM of each of a batch of tables: B x runs x tasks -> B."""
    return stats.trim_mean(scores.reshape(len(scores), -1), 0.25, axis=1)


def stratified_indices(rng: np.random.Generator, runs: int, tasks: int, n: int) -> np.ndarray:
    """n resamples of the run index within each task: n x runs x tasks, each column drawn with
    replacement from 0..runs-1 independently of the other tasks."""
    return rng.integers(0, runs, size=(n, runs, tasks))


def stratified_replicates(scores, statistic=_iqm_batch, n_resamples: int = 9999, seed: int = 0) -> np.ndarray:
    """The stratified bootstrap distribution of `statistic` (B x runs x tasks -> B) over `scores`
    (runs x tasks)."""
    scores = np.asarray(scores, dtype=np.float64)
    runs, tasks = scores.shape
    index = stratified_indices(np.random.default_rng(seed), runs, tasks, n_resamples)  # (B, runs, tasks)
    resampled = np.take_along_axis(np.broadcast_to(scores, index.shape), index, axis=1)  # (B, runs, tasks)
    return statistic(resampled)


def percentile_interval(replicates, confidence: float = 0.95) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def iqm_interval(scores, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """The IQM's stratified bootstrap percentile interval (NaN for an empty table)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return math.nan, math.nan
    return percentile_interval(stratified_replicates(scores, _iqm_batch, n_resamples, seed), confidence)


def _improvement_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of batches: x B x N x M, y B x K x M -> B (Mann-Whitney count per task, mean over tasks)."""
    greater = (x[:, :, None, :] > y[:, None, :, :]).mean(axis=(1, 2))  # (B, M)
    equal = (x[:, :, None, :] == y[:, None, :, :]).mean(axis=(1, 2))
    return (greater + 0.5 * equal).mean(axis=1)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) of algorithm X over Y from their runs x tasks tables on the same tasks (columns)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return math.nan
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"runs x tasks tables on different tasks: {x.shape} and {y.shape}")
    return float(_improvement_batch(x[None], y[None])[0])


def improvement_interval(x, y, confidence: float = 0.95, n_resamples: int = 2999,
                         seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap percentile interval of P(X > Y): the runs of X and of Y are resampled
    independently within each task (rliable's StratifiedIndependentBootstrap)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ix = stratified_indices(rng, x.shape[0], x.shape[1], n_resamples)  # (B, N, M)
    iy = stratified_indices(rng, y.shape[0], y.shape[1], n_resamples)  # (B, K, M)
    xs = np.take_along_axis(np.broadcast_to(x, ix.shape), ix, axis=1)
    ys = np.take_along_axis(np.broadcast_to(y, iy.shape), iy, axis=1)
    return percentile_interval(_improvement_batch(xs, ys), confidence)
