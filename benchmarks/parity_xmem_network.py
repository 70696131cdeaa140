"""Check the XMem network against the official implementation, function by function.

Usage (the official source is fetched by you, never committed):
    python benchmarks/parity_xmem_network.py --xmem-repo /path/to/XMem [--height 480 --width 854]

Both networks get the same random weights (BatchNorm statistics randomised too) and the same
inputs, in fp32 on the CPU; for each stage it prints the max relative error
max|ours - official| / max|official|.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import torch

from qmvos_lab.config import ModelConfig
from qmvos_lab.model import XMem
from qmvos_lab.model import memory_read as ours_mem
from qmvos_lab.model.aggregate import aggregate as ours_aggregate


def patch_resnets_without_downloads(repo: str) -> None:
    """Put `repo` on the path and make its `model.resnet` builders skip the ImageNet download
    (the XMem and QMVOS repositories share this module)."""
    sys.path.insert(0, repo)
    resnet = importlib.import_module("model.resnet")
    r18, r50 = resnet.resnet18, resnet.resnet50
    resnet.resnet18 = lambda pretrained=True, extra_dim=0: r18(False, extra_dim)
    resnet.resnet50 = lambda pretrained=True, extra_dim=0: r50(False, extra_dim)


def import_official(repo: str):
    """Import the official XMem modules without letting them download ImageNet weights."""
    patch_resnets_without_downloads(repo)
    network = importlib.import_module("model.network")
    memory_util = importlib.import_module("model.memory_util")
    aggregate = importlib.import_module("model.aggregate")
    sys.path.pop(0)
    return network.XMem, memory_util, aggregate.aggregate


def randomised_state(net: torch.nn.Module, seed: int) -> dict:
    """The network's own (fan-in scaled) random init, with BatchNorm statistics and affine
    parameters randomised too, so that activations keep realistic magnitudes (tiny random weights
    everywhere would saturate the sigmoid and make the comparison meaningless)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in net.state_dict().items():
        if not value.is_floating_point():
            state[name] = value
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(value.shape, generator=gen)
        elif name.endswith(("running_mean", "bias")):
            state[name] = 0.1 * torch.randn(value.shape, generator=gen)
        elif "bn" in name or "downsample.1" in name:  # BatchNorm scale
            state[name] = 0.5 + 0.5 * torch.rand(value.shape, generator=gen)
        else:
            state[name] = value
    return state


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xmem-repo", required=True)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    OfficialXMem, official_mem, official_aggregate = import_official(args.xmem_repo)

    for hidden_dim in (64, 0):
        official = OfficialXMem({"key_dim": 64, "value_dim": 512, "hidden_dim": hidden_dim}).eval()
        ours = XMem(ModelConfig(hidden_dim=hidden_dim)).eval()
        state = randomised_state(official, args.seed)
        official.load_state_dict(state)
        ours.load_state_dict(state, strict=True)
        H, W, N = (args.height + 15) // 16 * 16, (args.width + 15) // 16 * 16, args.objects
        frames = torch.randn(1, 4, 3, H, W)
        masks = torch.rand(1, N, H, W)
        masks = masks / masks.sum(1, keepdim=True)
        hidden = torch.randn(1, N, max(hidden_dim, 1), H // 16, W // 16) if hidden_dim else None
        errors = {}
        with torch.inference_mode():
            a = ours.encode_key(frames)
            encoded = official.encode_key(frames)
            errors["encode_key"] = max(rel_err(x, y) for x, y in zip(a, encoded))
            key, shrinkage, selection, f16 = encoded[0], encoded[1], encoded[2], encoded[3][:, 0]
            a = ours.encode_value(frames[:, 0], f16, hidden, masks)
            b = official.encode_value(frames[:, 0], f16, hidden, masks)
            errors["encode_value"] = max(rel_err(x, y) for x, y in zip(a, b) if y is not None)
            values = torch.randn(1, N, 512, 3, H // 16, W // 16)
            a = ours.read_memory(key[:, :, 3], selection[:, :, 3], key[:, :, :3], shrinkage[:, :, :3], values)
            b = official.read_memory(key[:, :, 3], selection[:, :, 3], key[:, :, :3], shrinkage[:, :, :3], values)
            errors["read_memory"] = rel_err(a, b)
            sim_a = ours_mem.get_similarity(key[:, :, :3], shrinkage[:, :, :3], key[:, :, 3], selection[:, :, 3])
            sim_b = official_mem.get_similarity(key[:, :, :3], shrinkage[:, :, :3], key[:, :, 3], selection[:, :, 3])
            errors["similarity"] = rel_err(sim_a, sim_b)
            aff_a, use_a = ours_mem.softmax_affinity(sim_a, top_k=30, return_usage=True)
            aff_b, use_b = official_mem.do_softmax(sim_b.clone(), top_k=30, return_usage=True)
            errors["top-k softmax (affinity, usage)"] = max(rel_err(aff_a, aff_b), rel_err(use_a, use_b))
            readout_in = torch.randn(1, N, 512, H // 16, W // 16)
            feats = tuple(x[:, 1] for x in encoded[3:])
            out = ours.segment(feats, readout_in, hidden)
            a = (out.hidden, out.logits, out.object_prob)  # the official segment strips the background
            b = official.segment(feats, readout_in, hidden)
            for name, x, y in zip(("hidden", "logits", "prob"), a, b):
                if y is not None:
                    errors[f"segment: {name}"] = rel_err(x, y)
            prob = torch.rand(2, N, 37, 41)
            errors["aggregate"] = max(rel_err(x, y) for x, y in zip(ours_aggregate(prob, 1, True),
                                                                     official_aggregate(prob, 1, True)))
        print(f"hidden_dim={hidden_dim}, {N} objects, {H}x{W}:")
        for name, err in errors.items():
            print(f"  {name:34s} max relative error {err:.2e}")


if __name__ == "__main__":
    main()
