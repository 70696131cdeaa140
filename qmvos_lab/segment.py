"""`qmvos-lab segment`: segment one video (a folder of frames or a video file) into a folder of
palette PNGs, with optional probability maps and an overlay video.

Every input and output is checked before the model is loaded (`load_inputs`, `check_size`,
`check_outputs`). Results are written into a staging folder next to the output and moved into
place only when the whole video is done (`atomic.staged_folder`), so a failure, Ctrl-C or SIGTERM
never leaves a half-written output folder.

Masks are label maps (ids 1..254, 0 background, 255 void). Masks that hold only 0 and 255 (the
usual way to save a binary mask) hold one object, written back as 255.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import check_writable, remove_leftovers, staged_folder
from .config import InferenceConfig
from .data.frames import FrameSource, load_given_masks
from .data.masks import VOID_LABEL, full_palette, png_files, read_palette, write_label_map
from .errors import UserError
from .inference import VideoSegmenter
from .inference.fast import choose_amp
from .inference.inputs import check_memory
from .inference.preprocess import resized_shape
from .locks import holding_output_lock
from .resources import peak_memory_mib
from .viz.overlay import VideoWriter, overlay

MIN_SIZE = 16  # the network's stride: a shorter side below it is less than one stride-16 feature cell
BINARY_OBJECT = 1  # the id that the object of 0/255 binary masks has inside the network


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


@dataclass
class VideoInputs:
    """A checked video: its frames, the given masks by frame index (ids as the network sees them),
    the first mask's palette, and `binary`: the masks were 0/255 (one object, written back as 255)."""

    source: FrameSource
    frame_size: tuple[int, int]
    masks: dict[int, np.ndarray]
    palette: bytes
    masks_dir: Path | None = None
    binary: bool = False

    def output_labels(self, labels: np.ndarray) -> np.ndarray:
        """The ids to write: the user's own (the object of binary masks back to 255)."""
        return np.where(labels == BINARY_OBJECT, VOID_LABEL, 0).astype(np.uint8) if self.binary else labels


def _is_binary(masks: dict[int, np.ndarray]) -> bool:
    """0/255 masks, the first holding both values: one object saved the usual binary way."""
    first = masks[min(masks)]
    return bool((first == 0).any() and (first == VOID_LABEL).any()
                and all(np.isin(m, (0, VOID_LABEL)).all() for m in masks.values()))


def load_inputs(frames: str | os.PathLike, masks: str | os.PathLike) -> VideoInputs:
    """Check and read everything but the frames' pixels (one-line errors for bad input)."""
    source = FrameSource(frames)
    frame_size = source.first_frame_size()
    given = load_given_masks(masks, source.names, frame_size)
    first_path = next(p for p in png_files(masks) if p.stem == source.names[0])  # 00000.png or 00000.PNG
    own_palette = read_palette(first_path)
    palette = full_palette(own_palette)
    binary = _is_binary(given)
    if binary:  # 0 -> background, 255 -> the object
        given = {i: np.where(m == VOID_LABEL, BINARY_OBJECT, 0).astype(np.uint8) for i, m in given.items()}
        if own_palette is None:  # a grayscale mask: id 255 white, as it was
            palette = palette[:765] + b"\xff\xff\xff"
    first = given[0]
    if not ((first != 0) & (first != VOID_LABEL)).any():
        content = ("0 (background)" if not first.any() else f"{VOID_LABEL} (void)" if (first == VOID_LABEL).all()
                   else f"0 (background) or {VOID_LABEL} (void)")
        raise UserError(f"mask {first_path} holds no object: every pixel is {content}; give each object its own "
                        "id 1..254 (or save a single object as a 0/255 binary mask)")
    return VideoInputs(source, frame_size, given, palette, Path(masks), binary)


def check_size(size: int, frame_size: tuple[int, int]) -> None:
    """The network needs at least one stride-16 feature cell along the shorter side."""
    if size != -1 and size < MIN_SIZE:
        raise UserError(f"--size {size} is below {MIN_SIZE}, the network's stride (the output would be blank); "
                        f"use --size {MIN_SIZE} or more, or -1 to keep the frames' size")
    if size == -1 and min(frame_size) < MIN_SIZE:
        raise UserError(f"the frames are {frame_size[1]}x{frame_size[0]}, smaller than the network's stride "
                        f"({MIN_SIZE}); pass --size {MIN_SIZE} or more to enlarge them")


