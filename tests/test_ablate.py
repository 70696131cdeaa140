"""The ablation runner: statistics against a hand computation, one-line errors, resume without
redoing finished runs, the worker-process and submitit back ends, custom variants, speed, figures."""

import itertools
import json
import math
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

from qmvos_lab import ablate, zoo
from qmvos_lab.ablate import backends, run, runner
from qmvos_lab.errors import UserError

TINY = dict(iterations=3, batch_size=1, num_frames=3, crop_size=32, samples_per_epoch=3, log_every=1,
            checkpoint_every=3)
TINY_EVAL = dict(eval_videos=1, eval_overrides={"length": 5, "height": 48, "width": 64})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QMVOS_LAB_SMOKE", raising=False)
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------- statistics
def fixed_table() -> pd.DataFrame:
    """2 variants x 2 seeds x 6 videos with known J&F values."""
    full = np.array([[0.50, 0.60, 0.40, 0.70, 0.55, 0.45],   # seed 0
                     [0.52, 0.58, 0.44, 0.66, 0.57, 0.47]])  # seed 1
    shift = np.array([[-0.05, -0.02, 0.01, -0.08, -0.03, -0.04],
                      [-0.03, -0.06, -0.03, -0.04, 0.01, -0.02]])
    rows = []
    for variant, values in (("qmvos", full), ("no-interaction", full + shift)):
        for seed in range(2):
            for v in range(6):
                jf = values[seed, v]
                rows.append({"variant": variant, "seed": seed, "video": f"v{v}", "J": jf + 0.01, "F": jf - 0.01,
                             "J&F": jf})
    return pd.DataFrame(rows)


def test_statistics_match_a_hand_computation():
    runs = fixed_table()
    summary = ablate.compare(runs, reference="qmvos", n_resamples=9999, seed=0).set_index("variant")
    full = runs[runs.variant == "qmvos"].pivot(index="video", columns="seed", values="J&F").mean(axis=1)
    ablated = runs[runs.variant == "no-interaction"].pivot(index="video", columns="seed", values="J&F").mean(axis=1)
    d = (ablated - full).to_numpy()  # seeds averaged per video, then paired over videos
    row = summary.loc["no-interaction"]
    assert row["diff"] == pytest.approx(d.mean())
    assert row["J&F"] == pytest.approx(ablated.mean())
    # exhaustive sign-flip enumeration: 2^6 patterns, two-sided |mean| >= |observed|
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    null = (flips * d).mean(axis=1)
    exact = np.mean(np.abs(null) >= abs(d.mean()) - 1e-12)
    assert row["p_value"] == pytest.approx(exact)
    assert row["p_value"] == pytest.approx(2 / 64)  # only the observed signs and their mirror reach it
    # BCa bootstrap with the same seed, on the hand-made differences
    expected = stats.bootstrap((d,), np.mean, method="BCa", n_resamples=9999,
                               **ablate.stats.seed_kwargs(stats.bootstrap, 0))
    assert (row["diff_low"], row["diff_high"]) == pytest.approx(
        (expected.confidence_interval.low, expected.confidence_interval.high))
    assert row["diff_low"] < row["diff"] < row["diff_high"] < 0
    # seeds shown separately: each seed's mean over videos, and the per-seed differences' range
    seed_means = runs[runs.variant == "no-interaction"].groupby("seed")["J&F"].mean()
    assert (row["seed_min"], row["seed_max"]) == pytest.approx((seed_means.min(), seed_means.max()))
    per_seed_diff = seed_means - runs[runs.variant == "qmvos"].groupby("seed")["J&F"].mean()
    assert (row["diff_seed_min"], row["diff_seed_max"]) == pytest.approx((per_seed_diff.min(), per_seed_diff.max()))
    # the paper reports no-interaction below the full model: reproduced (interval excludes 0, p < 0.05)
    assert row["paper_table"] == "3c" and row["paper_direction"] == "below"
    assert row["interval_excludes_0"] and row["direction_agrees"] and row["verdict"] == "reproduces"
    assert summary.loc["qmvos", "reading"] == "the full model (reference)"


