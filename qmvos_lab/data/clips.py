"""Training clips (XMem's training data pipeline, kept by QMVOS).

A clip is `num_frames` frames of one video, sampled so that consecutive sampled frames are at
most `max_skip` apart (the skip follows a curriculum over training: 5 -> 10 -> 15 -> 5 at 10 %,
30 % and 90 % of the iterations), possibly played backwards, with up to `max_objects` objects
chosen among those of its first frame, cropped (keeping objects in view) and augmented with
torchvision's v2 transforms (clip-level crop, flip, affine and colour; per-frame jitter; lighter
in the final phase).

Sources (anything with `__len__` and `sample(rng, num_frames, max_skip)`):
  SequenceSource    videos on disk (DAVIS, YouTube-VOS, the generated set written out)
  GeneratedSource   the generated set, drawn in memory
  PastingSource     multi-object clips from single-object videos: objects of other videos are
                    pasted in with their masks (so DAVIS-2016 can train multi-object interaction)
and `StaticPseudoVideos`, XMem's stage 0: clips made by warping one image and its mask.

Items are determined by (seed, epoch, index) alone, whichever worker or rank draws them, so runs
resume exactly; `DistributedSampler` splits them across ranks.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import UserError
from .frames import IMAGENET_MEAN, IMAGENET_STD
from .readers import VideoSequence
from .synthetic import SPLITS, SyntheticConfig, generate_video

SKIP_CURRICULUM = ((0.1, 5), (0.3, 10), (0.9, 15), (1.01, 5))  # (progress below, max skip)
LIGHT_PHASE = 0.9  # progress from which augmentation is lighter
XMEM_CROP_SCALE = (0.36, 1.0)  # area fraction of XMem's random crops


def max_skip_at(progress: float, curriculum=SKIP_CURRICULUM, scale: float = 1.0) -> int:
    """The curriculum's max skip at a training progress in [0, 1], times `scale` (at least 1)."""
    skip = curriculum[-1][1]
    for below, step_skip in curriculum:
        if progress < below:
            skip = step_skip
            break
    return max(1, round(skip * scale))


def sample_frame_indices(rng: np.random.Generator, length: int, num_frames: int, max_skip: int) -> list[int]:
    """Sorted frame indices in which each index is within `max_skip` of an earlier pick (as XMem);
    so sorted neighbours are at most `max_skip` apart. Short videos repeat frames."""
    if length < num_frames:
        return sorted(rng.integers(length, size=num_frames).tolist())
    skip = max(1, min(max_skip, length))
    picked = [int(rng.integers(length))]
    candidates = set(range(max(0, picked[0] - skip), min(length, picked[0] + skip + 1))) - set(picked)
    while len(picked) < num_frames:
        if not candidates:  # a window exhausted (tiny skip): widen around every pick
            candidates = {j for p in picked for j in range(max(0, p - skip), min(length, p + skip + 1))} - set(picked)
        index = int(rng.choice(sorted(candidates)))
        picked.append(index)
        candidates |= set(range(max(0, index - skip), min(length, index + skip + 1)))
        candidates -= set(picked)
    return sorted(picked)


# ---------------------------------------------------------------------------------- sources
class SequenceSource:
    """Clips from videos on disk with ground truth on every frame (reads only the sampled frames)."""

    def __init__(self, sequences: list[VideoSequence]):
        self.sequences = [s for s in sequences if len(s.ground_truth) == len(s)]
        if not self.sequences:
            raise UserError("no video with ground truth on every frame to train on")

    def __len__(self) -> int:
        return len(self.sequences)

    def sample(self, rng: np.random.Generator, num_frames: int, max_skip: int, video: int | None = None):
        sequence = self.sequences[int(rng.integers(len(self))) if video is None else video]
        indices = sample_frame_indices(rng, len(sequence), num_frames, max_skip)
        frames = np.stack([sequence.read_frame(i) for i in indices])  # T x H x W x 3
        labels = np.stack([sequence.read_mask(sequence.ground_truth[i]) for i in indices])  # T x H x W
        labels = np.where(labels == 255, 0, labels)
        return frames, labels.astype(np.uint8), sequence.name


class GeneratedSource:
    """Clips drawn from the generated set in memory: video k of the source is seed `base_seed + k`."""

    def __init__(self, config: SyntheticConfig | None = None, num_videos: int = 200,
                 base_seed: int = SPLITS["synthetic-train"].seed, cache: bool = True):
        self.config = config or SPLITS["synthetic-train"].config
        self.num_videos, self.base_seed = num_videos, base_seed
        self.cache = {} if cache else None

    def __len__(self) -> int:
        return self.num_videos

    def video(self, index: int):
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        video = generate_video(self.config, self.base_seed + index, name=f"synthetic-train-{index:03d}")
        if self.cache is not None:
            self.cache[index] = video
        return video

    def sample(self, rng: np.random.Generator, num_frames: int, max_skip: int, video: int | None = None):
        generated = self.video(int(rng.integers(len(self))) if video is None else video)
        indices = sample_frame_indices(rng, len(generated.frames), num_frames, max_skip)
        return generated.frames[indices], generated.labels[indices], generated.name


