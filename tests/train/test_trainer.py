"""The trainer: the pass through DDP-style dispatch, determinism, exact resume, checkpoints, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qmvos_lab.checkpoints import load_checkpoint
from qmvos_lab.errors import UserError
from qmvos_lab.model import hard_masks
from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import EpochSampler, Trainer, read_metrics

TINY = dict(iterations=4, batch_size=1, num_frames=3, crop_size=32, workers=0, log_every=1, checkpoint_every=2,
            samples_per_epoch=3)


def losses(history):
    return [round(h["loss"], 6) for h in history]


def test_hard_masks_are_the_argmax_with_background():
    prob = torch.tensor([[[[0.1, 0.7]], [[0.6, 0.2]], [[0.3, 0.1]]]])  # B x (N + 1) x 1 x 2, background first
    assert hard_masks(prob).tolist() == [[[[1.0, 0.0]], [[0.0, 0.0]]]]


def test_epoch_sampler_positions_and_progress():
    sampler = EpochSampler(10, seed=0, batch_size=2, iterations=20, rank=1, world=2)
    sampler.set_position(epoch=3, start=2, first_iteration=7)
    items = list(sampler)
    assert len(items) == 3 and [p for _, p in items] == [7 / 20, 7 / 20, 8 / 20]  # 2 items a batch
    assert [i for i, _ in items] == sampler.indices()[2:]


def test_a_given_network_or_model_config(tmp_path):
    """`network=`: a module is trained as given; a ModelConfig is built (from scratch only), as the
    zoo does for the ablation runner's custom variants."""
    import dataclasses

    from qmvos_lab.ablations import model_config
    from qmvos_lab.model import build_network

    config = preset("cpu-tiny", ablation="qmvos", **TINY, amp=False, channels_last=False)
    network = build_network(model_config("qmvos", "small"))
    assert Trainer(config, tmp_path / "a", progress=False, network=network).network is network
    custom = dataclasses.replace(model_config("qmvos", "small"), hidden_dim=0)
    assert Trainer(config, tmp_path / "b", progress=False, network=custom).network.config == custom
    with pytest.raises(UserError, match="a network with its own ModelConfig trains from scratch only"):
        Trainer(dataclasses.replace(config, init="imagenet"), tmp_path / "c", progress=False, network=custom)


@pytest.mark.parametrize("ablation", ["xmem", "qmvos"])
def test_same_seed_same_losses(tmp_path, ablation):
    first = Trainer(preset("cpu-tiny", ablation=ablation, **TINY), tmp_path / "a", progress=False).train()
    second = Trainer(preset("cpu-tiny", ablation=ablation, **TINY), tmp_path / "b", progress=False).train()
    assert losses(first) == losses(second) and len(first) == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in first)


def test_resume_continues_exactly_and_writes_the_run_folder(tmp_path):
    straight = Trainer(preset("cpu-tiny", ablation="qmvos", **TINY, amp=True, channels_last=True), tmp_path / "straight",
                       progress=False).train()
    config = preset("cpu-tiny", ablation="qmvos", **{**TINY, "iterations": 4, "amp": True, "channels_last": True})
    interrupted = Trainer(config, tmp_path / "resumed", progress=False)
    interrupted.stop_requested = False
    # run two iterations, then stop as a signal would
    interrupted.callback = lambda record: setattr(interrupted, "stop_requested", record["iteration"] >= 2)
    interrupted.train()
    assert not (tmp_path / "resumed" / "final.pth").exists()
    resumed = Trainer(config, tmp_path / "resumed", resume=True, progress=False).train()
    assert losses(read_metrics(tmp_path / "resumed")) == losses(straight)
    assert [h["iteration"] for h in resumed] == [3, 4]
    run = tmp_path / "resumed"
    assert json.loads((run / "config.json").read_text())["train"]["name"] == "cpu-tiny"
    final = load_checkpoint(run / "final.pth")
    assert load_checkpoint(run / "checkpoint.pth").config == final.config  # training checkpoints load safely too
    # bf16 with channels-last (what "auto" picks on CPUs with bf16 units) resumes exactly all the same; 2x zoomed
    # crops, and its networks segment generated videos at the same zoom
    assert interrupted.amp_dtype == torch.bfloat16 and config.channels_last
    assert final.inference_size == config.inference_size == 192
    straight_final = torch.load(tmp_path / "straight" / "final.pth", weights_only=True)["network"]
    for name, value in final.state_dict().items():
        torch.testing.assert_close(value, straight_final[name], rtol=0, atol=0)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


