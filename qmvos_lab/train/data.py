"""The training data of each `TrainConfig.data` choice. Data on disk is found at `data_root`
(no default: a checkout has no data folder); `check_data` says what is missing before any work."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..data.clips import (ClipConfig, GeneratedSource, MixedSource, PastingSource, SequenceSource, StaticPseudoVideos,
                          VOSClips)
from ..data.frames import read_image
from ..data.masks import png_files, read_label_map
from ..data.readers import read_davis, read_youtube
from ..errors import UserError

DATA_CHOICES = ("generated", "davis16", "davis17+youtube", "static")
# what data_root must hold for each choice on disk: a description, and the paths that must exist in it
DATA_ON_DISK = {
    "davis16": ("the 240p DAVIS-2016 train split", ("JPEGImages/240p",)),
    "davis17+youtube": ("DAVIS/2017/trainval and YouTube/train", ("DAVIS/2017/trainval", "YouTube/train")),
    "static": ("images/*.jpg and masks/*.png", ("images", "masks")),
}


def check_data(config: TrainConfig) -> None:
    """One-line UserErrors for a data choice or a data_root that cannot work (before any work)."""
    if config.data not in DATA_CHOICES:
        raise UserError(f"unknown training data data={config.data!r}; choose from {', '.join(DATA_CHOICES)}")
    if config.data not in DATA_ON_DISK:
        return
    what, needed = DATA_ON_DISK[config.data]
    if not config.data_root:
        raise UserError(f"data={config.data} needs data_root=PATH ({what}); set it with --set data_root=PATH")
    root = Path(config.data_root).expanduser()
    if not root.is_dir():
        raise UserError(f"data_root={config.data_root} is not a folder (data={config.data} needs {what}); "
                        "set it with --set data_root=PATH")
    for relative in needed:
        if not (root / relative).is_dir():
            raise UserError(f"data_root={config.data_root} lacks {relative} (data={config.data} needs {what}); "
                            "set it with --set data_root=PATH")


def build_dataset(config: TrainConfig):
    check_data(config)
    clip = ClipConfig(num_frames=config.num_frames, crop_size=config.crop_size, max_objects=config.max_objects,
                      min_object_pixels=max(4, (config.crop_size // 24) ** 2), skip_scale=config.skip_scale,
                      crop_scale=config.crop_scale)
    if config.data == "generated":
        return VOSClips(GeneratedSource(), clip, config.samples_per_epoch, config.seed)
    if config.data == "davis16":
        root = Path(config.data_root).expanduser()
        sequences = read_davis(root, split="train", year=2016, resolution="240p")
        single = SequenceSource(sequences)
        return VOSClips(MixedSource([single, PastingSource(single)], [0.5, 0.5]), clip, config.samples_per_epoch,
                        config.seed)
    if config.data == "davis17+youtube":
        root = Path(config.data_root).expanduser()
        davis = read_davis(root / "DAVIS" / "2017" / "trainval", split="train", resolution="480p")
        youtube = read_youtube(root / "YouTube", split="train")
        for video in youtube:  # training videos: the annotated frames are the ground truth
            video.frame_paths = [video.frame_paths[i] for i in sorted(video.given)]
            video.ground_truth = {k: video.given[i] for k, i in enumerate(sorted(video.given))}
        return VOSClips(MixedSource([SequenceSource(davis), SequenceSource(youtube)], [0.2, 0.8]), clip,
                        config.samples_per_epoch, config.seed)
    if config.data == "static":
        root = Path(config.data_root).expanduser()
        images = (sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
                  if (root / "images").is_dir() else [])
        masks = {p.stem: p for p in png_files(root / "masks")}
        if not images:
            raise UserError(f"static training data: expected {root}/images/*.jpg and {root}/masks/*.png")
        pairs = [(read_image(p), read_label_map(masks.get(p.stem, root / "masks" / f"{p.stem}.png"))) for p in images]
        return StaticPseudoVideos(pairs=pairs, num_frames=config.num_frames, crop_size=config.crop_size,
                                  samples=config.samples_per_epoch, seed=config.seed)
    raise AssertionError(f"check_data lets {config.data!r} through")  # unreachable

