"""The mechanism metrics against hand computations on tiny tensors, the uniform baseline's exact
values, agreement with the explorer's per-query numbers, and the summary over videos."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from qmvos_lab.ablate.stats import bootstrap_interval
from qmvos_lab.inference import FrameTrace
from qmvos_lab.mechanism import metrics as mm
from qmvos_lab.mechanism.study import summarise
from qmvos_lab.viz import explorer_metrics as em
from qmvos_lab.viz.explorer import Recording


def test_cross_attention_metrics_by_hand():
    # two queries, two objects' readouts on a 1 x 2 grid
    a0 = [[[0.2, 0.4]], [[0.3, 0.1]]]  # query 0: 0.6 on its own readout
    a1 = [[[0.1, 0.1]], [[0.5, 0.3]]]  # query 1: 0.8 on its own readout
    coverages = [np.array([[1.0, 0.5]]), np.array([[0.0, 1.0]])]
    centres = np.array([[[8.0, 8.0], [8.0, 24.0]]])
    q0, q1 = mm.cross_frame_metrics(np.array([a0, a1]), True, coverages, centres, [(8.0, 10.0), (8.0, 24.0)])
    assert q0["own-object mass"] == pytest.approx(0.6) and q1["own-object mass"] == pytest.approx(0.8)
    assert q0["own-object mass / share"] == pytest.approx(1.2) and q1["own-object mass / share"] == pytest.approx(1.6)
    # query 0 gives 0.6 to readout 0, query 1 gives it 0.2; query 1 gives 0.8 to readout 1, query 0 0.4
    assert q0["preference"] == pytest.approx(0.6 - 0.2) and q1["preference"] == pytest.approx(0.8 - 0.4)
    dot = 0.2 * 0.1 + 0.4 * 0.1 + 0.3 * 0.5 + 0.1 * 0.3
    cosine = dot / (math.sqrt(0.04 + 0.16 + 0.09 + 0.01) * math.sqrt(0.01 + 0.01 + 0.25 + 0.09))
    assert q0["query-map cosine"] == pytest.approx(cosine) and q1["query-map cosine"] == pytest.approx(cosine)
    # in-mask: (0.2 * 1 + 0.4 * 0.5) / 0.6 of query 0's own mass, against the mask's share (1 + 0.5) / 2 cells
    assert q0["in-mask ratio"] == pytest.approx(0.4 / 0.6)
    assert q0["in-mask ratio / share"] == pytest.approx((0.4 / 0.6) / 0.75)
    assert q1["in-mask ratio / share"] == pytest.approx((0.3 / 0.8) / 0.5)
    h0 = -sum(p * math.log(p) for p in (0.2, 0.4, 0.3, 0.1))
    assert q0["entropy"] == pytest.approx(h0) and q0["entropy / uniform"] == pytest.approx(h0 / math.log(4))
    # spatial: query 0 over both readouts (0.5, 0.5), query 1 (0.6, 0.4); object 0's mask share 0.75,
    # object 1's 0.5; r[p, q] = query p's mass in object q's mask / its share
    r = np.array([[(0.5 * 1 + 0.5 * 0.5) / 0.75, 0.5 / 0.5], [(0.6 * 1 + 0.4 * 0.5) / 0.75, 0.4 / 0.5]])
    assert q0["spatial preference"] == pytest.approx(r[0, 0] - r[1, 0])
    assert q1["spatial preference"] == pytest.approx(r[1, 1] - r[0, 1])


def test_spatial_preference_is_zero_on_average_for_identical_maps_and_positive_when_queries_look_at_their_own():
    rng = np.random.default_rng(1)
    coverages = [rng.random((3, 4)) * (rng.random((3, 4)) > 0.5) for _ in range(3)]
    one = rng.random((3, 4))
    same = np.stack([one / one.sum()] * 3)  # Nq x h x w
    assert np.mean(mm.spatial_preference(same, coverages)) == pytest.approx(0, abs=1e-12)
    own = np.stack([c / c.sum() for c in coverages])  # each query looks only inside its own mask
    assert (mm.spatial_preference(own, coverages) > 0).all()
    empty = coverages[:2] + [np.zeros((3, 4))]  # object 2 is not visible on this frame
    values = mm.spatial_preference(own, empty)
    assert math.isnan(values[2]) and not np.isnan(values[:2]).any()
    assert np.isnan(mm.spatial_preference(own, None)).all()


def test_identical_maps_are_object_blind_whatever_they_look_at():
    rng = np.random.default_rng(0)
    one = rng.random((3, 2, 2))
    one /= one.sum()
    values = mm.cross_frame_metrics(np.stack([one] * 3), True)
    # the point: the mean own-object mass is exactly 1/N, the preference 0, the maps alike
    assert np.mean([v["own-object mass"] for v in values]) == pytest.approx(1 / 3)
    assert all(v["preference"] == pytest.approx(0, abs=1e-12) for v in values)
    assert all(v["query-map cosine"] == pytest.approx(1) for v in values)
    # one query alone: no other to compare with
    alone = mm.cross_frame_metrics(one[None, :1] / one[:1].sum(), True)[0]
    assert alone["own-object mass"] == pytest.approx(1)
    assert math.isnan(alone["preference"]) and math.isnan(alone["query-map cosine"])
    # one image feature for all queries (qcim-f16): no own object, no preference; the maps still compare
    f16 = mm.cross_frame_metrics(np.stack([one[:1] / one[:1].sum()] * 2), False)
    assert math.isnan(f16[0]["own-object mass"]) and math.isnan(f16[0]["preference"])
    assert f16[0]["query-map cosine"] == pytest.approx(1)


def test_self_attention_metrics_by_hand():
    w = np.array([[0.7, 0.3], [0.4, 0.6]])
    q0, q1 = mm.self_frame_metrics(w)
    assert (q0["own weight"], q1["own weight"]) == (pytest.approx(0.7), pytest.approx(0.6))
    assert q0["own weight / share"] == pytest.approx(1.4)
    assert q0["preference"] == pytest.approx(0.7 - 0.4) and q1["preference"] == pytest.approx(0.6 - 0.3)
    assert q0["query-map cosine"] == pytest.approx((0.28 + 0.18) / math.sqrt(0.58 * 0.52))
    assert q1["entropy / uniform"] == pytest.approx(-(0.4 * math.log(0.4) + 0.6 * math.log(0.6)) / math.log(2))


def recording(heads: int = 2, seed: int = 0) -> Recording:
    """One 48 x 64 video of 3 frames, objects 7 and 3 (internal order), traced on frames 1 and 2."""
    g = torch.Generator().manual_seed(seed)
    labels = np.zeros((3, 48, 64), np.uint8)
    labels[:, 4:20, 2:30] = 7
    labels[:, 24:44, 30:60] = 3
    traces = [FrameTrace(0, (3, 4))]
    for t in (1, 2):
        trace = FrameTrace(t, (3, 4))
        cross = torch.randn(1, 2, heads, 2 * 12, generator=g).softmax(-1)  # over both readouts' 3 x 4 cells
        trace.qcim_attention = {"cross": cross.view(1, 2, heads, 2, 3, 4),
                                "self": torch.randn(1, 2, heads, 2, generator=g).softmax(-1)}
        trace.sim_attention = torch.randn(1, heads, 2, 2, generator=g).softmax(-1)
        traces.append(trace)
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    return Recording("video", frames, labels, labels.copy(), traces, [[7, 3]] * 3, -1, True)


def test_recording_table_follows_heads_queries_and_the_explorer():
    rec = recording()
    table = mm.recording_metrics(rec, heads=True)
    assert list(table.columns) == mm.COLUMNS
    assert set(table["query"]) == {7, 3} and sorted(table["frame"].unique()) == [1, 2]
    assert set(table["head"].astype(str)) == {"mean", "0", "1"}
    assert set(table["attention"]) == {mm.CROSS, mm.QCIM_SELF, mm.SIM_SELF}
    # frame 2, head 1, the query of object 3 (internal index 1), by hand from the explorer's geometry
    cross = rec.traces[2].qcim_attention["cross"][0, :, 1].numpy()  # 2 x 2 x 3 x 4
    geometry = em.GridGeometry((48, 64), (3, 4))
    mask = rec.ground_truth[2] == 3
    own = cross[1, 1].sum()
    rows = table.query("frame == 2 and head == 1 and attention == @mm.CROSS and query == 3")
    rows = rows.set_index("metric")["value"]
    assert rows["own-object mass"] == pytest.approx(own)
    assert rows["preference"] == pytest.approx(own - cross[0, 1].sum())
    share = geometry.coverage(mask).mean()
    assert rows["in-mask ratio / share"] == pytest.approx((cross[1, 1] * geometry.coverage(mask)).sum() / own / share)
    # the SIM rows of head 0: row 1 of its 2 x 2 weights
    sim = rec.traces[2].sim_attention[0, 0].numpy()
    rows = table.query("frame == 2 and head == 0 and attention == @mm.SIM_SELF and query == 3")
    rows = rows.set_index("metric")["value"]
    assert rows["own weight"] == pytest.approx(sim[1, 1]) and rows["preference"] == pytest.approx(sim[1, 1] - sim[0, 1])
    # the head-mean numbers the explorer shows are the same numbers
    explorer = rec.metrics()
    ours = table[(table["attention"] == mm.CROSS) & (table["head"].astype(str) == "mean")]
    for name in em.METRICS:
        a = explorer[explorer.metric == name].sort_values(["frame", "query"])["value"].to_numpy()
        b = ours[ours.metric == name].sort_values(["frame", "query"])["value"].to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_uniform_baseline_is_exactly_the_uniform_share():
    table = mm.recording_metrics(recording(), uniform=True)
    value = table.set_index(["attention", "metric"])["value"]
    for attention, metric in [(mm.CROSS, "own-object mass / share"), (mm.CROSS, "query-map cosine"),
                              (mm.CROSS, "in-mask ratio / share"), (mm.CROSS, "entropy / uniform"),
                              (mm.SIM_SELF, "own weight / share"), (mm.QCIM_SELF, "entropy / uniform")]:
        np.testing.assert_allclose(value.loc[(attention, metric)].to_numpy(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(value.loc[(mm.CROSS, "preference")].to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(value.loc[(mm.CROSS, "own-object mass")].to_numpy(), 0.5)


def test_summary_averages_each_video_first():
    table = pd.DataFrame({"video": ["a", "a", "b", "c"], "frame": [1, 2, 1, 1], "query": 1, "head": "mean",
                          "attention": mm.CROSS, "metric": "preference", "value": [0.1, 0.3, 0.5, 0.0],
                          "network": "trained"})
    row = summarise(table).iloc[0]
    per_video = [0.2, 0.5, 0.0]
    assert row["mean"] == pytest.approx(np.mean(per_video)) and row["videos"] == 3
    assert (row["low"], row["high"]) == pytest.approx(bootstrap_interval(per_video))
