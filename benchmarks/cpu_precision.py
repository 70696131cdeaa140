"""Which fast path pays on which CPU: training-step time of the CPU recipe in fp32 / bf16 autocast x
default / channels-last memory format, on this CPU and on smaller CPU classes emulated on it.

    python benchmarks/cpu_precision.py                          # native + emulated classes, both networks
    python benchmarks/cpu_precision.py --classes native --rounds 7 --threads 1 2

Each (class, network) runs in a fresh process, because the caps are read when torch starts:
  native                     this CPU as it is
  AVX-512, no AMX            ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (oneDNN's AMX off; only differs on AMX CPUs)
  AVX-512 without bf16       ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (oneDNN emulates bf16)
  AVX2 only                  ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2 (ATen's kernels too)
An emulated class runs this CPU's cores at this CPU's clock with the smaller instruction set: its
ratios are indicative; a real CPU of that class differs in cores, clock and caches.

In each process the settings are timed by the library's own `train.fast_path.time_steps` (what
`amp="auto"` runs, with more rounds): one warm-up step each, then `--rounds` rounds that visit
every setting once, so that a change of load hits them alike; the table gives medians (and the
range) of seconds per step, and what "auto" would keep. Step = forward + loss + backward + AdamW of a
cpu-tiny batch (2 clips x 4 frames, 128², 3 objects); a real iteration adds about 10 % for its data.
It prints the CPU's flags (lscpu) first, and writes the table to --csv (after every run). With 2
threads on 2 cores, any other busy process shows up in the figures: run it on a quiet machine, or
compare with --threads 1, which one other process disturbs less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

CLASSES = {
    "native": {},
    "AVX-512, no AMX": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "AVX-512 without bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "AVX2 only": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}

CHILD = """
import json, statistics, sys, torch
torch.set_num_threads({threads})
from qmvos_lab.machine import describe_cpu
from qmvos_lab.train.fast_path import candidates, time_steps
from qmvos_lab.train.presets import preset
config = preset("cpu-tiny", ablation="{network}", model_size="small")
times = time_steps(config, candidates(None, None), rounds={rounds})
print(json.dumps({{"cpu": describe_cpu(), "times": {{s.label: t for s, t in times.items()}}}}))
"""


def run_one(label: str, network: str, threads: int, rounds: int) -> list[dict]:
    env = {**os.environ, **CLASSES[label]}
    for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        if name not in CLASSES[label]:
            env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", CHILD.format(threads=threads, network=network, rounds=rounds)],
                         env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = []
    for setting, times in result["times"].items():
        times = sorted(times)
        rows.append({"class": label, "cpu class seen": result["cpu"]["class"], "network": network, "threads": threads,
                     "setting": setting, "median_s": times[len(times) // 2], "min_s": times[0], "max_s": times[-1],
                     "rounds": len(times)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=list(CLASSES))
    parser.add_argument("--networks", nargs="+", default=["xmem", "qmvos"])
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="torch threads to compare (default: torch's own choice only)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--csv", default="outputs/cpu_precision/steps.csv")
    args = parser.parse_args()

    import torch

    from qmvos_lab.machine import cpu_line

    print(cpu_line())
    try:
        print(subprocess.run(["lscpu"], capture_output=True, text=True).stdout.strip())
    except OSError:
        print("(lscpu not found)")
    rows = []
    for threads in args.threads or [torch.get_num_threads()]:
        for label in args.classes:
            for network in args.networks:
                rows += run_one(label, network, threads, args.rounds)
                Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(args.csv, index=False, float_format="%.4f")  # so far: a cut run keeps it
                last = pd.DataFrame(rows[-4:])
                print(f"{label:22s} {network:6s} {threads} threads: " + ", ".join(
                    f"{r.setting} {r.median_s:.3f} s" for r in last.itertuples()), flush=True)
    table = pd.DataFrame(rows)
    fp32 = table[table.setting == "fp32"].set_index(["class", "network", "threads"])["median_s"]
    table["speed vs fp32"] = [fp32[(r["class"], r["network"], r["threads"])] / r["median_s"] for _, r in table.iterrows()]
    chosen = table.loc[table.groupby(["class", "network", "threads"])["median_s"].idxmin()]
    table["auto keeps"] = table.index.isin(chosen.index)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False, float_format="%.4f")
    wide = table.pivot_table(index=["class", "network", "threads"], columns="setting", values="median_s",
                             sort=False)
    wide["auto keeps"] = chosen.set_index(["class", "network", "threads"])["setting"]
    wide["speed-up"] = [wide.loc[i, "fp32"] / wide.loc[i, wide.loc[i, "auto keeps"]] for i in wide.index]
    print("\nseconds per training step (median; cpu-tiny batch), and what amp/channels_last=auto keeps:")
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
