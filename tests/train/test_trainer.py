"""The trainer: the pass through DDP-style dispatch, determinism, exact resume, checkpoints, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qmvos_lab.checkpoints import load_checkpoint
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


@pytest.mark.parametrize("ablation", ["xmem", "qmvos"])
def test_same_seed_same_losses(tmp_path, ablation):
    first = Trainer(preset("cpu-tiny", ablation=ablation, **TINY), tmp_path / "a", progress=False).train()
    second = Trainer(preset("cpu-tiny", ablation=ablation, **TINY), tmp_path / "b", progress=False).train()
    assert losses(first) == losses(second) and len(first) == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in first)


def test_resume_continues_exactly_and_writes_the_run_folder(tmp_path):
    straight = Trainer(preset("cpu-tiny", ablation="qmvos", **TINY), tmp_path / "straight", progress=False).train()
    config = preset("cpu-tiny", ablation="qmvos", **{**TINY, "iterations": 4})
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
    straight_final = torch.load(tmp_path / "straight" / "final.pth", weights_only=True)["network"]
    for name, value in final.state_dict().items():
        torch.testing.assert_close(value, straight_final[name], rtol=0, atol=0)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


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


@pytest.mark.slow
@pytest.mark.parametrize("ablation", ["xmem", "qmvos"])
def test_two_process_ddp_on_gloo(tmp_path, ablation):
    script = tmp_path / "ddp.py"
    script.write_text(
        "from qmvos_lab.train.presets import preset\n"
        "from qmvos_lab.train.trainer import Trainer\n"
        f"config = preset('cpu-tiny', ablation={ablation!r}, **{{**{TINY!r}, 'iterations': 2}})\n"
        f"history = Trainer(config, {str(tmp_path / 'run')!r}, progress=False).train()\n"
        "import torch.distributed as dist\n"
        "print('rank', dist.get_rank(), 'of', dist.get_world_size(), 'losses', [h['loss'] for h in history])\n"
        "dist.destroy_process_group()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2" in result.stdout and "rank 1 of 2" in result.stdout
    assert (tmp_path / "run" / "final.pth").is_file()
