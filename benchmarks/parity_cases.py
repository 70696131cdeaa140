"""The cases behind the committed parity goldens (tests/fixtures/parity/), shared by the script
that runs the official code once (make_parity_goldens.py) and the test that compares ours with
its outputs (tests/test_parity_goldens.py).

Everything here depends only on the official state-dict layout (names and shapes, which
tests/fixtures/*_official_state_dict.txt pin) and on a seed: the weights are drawn by
`seeded_state`, not by either implementation's initialisation, so neither side's init code can
move the goldens. The clip is generated (qmvos_lab.data.synthetic) once and stored with the
goldens, so the test does not depend on the generator either.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import torch

from qmvos_lab.config import InferenceConfig
from qmvos_lab.inference.preprocess import to_image_tensor

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "parity"
DIMS = {"key_dim": 64, "value_dim": 512, "hidden_dim": 64}  # the released networks
XMEM_SEED, QMVOS_SEED = 19, 20  # weights
INPUT_SEED = 21  # random hidden states / readouts of the stage cases
GRID = 2  # probabilities are stored on every GRID-th pixel (both axes)

# 24 elements a memory frame at 64 x 96, so top_k stays below the official code's limit (it cannot
# take the top 30 of fewer elements). Working memory consolidates every 2 memory frames (T_max 4,
# T_min 2): with a memory frame every 2 frames, consolidation fires on frames 6, 10 and 14.
XMEM_VIDEO = InferenceConfig(size=-1, top_k=20, mem_every=2, max_mid_term_frames=4, min_mid_term_frames=2,
                             num_prototypes=16)
# long-term memory small enough to be pruned (the official code prunes one object group only, so
# both objects are given on frame 0 and object 3 never is)
XMEM_PRUNING = InferenceConfig(size=-1, top_k=20, mem_every=1, max_mid_term_frames=3, min_mid_term_frames=2,
                               num_prototypes=16, max_long_term_elements=40)
QMVOS_VIDEO = XMEM_VIDEO


def official_config(config: InferenceConfig) -> dict:
    """The official InferenceCore's config dict for one of ours."""
    return {"top_k": config.top_k, "mem_every": config.mem_every, "deep_update_every": config.deep_update_every,
            "enable_long_term": config.enable_long_term, "enable_long_term_count_usage": True,
            "max_mid_term_frames": config.max_mid_term_frames, "min_mid_term_frames": config.min_mid_term_frames,
            "num_prototypes": config.num_prototypes, "max_long_term_elements": config.max_long_term_elements,
            "hidden_dim": DIMS["hidden_dim"]}


# ---------------------------------------------------------------------------------- weights
# Scales on top of the recipe below, so that the untrained decoders make logits of moderate size:
# XMem's prediction conv x 2 (x 1 leaves every probability near 1 / (N + 1)), QMVOS's final query
# LayerNorm x 0.3 (at x 1 the dynamic-filter logits <q, g4> reach the tens). Beyond |logit| ~ 8 the
# aggregation's log(p / (1 - p)) magnifies fp32 rounding, and both implementations drift apart by
# 1e-4 and more with no difference in logic.
GAINS = {"decoder.pred.weight": 2.0, "decoder.QCIM.norm3.weight": 0.3, "decoder.QCIM.norm3.bias": 0.3}


def seeded_state(template: dict[str, torch.Tensor], seed: int, gains: dict | None = None) -> dict[str, torch.Tensor]:
    """Weights for a state dict with `template`'s names, shapes and dtypes; each tensor is drawn
    from its own generator, seeded by `seed` and its name (so the order of the keys is irrelevant).

    Convolutions and linear layers: N(0, 1 / fan_in) (activations keep their scale through the
    residual stacks); BatchNorm: running mean 0.1 N(0, 1), running variance 0.5 + U(0, 1), scale
    0.5 + 0.5 U(0, 1); other normalisation scales 1 + 0.1 N(0, 1); biases 0.1 N(0, 1); then
    `gains` (GAINS when None).
    """
    gains = GAINS if gains is None else gains
    state = {}
    for name, value in template.items():
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        shape = value.shape
        if not value.is_floating_point():
            state[name] = torch.zeros_like(value)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith(("running_mean", "bias")):
            state[name] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        elif "bn" in name or "downsample.1" in name:  # BatchNorm scale
            state[name] = 0.5 + 0.5 * torch.rand(shape, generator=gen)
        else:  # LayerNorm / GroupNorm scale
            state[name] = 1 + 0.1 * torch.randn(shape, generator=gen)
        if name in gains:
            state[name] = state[name] * gains[name]
    return state


