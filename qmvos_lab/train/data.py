"""The training data of each `TrainConfig.data` choice."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..data.clips import (ClipConfig, GeneratedSource, MixedSource, PastingSource, SequenceSource, StaticPseudoVideos,
                          VOSClips)
from ..data.frames import read_image
from ..data.masks import read_label_map
from ..data.readers import read_davis, read_youtube
from ..errors import UserError

SHARED_DAVIS16 = Path(__file__).resolve().parents[3] / "shared" / "data" / "davis16-240p"


def build_dataset(config: TrainConfig):
    clip = ClipConfig(num_frames=config.num_frames, crop_size=config.crop_size, max_objects=config.max_objects,
                      min_object_pixels=max(4, (config.crop_size // 24) ** 2), skip_scale=config.skip_scale)
    if config.data == "generated":
        return VOSClips(GeneratedSource(), clip, config.samples_per_epoch, config.seed)
    if config.data == "davis16":
        root = Path(config.data_root) if config.data_root else SHARED_DAVIS16
        if not root.is_dir():
            raise UserError(f"DAVIS-2016 240p train split not found at {root}; set data_root=PATH")
        sequences = read_davis(root, split="train", year=2016, resolution="240p")
        single = SequenceSource(sequences)
        return VOSClips(MixedSource([single, PastingSource(single)], [0.5, 0.5]), clip, config.samples_per_epoch,
                        config.seed)
    if config.data == "davis17+youtube":
        root = Path(config.data_root)
        davis = read_davis(root / "DAVIS" / "2017" / "trainval", split="train", resolution="480p")
        youtube = read_youtube(root / "YouTube", split="train")
        for video in youtube:  # training videos: the annotated frames are the ground truth
            video.frame_paths = [video.frame_paths[i] for i in sorted(video.given)]
            video.ground_truth = {k: video.given[i] for k, i in enumerate(sorted(video.given))}
        return VOSClips(MixedSource([SequenceSource(davis), SequenceSource(youtube)], [0.2, 0.8]), clip,
                        config.samples_per_epoch, config.seed)
    if config.data == "static":
        root = Path(config.data_root)
        images = sorted((root / "images").glob("*.jpg")) if (root / "images").is_dir() else []
        if not images:
            raise UserError(f"static training data: expected {root}/images/*.jpg and {root}/masks/*.png")
        pairs = [(read_image(p), read_label_map(root / "masks" / f"{p.stem}.png")) for p in images]
        return StaticPseudoVideos(pairs=pairs, num_frames=config.num_frames, crop_size=config.crop_size,
                                  samples=config.samples_per_epoch, seed=config.seed)
    raise UserError(f"unknown training data {config.data!r}; choose generated, davis16, davis17+youtube, static")

