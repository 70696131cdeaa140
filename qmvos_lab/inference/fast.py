"""The fast-path switches of inference: autocast, channels-last and torch.compile.

None is on by default: fp32 in the default memory format without compilation is what the parity
goldens pin. Each switch is measured by `benchmarks/speed.py`, which prints its agreement with
the fp32 default (max |dprob| and argmax agreement) next to its speed.

amp:           autocast. On a GPU, bf16 where supported (Ampere and later), fp16 otherwise; on a CPU,
               bf16 (whether it pays depends on the CPU: 1.6-1.7x faster training steps with AMX or on
               an AMD EPYC with AVX512-BF16, 0.67x on an Intel Xeon with AVX512-BF16 and no AMX, emulated
               and slower without bf16 units). `choose_amp` times both on this machine ("--amp auto").
channels_last: the network's weights in NHWC order, so oneDNN / cuDNN pick their NHWC kernels
               (fp32 either way, with another summation order: on the trained small networks max
               |dprob| ~ 1e-5 and the same argmax; pixels at a near tie may flip).
compile:       torch.compile of the key encoder, value encoder and decoder, in place (the state-dict
               keys stay those of the released networks); the first frames pay the compilation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import time

import torch
import torch.nn as nn

from ..machine import describe_cpu, read_decisions, record_decision


def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """The reduced precision that `amp` uses on `device`."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device | str, enabled: bool):
    """An autocast context for `device` (a no-op context when not enabled)."""
    device = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype(device))


def prepare_network(network: nn.Module, channels_last: bool = False, compile: bool = False,
                    dynamic: bool | None = False) -> nn.Module:
    """Apply the layout and compilation switches to `network` in place, and return it. Compiled in
    place (parts, once), so that state-dict keys stay those of the released networks; `dynamic` is
    torch.compile's (inference: fixed shapes; training passes None, PyTorch's automatic choice)."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile and not getattr(network, "_qmvos_lab_compiled", False):
        for part in (network.key_encoder, network.value_encoder, network.decoder):
            part.compile(dynamic=dynamic)
        network._qmvos_lab_compiled = True
    return network


def choose_amp(network: nn.Module, size_hw: tuple[int, int], device: torch.device | str, cache_root: str | os.PathLike,
               rounds: int = 3, log=print) -> bool:
    """Whether autocast makes `network` faster on frames of `size_hw` here: on a GPU yes (no timing);
    on a CPU the key encoder (most of a frame's cost) is timed in fp32 and bf16, interleaved, once per
    CPU, network size and frame size, and the decision is kept in `cache_root` (machine.DECISIONS)."""
    device = torch.device(device)
    if device.type != "cpu":
        return True
    cpu = describe_cpu()
    dims = network.config.dimensions() if hasattr(network.config, "dimensions") else {}
    blob = json.dumps({"inference": True, "cpu": {k: cpu[k] for k in ("model", "flags", "caps", "threads", "torch")},
                       "network": dims, "size": list(size_hw)}, sort_keys=True, default=str)
    key = "inference-" + hashlib.sha256(blob.encode()).hexdigest()[:16]
    record = read_decisions(cache_root).get(key)
    if record is None:
        frame = torch.rand(1, 3, *size_hw)  # 1 x 3 x H x W
        times = {False: [], True: []}
        with torch.inference_mode():
            for round_ in range(rounds + 1):  # the first round warms up
                for amp in (False, True):
                    tic = time.perf_counter()
                    with autocast(device, amp):
                        network.encode_key(frame)
                    if round_:
                        times[amp].append(time.perf_counter() - tic)
        medians = {amp: statistics.median(t) for amp, t in times.items()}
        record = {"amp": medians[True] < medians[False], "median_s": {"fp32": medians[False], "bf16": medians[True]},
                  "cpu": cpu, "size": list(size_hw), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        record_decision(cache_root, key, record)
    if log:
        m = record["median_s"]
        log(f"--amp auto: {'bf16' if record['amp'] else 'fp32'} (key encoder on a {size_hw[1]}x{size_hw[0]} frame: "
            f"fp32 {m['fp32'] * 1000:.0f} ms, bf16 {m['bf16'] * 1000:.0f} ms on {cpu['model']}, {cpu['class']})")
    return record["amp"]