# ---------------------------------------------------------------------------------- the clip
def make_clip():
    """The generated clip: frames T x H x W x 3 uint8, labels T x H x W (ids 1..3), the frame where
    object 3 enters. 16 frames at 56 x 88 (padded to 64 x 96 by both implementations)."""
    from qmvos_lab.data.synthetic import SyntheticConfig, generate_video

    config = SyntheticConfig(num_objects=3, length=16, height=56, width=88, enter_prob=0.5, similarity=0.5)
    for seed in range(100):
        video = generate_video(config, seed)
        first = video.first_frame
        # objects 1 and 2 on frame 0, object 3 entering on a middle frame
        if first[0] == 0 and first[1] == 0 and 4 <= first[2] <= 8:
            return video.frames, video.labels, first[2]
    raise RuntimeError("no generated clip with an object entering mid-video")


def video_inputs(frames: np.ndarray, labels: np.ndarray):
    """Normalised images 3 x H x W and the one-hot masks N x H x W of every frame."""
    images = [to_image_tensor(f) for f in frames]
    num_objects = int(labels.max())
    masks = [torch.stack([torch.from_numpy(lab == i + 1) for i in range(num_objects)]).float() for lab in labels]
    return images, masks


def run_xmem_video(core, images, masks, late_frame: int | None) -> list[torch.Tensor]:
    """Objects 1, 2 given on frame 0, object 3 on `late_frame` (that annotation holds it alone;
    None: never). Works for ours and the official InferenceCore (same step signature)."""
    probs = []
    for t, image in enumerate(images):
        end = t == len(images) - 1
        if t == 0:
            core.set_all_labels([1, 2])
            prob = core.step(image, masks[0][:2], [1, 2], end=end)
        elif t == late_frame:
            core.set_all_labels([1, 2, 3])
            given = masks[t].clone()
            given[:2] = 0
            prob = core.step(image, given, [3], end=end)
        else:
            prob = core.step(image, None, None, end=end)
        probs.append(prob.float())
    return probs


def qmvos_first_masks(masks):
    """Objects 1, 2 annotated on the first frame only (object 3 is never given)."""
    return masks[0][:2]


def on_grid(prob: torch.Tensor) -> np.ndarray:
    """... x H x W -> ... x H/GRID x W/GRID float32."""
    return prob[..., ::GRID, ::GRID].float().numpy()


# ---------------------------------------------------------------------------------- the stages
def stage_inputs(images, masks):
    """Inputs of the per-stage cases: 3 frames (1 x 3 x 3 x H x W, padded to a multiple of 16),
    the first frame's two-object masks (1 x 2 x H x W), a random sensory memory (1 x 2 x 64 x h x w)."""
    from qmvos_lab.inference.preprocess import pad_to_multiple

    frames = torch.stack([pad_to_multiple(x, 16)[0] for x in images[:3]])[None]
    masks0 = pad_to_multiple(masks[0][:2], 16)[0][None]
    masks1 = pad_to_multiple(masks[1][:2], 16)[0][None]
    h, w = frames.shape[-2] // 16, frames.shape[-1] // 16
    gen = torch.Generator().manual_seed(INPUT_SEED)
    hidden = torch.randn(1, 2, DIMS["hidden_dim"], h, w, generator=gen)
    return frames, masks0, masks1, hidden


# channel strides of what is stored of each stage output (the rest would only make the files big)
STRIDES = {"f16": 16, "f8": 8, "f4": 4, "value": 8, "readout": 8}


def stored(name: str, x: torch.Tensor) -> np.ndarray:
    """What the goldens keep of a stage output (channel-strided features, grid-strided maps)."""
    x = x.detach().float()
    if name in ("f16", "f8", "f4"):  # B x T x C x h x w
        x = x[:, :, ::STRIDES[name]]
    elif name in ("value", "readout", "values1"):  # B x N x C x ...
        x = x[:, :, ::STRIDES.get(name, 8)]
    elif name in ("logits", "prob"):  # B x N x H x W
        x = x[..., ::GRID, ::GRID]
    return x.numpy()


def rel_err(a, b) -> float:
    a, b = torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
