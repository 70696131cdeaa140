"""Trained networks, cached: `trained("qmvos-small")` returns a small QMVOS trained on the
generated set with a CPU preset, in eval mode, training it once (with a progress bar) when no
cached checkpoint exists and loading it in seconds afterwards.

Names are `<variant>-small`, with every variant of `ablations.ABLATIONS` (the XMem baseline and
QMVOS Table 3): "xmem-small", "qmvos-small", "sim-f16-small", "no-interaction-small", ...

The cache folder is `cache.trained_dir()` ($QMVOS_LAB_CACHE/trained, see cache.py). Each entry
is keyed by a hash of everything that determines the weights: the model config, the training
config (preset, iterations, seed, ...), and `RECIPE_VERSION`, which changes whenever the training
code changes what it learns. Entries are written atomically; a run that was interrupted resumes
from its checkpoint; a corrupt entry is retrained with a one-line warning.

Smoke mode (`smoke=True`; `trained` asks `smoke_mode()`, the environment variable QMVOS_LAB_SMOKE=1,
when not told) trains a few iterations only, so that notebooks and tests run quickly; it is a
different cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .ablations import ABLATIONS, model_config
from .cache import cache_root, cache_setting, check_cache, locks_dir, trained_dir
from .checkpoints import load_checkpoint
from .locks import entry_lock
from .config import ModelConfig, TrainConfig
from .errors import CheckpointError, UserError
from .train.fast_path import resolve_fast_path
from .train.presets import PRESETS, preset

# Bump when a change to the training code (recipe, data, losses) changes the weights it produces.
RECIPE_VERSION = 3  # resolved amp / channels_last are in the key, so the move to "auto" needs no bump
SIZE = "small"
SMOKE_ITERATIONS = 12
DEFAULT_PRESET = "cpu-tiny"


def smoke_mode() -> bool:
    """True when the environment asks for the fast, tiny version of everything (QMVOS_LAB_SMOKE=1)."""
    return os.environ.get("QMVOS_LAB_SMOKE", "").strip().lower() in ("1", "true", "yes", "on")


def names() -> list[str]:
    """Every name `trained` knows."""
    return [f"{variant}-{SIZE}" for variant in ABLATIONS]


def variant_of(name: str) -> str:
    suffix = f"-{SIZE}"
    variant = name[: -len(suffix)] if name.endswith(suffix) else name
    if variant not in ABLATIONS:
        raise UserError(f"unknown trained network {name!r}; choose from {', '.join(names())}")
    return variant


@dataclass
class Entry:
    """One cached training run: where it lives and what determines it."""

    name: str
    train: TrainConfig
    folder: Path
    model: ModelConfig | None = None  # None: the named ablation's (train.ablation at train.model_size)

    @property
    def checkpoint(self) -> Path:
        return self.folder / "final.pth"


def training_config(name: str, preset_name: str = DEFAULT_PRESET, seed: int = 0, smoke: bool = False,
                    **overrides) -> TrainConfig:
    """The TrainConfig behind a cached network (`smoke` shortens it to a few iterations). The
    environment is not read here: entry points (`trained`, the commands) pass `smoke_mode()`."""
    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; choose from {', '.join(PRESETS)}")
    fields = {"ablation": variant_of(name), "model_size": SIZE, "seed": seed, "name": name, **overrides}
    if smoke:
        fields.update(iterations=SMOKE_ITERATIONS, log_every=1, checkpoint_every=SMOKE_ITERATIONS)
    return preset(preset_name, **fields)


_SAID: set[str] = set()


def say_once(line: str) -> None:
    """Print `line` the first time this process is told it (a plan of 24 runs names its fast path once)."""
    if line not in _SAID:
        _SAID.add(line)
        print(line)


def entry_for(config: TrainConfig, cache: str | os.PathLike | None = None,
              model: ModelConfig | None = None) -> Entry:
    """The cache entry of a training config: a folder named after the network and a hash of the
    model config, the training config and the recipe version (in `cache_root(cache)`). `model`
    trains a network that no name of ABLATIONS describes (the ablation runner's custom variants).
    The config's fast path left to "auto" is resolved first (measured once per machine,
    train/fast_path.py), so that the key holds the precision the network is trained in."""
    config = resolve_fast_path(config, cache, log=say_once)
    named = model_config(config.ablation, config.model_size)
    model = None if model is None or model == named else model
    train = {k: v for k, v in config.to_dict().items() if k not in ("name", "workers", "tensorboard")}
    blob = json.dumps({"model": (model or named).to_dict(), "train": train, "recipe": RECIPE_VERSION},
                      sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return Entry(config.name, config, trained_dir(cache) / f"{config.name}-{digest}", model)


def trained(name: str = "qmvos-small", preset_name: str = DEFAULT_PRESET, seed: int = 0, *,
            smoke: bool | None = None, progress: bool = True, device: str = "cpu",
            cache: str | os.PathLike | None = None, probe=None, **overrides):
    """A trained network in eval mode (see the module docstring). `overrides` are TrainConfig
    fields (e.g. iterations=400); they are part of the cache key. The network's `cache_folder`
    holds its run (config.json, metrics.jsonl, final.pth, info.json). `smoke` None: `smoke_mode()`.
    probe: passed to the Trainer when the network has to be trained (e.g. `mechanism.MechanismProbe`;
    its numbers join metrics.jsonl); not part of the cache key, so a cached network keeps the log it
    was trained with."""
    smoke = smoke_mode() if smoke is None else smoke
    entry = entry_for(training_config(name, preset_name, seed, smoke, **overrides), cache)
    network = load_entry(entry, device)
    if network is not None:
        return network
    check_cache(cache_root(cache), cache_setting(cache))  # before training: a file or a read-only folder
    with entry_lock(entry.folder, locks_dir(cache)):  # another process training this entry: wait, then reuse its network
        network = load_entry(entry, device)
        if network is None:
            train_entry(entry, progress, probe)
            network = load_entry(entry, device)
    if network is None:
        raise CheckpointError(f"training {name} did not produce {entry.checkpoint}")
    return network


def load_entry(entry: Entry, device: str = "cpu"):
    """The cached network of `entry`, or None when there is none (or it is corrupt: then the entry is
    cleared with a warning, so that it is trained again)."""
    if not entry.checkpoint.is_file():
        return None
    try:
        network = load_checkpoint(entry.checkpoint, device=device)
    except (CheckpointError, OSError, RuntimeError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        warnings.warn(f"cached network {entry.checkpoint} is unreadable ({first_line}); training it again",
                      stacklevel=3)
        shutil.rmtree(entry.folder, ignore_errors=True)
        return None
    network.training_time_s = read_info(entry).get("training_time_s")
    network.cache_folder = entry.folder
    return network.eval()


def read_info(entry: Entry) -> dict:
    path = entry.folder / "info.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def train_entry(entry: Entry, progress: bool = True, probe=None) -> Path:
    """Train (or resume) the run of `entry` in its folder (with the Trainer's optional `probe`);
    returns final.pth."""
    import torch

    from .atomic import atomic_path
    from .train.trainer import Trainer

    resume = (entry.folder / "checkpoint.pth").is_file()
    if resume:  # a run that was stopped: continue from its checkpoint
        print(f"resuming the training of {entry.name} in {entry.folder}")
    elif progress:
        print(f"training {entry.name} ({entry.train.iterations} iterations of preset-based training; "
              f"cached in {entry.folder})")
    start = time.perf_counter()
    with torch.enable_grad():  # a caller inside torch.no_grad() (a notebook cell) still trains
        trainer = Trainer(entry.train, entry.folder, resume=resume, progress=progress, probe=probe,
                          network=entry.model)
        trainer.train()
    if trainer.stop_requested:
        raise KeyboardInterrupt(f"training of {entry.name} interrupted; call again to resume it")
    info = {"name": entry.name, "iterations": trainer.iteration, "training_time_s": time.perf_counter() - start,
            "train": entry.train.to_dict(), "recipe": RECIPE_VERSION}
    with atomic_path(entry.folder / "info.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
    return entry.checkpoint
