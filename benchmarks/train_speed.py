"""Training throughput: clips/s and peak memory of XMem and QMVOS training steps.

    python benchmarks/train_speed.py                       # a tiny shape on the CPU
    python benchmarks/train_speed.py --device cuda --frames 8 --crop 384 --objects 3 --batches 4 8 \
        --csv outputs/speed/training.csv

`--size small` times the CPU-sized networks instead of the released ones. On the GPU the AdamW
step is the fused one (`fused=True`), as the trainer's; a batch size that does not fit is reported
as out of memory and skipped.

Each setting runs `--steps` timed training steps (after 2 warm-up steps) on random clips, in
the `--modes` asked for: fp32, AMP (bf16 where supported) and AMP + torch.compile. For scale, the
official XMem trainer on an H200 ran 2.19 it/s at batch 8 with AMP (17.5 clips/s) and 3.71 it/s at
batch 4; the target is at least 1.5x its clips/s in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from qmvos_lab.ablations import model_config
from qmvos_lab.atomic import atomic_path
from qmvos_lab.inference.fast import autocast_dtype
from qmvos_lab.machine import cpu_line
from qmvos_lab.model import build_network
from qmvos_lab.train.clip_pass import PassConfig, clip_pass
from qmvos_lab.train.fast_path import resolve_fast_path
from qmvos_lab.train.losses import clip_loss
from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import freeze_batchnorm


OFFICIAL_H200 = {"batch 8": 17.5, "batch 4": 14.8}  # clips/s: 2.19 it/s x 8 and 3.71 it/s x 4 (docstring)


def random_batch(batch, frames, objects, crop, device):
    images = torch.randn(batch, frames, 3, crop, crop, device=device)
    labels = torch.randint(0, objects + 1, (batch, frames, crop, crop), device=device)
    masks = torch.stack([(labels == i + 1).float() for i in range(objects)], 2)  # B x T x N x H x W
    return images, masks, labels, torch.ones(batch, objects, device=device)


def time_steps(name, batch, args, device, amp: bool, compile_: bool):
    torch.manual_seed(0)
    model = build_network(model_config(name, size=args.size)).to(device)
    if compile_:
        for part in (model.key_encoder, model.value_encoder, model.decoder):
            part.compile()
    model.train()
    freeze_batchnorm(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    dtype = autocast_dtype(device)
    images, masks, labels, selector = random_batch(batch, args.frames, args.objects, args.crop, device)
    generator = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(args.steps + 2):
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tic = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = clip_pass(model, images, masks, selector, PassConfig(), generator)
            loss = clip_loss([x.float() for x in out["logits"]], [x.float() for x in out["probs"]], labels,
                             [args.objects] * batch, 0, 1, 2)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - tic) / args.steps
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None  # no CPU figure
    return batch / seconds, 1 / seconds, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", default="base", choices=["base", "small"], help="network size (default base)")
    parser.add_argument("--csv", help="write the table here (rewritten after every run)")
    parser.add_argument("--modes", help="comma-separated from fp32, amp, amp+compile "
                                        "(default: fp32 on a CPU; all three on a GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    known = {"fp32": (False, False), "amp": (True, False), "amp+compile": (True, True)}
    modes = (args.modes or ("fp32,amp,amp+compile" if device.type == "cuda" else "fp32")).split(",")
    if not set(modes) <= set(known):
        raise SystemExit(f"--modes: choose from {', '.join(known)}")
    print(f"{device}, {args.size} networks, {args.frames} frames, {args.crop}x{args.crop}, {args.objects} objects")
    if device.type == "cpu":
        print(cpu_line())
        config = preset("cpu-tiny", ablation="xmem", model_size=args.size, batch_size=args.batches[0],
                        num_frames=args.frames, crop_size=args.crop, max_objects=args.objects)
        chosen = resolve_fast_path(config, device="cpu")  # measured once per machine, then read from the cache
        print(f"amp=auto on this CPU at this shape: {'bf16' if chosen.amp else 'fp32'}"
              f"{' + channels-last' if chosen.channels_last else ''} (benchmarks/cpu_precision.py times every class)")
    rows = []
    for batch in args.batches:
        for name in ("xmem", "qmvos"):
            for label in modes:
                amp, compile_ = known[label]
                out_of_memory = False
                try:
                    clips, its, memory = time_steps(name, batch, args, device, amp, compile_)
                except torch.OutOfMemoryError:
                    out_of_memory = True
                if out_of_memory:  # outside the except block, so the failed run's tensors are freed first
                    torch.cuda.empty_cache()
                    print(f"  {name:6s} batch {batch:2d} {label:12s} out of memory")
                    continue
                peak = f"  peak {memory:.1f} GiB of GPU memory" if memory is not None else ""
                print(f"  {name:6s} batch {batch:2d} {label:12s} {its:6.2f} it/s {clips:7.2f} clips/s{peak}", flush=True)
                rows.append({"network": name, "size": args.size, "batch": batch, "mode": label, "it_per_s": its,
                             "clips_per_s": clips, "peak_gib": memory})
                if args.csv:
                    write_csv(rows, Path(args.csv))
    print(f"(the official XMem trainer, measured earlier on an H200 at this clip shape with AMP: "
          f"{OFFICIAL_H200['batch 8']} clips/s at batch 8, {OFFICIAL_H200['batch 4']} at batch 4; "
          "target: 1.5x on the same GPU)")
    if args.csv:
        print(f"wrote {args.csv}")


def write_csv(rows: list[dict], path: Path) -> None:
    """Write atomically (the kit's temporary file, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        pd.DataFrame(rows).to_csv(partial, index=False)


if __name__ == "__main__":
    main()
