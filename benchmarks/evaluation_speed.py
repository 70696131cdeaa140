"""Time `evaluate_folders` on a generated set the size of DAVIS-2017 val.

DAVIS-2017 val: 30 sequences, 1,999 frames at 854x480, 61 objects. This script writes generated
annotations and perturbed predictions of that size (moving ellipses, 2 objects per sequence on
average) to a temporary folder, then times the evaluation (PNG reading included).

    python benchmarks/evaluation_speed.py [--sequences 30 --frames 1999 --workers 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from parity_davis_evaluation import blobs, perturb  # noqa: E402  (generated cases shared with the parity check)

from qmvos_lab.data.masks import write_label_map  # noqa: E402
from qmvos_lab.eval import evaluate_folders  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--frames", type=int, default=1999)
    parser.add_argument("--objects", type=int, default=61)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lengths = np.full(args.sequences, args.frames // args.sequences)
    lengths[: args.frames % args.sequences] += 1
    objects = np.full(args.sequences, args.objects // args.sequences)
    objects[: args.objects % args.sequences] += 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tic = time.perf_counter()
        for index, (length, count) in enumerate(zip(lengths, objects)):
            gt = blobs(rng, 480, 854, int(count), int(length), drop_prob=0.02)
            pred = perturb(rng, gt, int(count))
            for t in range(length):
                write_label_map(root / "gt" / f"s{index:02d}" / f"{t:05d}.png", gt[t])
                write_label_map(root / "res" / f"s{index:02d}" / f"{t:05d}.png", pred[t])
        print(f"generated {lengths.sum()} frames x 2 at 854x480, {objects.sum()} objects "
              f"in {time.perf_counter() - tic:.1f} s")
        tic = time.perf_counter()
        result = evaluate_folders(root / "gt", root / "res", workers=args.workers)
        seconds = time.perf_counter() - tic
    print(f"evaluated {len(result.per_sequence)} objects, {len(result.per_frame)} object-frames "
          f"in {seconds:.1f} s ({lengths.sum() / seconds:.0f} frames/s); J&F {result.jf_mean:.4f}")


if __name__ == "__main__":
    main()
