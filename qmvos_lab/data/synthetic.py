"""A procedural multi-object video set with exact ground truth: the kit's embedded data.

Built so that what QMVOS claims can be seen on it: several objects that look alike (one shape
and texture family, close colours), crossings and occlusions, objects entering mid-video,
deformation and scale change, and camera motion over a textured background. Everything is drawn
with numpy from one seed, so a video is the same on every machine, and the label map is the
rasterisation the frame was painted from, pixel for pixel.

Knobs (`SyntheticConfig`): number of objects, similarity (0 = unrelated looks, 1 = identical
twins), occlusion rate (how often paths are steered through each other), speed, length,
resolution, and the chance that an object enters after the first frame. Textures are procedural
(smooth noise, stripes, checkers, dots): no image files and no licences involved.

Layout written by `write_split` (the DAVIS layout, so every tool reads it alike):
    JPEGImages/<H>p/<video>/00000.jpg   frames
    Annotations/<H>p/<video>/00000.png  ground truth of every frame (palette PNG, ids 1..N)
    Given/<H>p/<video>/00000.png        the masks a semi-supervised method receives: the first
                                        frame, and each frame where objects enter (those only)
    ImageSets/<split>.txt               the video names
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import staged_folder
from .masks import write_label_map
from .video import Video


@dataclass(frozen=True)
class SyntheticConfig:
    num_objects: int = 3
    similarity: float = 0.6
    occlusion_rate: float = 0.3
    speed: float = 1.0  # in object radii per 10 frames
    length: int = 20
    height: int = 96
    width: int = 160
    enter_prob: float = 0.0  # chance that an object (other than the first) enters later
    camera_motion: float = 1.0
    deformation: float = 1.0

    def __post_init__(self):
        if not 1 <= self.num_objects <= 254:
            raise ValueError(f"num_objects must be 1..254, got {self.num_objects}")
        for name in ("similarity", "occlusion_rate", "enter_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.length < 1 or self.height < 16 or self.width < 16:
            raise ValueError("length must be >= 1 and the frame at least 16 x 16")


@dataclass(frozen=True)
class SplitSpec:
    num_videos: int
    seed: int
    config: SyntheticConfig


SPLITS = {
    "synthetic-val": SplitSpec(20, 1_000, SyntheticConfig()),
    "synthetic-hard": SplitSpec(20, 2_000, SyntheticConfig(num_objects=4, similarity=0.9, occlusion_rate=0.7,
                                                           speed=1.4)),
    "synthetic-train": SplitSpec(200, 3_000, SyntheticConfig(length=30)),
    # held out, for the dose-response (ablate/dose.py): synthetic-hard's knobs with similarity and the
    # object count swept; scene seeds that no other split uses
    "synthetic-dose": SplitSpec(20, 7_000, SyntheticConfig(num_objects=4, similarity=0.9, occlusion_rate=0.7,
                                                           speed=1.4)),
}


class GeneratedVideo(Video):
    """A video of the generator (`generate_video`): frames, exact labels, each object's first frame."""


