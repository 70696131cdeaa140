"""The mechanism study over training and across variants (mechanism/over_training.py): summaries and
differences by hand, the per-network table cached beside the network, the probe's curve read back from
metrics.jsonl, the probe passed through the zoo, and the figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from qmvos_lab import zoo
from qmvos_lab.config import InferenceConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.errors import UserError
from qmvos_lab.mechanism import over_training as ot
from qmvos_lab.mechanism.metrics import CROSS, SIM_SELF
from qmvos_lab.mechanism.probe import MechanismProbe
from qmvos_lab.viz.mechanism_plots import metrics_over_training

from mechanism_network import network  # noqa: F401 (the shared fixture)


def per_video_rows(label, values, kind="trained", attention=CROSS, metric="preference", split="synthetic-hard",
                   iterations=100, variant="qmvos"):
    """values: seeds x videos -> the study's per-video rows."""
    return pd.DataFrame([dict(label=label, variant=variant, preset="p", iterations=iterations, seed=s, split=split,
                              network=kind, attention=attention, metric=metric, video=f"v{v}", value=x)
                         for s, row in enumerate(values) for v, x in enumerate(row)])


def test_summary_by_hand():
    values = np.array([[0.1, 0.2, 0.3, 0.0], [0.2, 0.3, 0.5, 0.2]])  # 2 seeds x 4 videos
    table = pd.concat([per_video_rows("a", values), per_video_rows("a", values * 0 + 1, kind="uniform"),
                       per_video_rows("a", values, metric="not a key metric")])
    summary = ot.study_summary(table).set_index("network")
    assert len(summary) == 2  # the metric outside KEY_METRICS is left out
    trained = summary.loc["trained"]
    assert trained["mean"] == pytest.approx(values.mean())
    assert trained["low"] < trained["mean"] < trained["high"]
    assert (trained["seeds"], trained["videos"]) == (2, 4)
    assert trained["per seed"] == "0:0.150 1:0.300"
    uniform = summary.loc["uniform"]  # no spread: a zero-width interval
    assert (uniform["mean"], uniform["low"], uniform["high"]) == (1.0, 1.0, 1.0)


def test_the_interval_holds_the_seeds_spread():
    """Two seeds that disagree: the two-stage interval is wider than the videos-only one of their mean."""
    close = np.array([[0.10, 0.11, 0.12, 0.13, 0.14], [0.10, 0.11, 0.12, 0.13, 0.14]])
    apart = close + np.array([[-0.1], [0.1]])
    low_c, high_c = ot.mean_interval(close)
    low_a, high_a = ot.mean_interval(apart)
    assert high_a - low_a > 2 * (high_c - low_c)


def test_difference_pairs_videos():
    a = np.array([[0.3, 0.4, 0.5, 0.2, 0.6], [0.3, 0.4, 0.5, 0.2, 0.6]])
    b = a - 0.1  # every video 0.1 lower: the interval is exactly 0.1
    table = pd.concat([per_video_rows("a", a), per_video_rows("b", b)])
    diff, low, high = ot.difference(table, "a", "b", "synthetic-hard", CROSS, "preference")
    assert diff == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert np.isnan(ot.difference(table, "a", "b", "synthetic-val", CROSS, "preference")[0])  # no such rows
    holes_a, holes_b = a.copy(), b.copy()
    holes_a[:, 1], holes_b[:, 3] = np.nan, np.nan  # each network misses another video: pair the other three
    holed = pd.concat([per_video_rows("a", holes_a), per_video_rows("b", holes_b + np.array([0, 0, 0, 0, 1.0]))])
    diff, low, high = ot.difference(holed, "a", "b", "synthetic-hard", CROSS, "preference")
    assert diff == pytest.approx((0.1 + 0.1 - 0.9) / 3)  # videos 0, 2, 4 (b's video 4 is 1.0 higher)


def test_default_networks():
    networks = ot.default_networks(long_seeds=(0, 1))
    labels = [n.label for n in networks]
    assert len(set(labels)) == len(labels)
    longest = max(networks, key=lambda n: n.train_iterations(False))
    assert (longest.variant, longest.seeds, longest.train_iterations(False)) == ("qmvos", (0, 1), 2720)
    assert {n.variant for n in networks} == {"qmvos", "no-interaction", "qcim-f16", "qcim-identity"}
    assert longest.train_iterations(True) == zoo.SMOKE_ITERATIONS
    assert all(n.iterations is None for n in ot.default_networks(long_seeds=()))


