"""The DAVIS semi-supervised protocol over folders of label PNGs (davis2017-evaluation,
evaluation.py, with task='semi-supervised').

For each sequence: the ground truth's frames are listed (sorted PNG names); the first and the last
are not evaluated (the first is given, the last is excluded by the official tool); void (255) in the
ground truth counts as background; the number of objects is the largest id in the first
ground-truth frame; a predicted object that is missing scores as an empty mask. The global
J&F-Mean is the mean over all objects of all sequences of J-Mean and of F-Mean, averaged.
DAVIS-2016 mode: every non-zero pixel (of the ground truth and of the prediction) is one object.

Where the official tool prints a line and exits (a prediction id above the number of ground-truth
objects, a void label in a prediction, a missing PNG) or divides by zero (no object in the first
frame, fewer than 3 frames), a UserError says what and where instead, before any work.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_paths, check_writable
from ..data.masks import VOID_LABEL, png_files, read_label_map
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
    if gt.shape[0] < 3:
        raise UserError(f"{name}: {gt.shape[0]} ground-truth frames; the protocol leaves out the first and the "
                        "last, so a sequence needs at least 3")
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
        if num_objects == 0:
            raise UserError(f"{name}: the first ground-truth frame holds no object (only 0 or {VOID_LABEL}); "
                            "the objects to evaluate are the ids of that frame")
        ids = np.arange(1, num_objects + 1)[:, None, None, None]
        gt_objects, pred_objects = evaluated[None] == ids, pred[None] == ids  # N x T x H x W
    j = np.zeros((num_objects, len(pred)))
    f = np.zeros((num_objects, len(pred)))
    for i in range(num_objects):
        j[i] = jaccard(gt_objects[i], pred_objects[i])
        f[i] = f_measure_frames(gt_objects[i], pred_objects[i])
    return j, f


def _sequence_files(gt_root: Path, results_root: Path, seq: str,
                    davis2016: bool = False) -> tuple[list[Path], list[Path]]:
    """The ground-truth PNGs of a sequence and the result PNGs of its evaluated (interior) frames."""
    gt_dir, res_dir = gt_root / seq, results_root / seq
    if not gt_dir.is_dir():
        raise UserError(f"sequence {seq} has no ground truth in {gt_dir}")
    if not res_dir.is_dir():
        raise UserError(f"sequence {seq} has no results folder {res_dir}; evaluate a subset with --sequences")
    gt_paths = png_files(gt_dir)
    if not gt_paths:
        raise UserError(f"no ground-truth PNGs in {gt_dir}")
    if len(gt_paths) < 3:
        raise UserError(f"{gt_dir} has {len(gt_paths)} ground-truth frames; the protocol leaves out the first "
                        "and the last, so a sequence needs at least 3 (or leave it out with --sequences)")
    first = read_label_map(gt_paths[0])
    if not (first.any() if davis2016 else ((first != 0) & (first != VOID_LABEL)).any()):
        hint = ("0/255 masks are DAVIS-2016 annotations: pass --davis2016" if (first == VOID_LABEL).any()
                else "leave the sequence out with --sequences")
        raise UserError(f"ground truth {gt_paths[0]} holds no object (only 0{'' if davis2016 else f' or {VOID_LABEL}'}):"
                        f" the objects to evaluate are those of the first frame; {hint}")
    written = {p.stem: p for p in png_files(res_dir)}  # 00003.PNG as 00003.png
    res_paths = [written.get(p.stem, res_dir / f"{p.stem}.png") for p in gt_paths[1:-1]]
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
    files = {seq: _sequence_files(gt_root, results_root, seq, davis2016) for seq in sequences}  # fail before any work
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


RESULT_FILES = ("global_results.csv", "per-sequence_results.csv")


def check_output(output_dir: str | os.PathLike) -> None:
    """Refuse, before evaluating, an output folder that cannot be written."""
    check_writable(output_dir, "--output")
    for name in RESULT_FILES:
        if (Path(output_dir) / name).is_dir():
            raise UserError(f"--output {output_dir}: {Path(output_dir) / name} is a folder; remove it or choose "
                            "another output folder")


def write_results(result: EvaluationResult, output_dir: str | os.PathLike) -> list[Path]:
    """Write global_results.csv and per-sequence_results.csv at full float precision, as a pair:
    both are written to temporary files first, then renamed together (atomic.atomic_paths)."""
    check_output(output_dir)
    paths = [Path(output_dir) / name for name in RESULT_FILES]
    with atomic_paths(*paths) as temporaries:
        for tmp, table in zip(temporaries, (result.global_results, result.per_sequence)):
            table.to_csv(tmp, index=False, float_format="%.17g")
    return paths
