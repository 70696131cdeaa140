"""Soft aggregation (STM/XMem): closed form and invariants."""

import torch

from qmvos_lab.model.aggregate import aggregate


def test_probabilities_sum_to_one_with_background_first():
    prob = torch.rand(2, 4, 9, 11, dtype=torch.float64)
    out = aggregate(prob, dim=1)
    assert out.shape == (2, 5, 9, 11)
    torch.testing.assert_close(out.sum(1), torch.ones(2, 9, 11, dtype=torch.float64))


def test_closed_form_odds_renormalisation():
    """softmax of log-odds = odds / sum of odds, with the background odds from prod(1 - p)."""
    prob = torch.tensor([[[[0.9]], [[0.2]]]], dtype=torch.float64)  # 1 x 2 x 1 x 1
    background = (1 - 0.9) * (1 - 0.2)
    odds = torch.tensor([background / (1 - background), 0.9 / 0.1, 0.2 / 0.8], dtype=torch.float64)
    torch.testing.assert_close(aggregate(prob, dim=1).flatten(), odds / odds.sum())


def test_logits_are_the_clamped_log_odds():
    prob = torch.tensor([[[[1.0]], [[0.0]]]])
    logits, out = aggregate(prob, dim=1, return_logits=True)
    assert torch.isfinite(logits).all() and torch.isfinite(out).all()
    torch.testing.assert_close(torch.softmax(logits, 1), out)
    assert out[0, 1, 0, 0] > 0.999


def test_objects_are_permutation_equivariant():
    prob = torch.rand(1, 3, 5, 5)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(aggregate(prob[:, perm], 1)[:, 1:], aggregate(prob, 1)[:, 1:][:, perm])
