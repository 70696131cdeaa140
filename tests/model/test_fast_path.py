"""The exact fast paths of the network: each equals the plain computation it replaces.

* `hard_masks` takes the winner with `max(...).indices`: the same one-hot as `argmax`, ties included.
* `QMVOS.propagate_queries` samples the probabilities on the SIM's grid before taking the winner:
  the same masks, pixel for pixel, as sampling the full-resolution hard masks, so the same queries
  (up to the summation order of a contiguous against a strided mask).
* The fusion block computes the image feature's share of its first convolutions once for all
  objects (`res_block_on_concat`): equal to the concatenated block up to fp32 summation order.
"""

import pytest
import torch
import torch.nn.functional as F

from conftest import with_random_heads
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import QMVOS, hard_masks
from qmvos_lab.model.blocks import FeatureFusionBlock, broadcast_to_objects, res_block_on_concat


def argmax_one_hot(prob_with_bg: torch.Tensor) -> torch.Tensor:
    winner = prob_with_bg.argmax(dim=1)  # B x H x W
    return F.one_hot(winner, prob_with_bg.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob_with_bg.dtype)


def test_hard_masks_equal_argmax_including_ties():
    torch.manual_seed(0)
    prob = torch.softmax(torch.randn(2, 4, 24, 40), dim=1)
    # exact ties: quantised probabilities tie often, and whole tied rows (all equal) too
    tied = (prob * 4).round() / 4
    tied[:, :, :3] = 0.25
    for p in (prob, tied):
        assert torch.equal(hard_masks(p), argmax_one_hot(p))
    assert (tied[:, :, :3].argmax(1) == 0).all() and hard_masks(tied)[:, :, :3].sum() == 0  # ties -> the first


@pytest.mark.parametrize("scales", [("f16", "f8"), ("f16",), ("f8",), ("f16", "f8", "f4")])
def test_query_propagation_pools_the_full_resolution_winners(scales):
    torch.manual_seed(0)
    net = with_random_heads(QMVOS(ModelConfig.of_size("small", queries=True, sim_scales=scales))).eval()
    with torch.no_grad():
        features = net.encode_key(torch.randn(1, 3, 64, 96))[3:]
        prob = torch.softmax(torch.randn(1, 4, 64, 96) * 3, dim=1)
        queries, _ = net.propagate_queries(features, prob, None)
        expected, _ = net.sim(features, argmax_one_hot(prob))  # full-resolution hard masks, pooled
        grid = net.sim_feature(*features).shape[-2:]
    # the masks pooled are the same, pixel for pixel ...
    on_grid = hard_masks(F.interpolate(prob, size=grid, mode="nearest"))
    assert torch.equal(on_grid, F.interpolate(argmax_one_hot(prob), size=grid, mode="nearest"))
    # ... and so are the queries, but for the summation order of a contiguous vs a strided mask
    torch.testing.assert_close(queries, expected, rtol=1e-5, atol=1e-6)


def plain_fusion(block: FeatureFusionBlock, x, g):
    g = block.block1(torch.cat([broadcast_to_objects(x, g.shape[1]), g], 2))
    return block.block2(g + block.attention(g.flatten(0, 1)).view_as(g))


@pytest.mark.parametrize("num_objects", [1, 2, 3])
def test_fusion_computes_the_image_share_once(num_objects):
    torch.manual_seed(0)
    block = FeatureFusionBlock(64, 48, 32, 32).eval()
    x, g = torch.randn(2, 64, 6, 10), torch.randn(2, num_objects, 48, 6, 10)  # x not post-relu: relu(x) matters
    with torch.no_grad():
        fast, plain = block(x, g), plain_fusion(block, x, g)
        first = res_block_on_concat(block.block1, x, g)
        first_plain = block.block1(torch.cat([broadcast_to_objects(x, num_objects), g], 2))
    torch.testing.assert_close(first, first_plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    if num_objects == 1:  # one object: the plain path itself
        assert torch.equal(fast, plain)


def test_fusion_gradients_match_the_plain_block():
    torch.manual_seed(0)
    block = FeatureFusionBlock(16, 8, 16, 16)
    x, g = torch.randn(1, 16, 4, 4, requires_grad=True), torch.randn(1, 3, 8, 4, 4, requires_grad=True)
    grads = []
    for forward in (block, lambda a, b: plain_fusion(block, a, b)):
        block.zero_grad()
        x.grad = g.grad = None
        forward(x, g).square().sum().backward()
        grads.append([x.grad.clone(), g.grad.clone(), block.block1.conv1.weight.grad.clone()])
    for fast, plain in zip(*grads):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
