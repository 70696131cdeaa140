"""Training clips: the frame sampler's invariants, the curriculum, items, determinism, loaders."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from qmvos_lab.data.clips import (ClipConfig, GeneratedSource, PastingSource, SequenceSource, StaticPseudoVideos,
                                  VOSClips, max_skip_at, sample_frame_indices)
from qmvos_lab.data.readers import read_davis
from qmvos_lab.data.synthetic import SyntheticConfig

# the 240p DAVIS-2016 train split (JPEGImages/240p, Annotations/240p, ImageSets), when available
DAVIS16 = os.environ.get("QMVOS_LAB_DAVIS16", "")


def test_sampled_frames_are_sorted_in_range_and_within_the_skip():
    rng = np.random.default_rng(0)
    for _ in range(500):
        length, num, skip = int(rng.integers(1, 60)), int(rng.integers(1, 9)), int(rng.integers(1, 16))
        picked = sample_frame_indices(rng, length, num, skip)
        assert len(picked) == num and picked == sorted(picked)
        assert 0 <= picked[0] and picked[-1] < length
        if length >= num:
            assert len(set(picked)) == num
            assert all(b - a <= skip for a, b in zip(picked, picked[1:]))


def test_skip_curriculum():
    assert [max_skip_at(p) for p in (0.0, 0.09, 0.1, 0.29, 0.3, 0.89, 0.9, 1.0)] == [5, 5, 10, 10, 15, 15, 5, 5]
    # scaled for short generated videos, never below 1
    assert [max_skip_at(p, scale=0.2) for p in (0.0, 0.1, 0.3, 0.9)] == [1, 2, 3, 1]


@pytest.fixture(scope="module")
def clips():
    source = GeneratedSource(SyntheticConfig(length=12, num_objects=4), num_videos=6)
    return VOSClips(source, ClipConfig(num_frames=5, crop_size=64, min_object_pixels=20), samples=12, seed=3)


def test_items_are_consistent(clips):
    for index in range(6):
        item = clips[index]
        assert item["frames"].shape == (5, 3, 64, 64) and item["frames"].dtype == torch.float32
        assert item["masks"].shape == (5, 3, 64, 64) and item["labels"].shape == (5, 64, 64)
        n = item["num_objects"]
        assert 1 <= n <= 3 and item["selector"].tolist() == [1.0] * n + [0.0] * (3 - n)
        # labels and one-hot masks agree; missing slots are empty; every chosen object is in frame 0
        for slot in range(3):
            assert torch.equal(item["masks"][:, slot] > 0, item["labels"] == slot + 1)
        assert all((item["labels"][0] == slot + 1).sum() >= 20 for slot in range(n))


def test_items_depend_on_seed_epoch_and_index_only(clips):
    a, b = clips[4], clips[4]
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["labels"], b["labels"])
    clips.set_epoch(1)
    c = clips[4]
    clips.set_epoch(0)
    assert not torch.equal(a["frames"], c["frames"])


def test_two_workers_give_the_same_items_as_direct_indexing(clips):
    loader = DataLoader(clips, batch_size=4, num_workers=2, pin_memory=False)
    batch = next(iter(loader))
    direct = torch.stack([clips[i]["frames"] for i in range(4)])
    assert torch.equal(batch["frames"], direct)


def test_the_epoch_sampler_splits_items_by_rank_and_resumes_mid_epoch():
    """The kit's sampler (train.sampler.EpochSampler): one permutation per (seed, epoch), split across ranks
    without overlap, each item paired with the progress of the iteration that uses it."""
    from qmvos_lab.train.sampler import EpochSampler

    for world in (2, 3):
        samplers = [EpochSampler(10, seed=4, batch_size=2, iterations=30, rank=r, world=world) for r in range(world)]
        ranks = [[i for i, _ in sampler] for sampler in samplers]
        assert sorted(sum(ranks, [])) == list(range(10))  # every item once, on one rank
        assert all(set(a).isdisjoint(b) for k, a in enumerate(ranks) for b in ranks[k + 1:])
        assert ranks[0] != sorted(ranks[0])  # shuffled
    sampler = EpochSampler(10, seed=4, batch_size=2, iterations=30, rank=1, world=2)
    epoch0 = sampler.indices()
    sampler.set_position(epoch=1, start=0, first_iteration=2)
    assert sampler.indices() != epoch0  # another permutation each epoch
    sampler.set_position(epoch=0, start=2, first_iteration=5)  # resumed after one batch of epoch 0
    items = list(sampler)
    assert [i for i, _ in items] == epoch0[2:] and [p for _, p in items] == [5 / 30, 5 / 30, 6 / 30]
    assert len(sampler) == 3


class SkipReporting(GeneratedSource):
    """Names each clip after the max skip it was drawn with, so that a worker's choice comes back."""

    def sample(self, rng, num_frames, max_skip, video=None):
        frames, labels, _ = super().sample(rng, num_frames, max_skip, video)
        return frames, labels, f"skip={max_skip}"


