"""amp / channels_last "auto": chosen by timing, cached per CPU, resolved before anything is keyed or saved."""

from __future__ import annotations

import json

import pytest
import torch

from qmvos_lab import machine
from qmvos_lab.config import TrainConfig
from qmvos_lab.train import fast_path
from qmvos_lab.train.fast_path import FastPath, candidates, resolve_fast_path
from qmvos_lab.train.presets import preset
from qmvos_lab.train.settings import parse_settings
from qmvos_lab.train.trainer import Trainer

LONG = dict(ablation="xmem", model_size="small", iterations=500)


def fake_timer(seconds: dict[tuple[bool, bool], float], calls: list):
    def time_steps(config, settings, rounds=3, warmup=1):
        calls.append(list(settings))
        return {s: [seconds[(s.amp, s.channels_last)], 9.0, seconds[(s.amp, s.channels_last)]] for s in settings}
    return time_steps


def test_auto_is_none_and_parses_from_the_command_line():
    assert TrainConfig(amp="auto", channels_last="AUTO").amp is None
    assert parse_settings(["amp=auto", "channels_last=false"]) == {"amp": None, "channels_last": False}
    assert preset("cpu-tiny").amp is None and preset("cpu-tiny").channels_last is None
    with pytest.raises(ValueError, match="amp must be true, false or 'auto'"):
        TrainConfig(amp="fast")


def test_candidates_try_only_what_is_left_to_auto():
    assert candidates(None, None) == [FastPath(False, False), FastPath(False, True), FastPath(True, False),
                                      FastPath(True, True)]
    assert candidates(False, None) == [FastPath(False, False), FastPath(False, True)]
    assert candidates(True, True) == [FastPath(True, True)]


@pytest.mark.parametrize("fastest", [(False, True), (True, False)])
def test_the_fastest_median_wins_and_the_decision_is_cached(tmp_path, monkeypatch, fastest):
    calls = []
    seconds = {(False, False): 1.0, (False, True): 0.9, (True, False): 0.8, (True, True): 0.85}
    seconds[fastest] = 0.5
    monkeypatch.setattr(fast_path, "time_steps", fake_timer(seconds, calls))
    config = preset("cpu-tiny", **LONG)
    resolved = resolve_fast_path(config, cache=tmp_path, device="cpu", log=None)
    assert (resolved.amp, resolved.channels_last) == fastest
    assert len(calls) == 1 and len(calls[0]) == 4
    record, = json.loads((tmp_path / fast_path.DECISIONS).read_text()).values()
    assert record["median_s"]["fp32"] == 1.0 and record["min_s"]["fp32"] == 1.0
    assert (record["amp"], record["channels_last"]) == fastest
    assert record["cpu"]["model"] == machine.describe_cpu()["model"]
    # later calls (and the other variant, same shape) read the decision instead of measuring
    again = resolve_fast_path(preset("cpu-tiny", **{**LONG, "ablation": "qmvos"}), cache=tmp_path, device="cpu",
                              log=None)
    assert (again.amp, again.channels_last) == fastest and len(calls) == 1
    # another CPU (or an instruction-set cap) is another decision
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    resolve_fast_path(config, cache=tmp_path, device="cpu", log=None)
    assert len(calls) == 2


def test_given_values_are_kept_and_short_runs_and_gpus_do_not_measure(tmp_path, monkeypatch):
    monkeypatch.setattr(fast_path, "time_steps", lambda *a, **k: pytest.fail("measured"))
    given = preset("cpu-tiny", **LONG, amp=True, channels_last=False)
    assert resolve_fast_path(given, cache=tmp_path, device="cpu") is given
    short = resolve_fast_path(preset("cpu-tiny", **{**LONG, "iterations": 12}), cache=tmp_path, device="cpu")
    assert (short.amp, short.channels_last) == (False, False)
    gpu = resolve_fast_path(preset("cpu-tiny", **LONG), cache=tmp_path, device="cuda")
    # a short run takes the machine's decision when one is on file (no measuring either way)
    key = fast_path.decision_key(preset("cpu-tiny", **LONG), machine.describe_cpu())
    machine.record_decision(tmp_path, key, {"amp": True, "channels_last": True, "reason": "on file"})
    short = resolve_fast_path(preset("cpu-tiny", **{**LONG, "iterations": 12}), cache=tmp_path, device="cpu", log=None)
    assert (short.amp, short.channels_last) == (True, True)
    assert (gpu.amp, gpu.channels_last) == (True, False)


