"""DAVIS val sequences as in-memory videos, so that an ablation can be scored on real data
(`eval_set="davis2017:ROOT"`): the same frames, ground truth and given masks as the generated set."""

from __future__ import annotations

import numpy as np

from ..data.masks import VOID_LABEL
from ..data.readers import read_davis
from ..data.synthetic import GeneratedVideo
from ..errors import UserError


def davis_videos(root: str, year: int = 2017, num_videos: int | None = None,
                 resolution: str = "480p") -> list[GeneratedVideo]:
    """The val sequences of a DAVIS folder (every frame annotated) as GeneratedVideo objects."""
    sequences = read_davis(root, split="val", year=year, resolution=resolution)[:num_videos]
    videos = []
    for seq in sequences:
        if len(seq.ground_truth) != len(seq):
            raise UserError(f"DAVIS sequence {seq.name} in {root} lacks annotations for some frames; "
                            "an ablation needs every frame's ground truth (the val split has it)")
        frames = np.stack([seq.read_frame(t) for t in range(len(seq))])  # T x H x W x 3
        labels = np.stack([seq.read_mask(seq.ground_truth[t]) for t in range(len(seq))])  # T x H x W
        ids = [int(i) for i in np.unique(labels) if i not in (0, VOID_LABEL)]
        first = [int(np.argmax((labels == i).any(axis=(1, 2)))) if i in ids else -1
                 for i in range(1, max(ids, default=0) + 1)]
        videos.append(GeneratedVideo(seq.name, frames, np.where(labels == VOID_LABEL, 0, labels), first))
    return videos
