"""The XMem network: official state-dict layout, stage shapes, invariants, a 480p run."""

import pytest
import torch
import torch.nn.functional as F

from conftest import random_official_state
from qmvos_lab.checkpoints import load_checkpoint
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import XMem
from qmvos_lab.model.memory_read import get_similarity
from qmvos_lab.model.network import others_mask


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = XMem().eval()
    model.load_state_dict(random_official_state(seed=1), strict=True)
    return model


def test_state_dict_has_exactly_the_official_keys_shapes_and_order(official_shapes):
    ours = {k: tuple(v.shape) for k, v in XMem().state_dict().items()}
    assert len(ours) == 412
    assert list(ours) == list(official_shapes)
    assert ours == official_shapes


def test_dimensions_come_from_the_config():
    model = XMem(ModelConfig(key_dim=32, value_dim=256, hidden_dim=16))
    state = model.state_dict()
    assert state["key_proj.key_proj.weight"].shape[0] == 32
    assert state["value_encoder.fuser.block2.conv2.weight"].shape[0] == 256
    assert state["decoder.hidden_update.transform.weight"].shape[0] == 48
    no_sensory = XMem(ModelConfig(hidden_dim=0)).state_dict()
    assert not any("hidden_update" in k or "hidden_reinforce" in k for k in no_sensory)


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="hidden_dim"):
        ModelConfig(hidden_dim=-1)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"key_dim": 64, "colour": "red"})


def test_others_mask_is_the_sum_of_the_other_objects():
    masks = torch.rand(2, 3, 4, 4)
    expected = torch.stack([masks[:, [j for j in range(3) if j != i]].sum(1) for i in range(3)], 1)
    torch.testing.assert_close(others_mask(masks), expected)
    assert (others_mask(masks[:, :1]) == 0).all()