def test_network_metrics_are_cached_beside_the_network(network, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    monkeypatch.setattr(network, "cache_folder", tmp_path, raising=False)
    monkeypatch.setattr(ot, "split_videos", lambda split, n, **kw: [
        generate_video(SyntheticConfig(num_objects=2, length=4, height=48, width=64), seed=s, name=f"tiny-{s}")
        for s in range(n)])
    monkeypatch.setattr(ot, "with_baselines", _with_small_config(ot.with_baselines))
    first = ot.network_metrics(network, "synthetic-hard", 2)
    assert set(first["network"]) == {"trained", "untrained", "uniform"}
    assert set(first["video"]) == {"tiny-0", "tiny-1"}
    assert ot.table_path(network, "synthetic-hard", 2, None).is_file()
    uniform = first[(first.network == "uniform") & (first.metric == "own-object mass / share")]["value"]
    np.testing.assert_allclose(uniform, 1.0)

    def fail(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cached table")

    monkeypatch.setattr(ot, "with_baselines", fail)
    again = ot.network_metrics(network, "synthetic-hard", 2)
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again, check_dtype=False)
    with pytest.raises(AssertionError, match="measured again"):  # another video count is another table
        ot.network_metrics(network, "synthetic-hard", 1)
    with pytest.raises(AssertionError, match="measured again"):  # another seed, another untrained baseline
        ot.network_metrics(network, "synthetic-hard", 2, seed=1)


def _with_small_config(function):
    return lambda net, videos, seed=0: function(net, videos, InferenceConfig(size=-1, mem_every=2), seed=seed)


def test_training_curves_read_the_probe_lines(tmp_path):
    spec = ot.StudyNetwork("qmvos-small", "cpu-quick")
    config = zoo.training_config(spec.name, spec.preset, 0, True)
    folder = zoo.entry_for(config, tmp_path).folder
    folder.mkdir(parents=True)
    key = MechanismProbe.key(CROSS, "preference")
    lines = [{"iteration": 1, "loss": 2.0}, {"iteration": 2, "loss": 1.0, key: 0.05,
                                              MechanismProbe.key(SIM_SELF, "preference"): None}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    curves = ot.training_curves([spec, ot.StudyNetwork("xmem-small", "cpu-quick")], seeds=(0,), smoke=True,
                                cache=tmp_path)
    assert curves.to_dict("records") == [dict(label=spec.label, seed=0, iteration=2, attention=CROSS,
                                              metric="preference", value=0.05)]


def test_the_zoo_passes_the_probe_to_the_trainer(tmp_path, monkeypatch):
    import qmvos_lab.train.trainer as trainer_module

    seen = {}

    class Recorder:
        def __init__(self, config, run_dir, resume=False, progress=True, probe=None, network=None):
            seen["probe"], self.iteration, self.stop_requested = probe, config.iterations, False

        def train(self):
            raise RuntimeError("stop here")

    monkeypatch.setattr(trainer_module, "Trainer", Recorder)
    probe = MechanismProbe([], every=3)
    with pytest.raises(RuntimeError, match="stop here"):
        zoo.trained("qmvos-small", "cpu-quick", 0, smoke=True, progress=False, cache=tmp_path, probe=probe)
    assert seen["probe"] is probe


def test_the_figure():
    rows = []
    for label, variant, iterations, shift in (("q quick", "qmvos", 190, 0.0), ("q tiny", "qmvos", 680, 0.1),
                                              ("i tiny", "qcim-identity", 680, 0.3)):
        for kind, value in (("trained", 1.0 + shift), ("untrained", 1.0), ("uniform", 1.0)):
            for attention, metric in ot.KEY_METRICS:
                rows.append(dict(label=label, variant=variant, iterations=iterations, split="synthetic-hard",
                                 network=kind, attention=attention, metric=metric, mean=value, low=value - 0.05,
                                 high=value + 0.05))
    summary = pd.DataFrame(rows)
    curves = pd.DataFrame([dict(label="q tiny", seed=0, iteration=i, attention=CROSS, metric="preference",
                                value=0.01 * i) for i in (10, 20, 30)])
    fig = metrics_over_training(summary, ot.KEY_METRICS, curves=curves)
    bare = metrics_over_training(summary, ot.KEY_METRICS)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(ot.KEY_METRICS)

    def panel(figure, title):
        return next(ax for ax in figure.axes if ax.get_title() == title)

    preference, plain = panel(fig, f"{CROSS}: preference"), panel(bare, f"{CROSS}: preference")
    assert len(preference.lines) == len(plain.lines) + 1  # the probe's curve, on its panel only
    assert list(preference.lines[0].get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    other = f"{CROSS}: entropy / uniform"
    assert len(panel(fig, other).lines) == len(panel(bare, other).lines)
    # a baseline per variant (the untrained configs differ) and one uniform line
    labels = [line.get_label() for line in plain.lines]
    assert labels.count("untrained qmvos") == 1 and labels.count("untrained qcim-identity") == 1
    assert labels.count("uniform") == 1
    with pytest.raises(UserError, match="lacks column"):
        metrics_over_training(summary.drop(columns="low"), ot.KEY_METRICS)


def test_train_logs_the_probe_from_the_command_line(tmp_path, monkeypatch):
    """`qmvos-lab train --probe-videos N --probe-every K`: the probe's lines join metrics.jsonl."""
    from qmvos_lab.cli import main
    from qmvos_lab.train.trainer import read_metrics

    monkeypatch.setattr("qmvos_lab.data.synthetic.SPLITS", _short_hard_split())
    code = main(["train", "--preset", "cpu-tiny", "--runs-dir", str(tmp_path), "--name", "probed", "--quiet",
                 "--probe-videos", "1", "--probe-every", "2", "--set", "iterations=2", "batch_size=1",
                 "num_frames=3", "crop_size=32", "samples_per_epoch=2", "log_every=1", "inference_size=-1",
                 "amp=false", "channels_last=false"])
    assert code == 0
    lines = read_metrics(tmp_path / "probed")
    key = MechanismProbe.key(CROSS, "preference")
    assert key not in lines[0] and isinstance(lines[1][key], float)


def _short_hard_split():
    import dataclasses

    from qmvos_lab.data.synthetic import SPLITS

    hard = SPLITS["synthetic-hard"]
    short = dataclasses.replace(hard, config=dataclasses.replace(hard.config, length=3, height=48, width=64))
    return {**SPLITS, "synthetic-hard": short}

