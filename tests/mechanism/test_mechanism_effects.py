"""ΔJ&F tables by hand, the interventions and baselines on a real (small, random) network over tiny
generated videos, and the training probe's lines in metrics.jsonl."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import pytest
import torch

from qmvos_lab.config import InferenceConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.eval.davis import evaluate_sequence
from qmvos_lab.mechanism import effects as ef
from qmvos_lab.mechanism import interventions as iv
from qmvos_lab.mechanism import metrics as mm
from qmvos_lab.mechanism.probe import LOGGED, MechanismProbe
from qmvos_lab.mechanism.study import untrained_like, with_baselines
from qmvos_lab.model import build_network
from qmvos_lab.eval.videos import segment_videos

from mechanism_network import network  # noqa: F401 (the shared fixture)

CONFIG = InferenceConfig(size=-1, mem_every=2)


def test_effects_by_hand():
    intact = np.array([0.5, 0.6, 0.7, 0.4, 0.8, 0.3])
    jf = pd.DataFrame({"intact": intact, "permuted queries": intact,
                       "mean query": intact - np.array([0.1, 0.2, 0.1, 0.3, 0.1, 0.2]),
                       "no QCIM": intact - 0.1}, index=list("abcdef"))
    table = ef.effect_table(jf).set_index("intervention")
    assert table.loc["permuted queries", ["ΔJ&F", "low", "high"]].tolist() == [0, 0, 0]
    assert "no object identity" in table.loc["permuted queries", "reading"]
    assert table.loc["mean query", "ΔJ&F"] == pytest.approx(-1.0 / 6)
    # all six differences negative: 2 of the 2^6 sign patterns reach |mean| (exact sign-flip p)
    assert table.loc["mean query", "p"] == pytest.approx(2 / 64)
    # Holm over the 3 interventions: p = (1, 2/64, 2/64) -> 3 x 2/64 for both small ones, 1 for the other
    assert table["p_holm"].tolist() == pytest.approx([1, 3 * 2 / 64, 3 * 2 / 64])
    assert table.loc["mean query", "high"] < 0 and table.loc["mean query", "reading"].startswith("inconclusive")
    eight = pd.DataFrame({"intact": np.linspace(0.3, 0.8, 8), "no QCIM": np.linspace(0.3, 0.8, 8) - 0.2,
                          "mean query": np.linspace(0.3, 0.8, 8) - np.linspace(0.01, 0.08, 8)})
    eight = ef.effect_table(eight).set_index("intervention")  # 2 / 2^8 each, x 2 (Holm over two)
    assert eight["p_holm"].tolist() == pytest.approx([2 * 2 / 256, 2 * 2 / 256])
    assert eight.loc["mean query", "reading"].startswith("costs J&F") and "Holm p = 0.0156" in eight.loc[
        "mean query", "reading"]
    assert table.loc["no QCIM", ["low", "high"]].tolist() == pytest.approx([-0.1, -0.1])
    few = ef.effect_table(jf.iloc[:3]).set_index("intervention")  # 3 videos: the smallest p is 2 / 8
    assert few.loc["no QCIM", "p"] == pytest.approx(0.25) and few.loc["no QCIM", "reading"].startswith("inconclusive")


@pytest.fixture(scope="module")
def videos():
    return [generate_video(SyntheticConfig(num_objects=2, length=5, height=48, width=64), seed=s, name=f"tiny-{s}")
            for s in (1, 2)]


def by_hand_jf(videos, predictions) -> list[float]:
    out = []
    for video, pred in zip(videos, predictions):
        j, f = evaluate_sequence(video.labels, pred[1:-1], name=video.name)  # objects x frames
        out.append((j.mean(1).mean() + f.mean(1).mean()) / 2)
    return out


def test_intervention_jf_pairs_each_intervention_with_the_intact_network(network, videos):
    chosen = {"nothing": lambda net: nullcontext(), "mean query": iv.mean_queries}
    jf = ef.intervention_jf(network, videos, chosen, CONFIG)
    assert list(jf.columns) == ["intact", "nothing", "mean query"] and list(jf.index) == ["tiny-1", "tiny-2"]
    np.testing.assert_allclose(jf["intact"], by_hand_jf(videos, segment_videos(network, videos, CONFIG)[0]))
    assert jf["nothing"].tolist() == jf["intact"].tolist()
    with iv.mean_queries(network):
        mean = segment_videos(network, videos, CONFIG)[0]
    np.testing.assert_allclose(jf["mean query"], by_hand_jf(videos, mean))


def test_baselines_are_computed_the_same_way(network, videos):
    state = torch.random.get_rng_state()
    fresh = untrained_like(network, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    torch.manual_seed(5)
    same = build_network(network.config)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), same.state_dict().values()))
    table = with_baselines(network, videos[:1], CONFIG)
    assert set(table["network"]) == {"trained", "untrained", "uniform"}
    assert set(table["attention"]) == {mm.CROSS, mm.QCIM_SELF, mm.SIM_SELF}
    rows = table.set_index(["network", "attention", "metric"])["value"]
    np.testing.assert_allclose(rows.loc[("uniform", mm.CROSS, "own-object mass / share")], 1.0, rtol=1e-9)
    trained = rows.loc[("trained", mm.CROSS, "query-map cosine")].to_numpy()
    assert len(trained) == len(rows.loc[("uniform", mm.CROSS, "query-map cosine")])  # the same frames and queries
    assert not np.allclose(trained, rows.loc[("untrained", mm.CROSS, "query-map cosine")].to_numpy())


def test_the_probe_logs_into_metrics_jsonl_without_changing_training(tmp_path, videos):
    from qmvos_lab.train.presets import preset
    from qmvos_lab.train.trainer import Trainer, read_metrics

    tiny = dict(iterations=2, batch_size=1, num_frames=3, crop_size=32, workers=0, log_every=1, checkpoint_every=2,
                samples_per_epoch=2)
    config = preset("cpu-tiny", ablation="qmvos", **tiny)
    plain = Trainer(config, tmp_path / "plain", progress=False).train()
    probe = MechanismProbe(videos[:1], every=2, config=CONFIG)
    probed = Trainer(config, tmp_path / "probed", progress=False, probe=probe).train()
    assert [r["loss"] for r in probed] == [r["loss"] for r in plain]
    lines = read_metrics(tmp_path / "probed")
    keys = {MechanismProbe.key(*pair) for pair in LOGGED}
    assert not keys & set(lines[0]) and keys <= set(lines[1])
    assert all(isinstance(lines[1][k], float) for k in keys)
    assert not any(k.startswith("mechanism/") for k in read_metrics(tmp_path / "plain")[1])
