"""Label maps on disk: palette (P) or grayscale (L, I;16, 1-bit) PNGs holding one object id per
pixel (0 = background, 255 = void in DAVIS). Reading refuses RGB images that are not label maps;
writing keeps a palette and goes through a temporary file, so no half-written PNG is ever left.
The kit's one definition of the void label and of the palette helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import UserError

VOID_LABEL = 255  # DAVIS: "ignore this pixel" (counted as background by the evaluation)


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
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L", "1"):
                return np.asarray(image, dtype=np.uint8)
            if mode in ("I;16", "I"):
                labels = np.asarray(image)
                if labels.min() < 0 or labels.max() > 65535:
                    raise UserError(f"mask {path} has ids outside 0..65535")
                return labels.astype(np.uint16)
            if mode in ("LA", "PA"):
                return np.asarray(image.getchannel(0), dtype=np.uint8)
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
