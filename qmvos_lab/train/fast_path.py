"""The training fast path chosen by measurement: `amp=None` ("auto") and `channels_last=None` ("auto").

bf16 autocast made a CPU training step 1.6x faster on a CPU with AMX tiles and 0.67x as fast on one
with AVX-512 but no AMX (README, "Training on a CPU"), so the CPU presets do not fix it:

    config = resolve_fast_path(preset("cpu-tiny"))   # amp and channels_last now True or False

On the first call on a machine this times a few training steps of the config's own network and clip
shape in each candidate setting (fp32 / bf16 autocast x default / channels-last memory format),
interleaved so that a change in the machine's load hits every candidate alike, keeps the fastest
(by the median step time), says what it chose and why, and stores the decision in the kit's cache,
keyed by the CPU model, its flags, the instruction-set caps in force, torch's version and threads
and the step's shape, so that later runs reuse it without measuring. The resolved values, never
"auto", go into configs, checkpoints and the trained-network cache's key: a network trained in
bf16 on one CPU is not silently reused where fp32 was chosen.

On a GPU "auto" means AMP on and the default memory format (no measurement). A run shorter than
`MEASURE_FROM` iterations (a smoke run, a test) is not worth a measurement that costs tens of
seconds: there "auto" is this machine's decision when one is on file, else fp32 in the default
layout (the kit's reference arithmetic), without measuring.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..ablations import model_config
from ..cache import cache_root
from ..config import TrainConfig
from ..machine import DECISIONS, describe_cpu, read_decisions, record_decision
from ..model import build_network
from .clip_pass import PassConfig, TrainWrapper
from .data import build_dataset
from .losses import clip_loss

MEASURE_FROM = 100  # iterations: shorter runs take fp32 in the default layout without measuring
# bf16 whose probe convolution is this many times slower than fp32 is not timed at all: only the clear case
# (the probe read 0.95-1.3 on an AMD EPYC with AVX512-BF16, where a whole step is 1.7x faster in bf16;
# 1.4-1.6 with its bf16 instructions capped off, where a step is 2.1x slower; 8-46 with AVX2 only, where a
# step is 17x slower and timing one would take a minute)
PROBE_DROP = 3.0
DROP_AFTER_FIRST = 1.5  # a setting this many times slower than the best in the first round is not timed again


@dataclass(frozen=True)
class FastPath:
    amp: bool
    channels_last: bool

    @property
    def label(self) -> str:
        return ("bf16" if self.amp else "fp32") + (" + channels-last" if self.channels_last else "")


def candidates(amp: bool | None, channels_last: bool | None) -> list[FastPath]:
    """The settings to try: every value of each switch left to "auto" (None), the given value of the other."""
    amps = (False, True) if amp is None else (amp,)
    layouts = (False, True) if channels_last is None else (channels_last,)
    return [FastPath(a, c) for a in amps for c in layouts]


def clip_batches(config: TrainConfig):
    """Batches of the config's own training clips, drawn as the trainer draws them (its dataset, collated;
    the curriculum's middle): the timing includes what an iteration spends on its data."""
    dataset = build_dataset(config)
    count = 0

    def draw() -> dict:
        nonlocal count
        items = [dataset[(count * config.batch_size + k, 0.5)] for k in range(config.batch_size)]
        count += 1
        return torch.utils.data.default_collate(items)

    return draw


def time_steps(config: TrainConfig, settings: list[FastPath], rounds: int = 3, warmup: int = 1) -> dict[FastPath, list[float]]:
    """Seconds of each training iteration (drawing the config's own clips, forward, loss, backward, AdamW)
    of the config's network on the CPU, per setting; `warmup` untimed steps each, then `rounds` rounds that visit every setting once
    (but a setting `DROP_AFTER_FIRST` times slower than the best in the first round, which keeps its one
    time). The caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # a caller may be inside torch.no_grad()
        torch.manual_seed(config.seed)
        return _time_steps(config, settings, rounds, warmup)


def _time_steps(config: TrainConfig, settings: list[FastPath], rounds: int, warmup: int) -> dict[FastPath, list[float]]:
    generator = torch.Generator().manual_seed(config.seed)
    base = build_network(model_config(config.ablation, config.model_size))
    draw = clip_batches(config)
    runs = {}
    for setting in settings:
        network = copy.deepcopy(base)
        if setting.channels_last:
            network = network.to(memory_format=torch.channels_last)
        wrapper = TrainWrapper(network.train(), PassConfig(config.num_ref_frames, 0.0))
        optimizer = torch.optim.AdamW(wrapper.parameters(), lr=1e-6)
        runs[setting] = (wrapper, optimizer)

    def step(setting: FastPath) -> float:
        """One iteration as the trainer runs it: draw the clips, forward, loss, backward, AdamW."""
        wrapper, optimizer = runs[setting]
        tic = time.perf_counter()
        batch = draw()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.amp):
            out = wrapper(batch["frames"], batch["masks"], batch["selector"], generator)
            loss = clip_loss([x.float() for x in out["logits"]], [x.float() for x in out["probs"]], batch["labels"],
                             [int(n) for n in batch["num_objects"]], 0, 1, 2)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - tic

    for setting in settings:
        for _ in range(warmup):
            step(setting)
    times: dict[FastPath, list[float]] = {s: [] for s in settings}
    for round_ in range(rounds):
        for setting in settings:
            if round_ and times[setting][0] > DROP_AFTER_FIRST * min(t[0] for t in times.values()):
                continue  # far behind in the first round: it cannot win, and each of its steps is slow
            times[setting].append(step(setting))
    return times


def bf16_convolution_ratio(repeats: int = 3) -> float:
    """Seconds of a 3x3 convolution's forward and backward (64 channels, 1 x 64 x 64 x 64) under bf16
    autocast over the same in fp32, medians of `repeats` after one warm-up each: well above 1 where the CPU
    has no bf16 instructions and oneDNN emulates them, a fraction of a second to find out."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(64, 64, 3, padding=1)
        x = torch.randn(1, 64, 64, 64, requires_grad=True)

    def once(amp: bool) -> float:
        tic = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = conv(x)
        y.float().sum().backward()
        return time.perf_counter() - tic

    times = {False: [], True: []}
    for k in range(repeats + 1):
        for amp in (False, True):
            seconds = once(amp)
            if k:
                times[amp].append(seconds)
    return statistics.median(times[True]) / statistics.median(times[False])