def test_video_input_gives_memory_layout(net):
    frames = torch.randn(1, 2, 3, 64, 96)
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
    assert key.shape == (1, 64, 2, 4, 6) and shrinkage.shape == (1, 1, 2, 4, 6) and selection.shape == (1, 64, 2, 4, 6)
    assert f16.shape == (1, 2, 1024, 4, 6) and f8.shape == (1, 2, 512, 8, 12) and f4.shape == (1, 2, 256, 16, 24)
    assert (shrinkage >= 1).all() and ((selection > 0) & (selection < 1)).all()
    single = net.encode_key(frames[:, 1])
    torch.testing.assert_close(key[:, :, 1], single[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="encode_key expects"):
        net.encode_key(torch.randn(3, 64, 96))


def test_stages_are_equivariant_to_object_order(net):
    frame = torch.randn(1, 3, 64, 64)
    _, _, _, f16, f8, f4 = net.encode_key(frame)
    masks = torch.rand(1, 3, 64, 64)
    hidden = torch.randn(1, 3, 64, 4, 4)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        value, new_hidden = net.encode_value(frame, f16, hidden, masks)
        value_p, new_hidden_p = net.encode_value(frame, f16, hidden[:, perm], masks[:, perm])
        torch.testing.assert_close(value_p, value[:, perm], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(new_hidden_p, new_hidden[:, perm], rtol=1e-4, atol=1e-4)
        readout = torch.randn(1, 3, 512, 4, 4)
        h, logits, prob = net.segment((f16, f8, f4), readout, hidden)[:3]
        h_p, logits_p, prob_p = net.segment((f16, f8, f4), readout[:, perm], hidden[:, perm])[:3]
        torch.testing.assert_close(prob_p[:, 1:], prob[:, 1:][:, perm], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(prob_p[:, 0], prob[:, 0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(h_p, h[:, perm], rtol=1e-4, atol=1e-4)


def test_segment_probabilities_and_selector(net):
    frame = torch.randn(1, 3, 64, 64)
    _, _, _, f16, f8, f4 = net.encode_key(frame)
    readout, hidden = torch.randn(1, 2, 512, 4, 4), torch.zeros(1, 2, 64, 4, 4)
    with torch.no_grad():
        out = net.segment((f16, f8, f4), readout, hidden)
        assert out.prob.shape == out.logits.shape == (1, 3, 64, 64)  # background first
        torch.testing.assert_close(out.prob.sum(1), torch.ones(1, 64, 64))
        torch.testing.assert_close(out.object_prob, out.prob[:, 1:])
        assert out.attention is None and out.queries is None  # XMem has no queries
        prob_sel = net.segment((f16, f8, f4), readout, hidden, selector=torch.tensor([[1.0, 0.0]])).object_prob
        assert prob_sel[:, 1].max() < 1e-5  # a deselected object gets (clamped) zero probability
        assert net.segment((f16, f8, f4), readout, hidden, update_hidden=False).hidden is None
        with pytest.raises(TypeError):  # flags are keyword-only
            net.segment((f16, f8, f4), readout, hidden, None)


def test_xmem_answers_the_query_calls_with_none(net):
    frame = torch.randn(1, 3, 32, 32)
    _, _, _, f16, f8, f4 = net.encode_key(frame)
    assert net.init_queries((f16, f8, f4), torch.ones(1, 1, 32, 32)) is None
    assert net.propagate_queries((f16, f8, f4), torch.rand(1, 2, 32, 32), None) == (None, None)


def test_there_is_no_string_dispatch(net):
    with pytest.raises(RuntimeError, match="TrainWrapper"):
        net("encode_key", torch.randn(1, 3, 32, 32))


# adapter: network interface
def segment(net, features, readout, hidden):
    """(hidden, logits, prob with background) of XMem's segment stage."""
    return net.segment(features, readout, hidden)[:3]


def test_official_key_set_loads_strictly_and_runs_at_480x854(tmp_path):
    """Done-when of the foundation issue: a state dict with the official key set loads strictly
    from a file and segments a 480x854 frame (padded to a multiple of 16): the top-30 readout of
    each of the 1620 positions is the weighted sum of its 30 most similar memory values, and the
    probabilities are a distribution that depends on the masks."""
    path = tmp_path / "XMem.pth"
    torch.save(random_official_state(seed=2), path)
    net = load_checkpoint(path)
    image = F.pad(torch.randn(1, 3, 480, 854), (0, 10, 0, 0))  # 1 x 3 x 480 x 864
    masks = torch.zeros(1, 2, 480, 864)
    masks[:, 0, 100:200, 100:300] = 1
    masks[:, 1, 250:400, 500:700] = 1
    with torch.inference_mode():
        key, shrinkage, selection, f16, f8, f4 = net.encode_key(image)
        hidden = torch.zeros(1, 2, 64, 30, 54)
        value, hidden = net.encode_value(image, f16, hidden, masks)
        readout = net.read_memory(key, selection, key.unsqueeze(2), shrinkage.unsqueeze(2), value.unsqueeze(3), top_k=30)
        hidden_out, logits, prob = segment(net, (f16, f8, f4), readout, hidden)
        similarity = get_similarity(key.unsqueeze(2), shrinkage.unsqueeze(2), key, selection)[0]  # 1620 x 1620
    assert value.shape == (1, 2, 512, 30, 54) and readout.shape == (1, 2, 512, 30, 54)
    assert prob.shape == (1, 3, 480, 864) and hidden_out.shape == (1, 2, 64, 30, 54)
    values = value[0].flatten(2)  # 2 x 512 x 1620
    for j in (0, 777, 1619):  # top-k over the memory axis, softmax, weighted sum (Eq. 1-2)
        top, index = similarity[:, j].topk(30)
        expected = (values[:, :, index] * torch.softmax(top, 0)).sum(-1)  # 2 x 512
        torch.testing.assert_close(readout[0].flatten(2)[:, :, j], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(prob.sum(1), torch.ones(1, 480, 864), rtol=0, atol=1e-5)
    inside, outside = prob[0, 1, 100:200, 100:300].mean(), prob[0, 1, 250:400, 500:700].mean()
    assert prob.std() > 0.01 and inside != outside  # not one constant or saturated class


def test_small_size_uses_resnet18_features_and_narrow_decoder():
    config = ModelConfig.of_size("small")
    assert config.backbone == "resnet18" and config.feature_dims == (256, 128, 64)
    net = XMem(config).eval()
    frames = torch.randn(1, 2, 3, 64, 96)
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
    assert key.shape == (1, config.key_dim, 2, 4, 6)
    assert f16.shape[2:] == (256, 4, 6) and f8.shape[2:] == (128, 8, 12) and f4.shape[2:] == (64, 16, 24)
    masks = torch.zeros(1, 2, 64, 96)
    masks[:, 0, :32], masks[:, 1, 32:] = 1, 1
    hidden = torch.zeros(1, 2, config.hidden_dim, 4, 6)
    value, hidden = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks)
    assert value.shape == (1, 2, config.value_dim, 4, 6)
    readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1], value.unsqueeze(3))
    g16, g8, g4 = net.decoder.decode(f16[:, 1], f8[:, 1], f4[:, 1], hidden, readout)
    assert (g16.shape[2], g8.shape[2], g4.shape[2]) == config.decoder_dims
    hidden, logits, prob = net.segment((f16[:, 1], f8[:, 1], f4[:, 1]), readout, hidden)[:3]
    assert prob.shape == (1, 3, 64, 96) and hidden.shape == (1, 2, config.hidden_dim, 4, 6)
    assert sum(p.numel() for p in net.parameters()) < 0.2 * sum(p.numel() for p in XMem().parameters())


def test_fresh_networks_start_unsaturated():
    """From-scratch initialisation: logit 0 (zero prediction conv) and identity residual blocks."""
    net = XMem(ModelConfig.of_size("small"))
    assert (net.decoder.pred.weight == 0).all() and (net.decoder.pred.bias == 0).all()
    assert (net.key_encoder.layer3[0].bn2.weight == 0).all()  # torchvision's zero_init_residual


def test_sizes_and_widths_are_validated():
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.of_size("huge")
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="decoder_dims"):
        ModelConfig(decoder_dims=(512, 256))
    with pytest.raises(ValueError, match="query_dim .* must equal decoder_dims"):
        ModelConfig(queries=True, query_dim=128)
