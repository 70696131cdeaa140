"""The files of a training run that are read back: metrics.jsonl, and checkpoint.pth for resuming
(checked on load: a truncated, weights-only or foreign file is one UserError), with numpy's random
state stored as tensors so that the checkpoint loads with weights_only=True.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError


def _numpy_state_to_tensors(state) -> dict:
    """numpy's RNG state as tensors and numbers, so that checkpoints load with weights_only=True."""
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_tensors(state: dict):
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def read_training_checkpoint(path: Path, network) -> dict:
    """A run's checkpoint.pth for resuming, with one-line UserErrors for a truncated or foreign file
    and for a network other than `network` (loaded with weights_only=True: no code can run)."""
    restart = "restart the run with --overwrite"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever the loader raises, this file cannot be resumed from
        raise UserError(f"cannot resume from {path}: the file is truncated or not a PyTorch checkpoint "
                        f"({type(error).__name__}); {restart}") from None
    needed = ("network", "optimizer", "scheduler", "scaler", "iteration", "epoch", "batch_in_epoch", "rng")
    if not isinstance(state, dict) or any(key not in state for key in needed):
        raise UserError(f"cannot resume from {path}: it is not a training checkpoint (a final.pth or a released "
                        f"network holds weights only); {restart}")
    try:
        saved = type(network.config).from_dict(state.get("config") or {})
    except (TypeError, ValueError):
        saved = None
    if saved != network.config:
        trained = state.get("train_config") or {}
        was = f"{trained.get('ablation', '?')} ({trained.get('model_size', '?')} size)"
        raise UserError(f"cannot resume from {path}: it holds a {was} network, not the one this command builds; "
                        f"resume with the run's --ablation/--model and settings, or {restart}")
    return state
