"""Memory reading (XMem Eq. 1-3): closed forms and invariants.

The function-by-function agreement with the official implementation (max relative error well
below 1e-4 in fp32) is checked by benchmarks/parity_xmem_network.py against a fetched copy of
the official code; these tests pin what can be derived without it.
"""

import math

import pytest
import torch

from qmvos_lab.model.memory_read import get_similarity, read_memory, readout, softmax_affinity


def explicit_similarity(mk, ms, qk, qe):
    """-s_i * sum_c e_cj (k_ci - q_cj)^2 / sqrt(Ck), written as the paper does, with a loop-free einsum."""
    ck = mk.shape[1]
    mk, qk, qe = mk.flatten(2), qk.flatten(2), qe.flatten(2)  # B x Ck x N, B x Ck x P
    diff_sq = (mk[:, :, :, None] - qk[:, :, None, :]) ** 2  # B x Ck x N x P
    weighted = torch.einsum("bcnp,bcp->bnp", diff_sq, qe)  # B x N x P
    return -weighted * ms.flatten(1)[:, :, None] / math.sqrt(ck)


@pytest.fixture
def memory():
    gen = torch.Generator().manual_seed(0)
    mk = torch.randn(2, 16, 3, 4, 5, generator=gen, dtype=torch.float64)  # B x Ck x T x H x W
    ms = 1 + torch.rand(2, 1, 3, 4, 5, generator=gen, dtype=torch.float64) ** 2
    qk = torch.randn(2, 16, 4, 5, generator=gen, dtype=torch.float64)
    qe = torch.rand(2, 16, 4, 5, generator=gen, dtype=torch.float64)
    return mk, ms, qk, qe


def test_similarity_equals_explicit_formula(memory):
    mk, ms, qk, qe = memory
    ours = get_similarity(mk, ms, qk, qe)
    assert ours.shape == (2, 3 * 4 * 5, 4 * 5)
    torch.testing.assert_close(ours, explicit_similarity(mk, ms, qk, qe), rtol=1e-12, atol=1e-12)


def test_similarity_is_never_positive_and_zero_on_identical_keys(memory):
    mk, ms, qk, qe = memory
    assert (get_similarity(mk, ms, qk, qe) <= 1e-12).all()
    same = get_similarity(qk.unsqueeze(2), torch.ones(2, 1, 1, 4, 5, dtype=torch.float64), qk, qe)
    diagonal = same.diagonal(dim1=1, dim2=2)
    torch.testing.assert_close(diagonal, torch.zeros_like(diagonal), atol=1e-12, rtol=0)


def test_similarity_without_selection_differs_by_a_per_query_constant(memory):
    """With e = 1 and no shrinkage the -|q|^2 term is dropped: the softmax over memory is unchanged."""
    mk, _, qk, _ = memory
    ours = get_similarity(mk, None, qk, None)
    full = explicit_similarity(mk, torch.ones_like(mk[:, :1]), qk, torch.ones_like(qk))
    offset = ours - full  # B x N x P, constant along N
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=0, atol=1e-10)
    torch.testing.assert_close(softmax_affinity(ours), softmax_affinity(full), rtol=0, atol=1e-12)


def test_full_softmax_columns_sum_to_one(memory):
    affinity = softmax_affinity(get_similarity(*memory))
    torch.testing.assert_close(affinity.sum(1), torch.ones(2, 20, dtype=torch.float64))


def test_top_k_softmax_keeps_k_entries_and_renormalises(memory):
    similarity = get_similarity(*memory)
    affinity, usage = softmax_affinity(similarity, top_k=7, return_usage=True)
    assert ((affinity > 0).sum(1) == 7).all()
    torch.testing.assert_close(affinity.sum(1), torch.ones(2, 20, dtype=torch.float64))
    # the kept entries are the 7 largest similarities, weighted by their softmax
    top_values, top_index = similarity.topk(7, dim=1)
    torch.testing.assert_close(affinity.gather(1, top_index), torch.softmax(top_values, 1))
    torch.testing.assert_close(usage, affinity.sum(2))


def test_top_k_at_least_memory_size_is_the_full_softmax(memory):
    similarity = get_similarity(*memory)
    torch.testing.assert_close(softmax_affinity(similarity, top_k=10_000), softmax_affinity(similarity))


def test_readout_is_the_affinity_weighted_sum(memory):
    mk, ms, qk, qe = memory
    affinity = softmax_affinity(get_similarity(mk, ms, qk, qe))
    values = torch.randn(2, 8, 3, 4, 5, dtype=torch.float64)
    expected = torch.einsum("bcn,bnp->bcp", values.flatten(2), affinity)
    torch.testing.assert_close(readout(affinity, values), expected)


def test_read_memory_reads_each_object_with_shared_affinity(memory):
    mk, ms, qk, qe = memory
    values = torch.randn(2, 3, 8, 3, 4, 5, dtype=torch.float64)  # B x N x Cv x T x H x W
    out = read_memory(qk, qe, mk, ms, values)
    assert out.shape == (2, 3, 8, 4, 5)
    affinity = softmax_affinity(get_similarity(mk, ms, qk, qe))
    for obj in range(3):
        torch.testing.assert_close(out[:, obj].flatten(2), readout(affinity, values[:, obj]))


@pytest.mark.parametrize("shift", [-1e4, 1e4])
def test_top_k_softmax_is_finite_for_far_keys(memory, shift):
    """Untrained keys can be far apart (every exp underflows to 0) or their similarity, which
    drops |q|^2 without selection, large and positive (exp overflows); upstream's top-k softmax
    gives NaN then. Subtracting the maximum gives the same weights, finite."""
    similarity = get_similarity(*memory).float()
    expected = softmax_affinity(similarity, top_k=7)
    shifted = softmax_affinity(similarity + shift, top_k=7)
    assert torch.isfinite(shifted).all()
    torch.testing.assert_close(shifted, expected, rtol=0, atol=2e-3)  # fp32 rounding of the shift


def test_top_k_softmax_keeps_upstream_arithmetic_where_it_is_finite(memory):
    """Bit-for-bit exp(v) / sum exp(v) (no max subtraction), as upstream: usage-based memory
    decisions then match the official code exactly."""
    similarity = get_similarity(*memory).float()
    values, indices = similarity.topk(7, dim=1)
    upstream = values.exp() / values.exp().sum(1, keepdim=True)
    assert torch.equal(softmax_affinity(similarity, top_k=7).gather(1, indices), upstream)
