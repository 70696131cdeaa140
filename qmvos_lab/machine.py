"""What this CPU is, in the terms that decide how fast the kit trains on it.

    describe_cpu()  ->  {"model": "AMD EPYC ...", "class": "AVX-512 with bf16, no AMX",
                         "flags": ["avx2", "avx512_bf16", "avx512f"], "caps": {...}, "threads": 2, ...}

oneDNN runs bf16 convolutions on AMX tiles where the CPU has them (Intel Sapphire Rapids and later),
on AVX512-BF16 instructions where it has those (Intel Cooper Lake, AMD Zen 4), and emulates them
otherwise. Whether bf16 autocast pays therefore depends on the CPU class, and two environment
variables can cap what a run uses, which is how the benchmarks emulate a smaller CPU on a bigger one:
`ONEDNN_MAX_CPU_ISA` (oneDNN's convolutions and matrix products, e.g. AVX512_CORE_BF16 turns AMX off,
AVX2 leaves AVX2 only) and `ATEN_CPU_CAPABILITY` (ATen's own vectorised kernels, e.g. avx2).
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import torch

# the flags that matter for the training step, as /proc/cpuinfo (and lscpu) spell them
FLAGS = ("amx_tile", "amx_bf16", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2", "fma")
CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
# oneDNN ISA names from the smallest to the largest (its documented ONEDNN_MAX_CPU_ISA values)
_ISA_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
              "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
              "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "ALL")


def _cpuinfo() -> tuple[str, set[str], int | None]:
    """The CPU's model name, flags and physical cores, from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine(), set(), None
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    # one (physical id, core id) pair per physical core; hyperthreads share theirs
    cores = set(re.findall(r"^physical id\s*:\s*(\d+)$.*?^core id\s*:\s*(\d+)$", text, re.M | re.S))
    return ((model.group(1).strip() if model else platform.machine()), set(flags.group(1).split() if flags else ()),
            len(cores) or None)


def cpu_class(flags: set[str], onednn_cap: str | None = None) -> str:
    """The CPU class that decides bf16's cost: with AMX / AVX-512 with bf16, no AMX / AVX-512 without
    bf16 / AVX2 only / older; `onednn_cap` (ONEDNN_MAX_CPU_ISA) lowers it as oneDNN would."""
    amx, bf16 = {"amx_tile", "amx_bf16"} <= flags, "avx512_bf16" in flags
    avx512, avx2 = "avx512f" in flags, "avx2" in flags
    if onednn_cap:
        cap = onednn_cap.strip().upper()
        rank = _ISA_ORDER.index(cap) if cap in _ISA_ORDER else len(_ISA_ORDER)
        amx = amx and rank >= _ISA_ORDER.index("AVX10_1_512_AMX")
        bf16 = bf16 and rank >= _ISA_ORDER.index("AVX512_CORE_BF16")
        avx512 = avx512 and rank >= _ISA_ORDER.index("AVX512_CORE")
    if amx:
        return "AMX"
    if avx512 and bf16:
        return "AVX-512 with bf16, no AMX"
    if avx512:
        return "AVX-512 without bf16"
    return "AVX2 only" if avx2 else "below AVX2"


def describe_cpu() -> dict:
    """The CPU's model, class, relevant flags, the caps in force and torch's threads (JSON-ready)."""
    model, flags, physical = _cpuinfo()
    caps = {name: os.environ[name] for name in CAPS if os.environ.get(name)}
    return {"model": model, "class": cpu_class(flags, caps.get("ONEDNN_MAX_CPU_ISA")),
            "flags": sorted(f for f in FLAGS if f in flags), "caps": caps, "threads": torch.get_num_threads(),
            "cores": os.cpu_count(), "physical_cores": physical, "torch": torch.__version__}


def use_physical_cores() -> int:
    """One torch thread per physical core (hyperthreads share a core's matrix units, and oversubscribed
    threads wait on each other), unless OMP_NUM_THREADS or MKL_NUM_THREADS already set a number. Returns
    the threads in use. Measured here (benchmarks/cpu_precision.py --threads 1 2): 2 threads on 2 cores
    ran a cpu-tiny step 1.7x as fast as 1."""
    if not (os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")):
        physical = _cpuinfo()[2]
        if physical and torch.get_num_threads() != physical:
            torch.set_num_threads(physical)
    return torch.get_num_threads()


def cpu_line(description: dict | None = None) -> str:
    """One line for logs and benchmark headers."""
    d = description or describe_cpu()
    caps = "".join(f", {k}={v}" for k, v in d["caps"].items())
    physical = f" ({d['physical_cores']} physical)" if d.get("physical_cores") else ""
    return (f"CPU: {d['model']} ({d['class']}{caps}; flags {' '.join(d['flags']) or 'none'}); "
            f"torch {d['torch']}, {d['threads']} threads on {d['cores']} logical cores{physical}")


# ---------------------------------------------------------------------------- decisions measured here
DECISIONS = "fast-path.json"  # in the kit's cache root, beside trained/


def read_decisions(root: str | os.PathLike) -> dict:
    """Every decision measured on machines that share the cache root `root` (key -> record)."""
    path = Path(root) / DECISIONS
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def record_decision(root: str | os.PathLike, key: str, record: dict) -> Path:
    """Add one decision to `root`'s file (atomically; re-read first, as another process may have written)."""
    from .atomic import atomic_path

    path = Path(root) / DECISIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    decisions = read_decisions(root)
    decisions[key] = record
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(decisions, indent=2, sort_keys=True) + "\n")
    return path
