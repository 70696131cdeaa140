"""The specs of an ablation: variants (Table 3 names or custom ModelConfigs), seeds, and the plan of
(variant, seed) runs (`RunSpec`: everything one run needs, picklable for workers and Slurm)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import zoo
from ..ablations import ABLATIONS
from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from ..train.data import check_data
from ..train.fast_path import resolve_fast_path
from ..train.settings import check_config
from .eval_set import EvalSet


@dataclass(frozen=True)
class Variant:
    """A Table 3 variant by name (ABLATIONS), or a custom one: ModelConfig `overrides` on top of
    the switches of the named ablation `base`."""

    name: str
    base: str | None = None  # None: `name` is in ABLATIONS
    overrides: tuple = ()  # sorted (field, value) pairs

    def model(self, size: str) -> ModelConfig | None:
        """The custom ModelConfig (None for a named ablation)."""
        if self.base is None:
            return None
        try:
            return ModelConfig.of_size(size, **{**ABLATIONS[self.base], **dict(self.overrides)})
        except (TypeError, ValueError) as error:
            raise UserError(f"variant {self.name!r}: {error}") from None


FIELD_KINDS = {"int": (int, "an integer"), "bool": (bool, "true or false"), "str": (str, "a word")}


def _check_field_type(variant: str, key: str, value) -> None:
    """A custom variant's ModelConfig value has its field's type (`hidden_dim=abc` is refused by name)."""
    kind = {f.name: str(f.type) for f in dataclasses.fields(ModelConfig)}[key]
    if kind not in FIELD_KINDS:  # tuples: checked by ModelConfig itself
        return
    expected, words = FIELD_KINDS[kind]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"variant {variant!r}: {key}={value!r}: {key} must be {words}")


def variants_from(variants: Sequence[str] | Mapping[str, Mapping] | str) -> list[Variant]:
    """Names of ABLATIONS (a list or "a,b,c"), or a mapping name -> ModelConfig overrides (with an
    optional "base" ablation, default qmvos; an empty mapping for a named ablation)."""
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    items = variants.items() if isinstance(variants, Mapping) else ((v, None) for v in variants)
    out = []
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name, overrides in items:
        if not isinstance(name, str) or not name:
            raise UserError(f"variant names must be non-empty strings, got {name!r}")
        if not overrides:
            if name not in ABLATIONS:
                raise UserError(f"unknown variant {name!r}; choose from {', '.join(ABLATIONS)}, or define your own "
                                "from ModelConfig fields (CLI: --custom NAME FIELD=VALUE; API: {NAME: {FIELD: VALUE}})")
            out.append(Variant(name))
            continue
        overrides = dict(overrides)
        base = overrides.pop("base", "qmvos")
        if base not in ABLATIONS:
            raise UserError(f"variant {name!r}: unknown base {base!r}; choose from {', '.join(ABLATIONS)}")
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise UserError(f"variant {name!r}: unknown ModelConfig field(s) {unknown}; "
                            f"known: {', '.join(sorted(fields))}")
        if name in ABLATIONS:
            raise UserError(f"variant {name!r} is a Table 3 name; give the custom variant another name")
        for key in ("sim_scales", "decoder_dims"):  # "f16,f8" or [..] -> a tuple
            value = overrides.get(key)
            if isinstance(value, str):
                items = [x.strip() for x in value.split(",") if x.strip()]
                overrides[key] = tuple(int(x) if x.isdigit() else x for x in items)
        for key, value in overrides.items():
            _check_field_type(name, key, value)
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()))
        out.append(Variant(name, base, frozen))
        out[-1].model("small")  # a value that ModelConfig refuses fails here, before any training
    if not out:
        raise UserError("no variants given; choose from " + ", ".join(ABLATIONS))
    names = [v.name for v in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"variant(s) {duplicates} given twice; list each once")
    return out


def parse_pairs(pairs: Sequence[str], option: str) -> dict:
    """KEY=VALUE strings (a command line's --custom / --slurm) -> {key: value}; values are JSON
    where they parse (numbers, true/false, lists), text otherwise."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} {pair}: expected KEY=VALUE, e.g. hidden_dim=0")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def seeds_from(seeds: Sequence[int] | str | int) -> list[int]:
    """Seeds as a list of distinct non-negative integers, from a list, "0,1,2" or one integer."""
    raw = [s.strip() for s in seeds.split(",") if s.strip()] if isinstance(seeds, str) else (
        [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds))
    out = []
    for s in raw:
        try:
            value = int(s)
            ok = value >= 0 and (not isinstance(s, float) or s == value) and not isinstance(s, bool)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"bad seed {s!r} in seeds {seeds!r}; give distinct non-negative integers such as 0,1,2")
        out.append(value)
    if not out:
        raise UserError("no seeds given; give distinct non-negative integers such as 0,1,2")
    if len(set(out)) != len(out):
        raise UserError(f"seeds {seeds!r} repeat a seed; give distinct non-negative integers such as 0,1,2")
    return out


@dataclass
class RunSpec:
    """Everything one (variant, seed, preset) run needs; picklable, for worker processes and Slurm."""

    variant: Variant
    seed: int
    preset: str
    train: TrainConfig
    eval_set: EvalSet
    cache: str
    model: ModelConfig | None = None
    progress: bool = False
    threads: int | None = None  # torch CPU threads in a worker

    @property
    def entry(self) -> zoo.Entry:
        """The run's trained-network cache entry (keyed by its model and training configs)."""
        return zoo.entry_for(self.train, self.cache, self.model)

    @property
    def result_path(self) -> Path:
        """The run's stored evaluation, in its cache entry, named by the eval set's key."""
        return self.entry.folder / f"eval-{self.eval_set.key()}.json"


def plan(variants, seeds, preset: str, eval_set: EvalSet, overrides: Mapping | None = None,
         smoke: bool | None = None, cache=None, progress: bool = False) -> list[RunSpec]:
    """The RunSpecs of variants x seeds (one-line errors for bad names, seeds, presets, settings)."""
    variants, seeds = variants_from(variants), seeds_from(seeds)
    cache = str(zoo.cache_root(cache).resolve())
    specs = []
    for variant in variants:
        for seed in seeds:
            try:
                train = zoo.training_config(variant.base or variant.name, preset, seed,
                                            zoo.smoke_mode() if smoke is None else smoke, **dict(overrides or {}))
            except TypeError as error:  # unknown TrainConfig fields come as ValueError from preset()
                raise UserError(f"training settings: {error}") from None
            except ValueError as error:
                raise UserError(str(error)) from None
            check_config(train)
            check_data(train)
            # "auto" precision and layout decided here, once: worker processes (one thread each) and Slurm
            # jobs would otherwise decide again for their own thread count and train another cache entry
            train = resolve_fast_path(train, cache, log=zoo.say_once)
            train.name = f"{variant.name}-{train.model_size}"  # "<variant>-small", as zoo.trained names it
            specs.append(RunSpec(variant, seed, preset, train, eval_set, cache, variant.model(train.model_size),
                                 progress))
    return specs
