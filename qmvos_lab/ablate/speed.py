"""Table 3a's other column: QMVOS's cost in time per frame against XMem's, measured side by side in
one run on the device at hand (as benchmarks/qmvos_cost.py), next to the paper's 37.6 / 38.1 FPS."""

from __future__ import annotations

import time

import pandas as pd
import torch

from ..ablations import model_config
from ..config import InferenceConfig
from ..data.synthetic import SyntheticConfig, generate_video
from ..inference import VideoSegmenter
from ..model import build_network
from .paper import PAPER_FPS


def seconds_per_frame(network, frames, first_mask, device: torch.device, amp: bool = False, warmup: int = 3) -> float:
    """Mean time of `VideoSegmenter.step` over frames[warmup:] (the first frames warm up)."""
    segmenter = VideoSegmenter(network, InferenceConfig(size=-1), device=device, amp=amp)
    with torch.no_grad():
        for t, frame in enumerate(frames[:warmup]):
            segmenter.step(frame, first_mask if t == 0 else None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        for frame in frames[warmup:]:
            segmenter.step(frame)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - tic) / max(1, len(frames) - warmup)


def speed_table(size: str = "base", height: int = 240, width: int = 427, objects: int = 2, frames: int = 30,
                repeats: int = 2, device: str | None = None, amp: bool = False, warmup: int = 3) -> pd.DataFrame:
    """ms per frame and FPS of XMem and QMVOS (random weights of `size`: "base" is the released
    size) on one generated clip, alternating the two `repeats` times and keeping each one's best;
    `ratio` is QMVOS / XMem time per frame (the paper: 38.1 / 37.6 = 1.013)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    networks = {name: build_network(model_config(name, size)).eval().to(device) for name in ("xmem", "qmvos")}
    video = generate_video(SyntheticConfig(num_objects=objects, length=min(frames, 50), height=height, width=width),
                           seed=0)
    order = list(range(len(video.frames))) + list(range(len(video.frames) - 1, -1, -1))  # forwards, backwards
    clip = [video.frames[order[t % len(order)]] for t in range(frames)]
    best = {name: float("inf") for name in networks}
    for _ in range(repeats):  # alternate, so that both see the same machine state
        for name, network in networks.items():
            best[name] = min(best[name], seconds_per_frame(network, clip, video.labels[0], device, amp, warmup))
    label = f"{device.type}{' AMP' if amp else ''}, {size} size, {width}x{height}, {objects} objects"
    rows = [{"model": name, "ms_per_frame": 1000 * best[name], "fps": 1 / best[name], "paper_fps": PAPER_FPS[name],
             "setting": label} for name in ("xmem", "qmvos")]
    table = pd.DataFrame(rows)
    table["ratio"] = best["qmvos"] / best["xmem"]  # QMVOS / XMem time per frame
    table["paper_ratio"] = PAPER_FPS["xmem"] / PAPER_FPS["qmvos"]
    return table
