"""Power of an ablation comparison (qmvos_lab.ablate.power) against textbook sample sizes, a
simulation of the t-test, a two-way ANOVA by hand and a simulation of the crossed seeds x videos
design; the paper's differences as shares of its margin, computed by hand."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from qmvos_lab.ablate import power


def test_power_matches_textbook_sample_sizes():
    # one-sample / paired t-test, d = 0.5, alpha 0.05 two-sided: n = 34 gives 80.78 % (Cohen 1988; G*Power)
    assert power.t_power(0.5, 1 / math.sqrt(34), 33) == pytest.approx(0.8078, abs=5e-4)
    assert power.t_power(0.5, 1 / math.sqrt(33), 32) < 0.8
    only_videos = power.Design(run_a=0, run_r=0, video=1.0, residual_a=0, residual_r=0, seeds_a=3, seeds_r=3,
                               videos=20)
    assert only_videos.df() == pytest.approx(19)  # no training noise: the paired t-test over videos
    assert only_videos.videos_needed(0.5) == 34
    # two independent samples, d = 0.5: 64 per group (80.15 %). Only training noise, one run per
    # seed: Var(D) = 2 s2 / S and Satterthwaite's df = 2 (S - 1), the two-sample t-test
    only_runs = power.Design(run_a=1.0, run_r=1.0, video=0, residual_a=0, residual_r=0, seeds_a=3, seeds_r=3,
                             videos=20)
    assert only_runs.df(seeds=64) == pytest.approx(126)
    assert only_runs.seeds_needed(0.5) == 64
    assert only_runs.videos_needed(0.5) == math.inf  # more videos never remove training noise


def test_power_matches_a_simulated_t_test():
    rng = np.random.default_rng(0)
    n, effect, draws = 10, 0.7, 40_000
    samples = rng.normal(effect, 1.0, size=(draws, n))
    rejected = np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05)
    expected = power.t_power(effect, 1 / math.sqrt(n), n - 1)
    assert rejected == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / draws))


def test_minimum_detectable_difference_has_the_asked_power():
    se, df = 0.01, 12.0
    mdd = power.detectable(se, df)
    assert power.t_power(mdd, se, df) == pytest.approx(0.8, abs=1e-6)
    # large df: the normal approximation (z_0.975 + z_0.8) * se
    assert power.detectable(se, 1e6) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-4)
    assert math.isnan(power.detectable(math.nan, 5))
    assert math.isnan(power.detectable(0.01, math.nan))


def test_variance_components_match_a_two_way_anova_by_hand():
    a = np.array([[0.50, 0.62, 0.41],
                  [0.56, 0.60, 0.47]])  # variant: 2 seeds x 3 videos
    r = np.array([[0.52, 0.66, 0.45],
                  [0.51, 0.70, 0.44],
                  [0.55, 0.64, 0.49]])  # reference: 3 seeds x 3 videos

    def by_hand(x):
        s, v = len(x), len(x[0])
        grand = sum(map(sum, x)) / (s * v)
        rows = [sum(row) / v for row in x]
        cols = [sum(x[i][j] for i in range(s)) / s for j in range(v)]
        ms_seed = v * sum((m - grand) ** 2 for m in rows) / (s - 1)
        ms_res = sum((x[i][j] - rows[i] - cols[j] + grand) ** 2 for i in range(s) for j in range(v)) / ((s - 1) * (v - 1))
        return (ms_seed - ms_res) / v, ms_res, cols

    run_a, res_a, cols_a = by_hand(a.tolist())
    run_r, res_r, cols_r = by_hand(r.tolist())
    d = [ca - cr for ca, cr in zip(cols_a, cols_r)]
    mean_d = sum(d) / 3
    video = sum((x - mean_d) ** 2 for x in d) / 2 - res_a / 2 - res_r / 3
    design = power.design(a, r)
    assert (design.run_a, design.residual_a) == pytest.approx((max(0, run_a), res_a))
    assert (design.run_r, design.residual_r) == pytest.approx((max(0, run_r), res_r))
    assert design.video == pytest.approx(max(0, video))
    assert (design.seeds_a, design.seeds_r, design.videos) == (2, 3, 3)
    assert design.variance() == pytest.approx(design.run_a / 2 + design.run_r / 3 + design.video / 3
                                              + design.residual_a / 6 + design.residual_r / 9)
    one_seed = power.design(a[:1], r[:1])  # training noise unknown: no power
    assert math.isnan(one_seed.df()) and math.isnan(one_seed.detectable()) and math.isnan(one_seed.seeds_needed(0.1))


def test_the_variance_of_the_crossed_design_matches_a_simulation():
    """Simulate seeds x videos tables of two variants from the crossed model (run, video, residual
    effects); the formula's Var(D) matches the spread of D over the simulations, and the estimated
    components average to it."""
    rng = np.random.default_rng(1)
    sims, seeds, videos = 4000, 4, 20
    s2_run, s2_video_shared, s2_video_diff, s2_e = 0.02 ** 2, 0.1 ** 2, 0.01 ** 2, 0.015 ** 2
    shared = rng.normal(0, math.sqrt(s2_video_shared), (sims, 1, videos))  # how hard each video is, for both
    diff = rng.normal(0, math.sqrt(s2_video_diff), (sims, 1, videos))  # how the effect varies by video
    a = 0.5 + shared + diff + rng.normal(0, math.sqrt(s2_run), (sims, seeds, 1)) + rng.normal(
        0, math.sqrt(s2_e), (sims, seeds, videos))
    r = 0.5 + shared + rng.normal(0, math.sqrt(s2_run), (sims, seeds, 1)) + rng.normal(
        0, math.sqrt(s2_e), (sims, seeds, videos))
    d = a.mean(axis=(1, 2)) - r.mean(axis=(1, 2))
    truth = 2 * s2_run / seeds + s2_video_diff / videos + 2 * s2_e / (seeds * videos)
    assert np.var(d, ddof=1) == pytest.approx(truth, rel=0.08)
    estimated = np.array([power.design(a[k], r[k]).variance() for k in range(sims)])
    assert estimated.mean() == pytest.approx(truth, rel=0.05)


def test_seeds_and_videos_needed_reach_the_power_and_one_fewer_does_not():
    design = power.Design(run_a=0.02 ** 2, run_r=0.02 ** 2, video=0.01 ** 2, residual_a=0.015 ** 2,
                          residual_r=0.015 ** 2, seeds_a=3, seeds_r=3, videos=20)
    effect = 0.03
    s = int(design.seeds_needed(effect))
    assert power.t_power(effect, design.se(seeds=s), design.df(seeds=s)) >= 0.8
    assert power.t_power(effect, design.se(seeds=s - 1), design.df(seeds=s - 1)) < 0.8
    # past the searched grid's step of one: the same count as trying every number of videos
    quiet = power.Design(run_a=1e-7, run_r=1e-7, video=0.02 ** 2, residual_a=0.01 ** 2, residual_r=0.01 ** 2,
                         seeds_a=3, seeds_r=3, videos=20)
    every = np.arange(2, 20_001)
    reached = power.t_power(0.0015, quiet.se(videos=every), quiet.df(videos=every)) >= 0.8
    assert quiet.videos_needed(0.0015) == every[np.argmax(reached)] > 1000
    # the training noise alone (3 seeds): Var(D) >= 2 * 0.02^2 / 3, so 0.02 needs more seeds, not videos
    assert design.videos_needed(0.02) == math.inf
    assert design.seeds_needed(0.0) == math.inf
    assert design.detectable() > design.detectable(seeds=30)


def test_paper_differences_as_shares_of_its_margin():
    row = lambda jf: SimpleNamespace(jf=jf)  # noqa: E731 - rows as paper.TABLE3 holds them
    # QMVOS Table 3 (DAVIS-2017 val): full 84.9, XMem 83.4 (3a), F16+F8+F4 84.6 (3b),
    # w/o interaction 84.5 (3c), cross with F16 84.3 (3d), first-frame queries 84.5 (3e)
    table = {"qmvos": row(84.9), "xmem": row(83.4), "sim-f16": row(None), "sim-f16-f8-f4": row(84.6),
             "no-interaction": row(84.5), "qcim-f16": row(84.3), "first-frame-queries": row(84.5)}
    effects = power.paper_effects(table)
    margin = 84.9 - 83.4
    assert effects["xmem"] == pytest.approx((-1.5, -1.0))
    assert effects["qmvos"] == pytest.approx((0.0, 0.0))
    for name, jf in (("sim-f16-f8-f4", 84.6), ("no-interaction", 84.5), ("qcim-f16", 84.3)):
        assert effects[name] == pytest.approx((jf - 84.9, (jf - 84.9) / margin))
    assert effects["qcim-f16"][1] == pytest.approx(-0.4) and effects["sim-f16-f8-f4"][1] == pytest.approx(-0.2)
    assert all(math.isnan(x) for x in effects["sim-f16"])  # "unable to converge": no number
    assert all(math.isnan(x[1]) for x in power.paper_effects({"qmvos": row(84.9)}).values())  # no baseline


def test_the_transcribed_table3_gives_the_papers_shares():
    from qmvos_lab.ablate.paper import TABLE3

    if getattr(TABLE3["qmvos"], "jf", None) is None:
        pytest.skip("Table 3's J&F is not transcribed in ablate/paper.py on this branch")
    effects = power.paper_effects(TABLE3)  # DAVIS-2017 val: full 84.9, XMem 83.4, w/o interaction 84.5, F16 84.3
    assert effects["xmem"] == pytest.approx((-1.5, -1.0))
    assert effects["no-interaction"] == pytest.approx((-0.4, -0.4 / 1.5))
    assert effects["qcim-f16"] == pytest.approx((-0.6, -0.4))
