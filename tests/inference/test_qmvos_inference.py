"""QMVOS inference: queries carried between frames, objects entering later, attention recording."""

import numpy as np
import pytest
import torch

from conftest import make_video, with_random_heads
from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.frames import FrameSource, load_given_masks
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.inference.preprocess import to_image_tensor
from qmvos_lab.model import QMVOS
from qmvos_lab.model.sim import masked_average_pooling


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames_dir, masks_dir, _ = make_video(tmp_path_factory.mktemp("qvideo"))
    source = FrameSource(frames_dir)
    return list(source), load_given_masks(masks_dir, source.names, (48, 64))


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    previous = with_random_heads(QMVOS(ModelConfig(queries=True))).eval()
    first = QMVOS(ModelConfig(queries=True, query_propagation="first")).eval()
    first.load_state_dict(previous.state_dict())
    return previous, first


def test_queries_follow_the_previous_prediction(nets, video):
    frames, masks = video
    net = nets[0]
    segmenter = VideoSegmenter(net, InferenceConfig(size=-1))
    segmenter.step(frames[0], masks[0])
    result = segmenter.step(frames[1])
    # the queries now held are the SIM of frame 1's features under frame 1's hard prediction
    with torch.no_grad():
        features = net.encode_key(to_image_tensor(frames[1])[None])[3:]
        hard = torch.from_numpy(result.labels.astype(np.int64))
        masks_1 = torch.stack([hard == i for i in segmenter.object_ids])[None]  # 1 x N x H x W
        expected = net.init_queries(features, masks_1)
    torch.testing.assert_close(segmenter.core.queries, expected, rtol=1e-4, atol=1e-4)


def test_late_objects_keep_the_known_queries(nets, video):
    """The released code rebuilds every query from a late annotation alone, so the tracked objects
    get an all-zero query; here they keep theirs from the prediction."""
    frames, masks = video
    segmenter = VideoSegmenter(nets[0], InferenceConfig(size=-1))
    for t in range(5):
        segmenter.step(frames[t], masks.get(t))
    queries = segmenter.core.queries
    assert queries.shape[1] == 3
    norms = queries.norm(dim=-1)[0]
    assert (norms > 1).all()  # LayerNorm output: no all-zero query
    pooled_only = QMVOS(ModelConfig(queries=True, sim_interaction=False)).eval()
    pooled_only.load_state_dict(nets[0].state_dict(), strict=False)
    seg2 = VideoSegmenter(pooled_only, InferenceConfig(size=-1))
    for t in range(5):
        seg2.step(frames[t], masks.get(t))
    assert (seg2.core.queries.abs().sum(-1) > 0).all()  # the pooled features of known objects are not zero


def test_first_frame_propagation_keeps_queries(nets, video):
    frames, masks = video
    segmenter = VideoSegmenter(nets[1], InferenceConfig(size=-1))
    segmenter.step(frames[0], masks[0])
    first = segmenter.core.queries.clone()
    for t in range(1, 6):
        segmenter.step(frames[t], masks.get(t))
    held = segmenter.core.queries
    assert held.shape[1] == 3
    torch.testing.assert_close(held[:, :2], first)  # the known objects keep their first-frame queries
    previous = VideoSegmenter(nets[0], InferenceConfig(size=-1))
    previous.step(frames[0], masks[0])
    previous.step(frames[1])
    assert not torch.allclose(previous.core.queries, first)


def test_attention_is_recorded_on_request(nets, video):
    frames, masks = video
    segmenter = VideoSegmenter(nets[0], InferenceConfig(size=-1), record_attention=True)
    assert segmenter.step(frames[0], masks[0]).attention is None  # nothing segmented on a given frame
    result = segmenter.step(frames[1])
    assert result.attention["cross"].shape == (1, 2, 8, 2, 3, 4)
    assert result.internal_ids == [2, 4]  # new ids join in ascending order
    quiet = VideoSegmenter(nets[0], InferenceConfig(size=-1))
    quiet.step(frames[0], masks[0])
    plain = quiet.step(frames[1])
    assert plain.attention is None
    np.testing.assert_array_equal(plain.labels, result.labels)


def frame_features(net, frame):
    with torch.no_grad():
        return net.encode_key(to_image_tensor(frame)[None])[3:]


def hard_masks(labels, ids):
    hard = torch.from_numpy(labels.astype(np.int64))
    return torch.stack([hard == i for i in ids])[None]  # 1 x N x H x W


