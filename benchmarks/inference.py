"""Inference speed and memory against video length: FPS must not decay and memory must stay flat
once long-term memory is saturated.

    python benchmarks/inference.py [--lengths 100 1000 5000] [--height 240 --width 427]
                                   [--objects 2] [--device cpu|cuda] [--amp] [--size base|small]
    python benchmarks/inference.py --lengths 5000 --height 64 --width 112   # 5,000 frames on a CPU in minutes

A generated video (moving discs over a textured background, with random-weight XMem) is streamed
from memory, so only the model is timed. For each length it prints the FPS over each tenth of
the video and the memory in use (process RSS on the CPU, allocated memory on a GPU), plus the
working/long-term memory sizes at the end.
"""

from __future__ import annotations

import argparse
import time

import torch

from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model import XMem
from qmvos_lab.resources import current_memory_mib, peak_memory_mib


def looping_frames(length: int, height: int, width: int, objects: int):
    """A 50-frame generated video played forwards and backwards for `length` frames."""
    video = generate_video(SyntheticConfig(num_objects=objects, length=50, height=height, width=width), seed=0)
    order = list(range(50)) + list(range(49, -1, -1))
    return [video.frames[order[t % 100]] for t in range(length)], video.labels[0]




def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=427)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--size", default="base", choices=["base", "small"], help="network size (default base)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = XMem(ModelConfig.of_size(args.size)).eval().to(device)
    print(f"device {device}{' (AMP)' if args.amp else ''}, {args.width}x{args.height}, {args.objects} objects, "
          f"{torch.get_num_threads()} CPU threads")
    for length in args.lengths:
        frames, first_mask = looping_frames(length, args.height, args.width, args.objects)
        segmenter = VideoSegmenter(model, InferenceConfig(size=-1), device=device, amp=args.amp)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        chunk = max(length // 10, 1)
        fps_curve, memory_curve = [], []
        tic = time.perf_counter()
        for t, frame in enumerate(frames):
            segmenter.step(frame, first_mask if t == 0 else None, end=t == length - 1)
            if (t + 1) % chunk == 0:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                now = time.perf_counter()
                fps_curve.append(chunk / (now - tic))
                memory_curve.append(current_memory_mib(device))
                tic = now
        memory = segmenter.core.memory
        print(f"{length:6d} frames: FPS per tenth {' '.join(f'{f:.2f}' for f in fps_curve)}")
        print(f"{'':14s} memory per tenth (MiB) {' '.join(f'{m:.0f}' for m in memory_curve)}, "
              f"peak {peak_memory_mib(device):.0f}; working memory {memory.work_mem.size} elements, "
              f"long-term {memory.long_mem.size}")


if __name__ == "__main__":
    main()
