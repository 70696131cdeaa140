"""Compare QMVOS video inference with the released evaluation code (first-frame annotation only).

Usage (the released code is GPL-3.0: fetch it yourself to run it, never copy from it):
    python benchmarks/parity_qmvos_inference.py --qmvos-repo /path/to/QMVOS \
        [--frames-dir $QMVOS_LAB_DAVIS16/JPEGImages/240p/bear --masks-dir ...]

Same weights (random, realistic scales), same preprocessed frames, two objects given on the first
frame (the sequence's mask split into a left and a right part), CPU, fp32. The released SIM's
missing `forward_ffn` is patched to the identity (the FFN after it then runs, as described).
Prints max |dprob| and argmax agreement for the default memory settings and with consolidation.
Videos where objects enter later differ on purpose: the released code rebuilds every query from
the late annotation alone, which zeroes the queries of the objects already tracked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from parity_qmvos_network import import_released  # noqa: E402
from parity_xmem_inference import add_clip_arguments, load_clip  # noqa: E402
from parity_xmem_network import randomised_state  # noqa: E402

from qmvos_lab.config import InferenceConfig, ModelConfig  # noqa: E402
from qmvos_lab.inference import InferenceCore  # noqa: E402
from qmvos_lab.model import QMVOS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qmvos-repo", required=True)
    add_clip_arguments(parser, frames=40)
    parser.add_argument("--double", action="store_true", help="run both in float64 (separates rounding from logic)")
    args = parser.parse_args()
    if args.double:
        torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    Released = import_released(args.qmvos_repo)
    sys.path.insert(0, args.qmvos_repo)
    from inference.inference_core import InferenceCore_QMVOS

    released = Released({"key_dim": 64, "value_dim": 512, "hidden_dim": 64}).eval()
    state = randomised_state(released, seed=0)
    released.load_state_dict(state)
    ours_net = QMVOS(ModelConfig(queries=True)).eval()
    ours_net.load_state_dict(state)
    released.to(torch.get_default_dtype()), ours_net.to(torch.get_default_dtype())
    images, masks = load_clip(args.frames_dir, args.masks_dir, args.frames, size=-1)
    images = [x.to(torch.get_default_dtype()) for x in images]
    masks = [x.to(torch.get_default_dtype()) for x in masks]
    settings = {"defaults": InferenceConfig(size=-1),
                "consolidation every 2 memory frames": InferenceConfig(size=-1, mem_every=2, max_mid_term_frames=4,
                                                                       min_mid_term_frames=2, num_prototypes=64)}
    for name, config in settings.items():
        official_config = {"top_k": config.top_k, "mem_every": config.mem_every,
                           "deep_update_every": config.deep_update_every, "enable_long_term": config.enable_long_term,
                           "enable_long_term_count_usage": True, "max_mid_term_frames": config.max_mid_term_frames,
                           "min_mid_term_frames": config.min_mid_term_frames, "num_prototypes": config.num_prototypes,
                           "max_long_term_elements": config.max_long_term_elements, "hidden_dim": 64}
        ours, theirs = InferenceCore(ours_net, config), InferenceCore_QMVOS(released, official_config)
        ours.set_all_labels([1, 2])
        theirs.set_all_labels([1, 2])
        queries, max_diff, agree = None, 0.0, []
        for t, image in enumerate(images):
            end = t == len(images) - 1
            mask = masks[0] if t == 0 else None
            valid = [1, 2] if t == 0 else None
            a = ours.step(image, mask, valid, end=end)
            b, queries = theirs.step(image, queries, 2, mask, valid, end=end)
            max_diff = max(max_diff, (a - b).abs().max().item())
            agree.append((a.argmax(0) == b.argmax(0)).float().mean().item())
        print(f"{name}: {len(images)} frames, 2 objects: max |dprob| {max_diff:.2e}, "
              f"argmax agreement {np.mean(agree) * 100:.4f} %")


if __name__ == "__main__":
    main()
