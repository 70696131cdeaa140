"""Self-contained animations (matplotlib's `to_jshtml`): they play in a live notebook, in a static
HTML render of it, and headless in CI."""

from __future__ import annotations

from typing import Callable, Sequence

from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from .common import to_numpy


def animation_of(figure: Figure, draw_frame: Callable[[int], object], num_frames: int, fps: float = 6.0) -> str:
    """HTML (with JavaScript controls) of `figure` redrawn by `draw_frame(t)` for t = 0..num_frames-1."""
    if num_frames < 1:
        raise ValueError("an animation needs at least one frame")
    movie = FuncAnimation(figure, draw_frame, frames=num_frames, interval=1000 / fps, blit=False)
    return movie.to_jshtml(fps=fps, default_mode="loop")


def animate_frames(frames, fps: float = 6.0, titles: Sequence[str] | None = None, width: float = 6.0) -> str:
    """HTML animation of T x H x W x 3 uint8 frames (e.g. overlays side by side)."""
    frames = to_numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"animate_frames expects T x H x W x 3 frames, got shape {frames.shape}")
    height, frame_width = frames.shape[1:3]
    figure = Figure(figsize=(width, width * height / frame_width + 0.3))
    ax = figure.add_axes((0, 0, 1, 0.92 if titles else 1))
    ax.set_axis_off()
    image = ax.imshow(frames[0])
    title = ax.set_title(titles[0] if titles else "")

    def draw(t: int):
        image.set_data(frames[t])
        title.set_text(titles[t] if titles else "")
        return image, title

    return animation_of(figure, draw, len(frames), fps)
