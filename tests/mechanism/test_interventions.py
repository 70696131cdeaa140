"""Each intervention does what it says, on a small random QMVOS and tiny tensors, and leaves the
network exactly as it was: same state-dict keys and values, bit-identical fp32 outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from qmvos_lab.config import ModelConfig
from qmvos_lab.errors import UserError
from qmvos_lab.mechanism import interventions as iv
from qmvos_lab.model import build_network

from mechanism_network import network  # noqa: F401 (the shared fixture)

N = 3


@pytest.fixture(scope="module")
def inputs(network):
    g = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        _, _, _, f16, f8, f4 = network.encode_key(image, need_shrinkage=False, need_selection=False)
    c = network.config
    readout = torch.randn(1, N, c.value_dim, 4, 4, generator=g)
    hidden = torch.randn(1, N, c.hidden_dim, 4, 4, generator=g)
    queries = torch.randn(1, N, c.query_dim, generator=g)
    return (f16, f8, f4), readout, hidden, queries


def segment(network, inputs, queries=None, readout=None, hidden=None, need_weights=False):
    features, r, h, q = inputs
    with torch.no_grad():
        return network.segment(features, r if readout is None else readout, h if hidden is None else hidden,
                               queries=q if queries is None else queries, need_weights=need_weights)


def propagate(network, inputs, previous=None, need_weights=False):
    features = inputs[0]
    g = torch.Generator().manual_seed(2)
    prob = torch.rand(1, N + 1, 64, 64, generator=g).softmax(1)
    with torch.no_grad():
        return network.propagate_queries(features, prob, previous, need_weights=need_weights)


ALL = {"permuted": iv.permuted_queries, "mean": iv.mean_queries, "no qcim": iv.without_qcim,
       "no sim interaction": iv.without_sim_interaction, "first frame": iv.first_frame_queries,
       "head 2 of the QCIM cross-attention": lambda net: iv.head_knocked_out(net, 2),
       "head 0 of the SIM": lambda net: iv.head_knocked_out(net, 0, "sim")}


@pytest.mark.parametrize("name", list(ALL))
def test_the_intact_network_is_untouched(network, inputs, name):
    before = segment(network, inputs)
    queries_before = propagate(network, inputs, inputs[3][:, :2])[0]
    state = {k: v.clone() for k, v in network.state_dict().items()}
    with ALL[name](network):
        assert list(network.state_dict()) == list(state)  # the released layout, while open too
        segment(network, inputs)
        propagate(network, inputs, inputs[3][:, :2])
    assert list(network.state_dict()) == list(state)
    assert all(torch.equal(v, state[k]) for k, v in network.state_dict().items())
    assert not {"segment", "propagate_queries"} & set(vars(network))
    after = segment(network, inputs)
    assert torch.equal(after.logits, before.logits) and torch.equal(after.queries, before.queries)
    assert torch.equal(propagate(network, inputs, inputs[3][:, :2])[0], queries_before)


def test_permuted_queries_decode_each_object_with_another_objects_query(network, inputs):
    queries = inputs[3]
    order = [2, 0, 1]
    with iv.permuted_queries(network, permutation=order):
        permuted = segment(network, inputs)
    by_hand = segment(network, inputs, queries=queries[:, order])
    assert torch.equal(permuted.logits, by_hand.logits)
    assert not torch.allclose(permuted.logits, segment(network, inputs).logits)
    shifted = segment(network, inputs, queries=queries[:, [1, 2, 0]])
    with iv.permuted_queries(network):  # default: a cyclic shift, object i takes query i + 1
        assert torch.equal(segment(network, inputs).logits, shifted.logits)
    with iv.permuted_queries(network, permutation=[0, 0, 1]), pytest.raises(UserError, match="not a permutation"):
        segment(network, inputs)


def test_permuting_the_queries_of_identical_objects_permutes_the_outputs(network, inputs):
    # every object has the same readout and sensory memory: then the object is whatever its query says
    readout = inputs[1][:, :1].expand_as(inputs[1]).contiguous()
    hidden = inputs[2][:, :1].expand_as(inputs[2]).contiguous()
    intact = segment(network, inputs, readout=readout, hidden=hidden)
    with iv.permuted_queries(network):
        permuted = segment(network, inputs, readout=readout, hidden=hidden)
    # logits: background first, then the objects; object i now shows what object i + 1 showed
    torch.testing.assert_close(permuted.logits, intact.logits[:, [0, 2, 3, 1]], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(intact.logits[:, 1], intact.logits[:, 2], atol=1e-3)  # the objects differ


def test_mean_queries_make_every_query_equal(network, inputs):
    seen = []
    handle = network.decoder.QCIM.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        with iv.mean_queries(network):
            segment(network, inputs)
    finally:
        handle.remove()
    (received,) = seen
    mean = inputs[3].mean(1)  # 1 x C
    for k in range(N):
        torch.testing.assert_close(received[:, k], mean)
    assert torch.equal(received[:, 0], received[:, 2])


def test_without_qcim_the_dynamic_filters_are_the_sim_queries(network, inputs):
    with iv.without_qcim(network):
        out = segment(network, inputs)
        with pytest.raises(UserError, match="no QCIM attention"):
            segment(network, inputs, need_weights=True)
    assert torch.equal(out.queries, inputs[3])
    assert not torch.equal(segment(network, inputs).queries, inputs[3])


def test_without_sim_interaction_each_query_sees_itself_only(network, inputs):
    with iv.without_sim_interaction(network):
        queries, weights = propagate(network, inputs, need_weights=True)
    eye = torch.eye(N).expand(weights.shape)  # 1 x heads x N x N
    assert torch.equal(weights, eye)
    # the same as the block run on each pooled query alone (nothing to interact with)
    from qmvos_lab.model.sim import masked_average_pooling
    from qmvos_lab.model.aggregate import hard_masks
    import torch.nn.functional as F

    features = inputs[0]
    g = torch.Generator().manual_seed(2)
    prob = torch.rand(1, N + 1, 64, 64, generator=g).softmax(1)
    with torch.no_grad():
        feature = network.sim_feature(*features)
        on_grid = F.interpolate(prob, size=feature.shape[-2:], mode="nearest")  # 1 x (N + 1) x h x w
        pooled = masked_average_pooling(feature, hard_masks(on_grid))  # 1 x N x C
        alone = torch.cat([network.query_SelfAtt_FFN(pooled[:, k:k + 1])[0] for k in range(N)], 1)
    torch.testing.assert_close(queries, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(propagate(network, inputs)[0], alone, atol=1e-4)


def test_first_frame_queries_keep_the_known_objects_queries(network, inputs):
    previous = inputs[3][:, :2]
    intact = propagate(network, inputs, previous)[0]
    with iv.first_frame_queries(network):
        kept = propagate(network, inputs, previous)[0]
        fresh = propagate(network, inputs, None)[0]  # the first frame: the SIM's, as always
    assert torch.equal(kept[:, :2], previous) and torch.equal(kept[:, 2], intact[:, 2])
    assert torch.equal(fresh, propagate(network, inputs, None)[0])


def test_a_knocked_out_head_contributes_nothing(network, inputs):
    # by hand: a copy whose value projection of head 2 is zero gives that head a zero output
    c = network.config.query_dim
    width = c // network.decoder.QCIM.cross_attn.num_heads
    by_hand = copy.deepcopy(network)
    with torch.no_grad():
        rows = slice(2 * c + 2 * width, 2 * c + 3 * width)  # v rows of in_proj, head 2
        by_hand.decoder.QCIM.cross_attn.in_proj_weight[rows] = 0
        by_hand.decoder.QCIM.cross_attn.in_proj_bias[rows] = 0
    with iv.head_knocked_out(network, 2):
        knocked = segment(network, inputs)
    torch.testing.assert_close(knocked.logits, segment(by_hand, inputs).logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(knocked.logits, segment(network, inputs).logits)
    with pytest.raises(UserError, match="head 8"):
        with iv.head_knocked_out(network, 8):
            pass
    with pytest.raises(UserError, match="unknown attention layer"):
        with iv.head_knocked_out(network, 0, "decoder"):
            pass


def test_interventions_refuse_networks_without_queries_or_interaction():
    xmem = build_network(ModelConfig.of_size("small")).eval()
    with pytest.raises(UserError, match="XMem"):
        with iv.mean_queries(xmem):
            pass
    plain = build_network(ModelConfig.of_size("small", queries=True, sim_interaction=False)).eval()
    with pytest.raises(UserError, match="no SIM interaction"):
        with iv.without_sim_interaction(plain):
            pass
    names = iv.available_interventions(plain, heads=False)
    assert "no SIM interaction" not in names and "permuted queries" in names
    assert len(iv.available_interventions(plain)) == len(names) + plain.decoder.QCIM.cross_attn.num_heads
