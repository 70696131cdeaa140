"""Label maps on disk: palette (P) or grayscale (L, I;16, 1-bit) PNGs holding one object id per
pixel (0 = background, 255 = void in DAVIS). Reading refuses RGB images that are not label maps;
writing keeps a palette and goes through a temporary file, so no half-written PNG is ever left.
The kit's one definition of the void label and of the palette helpers.

The one rule of reading masks (everything that reads a mask goes through `read_label_map`):
* a palette PNG: the palette index of a pixel is its id (resizing a palette image always takes
  the nearest pixel, so its ids cannot have been blurred);
* a grayscale PNG: the grey value is the id; a 16-bit mask holding only 0 and 65535 is a binary
  mask and reads as 0/255;
* a grayscale 0/255 binary mask whose edges were anti-aliased (by a resize or a soft brush) holds,
  besides 0 and 255, at least two grey values, each within `GREY_REACH` pixels of both a 0 and a
  255 pixel: it is thresholded at 128 back to 0/255, with a one-line `MaskWarning` naming the file
  (otherwise every grey value would become an object of its own). Grey values elsewhere are ids.
* mask files are found by their suffix in any case (`00000.PNG` as `00000.png`): `png_files`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import QmvosLabWarning, UserError, not_a_file

VOID_LABEL = 255  # DAVIS: "ignore this pixel" (counted as background by the evaluation)
GREY_REACH = 4  # pixels: how far from both a 0 and a 255 pixel an anti-aliased grey value may lie


class MaskWarning(QmvosLabWarning):
    """A mask was read by the rule of the module docstring in a way its author may not expect."""


def png_files(folder: str | os.PathLike) -> list[Path]:
    """The PNG files of `folder`, sorted, whatever the case of their suffix (`.png`, `.PNG`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def _dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Boolean H x W mask grown by `reach` pixels (a (2 reach + 1)^2 square), without SciPy."""
    grown = mask.copy()
    for axis in (0, 1):
        source = grown.copy()
        for shift in range(1, reach + 1):
            if shift >= source.shape[axis]:
                break
            ahead = [slice(None)] * 2
            behind = [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(behind)] |= source[tuple(ahead)]
            grown[tuple(ahead)] |= source[tuple(behind)]
    return grown


def antialiased_binary(labels: np.ndarray) -> bool:
    """True for a 0/255 mask with anti-aliased edges (see the module docstring)."""
    if labels.ndim != 2 or labels.size == 0:
        return False
    background, foreground = labels == 0, labels == VOID_LABEL
    grey = ~(background | foreground)
    if not (grey.any() and background.any() and foreground.any()) or len(np.unique(labels[grey])) < 2:
        return False
    at_edge = _dilate(background, GREY_REACH) & _dilate(foreground, GREY_REACH)
    return bool(at_edge[grey].all())


def _grayscale_rule(labels: np.ndarray, path) -> np.ndarray:
    if antialiased_binary(labels):
        grey = int(((labels != 0) & (labels != VOID_LABEL)).sum())
        warnings.warn(MaskWarning(
            f"mask {path} is a 0/255 binary mask with {grey} anti-aliased (grey) edge pixels; thresholded at 128 "
            "(save masks without anti-aliasing, or resize them with nearest-neighbour, to silence this)"),
            stacklevel=3)
        return np.where(labels >= 128, VOID_LABEL, 0).astype(np.uint8)
    return labels


def davis_palette() -> bytes:
    """The PASCAL VOC / DAVIS colour map: 256 RGB triples, id i coloured by the bits of i."""
    palette = bytearray()
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += bytes((r, g, b))
    return bytes(palette)


def full_palette(palette: bytes | None = None) -> bytes:
    """A full 768-byte palette: `palette` (e.g. a mask's, possibly shorter), completed by the DAVIS one."""
    base = davis_palette()
    if not palette:
        return base
    return (bytes(palette) + base[len(palette):])[:768]


def read_palette(path: str | os.PathLike) -> bytes | None:
    """The palette of a palette PNG (up to 768 bytes), or None for a grayscale mask."""
    with Image.open(path) as image:
        palette = image.getpalette()
    return bytes(palette) if palette else None


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as an H x W uint8 (or uint16 for 16-bit grayscale) array of object ids."""
    why = not_a_file(path)
    if why is not None and why != "not found":  # a FIFO would block the reader forever
        raise UserError(f"mask {path} {why}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "PA"):
                return np.asarray(image.getchannel(0) if mode == "PA" else image, dtype=np.uint8)
            if mode in ("L", "1", "LA"):
                grey = image.getchannel(0) if mode == "LA" else image
                return _grayscale_rule(np.asarray(grey, dtype=np.uint8), path)
            if mode.startswith("I"):  # I;16, I;16B, I
                labels = np.asarray(image)
                if labels.min() < 0 or labels.max() > 65535:
                    raise UserError(f"mask {path} has ids outside 0..65535")
                if labels.max() == 65535 and np.isin(labels, (0, 65535)).all():  # a 16-bit binary mask
                    return np.where(labels > 0, VOID_LABEL, 0).astype(np.uint8)
                if labels.max() <= 255 and antialiased_binary(labels):
                    return _grayscale_rule(labels.astype(np.uint8), path)
                return labels.astype(np.uint16)
    except FileNotFoundError:
        raise UserError(f"mask {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise UserError(f"cannot read mask {path}: {error}; is it a valid PNG?") from None
    raise UserError(f"mask {path} is a {mode} image, not a label map: save object ids as a palette (P) "
                    "or grayscale (L) PNG, one id per pixel")


def write_label_map(path: str | os.PathLike, labels: np.ndarray, palette: bytes | None = None) -> Path:
    """Write H x W ids (< 256) as a palette PNG, atomically (temporary file, then rename)."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map is H x W, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label ids must lie in 0..255 to fit a palette PNG, got {labels.min()}..{labels.max()}")
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    image.putpalette(palette if palette is not None else davis_palette())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
