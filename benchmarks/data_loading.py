"""Training-clip throughput per source, with DataLoader workers (default 2, as on the 2-core machines).

    python benchmarks/data_loading.py [--workers 2] [--batch 4] [--batches 10] [--crop 384] [--frames 8]
                                      [--davis PATH (default $QMVOS_LAB_DAVIS16)]

For scale, compare with a training step: the official XMem trainer ran 2.19 it/s at batch 8
(17.5 clips/s) on an H200; a loader must deliver more clips per second than the GPU consumes.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from qmvos_lab.data.clips import (ClipConfig, GeneratedSource, PastingSource, SequenceSource, StaticPseudoVideos,
                                  VOSClips)
from qmvos_lab.data.readers import read_davis


def clips_per_second(dataset, workers: int, batch: int, batches: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers,
                        pin_memory=True, persistent_workers=workers > 0, shuffle=True)
    iterator = iter(loader)
    next(iterator)  # start-up (worker forks, first items)
    tic = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batch * batches / (time.perf_counter() - tic)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--davis", type=Path, default=Path(os.environ.get("QMVOS_LAB_DAVIS16", "data/davis16-240p")),
                        help="the 240p DAVIS-2016 train split (default $QMVOS_LAB_DAVIS16)")
    args = parser.parse_args()
    config = ClipConfig(num_frames=args.frames, crop_size=args.crop)
    samples = args.batch * (args.batches + 2) * 4
    sources = {"generated (in memory)": VOSClips(GeneratedSource(), config, samples)}
    if args.davis.is_dir():
        sequences = read_davis(args.davis, split="train", year=2016, resolution="240p")
        sources["DAVIS-2016 240p"] = VOSClips(SequenceSource(sequences), config, samples)
        sources["DAVIS-2016 240p + pasting"] = VOSClips(PastingSource(SequenceSource(sequences)), config, samples)
        sources["static pseudo-videos (3 frames)"] = StaticPseudoVideos(sequences=sequences, crop_size=args.crop,
                                                                        samples=samples)
    print(f"{args.workers} workers, batch {args.batch}, {args.frames} frames, {args.crop}x{args.crop} crops:")
    for name, dataset in sources.items():
        rate = clips_per_second(dataset, args.workers, args.batch, args.batches)
        print(f"  {name:34s} {rate:6.1f} clips/s")


if __name__ == "__main__":
    np.set_printoptions(precision=2)
    main()
