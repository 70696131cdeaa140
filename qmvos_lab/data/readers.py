"""Readers of VOS datasets on disk: DAVIS 2016/2017, YouTube-VOS, and a generic folder.

Each reader returns `VideoSequence`s: the frames of a video, the masks a semi-supervised method
is given (by frame index), the ground truth if any, and which frames to write back. Nothing is
decoded until asked (`read_frame`, `read_mask`).

* DAVIS (Pont-Tuset et al. 2017): `JPEGImages/<res>/<seq>/*.jpg`, `Annotations/<res>/<seq>/*.png`,
  `ImageSets/<year>/<split>.txt` (or `ImageSets/<split>.txt`). The first frame's mask is given;
  every frame has ground truth. DAVIS-2016 masks are 0/255 and read as one object (id 1).
  A `Given/<res>/<seq>/` folder (written by the generated set) lists the given masks instead.
  255 is void in DAVIS-2017 ground truth (it counts as background in evaluation).
* YouTube-VOS (Xu et al. 2018): `<split>/JPEGImages/<vid>/*.jpg`, `<split>/Annotations/<vid>/*.png`
  holding the masks of the frames where objects first appear, and `<split>/meta.json`. Frames
  come from `<split>_all_frames/JPEGImages` when present; only the frames of
  `<split>/JPEGImages` are written back (and evaluated by the server).
* A user's own video (a folder of frames or a video file, and a folder of masks named like the
  frames): `frames.FrameSource` and `frames.load_given_masks`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .frames import IMAGE_SUFFIXES, read_image
from .masks import VOID_LABEL, png_files, read_label_map


@dataclass
class VideoSequence:
    name: str
    frame_paths: list[Path]
    given: dict[int, Path]  # frame index -> mask given to the method
    ground_truth: dict[int, Path] = field(default_factory=dict)
    save_names: set[str] | None = None  # frame names to write back (None: all)
    davis2016: bool = False

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frame_paths]

    def __len__(self) -> int:
        return len(self.frame_paths)

    def read_frame(self, index: int) -> np.ndarray:
        return read_image(self.frame_paths[index])

    def read_mask(self, path: Path) -> np.ndarray:
        """A label map; DAVIS-2016 masks become 0/1."""
        labels = read_label_map(path)
        return (labels > 0).astype(np.uint8) if self.davis2016 else labels

    def given_masks(self) -> dict[int, np.ndarray]:
        """Given masks by frame index, void removed, checked against the frame size."""
        size = self.read_frame(0).shape[:2]
        masks = {}
        for index, path in self.given.items():
            labels = self.read_mask(path)
            if labels.shape != size:
                raise UserError(f"mask {path} is {labels.shape[1]}x{labels.shape[0]} but the frames of "
                                f"{self.name} are {size[1]}x{size[0]}")
            masks[index] = np.where(labels == VOID_LABEL, 0, labels).astype(labels.dtype)
        return masks


def _frames_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"frames folder {folder} not found")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not frames:
        raise UserError(f"no JPEG/PNG frames in {folder}")
    return frames


def _sequence_names(root: Path, year: str | None, split: str, frames_root: Path) -> list[str]:
    candidates = ([root / "ImageSets" / year / f"{split}.txt"] if year else []) + [root / "ImageSets" / f"{split}.txt"]
    for imageset in candidates:
        if imageset.is_file():
            return [line.strip() for line in imageset.read_text().splitlines() if line.strip()]
    if not frames_root.is_dir():
        raise UserError(f"no image set for split {split!r} and no {frames_root}: is {root} a DAVIS folder?")
    return sorted(p.name for p in frames_root.iterdir() if p.is_dir())


def read_davis(root: str | os.PathLike, split: str = "val", year: int = 2017, resolution: str = "480p",
               sequences: list[str] | None = None) -> list[VideoSequence]:
    """DAVIS sequences of a split (`year` 2016 reads 0/255 masks as one object)."""
    root = Path(root)
    frames_root, masks_root = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    names = sequences or _sequence_names(root, str(year), split, frames_root)
    videos = []
    for name in names:
        frames = _frames_in(frames_root / name)
        masks = {p.stem: p for p in png_files(masks_root / name)}
        if frames[0].stem not in masks:
            raise UserError(f"DAVIS sequence {name} has no mask for its first frame in {masks_root / name}")
        truth = {i: masks[p.stem] for i, p in enumerate(frames) if p.stem in masks}
        given = {0: truth[0]}
        given_dir = root / "Given" / resolution / name  # generated sets: the frames where objects enter
        if given_dir.is_dir():
            index = {p.stem: i for i, p in enumerate(frames)}
            given = {index[p.stem]: p for p in png_files(given_dir) if p.stem in index}
        videos.append(VideoSequence(name, frames, given, truth, davis2016=(year == 2016)))
    return videos


def read_youtube(root: str | os.PathLike, split: str = "valid", sequences: list[str] | None = None) -> list[VideoSequence]:
    """YouTube-VOS videos; objects that first appear later have their mask given on that frame."""
    root = Path(root)
    split_root = root / split
    annotated_frames_root = split_root / "JPEGImages"
    all_frames_root = root / f"{split}_all_frames" / "JPEGImages"
    frames_root = all_frames_root if all_frames_root.is_dir() else annotated_frames_root
    meta_path = split_root / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{meta_path} not found: is {root} a YouTube-VOS folder?")
    try:
        meta = json.loads(meta_path.read_text())["videos"]
    except (json.JSONDecodeError, KeyError) as error:
        raise UserError(f"{meta_path} is not a YouTube-VOS meta.json ({error})") from None
    videos = []
    for name in sequences or sorted(meta):
        frames = _frames_in(frames_root / name)
        index = {p.stem: i for i, p in enumerate(frames)}
        annotation_dir = split_root / "Annotations" / name
        given = {}
        for mask in png_files(annotation_dir):
            if mask.stem not in index:
                raise UserError(f"annotation {mask} matches no frame of {frames_root / name}")
            given[index[mask.stem]] = mask
        if not given:
            raise UserError(f"YouTube-VOS video {name} has no annotation in {annotation_dir}")
        first = min(given)
        frames, given = frames[first:], {i - first: p for i, p in given.items()}  # start at the first annotation
        save = {p.stem for p in _frames_in(annotated_frames_root / name)}
        videos.append(VideoSequence(name, frames, given, save_names=save))
    return videos
