"""Soft aggregation of per-object probabilities (STM, Oh et al. ICCV 2019; kept by XMem and QMVOS).

Each object i is predicted independently as p_i. The background gets prod_i (1 - p_i); all
N + 1 probabilities are clamped to (1e-7, 1 - 1e-7), turned into logits log(p / (1 - p)) and
renormalised with a softmax, so that they sum to one at every pixel.
"""

from __future__ import annotations

import torch

_EPS = 1e-7


def aggregate(prob: torch.Tensor, dim: int = 1, return_logits: bool = False):
    """prob: ... x N x ... (objects along `dim`) -> ... x (N + 1) x ..., background first."""
    with_background = torch.cat([torch.prod(1 - prob, dim=dim, keepdim=True), prob], dim)
    with_background = with_background.clamp(_EPS, 1 - _EPS)
    logits = torch.log(with_background / (1 - with_background))
    prob = torch.softmax(logits, dim=dim)
    return (logits, prob) if return_logits else prob


def hard_masks(prob_with_bg: torch.Tensor) -> torch.Tensor:
    """B x (N + 1) x H x W probabilities (background first) -> B x N x H x W one-hot masks of the
    per-pixel winner (the argmax over background and objects), in the probabilities' dtype.

    This is how QMVOS turns a prediction into the masks its queries are pooled under (Sec. 3.2).
    `max(...).indices` is `argmax` (the first of tied maxima, both), and several times faster on
    a CPU for this layout (a reduction over a short, strided channel axis: 18 ms against 0.6 ms
    for 3 x 240 x 432 on 2 threads here)."""
    winner = prob_with_bg.max(dim=1, keepdim=True).indices  # B x 1 x H x W, 0 = background
    ids = torch.arange(1, prob_with_bg.shape[1], device=prob_with_bg.device).view(1, -1, 1, 1)  # 1 x N x 1 x 1
    return (winner == ids).to(prob_with_bg.dtype)
