"""A recording: one traced run of a network over a video, what the attention explorer shows.

    recording = record(net, video.frames, video.given_masks(), video.labels)   # runs inference
    recording = trace_io.load_recording("run.pt")                              # or from a saved trace

`record` segments the video with the trace on (`VideoSegmenter(..., trace=True)`: QCIM attention,
QMVOS Sec. 3.3; SIM attention, Sec. 3.2; XMem's top-k memory affinity, XMem Sec. 3.2);
`trace_io.save_recording` / `load_recording` keep one on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import UserError
from .common import to_numpy
from .explorer_metrics import attention_metrics


@dataclass
class Recording:
    """One traced run over a video. frames T x H x W x 3 uint8; ground_truth and predictions
    T x H x W label maps (original ids); traces: a FrameTrace per frame; object_ids[t]: the
    original ids of frame t's objects in internal order (query k belongs to object_ids[t][k]);
    size: the `InferenceConfig.size` it was segmented with (-1: the frame's own);
    per_object: the queries attend to one memory readout per object (False: to F16 image
    features, the qcim-f16 ablation)."""

    name: str
    frames: np.ndarray
    ground_truth: np.ndarray | None
    predictions: np.ndarray
    traces: list
    object_ids: list[list[int]]
    size: int = -1
    per_object: bool = True

    @property
    def has_queries(self) -> bool:
        return any(t.qcim_attention is not None for t in self.traces)

    @property
    def ids(self) -> list[int]:
        """Every object id of the video, in order of appearance."""
        return list(dict.fromkeys(i for ids in self.object_ids for i in ids))

    def groups(self) -> list[list[int]]:
        """The original ids of each memory object group (objects given on the same frame share one)."""
        groups = []
        for trace, ids in zip(self.traces, self.object_ids):
            added = trace.events.get("objects_added") or []
            if added:
                groups.append([ids[k - 1] for k in added])
        return groups

    def metrics(self, head: int | str = "mean") -> pd.DataFrame:
        """The tidy metric table (frame, query, metric, value) of `explorer_metrics.attention_metrics`."""
        if self.ground_truth is None:
            raise UserError(f"{self.name}: the metrics need ground truth; record(..., ground_truth=labels)")
        return attention_metrics(self.traces, self.ground_truth, self.object_ids, self.size, head, self.per_object)


def record(network, frames, given_masks: Mapping[int, np.ndarray], ground_truth=None, config=None,
           name: str = "video", device: str = "cpu") -> Recording:
    """Segment `frames` (T x H x W x 3 uint8) with `network`, giving `given_masks[t]` on frame t,
    with the trace on (`VideoSegmenter(..., trace=True)`; `config` defaults to the size the
    network's recipe segments generated videos at, `generated_config(network)`)."""
    from ..inference import VideoSegmenter
    from ..eval.videos import generated_config

    if 0 not in given_masks:
        raise UserError(f"{name}: record needs a mask on frame 0 (given_masks[0]), where tracking starts")
    config = config or generated_config(network)
    frames = to_numpy(frames)
    segmenter = VideoSegmenter(network, config, device=device, trace=True)
    results = [segmenter.step(frame, given_masks.get(t), end=t == len(frames) - 1) for t, frame in enumerate(frames)]
    return Recording(name, frames, None if ground_truth is None else to_numpy(ground_truth),
                     np.stack([r.labels for r in results]), [r.trace for r in results],
                     [list(r.internal_ids or []) for r in results], config.size,
                     getattr(getattr(network, "config", None), "qcim_source", "readout") == "readout")
