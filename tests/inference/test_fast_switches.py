"""The fast-path switches of inference (inference/fast.py): channels-last keeps the fp32 result,
autocast runs in bf16 on the CPU and stays close, and the switches reach the segment command."""

import copy

import numpy as np
import pytest
import torch

from conftest import make_video, with_random_heads
from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.frames import FrameSource, load_given_masks
from qmvos_lab.inference import VideoSegmenter, segment_video
from qmvos_lab.inference.fast import autocast, autocast_dtype, prepare_network
from qmvos_lab.model import QMVOS


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames_dir, masks_dir, _ = make_video(tmp_path_factory.mktemp("video"), num_frames=6)
    source = FrameSource(frames_dir)
    return list(source), load_given_masks(masks_dir, source.names, (48, 64))


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return with_random_heads(QMVOS(ModelConfig.of_size("small", queries=True))).eval()


def probabilities(network, video, **switches):
    frames, masks = video
    segmenter = VideoSegmenter(network, InferenceConfig(size=-1), **switches)
    return [r.prob for r in segment_video(segmenter, frames, masks, num_frames=len(frames))]


def test_channels_last_keeps_the_fp32_result(network, video):
    reference = probabilities(copy.deepcopy(network), video)
    fast_net = copy.deepcopy(network)
    fast = probabilities(fast_net, video, channels_last=True)
    assert fast_net.key_encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(reference, fast):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # fp32, another summation order


def test_cpu_autocast_is_bf16_and_close(network, video):
    assert autocast_dtype("cpu") == torch.bfloat16
    with autocast("cpu", True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with autocast("cpu", False):
        assert not torch.is_autocast_enabled("cpu")
    reference = probabilities(network, video)
    reduced = probabilities(network, video, amp=True)
    assert all(p.dtype == torch.float32 for p in reduced)  # results come back in fp32
    differences = [(a - b).abs().max().item() for a, b in zip(reference, reduced)]
    assert 0 < max(differences) < 0.5  # bf16 really ran (not bit-equal), and stays near fp32
    agreement = np.mean([(a.argmax(0) == b.argmax(0)).float().mean().item() for a, b in zip(reference, reduced)])
    assert agreement > 0.9


def test_compile_is_applied_once_in_place(network):
    net = prepare_network(copy.deepcopy(network), compile=True)
    compiled = net.key_encoder._compiled_call_impl
    assert compiled is not None and net._qmvos_lab_compiled
    prepare_network(net, compile=True)
    assert net.key_encoder._compiled_call_impl is compiled  # not compiled twice
    assert set(net.state_dict()) == set(network.state_dict())  # the keys stay the released ones
