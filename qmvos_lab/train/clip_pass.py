"""One training pass over a batch of clips (XMem Sec. 3.6 / official trainer; QMVOS Sec. 3.4).

1. Encode the keys of all frames at once.
2. Frame 0: its value from the ground-truth masks (and, for QMVOS, the queries from them).
3. Frame t = 1..T-1: read the memory of all earlier frames while t <= num_ref_frames, then of
   frame 0 plus num_ref_frames - 1 random earlier frames; segment; unless t is the last frame,
   encode the value from the soft prediction (the deep sensory update with probability
   `deep_update_prob`). QMVOS rebuilds the queries from each frame's hard prediction (or keeps
   frame 0's with query_propagation="first").

Every network call goes through `model(stage, ...)`, so the pass works unchanged through
DistributedDataParallel (the released QMVOS trainer calls stages DDP cannot dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PassConfig:
    num_ref_frames: int = 3
    deep_update_prob: float = 0.2


def unwrap(model):
    """The network inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def hard_masks(prob: torch.Tensor) -> torch.Tensor:
    """B x N x H x W object probabilities -> B x N x H x W one-hot of the argmax (with background)."""
    with_background = torch.cat([1 - prob.sum(1, keepdim=True), prob], 1)  # B x (N + 1) x H x W
    winner = with_background.argmax(1, keepdim=True)  # B x 1 x H x W
    ids = torch.arange(1, prob.shape[1] + 1, device=prob.device).view(1, -1, 1, 1)
    return (winner == ids).to(prob.dtype)


def clip_pass(model, frames: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor,
              config: PassConfig, generator: torch.Generator) -> dict:
    """frames: B x T x 3 x H x W; masks: B x T x N x H x W (ground truth, only frame 0 is used as
    input); selector: B x N (1 for real objects). Returns per-frame "logits" (B x (N+1) x H x W)
    and "probs" (B x N x H x W) for t = 1..T-1."""
    net = unwrap(model)
    batch, num_frames, num_objects = frames.shape[0], frames.shape[1], masks.shape[2]
    valid = selector > 0  # B x N
    selector_map = selector.view(batch, num_objects, 1, 1)
    key, shrinkage, selection, f16, f8, f4 = model("encode_key", frames)  # key: B x Ck x T x h x w
    hidden = torch.zeros(batch, num_objects, net.hidden_dim, *key.shape[-2:], device=frames.device)
    value, hidden = model("encode_value", frames[:, 0], f16[:, 0], hidden, masks[:, 0])
    values = value.unsqueeze(3)  # B x N x Cv x 1 x h x w
    queries = None
    if net.uses_queries:
        queries, _ = model("init_queries", (f16[:, 0], f8[:, 0], f4[:, 0]), masks[:, 0], valid)

    logits_out, probs_out = [], []
    for t in range(1, num_frames):
        if t <= config.num_ref_frames:
            ref_keys, ref_shrinkage, ref_values = key[:, :, :t], shrinkage[:, :, :t], values
        else:  # frame 0 plus random earlier frames, drawn per clip
            picks = [torch.cat([torch.zeros(1, dtype=torch.long),
                                torch.randperm(t - 1, generator=generator)[: config.num_ref_frames - 1] + 1])
                     for _ in range(batch)]
            ref_keys = torch.stack([key[b, :, picks[b]] for b in range(batch)])
            ref_shrinkage = torch.stack([shrinkage[b, :, picks[b]] for b in range(batch)])
            ref_values = torch.stack([values[b, :, :, picks[b]] for b in range(batch)])
        readout = model("read_memory", key[:, :, t], selection[:, :, t], ref_keys, ref_shrinkage, ref_values)
        features = (f16[:, t], f8[:, t], f4[:, t])
        last = t == num_frames - 1
        if net.uses_queries:
            hidden, logits, prob = model("segment", features, readout, hidden, queries, valid, selector_map,
                                         h_out=not last)
            if not last and net.config.query_propagation == "previous":
                queries, _ = model("init_queries", features, hard_masks(prob.detach()), valid)
        else:
            hidden, logits, prob = model("segment", features, readout, hidden, selector_map, h_out=not last)
        if not last:
            deep = bool(torch.rand(1, generator=generator) < config.deep_update_prob)
            value, hidden = model("encode_value", frames[:, t], f16[:, t], hidden, prob, deep_update=deep)
            values = torch.cat([values, value.unsqueeze(3)], 3)
        logits_out.append(logits)
        probs_out.append(prob)
    return {"logits": logits_out, "probs": probs_out}