def check_memory_budget(config: InferenceConfig, inputs: VideoInputs, device: str | torch.device) -> None:
    """--size bounded by the memory its memory read would need (inference/inputs.check_memory)."""
    memory_frames = min(config.max_mid_term_frames, 1 + (len(inputs.source) - 1) // config.mem_every)
    check_memory(inputs.frame_size, config.size, memory_frames, device)


def network_size(model, size: int | None = None) -> int:
    """The size to segment at: `size` (--size) when given, else the inference size the checkpoint's
    training recipe saved (`model.inference_size`) when it has one, else InferenceConfig's default (480)."""
    if size is not None:
        return size
    saved = getattr(model, "inference_size", -1)
    return saved if saved > 0 else InferenceConfig().size


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_outputs(output: str | os.PathLike, overwrite: bool = False, overlay_path: str | os.PathLike | None = None,
                  inputs: VideoInputs | None = None) -> None:
    """Refuse, before any work, outputs that cannot or must not be written (one-line UserErrors)."""
    output = Path(output)
    check_writable(output, "--output")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UserError(f"output folder {output} already holds files; pass --overwrite to replace them")
    if inputs is not None:
        for setting, folder in (("--frames", inputs.source.path), ("--masks", inputs.masks_dir)):
            if folder is not None and folder.is_dir() and _inside(folder, output):
                raise UserError(f"--output {output} would replace the {setting} folder {folder}; "
                                "write the results somewhere else")
    if overlay_path is not None:
        overlay_path = Path(overlay_path)
        if overlay_path.suffix.lower() not in (".gif", ".mp4"):
            raise UserError(f"--overlay {overlay_path}: use a .gif or .mp4 file name")
        check_writable(overlay_path, "--overlay", kind="file")
        if overlay_path.exists() and not overwrite:
            raise UserError(f"--overlay {overlay_path} exists; pass --overwrite to replace it")
        if _inside(overlay_path, output):
            raise UserError(f"--overlay {overlay_path} lies inside --output {output}, which is replaced as a "
                            "whole; write the overlay elsewhere")


def check_trace_path(trace_path: str | os.PathLike | None, overwrite: bool, output: str | os.PathLike) -> None:
    """Refuse, before any work, a --trace file that cannot or must not be written."""
    if trace_path is None:
        return
    trace_path = Path(trace_path)
    check_writable(trace_path, "--trace", kind="file")
    if trace_path.exists() and not overwrite:
        raise UserError(f"--trace {trace_path} exists; pass --overwrite to replace it")
    if _inside(trace_path, Path(output)):
        raise UserError(f"--trace {trace_path} lies inside --output {output}, which is replaced as a whole; "
                        "write the trace elsewhere")


class TraceRecorder:
    """Collects what the attention explorer needs while `segment_to_folder` runs (frames, the
    network's ids, each frame's trace without its feature maps) and writes it (`viz.trace_io`)."""

    def __init__(self, inputs: VideoInputs, config: InferenceConfig, model):
        from .viz.trace_io import trace_to_dict

        self.to_dict, self.size = trace_to_dict, config.size
        self.name = Path(inputs.source.path).stem
        self.per_object = getattr(getattr(model, "config", None), "qcim_source", "readout") == "readout"
        self.frames, self.predictions, self.traces, self.object_ids = [], [], [], []

    def add(self, image: np.ndarray, result) -> None:
        self.frames.append(np.asarray(image))
        self.predictions.append(result.labels)  # the network's ids (a binary mask's object is 1)
        self.traces.append(self.to_dict(result.trace))
        self.object_ids.append(list(result.internal_ids or []))

    def write(self, path: str | os.PathLike) -> None:
        from .viz.trace_io import write_trace_file

        write_trace_file(path, name=self.name, frames=self.frames, predictions=self.predictions, traces=self.traces,
                         object_ids=self.object_ids, size=self.size, per_object=self.per_object)


def check_device(device: str) -> None:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu")


@holding_output_lock  # a second process writing the same output is refused, naming the first
def segment_to_folder(model, inputs: VideoInputs, output: str | os.PathLike, config: InferenceConfig,
                      device: str = "cpu", amp: bool | str = False, compile: bool = False, channels_last: bool = False,
                      save_scores: bool = False,
                      overlay_path: str | os.PathLike | None = None, overwrite: bool = False,
                      progress: bool = True, trace_path: str | os.PathLike | None = None) -> SegmentSummary:
    """Segment `inputs` with `model` into `output` (see the module docstring). `trace_path`: also
    save the run's trace there (`viz.trace_io`), for the attention explorer."""
    check_device(device)
    check_size(config.size, inputs.frame_size)
    check_memory_budget(config, inputs, device)
    check_outputs(output, overwrite, overlay_path, inputs)
    check_trace_path(trace_path, overwrite, output)
    recorder = TraceRecorder(inputs, config, model) if trace_path is not None else None
    device = torch.device(device)
    source, frame_size, given, palette = inputs.source, inputs.frame_size, inputs.masks, inputs.palette
    if overlay_path is not None:
        remove_leftovers(overlay_path)
    writer = VideoWriter(overlay_path) if overlay_path is not None else None
    try:
        with staged_folder(output) as staging:
            model = model.to(device).eval()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            if amp == "auto":  # timed once per CPU, network size and frame size (inference/fast.py)
                from .cache import cache_root

                shape = resized_shape(*frame_size, config.size)
                amp = choose_amp(model, (shape[0] + -shape[0] % 16, shape[1] + -shape[1] % 16), device,
                                 cache_root(), log=print if progress else None)
            segmenter = VideoSegmenter(model, config, device=device, amp=bool(amp), compile=compile,
                                       channels_last=channels_last, trace=recorder is not None)
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
                labels = inputs.output_labels(result.labels)
                write_label_map(staging / f"{name}.png", labels, palette)
                if save_scores:
                    scores = result.prob.cpu().numpy().astype(np.float16)  # (N + 1) x H x W
                    (staging / "scores").mkdir(exist_ok=True)
                    np.save(staging / "scores" / f"{name}.npy", scores)
                if writer is not None:
                    writer.add(overlay(image, labels, palette))
                if recorder is not None:
                    recorder.add(image, result)
            if recorder is not None:
                recorder.write(trace_path)
            if writer is not None:
                writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return SegmentSummary(frames=len(source), objects=len(segmenter.object_ids),
                          fps=len(source) / max(model_seconds, 1e-9),
                          peak_memory_mib=peak_memory_mib(device), device=str(device))
