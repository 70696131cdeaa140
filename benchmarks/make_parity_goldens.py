"""Run the official XMem (MIT) and the released QMVOS (GPL-3.0, run only) code once and write the
parity goldens that tests/test_parity_goldens.py compares ours with, so that `make test` notices
a parity regression without any official code at hand.

Usage (the official sources are fetched by you, never committed):
    python benchmarks/make_parity_goldens.py --xmem-repo /path/to/XMem --qmvos-repo /path/to/QMVOS

Writes tests/fixtures/parity/ (see its README.md): the generated clip, the outputs of every XMem
stage (encode_key, encode_value, read_memory, segment), a whole XMem video (consolidation firing,
long-term pruning, an object entering mid-video), the QMVOS stages (SIM queries, QCIM segment)
and a QMVOS video (first-frame annotation). Weights come from a seed (parity_cases.seeded_state),
in fp32 on the CPU; nothing of either official code base is stored, only its outputs. It also
prints how far ours is from each golden (the figures the test asserts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import parity_cases as cases  # noqa: E402
from parity_cases import (DIMS, FIXTURES, QMVOS_SEED, QMVOS_VIDEO, XMEM_PRUNING, XMEM_SEED, XMEM_VIDEO, official_config,  # noqa: E402
                          on_grid, rel_err, seeded_state, stage_inputs, stored)

from qmvos_lab.config import ModelConfig  # noqa: E402
from qmvos_lab.inference import InferenceCore  # noqa: E402
from qmvos_lab.model import QMVOS, XMem  # noqa: E402


# adapter: network interface
def our_segment(net, features, readout, hidden, queries=None, object_valid=None):
    """(hidden, logits, prob with background) of our segment stage."""
    return net.segment(features, readout, hidden, queries=queries, object_valid=object_valid)[:3]


def forget_official_modules() -> None:
    """The XMem and QMVOS repositories share top-level package names (model, inference, util)."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("model", "inference", "util", "dataset"):
            del sys.modules[name]


def commit_of(repo: str) -> str:
    result = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown (not a git checkout)"


def xmem_stages(official, ours, frames, masks0, masks1, hidden):
    """Official outputs of every stage (stored) and ours on the same inputs."""
    out = {}
    for name, net in (("official", official), ("ours", ours)):
        key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)
        if name == "official":
            v0, h0 = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks0)
            v1, h1 = net.encode_value(frames[:, 1], f16[:, 1], h0, masks1, is_deep_update=False)
        else:
            v0, h0 = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks0)
            v1, h1 = net.encode_value(frames[:, 1], f16[:, 1], h0, masks1, deep_update=False)
        values = torch.stack([v0, v1], 3)  # 1 x N x Cv x 2 x h x w
        readout = net.read_memory(key[:, :, 2], selection[:, :, 2], key[:, :, :2], shrinkage[:, :, :2], values)
        features = (f16[:, 2], f8[:, 2], f4[:, 2])
        if name == "official":
            h2, logits, prob = net.segment(features, readout, h0, strip_bg=False)
        else:
            h2, logits, prob = our_segment(net, features, readout, h0)
        out[name] = {"key": key, "shrinkage": shrinkage, "selection": selection, "f16": f16, "f8": f8, "f4": f4,
                     "value": v0, "hidden_after_value": h0, "values1": v1, "readout": readout,
                     "hidden": h2, "logits": logits, "prob": prob}
    return {k: stored(k, v) for k, v in out["official"].items()}, {k: stored(k, v) for k, v in out["ours"].items()}


