"""Does `cpu-tiny` learn? Train XMem and QMVOS with the preset and print synthetic-val J&F along
the way, next to the "copy the first mask" baseline, with the training time (validation excluded).

    python benchmarks/cpu_tiny_learning.py                        # the preset: 900 iterations each
    python benchmarks/cpu_tiny_learning.py --iterations 400 --every 100 --videos 8

Validation uses the DAVIS protocol on generated videos at their own size (InferenceConfig(size=-1)).
The figures depend on the machine only through time; the J&F curve is fixed by the seed.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import Trainer
from qmvos_lab.train.validate import validate


def learning_curve(ablation: str, args) -> list[dict]:
    """Train one model; validate every `args.every` iterations. Returns one row per validation."""
    rows, clock = [], {"train": 0.0, "since": time.perf_counter()}

    def on_log(record: dict) -> None:
        if record["iteration"] % args.every and record["iteration"] != config.iterations:
            return
        clock["train"] += time.perf_counter() - clock["since"]
        network = trainer.network.eval()
        with torch.no_grad():
            scores = validate(network, num_videos=args.videos)
        network.train()
        rows.append({"model": ablation, "iteration": record["iteration"], "train_s": clock["train"],
                     "loss": record["loss"], "jf": scores["jf"], "copy_jf": scores["copy_first_mask_jf"]})
        print(f"{ablation:6s} it {record['iteration']:4d}  train {clock['train']:5.0f} s  "
              f"J&F {scores['jf']:.3f}  (copy the first mask {scores['copy_first_mask_jf']:.3f})", flush=True)
        clock["since"] = time.perf_counter()

    overrides = {"iterations": args.iterations} if args.iterations else {}
    config = preset("cpu-tiny", ablation=ablation, seed=args.seed, log_every=min(args.every, 10), **overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, callback=on_log, progress=False)
        trainer.train()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=0, help="iterations per model (default: the preset's)")
    parser.add_argument("--every", type=int, default=300, help="validate every this many iterations")
    parser.add_argument("--videos", type=int, default=20, help="synthetic-val videos to score (of 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["xmem", "qmvos"])
    args = parser.parse_args()
    print(f"cpu-tiny on {torch.get_num_threads()} threads")
    for ablation in args.models:
        learning_curve(ablation, args)


if __name__ == "__main__":
    main()