def test_time_steps_times_every_setting_and_leaves_the_random_state_alone():
    config = preset("cpu-tiny", ablation="qmvos", model_size="small", batch_size=1, num_frames=3, crop_size=32,
                    max_objects=2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    times = fast_path.time_steps(config, candidates(None, False), rounds=2, warmup=0)
    assert torch.equal(torch.rand(3), expected)
    assert set(times) == {FastPath(False, False), FastPath(True, False)}
    assert all(1 <= len(t) <= 2 and all(x > 0 for x in t) for t in times.values())
    best = min(times, key=lambda s: times[s][0])
    assert len(times[best]) == 2  # the first round's best is always timed again


def test_a_setting_far_behind_after_the_first_round_is_not_timed_again(monkeypatch):
    clock = iter([0.0, 1.0, 1.0, 4.0, 4.0, 5.0, 5.0, 6.0])  # fp32 steps take 1 s, bf16 3 s
    monkeypatch.setattr(fast_path.time, "perf_counter", lambda: next(clock))
    config = preset("cpu-tiny", ablation="xmem", model_size="small", batch_size=1, num_frames=2, crop_size=32,
                    max_objects=1)
    times = fast_path.time_steps(config, candidates(None, False), rounds=3, warmup=0)
    assert times == {FastPath(False, False): [1.0, 1.0, 1.0], FastPath(True, False): [3.0]}


def test_cpu_class_follows_the_flags_and_the_caps():
    amx = {"amx_tile", "amx_bf16", "avx512_bf16", "avx512f", "avx2"}
    assert machine.cpu_class(amx) == "AMX"
    assert machine.cpu_class(amx, "AVX512_CORE_BF16") == "AVX-512 with bf16, no AMX"
    assert machine.cpu_class(amx, "AVX2") == "AVX2 only"
    assert machine.cpu_class({"avx512f", "avx2"}) == "AVX-512 without bf16"
    assert machine.cpu_class({"avx2"}) == "AVX2 only"
    assert machine.cpu_class(set()) == "below AVX2"
    assert "threads" in machine.cpu_line()


def test_the_trainer_saves_the_resolved_values_and_resumes_with_them(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fast_path, "time_steps",
                        fake_timer({(False, False): 1, (False, True): 1, (True, False): 1, (True, True): 0.5}, calls))
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "cache"))
    tiny = dict(ablation="xmem", model_size="small", iterations=MEASURED, batch_size=1, num_frames=3, crop_size=32,
                workers=0, samples_per_epoch=3, checkpoint_every=1)
    trainer = Trainer(preset("cpu-tiny", **tiny), tmp_path / "run", progress=False)
    assert trainer.config.amp is True and trainer.config.channels_last is True and len(calls) == 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["amp"] is True and saved["channels_last"] is True
    trainer.save()
    # a resumed run keeps its own choice, whatever this machine's decision now says
    (tmp_path / "cache" / fast_path.DECISIONS).unlink()
    monkeypatch.setattr(fast_path, "time_steps", lambda *a, **k: pytest.fail("measured again"))
    resumed = Trainer(preset("cpu-tiny", **tiny), tmp_path / "run", resume=True, progress=False)
    assert resumed.config.amp is True and resumed.config.channels_last is True


MEASURED = fast_path.MEASURE_FROM


def test_bf16_far_slower_on_the_probe_is_not_timed(tmp_path, monkeypatch):
    assert fast_path.bf16_convolution_ratio(repeats=1) > 0
    calls = []
    monkeypatch.setattr(fast_path, "bf16_convolution_ratio", lambda: 8.0)
    monkeypatch.setattr(fast_path, "time_steps",
                        fake_timer({(False, False): 1.0, (False, True): 0.9, (True, False): 0.1, (True, True): 0.1},
                                   calls))
    resolved = resolve_fast_path(preset("cpu-tiny", **LONG), cache=tmp_path, device="cpu", log=None)
    assert calls == [[FastPath(False, False), FastPath(False, True)]]
    assert (resolved.amp, resolved.channels_last) == (False, True)
    record, = json.loads((tmp_path / fast_path.DECISIONS).read_text()).values()
    assert record["reason"].startswith("bf16 not timed: a 3x3 convolution ran 8.0x slower")


def test_one_thread_per_physical_core_unless_the_environment_says(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(machine, "_cpuinfo", lambda: ("a CPU", set(), 3))
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        assert machine.use_physical_cores() == 3
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert machine.use_physical_cores() == 1
    finally:
        torch.set_num_threads(before)
