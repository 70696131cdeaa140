"""`qmvos-lab segment`: segment one video (a folder of frames or a video file) into a folder of
palette PNGs, with optional probability maps and an overlay video.

Every input is checked before any work. Results are written into a staging folder next to the
output and moved into place only when the whole video is done, so a failure or an interrupt
never leaves a half-written output folder.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import InferenceConfig
from .data.frames import FrameSource, load_given_masks, read_palette
from .data.masks import davis_palette, write_label_map
from .errors import UserError
from .inference import VideoSegmenter
from .resources import peak_memory_mib
from .viz.overlay import VideoWriter, overlay


@dataclass
class SegmentSummary:
    frames: int
    objects: int
    fps: float  # frames per second of model time, excluding reading and writing
    peak_memory_mib: float
    device: str

    def line(self) -> str:
        return (f"segmented {self.frames} frames, {self.objects} objects: {self.fps:.2f} FPS (excluding I/O), "
                f"peak {'GPU' if self.device.startswith('cuda') else 'process'} memory {self.peak_memory_mib:.0f} MiB")


def prepare_output(output: Path, overwrite: bool, check_only: bool = False) -> Path | None:
    """Refuse an output folder that already holds files (unless `overwrite`); return a staging folder."""
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UserError(f"output folder {output} already holds files; pass --overwrite to replace them")
    if check_only:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, output: Path) -> None:
    """Move the finished staging folder to `output`, replacing what was there."""
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, output)


def _full_palette(palette: bytes | None) -> bytes:
    base = davis_palette()
    if not palette:
        return base
    return (palette + base[len(palette):])[:768]


@dataclass
class VideoInputs:
    """A checked video: its frames, the given masks by frame index, and the first mask's palette."""

    source: FrameSource
    frame_size: tuple[int, int]
    masks: dict[int, np.ndarray]
    palette: bytes


def load_inputs(frames: str | os.PathLike, masks: str | os.PathLike) -> VideoInputs:
    """Check and read everything but the frames' pixels (one-line errors for bad input)."""
    source = FrameSource(frames)
    frame_size = source.first_frame_size()
    given = load_given_masks(masks, source.names, frame_size)
    palette = _full_palette(read_palette(Path(masks) / f"{source.names[0]}.png"))
    return VideoInputs(source, frame_size, given, palette)


def segment_to_folder(model, inputs: VideoInputs, output: str | os.PathLike, config: InferenceConfig,
                      device: str = "cpu", amp: bool = False, save_scores: bool = False,
                      overlay_path: str | os.PathLike | None = None, overwrite: bool = False,
                      progress: bool = True) -> SegmentSummary:
    """Segment `inputs` with `model` into `output` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    source, frame_size, given, palette = inputs.source, inputs.frame_size, inputs.masks, inputs.palette
    output = Path(output)
    writer = VideoWriter(overlay_path) if overlay_path is not None else None  # validates the name first
    staging = prepare_output(output, overwrite)
    try:
        model = model.to(device).eval()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        segmenter = VideoSegmenter(model, config, device=device, amp=amp)
        model_seconds = 0.0
        frames_iter = iter(source)
        if progress:
            from tqdm.auto import tqdm

            frames_iter = tqdm(frames_iter, total=len(source), desc="segment", unit="frame")
        for index, image in enumerate(frames_iter):
            name = source.names[index]
            if image.shape[:2] != tuple(frame_size):
                raise UserError(f"frame {name} is {image.shape[1]}x{image.shape[0]} but the first frame is "
                                f"{frame_size[1]}x{frame_size[0]}; all frames must have one size")
            tic = time.perf_counter()
            result = segmenter.step(image, given.get(index), end=index == len(source) - 1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            model_seconds += time.perf_counter() - tic
            write_label_map(staging / f"{name}.png", result.labels, palette)
            if save_scores:
                scores = result.prob.cpu().numpy().astype(np.float16)  # (N + 1) x H x W
                (staging / "scores").mkdir(exist_ok=True)
                np.save(staging / "scores" / f"{name}.npy", scores)
            if writer is not None:
                writer.add(overlay(image, result.labels, palette))
        if writer is not None:
            writer.close()
        publish(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if writer is not None:
            writer.abort()
        raise
    return SegmentSummary(frames=len(source), objects=len(segmenter.object_ids),
                          fps=len(source) / max(model_seconds, 1e-9),
                          peak_memory_mib=peak_memory_mib(device), device=str(device))
