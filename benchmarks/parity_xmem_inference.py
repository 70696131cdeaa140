"""Compare video inference (memory, consolidation, objects entering later) with the official XMem.

Usage (the official code is fetched by you, never committed):
    python benchmarks/parity_xmem_inference.py --xmem-repo /path/to/XMem \
        [--frames-dir $QMVOS_LAB_DAVIS16/JPEGImages/240p/bear \
         --masks-dir $QMVOS_LAB_DAVIS16/Annotations/240p/bear]

Both implementations get the same weights (random, with realistic activation scales), the same
preprocessed frames and the same masks, on the CPU in fp32. The object mask of the sequence is
split into a left and a right object; the right one is given only on a later frame (a new object
entering mid-video). Small memory settings make consolidation fire many times. For each setting
it prints the max |Δprob| over all frames and pixels and the argmax agreement.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from parity_xmem_network import import_official, randomised_state  # noqa: E402

from qmvos_lab.config import InferenceConfig, ModelConfig  # noqa: E402
from qmvos_lab.inference import InferenceCore  # noqa: E402
from qmvos_lab.inference.preprocess import resize_image, resize_masks, resized_shape, to_image_tensor  # noqa: E402
from qmvos_lab.model import XMem  # noqa: E402


def load_clip(frames_dir: Path, masks_dir: Path, count: int, size: int):
    names = sorted(p.stem for p in frames_dir.glob("*.jpg"))[:count]
    images, masks = [], []
    for name in names:
        image = np.asarray(Image.open(frames_dir / f"{name}.jpg").convert("RGB"))
        label = np.asarray(Image.open(masks_dir / f"{name}.png")) > 0
        shape = resized_shape(*image.shape[:2], size)
        images.append(resize_image(to_image_tensor(image), shape))
        half = np.zeros_like(label)
        half[:, : label.shape[1] // 2] = True
        two = torch.from_numpy(np.stack([label & half, label & ~half])).float()  # 2 x H x W
        masks.append(resize_masks(two, shape))
    return images, masks


def add_clip_arguments(parser: argparse.ArgumentParser, frames: int) -> None:
    """The clip both inference parity scripts read: a DAVIS-2016 240p sequence (by default from
    the folder that $QMVOS_LAB_DAVIS16 names)."""
    data = Path(os.environ.get("QMVOS_LAB_DAVIS16", "data/davis16-240p"))
    parser.add_argument("--frames-dir", type=Path, default=data / "JPEGImages" / "240p" / "bear")
    parser.add_argument("--masks-dir", type=Path, default=data / "Annotations" / "240p" / "bear")
    parser.add_argument("--frames", type=int, default=frames)


def run(core, images, masks, late_frame):
    probs = []
    for t, image in enumerate(images):
        end = t == len(images) - 1
        if t == 0:
            core.set_all_labels([1])
            first = masks[0][:1] if late_frame else (masks[0].sum(0, keepdim=True) > 0).float()
            prob = core.step(image, first, [1], end=end)
        elif t == late_frame:
            core.set_all_labels([1, 2])
            given = masks[t].clone()
            given[0] = 0  # the annotation of the late frame holds the new object only
            prob = core.step(image, given, [2], end=end)
        else:
            prob = core.step(image, None, None, end=end)
        probs.append(prob.float())
    return probs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xmem-repo", required=True)
    add_clip_arguments(parser, frames=60)
    parser.add_argument("--late-frame", type=int, default=12)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    OfficialXMem, _, _ = import_official(args.xmem_repo)
    sys.path.insert(0, args.xmem_repo)
    from inference.inference_core import InferenceCore as OfficialCore

    official_net = OfficialXMem({"key_dim": 64, "value_dim": 512, "hidden_dim": 64}).eval()
    state = randomised_state(official_net, seed=0)
    official_net.load_state_dict(state)
    ours_net = XMem(ModelConfig()).eval()
    ours_net.load_state_dict(state)
    images, masks = load_clip(args.frames_dir, args.masks_dir, args.frames, size=-1)

    late = args.late_frame
    settings = {  # name: (config, frame where object 2 enters; None = single object)
        "defaults (working memory only on short clips)": (InferenceConfig(size=-1), late),
        "consolidation every 2 memory frames": (InferenceConfig(size=-1, mem_every=2, max_mid_term_frames=4,
                                                                min_mid_term_frames=2, num_prototypes=64), late),
        "no long-term memory, deep update every 3": (InferenceConfig(size=-1, enable_long_term=False,
                                                                      deep_update_every=3), late),
        # the official code prunes long-term memory with one object group only
        "long-term pruning (one object)": (InferenceConfig(size=-1, mem_every=1, max_mid_term_frames=3,
                                                           min_mid_term_frames=2, num_prototypes=64,
                                                           max_long_term_elements=200), None),
    }
    for name, (config, late_frame) in settings.items():
        official_config = {"top_k": config.top_k, "mem_every": config.mem_every,
                           "deep_update_every": config.deep_update_every,
                           "enable_long_term": config.enable_long_term, "enable_long_term_count_usage": True,
                           "max_mid_term_frames": config.max_mid_term_frames,
                           "min_mid_term_frames": config.min_mid_term_frames,
                           "num_prototypes": config.num_prototypes,
                           "max_long_term_elements": config.max_long_term_elements, "hidden_dim": 64}
        ours = run(InferenceCore(ours_net, config), images, masks, late_frame)
        theirs = run(OfficialCore(official_net, official_config), images, masks, late_frame)
        max_diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
        agree = np.mean([(a.argmax(0) == b.argmax(0)).float().mean().item() for a, b in zip(ours, theirs)])
        entering = f"object 2 enters at frame {late_frame}" if late_frame else "one object"
        print(f"{name}: {len(images)} frames, {entering}: "
              f"max |dprob| {max_diff:.2e}, argmax agreement {agree * 100:.4f} %")


if __name__ == "__main__":
    main()
