"""ModelConfig.qcim_identity (beyond the paper, issue 26's remedy): off, nothing changes (no weights,
no config key); on, each query can find its own object's readout by its identity code alone."""

import pytest
import torch

from qmvos_lab.checkpoints.layout import inspect_state_dict
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import build_network
from qmvos_lab.model.qcim import ObjectIdentity, QueryContentInteraction


def test_off_it_adds_no_weight_and_no_config_key():
    released = ModelConfig(queries=True)
    assert "qcim_identity" not in released.to_dict()  # cache keys and saved configs stay as they were
    assert ModelConfig.from_dict(released.to_dict()) == released
    names = set(build_network(ModelConfig.of_size("small", queries=True)).state_dict())
    assert not any("identity" in name for name in names)
    on = ModelConfig.of_size("small", queries=True, qcim_identity=True)
    assert on.to_dict()["qcim_identity"] is True and ModelConfig.from_dict(on.to_dict()) == on
    state = build_network(on).state_dict()
    assert set(state) - names == {"decoder.object_identity.codes"}
    assert inspect_state_dict(state).config.qcim_identity  # a bare state dict says it too
    assert "qcim_identity=True" in inspect_state_dict(state).variant


@pytest.mark.parametrize("fields", [dict(queries=False), dict(queries=True, qcim_source="f16")])
def test_it_needs_the_readout_as_content(fields):
    with pytest.raises(ValueError, match="qcim_identity needs queries=True and qcim_source='readout'"):
        ModelConfig(qcim_identity=True, **fields)


def cross_weights(qcim, identity, objects=3, area=4, dim=256):
    """The head-mean cross-attention of zero queries on a zero readout (only the codes differ)."""
    queries, content = torch.zeros(1, objects, dim), torch.zeros(1, objects * area, dim)
    with torch.no_grad():
        _, weights = qcim(queries, content, need_weights=True, identity=identity)
    return weights["cross"].mean(1).reshape(objects, objects, area).sum(-1)  # query x object: mass


def test_with_the_codes_a_query_can_prefer_its_own_objects_readout():
    torch.manual_seed(0)
    qcim = QueryContentInteraction(256).eval()
    with torch.no_grad():  # projections that pass the codes through: q = k = 4 x input, no bias
        qcim.cross_attn.in_proj_weight.copy_(torch.cat([4 * torch.eye(256)] * 3))
        qcim.cross_attn.in_proj_bias.zero_()
        qcim.norm2.weight.fill_(0)  # zero queries stay zero after the self-attention's LayerNorm
        qcim.norm2.bias.fill_(0)
    mass = cross_weights(qcim, None)
    torch.testing.assert_close(mass, torch.full((3, 3), 1 / 3))  # as released: nothing to tell objects apart
    codes = ObjectIdentity(256).eval()
    query_code, key_code = codes(3, 4)
    assert query_code.shape == (1, 3, 256) and key_code.shape == (1, 12, 256)
    torch.testing.assert_close(key_code[0, 4:8], query_code[0, 1:2].expand(4, 256))  # object-major, as M
    mass = cross_weights(qcim, (query_code, key_code))
    assert (mass.diagonal() > 0.99).all()  # |e_n|^2 >> e_n . e_m: each query reads its own object
    wrapped, _ = ObjectIdentity(256, slots=2).eval()(3, 1)
    torch.testing.assert_close(wrapped[0, 2], wrapped[0, 0])  # slots beyond the table reuse the codes


def test_in_training_every_code_is_drawn_not_only_the_first_few():
    """Clips hold at most 3 objects; videos more: every code must learn, so training draws them at random."""
    torch.manual_seed(0)
    codes = ObjectIdentity(32, slots=16).train()
    drawn = set()
    for _ in range(60):
        query_code, key_code = codes(3, 2)
        rows = [int(torch.nonzero((codes.codes == q).all(1))[0]) for q in query_code[0]]
        assert len(set(rows)) == 3  # three distinct objects, three distinct codes
        torch.testing.assert_close(key_code[0, ::2], query_code[0])  # an object's readout has its query's code
        drawn.update(rows)
    assert drawn == set(range(16))
    codes.eval()
    torch.testing.assert_close(codes(3, 1)[0][0], codes.codes[:3])  # at inference object n has code n


def test_the_switch_trains_end_to_end_and_the_codes_get_gradient():
    torch.manual_seed(0)
    net = build_network(ModelConfig.of_size("small", queries=True, qcim_identity=True)).train()
    torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)
    frames = torch.randn(1, 2, 3, 64, 64)
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, :32], masks[:, 1, 32:] = 1, 1
    queries = net.init_queries((f16[:, 0], f8[:, 0], f4[:, 0]), masks)
    value, hidden = net.encode_value(frames[:, 0], f16[:, 0], torch.zeros(1, 2, net.config.hidden_dim, 4, 4), masks)
    readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1], value.unsqueeze(3))
    logits = net.segment((f16[:, 1], f8[:, 1], f4[:, 1]), readout, hidden, queries=queries)[1]
    logits.sum().backward()
    assert net.decoder.object_identity.codes.grad.abs().sum() > 0
