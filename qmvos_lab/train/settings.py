"""`--set key=value` for training: each value parsed by the type of its `TrainConfig` field, and
every setting checked against its range, with one-line errors that name the setting.

    parse_settings(["lr=1e-4", "lr_steps=0.5,0.8"])  ->  {"lr": 0.0001, "lr_steps": (0.5, 0.8)}
    check_config(config)                             # ranges, after the preset and overrides
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from pathlib import Path

from ..ablations import ABLATIONS
from ..checkpoints import OFFICIAL_CHECKPOINTS
from ..config import MODEL_SIZES, TrainConfig
from ..errors import UserError, not_a_file

TRUE, FALSE, NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "null", "auto")
EXAMPLES = {int: "an integer, e.g. {name}=10", float: "a number, e.g. {name}=1e-4",
            bool: "true or false, e.g. {name}=true", str: "text"}


def _fields() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _parse_one(name: str, raw: str, kind) -> object:
    """`raw` as a value of type `kind` (int, float, bool, str, tuple[float, ...], X | None)."""
    args = typing.get_args(kind)
    if type(None) in args:  # optional: "none" (or "auto") is None, anything else the other type
        if raw.strip().lower() in NONE:
            return None
        (kind,) = [a for a in args if a is not type(None)]
    if typing.get_origin(kind) is tuple:
        items = [item for item in re.split(r"[,\s]+", raw.strip().strip("[]()")) if item]
        try:
            return tuple(_parse_one(name, item, typing.get_args(kind)[0]) for item in items)
        except UserError:
            raise UserError(f"--set {name}={raw}: {name} must be numbers separated by commas, "
                            f"e.g. {name}=0.5,0.8") from None
    text = raw.strip()
    if kind is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
    elif kind is int:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    elif kind is float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
    else:
        return raw
    raise UserError(f"--set {name}={raw}: {name} must be {EXAMPLES[kind].format(name=name)}")


def parse_settings(pairs: list[str]) -> dict:
    """--set key=value ... -> {key: value of the field's type}; unknown keys and bad values are refused."""
    fields = _fields()
    settings = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--set {pair}: expected key=value, e.g. --set lr=1e-4")
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known settings: {', '.join(fields)}"
            raise UserError(f"--set {pair}: unknown training setting {name!r}; {hint}")
        settings[name] = _parse_one(name, raw, fields[name])
        check_setting(name, settings[name], raw)
    return settings


def _positive(value) -> bool:
    return value >= 1 if isinstance(value, int) else value > 0


# setting -> (test, what it must be)
RANGES = {
    "iterations": (_positive, "a positive integer"),
    "batch_size": (_positive, "a positive integer"),
    "lr": (_positive, "positive"),
    "lr_steps": (lambda v: all(0 < f < 1 for f in v) and list(v) == sorted(v),
                 "increasing fractions of the iterations, each between 0 and 1 (e.g. lr_steps=0.5,0.8)"),
    "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "weight_decay": (lambda v: v >= 0, "zero or positive"),
    "grad_clip": (_positive, "positive"),
    "num_frames": (lambda v: v >= 2, "at least 2 (the first frame is given)"),
    "num_ref_frames": (_positive, "a positive integer"),
    "crop_size": (lambda v: v >= 16 and v % 16 == 0, "a positive multiple of 16 (the network's stride)"),
    "max_objects": (_positive, "a positive integer"),
    "skip_scale": (_positive, "positive"),
    "inference_size": (lambda v: v == -1 or v >= 16, "-1 (the generated frames' own size) or a size of at least 16 "
                       "pixels, e.g. inference_size=192"),
    "crop_scale": (lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1,
                   "two area fractions low,high with 0 < low <= high <= 1 (e.g. crop_scale=0.36,1)"),
    "start_warm": (lambda v: 0 <= v <= 1, "a fraction of the iterations, between 0 and 1"),
    "end_warm": (lambda v: 0 <= v <= 1, "a fraction of the iterations, between 0 and 1"),
    "deep_update_prob": (lambda v: 0 <= v <= 1, "a probability, between 0 and 1"),
    "samples_per_epoch": (_positive, "a positive integer"),
    "workers": (lambda v: v >= 0, "zero or a positive integer"),
    "seed": (lambda v: v >= 0, "zero or a positive integer"),
    "log_every": (_positive, "a positive integer"),
    "checkpoint_every": (_positive, "a positive integer"),
    "model_size": (lambda v: v in MODEL_SIZES, f"one of {', '.join(MODEL_SIZES)}"),
    "ablation": (lambda v: v in ABLATIONS, f"one of {', '.join(ABLATIONS)}"),
    "name": (lambda v: bool(v) and not re.search(r"[/\\]", v) and v not in (".", ".."),
             "a plain folder name (no slashes)"),
}


def check_setting(name: str, value, raw: str | None = None) -> None:
    """A one-line UserError when `value` is out of its range (`raw`: the value as the user typed it)."""
    if name in RANGES and not RANGES[name][0](value):
        shown = raw if raw is not None else ",".join(map(str, value)) if isinstance(value, tuple) else value
        raise UserError(f"--set {name}={shown}: {name} must be {RANGES[name][1]}")


def check_config(config: TrainConfig, world: int = 1) -> None:
    """Every setting of `config` in its range, and the settings that depend on each other. `world`: the
    number of training processes (torchrun's WORLD_SIZE, read by the command), which share each epoch."""
    for name in RANGES:
        check_setting(name, getattr(config, name))
    if config.start_warm > config.end_warm:
        raise UserError(f"start_warm={config.start_warm} is after end_warm={config.end_warm}; "
                        "the bootstrapped cross-entropy warms up from start_warm to end_warm")
    if config.samples_per_epoch < config.batch_size * world:
        raise UserError(f"samples_per_epoch={config.samples_per_epoch} is below batch_size={config.batch_size}"
                        f"{f' x {world} processes' if world > 1 else ''}: an epoch would hold no batch; "
                        "raise samples_per_epoch")
    if config.init not in ("scratch", "imagenet") and config.init not in OFFICIAL_CHECKPOINTS \
            and not config.init.startswith(("http://", "https://")):
        why = not_a_file(Path(config.init).expanduser())
        if why is not None:
            why = "no such checkpoint file" if why == "not found" else why
            raise UserError(f"init={config.init}: {why}; give scratch, imagenet, a release name "
                            f"({', '.join(OFFICIAL_CHECKPOINTS)}), a URL or a .pth file")
    for name in ("resnet50", "resnet18"):
        value = getattr(config, name)
        why = not_a_file(Path(value).expanduser()) if value else None
        if why is not None:
            why = "no such file" if why == "not found" else why
            raise UserError(f"{name}={value}: {why}; give a torchvision {name} state-dict file "
                            "(or leave it empty to download it)")
