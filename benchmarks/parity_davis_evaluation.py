"""Compare `qmvos_lab.eval` with the official DAVIS evaluation on varied generated cases.

Usage (the official code is fetched by you, never committed; it needs opencv and scikit-image):
    python benchmarks/parity_davis_evaluation.py --official-repo /path/to/davis2017-evaluation

It builds a DAVIS-layout folder of generated sequences (several objects, void regions, objects that
vanish, missing predicted objects, odd sizes, 480p, long sequences up to 255 evaluated frames (where the official
decay still works)),
runs the official `DAVISEvaluation` and `evaluate_folders` on it, and prints the largest absolute
difference over every per-object statistic, every global figure, and every per-frame J and F.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from qmvos_lab.data.masks import write_label_map
from qmvos_lab.eval import evaluate_folders
from qmvos_lab.eval.metrics import f_measure_frames, jaccard


def blobs(rng, height, width, num_objects, frames, drop_prob=0.1):
    """Moving ellipses with ids 1..num_objects; sometimes an object vanishes for a frame."""
    ys, xs = np.mgrid[:height, :width]
    centres = rng.uniform([0, 0], [height, width], size=(num_objects, 2))
    velocity = rng.normal(0, max(height, width) / 60, size=(num_objects, 2))
    radii = rng.uniform(0.05, 0.3, size=(num_objects, 2)) * [height, width]
    out = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        for i in range(num_objects):
            if t > 0 and rng.random() < drop_prob:
                continue
            cy, cx = centres[i] + velocity[i] * t
            inside = ((ys - cy) / radii[i, 0]) ** 2 + ((xs - cx) / radii[i, 1]) ** 2 <= 1
            out[t][inside] = i + 1
    return out


def perturb(rng, gt, num_objects):
    """A plausible prediction: shifted, noisy, sometimes an object missing or ids swapped."""
    pred = np.roll(gt, shift=tuple(rng.integers(-4, 5, size=2)), axis=(1, 2)).copy()
    pred[pred == 255] = 0
    noise = rng.random(pred.shape) < 0.01
    pred[noise] = rng.integers(0, num_objects + 1, size=noise.sum())
    if num_objects > 1 and rng.random() < 0.3:
        pred[pred == num_objects] = 0  # the last object is never predicted
    if num_objects > 1 and rng.random() < 0.3:
        a, b = pred == 1, pred == 2
        pred[a], pred[b] = 2, 1
    return pred


def build_cases(root: Path, rng) -> list[str]:
    shapes = [(480, 854), (240, 427), (37, 61), (100, 100), (481, 855)]
    names = []
    for index in range(14):
        height, width = shapes[index % len(shapes)]
        num_objects = int(rng.integers(1, 5))
        frames = 257 if index == 13 else int(rng.integers(3, 30))  # 255 evaluated frames: the official limit
        gt = blobs(rng, height, width, num_objects, frames)
        if index % 3 == 0:  # void bands in the ground truth
            gt[:, : height // 10, :] = 255
        first = gt[0].copy()
        first[first == 255] = 0
        if first.max() < num_objects:  # make sure the first frame has every object
            gt[0, 0, :num_objects] = np.arange(1, num_objects + 1)
        pred = perturb(rng, gt, num_objects)
        if index == 4:  # an empty prediction
            pred[:] = 0
        name = f"seq{index:02d}"
        names.append(name)
        for t in range(frames):
            write_label_map(root / "Annotations" / "480p" / name / f"{t:05d}.png", gt[t])
            write_label_map(root / "results" / name / f"{t:05d}.png", pred[t])
            (root / "JPEGImages" / "480p" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (width, height)).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, args.official_repo)
    from davis2017.evaluation import DAVISEvaluation
    from davis2017.metrics import db_eval_boundary, db_eval_iou

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = build_cases(root, rng)
        official = DAVISEvaluation(str(root), "semi-supervised", "val").evaluate(str(root / "results"))
        ours = evaluate_folders(root / "Annotations" / "480p", root / "results", names)
        seq = ours.per_sequence.set_index("Sequence")
        diffs = {"J-Mean per object": max(abs(seq.loc[k, "J-Mean"] - v) for k, v in official["J"]["M_per_object"].items()),
                 "F-Mean per object": max(abs(seq.loc[k, "F-Mean"] - v) for k, v in official["F"]["M_per_object"].items())}
        g = ours.global_results.iloc[0]
        for key, column in (("M", "Mean"), ("R", "Recall"), ("D", "Decay")):
            for metric in ("J", "F"):
                diffs[f"global {metric}-{column}"] = abs(g[f"{metric}-{column}"] - np.mean(official[metric][key]))
        jf = (np.mean(official["J"]["M"]) + np.mean(official["F"]["M"])) / 2
        diffs["global J&F-Mean"] = abs(g["J&F-Mean"] - jf)
        # per-frame values on the same arrays
        frame_diff_j = frame_diff_f = 0.0
        for t in range(20):
            h, w = [(480, 854), (37, 61), (5, 7)][t % 3]
            gt = blobs(rng, h, w, 1, 4)[..., :] > 0
            pred = np.roll(gt, t % 5, axis=2) ^ (rng.random(gt.shape) < 0.02)
            if t % 7 == 0:
                pred[:] = False
            frame_diff_j = max(frame_diff_j, np.abs(jaccard(gt, pred) - db_eval_iou(gt, pred)).max())
            frame_diff_f = max(frame_diff_f, np.abs(f_measure_frames(gt, pred) - db_eval_boundary(gt, pred)).max())
        diffs["per-frame J"] = frame_diff_j
        diffs["per-frame F"] = frame_diff_f
    print(f"{len(names)} sequences, {len(ours.per_sequence)} objects, {len(ours.per_frame)} object-frames, "
          f"global J&F {g['J&F-Mean']:.6f} (official {jf:.6f})")
    for name, value in diffs.items():
        print(f"  {name:22s} max |ours - official| = {value:.2e}")
    print(f"max difference overall: {max(diffs.values()):.2e}")
    from davis2017.utils import db_statistics

    from qmvos_lab.eval.metrics import statistics
    values = np.random.default_rng(0).random(300)
    print(f"300 evaluated frames, decay: official {db_statistics(values)[2]:.6f} (uint8 bin edges wrap), "
          f"ours {statistics(values)[2]:.6f}")


if __name__ == "__main__":
    main()
