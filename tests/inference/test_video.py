"""The step API: label-id mapping, objects entering later, mask precedence, deletion, resizing."""

import numpy as np
import pytest
import torch

from conftest import make_video, with_random_heads
from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.frames import FrameSource, load_given_masks
from qmvos_lab.errors import UserError
from qmvos_lab.inference import InferenceCore, VideoSegmenter, segment_video
from qmvos_lab.model import XMem
from qmvos_lab.model.aggregate import aggregate
from qmvos_lab.inference.preprocess import pad_to_multiple, resized_shape, to_image_tensor, unpad


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames_dir, masks_dir, labels = make_video(tmp_path_factory.mktemp("video"))
    source = FrameSource(frames_dir)
    return list(source), load_given_masks(masks_dir, source.names, (48, 64)), labels


def run(network, video, **config):
    frames, masks, _ = video
    segmenter = VideoSegmenter(network, InferenceConfig(**{"size": -1, **config}))
    return segmenter, list(segment_video(segmenter, frames, masks, num_frames=len(frames)))


def test_ids_are_mapped_back_and_late_objects_join(small_xmem, video):
    segmenter, results = run(small_xmem, video)
    assert results[0].object_ids == [2, 4]
    assert results[4].object_ids == [2, 4, 7] and results[-1].object_ids == [2, 4, 7]
    for result in results:
        assert result.labels.shape == (48, 64) and result.labels.dtype == np.uint8
        assert set(np.unique(result.labels)) <= {0, *result.object_ids}
        assert result.prob.shape == (len(result.object_ids) + 1, 48, 64)
        torch.testing.assert_close(result.prob.sum(0), torch.ones(48, 64), atol=1e-4, rtol=0)
    # frames with a given mask reproduce it exactly
    np.testing.assert_array_equal(results[0].labels, video[1][0])
    late_mask = video[1][4]
    np.testing.assert_array_equal(results[4].labels == 7, late_mask == 7)  # the late object is its mask


def test_inference_is_deterministic(small_xmem, video):
    _, first = run(small_xmem, video)
    _, second = run(small_xmem, video)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.labels, b.labels)
        torch.testing.assert_close(a.prob, b.prob, rtol=0, atol=0)


def test_a_later_mask_keeps_existing_objects_where_it_is_background(small_xmem, video):
    frames, masks, _ = video
    segmenter = VideoSegmenter(small_xmem, InferenceConfig(size=-1))
    segmenter.step(frames[0], masks[0])
    before = segmenter.step(frames[1])
    # a second segmenter sees the same frame 1 with a mask that only adds object 9 in a corner
    other = VideoSegmenter(small_xmem, InferenceConfig(size=-1))
    other.step(frames[0], masks[0])
    corner = np.zeros((48, 64), np.uint8)
    corner[:4, :4] = 9
    after = other.step(frames[1], corner)
    assert after.object_ids == [2, 4, 9]
    assert (after.labels[:4, :4] == 9).all()
    # as XMem: the prediction of the known objects, zeroed under the given foreground, and the given
    # mask for the new object, soft-aggregated together
    known = before.prob[1:].clone()
    known[:, :4, :4] = 0
    expected = aggregate(torch.cat([known, torch.from_numpy(corner == 9).float()[None]]), dim=0)
    torch.testing.assert_close(after.prob, expected, atol=1e-7, rtol=0)  # the same arithmetic: no slack


def test_frames_before_the_first_mask_are_background(small_xmem, video):
    frames, masks, _ = video
    segmenter = VideoSegmenter(small_xmem, InferenceConfig(size=-1))
    empty = segmenter.step(frames[0])
    assert empty.object_ids == [] and not empty.labels.any()
    assert segmenter.step(frames[1], masks[0]).object_ids == [2, 4]


@pytest.fixture(scope="module")
def single_object_xmem():
    """Values encoded from each object's own mask (XMem stage 0): an object's memory does not depend
    on the other objects, so deleting one leaves exactly what a segmenter without it computes."""
    torch.manual_seed(0)
    return with_random_heads(XMem(ModelConfig(single_object=True))).eval()


def keep_ids(label_map, ids):
    return np.where(np.isin(label_map, ids), label_map, 0).astype(np.uint8)


def play(segmenter, frames, masks, start=0, delete=None):
    """Step frames[start:], with `masks` by frame index; `delete` = (after frame t, ids)."""
    results = {}
    for t in range(start, len(frames)):
        results[t] = segmenter.step(frames[t], masks.get(t), end=t == len(frames) - 1)
        if delete is not None and delete[0] == t:
            segmenter.delete_objects(delete[1])
    return results