def qmvos_stages(released, ours, frames, masks0, hidden):
    """SIM queries and the QCIM segment, 3 object slots of which 2 are filled."""
    masks = torch.cat([masks0, torch.zeros_like(masks0[:, :1])], 1)  # 1 x 3 x H x W, slot 3 empty
    hidden = torch.cat([hidden, torch.zeros_like(hidden[:, :1])], 1)
    valid = torch.tensor([[True, True, False]])
    out = {}
    f16_query, key, shrinkage, selection, f16, f8, f4 = released.encode_key(frames)
    value, _ = released.encode_value(frames[:, 0], f16[:, 0], hidden, masks)
    readout = released.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1],
                                   value.unsqueeze(3))
    queries = released.init_query_SIM((f16_query[:, :1], f8[:, :1]), masks.unsqueeze(1), [2])
    h, logits, _, prob = released.segment_QCIM(queries, [2], (f16[:, 1], f8[:, 1], f4[:, 1]), readout, hidden,
                                               strip_bg=False)
    out["official"] = {"readout": readout, "queries": queries, "hidden": h, "logits": logits, "prob": prob}
    key, shrinkage, selection, f16, f8, f4 = ours.encode_key(frames)
    value, _ = ours.encode_value(frames[:, 0], f16[:, 0], hidden, masks)
    readout = ours.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1],
                               value.unsqueeze(3))
    queries = ours.init_queries((f16[:, 0], f8[:, 0], f4[:, 0]), masks, valid)
    h, logits, prob = our_segment(ours, (f16[:, 1], f8[:, 1], f4[:, 1]), readout, hidden, queries, valid)
    out["ours"] = {"readout": readout, "queries": queries, "hidden": h, "logits": logits, "prob": prob}
    # the padded slot (index 2; 3 with the background) is not compared: its contents are arbitrary
    keep = {"readout": 2, "queries": 2, "hidden": 2, "logits": 3, "prob": 3}
    return tuple({k: stored(k, v[:, :keep[k]]) for k, v in out[side].items()} for side in ("official", "ours"))


def run_qmvos_video(core, images, first_masks, released: bool):
    probs, queries = [], None
    core.set_all_labels([1, 2])
    for t, image in enumerate(images):
        end = t == len(images) - 1
        mask, valid = (first_masks, [1, 2]) if t == 0 else (None, None)
        if released:
            prob, queries = core.step(image, queries, 2, mask, valid, end=end)
        else:
            prob = core.step(image, mask, valid, end=end)
        probs.append(prob.float())
    return probs