def decision_key(config: TrainConfig, cpu: dict) -> str:
    """What the decision depends on: the CPU (model, flags, caps), torch, threads, the network size and the
    clip shape (not the variant: XMem and QMVOS chose alike wherever both were timed, README)."""
    shape = {k: getattr(config, k) for k in ("model_size", "batch_size", "num_frames", "crop_size",
                                               "max_objects", "num_ref_frames", "amp", "channels_last")}
    blob = json.dumps({"cpu": {k: cpu[k] for k in ("model", "flags", "caps", "threads", "torch")}, "step": shape},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(cache: str | os.PathLike | None = None) -> Path:
    """The file of this machine's decisions, in the kit's cache root."""
    return cache_root(cache) / DECISIONS


def _cache_root(cache: str | os.PathLike | None) -> Path:
    return cache_path(cache).parent


def choose(config: TrainConfig, cache: str | os.PathLike | None = None, rounds: int = 3,
           log: Callable[[str], None] | None = print) -> tuple[FastPath, dict]:
    """The fastest setting for `config`'s switches left to "auto" on this CPU, and the record of the
    decision (medians per setting, the CPU, when), measured once and then read from the cache."""
    cpu = describe_cpu()
    key = decision_key(config, cpu)
    record = read_decisions(_cache_root(cache)).get(key)
    if record is not None:
        chosen = FastPath(record["amp"], record["channels_last"])
        if log:
            log(f"fast path: {chosen.label} (measured on this CPU before: {record['reason']})")
        return chosen, record
    settings = candidates(config.amp, config.channels_last)
    probe = ""
    if len({s.amp for s in settings}) == 2:  # a cheap look first: where bf16 is emulated a step takes 2-17x longer
        ratio = bf16_convolution_ratio()
        if ratio > PROBE_DROP:
            settings = [s for s in settings if not s.amp]
            probe = f"bf16 not timed: a 3x3 convolution ran {ratio:.1f}x slower in bf16 than in fp32; "
    if log:
        log(f"fast path: {probe}timing {len(settings)} settings of a {config.ablation}-{config.model_size} training "
            f"step on this CPU ({cpu['model']}, {cpu['class']}), once per machine ...")
    times = time_steps(config, settings, rounds=rounds)
    medians = {s: statistics.median(t) for s, t in times.items()}
    chosen = min(settings, key=lambda s: medians[s])
    slowest = max(medians.values())
    reason = probe + ", ".join(f"{s.label} {medians[s]:.2f} s" for s in settings) + \
        f" a step (median of up to {rounds}); {chosen.label} is {slowest / medians[chosen]:.2f}x the slowest"
    record = {"amp": chosen.amp, "channels_last": chosen.channels_last, "reason": reason, "timed": config.ablation,
              "median_s": {s.label: medians[s] for s in settings},
              "min_s": {s.label: min(times[s]) for s in settings}, "cpu": cpu,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = record_decision(_cache_root(cache), key, record)
    if log:
        log(f"fast path: {chosen.label} ({reason}; kept in {path})")
    return chosen, record


def resolve_fast_path(config: TrainConfig, cache: str | os.PathLike | None = None,
                      device: torch.device | str | None = None,
                      log: Callable[[str], None] | None = print) -> TrainConfig:
    """`config` with `amp` and `channels_last` resolved (True/False): as given when set, else measured
    on a CPU (`choose`), else AMP on and the default layout on a GPU."""
    if config.amp is not None and config.channels_last is not None:
        return config
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cpu":
        chosen = FastPath(True if config.amp is None else config.amp,
                          False if config.channels_last is None else config.channels_last)
    elif config.iterations < MEASURE_FROM and decision_key(config, describe_cpu()) not in \
            read_decisions(_cache_root(cache)):
        chosen = FastPath(bool(config.amp), bool(config.channels_last))  # None -> False: fp32, default layout
    else:
        chosen, _ = choose(config, cache, log=log)
    return dataclasses.replace(config, amp=chosen.amp, channels_last=chosen.channels_last)


def step_seconds(config: TrainConfig, cache: str | os.PathLike | None = None) -> float:
    """Seconds of one training iteration of `config` (amp / channels_last as given, "auto" included) on
    this CPU in the setting it resolves to: the fastest of the decision's timed iterations (clips drawn
    included), else timed now. The timing's first iterations still warm up: on 2 cores a whole run's
    iterations averaged 0.78x (AVX-512 with bf16) and 0.86x (AVX2 only, emulated) of this figure."""
    resolved = resolve_fast_path(config, cache, device="cpu")
    label = FastPath(resolved.amp, resolved.channels_last).label
    record = read_decisions(_cache_root(cache)).get(decision_key(config, describe_cpu())) or {}
    for figure in ("min_s", "median_s"):
        if label in record.get(figure, {}):
            return record[figure][label]
    times = time_steps(resolved, [FastPath(resolved.amp, resolved.channels_last)], rounds=3)
    return min(next(iter(times.values())))
