"""The edge of the step API (`VideoSegmenter.step`): what a notebook may pass as a frame and as a
mask, checked and brought to one form before any tensor is made, with the same one-line
UserErrors as the command line.

Frames: H x W x 3 (or x 4: the alpha channel is dropped) arrays or PIL images, uint8 in 0..255,
or float in [0, 1] (what `matplotlib.pyplot.imread` returns for a PNG), scaled to 0..255.
Masks: H x W integer label maps (0 background, 1..254 objects, 255 void), bool (one object, id 1),
or float holding whole numbers only; a soft (fractional) or negative mask is refused, and an
anti-aliased 0/255 mask follows the file rule of data/masks.py (thresholded, with a warning).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..data.masks import VOID_LABEL, MaskWarning, antialiased_binary
from ..errors import UserError

MIN_SIZE = 16  # the network's stride: a shorter side below it is less than one feature cell


def check_image(image) -> np.ndarray:
    """An H x W x 3 uint8 RGB frame from what a notebook holds (see the module docstring)."""
    array = np.asarray(image)
    if array.dtype == object or array.ndim == 0:
        raise UserError(f"a frame must be an H x W x 3 image array or a PIL image, got {type(image).__name__}")
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        raise UserError(f"a frame must be H x W x 3 (channels last), got {' x '.join(map(str, array.shape))}; "
                        "transpose a C x H x W tensor with .permute(1, 2, 0)")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.ndim > 3:
        raise UserError(f"a frame must be an H x W x 3 RGB image, got shape {array.shape}; convert a grey "
                        "image with np.stack([image] * 3, -1) or PIL's .convert('RGB')")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"a frame must not be empty, got shape {array.shape}")
    array = array[..., :3]  # RGBA: the alpha channel is not part of the picture
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        raise UserError("a frame must be an RGB image, got a bool array (a mask?); pass masks as the second "
                        "argument of step")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UserError("a float frame holds NaN or infinite values; give values in [0, 1]")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise UserError(f"a float frame must lie in [0, 1] (as matplotlib's imread returns), got "
                            f"{low:g}..{high:g}; divide by 255 or pass a uint8 array")
        return np.round(array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise UserError(f"an integer frame must hold 0..255, got {low}..{high} ({array.dtype}); scale it to "
                            "uint8 first")
        return array.astype(np.uint8)
    raise UserError(f"a frame must hold uint8 or float values, got {array.dtype}")


def check_frame_size(shape: tuple[int, int], first: tuple[int, int] | None, size: int, index: int) -> None:
    """One size for all frames of a video, and at least one stride-16 cell along the shorter side."""
    height, width = shape
    if first is not None and tuple(first) != (height, width):
        raise UserError(f"frame {index} is {width}x{height} but the first frame is {first[1]}x{first[0]}; all "
                        "frames must have one size (resize them, or start a new VideoSegmenter)")
    if 0 < size < MIN_SIZE:
        raise UserError(f"InferenceConfig(size={size}) is below {MIN_SIZE}, the network's stride (the output would be "
                        f"blank); use size={MIN_SIZE} or more, or -1 to keep the frames' size")
    if size == -1 and min(height, width) < MIN_SIZE:
        raise UserError(f"the frames are {width}x{height}, smaller than the network's stride ({MIN_SIZE}); "
                        f"set InferenceConfig(size={MIN_SIZE}) or more to enlarge them")


def check_mask(mask, frame_shape: tuple[int, int]) -> np.ndarray:
    """An H x W label map of integer ids (int64) from what a notebook holds; `frame_shape` is (H, W)."""
    array = np.asarray(mask)
    height, width = frame_shape
    if array.ndim == 3 and array.shape[2] in (1, 3, 4) and array.shape[:2] == (height, width):
        raise UserError(f"a mask must be an H x W label map, got {' x '.join(map(str, array.shape))} (an image?); "
                        "give one id per pixel, e.g. mask[..., 0] for a grey mask")
    if array.ndim != 2:
        raise UserError(f"a mask must be an H x W label map, got shape {array.shape}")
    if array.shape != (height, width):
        raise UserError(f"mask is {array.shape[1]}x{array.shape[0]} but the frame is {width}x{height}; "
                        "masks must have the frame's size")
    if array.dtype == np.bool_:
        return array.astype(np.int64)  # one object, id 1
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UserError("a float mask holds NaN or infinite values; give integer object ids")
        if not (array == np.round(array)).all():
            raise UserError("the mask holds fractional values (a soft mask?); give integer object ids, e.g. "
                            "(mask > 0.5).astype(np.uint8) for one object")
    elif not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"a mask must hold integer object ids, got {array.dtype}")
    if array.size and array.min() < 0:
        raise UserError(f"the mask holds negative id {int(array.min())}; object ids are 1..254 "
                        f"(0 background, {VOID_LABEL} void)")
    too_big = array[(array > 254) & (array != VOID_LABEL)]
    if too_big.size:
        raise UserError(f"label id {int(too_big.max())} does not fit an 8-bit palette PNG; use ids 1..254")
    labels = array.astype(np.int64)
    if antialiased_binary(labels):
        warnings.warn(MaskWarning("the mask is a 0/255 binary mask with anti-aliased (grey) edges; thresholded "
                                  "at 128 (255 is void for step: pass (mask >= 128) for one object)"), stacklevel=3)
        labels = np.where(labels >= 128, VOID_LABEL, 0)
    return labels


def check_memory(frame_size: tuple[int, int], size: int, memory_frames: int, device, setting: str = "--size") -> None:
    """Refuse, before any work, a resize whose memory read cannot fit in the memory this machine has
    (a frame enlarged 30 times needs terabytes: better one line now than a traceback minutes later)."""
    from ..resources import available_memory_bytes, inference_memory_bytes
    from .preprocess import resized_shape

    available = available_memory_bytes(device)
    if available is None:
        return
    height, width = resized_shape(*frame_size, size)
    needed = inference_memory_bytes(height, width, memory_frames)
    if needed <= available:
        return
    fits = [s for s in range(MIN_SIZE, min(frame_size) * 4 + 1, MIN_SIZE)
            if inference_memory_bytes(*resized_shape(*frame_size, s), memory_frames) <= available]
    hint = f"use {setting} {fits[-1]} or less" if fits else "use a machine with more memory"
    gib = 2 ** 30
    raise UserError(f"{setting} {size} resizes the frames to {width}x{height}, which would need about "
                    f"{needed / gib:.0f} GiB of memory ({memory_frames} memory frames) but {torch_device_name(device)} "
                    f"has {available / gib:.1f} GiB available; {hint}")


def torch_device_name(device) -> str:
    return "the GPU" if str(device).startswith("cuda") else "this machine"
