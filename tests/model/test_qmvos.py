"""QMVOS: released state-dict layout, SIM and QCIM semantics, dynamic filters, Table 3 switches.

Module-by-module agreement with the released network (max relative error below 1e-6 in fp32 on
queries, raw logits and hidden state; 1e-12 in float64) is checked by
benchmarks/parity_qmvos_network.py against a fetched copy of the released code.
"""

import pytest
import torch

from conftest import released_qmvos_shapes
from qmvos_lab.checkpoints import load_checkpoint, qmvos_from_xmem, save_checkpoint
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import QMVOS, XMem, build_network
from qmvos_lab.model.qcim import serialise_readout
from qmvos_lab.model.sim import QueryInteraction, masked_average_pooling

ABLATIONS = {
    "sim-f16": dict(sim_scales=("f16",)),
    "sim-f8": dict(sim_scales=("f8",)),
    "sim-f16-f8-f4": dict(sim_scales=("f16", "f8", "f4")),
    "no-interaction": dict(sim_interaction=False),
    "qcim-f16": dict(qcim_source="f16"),
    "first-frame-queries": dict(query_propagation="first"),
}


@pytest.fixture(scope="module")
def qmvos():
    torch.manual_seed(0)
    return QMVOS().eval()


def features_of(net, height=64, width=96):
    torch.manual_seed(1)
    _, _, _, f16, f8, f4 = net.encode_key(torch.randn(1, 3, height, width))
    return f16, f8, f4


def test_default_state_dict_is_the_released_one():
    ours = {k: tuple(v.shape) for k, v in QMVOS().state_dict().items()}
    assert ours == released_qmvos_shapes() and len(ours) == 450
    extra = sum(p.numel() for p in QMVOS().parameters()) - sum(p.numel() for p in XMem().parameters())
    assert extra == 2_497_791  # +2.50 M over XMem
    assert "decoder.pred.weight" not in ours


def test_masked_average_pooling_closed_form():
    feature = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, :4, :4] = 1  # the top-left 2x2 cells of the 4x4 feature
    pooled = masked_average_pooling(feature, masks)
    expected = feature[0, :, :2, :2].mean((-2, -1)) * 4 / (4 + 5e-4)
    torch.testing.assert_close(pooled[0, 0], expected)
    assert (pooled[0, 1] == 0).all()  # an empty mask gives a zero query


def test_sim_interaction_runs_the_ffn_and_ignores_padding():
    torch.manual_seed(0)
    block = QueryInteraction(32, 64, heads=4).eval()
    queries = torch.randn(1, 3, 32)
    out, weights = block(queries, need_weights=True)
    attended = block.self_attn(queries, queries, queries, need_weights=False)[0]
    after_attention = block.norm1(queries + attended)
    expected = block.norm2(after_attention + block.linear2(torch.relu(block.linear1(after_attention))))
    torch.testing.assert_close(out, expected)
    assert weights.shape == (1, 4, 3, 3)
    valid = torch.tensor([[True, True, False]])
    garbage = queries.clone()
    garbage[0, 2] = 100 * torch.randn(32)
    a, w = block(queries, valid, need_weights=True)
    b, _ = block(garbage, valid)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert (w[..., 2] == 0).all()  # nobody attends to the padded query


def test_serialised_readout_is_object_major():
    g16 = torch.randn(1, 2, 4, 3, 5)
    flat = serialise_readout(g16)
    assert flat.shape == (1, 2 * 3 * 5, 4)
    torch.testing.assert_close(flat[0, 3 * 5 + 2 * 5 + 1], g16[0, 1, :, 2, 1])  # object 1, row 2, column 1


