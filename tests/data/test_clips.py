"""Training clips: the frame sampler's invariants, the curriculum, items, determinism, loaders."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from qmvos_lab.data.clips import (ClipConfig, GeneratedSource, PastingSource, SequenceSource, StaticPseudoVideos,
                                  VOSClips, max_skip_at, sample_frame_indices, seed_worker)
from qmvos_lab.data.readers import read_davis
from qmvos_lab.data.synthetic import SyntheticConfig

# the 240p DAVIS-2016 train split, when the machine has it (never a default path inside the library)
SHARED_DAVIS = Path(os.environ.get("QMVOS_LAB_DAVIS16", "/nonexistent"))


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
    loader = DataLoader(clips, batch_size=4, num_workers=2, worker_init_fn=seed_worker, pin_memory=False)
    batch = next(iter(loader))
    direct = torch.stack([clips[i]["frames"] for i in range(4)])
    assert torch.equal(batch["frames"], direct)


def test_distributed_sampler_splits_the_items(clips):
    ranks = [list(DistributedSampler(clips, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    assert set(ranks[0]).isdisjoint(ranks[1]) and sorted(ranks[0] + ranks[1]) == list(range(12))


def test_curriculum_progress_reaches_workers_and_light_phase(clips):
    clips.set_progress(0.5)
    assert clips.max_skip == 15
    clips.set_progress(0.95)
    light = clips[0]
    clips.set_progress(0.0)
    assert light["frames"].shape == (5, 3, 64, 64)


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


@pytest.mark.skipif(not SHARED_DAVIS.is_dir(), reason="set QMVOS_LAB_DAVIS16 to the 240p DAVIS-2016 train split")
def test_davis16_train_split_clips():
    sequences = read_davis(SHARED_DAVIS, split="train", year=2016, resolution="240p")
    assert len(sequences) == 30
    data = VOSClips(PastingSource(SequenceSource(sequences)), ClipConfig(num_frames=4, crop_size=96), samples=2)
    item = data[0]
    assert item["frames"].shape == (4, 3, 96, 96) and item["num_objects"] >= 1
