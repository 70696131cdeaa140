"""Learning-rate schedules: the step schedule is upstream's MultiStepLR, warm-up ramps linearly,
cosine ends at min_lr, and the scheduler state resumes exactly."""

import math

import pytest
import torch

from qmvos_lab.config import TrainConfig
from qmvos_lab.train.schedule import build_scheduler, lr_factor


def lrs(config: TrainConfig, steps: int | None = None) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    out = []
    for _ in range(steps or config.iterations):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_the_step_schedule_is_multisteplr_and_warmup_ramps_to_it():
    config = TrainConfig(iterations=10, lr=1.0, lr_steps=(0.5, 0.8), gamma=0.1)
    assert lrs(config) == pytest.approx([1] * 5 + [0.1] * 3 + [0.01] * 2)
    warm = TrainConfig(iterations=10, lr=1.0, lr_steps=(0.5, 0.8), gamma=0.1, warmup=0.4)
    assert lrs(warm) == pytest.approx([0.25, 0.5, 0.75, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_runs_from_the_peak_to_min_lr():
    config = TrainConfig(iterations=11, lr=2.0, lr_schedule="cosine", warmup=0.0, min_lr=0.1)
    values = lrs(config)
    assert values[0] == pytest.approx(2.0) and values[-1] == pytest.approx(0.2)
    assert values[5] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # half way
    assert all(a >= b for a, b in zip(values, values[1:]))
    warm = TrainConfig(iterations=100, lr_schedule="cosine", warmup=0.1, min_lr=0.0)
    assert [lr_factor(i, warm) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(50, warm) == pytest.approx(0.5 * (1 + math.cos(math.pi * 40 / 89)))


def test_a_resumed_scheduler_continues_exactly():
    config = TrainConfig(iterations=20, lr=1e-3, lr_schedule="cosine", warmup=0.2)
    straight = lrs(config)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}  # as the trainer saves
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    resumed = build_scheduler(optimizer, config)
    optimizer.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scheduler"])
    values = []
    for _ in range(13):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        resumed.step()
    assert values == straight[7:]


def test_bad_schedule_settings_are_refused():
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(warmup=1.5)