def test_logits_are_queries_dotted_with_g4(qmvos):
    f16, f8, f4 = features_of(qmvos)
    masks = torch.zeros(1, 2, 64, 96)
    masks[:, 0, :32], masks[:, 1, 32:] = 1, 1
    queries = qmvos.init_queries((f16, f8, f4), masks)
    readout, hidden = torch.randn(1, 2, 512, 4, 6), torch.randn(1, 2, 64, 4, 6)
    with torch.no_grad():
        _, logits, refined, weights = qmvos.decoder(f16, f8, f4, hidden, readout, queries=queries, need_weights=True)
        _, _, g4 = qmvos.decoder.decode(f16, f8, f4, hidden, readout)
        expected = torch.nn.functional.interpolate((refined[:, :, :, None, None] * g4).sum(2), scale_factor=4,
                                                   mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert weights["cross"].shape == (1, 8, 2, 2 * 4 * 6)


def test_attention_maps_and_no_change_from_asking_for_them(qmvos):
    f16, f8, f4 = features_of(qmvos)
    masks = torch.zeros(1, 3, 64, 96)
    masks[:, 0, :20], masks[:, 1, 20:40] = 1, 1
    valid = torch.tensor([[True, True, False]])
    with torch.no_grad():
        queries, sim_weights = qmvos.sim((f16, f8, f4), masks, valid, need_weights=True)
        torch.testing.assert_close(queries, qmvos.init_queries((f16, f8, f4), masks, valid))
        readout, hidden = torch.randn(1, 3, 512, 4, 6), torch.randn(1, 3, 64, 4, 6)
        plain = qmvos.segment((f16, f8, f4), readout, hidden, queries=queries, object_valid=valid)
        with_maps = qmvos.segment((f16, f8, f4), readout, hidden, queries=queries, object_valid=valid,
                                  need_weights=True)
        maps = with_maps.attention
    assert plain.attention is None
    for name in ("hidden", "logits", "prob", "queries"):  # the fused path and the explicit one agree up to rounding
        torch.testing.assert_close(getattr(plain, name), getattr(with_maps, name), rtol=1e-3, atol=1e-3)
    assert sim_weights.shape == (1, 8, 3, 3)
    cross = maps["cross"]
    assert cross.shape == (1, 3, 8, 3, 4, 6)  # queries x heads x objects x H x W
    torch.testing.assert_close(cross.sum((-3, -2, -1)), torch.ones(1, 3, 8))
    assert (cross[:, :, :, 2] == 0).all()  # the padded object's positions are never attended
    assert (cross[:, :2, :, :2] > 0).all()  # each query may attend to every valid object
    assert maps["self"].shape == (1, 3, 8, 3)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_table3_variant_runs_trains_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(queries=True, **ABLATIONS[name])
    net = build_network(config)
    net.train()
    assert (net.decoder.QCIM.norm3.weight == 0).all()  # fresh networks start with zero queries (logit 0) ...
    torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)  # ... scaled here so that one backward reaches the SIM
    frames = torch.randn(1, 2, 3, 64, 64)
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, :32], masks[:, 1, 32:] = 1, 1
    queries = net.init_queries((f16[:, 0], f8[:, 0], f4[:, 0]), masks)
    value, hidden = net.encode_value(frames[:, 0], f16[:, 0], torch.zeros(1, 2, 64, 4, 4), masks)
    readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1], value.unsqueeze(3))
    hidden, logits, prob = net.segment((f16[:, 1], f8[:, 1], f4[:, 1]), readout, hidden, queries=queries)[:3]
    assert prob.shape == (1, 3, 64, 64)
    logits.sum().backward()
    assert net.decoder.QCIM.cross_attn.in_proj_weight.grad.abs().sum() > 0
    sim_param = next(p for n, p in net.named_parameters() if n.startswith(("input_proj", "f8_proj")))
    assert sim_param.grad is not None and sim_param.grad.abs().sum() > 0
    path = save_checkpoint(net, tmp_path / f"{name}.pth")
    loaded = load_checkpoint(path)
    assert loaded.config == config and isinstance(loaded, QMVOS)


def test_released_weights_load_strictly_and_are_detected(tmp_path):
    state = {k: torch.randn(v) if v else torch.tensor(0) for k, v in released_qmvos_shapes().items()}
    torch.save(state, tmp_path / "QMVOS.pth")
    model = load_checkpoint(tmp_path / "QMVOS.pth")
    assert isinstance(model, QMVOS) and model.checkpoint_info.variant == "qmvos"
    assert model.config == ModelConfig(queries=True)


def test_qmvos_initialised_from_xmem(tmp_path):
    torch.manual_seed(0)
    xmem = XMem()
    torch.save(xmem.state_dict(), tmp_path / "XMem.pth")
    model, report = qmvos_from_xmem(tmp_path / "XMem.pth")
    assert report["unused"] == ["decoder.pred.bias", "decoder.pred.weight"]
    assert len(report["copied"]) == 410 and len(report["new"]) == 40
    assert torch.equal(model.state_dict()["decoder.up_8_4.skip_conv.weight"], xmem.state_dict()["decoder.up_8_4.skip_conv.weight"])
    assert "unused XMem weights: decoder.pred.bias" in model.checkpoint_info.notes[0]


def test_invalid_switches_are_refused():
    with pytest.raises(ValueError, match="sim_scales"):
        ModelConfig(queries=True, sim_scales=("f4",))
    with pytest.raises(ValueError, match="qcim_source"):
        ModelConfig(queries=True, qcim_source="memory")
    with pytest.raises(ValueError, match="needs ModelConfig"):
        QMVOS(ModelConfig())


