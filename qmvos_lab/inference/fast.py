"""The fast-path switches of inference: autocast, channels-last and torch.compile.

None is on by default: fp32 in the default memory format without compilation is what the parity
goldens pin. Each switch is measured by `benchmarks/speed.py`, which prints its agreement with
the fp32 default (max |dprob| and argmax agreement) next to its speed.

amp:           autocast. On a GPU, bf16 where supported (Ampere and later), fp16 otherwise; on a CPU,
               bf16 (it pays on CPUs with AMX or AVX512-BF16, which oneDNN uses for bf16 convolutions;
               elsewhere it is emulated and slower).
channels_last: the network's weights in NHWC order, so oneDNN / cuDNN pick their NHWC kernels
               (fp32 either way, with another summation order: on the trained small networks max
               |dprob| ~ 1e-5 and the same argmax; pixels at a near tie may flip).
compile:       torch.compile of the key encoder, value encoder and decoder, in place (the state-dict
               keys stay those of the released networks); the first frames pay the compilation.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


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


def prepare_network(network: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Apply the layout and compilation switches to `network` in place, and return it."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile and not getattr(network, "_qmvos_lab_compiled", False):
        for part in (network.key_encoder, network.value_encoder, network.decoder):
            part.compile(dynamic=False)
        network._qmvos_lab_compiled = True
    return network
