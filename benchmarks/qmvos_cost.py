"""The cost of QMVOS's queries: time per frame of QMVOS / XMem, measured in one run.

    python benchmarks/qmvos_cost.py [--height 240 --width 427 --objects 2 --frames 60] [--device cuda] [--amp]

Both networks (random weights) segment the same generated clip with the same memory settings;
the first 5 frames warm up. The paper reports 37.6 vs 38.1 FPS (ratio 0.987); the target here is
a ratio of at most 1.03 on a GPU and 1.08 on the CPU at 240p.
"""

from __future__ import annotations

import argparse
import time

import torch

from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model import QMVOS, XMem

from inference import looping_frames  # benchmarks/inference.py


def seconds_per_frame(model, frames, first_mask, device, amp, warmup=5) -> float:
    segmenter = VideoSegmenter(model, InferenceConfig(size=-1), device=device, amp=amp)
    for t, frame in enumerate(frames[:warmup]):
        segmenter.step(frame, first_mask if t == 0 else None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic = time.perf_counter()
    for frame in frames[warmup:]:
        segmenter.step(frame)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - tic) / (len(frames) - warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=427)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two models this many times")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    xmem = XMem().eval().to(device)
    qmvos = QMVOS(ModelConfig(queries=True)).eval().to(device)
    frames, first_mask = looping_frames(args.frames, args.height, args.width, args.objects)
    times = {"XMem": [], "QMVOS": []}
    for _ in range(args.repeats):  # alternate, so that both see the same machine state
        times["XMem"].append(seconds_per_frame(xmem, frames, first_mask, device, args.amp))
        times["QMVOS"].append(seconds_per_frame(qmvos, frames, first_mask, device, args.amp))
    best = {name: min(values) for name, values in times.items()}
    print(f"{device}{' AMP' if args.amp else ''}, {args.width}x{args.height}, {args.objects} objects, "
          f"{args.frames - 5} timed frames, best of {args.repeats}:")
    for name, value in best.items():
        print(f"  {name:6s} {value * 1000:8.1f} ms/frame  ({1 / value:.2f} FPS)")
    print(f"  QMVOS / XMem time per frame: {best['QMVOS'] / best['XMem']:.3f}")


if __name__ == "__main__":
    main()
