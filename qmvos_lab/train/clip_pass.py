"""One training pass over a batch of clips (XMem Sec. 3.6 / official trainer; QMVOS Sec. 3.4).

1. Encode the keys of all frames at once.
2. Frame 0: its value from the ground-truth masks (and, for QMVOS, the queries from them).
3. Frame t = 1..T-1: read the memory of all earlier frames while t <= num_ref_frames, then of
   frame 0 plus num_ref_frames - 1 random earlier frames; segment; unless t is the last frame,
   encode the value from the soft prediction (the deep sensory update with probability
   `deep_update_prob`). The queries for the next frame come from the model's own rule,
   `propagate_queries` (QMVOS: the SIM over this frame's hard prediction; XMem: none).

`TrainWrapper(network)` is the module the trainer optimises: its `forward` runs the pass and
calls the network's stages directly, so a reader can follow every call, and
DistributedDataParallel, which wraps the wrapper, sees one forward per iteration (Cutie's
`CutieTrainWrapper` pattern). Its state dict is the network's under the prefix `network.`;
checkpoints store the network itself, with the released keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class PassConfig:
    num_ref_frames: int = 3
    deep_update_prob: float = 0.2


def reference_frames(t: int, batch: int, num_ref_frames: int, generator: torch.Generator) -> list[torch.Tensor]:
    """For frame t > num_ref_frames: per clip, frame 0 and num_ref_frames - 1 random earlier frames
    (as the official trainer draws them)."""
    return [torch.cat([torch.zeros(1, dtype=torch.long),
                       torch.randperm(t - 1, generator=generator)[: num_ref_frames - 1] + 1])
            for _ in range(batch)]


class TrainWrapper(nn.Module):
    def __init__(self, network: nn.Module, config: PassConfig | None = None):
        super().__init__()
        self.network = network
        self.config = config or PassConfig()

    def forward(self, frames: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor,
                generator: torch.Generator) -> dict:
        """frames: B x T x 3 x H x W; masks: B x T x N x H x W (ground truth; only frame 0 is an
        input); selector: B x N (1 for the objects a clip has). `generator` draws the reference
        frames and the deep updates. Returns, for t = 1..T-1, "logits" (B x (N+1) x H x W) and
        "probs" (B x N x H x W, the objects' probabilities)."""
        net, config = self.network, self.config
        batch, num_frames, num_objects = frames.shape[0], frames.shape[1], masks.shape[2]
        valid = selector > 0  # B x N
        key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)  # key: B x Ck x T x h x w
        hidden = torch.zeros(batch, num_objects, net.hidden_dim, *key.shape[-2:], device=frames.device)
        value, hidden = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks[:, 0])
        values = value.unsqueeze(3)  # B x N x Cv x 1 x h x w
        queries = net.init_queries((f16[:, 0], f8[:, 0], f4[:, 0]), masks[:, 0], valid)

        logits_out, probs_out = [], []
        for t in range(1, num_frames):
            if t <= config.num_ref_frames:
                ref_keys, ref_shrinkage, ref_values = key[:, :, :t], shrinkage[:, :, :t], values
            else:
                picks = reference_frames(t, batch, config.num_ref_frames, generator)
                ref_keys = torch.stack([key[b, :, picks[b]] for b in range(batch)])  # B x Ck x R x h x w
                ref_shrinkage = torch.stack([shrinkage[b, :, picks[b]] for b in range(batch)])
                ref_values = torch.stack([values[b, :, :, picks[b]] for b in range(batch)])  # B x N x Cv x R x h x w
            readout = net.read_memory(key[:, :, t], selection[:, :, t], ref_keys, ref_shrinkage, ref_values)
            features = (f16[:, t], f8[:, t], f4[:, t])
            last = t == num_frames - 1
            out = net.segment(features, readout, hidden, queries=queries, selector=selector, object_valid=valid,
                              update_hidden=not last)
            hidden, prob = out.hidden, out.object_prob
            if not last:
                queries, _ = net.propagate_queries(features, out.prob.detach(), queries, valid)
                deep = bool(torch.rand(1, generator=generator) < config.deep_update_prob)
                value, hidden = net.encode_value(frames[:, t], f16[:, t], hidden, prob, deep_update=deep)
                values = torch.cat([values, value.unsqueeze(3)], 3)
            logits_out.append(out.logits)
            probs_out.append(prob)
        return {"logits": logits_out, "probs": probs_out}


def clip_pass(network: nn.Module, frames: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor,
              config: PassConfig, generator: torch.Generator) -> dict:
    """One pass of a bare network (no DDP): `TrainWrapper(network, config)(frames, masks, selector, generator)`."""
    return TrainWrapper(network, config)(frames, masks, selector, generator)