# ---------------------------------------------------------------------------------- Table 3 switches
# adapter: network interface
def segment(net, features, readout, hidden, queries, object_valid=None):
    """(hidden, logits, object probabilities) of QMVOS's segment stage."""
    out = net.segment(features, readout, hidden, queries=queries, object_valid=object_valid)
    return out.hidden, out.logits, out.object_prob


def small_variant(**switches):
    torch.manual_seed(0)
    net = QMVOS(ModelConfig.of_size("small", queries=True, **switches))
    torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)  # fresh queries are zero: give them a scale
    return net.eval()


def two_frame_inputs(net, seed=1):
    """Features of 2 frames, two half-frame masks on frame 0, the readout and hidden state of frame 1."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randn(1, 2, 3, 64, 64, generator=gen)
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, :32], masks[:, 1, 32:] = 1, 1
    hidden = torch.zeros(1, 2, net.hidden_dim, 4, 4)
    value, hidden = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks)
    readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1], value.unsqueeze(3))
    return (f16[:, 0], f8[:, 0], f4[:, 0]), (f16[:, 1], f8[:, 1], f4[:, 1]), masks, readout, hidden


def test_f4_in_the_sim_changes_the_queries_and_gets_gradient():
    with_f4, without = small_variant(sim_scales=("f16", "f8", "f4")), small_variant()
    first, second, masks, readout, hidden = two_frame_inputs(with_f4)
    other_f4 = (first[0], first[1], torch.randn_like(first[2]))
    with torch.no_grad():
        assert not torch.allclose(with_f4.init_queries(first, masks), with_f4.init_queries(other_f4, masks))
        assert torch.equal(without.init_queries(first, masks), without.init_queries(other_f4, masks))
    queries = with_f4.init_queries(first, masks)
    _, logits, _ = segment(with_f4, second, readout, hidden, queries)
    logits.sum().backward()
    grads = {n: p.grad for n, p in with_f4.named_parameters() if n.startswith("f4_fuse.")}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_without_interaction_the_queries_are_the_pooled_features_of_each_object_alone():
    alone, interacting = small_variant(sim_interaction=False), small_variant()
    assert not hasattr(alone, "query_SelfAtt_FFN") and hasattr(interacting, "query_SelfAtt_FFN")
    first, _, masks, _, _ = two_frame_inputs(alone)
    moved = masks.clone()
    moved[:, 1] = moved[:, 1].roll(16, dims=-2)  # object 2's mask changes, object 1's does not
    with torch.no_grad():
        queries, weights = alone.sim(first, masks, need_weights=True)
        assert weights is None
        torch.testing.assert_close(queries, masked_average_pooling(alone.sim_feature(*first), masks), rtol=0, atol=0)
        torch.testing.assert_close(alone.init_queries(first, moved)[:, 0], queries[:, 0], rtol=0, atol=0)
        mixed = interacting.init_queries(first, masks)
        assert not torch.allclose(interacting.init_queries(first, moved)[:, 0], mixed[:, 0])  # object 1 sees 2


def test_qcim_f16_attends_to_the_image_feature_and_the_readout_variant_to_the_readout():
    image, readout_source = small_variant(qcim_source="f16"), small_variant()
    assert not hasattr(image.decoder, "g16_proj") and hasattr(readout_source.decoder, "g16_proj")
    for net in (image, readout_source):
        first, second, masks, readout, hidden = two_frame_inputs(net)
        seen = []
        handle = net.decoder.QCIM.register_forward_hook(lambda m, args, out: seen.append((args[1], out[0])))
        with torch.no_grad():
            queries = net.init_queries(first, masks)
            _, logits_a, _ = segment(net, second, readout, hidden, queries)
            _, logits_b, _ = segment(net, second, 2 * readout + 1, hidden, queries)
        handle.remove()
        (content_a, refined_a), (content_b, refined_b) = seen
        assert not torch.allclose(logits_a, logits_b)
        if net is image:  # the frame's F16, projected, one position per pixel of the grid: the readout is not seen
            torch.testing.assert_close(content_a, net.input_proj(second[0]).flatten(2).transpose(1, 2))
            torch.testing.assert_close(refined_a, refined_b, rtol=0, atol=0)
        else:  # the serialised readout of both objects
            assert content_a.shape[1] == 2 * 4 * 4 and not torch.allclose(content_a, content_b)
            assert not torch.allclose(refined_a, refined_b)