def report(name: str, errors: dict) -> None:
    print(name)
    for key, value in errors.items():
        print(f"  {key:28s} {value:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xmem-repo", required=True)
    parser.add_argument("--qmvos-repo", required=True)
    parser.add_argument("--output", type=Path, default=FIXTURES)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    args.output.mkdir(parents=True, exist_ok=True)

    frames, labels, late = cases.make_clip()
    np.savez_compressed(args.output / "clip.npz", frames=frames, labels=labels, late_frame=late)
    images, masks = cases.video_inputs(frames, labels)
    stage_frames, masks0, masks1, hidden = stage_inputs(images, masks)

    # ---------------------------------------------------------------- XMem (official, MIT)
    from parity_xmem_network import import_official

    OfficialXMem, _, _ = import_official(args.xmem_repo)
    sys.path.insert(0, args.xmem_repo)
    from inference.inference_core import InferenceCore as OfficialCore
    sys.path.pop(0)
    official = OfficialXMem(dict(DIMS)).eval()
    state = seeded_state(official.state_dict(), XMEM_SEED)
    official.load_state_dict(state)
    ours = XMem(ModelConfig()).eval()
    ours.load_state_dict(state, strict=True)
    golden, mine = xmem_stages(official, ours, stage_frames, masks0, masks1, hidden)
    np.savez_compressed(args.output / "xmem_stages.npz", **golden)
    report("XMem stages: max relative error (ours vs official)", {k: rel_err(mine[k], golden[k]) for k in golden})

    theirs = cases.run_xmem_video(OfficialCore(official, official_config(XMEM_VIDEO)), images, masks, late)
    mine = cases.run_xmem_video(InferenceCore(ours, XMEM_VIDEO), images, masks, late)
    np.savez_compressed(args.output / "xmem_video.npz", prob=np.stack([on_grid(p) for p in theirs[late:]]),
                        prob_before_late=np.stack([on_grid(p) for p in theirs[:late]]))
    diff = max((a - b).abs().max().item() for a, b in zip(mine, theirs))
    agree = np.mean([(a.argmax(0) == b.argmax(0)).float().mean().item() for a, b in zip(mine, theirs)])
    spread = torch.stack(theirs[late:])
    print(f"XMem video: {len(images)} frames, object 3 enters at frame {late}: max |dprob| {diff:.2e}, "
          f"argmax agreement {agree * 100:.3f} %, official probabilities in (0.05, 0.95): "
          f"{((spread > 0.05) & (spread < 0.95)).float().mean().item() * 100:.1f} %")
    theirs = cases.run_xmem_video(OfficialCore(official, official_config(XMEM_PRUNING)), images, masks, None)
    mine = cases.run_xmem_video(InferenceCore(ours, XMEM_PRUNING), images, masks, None)
    np.savez_compressed(args.output / "xmem_pruning.npz", prob=np.stack([on_grid(p) for p in theirs]))
    diff = max((a - b).abs().max().item() for a, b in zip(mine, theirs))
    print(f"XMem video with long-term pruning: {len(images)} frames, objects 1 and 2: max |dprob| {diff:.2e}")
    forget_official_modules()

    # ---------------------------------------------------------------- QMVOS (released, GPL-3.0: run only)
    from parity_qmvos_network import import_released

    Released = import_released(args.qmvos_repo)
    sys.path.insert(0, args.qmvos_repo)
    from inference.inference_core import InferenceCore_QMVOS
    sys.path.pop(0)
    released = Released(dict(DIMS)).eval()
    state = seeded_state(released.state_dict(), QMVOS_SEED)
    released.load_state_dict(state)
    ours_q = QMVOS(ModelConfig(queries=True)).eval()
    ours_q.load_state_dict(state, strict=True)
    golden, mine = qmvos_stages(released, ours_q, stage_frames[:, :2], masks0, hidden)
    np.savez_compressed(args.output / "qmvos_stages.npz", **golden)
    report("QMVOS stages: max relative error (ours vs released)", {k: rel_err(mine[k], golden[k]) for k in golden})
    first = cases.qmvos_first_masks(masks)
    theirs = run_qmvos_video(InferenceCore_QMVOS(released, official_config(QMVOS_VIDEO)), images, first, True)
    mine = run_qmvos_video(InferenceCore(ours_q, QMVOS_VIDEO), images, first, False)
    np.savez_compressed(args.output / "qmvos_video.npz", prob=np.stack([on_grid(p) for p in theirs]))
    diff = max((a - b).abs().max().item() for a, b in zip(mine, theirs))
    agree = np.mean([(a.argmax(0) == b.argmax(0)).float().mean().item() for a, b in zip(mine, theirs)])
    spread = torch.stack(theirs[1:])
    print(f"QMVOS video: {len(images)} frames, 2 objects on frame 0: max |dprob| {diff:.2e}, "
          f"argmax agreement {agree * 100:.3f} %, released probabilities in (0.05, 0.95): "
          f"{((spread > 0.05) & (spread < 0.95)).float().mean().item() * 100:.1f} %")

    meta = {"xmem_commit": commit_of(args.xmem_repo), "qmvos_commit": commit_of(args.qmvos_repo),
            "torch": torch.__version__, "xmem_seed": XMEM_SEED, "qmvos_seed": QMVOS_SEED,
            "grid": cases.GRID, "late_frame": int(late)}
    (args.output / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(args.output.iterdir())}
    print("wrote", ", ".join(f"{n} ({s / 1024:.0f} KiB)" for n, s in sizes.items()))


if __name__ == "__main__":
    main()
