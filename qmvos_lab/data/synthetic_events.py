"""What happens in a generated video, frame by frame: occlusions, objects entering, and
near-identical objects close together, derived exactly from the scene plan and the label maps.

The generator (`synthetic.py`) paints each object's full (amodal) shape in depth order, so the
label map shows only what is visible; rasterising the plan again gives the shape as if nothing
were in front. Comparing the two says how much of each object is hidden, and by whom. Nothing here
draws pixels of a video: the generated splits are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .synthetic import ObjectPlan, SyntheticConfig, object_state, object_window, plan_scene, rasterise

EVENT_NAMES = ("occlusion start", "occlusion end", "object enters", "near-identical objects close")


@dataclass
class ObjectTimeline:
    """Per frame and object (T x N, object index i is label id i + 1):
    amodal:  pixels of the object's full shape inside the frame (0 before it enters or when it is out)
    visible: pixels the label map gives it
    centre:  T x N x 2, its planned centre (row, column), in frame pixels (may lie outside the frame)
    radius:  its planned radius times its scale at that frame
    """

    amodal: np.ndarray
    visible: np.ndarray
    centre: np.ndarray
    radius: np.ndarray

    @property
    def occluded(self) -> np.ndarray:
        """T x N, the share of the object's in-frame shape hidden by other objects (NaN when it has none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.amodal > 0, 1.0 - self.visible / np.maximum(self.amodal, 1), np.nan)


def object_timeline(config: SyntheticConfig, seed: int, labels: np.ndarray) -> ObjectTimeline:
    """The timeline of the video `generate_video(config, seed)`, whose label maps (T x H x W) are `labels`."""
    labels = np.asarray(labels)
    if labels.shape != (config.length, config.height, config.width):
        raise ValueError(f"object_timeline: labels are {labels.shape}, but the config makes "
                         f"{(config.length, config.height, config.width)}; "
                         "pass the labels of generate_video(config, seed)")
    plans = plan_scene(config, seed)[-1]
    h, w = config.height, config.width
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    shape = (config.length, len(plans))
    amodal, visible = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    centre, radius = np.zeros((*shape, 2)), np.zeros(shape)
    for t in range(config.length):
        for i, plan in enumerate(plans):
            centre[t, i], scale = object_state(plan, t, config)[:2]
            radius[t, i] = plan.radius * scale
            visible[t, i] = int((labels[t] == i + 1).sum())
            window = object_window(plan, t, config)
            if t >= plan.enter and window is not None:
                amodal[t, i] = int(rasterise(plan, t, config, ys[window], xs[window])[0].sum())
    return ObjectTimeline(amodal, visible, centre, radius)


def alike_pairs(plans: list[ObjectPlan], colour_distance: float = 0.15) -> list[tuple[int, int]]:
    """Pairs of object indices (i < j) that look near-identical: the same texture and main colours
    within `colour_distance` (Euclidean, RGB in [0, 1])."""
    return [(i, j) for i in range(len(plans)) for j in range(i + 1, len(plans))
            if plans[i].pattern == plans[j].pattern
            and float(np.linalg.norm(plans[i].colour_a - plans[j].colour_a)) < colour_distance]


def scene_events(config: SyntheticConfig, seed: int, labels: np.ndarray, occluded: float = 0.5,
                 close: float = 1.25, colour_distance: float = 0.15) -> pd.DataFrame:
    """The events of a generated video, one row each: frame, event (one of EVENT_NAMES), objects
    (label ids involved, a tuple).

    occlusion start / end: the frame where an object's hidden share (`ObjectTimeline.occluded`)
        rises to `occluded` or more / falls below it again (an object fully out of frame is neither);
    object enters: its first visible frame, when that is not frame 0;
    near-identical objects close: every frame where two near-identical objects (`alike_pairs`)
        are both visible with centres closer than `close` times the sum of their radii.
    """
    timeline = object_timeline(config, seed, labels)
    hidden = timeline.occluded  # T x N
    rows = []
    for i in range(hidden.shape[1]):
        was = False
        for t in range(hidden.shape[0]):
            if np.isnan(hidden[t, i]):
                continue
            now = hidden[t, i] >= occluded
            if now != was and (now or t > 0):
                rows.append((t, "occlusion start" if now else "occlusion end", (i + 1,)))
            was = now
        seen = np.flatnonzero(timeline.visible[:, i] > 0)
        if len(seen) and seen[0] > 0:
            rows.append((int(seen[0]), "object enters", (i + 1,)))
    for i, j in alike_pairs(plan_scene(config, seed)[-1], colour_distance):
        distance = np.linalg.norm(timeline.centre[:, i] - timeline.centre[:, j], axis=-1)  # T
        near = (distance < close * (timeline.radius[:, i] + timeline.radius[:, j]))
        near &= (timeline.visible[:, i] > 0) & (timeline.visible[:, j] > 0)
        rows.extend((int(t), "near-identical objects close", (i + 1, j + 1)) for t in np.flatnonzero(near))
    table = pd.DataFrame(rows, columns=["frame", "event", "objects"])
    return table.sort_values(["frame", "event"], kind="stable").reset_index(drop=True)


def events_of(table: pd.DataFrame, object_id: int | None = None) -> dict[str, list[int]]:
    """event name -> frames (sorted, unique), of the events that involve `object_id` (all when None);
    the mapping `viz.metric_over_time(events=...)` draws."""
    out: dict[str, list[int]] = {}
    for row in table.itertuples(index=False):
        if object_id is None or object_id in row.objects:
            frames = out.setdefault(row.event, [])
            if row.frame not in frames:
                frames.append(int(row.frame))
    return {name: sorted(frames) for name, frames in out.items()}