# ---------------------------------------------------------------------------------- textures
def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Bilinearly interpolated value noise in [0, 1] with features about `cell` pixels wide."""
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.random((gh, gw))
    ys = np.arange(height) / cell
    xs = np.arange(width) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def background_canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured landscape (H x W x 3 float in [0, 1]) larger than the frame, for the camera to pan over."""
    base = rng.uniform(0.2, 0.8, size=3)
    tint = rng.uniform(-0.25, 0.25, size=3)
    coarse = smooth_noise(rng, height, width, max(8, height // 4))
    fine = smooth_noise(rng, height, width, max(2, height // 24))
    ys, xs = np.mgrid[:height, :width]
    angle = rng.uniform(0, math.pi)
    ripples = 0.5 + 0.5 * np.sin((xs * math.cos(angle) + ys * math.sin(angle)) / rng.uniform(3, 9))
    canvas = (base[None, None] + tint[None, None] * (coarse[..., None] - 0.5) * 2
              + 0.12 * (fine[..., None] - 0.5) + 0.06 * (ripples[..., None] - 0.5))
    return canvas.clip(0, 1)


def texture(kind: str, u: np.ndarray, v: np.ndarray, period: float, phase: float) -> np.ndarray:
    """A pattern in [0, 1] of object-local coordinates u, v (pixels)."""
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin((u + phase) * 2 * math.pi / period)
    if kind == "checker":
        return ((np.floor((u + phase) / period) + np.floor(v / period)) % 2).astype(float)
    if kind == "dots":
        du = (u + phase) % period - period / 2
        dv = v % period - period / 2
        return (du * du + dv * dv < (period / 3) ** 2).astype(float)
    return 0.5 + 0.5 * np.sin(u / period + phase) * np.cos(v / period)  # "waves"


TEXTURES = ("stripes", "checker", "dots", "waves")


# ---------------------------------------------------------------------------------- objects
@dataclass
class ObjectPlan:
    radius: float
    harmonics: np.ndarray  # K amplitudes of r(theta) = R (1 + sum a_k cos(k theta + phi_k))
    phases: np.ndarray
    wobble: np.ndarray  # per-harmonic speed of deformation
    scale_amplitude: float
    scale_period: float
    spin: float
    colour_a: np.ndarray
    colour_b: np.ndarray
    pattern: str
    period: float
    start: np.ndarray  # (y, x) at the object's first frame
    velocity: np.ndarray
    enter: int  # first frame the object exists
    depth: float


def plan_objects(rng: np.random.Generator, config: SyntheticConfig) -> list[ObjectPlan]:
    h, w = config.height, config.width
    s = config.similarity
    family_harmonics = rng.uniform(0.05, 0.3, size=4)
    family_colour = rng.uniform(0.15, 0.95, size=3)
    family_pattern = TEXTURES[rng.integers(len(TEXTURES))]
    family_period = rng.uniform(3, 8)
    base_radius = min(h, w) * rng.uniform(0.12, 0.18)
    plans = []
    for i in range(config.num_objects):
        own_colour = rng.uniform(0.1, 0.95, size=3)
        colour_a = s * family_colour + (1 - s) * own_colour
        colour_a = np.clip(colour_a + rng.normal(0, 0.05 * (1 - s) + 0.02, 3), 0, 1)
        colour_b = np.clip(colour_a * rng.uniform(0.35, 0.7), 0, 1)
        pattern = family_pattern if rng.random() < 0.5 + 0.5 * s else TEXTURES[rng.integers(len(TEXTURES))]
        harmonics = s * family_harmonics + (1 - s) * rng.uniform(0.05, 0.3, size=4)
        radius = base_radius * (1 + (1 - s) * rng.uniform(-0.35, 0.35))
        speed = config.speed * radius / 10
        angle = rng.uniform(0, 2 * math.pi)
        velocity = speed * np.array([math.sin(angle), math.cos(angle)]) * rng.uniform(0.6, 1.4)
        enter = 0
        start = rng.uniform([radius, radius], [h - radius, w - radius])
        if i > 0 and config.length > 2 and rng.random() < config.enter_prob:
            enter = int(rng.integers(1, max(2, config.length // 2)))
            # start just outside a border, heading in
            side = rng.integers(4)
            start = np.array([[-radius * 0.9, rng.uniform(0, w)], [h + radius * 0.9, rng.uniform(0, w)],
                              [rng.uniform(0, h), -radius * 0.9], [rng.uniform(0, h), w + radius * 0.9]][side])
            inward = np.array([h / 2, w / 2]) - start
            velocity = speed * 1.5 * inward / np.linalg.norm(inward)
        plans.append(ObjectPlan(
            radius=radius, harmonics=harmonics, phases=rng.uniform(0, 2 * math.pi, size=4),
            wobble=rng.uniform(0.05, 0.25, size=4) * config.deformation,
            scale_amplitude=0.2 * config.deformation * rng.uniform(0.3, 1.0),
            scale_period=rng.uniform(12, 30), spin=rng.uniform(-0.08, 0.08), colour_a=colour_a,
            colour_b=colour_b, pattern=pattern, period=family_period * (1 + (1 - s) * rng.uniform(-0.4, 0.4)),
            start=start, velocity=velocity, enter=enter, depth=float(rng.random())))
    steer_towards_crossings(rng, plans, config)
    return plans


def steer_towards_crossings(rng: np.random.Generator, plans: list[ObjectPlan], config: SyntheticConfig) -> None:
    """With probability `occlusion_rate`, aim an object at the point where another will be mid-video."""
    mid = config.length / 2
    for i, plan in enumerate(plans):
        if len(plans) < 2 or plan.enter > 0 or rng.random() >= config.occlusion_rate:
            continue
        other = plans[(i + 1 + rng.integers(len(plans) - 1)) % len(plans)]
        meeting = other.start + other.velocity * (mid - other.enter)
        plan.velocity = (meeting - plan.start) / max(mid, 1)


def object_state(plan: ObjectPlan, t: int, config: SyntheticConfig) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Centre, scale, rotation and current harmonic phases at frame t (bouncing off the borders)."""
    h, w = config.height, config.width
    steps = t - plan.enter
    centre = plan.start + plan.velocity * steps
    if plan.enter == 0:  # objects that start inside bounce; entering ones fly through
        for axis, size in enumerate((h, w)):
            low, high = plan.radius * 0.5, size - plan.radius * 0.5
            span = high - low
            offset = (centre[axis] - low) % (2 * span)
            centre[axis] = low + (offset if offset <= span else 2 * span - offset)
    scale = 1 + plan.scale_amplitude * math.sin(2 * math.pi * t / plan.scale_period)
    return centre, scale, plan.spin * t, plan.phases + plan.wobble * t


def rasterise(plan: ObjectPlan, t: int, config: SyntheticConfig, ys: np.ndarray, xs: np.ndarray):
    """The object's (amodal) mask and its colours at frame t: (H x W bool, H x W x 3 float)."""
    centre, scale, rotation, phases = object_state(plan, t, config)
    dy, dx = ys - centre[0], xs - centre[1]
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx) - rotation
    k = np.arange(1, 5)[:, None, None]
    boundary = plan.radius * scale * (1 + (plan.harmonics[:, None, None] * np.cos(k * theta + phases[:, None, None])).sum(0))
    inside = r <= boundary
    u = dx * math.cos(rotation) + dy * math.sin(rotation)
    v = -dx * math.sin(rotation) + dy * math.cos(rotation)
    pattern = texture(plan.pattern, u, v, plan.period, 0.0)[..., None]
    colour = plan.colour_a * pattern + plan.colour_b * (1 - pattern)
    return inside, colour


def object_window(plan: ObjectPlan, t: int, config: SyntheticConfig) -> tuple[slice, slice] | None:
    """The frame region that can hold the object at frame t (its boundary never exceeds
    radius * scale * (1 + sum |harmonics|)), or None when it lies outside the frame. Rasterising
    only this window gives the same pixels, several times faster."""
    centre, scale, _, _ = object_state(plan, t, config)
    reach = plan.radius * scale * (1 + np.abs(plan.harmonics).sum()) + 1
    y0, x0 = (max(0, math.floor(c - reach)) for c in centre)
    y1, x1 = min(config.height, math.ceil(centre[0] + reach) + 1), min(config.width, math.ceil(centre[1] + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def plan_scene(config: SyntheticConfig, seed: int):
    """Everything random about a video: the background canvas, the camera path, the objects."""
    rng = np.random.default_rng(seed)
    h, w, T = config.height, config.width, config.length
    margin = int(max(h, w) * 0.25 * config.camera_motion) + 2
    canvas = background_canvas(rng, h + 2 * margin, w + 2 * margin)
    camera_start = rng.uniform(0, 2 * margin, size=2)
    camera_velocity = rng.normal(0, margin / max(T, 1) / 1.5, size=2) * config.camera_motion
    return canvas, margin, camera_start, camera_velocity, plan_objects(rng, config)


def generate_video(config: SyntheticConfig, seed: int, name: str | None = None) -> GeneratedVideo:
    """One video, fully determined by (config, seed)."""
    h, w, T = config.height, config.width, config.length
    canvas, margin, camera_start, camera_velocity, plans = plan_scene(config, seed)
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    frames = np.empty((T, h, w, 3), np.uint8)
    labels = np.zeros((T, h, w), np.uint8)
    first_frame = [-1] * config.num_objects
    for t in range(T):
        cy, cx = np.clip(camera_start + camera_velocity * t, 0, 2 * margin).astype(int)
        image = canvas[cy:cy + h, cx:cx + w].copy()
        label = labels[t]
        # depth order may swap when objects cross: a slow drift of each object's depth
        order = sorted(range(len(plans)), key=lambda i: plans[i].depth + 0.3 * math.sin(0.2 * t + i))
        for i in order:  # far to near: nearer objects paint over farther ones
            plan = plans[i]
            if t < plan.enter:
                continue
            window = object_window(plan, t, config)
            if window is None:
                continue  # entirely outside the frame
            inside, colour = rasterise(plan, t, config, ys[window], xs[window])
            image[window][inside] = colour[inside]  # image[window] is a view
            label[window][inside] = i + 1
        frames[t] = (image * 255).round().astype(np.uint8)
        for i in range(config.num_objects):
            if first_frame[i] < 0 and (label == i + 1).any():
                first_frame[i] = t
    return GeneratedVideo(name or f"video-{seed}", frames, labels, first_frame)


def split_videos(split: str, num_videos: int | None = None, **overrides):
    """Yield the videos of a named split (`SPLITS`), optionally fewer or with other knobs."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
    spec = SPLITS[split]
    config = dataclasses.replace(spec.config, **overrides)
    for index in range(num_videos if num_videos is not None else spec.num_videos):
        yield generate_video(config, spec.seed + index, name=f"{split}-{index:03d}")


def write_video(root: Path, video: GeneratedVideo, resolution: str) -> None:
    frames_dir = root / "JPEGImages" / resolution / video.name
    gt_dir = root / "Annotations" / resolution / video.name
    given_dir = root / "Given" / resolution / video.name
    frames_dir.mkdir(parents=True, exist_ok=True)
    for t in range(len(video.frames)):
        Image.fromarray(video.frames[t]).save(frames_dir / f"{t:05d}.jpg", quality=95)
        write_label_map(gt_dir / f"{t:05d}.png", video.labels[t])
    for t, mask in video.given_masks().items():
        write_label_map(given_dir / f"{t:05d}.png", mask)


def write_split(root: str | os.PathLike, split: str, num_videos: int | None = None, overwrite: bool = False,
                **overrides) -> Path:
    """Write a split in the DAVIS layout under `root` (atomically: a staging folder merged into
    `root`, the image set last, so that a split is either complete or absent; see atomic.py).

    An existing, complete split is kept unless `overwrite`. Returns `root`.
    """
    root = Path(root)
    if num_videos is not None and num_videos < 1:
        raise ValueError(f"num_videos must be positive, got {num_videos}")
    imageset = Path("ImageSets") / f"{split}.txt"
    if (root / imageset).exists() and not overwrite:
        return root
    with staged_folder(root, merge=True, last=(str(imageset),)) as staging:
        names = []
        for video in split_videos(split, num_videos, **overrides):
            write_video(staging, video, f"{video.frames.shape[1]}p")
            names.append(video.name)
        (staging / imageset).parent.mkdir(parents=True, exist_ok=True)
        (staging / imageset).write_text("\n".join(names) + "\n")
    return root