def test_an_effect_within_the_noise_is_called_so():
    runs = fixed_table()
    noisy = runs.copy()
    flip = (noisy.variant == "no-interaction") & noisy.video.isin(["v0", "v2", "v4"])
    full = runs[runs.variant == "qmvos"].set_index(["seed", "video"])["J&F"]
    keys = list(zip(noisy.loc[flip, "seed"], noisy.loc[flip, "video"]))
    noisy.loc[flip, "J&F"] = full.loc[keys].to_numpy() + 0.03  # half the videos up, half down
    row = ablate.compare(noisy).set_index("variant").loc["no-interaction"]
    assert row["diff_low"] <= 0 <= row["diff_high"]
    # not "no effect": inconclusive, with the smallest difference this design would have found
    assert row["mdd"] > abs(row["diff"])
    assert row["verdict"] == f"inconclusive at this power; could have detected >= {row['mdd']:.3g}"
    assert row["reading"].startswith("inconclusive at this power")
    assert not row["interval_excludes_0"]


def test_sign_flip_p_value_is_exact_on_a_small_table():
    d = np.array([0.1, -0.02, 0.05, 0.03, 0.07])
    flips = np.array(list(itertools.product([1, -1], repeat=5)))
    exact = np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) - 1e-12)
    assert ablate.sign_flip_pvalue(d) == pytest.approx(exact) == pytest.approx(4 / 32)
    assert ablate.bootstrap_interval([0.2, 0.2, 0.2]) == (0.2, 0.2)  # no spread: the value itself
    assert all(math.isnan(x) for x in ablate.bootstrap_interval([0.2]))
    assert math.isnan(ablate.sign_flip_pvalue([0.1]))  # one video: nothing to permute


def test_figures_are_figures():
    runs = fixed_table()
    runs["copy_J&F"] = 0.3
    summary = ablate.compare(runs)
    assert isinstance(ablate.jf_points(runs, summary), Figure)
    assert isinstance(ablate.differences(summary), Figure)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("variants, seeds, match", [
    (["qmvos", "qmvos-huge"], [0], "unknown variant 'qmvos-huge'; choose from xmem, qmvos"),
    ("xmem,xmem", [0], r"variant\(s\) \['xmem'\] given twice"),
    ({"mine": {"hiden_dim": 0}}, [0], r"unknown ModelConfig field\(s\) \['hiden_dim'\]"),
    ({"mine": {"base": "nope", "hidden_dim": 0}}, [0], "unknown base 'nope'"),
    ({"mine": {"hidden_dim": -1}}, [0], "variant 'mine': ModelConfig.hidden_dim must be >= 0"),
    (["qmvos"], "0,x", "bad seed 'x'"),
    (["qmvos"], [0, -1], "bad seed -1"),
    (["qmvos"], [0, 1.5], "bad seed 1.5"),
    (["qmvos"], [1, 1], "repeat a seed"),
    (["qmvos"], [], "no seeds given"),
    ([], [0], "no variants given"),
])
def test_bad_variants_and_seeds_get_one_line_errors(cache, variants, seeds, match):
    with pytest.raises(UserError, match=match) as error:
        ablate.run_ablations(variants, seeds, "cpu-tiny", progress=False)
    assert "\n" not in str(error.value)


def test_bad_preset_settings_and_eval_sets_get_one_line_errors(cache):
    with pytest.raises(UserError, match="unknown preset 'cpu-huge'"):
        ablate.run_ablations(["qmvos"], [0], "cpu-huge", progress=False)
    with pytest.raises(UserError, match="unknown training settings"):
        ablate.run_ablations(["qmvos"], [0], "cpu-tiny", overrides={"iters": 3}, progress=False)
    with pytest.raises(UserError, match="is the training split"):
        ablate.run_ablations(["qmvos"], [0], "cpu-tiny", eval_set="synthetic-train", progress=False)
    with pytest.raises(UserError, match="unknown eval set 'davis'"):
        ablate.run_ablations(["qmvos"], [0], "cpu-tiny", eval_set="davis", progress=False)


