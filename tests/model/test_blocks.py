"""Group blocks, CBAM and the sensory (GRU-like) update."""

import torch

from qmvos_lab.model.blocks import (CBAM, FeatureFusionBlock, GConv2D, GroupResBlock, SensoryUpdater,
                                    gated_update)


def test_group_conv_applies_one_conv_to_every_object():
    conv = GConv2D(4, 6, 3, padding=1)
    g = torch.randn(2, 3, 4, 8, 8)
    out = conv(g)
    assert out.shape == (2, 3, 6, 8, 8)
    torch.testing.assert_close(out[:, 1], torch.nn.Conv2d.forward(conv, g[:, 1]))


def test_group_modules_are_equivariant_to_object_order():
    torch.manual_seed(0)
    fusion = FeatureFusionBlock(8, 4, 16, 16).eval()
    x, g = torch.randn(2, 8, 6, 6), torch.randn(2, 3, 4, 6, 6)
    perm = torch.tensor([1, 2, 0])
    torch.testing.assert_close(fusion(x, g[:, perm]), fusion(x, g)[:, perm])
    block = GroupResBlock(4, 5)
    torch.testing.assert_close(block(g[:, perm]), block(g)[:, perm])


def test_cbam_keeps_shape_and_only_rescales():
    cbam = CBAM(32)
    x = torch.rand(2, 32, 5, 7)
    out = cbam(x)
    assert out.shape == x.shape
    assert (out <= x + 1e-6).all() and (out >= 0).all()  # gates lie in (0, 1)


def test_gated_update_closed_form():
    h = torch.randn(1, 2, 3, 4, 4)
    values = torch.randn(1, 2, 9, 4, 4)
    f, u, c = values[:, :, :3].sigmoid(), values[:, :, 3:6].sigmoid(), values[:, :, 6:].tanh()
    torch.testing.assert_close(gated_update(values, h, 3), f * h * (1 - u) + u * c)


def test_sensory_updater_reads_three_scales():
    updater = SensoryUpdater((8, 6, 5), 4, 3)
    g16, g8, g4 = torch.randn(1, 2, 8, 4, 4), torch.randn(1, 2, 6, 8, 8), torch.randn(1, 2, 5, 16, 16)
    h = torch.randn(1, 2, 3, 4, 4)
    assert updater([g16, g8, g4], h).shape == h.shape