def test_a_late_object_gets_the_sim_query_of_its_given_mask(nets, video):
    frames, masks = video
    late_mask = masks[4]
    pooled_only = QMVOS(ModelConfig(queries=True, sim_interaction=False)).eval()
    pooled_only.load_state_dict(nets[0].state_dict(), strict=False)
    for net in (nets[0], pooled_only):
        segmenter = VideoSegmenter(net, InferenceConfig(size=-1))
        for t in range(5):
            result = segmenter.step(frames[t], masks.get(t))
        # the late frame reproduces the given mask: object 7 exactly there, and nowhere else
        np.testing.assert_array_equal(result.labels == 7, late_mask == 7)
        assert result.object_ids == [2, 4, 7] and segmenter.core.queries.shape[1] == 3
        features = frame_features(net, frames[4])
        with torch.no_grad():
            # the SIM of the frame under its hard masks: the prediction for 2 and 4, the given mask for 7
            expected = net.init_queries(features, hard_masks(result.labels, [2, 4, 7]))
            torch.testing.assert_close(segmenter.core.queries, expected, rtol=1e-4, atol=1e-4)
            if net is pooled_only:  # without interaction, the late query is the pooled feature under its mask
                given = torch.from_numpy(late_mask == 7)[None, None].float()
                pooled = masked_average_pooling(net.sim_feature(*features), given)[0, 0]
                torch.testing.assert_close(segmenter.core.queries[0, 2], pooled, rtol=1e-4, atol=1e-4)


def test_deleting_an_object_removes_its_query_and_memory_rows(nets, video):
    frames, masks = video
    for gone, kept_rows in (([4], [0, 2]), ([7], [0, 1])):  # an object of the first group, the late group
        segmenter = VideoSegmenter(nets[0], InferenceConfig(size=-1))
        for t in range(6):
            segmenter.step(frames[t], masks.get(t))
        core = segmenter.core
        queries, hidden = core.queries.clone(), core.objects.hidden.clone()
        values = [v.clone() for v in core.memory.work_mem.values]
        assert core.memory.work_mem.groups == [[0, 1], [2]]
        segmenter.delete_objects(gone)
        torch.testing.assert_close(core.queries, queries[:, kept_rows], rtol=0, atol=0)
        torch.testing.assert_close(core.objects.hidden, hidden[:, kept_rows], rtol=0, atol=0)
        if gone == [4]:
            assert core.memory.work_mem.groups == [[0], [1]]
            torch.testing.assert_close(core.memory.work_mem.values[0], values[0][[0]], rtol=0, atol=0)
            torch.testing.assert_close(core.memory.work_mem.values[1], values[1], rtol=0, atol=0)
        else:
            assert core.memory.work_mem.groups == [[0, 1]] and len(core.memory.work_mem.values) == 1
            torch.testing.assert_close(core.memory.work_mem.values[0], values[0], rtol=0, atol=0)
        result = segmenter.step(frames[6])
        assert result.object_ids == sorted({2, 4, 7} - set(gone)) and set(np.unique(result.labels)) <= {0, *result.object_ids}


def test_deletion_then_a_late_join_match_a_segmenter_that_never_saw_the_deleted_object(video):
    """Each object's memory and query from its own mask only (single-object values, no SIM
    interaction): after object 4 is deleted, and object 7 joins, everything is what a segmenter
    that only ever saw objects 2 and 7 computes."""
    frames, masks = video
    torch.manual_seed(0)
    net = with_random_heads(QMVOS(ModelConfig(queries=True, single_object=True, sim_interaction=False))).eval()
    deleted = VideoSegmenter(net, InferenceConfig(size=-1, mem_every=2))
    never = VideoSegmenter(net, InferenceConfig(size=-1, mem_every=2))
    without_4 = {0: np.where(masks[0] == 2, 2, 0).astype(np.uint8), 4: masks[4]}
    for t in range(len(frames)):
        end = t == len(frames) - 1
        a, b = deleted.step(frames[t], masks.get(t), end=end), never.step(frames[t], without_4.get(t), end=end)
        if t == 0:
            deleted.delete_objects([4])
            continue
        assert a.object_ids == b.object_ids == ([2] if t < 4 else [2, 7])
        torch.testing.assert_close(a.prob, b.prob, atol=1e-5, rtol=0)
        torch.testing.assert_close(deleted.core.queries, never.core.queries, atol=1e-5, rtol=0)
