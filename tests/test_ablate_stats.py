"""The statistics review of the ablation table (issue 27): the exact sign-flip test, Holm's
adjustment, the two-stage (runs, then videos) bootstrap, and rows that must not back a verdict;
each against a hand computation or an exhaustive enumeration."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from qmvos_lab import ablate
from qmvos_lab.ablate import power, stats


def brute_sign_flip(d) -> float:
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))  # 2^n x n
    return float(np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-12))


# ---------------------------------------------------------------------------------- sign flips
def test_sign_flip_is_exact_by_enumeration():
    d = np.random.default_rng(0).normal(0.01, 0.03, 12)
    assert stats.sign_flip_pvalue(d) == pytest.approx(brute_sign_flip(d))
    assert stats.sign_flip_method(12) == "exact (2^12)"
    # scipy's exact permutation test (n_resamples=np.inf) on 16 differences agrees
    d16 = np.random.default_rng(1).normal(0.01, 0.03, 16)
    exact = scipy_stats.permutation_test((d16,), lambda x, axis=-1: x.mean(axis), vectorized=True,
                                         permutation_type="samples", n_resamples=np.inf).pvalue
    assert stats.sign_flip_pvalue(d16) == pytest.approx(exact)
    # the smallest exact p: all differences of one sign reach only their own and the mirror pattern
    assert stats.sign_flip_pvalue(np.full(20, 0.01) + np.arange(20) * 1e-3) == pytest.approx(2 / 2 ** 20)


def test_sign_flip_beyond_the_exact_limit_is_monte_carlo_near_the_exact_value(monkeypatch):
    d = np.array([0.03, -0.01, 0.02, 0.04, -0.02, 0.05, 0.01, -0.005, 0.025, 0.015])
    exact = brute_sign_flip(d)
    monkeypatch.setattr(stats, "EXACT_MAX_VIDEOS", 6)
    n = 200_000
    p = stats.sign_flip_pvalue(d, n_resamples=n)
    assert p == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / n))
    assert stats.sign_flip_method(10) == f"Monte Carlo ({stats.MONTE_CARLO_RESAMPLES})"
    # a finite n_resamples below 2^n is Monte Carlo, as in scipy: p = (count + 1) / 1000, never the
    # exact 2 / 2^12 = 0.0005 that enumeration gives
    monkeypatch.setattr(stats, "EXACT_MAX_VIDEOS", 24)
    one_sign = np.linspace(0.01, 0.02, 12)
    assert stats.sign_flip_pvalue(one_sign) == pytest.approx(2 / 2 ** 12)
    p = stats.sign_flip_pvalue(one_sign, n_resamples=999)
    assert 1 / 1000 <= p <= 6 / 1000 and p * 1000 == pytest.approx(round(p * 1000))


# ---------------------------------------------------------------------------------- Holm
def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # sorted 0.005 0.01 0.03 0.04 (m = 4): x4, x3, x2, x1 = 0.02 0.03 0.06 0.04 -> running max 0.02 0.03 0.06 0.06
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02, math.nan])
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])
    assert stats.holm([0.02]).tolist() == [0.02]


# ---------------------------------------------------------------------------------- two stages
def test_the_two_stage_bootstrap_matches_exact_enumeration():
    """2 seeds x 2 videos per variant: seeds of A (4 ways), seeds of R (4 ways, independently) and
    videos (4 ways) give 64 equally likely replicates."""
    a = np.array([[0.50, 0.70],
                  [0.56, 0.64]])
    r = np.array([[0.52, 0.75],
                  [0.49, 0.71]])
    exact = []
    for sa, sr, sv in itertools.product(itertools.product(range(2), repeat=2), repeat=3):
        per_video = a[list(sa)].mean(0) - r[list(sr)].mean(0)  # seeds resampled, then videos
        exact.append(per_video[list(sv)].mean())
    exact = np.array(exact)
    replicates = stats.two_stage_replicates(a, r, n_resamples=60_000, seed=0)
    assert replicates.mean() == pytest.approx(exact.mean(), abs=1e-3)
    assert replicates.var() == pytest.approx(exact.var(), rel=0.03)
    assert exact.mean() == pytest.approx((a.mean(0) - r.mean(0)).mean())
    # with the training noise inside, the interval is wider than the videos-only one on these tables
    low, high = stats.two_stage_interval(a, r)
    np.testing.assert_allclose((low, high), np.percentile(stats.two_stage_replicates(a, r), [2.5, 97.5]))
    one_seed_each = stats.two_stage_replicates(a[:1], r[:1], n_resamples=2000)
    assert set(np.round(one_seed_each, 9)) <= {round(x, 9) for x in ((a[0] - r[0]).mean(), (a[0] - r[0])[0],
                                                                    (a[0] - r[0])[1])}


# ---------------------------------------------------------------------------------- the table
def table(values: dict) -> pd.DataFrame:
    """variant -> seeds x videos array -> tidy runs (videos v0, v1, ...)."""
    rows = []
    for variant, x in values.items():
        for s, row in enumerate(np.atleast_2d(x)):
            for v, jf in enumerate(row):
                rows.append({"variant": variant, "seed": s, "video": f"v{v}", "J&F": jf})
    return pd.DataFrame(rows)


FULL = np.array([[0.50, 0.60, 0.40, 0.70, 0.55, 0.45],
                 [0.52, 0.58, 0.44, 0.66, 0.57, 0.47]])
SHIFT = np.array([[-0.05, -0.02, 0.01, -0.08, -0.03, -0.04],
                  [-0.03, -0.06, -0.03, -0.04, 0.01, -0.02]])  # every video's seed mean below


def test_holm_over_the_comparisons_decides_the_verdict():
    alone = ablate.compare(table({"qmvos": FULL, "no-interaction": FULL + SHIFT})).set_index("variant")
    assert alone.loc["no-interaction", "p_value"] == pytest.approx(2 / 64)  # exact: 6 videos
    assert alone.loc["no-interaction", "p_holm"] == pytest.approx(2 / 64)
    assert alone.loc["no-interaction", "verdict"] == "reproduces"
    # the same effect in two comparisons with one reference: Holm doubles the smaller p (2 x 2/64 > 0.05)
    both = ablate.compare(table({"qmvos": FULL, "no-interaction": FULL + SHIFT, "qcim-f16": FULL + SHIFT}))
    both = both.set_index("variant")
    for name in ("no-interaction", "qcim-f16"):
        assert both.loc[name, "p_value"] == pytest.approx(2 / 64)
        assert both.loc[name, "p_holm"] == pytest.approx(4 / 64)
        assert both.loc[name, "verdict"].startswith("inconclusive at this power")
    assert math.isnan(both.loc["qmvos", "p_holm"])  # the reference is not a comparison


def test_the_summary_reports_power_aggregates_and_the_two_stage_interval():
    variant = FULL + SHIFT
    row = ablate.compare(table({"qmvos": FULL, "no-interaction": variant})).set_index("variant").loc["no-interaction"]
    design = power.design(variant, FULL)
    assert row["mdd"] == pytest.approx(design.detectable())
    assert row["seeds_needed"] == design.seeds_needed(abs(row["diff"]))
    assert row["videos_needed"] == design.videos_needed(abs(row["diff"]))
    assert (row["diff_runs_low"], row["diff_runs_high"]) == pytest.approx(stats.two_stage_interval(variant, FULL))
    assert row["diff_runs_high"] < 0 and row["p_method"] == "exact (2^6)" and row["caveat"] == ""
    # P(variant > qmvos): pairs of seeds per video, by hand
    pairs = [(variant[i, v] > FULL[j, v]) + 0.5 * (variant[i, v] == FULL[j, v])
             for v in range(6) for i in range(2) for j in range(2)]
    assert row["p_improve"] == pytest.approx(np.mean(pairs))
    assert row["IQM"] == pytest.approx(np.sort(variant.ravel())[3:9].mean())  # 12 scores: cut 3 each end


@pytest.mark.parametrize("values, caveat", [
    ({"qmvos": FULL[:, :3], "no-interaction": FULL[:, :3] - 0.02 + SHIFT[:, :3]}, "3 paired videos (< 5)"),
    ({"qmvos": FULL, "no-interaction": FULL - 0.02}, "all paired differences equal (zero-width interval)"),
    ({"qmvos": FULL[:1], "no-interaction": FULL[:1] + SHIFT[:1]}, "1 seed (< 2): training noise unknown"),
])
def test_rows_that_cannot_back_a_verdict_say_why(values, caveat):
    row = ablate.compare(table(values)).set_index("variant").loc["no-interaction"]
    assert caveat in row["caveat"]
    assert row["verdict"] == f"not decidable: {row['caveat']}"
    assert row["reading"].startswith("not decidable")


def test_a_variant_without_paired_videos_is_not_an_effect():
    runs = table({"qmvos": FULL, "no-interaction": FULL - 0.1})
    runs.loc[runs.variant == "no-interaction", "video"] += "-other"  # scored on other videos
    row = ablate.compare(runs).set_index("variant").loc["no-interaction"]
    assert math.isnan(row["diff"]) and row["caveat"] == "no paired videos"
    assert row["verdict"] == "not decidable: no paired videos"
    without_reference = ablate.compare(table({"no-interaction": FULL})).iloc[0]
    assert without_reference["verdict"].startswith("not decidable")


def test_the_paper_scale_columns_use_our_own_margin(monkeypatch):
    from types import SimpleNamespace

    from qmvos_lab.ablate import summary

    paper = {name: SimpleNamespace(table=row.table, direction=row.direction, jf=jf, note="")
             for (name, row), jf in zip(ablate.TABLE3.items(), (84.9, 83.4, None, None, 84.6, 84.5, 84.3, 84.5))}
    monkeypatch.setattr(summary, "TABLE3", paper)
    runs = table({"qmvos": FULL, "xmem": FULL - 0.05, "no-interaction": FULL + SHIFT})
    rows = ablate.compare(runs).set_index("variant")
    share = (84.5 - 84.9) / (84.9 - 83.4)
    assert rows.loc["no-interaction", "paper_diff"] == pytest.approx(-0.4)
    assert rows.loc["no-interaction", "paper_share"] == pytest.approx(share)
    assert rows.loc["no-interaction", "paper_scaled"] == pytest.approx(share * 0.05)  # our margin: 0.05
    assert rows.loc["no-interaction", "paper_detectable"] == (abs(share * 0.05) >= rows.loc["no-interaction", "mdd"])
    worse = ablate.compare(table({"qmvos": FULL, "xmem": FULL + 0.05, "no-interaction": FULL})).set_index("variant")
    assert math.isnan(worse.loc["no-interaction", "paper_scaled"])  # no margin here: nothing to scale by
