"""Segmenting and scoring a set of in-memory videos (`data.video.Video`: generated, or a DAVIS
folder's val sequences), with the DAVIS protocol: J&F of a network, and of the "copy the first
mask" baseline (every frame predicted as the first frame's mask). Used by the demo, the ablation
runner, the mechanism study, the explorer and the notebooks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..config import InferenceConfig
from ..data.video import Video
from ..inference import VideoSegmenter
from .davis import evaluate_sequence
from .metrics import statistics


def generated_config(model, **fields) -> InferenceConfig:
    """The inference settings for generated videos: frames resized to the size `model`'s training
    recipe segments them at (`model.inference_size`, e.g. 192 for the CPU presets, which train on
    2x zoomed crops; -1 keeps their own 96 px; a model without a recipe, or None: -1), with `fields`
    (other InferenceConfig settings) on top."""
    return InferenceConfig(**{"size": getattr(model, "inference_size", -1), **fields})


def segment_videos(model, videos: Sequence[Video], config: InferenceConfig | None = None,
                   record_attention_of: int | None = None):
    """Predicted label maps (T x H x W, at the videos' own size) for each video, segmented with
    `config` (default: `generated_config(model)`); optionally the per-frame results of one video
    with QCIM attention recorded (for figures)."""
    config = config or generated_config(model)
    predictions, recorded = [], None
    for index, video in enumerate(videos):
        segmenter = VideoSegmenter(model, config, record_attention=index == record_attention_of)
        given = video.given_masks()
        results = [segmenter.step(frame, given.get(t), end=t == len(video.frames) - 1)
                   for t, frame in enumerate(video.frames)]
        predictions.append(np.stack([r.labels for r in results]))
        if index == record_attention_of:
            recorded = results
    return predictions, recorded


def copy_first_mask(videos: Sequence[Video]) -> list[np.ndarray]:
    """The baseline's predictions: every frame labelled as the first frame's ground truth."""
    return [np.repeat(v.labels[:1], len(v.labels), axis=0) for v in videos]


def jf_table(videos: Sequence[Video], predictions: Sequence[np.ndarray]) -> pd.DataFrame:
    """One row per object: J-Mean and F-Mean over the evaluated (interior) frames."""
    rows = []
    for video, pred in zip(videos, predictions):
        j, f = evaluate_sequence(video.labels, pred[1:-1], name=video.name)
        for obj in range(j.shape[0]):
            rows.append((f"{video.name}_{obj + 1}", statistics(j[obj])[0], statistics(f[obj])[0]))
    return pd.DataFrame(rows, columns=["Sequence", "J-Mean", "F-Mean"])


def jf_mean(table: pd.DataFrame) -> float:
    """J&F of a `jf_table`: the mean over objects of J-Mean and of F-Mean, averaged."""
    return float((table["J-Mean"].mean() + table["F-Mean"].mean()) / 2)


def score_videos(model, videos: Sequence[Video], config: InferenceConfig | None = None,
                 progress: bool = False) -> list[dict]:
    """Per-video J, F and J&F of `model` (mean over the video's objects, DAVIS protocol), with the
    "copy the first mask" baseline's J&F on the same video (`copy_J&F`)."""
    if progress:
        from tqdm.auto import tqdm

        videos = tqdm(videos, desc="evaluate", unit="video", leave=False)
    rows = []
    with torch.no_grad():
        for video in videos:
            (prediction,), _ = segment_videos(model, [video], config)
            table = jf_table([video], [prediction])
            rows.append({"video": video.name, "objects": len(table), "J": float(table["J-Mean"].mean()),
                         "F": float(table["F-Mean"].mean()), "J&F": jf_mean(table),
                         "copy_J&F": jf_mean(jf_table([video], copy_first_mask([video])))})
    return rows