def assert_same_frames(a, b, frames):
    for t in frames:
        assert a[t].object_ids == b[t].object_ids
        torch.testing.assert_close(a[t].prob, b[t].prob, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a[t].labels, b[t].labels)


def test_deleting_objects_leaves_what_a_segmenter_that_never_saw_them_computes(single_object_xmem, video):
    frames, masks, _ = video
    config = InferenceConfig(size=-1, mem_every=2)
    # object 2 deleted after the first frame, then object 7 joins on frame 4 (groups stay aligned)
    deleted = play(VideoSegmenter(single_object_xmem, config), frames, masks, delete=(0, [2]))
    never = play(VideoSegmenter(single_object_xmem, config), frames, {0: keep_ids(masks[0], [4]), 4: masks[4]})
    assert deleted[1].object_ids == [4] and deleted[4].object_ids == [4, 7]
    assert_same_frames(deleted, never, range(1, 8))
    # the first group deleted after a later one joined: its older memory frames go with it
    segmenter = VideoSegmenter(single_object_xmem, config)
    deleted = play(segmenter, frames, masks, delete=(4, [2, 4]))
    assert segmenter.core.memory.work_mem.groups == [[0]]
    late_only = play(VideoSegmenter(single_object_xmem, config), frames, {4: masks[4]}, start=4)
    assert_same_frames(deleted, late_only, range(5, 8))
    with pytest.raises(UserError, match="unknown object ids"):
        segmenter.delete_objects([3])
    segmenter.delete_objects([7])
    assert segmenter.step(frames[3]).object_ids == []


def test_resized_inference_returns_the_original_resolution(small_xmem, video):
    _, results = run(small_xmem, video, size=32)
    assert all(r.labels.shape == (48, 64) and r.prob.shape[-2:] == (48, 64) for r in results)


def test_long_term_memory_is_used_on_long_runs(small_xmem, video):
    """Consolidated prototypes are read: long-term elements take part of the affinity of every
    readout, so their usage keeps growing, and memory stays bounded."""
    frames, masks, _ = video
    segmenter = VideoSegmenter(small_xmem, InferenceConfig(size=-1, mem_every=1, max_mid_term_frames=3,
                                                           min_mid_term_frames=2, num_prototypes=4,
                                                           max_long_term_elements=300))
    usage = []
    for t in range(16):
        segmenter.step(frames[t % len(frames)], masks[0] if t == 0 else None)
        memory = segmenter.core.memory
        assert memory.work_mem.size < 3 * 12 and memory.long_mem.size <= 300
        if memory.long_mem.engaged():
            usage.append(memory.long_mem.use_count.sum().item())
    assert memory.long_mem.size == 4 * 14  # a consolidation on every frame from the third
    assert len(usage) == 14 and all(b > a for a, b in zip(usage, usage[1:]))  # every readout uses long-term memory
    with torch.inference_mode():  # as the core reads
        key, _, selection = small_xmem.encode_key(to_image_tensor(frames[0])[None])[:3]
        _, affinities = memory.match_memory(key, selection, return_affinity=True)
    long_weight = affinities[0][0, :memory.long_mem.size].sum(0)  # hw: the weight on long-term elements
    assert (long_weight > 0).float().mean() > 0.5 and long_weight.max() > 0.2


def test_mask_errors(small_xmem, video):
    frames, masks, _ = video
    segmenter = VideoSegmenter(small_xmem, InferenceConfig(size=-1))
    with pytest.raises(UserError, match="mask is 10x10 but the frame is 64x48"):
        segmenter.step(frames[0], np.zeros((10, 10), np.uint8))
    many = np.arange(48 * 64, dtype=np.int64).reshape(48, 64) % 300
    with pytest.raises(UserError, match="label id 299 does not fit"):  # ids 1..254: never more than 254 objects
        segmenter.step(frames[0], many)


def test_padding_round_trip_and_resized_shape():
    x = torch.randn(2, 37, 50)
    padded, pad = pad_to_multiple(x, 16)
    assert padded.shape == (2, 48, 64) and pad == (7, 7, 5, 6)
    torch.testing.assert_close(unpad(padded, pad), x)
    assert resized_shape(240, 427, 480) == (480, 854)
    assert resized_shape(427, 240, 120) == (213, 120)
    assert resized_shape(50, 60, -1) == (50, 60)


def test_end_frame_stores_nothing(small_xmem, video):
    frames, masks, _ = video
    core_config = InferenceConfig(size=-1, mem_every=1)
    segmenter = VideoSegmenter(small_xmem, core_config)
    segmenter.step(frames[0], masks[0])
    size = segmenter.core.memory.work_mem.size
    segmenter.step(frames[1], end=True)
    assert segmenter.core.memory.work_mem.size == size
    assert isinstance(segmenter.core, InferenceCore)
