"""How fast do the CPU presets learn? Synthetic-val J&F against wall-clock training time.

Trains XMem-small and QMVOS-small from scratch with a preset (`cpu-tiny`: 5 minutes per network on
2 cores; `cpu-quick`: 90 s) for several seeds, scores synthetic-val (all 20 videos, DAVIS
protocol, at the recipe's `inference_size`, as eval/videos.py) at evenly spaced iterations, next
to the "copy the first mask" baseline, and writes

    <out>/<preset>.csv   one row per (model, seed, validation point): iteration, training seconds, J&F
    <out>/<preset>.png   J&F against training seconds (seaborn): seeds thin, their mean thick

It prints the training speed (it/s) of each run and where a step's time goes: data (clip
sampling and augmentation), forward (training pass + loss), backward (+ clipping and the
optimiser step) and the rest (collation, logging, checkpoints). Validation time is not training
time. The J&F curve is fixed by the seed (and the thread count); only the seconds depend on the
machine, so a busy machine shows as low it/s, not as lower J&F.

    python benchmarks/cpu_learning.py                                   # cpu-tiny, 3 seeds, both models
    python benchmarks/cpu_learning.py --preset cpu-quick --points 3
    python benchmarks/cpu_learning.py --seeds 0 --models xmem --points 1 --split tune --set lr=1e-3   # exploring
    python benchmarks/cpu_learning.py --seeds 0 --models xmem --points 1 --split tune --eval-size -1 \
        --set crop_size=64 crop_scale=0.2,0.4   # the old recipe: objects seen and scored at their own size
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

import qmvos_lab.train.trainer as trainer_module
from qmvos_lab.config import InferenceConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video, split_videos
from qmvos_lab.machine import cpu_line
from qmvos_lab.train.fast_path import resolve_fast_path
from qmvos_lab.train.presets import preset
from qmvos_lab.train.settings import parse_settings
from qmvos_lab.train.trainer import Trainer
from qmvos_lab.eval.videos import copy_first_mask, generated_config, jf_mean, jf_table, segment_videos

TUNE_SEED = 9_000  # a tuning split: synthetic-val's knobs, seeds no split or training set uses


def scoring_videos(split: str, count: int) -> list:
    """synthetic-val (the reported figures) or "tune", held out of training *and* of synthetic-val."""
    if split == "tune":
        return [generate_video(SyntheticConfig(), TUNE_SEED + i, name=f"tune-{i:03d}") for i in range(count)]
    return list(split_videos(split, count))


class StepClock:
    """Seconds spent in data items, in the training pass + loss, and in whole steps."""

    def __init__(self):
        self.data = self.forward = self.step = 0.0

    @contextmanager
    def attached(self, trainer: Trainer):
        """Time the trainer's calls (the clip pass, the loss, the step, the dataset class), then restore them."""
        dataset_type = type(trainer.dataset)
        originals = {"clip_pass": trainer.model.forward, "clip_loss": trainer_module.clip_loss,
                     "step": trainer.step, "getitem": dataset_type.__getitem__}

        def timed(function, field):
            def wrapper(*args, **kwargs):
                tic = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    setattr(self, field, getattr(self, field) + time.perf_counter() - tic)
            return wrapper

        trainer.model.forward = timed(originals["clip_pass"], "forward")  # TrainWrapper.forward
        trainer_module.clip_loss = timed(originals["clip_loss"], "forward")
        trainer.step = timed(originals["step"], "step")
        dataset_type.__getitem__ = timed(originals["getitem"], "data")
        try:
            yield self
        finally:
            trainer_module.clip_loss = originals["clip_loss"]
            dataset_type.__getitem__ = originals["getitem"]
            del trainer.step, trainer.model.forward


def learning_curve(preset_name: str, ablation: str, seed: int, videos: list, baseline: float, args) -> tuple:
    """Train one network; score `videos` at `args.points` evenly spaced iterations."""
    config = preset(preset_name, ablation=ablation, seed=seed, **args.overrides)
    at = {round(config.iterations * (k + 1) / args.points) for k in range(args.points)}
    config = preset(preset_name, ablation=ablation, seed=seed, log_every=_gcd(at | {config.log_every}),
                    **args.overrides)
    rows, clock = [], {"train": 0.0, "since": None}

    def on_log(record: dict) -> None:
        if record["iteration"] not in at:
            return
        clock["train"] += time.perf_counter() - clock["since"]
        network = trainer.network.eval()
        inference = generated_config(network) if args.eval_size is None else InferenceConfig(size=args.eval_size)
        scores = jf_mean(jf_table(videos, segment_videos(network, videos, inference)[0]))
        network.train()
        rows.append({"preset": preset_name, "model": ablation, "seed": seed, "iteration": record["iteration"],
                     "train_s": clock["train"], "jf": scores, "copy_jf": baseline, "loss": record["loss"]})
        print(f"  {ablation:5s} seed {seed}  it {record['iteration']:4d}  train {clock['train']:5.0f} s  "
              f"J&F {scores:.3f}", flush=True)
        clock["since"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, callback=on_log, progress=False)
        with StepClock().attached(trainer) as steps:
            clock["since"] = time.perf_counter()
            trainer.train()
    seconds = clock["train"]
    timing = {"preset": preset_name, "model": ablation, "seed": seed, "iterations": config.iterations,
              "train_s": seconds, "it_per_s": config.iterations / seconds, "data_s": steps.data,
              "forward_s": steps.forward, "backward_s": steps.step - steps.forward,
              "other_s": seconds - steps.step - steps.data}
    print(f"  {ablation:5s} seed {seed}  {config.iterations} it in {seconds:.0f} s = {timing['it_per_s']:.2f} it/s; "
          + ", ".join(f"{part} {100 * timing[part + '_s'] / seconds:.0f} %"
                      for part in ("data", "forward", "backward", "other")), flush=True)
    return rows, timing


