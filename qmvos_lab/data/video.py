"""A video with every frame's ground truth, in memory (`Video`): what evaluation segments and
scores. The generated set's videos are Videos (`synthetic.GeneratedVideo`), and so are a DAVIS
folder's val sequences (`davis_videos`), so that a network is scored on real data the same way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .masks import VOID_LABEL
from .readers import read_davis


@dataclass
class Video:
    """frames: T x H x W x 3 uint8; labels: T x H x W uint8 (0 background, 1..N objects);
    first_frame: the frame where each object (index i -> id i + 1) first shows a pixel (-1: never)."""

    name: str
    frames: np.ndarray
    labels: np.ndarray
    first_frame: list[int]

    def given_masks(self) -> dict[int, np.ndarray]:
        """The annotations a semi-supervised method gets: each object's mask on its first frame."""
        given: dict[int, np.ndarray] = {}
        for index, t in enumerate(self.first_frame):
            if t < 0:
                continue
            mask = given.setdefault(t, np.zeros_like(self.labels[t]))
            mask[self.labels[t] == index + 1] = index + 1
        return given


def davis_videos(root: str, year: int = 2017, num_videos: int | None = None,
                 resolution: str = "480p") -> list[Video]:
    """The val sequences of a DAVIS folder (every frame annotated) as Videos; void (255) in the
    ground truth becomes background."""
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
        videos.append(Video(seq.name, frames, np.where(labels == VOID_LABEL, 0, labels), first))
    return videos
