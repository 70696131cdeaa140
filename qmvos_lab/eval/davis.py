"""The DAVIS semi-supervised protocol over folders of label PNGs (davis2017-evaluation,
evaluation.py, with task='semi-supervised').

For each sequence: the ground truth's frames are listed (sorted PNG names); the first and the last
are not evaluated (the first is given, the last is excluded by the official tool); void (255) in the
ground truth counts as background; the number of objects is the largest id in the first
ground-truth frame; a predicted object that is missing scores as an empty mask. The global
J&F-Mean is the mean over all objects of all sequences of J-Mean and of F-Mean, averaged.
DAVIS-2016 mode: every non-zero pixel (of the ground truth and of the prediction) is one object.

Where the official tool prints a line and exits (a prediction id above the number of ground-truth
objects, a void label in a prediction, a missing PNG), a UserError says what and where instead.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..data.masks import VOID_LABEL, read_label_map
from ..errors import UserError
from .metrics import f_measure_frames, jaccard, statistics

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]


@dataclass
class EvaluationResult:
    """global_results: one row (GLOBAL_COLUMNS); per_sequence: one row per object `<seq>_<id>`
    with its statistics; per_frame: one row per (sequence, object, frame) with J and F."""

    global_results: pd.DataFrame
    per_sequence: pd.DataFrame
    per_frame: pd.DataFrame

    @property
    def jf_mean(self) -> float:
        return float(self.global_results["J&F-Mean"].iloc[0])


def _read_stack(paths: list[Path], workers: int) -> np.ndarray:
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PNG decoding releases the GIL
        frames = list(pool.map(read_label_map, paths))
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise UserError(f"masks in {paths[0].parent} differ in size: {sorted(shapes)}")
    return np.stack(frames)  # T x H x W


def evaluate_sequence(gt: np.ndarray, pred: np.ndarray, davis2016: bool = False,
                      name: str = "sequence") -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F (objects x evaluated frames) of one sequence.

    gt: T x H x W ground-truth ids of all frames; pred: (T - 2) x H x W predicted ids of the
    evaluated frames (the interior ones).
    """
    if gt.shape[0] < 1:
        raise UserError(f"{name}: no ground-truth frames")
    if pred.shape[1:] != gt.shape[1:]:
        raise UserError(f"{name}: predicted masks are {pred.shape[2]}x{pred.shape[1]}, ground truth "
                        f"{gt.shape[2]}x{gt.shape[1]}; write predictions at the annotation resolution")
    if davis2016:
        gt_objects, pred_objects, num_objects = (gt[1:-1] > 0)[None], (pred > 0)[None], 1
    else:
        num_objects = int(np.where(gt[0] == VOID_LABEL, 0, gt[0]).max())
        evaluated = np.where(gt[1:-1] == VOID_LABEL, 0, gt[1:-1])
        if (pred == VOID_LABEL).any():
            raise UserError(f"{name}: a prediction holds the void label {VOID_LABEL}; predictions must hold "
                            "object ids 1..N and 0 for background")
        if pred.size and int(pred.max()) > num_objects:
            raise UserError(f"{name}: a prediction holds id {int(pred.max())} but the first ground-truth frame "
                            f"has only {num_objects} objects; predicted ids must match the annotation")
        ids = np.arange(1, num_objects + 1)[:, None, None, None]
        gt_objects, pred_objects = evaluated[None] == ids, pred[None] == ids  # N x T x H x W
    j = np.zeros((num_objects, len(pred)))
    f = np.zeros((num_objects, len(pred)))
    for i in range(num_objects):
        j[i] = jaccard(gt_objects[i], pred_objects[i])
        f[i] = f_measure_frames(gt_objects[i], pred_objects[i])
    return j, f


def _sequence_files(gt_root: Path, results_root: Path, seq: str) -> tuple[list[Path], list[Path]]:
    """The ground-truth PNGs of a sequence and the result PNGs of its evaluated (interior) frames."""
    gt_dir, res_dir = gt_root / seq, results_root / seq
    if not gt_dir.is_dir():
        raise UserError(f"sequence {seq} has no ground truth in {gt_dir}")
    if not res_dir.is_dir():
        raise UserError(f"sequence {seq} has no results folder {res_dir}; evaluate a subset with --sequences")
    gt_paths = sorted(gt_dir.glob("*.png"))
    if not gt_paths:
        raise UserError(f"no ground-truth PNGs in {gt_dir}")
    res_paths = [res_dir / f"{p.stem}.png" for p in gt_paths[1:-1]]
    missing = [p.name for p in res_paths if not p.is_file()]
    if missing:
        raise UserError(f"{res_dir} lacks {len(missing)} predicted masks, first {missing[0]}: "
                        "write one PNG per annotated frame, named like the annotation")
    return gt_paths, res_paths


def list_sequences(gt_root: Path) -> list[str]:
    return sorted(p.name for p in gt_root.iterdir() if p.is_dir())


def evaluate_folders(gt_root: str | os.PathLike, results_root: str | os.PathLike,
                     sequences: list[str] | None = None, davis2016: bool = False,
                     workers: int = 4, progress: bool = False) -> EvaluationResult:
    """Evaluate `results_root/<seq>/<frame>.png` against `gt_root/<seq>/<frame>.png`."""
    gt_root, results_root = Path(gt_root), Path(results_root)
    for label, root in (("ground-truth", gt_root), ("results", results_root)):
        if not root.is_dir():
            raise UserError(f"{label} folder {root} not found")
    sequences = sequences or list_sequences(gt_root)
    if not sequences:
        raise UserError(f"no sequence folders in {gt_root}")
    files = {seq: _sequence_files(gt_root, results_root, seq) for seq in sequences}  # fail before any work
    if progress:
        from tqdm.auto import tqdm

        sequences = tqdm(sequences, desc="evaluate", unit="seq")
    objects, frame_rows = [], []
    for seq in sequences:
        gt_paths, res_paths = files[seq]
        gt = _read_stack(gt_paths, workers)
        pred = _read_stack(res_paths, workers) if res_paths else np.zeros((0, *gt.shape[1:]), np.uint8)
        j, f = evaluate_sequence(gt, pred, davis2016, name=str(results_root / seq))
        frame_ids = [p.stem for p in res_paths]
        for obj in range(j.shape[0]):
            objects.append((f"{seq}_{obj + 1}", *statistics(j[obj]), *statistics(f[obj])))
            frame_rows += [(seq, obj + 1, frame, j[obj, t], f[obj, t]) for t, frame in enumerate(frame_ids)]
    table = pd.DataFrame(objects, columns=["Sequence", "J-Mean", "J-Recall", "J-Decay",
                                           "F-Mean", "F-Recall", "F-Decay"])
    means = table.drop(columns="Sequence").to_numpy().mean(axis=0)  # plain mean over objects, as the official
    global_results = pd.DataFrame([[(means[0] + means[3]) / 2, *means]], columns=GLOBAL_COLUMNS)
    per_sequence = table[SEQUENCE_COLUMNS]
    per_frame = pd.DataFrame(frame_rows, columns=["Sequence", "Object", "Frame", "J", "F"])
    return EvaluationResult(global_results, per_sequence, per_frame)


def write_results(result: EvaluationResult, output_dir: str | os.PathLike) -> list[Path]:
    """Write global_results.csv and per-sequence_results.csv at full float precision, atomically."""
    written = []
    for name, table in (("global_results.csv", result.global_results),
                        ("per-sequence_results.csv", result.per_sequence)):
        with atomic_path(Path(output_dir) / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.17g")
        written.append(Path(output_dir) / name)
    return written