def test_curriculum_progress_reaches_workers_through_the_sampler():
    """Workers prefetch ahead, so the progress comes with each item from the sampler, not from state."""
    from qmvos_lab.train.sampler import EpochSampler

    data = VOSClips(SkipReporting(SyntheticConfig(length=12, num_objects=2), num_videos=3),
                    ClipConfig(num_frames=3, crop_size=32, min_object_pixels=4), samples=8, seed=0)
    sampler = EpochSampler(8, seed=0, batch_size=2, iterations=4)
    sampler.set_position(epoch=0, start=0, first_iteration=0)
    loader = DataLoader(data, batch_size=2, sampler=sampler, num_workers=2, multiprocessing_context="fork")
    skips = [name for batch in loader for name in batch["name"]]
    # iterations 0..3 of 4: progress 0, .25, .5, .75 -> max skip 5, 10, 15, 15 of the curriculum
    assert skips == [f"skip={max_skip_at(p)}" for p in (0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75)]
    assert len(set(skips)) == 3  # (the light final phase reads the same progress, next to the skip)


def test_pasting_makes_multi_object_clips_from_single_object_videos():
    single = GeneratedSource(SyntheticConfig(num_objects=1, length=6, similarity=0.0), num_videos=4)
    pasted = PastingSource(single, max_pasted=2)
    frames, labels, name = pasted.sample(np.random.default_rng(1), 4, 3)
    assert "+" in name and frames.shape[:3] == labels.shape
    ids = set(np.unique(labels).tolist())
    assert max(ids) >= 2 and ids <= {0, 1, 2, 3}  # pasted objects take the next ids


def test_static_pseudo_videos_from_image_mask_pairs():
    image = np.zeros((80, 100, 3), np.uint8)
    mask = np.zeros((80, 100), np.uint8)
    mask[20:60, 30:70] = 1
    image[mask > 0] = 200
    data = StaticPseudoVideos(pairs=[(image, mask)], num_frames=3, crop_size=48, samples=2)
    item = data[0]
    assert item["frames"].shape == (3, 3, 48, 48) and item["labels"].shape == (3, 48, 48)
    assert set(item["labels"].unique().tolist()) <= {0, 1} and item["labels"][0].sum() > 0
    assert not torch.equal(item["labels"][0], item["labels"][1])  # each frame is warped differently


@pytest.mark.skipif(not DAVIS16, reason="set QMVOS_LAB_DAVIS16 to the DAVIS-2016 240p folder to run this")
def test_davis16_train_split_clips():
    sequences = read_davis(Path(DAVIS16), split="train", year=2016, resolution="240p")
    assert len(sequences) == 30
    data = VOSClips(PastingSource(SequenceSource(sequences)), ClipConfig(num_frames=4, crop_size=96), samples=2)
    item = data[0]
    assert item["frames"].shape == (4, 3, 96, 96) and item["num_objects"] >= 1


def _random_resized_crop_scale(transform):
    return next(t for t in transform.transforms if type(t).__name__ == "RandomResizedCrop").scale


def test_crop_scale_sets_the_area_of_the_random_crop_and_the_light_phase_keeps_its_upper_half():
    from qmvos_lab.data.clips import clip_augmentation

    assert _random_resized_crop_scale(clip_augmentation(64, light=False)) == (0.36, 1.0)  # XMem's ranges
    assert _random_resized_crop_scale(clip_augmentation(64, light=True)) == (0.5, 1.0)
    assert _random_resized_crop_scale(clip_augmentation(64, False, (0.2, 0.4))) == (0.2, 0.4)
    assert _random_resized_crop_scale(clip_augmentation(64, True, (0.2, 0.4))) == (0.2, 0.4)


def test_a_crop_of_a_fifth_to_two_fifths_of_a_generated_frame_keeps_objects_near_their_size():
    """cpu-tiny's crop_scale: 64² crops of 96 x 160 frames at area 0.2-0.4 zoom by 0.8-1.15 (object
    area x 0.67-1.33, less where a crop cuts an object), where XMem's 0.36-1 shrinks objects to under half."""
    source = GeneratedSource(SyntheticConfig(length=8, num_objects=1, occlusion_rate=0), num_videos=8)
    object_area = np.mean([(source.video(k).labels[0] > 0).sum() for k in range(8)])  # in the videos

    def area_ratio(crop_scale):
        clips = VOSClips(source, ClipConfig(num_frames=2, crop_size=64, min_object_pixels=1, crop_scale=crop_scale),
                         samples=24, seed=0)
        # the light phase (progress 0.95): no per-frame jitter, the crop alone
        return np.median([clips[(index, 0.95)]["labels"][0].sum().item() for index in range(24)]) / object_area

    assert 0.55 < area_ratio((0.2, 0.4)) < 1.4
    assert area_ratio((0.36, 1.0)) < 0.5
    from qmvos_lab.train.presets import preset

    with pytest.raises(ValueError, match="crop_scale"):
        preset("cpu-tiny", crop_scale=(0.5, 0.2))
