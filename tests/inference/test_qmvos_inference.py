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


def test_deleting_an_object_drops_its_query(nets, video):
    frames, masks = video
    segmenter = VideoSegmenter(nets[0], InferenceConfig(size=-1))
    segmenter.step(frames[0], masks[0])
    segmenter.step(frames[1])
    segmenter.delete_objects([4])
    assert segmenter.core.queries.shape[1] == 1
    assert segmenter.step(frames[2]).object_ids == [2]
