"""The training loss on hand-checkable inputs."""

import pytest
import torch
import torch.nn.functional as F

from qmvos_lab.train.losses import bootstrapped_cross_entropy, clip_loss, dice_loss, hard_pixel_fraction


def test_hard_pixel_fraction_schedule():
    assert hard_pixel_fraction(0, 10, 20) == 1.0 and hard_pixel_fraction(9, 10, 20) == 1.0
    assert hard_pixel_fraction(10, 10, 20) == pytest.approx(1.0)
    assert hard_pixel_fraction(15, 10, 20) == pytest.approx(0.15 + 0.85 * 0.5)
    assert hard_pixel_fraction(20, 10, 20) == pytest.approx(0.15) and hard_pixel_fraction(99, 10, 20) == 0.15


def test_bootstrapped_cross_entropy_keeps_the_hardest_pixels():
    logits = torch.randn(1, 3, 4, 5)
    target = torch.randint(0, 3, (1, 4, 5))
    raw = F.cross_entropy(logits, target, reduction="none").flatten()
    assert bootstrapped_cross_entropy(logits, target, 1.0) == pytest.approx(raw.mean().item())
    assert bootstrapped_cross_entropy(logits, target, 0.25) == pytest.approx(raw.sort().values[-5:].mean().item())


def test_dice_by_hand():
    prob = torch.zeros(1, 2, 2, 2)
    prob[0, 0, 0, 0] = 1.0  # object 1 predicted on one of its two pixels; object 2 not predicted
    labels = torch.tensor([[[1, 1], [2, 0]]])
    expected = ((1 - (2 * 1 + 1) / (1 + 2 + 1)) + (1 - (0 + 1) / (0 + 1 + 1))) / 2
    assert dice_loss(prob, labels).item() == pytest.approx(expected)


def test_clip_loss_sums_frames_and_ignores_padded_objects():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (2, 3, 4, 4))  # B x T x H x W, one real object each
    logits = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    probs = [torch.softmax(x, 1)[:, 1:] for x in logits]
    out = clip_loss(logits, probs, labels, [1, 1], iteration=0, start_warm=5, end_warm=10)
    expected_ce = sum(F.cross_entropy(x[:, :2], labels[:, t + 1]) for t, x in enumerate(logits))
    assert out["ce"].item() == pytest.approx(expected_ce.item(), rel=1e-5)
    out["total"].backward()
    assert logits[0].grad is not None and out["p"] == 1.0
