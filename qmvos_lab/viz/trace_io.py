"""A traced run on disk: segment a video once (`qmvos-lab segment ... --trace run.pt`, or
`save_recording` of a notebook's `record`), explore it later without the network.

    recording = load_recording("run.pt")                  # the same Recording that `record` returns
    explorer = AttentionExplorer(recording)               # or open_explorer("run.pt")
    recording = load_recording("run.pt", ground_truth=labels)   # the metrics need ground truth

The file is a `torch.save` of plain containers and tensors (it opens with `weights_only=True`, so
opening one runs no code from it): the frames (T x H x W x 3 uint8), the predictions (T x H x W
ids), the object ids per frame, the inference size, and per frame the parts of its `FrameTrace`
that the explorer and `explorer_metrics` read (QCIM attention, QMVOS Sec. 3.3; SIM attention,
Sec. 3.2; the top-k memory affinity of XMem Sec. 3.2 with its pixels; memory sizes and events).
The per-pixel feature maps (key, shrinkage, selection, readout, sensory memory) are left out
unless `full=True`: they are what makes a trace large (a 512-channel readout per object and frame).
Without them a frame costs about 1 MB at 480p with four objects, mostly the top-k affinity of the
traced pixels (the judo clip: 16 frames, 15 MB), besides the frames themselves.
Written atomically: a reader never sees half a file. No matplotlib here: the segment command uses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import UserError
from ..inference.trace import FrameTrace, GroupAffinity

FORMAT = "qmvos-lab-trace"
VERSION = 1
EXPLORED = ("pixels", "queries_sim", "sim_attention", "queries_qcim", "qcim_attention", "working_frames",
            "working_size", "long_term_size", "events")  # with `affinity`, `index`, `grid`
FEATURE_MAPS = ("key", "shrinkage", "selection", "readout", "hidden_before", "hidden_after")


def trace_to_dict(trace: FrameTrace, full: bool = False) -> dict:
    """A FrameTrace as plain containers of tensors (the explored fields, or all with `full`)."""
    out = {"index": int(trace.index), "grid": [int(g) for g in trace.grid],
           "affinity": None if trace.affinity is None else
           [{"indices": a.indices, "weights": a.weights, "long_term": int(a.long_term), "working": int(a.working)}
            for a in trace.affinity]}
    for name in EXPLORED + (FEATURE_MAPS if full else ()):
        value = getattr(trace, name)
        out[name] = dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value
    return out


def trace_from_dict(data: dict) -> FrameTrace:
    affinity = data.get("affinity")
    fields = {name: data[name] for name in EXPLORED + FEATURE_MAPS if name in data}
    return FrameTrace(index=data["index"], grid=tuple(data["grid"]), **fields,
                      affinity=None if affinity is None else [GroupAffinity(**a) for a in affinity])


def write_trace_file(path: str | os.PathLike, *, name: str, frames, predictions, traces: Sequence,
                     object_ids: Sequence[Sequence[int]], size: int, per_object: bool = True,
                     ground_truth=None, full: bool = False) -> Path:
    """Write a traced run (the fields of `recording.Recording`; `traces` are FrameTraces or
    `trace_to_dict` results) to `path`, atomically."""
    frames, predictions = np.asarray(frames), np.asarray(predictions)
    if not (len(frames) == len(predictions) == len(traces) == len(object_ids)):
        raise UserError(f"trace {path}: {len(frames)} frames, {len(predictions)} predictions, {len(traces)} traces "
                        f"and {len(object_ids)} object-id lists; they must be as many")
    content = {"format": FORMAT, "version": VERSION, "name": str(name), "size": int(size),
               "per_object": bool(per_object),
               "frames": torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)),  # T x H x W x 3
               "predictions": torch.from_numpy(np.ascontiguousarray(predictions, dtype=np.uint8)),  # T x H x W
               "ground_truth": None if ground_truth is None else
               torch.from_numpy(np.ascontiguousarray(ground_truth, dtype=np.uint8)),
               "object_ids": [[int(i) for i in ids] for ids in object_ids],
               "traces": [t if isinstance(t, dict) else trace_to_dict(t, full) for t in traces]}
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return Path(path)


def save_recording(recording, path: str | os.PathLike, full: bool = False) -> Path:
    """Write a `recording.Recording` (from `record` or `load_recording`) to `path`."""
    return write_trace_file(path, name=recording.name, frames=recording.frames, predictions=recording.predictions,
                            traces=recording.traces, object_ids=recording.object_ids, size=recording.size,
                            per_object=recording.per_object, ground_truth=recording.ground_truth, full=full)


def load_recording(path: str | os.PathLike, ground_truth=None, name: str | None = None):
    """The `recording.Recording` saved in `path`; `ground_truth` (T x H x W label maps, the ids of the
    predictions) replaces the saved one, so that a run segmented without it gets its metrics."""
    from .common import to_numpy
    from .recording import Recording

    path = Path(path)
    if not path.is_file():
        raise UserError(f"trace {path} not found; write one with `qmvos-lab segment ... --trace {path.name}`")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one line
        raise UserError(f"cannot read trace {path}: not a trace file, or truncated ({type(error).__name__})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise UserError(f"{path} is not a QMVOS Lab trace (write one with qmvos-lab segment --trace)")
    if content.get("version", 0) > VERSION:
        raise UserError(f"trace {path} has format version {content['version']}, newer than this kit's {VERSION}; "
                        "update qmvos-lab")
    frames = content["frames"].numpy()
    truth = content["ground_truth"].numpy() if ground_truth is None and content["ground_truth"] is not None \
        else None if ground_truth is None else to_numpy(ground_truth)
    if truth is not None and truth.shape != frames.shape[:3]:
        raise UserError(f"trace {path}: the ground truth is {tuple(truth.shape)}, the video {tuple(frames.shape[:3])} "
                        "(T x H x W); give one label map per frame at the frames' size")
    return Recording(name or content["name"], frames, truth, content["predictions"].numpy(),
                     [trace_from_dict(t) for t in content["traces"]], content["object_ids"], content["size"],
                     content["per_object"])


def open_explorer(path: str | os.PathLike, ground_truth=None, events=None, **kwargs):
    """`AttentionExplorer(load_recording(path, ground_truth), events, **kwargs)`."""
    from .explorer import AttentionExplorer

    return AttentionExplorer(load_recording(path, ground_truth), events, **kwargs)
