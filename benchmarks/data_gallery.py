"""Render a gallery of generated videos with their ground truth overlaid (a PNG, not committed).

    python benchmarks/data_gallery.py [--split synthetic-hard] [--videos 4] [--out outputs/gallery.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from qmvos_lab.data.synthetic import split_videos
from qmvos_lab.viz.overlay import overlay


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="synthetic-hard")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--columns", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("outputs/gallery.png"))
    args = parser.parse_args()
    rows = []
    for video in split_videos(args.split, args.videos):
        times = np.linspace(0, len(video.frames) - 1, args.columns).astype(int)
        rows.append(np.concatenate([video.frames[t] for t in times], 1))
        rows.append(np.concatenate([overlay(video.frames[t], video.labels[t], alpha=0.6) for t in times], 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