def _gcd(numbers) -> int:
    from math import gcd
    from functools import reduce
    return reduce(gcd, numbers)


def figure(curves: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    palette = dict(zip(sorted(curves["model"].unique()), sns.color_palette("deep")))
    sns.lineplot(data=curves, x="train_s", y="jf", hue="model", units="seed", estimator=None, palette=palette,
                 linewidth=0.8, alpha=0.5, legend=False, ax=ax)
    mean = curves.groupby(["model", "iteration"], as_index=False)[["train_s", "jf"]].mean()
    sns.lineplot(data=mean, x="train_s", y="jf", hue="model", palette=palette, linewidth=2.8, marker="o", ax=ax)
    ax.axhline(curves["copy_jf"].iloc[0], color="grey", linestyle="--", linewidth=1.2, label="copy the first mask")
    ax.set(xlabel=f"training time (s, {torch.get_num_threads()} threads)", ylabel="J&F", title=title, ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--models", nargs="+", default=["xmem", "qmvos"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--points", type=int, default=6, help="validation points per run (evenly spaced)")
    parser.add_argument("--split", default="synthetic-val", help="synthetic-val (reported) or tune (exploring)")
    parser.add_argument("--videos", type=int, default=20, help="videos to score")
    parser.add_argument("--eval-size", type=int, default=None,
                        help="score with frames resized to this shorter side (-1: their own 96 px; default: the "
                             "recipe's inference_size, 192 for the CPU presets)")
    parser.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                        help="TrainConfig overrides, as `qmvos-lab train --set` (e.g. lr=3e-4 crop_scale=0.2,0.4)")
    parser.add_argument("--out", default="outputs/cpu_learning")
    args = parser.parse_args()
    args.overrides = parse_settings(args.sets)  # the CLI's --set parser: typed values, unknown keys refused
    videos = scoring_videos(args.split, args.videos)
    baseline = jf_mean(jf_table(videos, copy_first_mask(videos)))
    config = resolve_fast_path(preset(args.preset, **args.overrides), device="cpu")  # "auto": timed once per CPU
    print(cpu_line())
    print(f"{args.preset} on {torch.get_num_threads()} threads: {config.iterations} iterations, batch "
          f"{config.batch_size} x {config.num_frames} frames, {config.crop_size}² crops, lr {config.lr} "
          f"({config.lr_schedule}), {'bf16' if config.amp else 'fp32'}{' + channels-last' if config.channels_last else ''}"
          f" (amp / channels_last as resolved on this CPU); "
          f"scoring {len(videos)} {args.split} videos at "
          f"{args.eval_size if args.eval_size is not None else config.inference_size} px "
          f"(copy the first mask: {baseline:.3f})")
    rows, timings = [], []
    for ablation in args.models:
        for seed in args.seeds:
            curve, timing = learning_curve(args.preset, ablation, seed, videos, baseline, args)
            rows += curve
            timings.append(timing)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, timings = pd.DataFrame(rows), pd.DataFrame(timings)
    name = args.preset if args.split == "synthetic-val" else f"{args.preset}-{args.split}"
    tmp = out / f".{name}.csv.tmp"
    curves.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(out / f"{name}.csv")
    figure(curves, out / f"{name}.png", f"{args.preset}: {args.split} J&F ({len(args.seeds)} seeds)")
    final = curves[curves["iteration"] == curves.groupby(["model", "seed"])["iteration"].transform("max")]
    summary = final.merge(timings, on=["preset", "model", "seed"], suffixes=("", "_run"))
    print(f"\nfinal {args.split} J&F (copy the first mask {baseline:.3f}):")
    for ablation, part in summary.groupby("model", sort=False):
        per_seed = "  ".join(f"seed {s}: {j:.3f}" for s, j in zip(part["seed"], part["jf"]))
        print(f"  {ablation:5s} mean {part['jf'].mean():.3f}  min {part['jf'].min():.3f}  ({per_seed}); "
              f"{part['train_s_run'].mean():.0f} s, {part['it_per_s'].mean():.2f} it/s")
    shares = timings[["data_s", "forward_s", "backward_s", "other_s"]].sum() / timings["train_s"].sum()
    print("  step time: " + ", ".join(f"{k[:-2]} {100 * v:.0f} %" for k, v in shares.items()))
    print(f"wrote {out / (name + '.csv')} and {out / (name + '.png')}")


if __name__ == "__main__":
    main()
