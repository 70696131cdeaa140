"""Frames of a video, from a folder of images or a video file, and the masks given for them.

A folder holds JPEG/PNG frames, taken in name order. A video file (mp4, avi, mov, mkv, webm,
...) is decoded with PyAV; its frames are named 00000, 00001, ... Masks are label PNGs named like
the frames they belong to (`00000.png` for `00000.jpg`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError, not_a_file
from .masks import png_files, read_label_map

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the encoders' input normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB frame as H x W x 3 uint8; a one-line UserError when it cannot be read."""
    why = not_a_file(path)
    if why is not None and why != "not found":  # a FIFO would block the reader forever
        raise UserError(f"frame {path} {why}")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"frame {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise UserError(f"cannot read frame {path}: {error}") from None


class FrameSource:
    """The frames of one video: `names` (one per frame), `len()`, iteration yields H x W x 3 uint8."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"frames {self.path} not found: give a folder of JPEG/PNG frames or a video file")
        why = None if self.path.is_dir() else not_a_file(self.path)
        if why is not None:  # a FIFO named clip.mp4 would block the decoder forever
            raise UserError(f"frames {self.path} {why}")
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise UserError(f"no JPEG/PNG frames in {self.path}")
            self.names = [p.stem for p in self.files]
            if len(set(self.names)) != len(self.names):
                raise UserError(f"{self.path} holds several frames with the same name and different extensions")
        elif self.path.suffix.lower() in VIDEO_SUFFIXES:
            self.files = None
            self.names = [f"{i:05d}" for i in range(self._count_video_frames())]
            if not self.names:
                raise UserError(f"video {self.path} has no frames")
        else:
            raise UserError(f"{self.path} is neither a folder of frames nor a video file "
                            f"({', '.join(sorted(VIDEO_SUFFIXES))})")

    def _open_video(self):
        import av

        try:
            return av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as error:
            raise UserError(f"cannot decode video {self.path}: {error}") from None

    def _count_video_frames(self) -> int:
        import av

        with self._open_video() as container:
            if not container.streams.video:
                raise UserError(f"{self.path} has no video stream")
            try:
                return sum(1 for _ in container.demux(video=0) if _.size > 0)
            except av.error.FFmpegError as error:
                raise UserError(f"cannot decode video {self.path}: {error}") from None

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            for path in self.files:
                yield read_image(path)
            return
        import av

        with self._open_video() as container:
            try:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as error:
                raise UserError(f"cannot decode video {self.path}: {error}") from None

    def first_frame_size(self) -> tuple[int, int]:
        """(height, width) of the first frame."""
        return next(iter(self)).shape[:2]


def load_given_masks(masks_dir: str | os.PathLike, frame_names: list[str],
                     frame_size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Read every mask that belongs to a frame: {frame index: H x W label map}.

    Refuses: a missing folder, no mask for the first frame, masks that match no frame, masks of
    another size than the frames, RGB images that are not label maps.
    """
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise UserError(f"masks folder {masks_dir} not found")
    files = png_files(masks_dir)  # 00000.PNG as 00000.png, as frames are read whatever their suffix's case
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        twice = next(s for s in stems if stems.count(s) > 1)
        raise UserError(f"masks folder {masks_dir} holds several masks named {twice} (suffixes differing in case); "
                        "keep one")
    if not files and any(p.suffix.lower() in (".jpg", ".jpeg") for p in masks_dir.iterdir()):
        raise UserError(f"masks folder {masks_dir} holds JPEG files but no PNG: save masks as PNG label maps "
                        "(JPEG compression changes the ids)")
    index = {name: i for i, name in enumerate(frame_names)}
    orphans = [p.name for p in files if p.stem not in index]
    if orphans:
        raise UserError(f"mask {masks_dir / orphans[0]} matches no frame name (frames are named like "
                        f"{frame_names[0]}); name masks after their frames")
    if not any(p.stem == frame_names[0] for p in files):
        raise UserError(f"no mask for the first frame: expected {masks_dir / (frame_names[0] + '.png')}")
    masks = {}
    for path in files:
        labels = read_label_map(path)
        if labels.shape != tuple(frame_size):
            raise UserError(f"mask {path} is {labels.shape[1]}x{labels.shape[0]} but the frames are "
                            f"{frame_size[1]}x{frame_size[0]}; masks must have the frames' size")
        masks[index[path.stem]] = labels
    return masks
