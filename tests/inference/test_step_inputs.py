"""The edge of the step API (issue 31): what a notebook passes to `VideoSegmenter.step` is checked
with one-line UserErrors, or brought to one form (float frames in [0, 1], RGBA, bool masks), and a
refused call leaves the segmenter as it was."""

import numpy as np
import pytest
import torch

from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.errors import UserError
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model import build_network

from conftest import with_random_heads

H, W = 32, 48


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return with_random_heads(build_network(ModelConfig.of_size("small", queries=False))).eval()


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def mask():
    labels = np.zeros((H, W), np.uint8)
    labels[4:20, 6:30] = 3
    return labels


def segmenter(network):
    return VideoSegmenter(network, InferenceConfig(size=-1))


def one_line_user_error(call, match):
    with pytest.raises(UserError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_float_frame_in_0_1_is_the_uint8_frame(network, frame, mask):
    as_uint8 = segmenter(network).step(frame, mask)
    as_float = segmenter(network).step(frame.astype(np.float32) / 255, mask)  # matplotlib's imread
    torch.testing.assert_close(as_float.prob, as_uint8.prob)
    later_uint8 = segmenter(network)
    later_uint8.step(frame, mask)
    later_float = segmenter(network)
    later_float.step(frame / 255.0, mask)
    torch.testing.assert_close(later_float.step(frame / 255.0).prob, later_uint8.step(frame).prob)


def test_an_rgba_float_frame_drops_its_alpha(network, frame, mask):
    rgba = np.concatenate([frame / 255.0, np.ones((H, W, 1))], -1)  # a PNG read by matplotlib
    torch.testing.assert_close(segmenter(network).step(rgba, mask).prob, segmenter(network).step(frame, mask).prob)


def test_a_bool_mask_is_one_object(network, frame, mask):
    result = segmenter(network).step(frame, mask > 0)
    assert result.object_ids == [1]
    np.testing.assert_array_equal(result.labels, (mask > 0).astype(np.uint8))


@pytest.mark.parametrize("bad, match", [
    (lambda f: f.astype(np.float32), r"a float frame must lie in \[0, 1\] .*got 0..255"),
    (lambda f: np.full(f.shape, np.nan, np.float32), r"NaN"),
    (lambda f: f.astype(np.uint16) * 256, r"an integer frame must hold 0..255"),
    (lambda f: torch.from_numpy(f).permute(2, 0, 1), r"channels last.*permute\(1, 2, 0\)"),
    (lambda f: f[..., 0], r"must be an H x W x 3 RGB image, got shape \(32, 48\).*convert"),
    (lambda f: f[:0], r"must not be empty"),
], ids=["float-0-255", "float-nan", "uint16", "chw-tensor", "grey", "empty"])
def test_bad_frames_are_one_line_errors(network, frame, mask, bad, match):
    one_line_user_error(lambda: segmenter(network).step(bad(frame), mask), match)


@pytest.mark.parametrize("bad, match", [
    (lambda m: m * 0.3, r"fractional values \(a soft mask\?\).*\(mask > 0.5\)"),
    (lambda m: np.where(m > 0, -1, 0), r"negative id -1"),
    (lambda m: np.where(m > 0, 300, 0), r"label id 300 does not fit"),
    (lambda m: np.zeros_like(m), r"the first mask holds no object: every pixel is 0 \(background\)"),
    (lambda m: np.where(m > 0, 255, 0).astype(np.uint8), r"every pixel is 0 \(background\) or 255 \(void\).*mask == 255"),
    (lambda m: np.stack([m] * 3, -1), r"must be an H x W label map, got 32 x 48 x 3 \(an image\?\)"),
    (lambda m: m[:16], r"mask is 48x16 but the frame is 48x32"),
    (lambda m: np.where(m > 0, np.nan, 0), r"NaN"),
], ids=["soft", "negative", "too-big", "all-zero", "all-void", "rgb", "size", "nan"])
def test_bad_first_masks_are_one_line_errors(network, frame, mask, bad, match):
    one_line_user_error(lambda: segmenter(network).step(frame, bad(mask)), match)


def test_a_frame_of_another_size_mid_video_is_refused_and_the_video_goes_on(network, frame, mask):
    video = segmenter(network)
    video.step(frame, mask)
    one_line_user_error(lambda: video.step(frame[:, :32]), r"frame 1 is 32x32 but the first frame is 48x32")
    result = video.step(frame)  # the refused call left the segmenter as it was
    assert result.index == 1 and result.object_ids == [3]


def test_frames_below_the_stride_are_refused(network):
    one_line_user_error(lambda: segmenter(network).step(np.zeros((8, 8, 3), np.uint8), np.eye(8, dtype=np.uint8)),
                        r"the frames are 8x8, smaller than the network's stride \(16\); set InferenceConfig\(size=16\)")


def test_a_size_below_the_stride_is_refused(network, frame, mask):
    one_line_user_error(lambda: VideoSegmenter(network, InferenceConfig(size=8)).step(frame, mask),
                        r"InferenceConfig\(size=8\) is below 16, the network's stride")


def test_an_all_zero_later_mask_keeps_the_objects(network, frame, mask):
    video = segmenter(network)
    video.step(frame, mask)
    assert video.step(frame, np.zeros((H, W), np.uint8)).object_ids == [3]