@pytest.mark.parametrize("args, match", [
    (["--variants", "qmvos,foo"], "unknown variant 'foo'"),
    (["--seeds", "0,zero"], "bad seed 'zero'"),
    (["--seeds", "2,2"], "repeat a seed"),
    (["--custom", "mine", "hidden_dim"], "--custom mine hidden_dim: expected KEY=VALUE"),
    (["--custom", "mine", "hiden_dim=0"], "unknown ModelConfig field(s) ['hiden_dim']"),
])
def test_bad_names_and_seeds_through_the_command_line(tmp_path, capsys, args, match):
    from qmvos_lab.cli import main

    assert main(["ablate", "--preset", "cpu-tiny", "--output", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qmvos-lab ablate: error:") and match in err


def test_a_bad_variant_is_one_line_from_the_console(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qmvos_lab", "ablate", "--preset", "cpu-tiny", "--output",
                             str(tmp_path / "out"), "--variants", "xmem,qmvos-huge"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "unknown variant 'qmvos-huge'" in result.stderr


# ---------------------------------------------------------------------------------- runs
def count_training(monkeypatch, fail_on=None):
    """Count zoo.train_entry calls by network name; `fail_on` (a name) fails once, as a crash."""
    calls, original = [], zoo.train_entry

    def counted(entry, progress=True):
        calls.append(entry.name)
        if entry.name == fail_on and calls.count(fail_on) == 1:
            raise RuntimeError("simulated crash of a run")
        return original(entry, progress)

    monkeypatch.setattr(zoo, "train_entry", counted)
    return calls


@pytest.mark.slow
def test_a_rerun_after_a_crash_or_a_kill_redoes_no_finished_run(cache, monkeypatch):
    kwargs = dict(overrides=TINY, smoke=False, progress=False, **TINY_EVAL)
    calls = count_training(monkeypatch, fail_on="qmvos-small")
    with pytest.raises(RuntimeError, match="simulated crash"):
        ablate.run_ablations(["xmem", "qmvos"], [0], "cpu-tiny", **kwargs)
    assert calls == ["xmem-small", "qmvos-small"]

    # the second try of qmvos is killed midway (SIGINT after its first step): it keeps its checkpoint
    from qmvos_lab.train.trainer import Trainer

    steps, step = [], Trainer.step

    def step_then_stop(self, batch):
        steps.append(self.config.name)
        out = step(self, batch)
        if len(steps) == 1:
            signal.raise_signal(signal.SIGINT)  # the trainer's handler: save a checkpoint, stop
        return out

    monkeypatch.setattr(Trainer, "step", step_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ablate.run_ablations(["xmem", "qmvos"], [0], "cpu-tiny", **kwargs)
    assert calls == ["xmem-small", "qmvos-small", "qmvos-small"]  # xmem was not trained again
    assert steps == ["qmvos-small"]

    table = ablate.run_ablations(["xmem", "qmvos"], [0], "cpu-tiny", **kwargs)
    assert calls[3:] == ["qmvos-small"] and steps == ["qmvos-small"] * 3  # resumed: 1 + 2 = 3 iterations
    assert table.attrs["reused"] == 1
    assert list(table.columns[:8]) == ["variant", "seed", "video", "objects", "J", "F", "J&F", "copy_J&F"]
    assert set(runner.RUN_COLUMNS) <= set(table.columns)
    assert (table["preset"] == "cpu-tiny").all() and (table["iterations"] == 3).all()
    assert all(p.endswith("final.pth") for p in table["checkpoint"]) and table["code_version"].str.len().min() > 0

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a finished run must not be evaluated again")

    monkeypatch.setattr(run, "evaluate", no_evaluation)
    again = ablate.run_ablations(["xmem", "qmvos"], [0], "cpu-tiny", **kwargs)
    assert len(calls) == 4 and again.attrs["reused"] == 2
    pd.testing.assert_frame_equal(again, table, check_like=True)


@pytest.mark.slow
def test_a_custom_variant_trains_its_own_model_config(cache):
    (spec,) = ablate.plan({"no-sensory": {"hidden_dim": 0}}, [0], "cpu-tiny", ablate.eval_set_from(), TINY,
                          smoke=False)
    named = ablate.plan(["qmvos"], [0], "cpu-tiny", ablate.eval_set_from(), TINY, smoke=False)[0]
    assert spec.model.hidden_dim == 0 and spec.model.queries and spec.entry.folder != named.entry.folder
    table = ablate.run_ablations({"no-sensory": {"hidden_dim": 0}}, [0], "cpu-tiny", overrides=TINY, smoke=False,
                                 progress=False, **TINY_EVAL)
    assert list(table["variant"].unique()) == ["no-sensory"]
    network = zoo.load_entry(spec.entry)
    assert network.config.hidden_dim == 0 and network.config.queries


@pytest.mark.slow
def test_the_submitit_local_executor_runs_the_same_table(cache, tmp_path):
    executor = ablate.slurm_executor(tmp_path / "submitit", cluster="local", timeout_min=10)
    table = ablate.run_ablations(["xmem"], [0], "cpu-tiny", overrides=TINY, smoke=False, progress=False,
                                 executor=executor, **TINY_EVAL)
    assert len(table) == 1 and table["J&F"].between(0, 1).all() and table.attrs["reused"] == 0
    assert any((tmp_path / "submitit").iterdir())  # submitit's job folders
    again = ablate.run_ablations(["xmem"], [0], "cpu-tiny", overrides=TINY, smoke=False, progress=False, **TINY_EVAL)
    assert again.attrs["reused"] == 1 and again["J&F"].tolist() == table["J&F"].tolist()


@pytest.mark.slow
def test_the_command_line_with_worker_processes_writes_the_tables_and_reuses_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("QMVOS_LAB_SMOKE", raising=False)
    settings = [f"{k}={v}" for k, v in TINY.items()]
    command = [sys.executable, "-m", "qmvos_lab", "ablate", "--preset", "cpu-tiny", "--variants", "xmem,qmvos",
               "--seeds", "0", "--output", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
               "--eval-videos", "1", "--jobs", "2", "--quiet", "--set", *settings]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "0 of 2 runs reused" in first.stdout and "xmem:" in first.stdout
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs.columns[:7]) == ["variant", "seed", "video", "objects", "J", "F", "J&F"]
    assert sorted(runs["variant"]) == ["qmvos", "xmem"]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(summary["variant"]) == {"xmem", "qmvos"} and "p_value" in summary
    assert (tmp_path / "out" / "jf_per_variant.png").stat().st_size > 0
    assert (tmp_path / "out" / "differences.png").stat().st_size > 0
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 of 2 runs reused" in second.stdout


def stored_result(spec, jf=0.6):
    """Make `spec` look finished: a checkpoint file and its evaluation, without training."""
    spec.entry.folder.mkdir(parents=True)
    spec.entry.checkpoint.write_bytes(b"x")
    stored = {"rows": [{"video": "v", "objects": 1, "J": jf - 0.1, "F": jf + 0.1, "J&F": jf, "copy_J&F": 0.2}],
              "info": {"preset": "cpu-tiny", "iterations": 3}}
    spec.result_path.write_text(json.dumps(stored))


@pytest.mark.slow
def test_a_failing_worker_does_not_stop_the_other_runs(cache, tmp_path, capsys):
    good, = ablate.plan(["xmem"], [0], "cpu-tiny", ablate.eval_set_from(videos=1), TINY, smoke=False)
    stored_result(good)
    (tmp_path / "not-a-folder").write_text("")
    bad, = ablate.plan(["qmvos"], [0], "cpu-tiny", ablate.eval_set_from(videos=1), TINY, smoke=False,
                       cache=tmp_path / "not-a-folder")  # training cannot write its run folder there
    done = []
    with pytest.raises(OSError):
        for spec, result in backends._processes([bad, good], 2, bar=None):
            done.append((spec.variant.name, result.rows[0]["J&F"]))
    assert done == [("xmem", 0.6)]
    assert "1 of 2 runs failed (qmvos seed 0)" in capsys.readouterr().err


def test_speed_table_times_both_networks_side_by_side():
    table = ablate.speed_table(size="small", height=32, width=48, objects=2, frames=4, repeats=1, device="cpu",
                               warmup=2)
    assert list(table["model"]) == ["xmem", "qmvos"] and (table["ms_per_frame"] > 0).all()
    assert table["paper_fps"].tolist() == [38.1, 37.6]
    assert table["ratio"].iloc[0] == pytest.approx(table["ms_per_frame"].iloc[1] / table["ms_per_frame"].iloc[0])


def test_the_paper_table_names_every_variant_and_the_citation():
    from qmvos_lab.ablations import ABLATIONS, BEYOND_THE_PAPER

    assert set(ablate.TABLE3) == set(ABLATIONS) - set(BEYOND_THE_PAPER) and set(BEYOND_THE_PAPER) <= set(ABLATIONS)
    assert "arXiv:2403.11529" in ablate.CITATION and ablate.PAPER_FPS == {"qmvos": 37.6, "xmem": 38.1}
    assert all(row.direction == -1 for name, row in ablate.TABLE3.items() if name != "qmvos")


def test_results_are_stored_in_the_cache_entry(cache, monkeypatch):
    """Without training: a stored result (final.pth + eval-<key>.json) is what a rerun reads."""
    (spec,) = ablate.plan(["xmem"], [3], "cpu-tiny", ablate.eval_set_from(videos=1), TINY, smoke=False)
    stored_result(spec)
    count_training(monkeypatch)
    table = ablate.run_ablations(["xmem"], [3], "cpu-tiny", overrides=TINY, smoke=False, progress=False,
                                 eval_videos=1)
    assert table.attrs["reused"] == 1 and table["J&F"].tolist() == [0.6] and table["seed"].tolist() == [3]


def test_runs_are_scored_at_their_recipes_inference_size_on_generated_splits_only():
    network = type("Network", (), {"inference_size": 192})()
    generated = ablate.eval_set_from("synthetic-hard")
    assert generated.inference_config(network).size == 192
    assert generated.inference_config().size == -1  # no network: the frames' own size
    assert ablate.eval_set_from("synthetic-hard", inference={"size": 96}).inference_config(network).size == 96
    davis = ablate.eval_set_from("davis2017:/nowhere")  # real frames keep their size
    assert davis.inference_config(network).size == -1


def test_the_estimate_names_the_runs_and_the_time_expected_on_this_cpu(cache):
    from qmvos_lab.machine import describe_cpu, record_decision
    from qmvos_lab.train.fast_path import decision_key

    settings = {**TINY, "iterations": 600}
    auto = zoo.training_config("xmem", "cpu-tiny", 0, False, **settings)  # amp and layout "auto": timed once
    record_decision(zoo.cache_root(), decision_key(auto, describe_cpu()),
                    {"amp": False, "channels_last": False, "reason": "a test", "median_s": {"fp32": 0.5, "bf16": 9}})
    specs = ablate.plan(["xmem", "qmvos"], [0, 1], "cpu-tiny", ablate.eval_set_from(videos=1), settings, smoke=False)
    assert all(s.train.amp is False and s.train.channels_last is False for s in specs)  # decided in the plan
    stored_result(specs[0])  # finished: not in the plan's todo; the others train
    finished = run.RunResult("xmem-small", [], {"eval_time_s": 30.0})
    line = runner.estimate(specs[1:], [finished])
    # 3 runs x 600 iterations x 0.5 s x WHOLE_RUN_FACTOR 0.8 = 12 min; evaluation 3 x 30 s = 1.5 min
    assert line == ("ablation estimate: 3 run(s) to train (~12 min from this CPU's timed iteration); 0 to evaluate "
                    "only; evaluation ~2 min; about 14 min in all, in one process")
    specs[1].entry.folder.mkdir(parents=True)
    specs[1].entry.checkpoint.write_bytes(b"x")  # trained, not yet evaluated
    assert runner.estimate(specs[1:]).startswith("ablation estimate: 2 run(s) to train (~8 min")
    assert runner.estimate(specs[1:]).endswith("1 to evaluate only; evaluation time unknown")
