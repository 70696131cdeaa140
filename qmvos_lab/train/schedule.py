"""Learning-rate schedules: the multiplier of the base lr at each iteration.

"step"   XMem's MultiStepLR: x gamma at each of `lr_steps` (fractions of the iterations).
"cosine" half a cosine from 1 down to `min_lr` (a fraction of the base lr) at the last step.
Both may start with a linear warm-up over the first `warmup` fraction of the iterations (from
1 / (warm-up iterations) up to 1), which keeps the first Adam steps of a fresh network small.
"""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig


def lr_factor(iteration: int, config: TrainConfig) -> float:
    """The lr multiplier for the optimiser step taken after `iteration` steps (0-based)."""
    total = config.iterations
    warmup = int(config.warmup * total)
    ramp = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    if config.lr_schedule == "cosine":
        progress = min(1.0, max(0, iteration - warmup) / max(1, total - 1 - warmup))  # 1 at the last step
        return ramp * (config.min_lr + (1 - config.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
    passed = sum(iteration >= int(f * total) for f in config.lr_steps)
    return ramp * config.gamma ** passed


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """MultiStepLR for the plain step schedule (as upstream, and as older checkpoints saved it);
    otherwise a LambdaLR over `lr_factor`. Either state is the iteration count: resume is exact."""
    if config.lr_schedule == "step" and config.warmup == 0:
        milestones = [int(f * config.iterations) for f in config.lr_steps]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, config))