class StopAt(Trainer):
    """Stops after iteration `stop_at`, as a signal arriving during that iteration would."""

    stop_at = None

    def step(self, batch):
        metrics = super().step(batch)
        if self.iteration + 1 == self.stop_at:
            self.stop_requested = True
        return metrics


def comparable(records):
    return [{k: v for k, v in r.items() if k not in ("it_per_s", "memory_mib")} for r in records]


def test_resume_is_exact_with_batches_workers_log_windows_picks_and_a_grad_scaler(tmp_path, monkeypatch):
    """Batch 2, a DataLoader worker, a log line every 2 iterations, 5-frame clips (random memory
    picks and QMVOS's dropout), epochs of 3 batches, a stop after iteration 5: after the checkpoint
    of iteration 4, inside a log window and an epoch. A grad scaler that doubles its scale every
    step stands in for AMP (the trainer autocasts on GPUs only)."""
    def cpu_scaler(device="cuda", enabled=True, **kwargs):
        return real_scaler("cpu", init_scale=2.0 ** 4, growth_interval=1, enabled=True)

    real_scaler = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", cpu_scaler)
    config = preset("cpu-tiny", ablation="qmvos", iterations=6, batch_size=2, num_frames=5, crop_size=32, workers=1,
                    log_every=2, checkpoint_every=4, samples_per_epoch=6)
    straight = Trainer(config, tmp_path / "straight", progress=False)
    straight.train()
    interrupted = StopAt(config, tmp_path / "resumed", progress=False)
    interrupted.stop_at = 5
    interrupted.train()
    assert interrupted.iteration == 5 and torch.load(tmp_path / "resumed" / "checkpoint.pth",
                                                     weights_only=True)["iteration"] == 5
    resumed = Trainer(config, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.scaler.get_scale() == interrupted.scaler.get_scale() == 2.0 ** 9
    resumed.train()
    assert comparable(read_metrics(tmp_path / "resumed")) == comparable(read_metrics(tmp_path / "straight"))
    assert resumed.scaler.get_scale() == straight.scaler.get_scale()
    for name, value in resumed.network.state_dict().items():
        torch.testing.assert_close(value, straight.network.state_dict()[name], rtol=0, atol=0)


def test_resuming_with_a_changed_config_is_refused(tmp_path):
    config = preset("cpu-tiny", ablation="xmem", **TINY)
    StopAt(config, tmp_path / "run", progress=False).train()
    changed = preset("cpu-tiny", ablation="xmem", **{**TINY, "lr": 0.5, "batch_size": 2, "workers": 1})
    with pytest.raises(UserError) as error:
        Trainer(changed, tmp_path / "run", resume=True, progress=False)
    message = str(error.value)
    assert "\n" not in message and "batch_size 1 -> 2" in message and f"lr {config.lr} -> 0.5" in message
    assert "workers" not in message  # how the data is loaded does not change what is trained
    Trainer(preset("cpu-tiny", ablation="xmem", **{**TINY, "workers": 1}), tmp_path / "run", resume=True,
            progress=False)


def test_a_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    script = (
        "import os, signal\n"
        "from qmvos_lab.train.presets import preset\n"
        "from qmvos_lab.train.trainer import Trainer\n"
        f"t = Trainer(preset('cpu-tiny', ablation='xmem', **{TINY!r}), {str(tmp_path / 'run')!r}, progress=False)\n"
        "t.callback = lambda r: os.kill(os.getpid(), signal.SIGTERM) if r['iteration'] == 1 else None\n"
        "t.train()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=False)
    assert state["iteration"] == 1 and not (tmp_path / "run" / "final.pth").exists()


DDP_SCRIPT = """
import hashlib, json, sys
import torch
import torch.distributed as dist
from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import Trainer

root, ablation = sys.argv[1], sys.argv[2]
config = preset("cpu-tiny", ablation=ablation, iterations=4, batch_size=1, num_frames=5, crop_size=32, workers=0,
                log_every=1, checkpoint_every=10, samples_per_epoch=8)


class Recording(torch.utils.data.Dataset):  # the items this rank draws
    def __init__(self, dataset):
        self.dataset, self.keys = dataset, []

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        self.keys.append(int(key[0]))
        return self.dataset[key]

    def set_epoch(self, epoch):
        self.dataset.set_epoch(epoch)


class StopAfter2(Trainer):
    def step(self, batch):
        metrics = super().step(batch)
        self.stop_requested = self.iteration + 1 == 2
        return metrics


def weights_hash(trainer, params_only=False):
    state = dict(trainer.network.named_parameters()) if params_only else trainer.network.state_dict()
    return hashlib.sha256(b"".join(state[k].detach().numpy().tobytes() for k in sorted(state))).hexdigest()


rank = int(__import__("os").environ["RANK"])
# straight: 4 iterations; rank 1 is given a run folder of its own, which must stay empty
straight = Trainer(config, f"{root}/straight" + ("" if rank == 0 else "-rank1"), progress=False)
straight.dataset = Recording(straight.dataset)
history = straight.train()
out = {"losses": [h["loss"] for h in history], "keys": straight.dataset.keys,
       "sampler": straight.sampler.indices(), "weights": weights_hash(straight),
       "params": weights_hash(straight, True)}
# interrupted after 2 iterations, then resumed on both ranks from rank 0's checkpoint
stopped = StopAfter2(config, f"{root}/resumed", progress=False)
stopped.train()
out["generator_at_stop"] = hashlib.sha256(stopped.generator.get_state().numpy().tobytes()).hexdigest()
resumed = Trainer(config, f"{root}/resumed", resume=True, progress=False)
out["generator_at_resume"] = hashlib.sha256(resumed.generator.get_state().numpy().tobytes()).hexdigest()
out["resumed_losses"] = [h["loss"] for h in resumed.train()]
print("RESULT", rank, json.dumps(out))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_ddp_on_gloo(tmp_path):
    """Two CPU processes: the ranks draw different items (and so different losses) but end with the
    same weights, only rank 0 writes, and a resumed run gives each rank its own random state back
    (memory picks and deep updates), so both continue exactly as the uninterrupted run."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path), "qmvos"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = {}
    for line in result.stdout.splitlines():
        if line.startswith("RESULT"):
            _, rank, payload = line.split(" ", 2)
            ranks[int(rank)] = json.loads(payload)
    zero, one = ranks[0], ranks[1]
    assert zero["params"] == one["params"]
    assert zero["weights"] == one["weights"]  # gradients are averaged: one model
    assert zero["losses"] != one["losses"]  # on different data
    assert set(zero["keys"]).isdisjoint(one["keys"])  # the kit's sampler splits the items by rank
    assert zero["keys"] == zero["sampler"][:4] and one["keys"] == one["sampler"][:4]
    assert sorted(zero["sampler"] + one["sampler"]) == list(range(8))
    assert not (tmp_path / "straight-rank1").exists()  # only rank 0 writes
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == ["checkpoint.pth", "config.json", "final.pth",
                                                                           "metrics.jsonl"]
    for rank in (zero, one):  # each rank gets its own random state back, and continues exactly
        assert rank["generator_at_resume"] == rank["generator_at_stop"]
        assert rank["resumed_losses"] == rank["losses"][2:]
    assert zero["generator_at_resume"] != one["generator_at_resume"]