class MixedSource:
    """Draw each clip from one of several sources, with given probabilities."""

    def __init__(self, sources: list, weights: list[float]):
        self.sources, self.weights = sources, np.asarray(weights, dtype=float) / sum(weights)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def sample(self, rng: np.random.Generator, num_frames: int, max_skip: int, video: int | None = None):
        source = self.sources[int(rng.choice(len(self.sources), p=self.weights))]
        return source.sample(rng, num_frames, max_skip)


class PastingSource:
    """Multi-object clips from single-object videos (e.g. DAVIS-2016): the object of 1 or 2 other
    videos, randomly scaled and shifted, is pasted over a base clip with its mask; pasted objects
    occlude what they cover and get the next ids."""

    def __init__(self, source, max_pasted: int = 2, scale=(0.4, 0.9)):
        self.source, self.max_pasted, self.scale = source, max_pasted, scale

    def __len__(self) -> int:
        return len(self.source)

    def sample(self, rng: np.random.Generator, num_frames: int, max_skip: int, video: int | None = None):
        frames, labels, name = self.source.sample(rng, num_frames, max_skip, video)
        frames, labels = frames.copy(), (labels > 0).astype(np.uint8)
        height, width = labels.shape[1:]
        for k in range(int(rng.integers(1, self.max_pasted + 1))):
            donor_frames, donor_labels, donor_name = self.source.sample(rng, num_frames, max_skip)
            video_ = tv_tensors.Video(torch.from_numpy(donor_frames).permute(0, 3, 1, 2))  # T x 3 x h x w
            mask = tv_tensors.Mask(torch.from_numpy((donor_labels > 0).astype(np.uint8)))  # T x h x w
            scale = float(rng.uniform(*self.scale))
            place = v2.Compose([v2.Resize((height, width), antialias=True),
                                v2.RandomAffine(degrees=0, translate=(0.3, 0.3), scale=(scale, scale))])
            torch.manual_seed(int(rng.integers(2 ** 31)))
            video_, mask = place(video_, mask)
            pasted = mask.numpy().astype(bool)  # T x H x W
            frames[pasted] = video_.permute(0, 2, 3, 1).numpy()[pasted]
            labels[pasted] = k + 2
            name = f"{name}+{donor_name}"
        return frames, labels, name


# ---------------------------------------------------------------------------------- dataset
@dataclass
class ClipConfig:
    num_frames: int = 8
    crop_size: int = 384
    max_objects: int = 3
    min_object_pixels: int = 100  # at crop resolution, in the first frame
    reverse_prob: float = 0.5
    skip_scale: float = 1.0  # multiplies the skip curriculum (short generated videos use less)
    crop_scale: tuple[float, float] = XMEM_CROP_SCALE  # area fraction of the random crop


def clip_augmentation(crop_size: int, light: bool, crop_scale: tuple[float, float] = XMEM_CROP_SCALE) -> v2.Compose:
    """Clip-level transforms: the same parameters for every frame (tv_tensors.Video + Mask).
    `crop_scale`: the area fraction of the random crop; the light phase crops at least half the
    largest area (XMem's (0.36, 1) -> (0.5, 1))."""
    low, high = crop_scale
    if light:
        return v2.Compose([v2.RandomResizedCrop(crop_size, scale=(max(low, high / 2), high), antialias=True),
                           v2.RandomHorizontalFlip(),
                           v2.ColorJitter(0.05, 0.05, 0.05, 0)])
    return v2.Compose([v2.RandomResizedCrop(crop_size, scale=crop_scale, antialias=True),
                       v2.RandomHorizontalFlip(),
                       v2.RandomAffine(degrees=15, shear=10, scale=(0.9, 1.1)),
                       v2.ColorJitter(0.1, 0.03, 0.03, 0)])


FRAME_JITTER = v2.Compose([v2.RandomAffine(degrees=5, translate=(0.02, 0.02), scale=(0.97, 1.03)),
                           v2.ColorJitter(0.1, 0.03, 0.03, 0.01)])


