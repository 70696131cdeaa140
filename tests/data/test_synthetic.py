"""The generated video set: determinism, exact ground truth, the knobs, the DAVIS layout on disk."""

import dataclasses

import numpy as np
import pytest

from qmvos_lab.data.readers import read_davis
from qmvos_lab.data.synthetic import (SPLITS, SyntheticConfig, generate_video, plan_objects, plan_scene, rasterise,
                                      split_videos, write_split)


def test_same_seed_same_video_and_different_seeds_differ():
    config = SyntheticConfig(length=6)
    a, b, c = generate_video(config, 7), generate_video(config, 7), generate_video(config, 8)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)


def test_ground_truth_is_the_rasterisation_the_frame_was_painted_from():
    config = SyntheticConfig(num_objects=4, length=8, occlusion_rate=1.0, camera_motion=0.0)
    video = generate_video(config, 3)
    plans = plan_scene(config, 3)[-1]
    h, w = config.height, config.width
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    for t in range(config.length):
        label = video.labels[t]
        covered = np.zeros((h, w), bool)
        for i, plan in enumerate(plans):
            inside, colour = rasterise(plan, t, config, ys, xs)
            covered |= inside
            mine = label == i + 1
            assert (inside[mine]).all()  # an object's label never leaves its shape
            expected = (colour[mine] * 255).round().astype(np.uint8)
            np.testing.assert_array_equal(video.frames[t][mine], expected)  # and carries its colours exactly
        assert ((label > 0) == covered).all()  # every covered pixel is labelled, no other


def test_similarity_brings_objects_closer_in_colour():
    def spread(similarity):
        distances = []
        for seed in range(12):
            plans = plan_objects(np.random.default_rng(seed), SyntheticConfig(similarity=similarity))
            colours = np.stack([p.colour_a for p in plans])
            distances.append(np.abs(colours[:, None] - colours[None]).sum(-1).mean())
        return np.mean(distances)

    assert spread(0.95) < 0.5 * spread(0.0)


def test_objects_entering_later_get_their_mask_on_their_first_frame():
    video = generate_video(SyntheticConfig(num_objects=4, enter_prob=1.0, length=20), 5)
    assert video.first_frame[0] == 0 and max(video.first_frame) > 0
    given = video.given_masks()
    for index, t in enumerate(video.first_frame):
        if t >= 0:
            np.testing.assert_array_equal(given[t] == index + 1, video.labels[t] == index + 1)
            assert not (video.labels[:t] == index + 1).any()


def test_knobs_are_validated_and_splits_fixed():
    with pytest.raises(ValueError, match="similarity"):
        SyntheticConfig(similarity=1.5)
    with pytest.raises(ValueError, match="num_objects"):
        SyntheticConfig(num_objects=0)
    assert SPLITS["synthetic-val"].num_videos >= 20
    hard, val = SPLITS["synthetic-hard"].config, SPLITS["synthetic-val"].config
    assert hard.similarity > val.similarity and hard.occlusion_rate > val.occlusion_rate
    names = [v.name for v in split_videos("synthetic-val", 2, length=3)]
    assert names == ["synthetic-val-000", "synthetic-val-001"]
    small = next(split_videos("synthetic-val", 1, height=48, width=64, length=2))
    assert small.frames.shape == (2, 48, 64, 3) and dataclasses.is_dataclass(small)


def test_split_on_disk_reads_back_through_the_davis_reader(tmp_path):
    write_split(tmp_path, "synthetic-hard", num_videos=2, length=5, enter_prob=1.0)
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}")]
    sequences = read_davis(tmp_path, split="synthetic-hard", resolution="96p")
    assert [s.name for s in sequences] == ["synthetic-hard-000", "synthetic-hard-001"]
    video = next(split_videos("synthetic-hard", 1, length=5, enter_prob=1.0))
    sequence = sequences[0]
    assert len(sequence) == 5 and len(sequence.ground_truth) == 5
    assert sorted(sequence.given) == sorted(video.given_masks())
    np.testing.assert_array_equal(sequence.read_mask(sequence.ground_truth[3]), video.labels[3])
    # frames are JPEGs of the rendered frames
    assert np.abs(sequence.read_frame(2).astype(int) - video.frames[2]).mean() < 4
