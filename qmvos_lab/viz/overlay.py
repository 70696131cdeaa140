"""Mask overlays and outlines on frames, and writing them as an animated GIF or an MP4 (atomically)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..atomic import leftover_name, remove_leftovers
from ..data.masks import full_palette
from ..errors import UserError


def palette_colours(palette: bytes | None = None) -> np.ndarray:
    """256 x 3 uint8 colours of a palette (completed by the DAVIS palette, which is the default)."""
    return np.frombuffer(full_palette(palette), dtype=np.uint8).reshape(256, 3)


def overlay(image: np.ndarray, labels: np.ndarray, palette: bytes | None = None, alpha: float = 0.5) -> np.ndarray:
    """Blend each object's colour over an H x W x 3 uint8 frame, with a darker one-pixel outline."""
    colours = palette_colours(palette)
    out = image.astype(np.float32)
    foreground = labels > 0
    out[foreground] = (1 - alpha) * out[foreground] + alpha * colours[labels[foreground]]
    edge = boundary(labels) & foreground
    out[edge] = 0.4 * colours[labels[edge]]
    return out.clip(0, 255).astype(np.uint8)


def boundary(labels: np.ndarray) -> np.ndarray:
    """H x W bool: the pixels whose lower or right neighbour has another label (a one-pixel edge)."""
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def outline(labels: np.ndarray, object_id: int, colour: Sequence[float]) -> np.ndarray:
    """H x W x 4 RGBA: `colour` on the one-pixel boundary of the object's region, transparent elsewhere."""
    out = np.zeros((*labels.shape, 4), np.float32)
    out[boundary(labels == object_id)] = (*colour[:3], 1.0)
    return out


class VideoWriter:
    """Write H x W x 3 uint8 frames to a .gif (PIL) or an .mp4 (PyAV, H.264) one at a time.

    Frames go to a temporary file that `close()` renames into place; `abort()` deletes it.
    MP4 frames are streamed to disk; GIF frames are kept until `close()` (GIF is for short clips).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10.0):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".gif", ".mp4"):
            raise UserError(f"overlay {self.path}: use a .gif or .mp4 file name")
        self.fps = fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.path)  # of writers that died before they could clean up
        self.tmp = leftover_name(self.path, "tmp")  # the formats are given explicitly, not by suffix
        self.gif_frames: list[Image.Image] = []
        self.container = self.stream = None

    def add(self, frame: np.ndarray) -> None:
        if self.suffix == ".gif":
            self.gif_frames.append(Image.fromarray(frame))
            return
        import av
        from fractions import Fraction

        if self.container is None:
            height, width = frame.shape[:2]
            self.container = av.open(str(self.tmp), "w", format="mp4")
            self.stream = self.container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            self.stream.width, self.stream.height = width - width % 2, height - height % 2  # yuv420p: even sizes
            self.stream.pix_fmt = "yuv420p"
        frame = np.ascontiguousarray(frame[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> Path:
        try:
            if self.suffix == ".gif":
                if not self.gif_frames:
                    raise ValueError("no frames to write")
                self.gif_frames[0].save(self.tmp, format="GIF", save_all=True, append_images=self.gif_frames[1:],
                                        duration=int(1000 / self.fps), loop=0)
            elif self.container is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
                self.container.close()
                self.container = None
            os.replace(self.tmp, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
        self.tmp.unlink(missing_ok=True)


def labelled_panels(panels: list[np.ndarray], titles: list[str] | tuple[str, ...], scale: int = 1) -> np.ndarray:
    """H x W x 3 uint8 panels side by side, each scaled up `scale` times (nearest neighbour: pixels stay
    sharp) under a strip with its title: one frame of a comparison video."""
    from PIL import ImageDraw, ImageFont

    scaled = [np.repeat(np.repeat(p, scale, 0), scale, 1) for p in panels]  # (H*s) x (W*s) x 3
    row = np.concatenate(scaled, 1)  # (H*s) x (n*W*s) x 3
    strip_height = 8 + 10 * scale
    canvas = Image.new("RGB", (row.shape[1], row.shape[0] + strip_height), "white")
    canvas.paste(Image.fromarray(row), (0, strip_height))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=7 * scale + 4)  # Pillow >= 10.1 scales its built-in font
    except TypeError:
        font = ImageFont.load_default()
    x = 0
    for panel, title in zip(scaled, titles):
        draw.text((x + 6, 3), title, fill="black", font=font)
        x += panel.shape[1]
    return np.asarray(canvas)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 10.0) -> Path:
    """Write all `frames` to a .gif or .mp4 (see VideoWriter)."""
    writer = VideoWriter(path, fps)
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