class VOSClips(Dataset):
    """`samples` clips per epoch; item i of epoch e is fixed by (seed, e, i).

    Each item: frames T x 3 x S x S (ImageNet-normalised), masks T x M x S x S (one channel per
    chosen object, M = max_objects, zero for missing ones), labels T x S x S (0..M), selector M
    (1 for real objects), num_objects, video name.
    """

    def __init__(self, source, config: ClipConfig | None = None, samples: int = 1000, seed: int = 0):
        self.source, self.config, self.samples, self.seed = source, config or ClipConfig(), samples, seed
        self._epoch = multiprocessing.Value("l", 0)
        self.normalise = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def __len__(self) -> int:
        return self.samples

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = int(epoch)

    def __getitem__(self, key) -> dict:
        """`key` is (index, progress) from a sampler that knows when the item is used (so that
        prefetching workers apply the curriculum of the item's own iteration), or an index alone
        (progress 0: the curriculum's start)."""
        index, progress = key if isinstance(key, tuple) else (key, 0.0)
        rng = np.random.default_rng([self.seed, self._epoch.value, index])
        torch.manual_seed(int(rng.integers(2 ** 63 - 1)))  # v2 transforms draw from torch's RNG
        light = progress >= LIGHT_PHASE
        max_skip = max_skip_at(progress, scale=self.config.skip_scale)
        c = self.config
        for attempt in range(20):
            frames, labels, name = self.source.sample(rng, c.num_frames, max_skip)
            if rng.random() < c.reverse_prob:
                frames, labels = frames[::-1], labels[::-1]
            video = tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
            mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(labels)))
            video, mask = clip_augmentation(c.crop_size, light, c.crop_scale)(video, mask)
            ids, counts = torch.unique(mask[0], return_counts=True)
            visible = [int(i) for i, n in zip(ids, counts) if i != 0 and n >= c.min_object_pixels]
            if visible:
                break
        else:
            raise UserError(f"could not find a clip with a visible object after 20 tries (last: {name})")
        if not light:  # small independent motion and colour changes per frame
            jittered = [FRAME_JITTER(tv_tensors.Image(video[t]), tv_tensors.Mask(mask[t])) for t in range(len(video))]
            video = torch.stack([j[0] for j in jittered])
            mask = torch.stack([j[1] for j in jittered])
        chosen = sorted(rng.permutation(visible)[: c.max_objects].tolist())
        labels_out = torch.zeros(mask.shape, dtype=torch.long)
        masks_out = torch.zeros(len(video), c.max_objects, *mask.shape[-2:])
        for slot, object_id in enumerate(chosen):
            labels_out[mask == object_id] = slot + 1
            masks_out[:, slot] = (mask == object_id).float()
        selector = torch.zeros(c.max_objects)
        selector[: len(chosen)] = 1
        frames_out = self.normalise(video.float() / 255)
        return {"frames": frames_out.as_subclass(torch.Tensor), "masks": masks_out, "labels": labels_out,
                "selector": selector, "num_objects": len(chosen), "name": name}


class StaticPseudoVideos(Dataset):
    """XMem's stage 0: a clip made from one image and its mask by independent random warps
    (affine + elastic, a smooth stand-in for thin-plate splines) and colour changes per frame."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]] | None = None, sequences=None,
                 num_frames: int = 3, crop_size: int = 384, samples: int = 1000, seed: int = 0):
        if pairs is None and sequences is None:
            raise ValueError("give image/mask pairs or sequences to draw frames from")
        self.pairs, self.sequences = pairs, sequences
        self.num_frames, self.crop_size, self.samples, self.seed = num_frames, crop_size, samples, seed
        self.normalise = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.warp = v2.Compose([v2.RandomAffine(degrees=20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10),
                                v2.ElasticTransform(alpha=50.0, sigma=8.0),
                                v2.ColorJitter(0.1, 0.05, 0.05, 0)])

    def __len__(self) -> int:
        return self.samples

    def _pair(self, rng) -> tuple[np.ndarray, np.ndarray]:
        if self.pairs is not None:
            image, mask = self.pairs[int(rng.integers(len(self.pairs)))]
            return image, mask
        sequence = self.sequences[int(rng.integers(len(self.sequences)))]
        index = int(rng.choice(sorted(sequence.ground_truth)))
        return sequence.read_frame(index), sequence.read_mask(sequence.ground_truth[index])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, key) -> dict:
        index = key[0] if isinstance(key, tuple) else key
        rng = np.random.default_rng([self.seed, getattr(self, "epoch", 0), index])
        torch.manual_seed(int(rng.integers(2 ** 63 - 1)))
        image, mask = self._pair(rng)
        image = tv_tensors.Image(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1))
        mask = tv_tensors.Mask(torch.from_numpy((np.asarray(mask) > 0).astype(np.uint8)))
        base = v2.RandomResizedCrop(self.crop_size, scale=(0.5, 1.0), antialias=True)
        image, mask = base(image, mask)
        frames, masks = [], []
        for t in range(self.num_frames):
            warped_image, warped_mask = (image, mask) if t == 0 else self.warp(image, mask)
            frames.append(self.normalise(warped_image.float() / 255).as_subclass(torch.Tensor))
            masks.append(warped_mask.as_subclass(torch.Tensor).long())
        labels = torch.stack(masks)  # T x S x S in {0, 1}
        return {"frames": torch.stack(frames), "masks": labels.unsqueeze(1).float(), "labels": labels,
                "selector": torch.ones(1), "num_objects": 1, "name": f"static-{index}"}

