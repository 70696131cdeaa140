"""Load a checkpoint into the network it describes (strictly), convert one (the single-object stage-0
weights; QMVOS initialised from XMem), and save a QMVOS Lab checkpoint.

The single-object stage-0 weights (4-channel first value conv) are zero-padded to 5 channels, as the
official evaluation does, which leaves every output unchanged while the extra channel is 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..atomic import atomic_path
from ..config import ModelConfig
from ..errors import CheckpointError
from ..model import XMem, build_network
from .layout import VALUE_CONV, CheckpointInfo, inspect_state_dict
from .reading import read_checkpoint_file
from .sources import resolve_source


def pad_single_object_value_conv(state: dict) -> dict:
    """Zero-pad the first value conv from RGB+mask (4 ch) to RGB+mask+others (5 ch).

    With a zero kernel for the new channel the network ignores the other objects' masks, so the
    multi-object network computes exactly what the single-object one did (as the official eval).
    """
    weight = state[VALUE_CONV]
    if weight.shape[1] != 4:
        return state
    pad = torch.zeros(weight.shape[0], 1, *weight.shape[2:], dtype=weight.dtype)  # Cout x 1 x 7 x 7
    return {**state, VALUE_CONV: torch.cat([weight, pad], 1)}


def load_state_dict_checked(model: nn.Module, state: dict, source: str = "<state dict>") -> None:
    """`load_state_dict(strict=True)` with a one-line error naming the first offending keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (checkpoint vs network), first: {'; '.join(mismatched[:3])}")
    if missing:
        problems.append(f"{len(missing)} missing keys, first: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, first: {', '.join(unexpected[:3])}")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the network: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(source: str | os.PathLike, device: str | torch.device = "cpu",
                    cache_dir: str | os.PathLike | None = None, progress: bool = True) -> XMem:
    """Build the network that a checkpoint describes and load it strictly (eval mode).

    The returned model carries `model.checkpoint_info` (variant, config, conversion notes).
    """
    path = resolve_source(source, cache_dir, progress)
    state, saved_config, inference_size = read_checkpoint_file(path)
    info = inspect_state_dict(state, str(source), saved_config)
    state = pad_single_object_value_conv(state)
    model = build_network(info.config)
    load_state_dict_checked(model, state, str(source))
    model.checkpoint_info = info
    model.inference_size = inference_size
    return model.to(device).eval()


def qmvos_from_xmem(source, config: ModelConfig | None = None, progress: bool = True):
    """A QMVOS network initialised from an XMem checkpoint: every shared weight is copied, the new
    modules (SIM, QCIM, projections) keep their fresh initialisation, and XMem's prediction conv,
    which QMVOS replaces by its queries, is left out. Returns (model, report dict)."""
    xmem = load_checkpoint(source, progress=progress)
    base = xmem.config
    if base.queries:
        raise CheckpointError(f"checkpoint {source} is already a QMVOS network; load it with load_checkpoint")
    config = config or ModelConfig(**base.dimensions(), queries=True)
    if config.dimensions() != base.dimensions():
        raise CheckpointError(f"checkpoint {source} has dimensions {base.dimensions()} that differ from the "
                              f"requested QMVOS config's {config.dimensions()}")
    model = build_network(config)
    target = model.state_dict()
    shared = {k: v for k, v in xmem.state_dict().items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(shared, strict=False)
    report = {"copied": sorted(shared), "unused": sorted(set(xmem.state_dict()) - set(shared)),
              "new": sorted(set(target) - set(shared))}
    model.checkpoint_info = CheckpointInfo(str(source), "qmvos (initialised from XMem)", config,
                                           [f"unused XMem weights: {', '.join(report['unused'])}",
                                            f"{len(report['new'])} new QMVOS tensors freshly initialised"])
    return model, report


def save_checkpoint(model: XMem, path: str | os.PathLike, **extra) -> Path:
    """Write a QMVOS Lab checkpoint (network + config + its inference size + `extra`) atomically: temp
    file, then rename."""
    content = {"format": "qmvos-lab", "config": model.config.to_dict(), "network": model.state_dict(),
               "inference_size": int(getattr(model, "inference_size", -1)), **extra}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(content, file)  # through a Python file: a full disk is OSError(ENOSPC), not a bare RuntimeError
    return Path(path)
