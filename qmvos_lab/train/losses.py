"""XMem's training loss (kept by QMVOS): bootstrapped cross-entropy + dice, summed over frames 1..T-1.

Bootstrapped cross-entropy: the plain pixel-wise cross-entropy until `start_warm`; then only the
hardest fraction p of the pixels count, with p falling linearly from 1 to `top_p` (0.15) by
`end_warm` and staying there. Dice: 1 - (2 |P & G| + 1) / (|P| + |G| + 1) per object, averaged.
Both follow the official implementation (model/losses.py); the cross-entropy of each clip covers
only its real objects (background + its num_objects channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hard_pixel_fraction(iteration: int, start_warm: int, end_warm: int, top_p: float = 0.15) -> float:
    """p of the bootstrapped cross-entropy at an iteration (1 before start_warm)."""
    if iteration < start_warm:
        return 1.0
    if iteration > end_warm or end_warm <= start_warm:
        return top_p
    return top_p + (1 - top_p) * (end_warm - iteration) / (end_warm - start_warm)


def bootstrapped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean cross-entropy of the hardest `fraction` of the pixels.

    logits: B x C x H x W; target: B x H x W class indices.
    """
    if fraction >= 1.0:
        return F.cross_entropy(logits, target)
    raw = F.cross_entropy(logits, target, reduction="none").flatten()
    hardest, _ = torch.topk(raw, int(raw.numel() * fraction), sorted=False)
    return hardest.mean()


def dice_loss(prob: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """prob: B x N x H x W (objects, no background); labels: B x H x W (0 background, 1..N)."""
    losses = []
    for i in range(prob.shape[1]):
        pred = prob[:, i].flatten(1)  # B x HW
        truth = (labels == i + 1).float().flatten(1)
        losses.append(1 - (2 * (pred * truth).sum(-1) + 1) / (pred.sum(-1) + truth.sum(-1) + 1))
    return torch.cat(losses).mean()


def clip_loss(logits: list[torch.Tensor], probs: list[torch.Tensor], labels: torch.Tensor,
              num_objects: list[int], iteration: int, start_warm: int, end_warm: int) -> dict:
    """Total loss over frames 1..T-1 of a batch of clips.

    logits[t - 1]: B x (N + 1) x H x W aggregated logits of frame t; probs[t - 1]: B x N x H x W;
    labels: B x T x H x W; num_objects: real objects per clip. Returns a dict with "total",
    "ce", "dice" (summed over frames) and "p" (the bootstrapping fraction).
    """
    fraction = hard_pixel_fraction(iteration, start_warm, end_warm)
    ce = dice = 0.0
    batch = labels.shape[0]
    for t, (frame_logits, frame_prob) in enumerate(zip(logits, probs), start=1):
        ce = ce + sum(bootstrapped_cross_entropy(frame_logits[b:b + 1, : num_objects[b] + 1], labels[b:b + 1, t],
                                                 fraction) for b in range(batch)) / batch
        dice = dice + dice_loss(frame_prob, labels[:, t])
    return {"total": ce + dice, "ce": ce, "dice": dice, "p": fraction}
