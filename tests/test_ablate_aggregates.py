"""rliable's aggregates (qmvos_lab.ablate.aggregates): the IQM, its stratified bootstrap and the
probability of improvement, against sorting, exact enumeration of the resamples and pair counts."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from qmvos_lab.ablate import aggregates


def test_iqm_is_the_mean_of_the_middle_half():
    scores = np.array([[0.9, 0.1, 0.5, 0.3],
                       [0.2, 0.8, 0.4, 0.7]])  # 2 runs x 4 tasks
    # sorted: 0.1 0.2 | 0.3 0.4 0.5 0.7 | 0.8 0.9 -> the middle four
    assert aggregates.iqm(scores) == pytest.approx((0.3 + 0.4 + 0.5 + 0.7) / 4)
    # 6 scores: int(0.25 * 6) = 1 cut from each end (rliable uses scipy's trim_mean)
    assert aggregates.iqm([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]]) == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert math.isnan(aggregates.iqm(np.empty((0, 3))))


def test_the_stratified_bootstrap_matches_exact_enumeration():
    """2 runs x 2 tasks: each task draws its 2 runs from its own column, 4 ways each, so 16
    equally likely tables; the replicates' frequencies match them."""
    scores = np.array([[0.1, 0.6],
                       [0.3, 0.9]])
    exact = {}
    for first, second in itertools.product(itertools.product(range(2), repeat=2), repeat=2):
        table = np.stack([scores[list(first), 0], scores[list(second), 1]], axis=1)  # runs x tasks
        value = round(aggregates.iqm(table), 9)
        exact[value] = exact.get(value, 0) + 1 / 16
    n = 40_000
    replicates = np.round(aggregates.stratified_replicates(scores, n_resamples=n, seed=3), 9)
    assert set(np.unique(replicates)) <= set(exact)  # a task's scores never mix with another's
    for value, probability in exact.items():
        assert np.mean(replicates == value) == pytest.approx(probability, abs=4 * math.sqrt(probability / n))
    low, high = aggregates.iqm_interval(scores, n_resamples=n, seed=3)
    support = sorted(exact)
    assert support[0] <= low <= high <= support[-1]


def test_probability_of_improvement_counts_pairs_per_task():
    x = np.array([[1.0, 2.0],
                  [3.0, 4.0]])  # runs x tasks
    y = np.array([[2.0, 4.0],
                  [0.0, 4.0]])
    # task 0: x {1, 3} against y {2, 0}: 1>0, 3>2, 3>0 -> 3/4; task 1: x {2, 4} against y {4, 4}: two ties -> 1/4
    assert aggregates.probability_of_improvement(x, y) == pytest.approx((3 / 4 + 1 / 4) / 2)
    # rliable computes each task's share with the Mann-Whitney U statistic
    u = [stats.mannwhitneyu(x[:, m], y[:, m]).statistic / (2 * 2) for m in range(2)]
    assert aggregates.probability_of_improvement(x, y) == pytest.approx(np.mean(u))
    assert aggregates.probability_of_improvement(y, x) == pytest.approx(1 - np.mean(u))
    assert aggregates.improvement_interval(x + 10, y) == (1.0, 1.0)  # better on every run and task
    low, high = aggregates.improvement_interval(x, y, n_resamples=999)
    assert 0 <= low <= 0.5 <= high <= 1
    with pytest.raises(ValueError, match="different tasks"):
        aggregates.probability_of_improvement(x, y[:, :1])
