"""The placeholder main job (until the trainer exists): build XMem, round-trip its weights through
a checkpoint file, and segment a generated clip with random weights, printing shapes and timing.

It exercises every stage of the network (encode_key, encode_value, read_memory, segment) with a
dense memory of every past frame; the real inference engine (working + long-term memory) and the
trained demo replace it in later issues.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from .checkpoints import load_checkpoint, save_checkpoint
from .config import ModelConfig
from .model import XMem

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def moving_discs_clip(num_frames: int = 6, height: int = 240, width: int = 432, num_objects: int = 2,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A tiny generated clip: coloured discs moving over a smooth background.

    Returns frames (T x 3 x H x W in [0, 1]) and label maps (T x H x W, 0 = background).
    """
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    background = torch.stack([0.5 + 0.2 * torch.sin(xs / 17.0), 0.5 + 0.2 * torch.cos(ys / 11.0),
                              0.4 + 0.1 * torch.sin((xs + ys) / 23.0)])  # 3 x H x W
    colours = torch.rand(num_objects, 3, generator=gen)
    start = torch.rand(num_objects, 2, generator=gen) * torch.tensor([height, width]) * 0.6 + 20
    velocity = (torch.rand(num_objects, 2, generator=gen) - 0.5) * 16
    radius = min(height, width) / 8
    frames, labels = [], []
    for t in range(num_frames):
        frame, label = background.clone(), torch.zeros(height, width, dtype=torch.long)
        for i in range(num_objects):
            cy, cx = (start[i] + velocity[i] * t).tolist()
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2
            frame[:, inside] = colours[i, :, None]
            label[inside] = i + 1
        frames.append(frame)
        labels.append(label)
    return torch.stack(frames), torch.stack(labels)


def run_demo(num_frames: int = 6, height: int = 240, width: int = 432) -> dict:
    torch.manual_seed(0)
    print("QMVOS Lab placeholder demo: XMem with random weights on a generated clip")
    start = time.perf_counter()
    model = XMem(ModelConfig()).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"built XMem: {params / 1e6:.2f} M parameters, {len(model.state_dict())} state-dict entries "
          f"({time.perf_counter() - start:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(model, Path(tmp) / "random-xmem.pth")
        model = load_checkpoint(path)
    print(f"checkpoint round trip: variant {model.checkpoint_info.variant}, config {model.config}")

    frames, labels = moving_discs_clip(num_frames, height, width)
    num_objects = int(labels.max())
    pad_h, pad_w = (math.ceil(height / 16) * 16 - height), (math.ceil(width / 16) * 16 - width)
    images = (frames - IMAGENET_MEAN) / IMAGENET_STD
    images = torch.nn.functional.pad(images, (0, pad_w, 0, pad_h))  # T x 3 x H' x W'
    first_masks = torch.stack([(labels[0] == i + 1).float() for i in range(num_objects)])  # N x H x W
    first_masks = torch.nn.functional.pad(first_masks, (0, pad_w, 0, pad_h))

    timings = []
    with torch.inference_mode():
        key, shrinkage, selection, f16, f8, f4 = model.encode_key(images[:1])
        print(f"encode_key: key {tuple(key.shape)}, shrinkage {tuple(shrinkage.shape)}, "
              f"selection {tuple(selection.shape)}, f16 {tuple(f16.shape)}, f8 {tuple(f8.shape)}, f4 {tuple(f4.shape)}")
        hidden = torch.zeros(1, num_objects, model.hidden_dim, *key.shape[-2:])
        value, hidden = model.encode_value(images[:1], f16, hidden, first_masks[None])
        print(f"encode_value: value {tuple(value.shape)}, sensory memory {tuple(hidden.shape)}")
        mem_keys, mem_shrinkages, mem_values = [key], [shrinkage], [value]
        for t in range(1, num_frames):
            tic = time.perf_counter()
            key, shrinkage, selection, f16, f8, f4 = model.encode_key(images[t:t + 1])
            readout = model.read_memory(key, selection, torch.stack(mem_keys, 2), torch.stack(mem_shrinkages, 2),
                                        torch.stack(mem_values, 3), top_k=30)  # 1 x N x Cv x h x w
            hidden, logits, prob = model.segment((f16, f8, f4), readout, hidden)
            value, hidden = model.encode_value(images[t:t + 1], f16, hidden, prob)
            mem_keys.append(key), mem_shrinkages.append(shrinkage), mem_values.append(value)
            timings.append(time.perf_counter() - tic)
        print(f"segment: readout {tuple(readout.shape)}, logits {tuple(logits.shape)}, prob {tuple(prob.shape)}")
    per_frame = sum(timings) / len(timings)
    print(f"segmented {num_frames - 1} frames of {height}x{width} with {num_objects} objects: "
          f"{per_frame * 1000:.0f} ms/frame ({1 / per_frame:.2f} FPS) on {torch.get_num_threads()} CPU threads")
    return {"frames": num_frames, "objects": num_objects, "seconds_per_frame": per_frame,
            "prob_shape": tuple(prob.shape)}
