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
    """h' from g16, g8 and g4 (area-downsampled to stride 16), each through its own 1x1 conv, summed,
    concatenated with h, a 3x3 conv, then the gated update (XMem Sec. 3.4), written out by hand."""
    torch.manual_seed(0)
    updater = SensoryUpdater((8, 6, 5), 4, 3)
    g16, g8, g4 = torch.randn(1, 2, 8, 4, 4), torch.randn(1, 2, 6, 8, 8), torch.randn(1, 2, 5, 16, 16)
    h = torch.randn(1, 2, 3, 4, 4)
    conv = torch.nn.functional.conv2d

    def per_object(x, layer, **kwargs):  # B x N x C x H x W through a conv shared by the objects
        return conv(x[0], layer.weight, layer.bias, **kwargs)[None]

    fused = (per_object(g16, updater.g16_conv) + per_object(torch.nn.functional.avg_pool2d(g8[0], 2)[None], updater.g8_conv)
             + per_object(torch.nn.functional.avg_pool2d(g4[0], 4)[None], updater.g4_conv))
    values = per_object(torch.cat([fused, h], 2), updater.transform, padding=1)  # 1 x 2 x 9 x 4 x 4
    forget, update, candidate = values[:, :, :3].sigmoid(), values[:, :, 3:6].sigmoid(), values[:, :, 6:].tanh()
    expected = forget * h * (1 - update) + update * candidate
    torch.testing.assert_close(updater([g16, g8, g4], h), expected, rtol=1e-5, atol=1e-6)
    for i, g in enumerate((g16, g8, g4)):  # every scale matters
        changed = [g16, g8, g4]
        changed[i] = g + 1
        assert not torch.allclose(updater(changed, h), expected)
