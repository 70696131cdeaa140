"""QMVOS's query propagation (Table 3e) is one rule, the model's, and both inference and training use it."""

import pytest
import torch

from conftest import with_random_heads
from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model import QMVOS, hard_masks
from qmvos_lab.train import TrainWrapper


def spy_network(propagation: str):
    """A small QMVOS that records the queries each `segment` gets and each `propagate_queries` call."""
    torch.manual_seed(0)
    net = with_random_heads(QMVOS(ModelConfig.of_size("small", queries=True, query_propagation=propagation)))
    net.segment_queries, net.propagations = [], []
    segment, propagate = net.segment, net.propagate_queries

    def recording_segment(*args, **kwargs):
        net.segment_queries.append(kwargs["queries"].detach().clone())
        return segment(*args, **kwargs)

    def recording_propagate(features, prob_with_bg, previous, *args, **kwargs):
        out = propagate(features, prob_with_bg, previous, *args, **kwargs)
        net.propagations.append((prob_with_bg.detach().clone(), out[0].detach().clone()))
        return out

    net.segment, net.propagate_queries = recording_segment, recording_propagate
    return net


def test_the_rule_pools_the_hard_prediction_or_keeps_the_known_queries():
    torch.manual_seed(0)
    net = QMVOS(ModelConfig.of_size("small", queries=True, query_propagation="first")).eval()
    features = net.encode_key(torch.randn(1, 3, 64, 64))[3:]
    prob = torch.softmax(torch.randn(1, 4, 64, 64), 1)  # background + 3 objects
    known = torch.randn(1, 2, 64)
    queries, _ = net.propagate_queries(features, prob, known)
    fresh = net.init_queries(features, hard_masks(prob))
    assert torch.equal(queries[:, :2], known)  # known objects keep theirs ...
    torch.testing.assert_close(queries[:, 2:], fresh[:, 2:])  # ... the new one takes the SIM's
    net.config.query_propagation = "previous"
    torch.testing.assert_close(net.propagate_queries(features, prob, known)[0], fresh)


@pytest.mark.parametrize("propagation", ["previous", "first"])
def test_training_uses_the_models_rule(propagation):
    net = spy_network(propagation)
    frames, masks = torch.randn(1, 4, 3, 64, 64), torch.zeros(1, 4, 2, 64, 64)
    masks[:, :, 0, :32], masks[:, :, 1, 32:] = 1, 1
    out = TrainWrapper(net)(frames, masks, torch.ones(1, 2), torch.Generator().manual_seed(0))
    assert len(out["logits"]) == 3 and len(net.segment_queries) == 3
    assert len(net.propagations) == 2  # after every segmented frame but the last
    for (prob, propagated), used in zip(net.propagations, net.segment_queries[1:]):
        torch.testing.assert_close(used, propagated)  # the next frame is segmented with the rule's queries
    if propagation == "first":
        assert all(torch.equal(q, net.segment_queries[0]) for q in net.segment_queries)
    else:
        assert not torch.allclose(net.segment_queries[1], net.segment_queries[0])


@pytest.mark.parametrize("propagation", ["previous", "first"])
def test_inference_uses_the_models_rule(propagation):
    video = generate_video(SyntheticConfig(num_objects=2, length=6, height=48, width=64), seed=3)
    net = spy_network(propagation).eval()
    segmenter = VideoSegmenter(net, InferenceConfig(size=-1))
    given = video.given_masks()
    for t, frame in enumerate(video.frames):
        segmenter.step(frame, given.get(t), end=t == len(video.frames) - 1)
    assert len(net.propagations) == len(video.frames) - 1  # every frame but the last one
    assert len(net.segment_queries) == len(video.frames) - 1  # every frame but the first one
    for (_, propagated), used in zip(net.propagations, net.segment_queries):
        torch.testing.assert_close(used, propagated)
    if propagation == "first":
        assert all(torch.equal(q, net.segment_queries[0]) for q in net.segment_queries)
