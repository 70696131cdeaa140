"""Memory reading by pixel-level matching (XMem Sec. 3.2, Eq. 1-3).

    S(k, q)_ij = -s_i * sum_c e_cj (k_ci - q_cj)^2 / sqrt(C_k)      (XMem Eq. 3)
    W = softmax over the memory axis i of S (optionally top-k)    (XMem Eq. 2)
    readout_j = sum_i W_ij v_i                                    (XMem Eq. 1)

k: memory keys, s: their shrinkage (>= 1), q: query keys, e: the query's selection in (0, 1).
The square is expanded so that everything is matrix products:
    -sum_c e_c (k_c - q_c)^2 = -(k^2)^T e + 2 k^T (q * e) - sum_c e_c q_c^2.
Layouts: `[...]` marks axes that are flattened inside the function.
"""

from __future__ import annotations

import math

import torch


def get_similarity(mem_key: torch.Tensor, mem_shrinkage: torch.Tensor | None,
                   query_key: torch.Tensor, query_selection: torch.Tensor | None) -> torch.Tensor:
    """Anisotropic L2 similarity between every memory and every query position (XMem Eq. 3).

    mem_key:         B x Ck x [N]   (N memory positions, e.g. T x H x W)
    mem_shrinkage:   B x 1  x [N]   or None (no shrinkage: s = 1)
    query_key:       B x Ck x [P]   (P query positions, e.g. H x W)
    query_selection: B x Ck x [P]   or None (no selection: e = 1; the -q^2 term is then dropped,
                     as upstream, because it is constant along the softmax axis)
    returns:         B x N x P
    """
    key_dim = mem_key.shape[1]
    mk = mem_key.flatten(start_dim=2)  # B x Ck x N
    qk = query_key.flatten(start_dim=2)  # B x Ck x P

    if query_selection is not None:
        qe = query_selection.flatten(start_dim=2)  # B x Ck x P
        mk_t = mk.transpose(1, 2)  # B x N x Ck
        a_sq = mk_t.pow(2) @ qe  # B x N x P
        two_ab = 2 * (mk_t @ (qk * qe))  # B x N x P
        b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)  # B x 1 x P
        similarity = -a_sq + two_ab - b_sq
    else:
        a_sq = mk.pow(2).sum(1).unsqueeze(2)  # B x N x 1
        two_ab = 2 * (mk.transpose(1, 2) @ qk)  # B x N x P
        similarity = -a_sq + two_ab

    if mem_shrinkage is not None:
        ms = mem_shrinkage.flatten(start_dim=1).unsqueeze(2)  # B x N x 1
        similarity = similarity * ms
    return similarity / math.sqrt(key_dim)


def _normalised_exp(values: torch.Tensor) -> torch.Tensor:
    """exp(v) / sum exp(v) over dim 1, as upstream computes it (no max subtraction), except for the
    columns where that is not finite: when keys drift far apart, as they do while training from
    scratch, every exp underflows to 0 or overflows to inf (the similarity without selection
    drops ||q||^2 and can be large and positive), and upstream returns NaN. Those columns take the
    max-subtracted softmax, which is the same function computed safely. Keeping upstream's
    arithmetic elsewhere keeps usage-based memory decisions (pruning, prototypes) bit-for-bit
    those of the official code; there is no host sync."""
    plain = values.exp()
    plain = plain / plain.sum(dim=1, keepdim=True)
    stable = (values - values.amax(dim=1, keepdim=True)).exp()
    stable = stable / stable.sum(dim=1, keepdim=True)
    return torch.where(torch.isfinite(plain).all(dim=1, keepdim=True), plain, stable)


def softmax_affinity(similarity: torch.Tensor, top_k: int | None = None,
                     return_usage: bool = False):
    """Normalise a B x N x P similarity over the memory axis N (XMem Eq. 2).

    With `top_k`, only the k largest entries of each query column are kept (the rest get weight
    0), as in XMem's inference; without it, a plain (max-subtracted) softmax, as in training.
    With `return_usage`, also return the usage of each memory element, sum_j W_ij (B x N),
    which drives XMem's long-term memory consolidation.
    """
    if top_k is not None and top_k < similarity.shape[1]:
        values, indices = torch.topk(similarity, k=top_k, dim=1)  # B x k x P
        weights = _normalised_exp(values)  # B x k x P
        affinity = torch.zeros_like(similarity).scatter_(1, indices, weights)  # B x N x P
    else:
        affinity = torch.softmax(similarity, dim=1)  # B x N x P
    if return_usage:
        return affinity, affinity.sum(dim=2)
    return affinity


def readout(affinity: torch.Tensor, mem_value: torch.Tensor) -> torch.Tensor:
    """Weighted sum of memory values (XMem Eq. 1).

    affinity:  B x N x P
    mem_value: B x Cv x [N]
    returns:   B x Cv x P
    """
    return torch.bmm(mem_value.flatten(start_dim=2), affinity)  # B x Cv x P


def read_memory(query_key: torch.Tensor, query_selection: torch.Tensor | None,
                mem_key: torch.Tensor, mem_shrinkage: torch.Tensor | None,
                mem_value: torch.Tensor, top_k: int | None = None) -> torch.Tensor:
    """Read a dense memory for every object at once.

    query_key, query_selection: B x Ck x H x W
    mem_key: B x Ck x T x H x W;  mem_shrinkage: B x 1 x T x H x W
    mem_value: B x N x Cv x T x H x W
    returns:  B x N x Cv x H x W
    """
    batch_size, num_objects, value_dim = mem_value.shape[:3]
    height, width = query_key.shape[-2:]
    similarity = get_similarity(mem_key, mem_shrinkage, query_key, query_selection)  # B x THW x HW
    affinity = softmax_affinity(similarity, top_k=top_k)  # B x THW x HW
    memory = readout(affinity, mem_value.flatten(start_dim=1, end_dim=2))  # B x (N Cv) x HW
    return memory.view(batch_size, num_objects, value_dim, height, width)
