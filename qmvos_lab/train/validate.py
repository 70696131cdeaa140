"""Quick validation on the generated set, in memory: J&F of a model, and of the "copy the first
mask" baseline (every frame predicted as the first frame's mask), with the DAVIS protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import InferenceConfig
from ..data.synthetic import GeneratedVideo, split_videos
from ..eval.davis import evaluate_sequence
from ..eval.metrics import statistics
from ..inference import VideoSegmenter


def jf_table(videos: list[GeneratedVideo], predictions: list[np.ndarray]) -> pd.DataFrame:
    """One row per object: J-Mean and F-Mean over the evaluated (interior) frames."""
    rows = []
    for video, pred in zip(videos, predictions):
        j, f = evaluate_sequence(video.labels, pred[1:-1], name=video.name)
        for obj in range(j.shape[0]):
            rows.append((f"{video.name}_{obj + 1}", statistics(j[obj])[0], statistics(f[obj])[0]))
    return pd.DataFrame(rows, columns=["Sequence", "J-Mean", "F-Mean"])


def jf_mean(table: pd.DataFrame) -> float:
    return float((table["J-Mean"].mean() + table["F-Mean"].mean()) / 2)


def generated_config(model, **fields) -> InferenceConfig:
    """The inference settings for generated videos: frames resized to the size `model`'s training
    recipe segments them at (`model.inference_size`, e.g. 192 for the CPU presets, which train on
    2x zoomed crops; -1 keeps their own 96 px), with `fields` (other InferenceConfig settings) on top."""
    return InferenceConfig(**{"size": getattr(model, "inference_size", -1), **fields})


def segment_generated(model, videos: list[GeneratedVideo], config: InferenceConfig | None = None,
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


def copy_first_mask(videos: list[GeneratedVideo]) -> list[np.ndarray]:
    return [np.repeat(v.labels[:1], len(v.labels), axis=0) for v in videos]


def validate(model, split: str = "synthetic-val", num_videos: int | None = None) -> dict:
    videos = list(split_videos(split, num_videos))
    model_table = jf_table(videos, segment_generated(model, videos)[0])
    baseline_table = jf_table(videos, copy_first_mask(videos))
    return {"jf": jf_mean(model_table), "copy_first_mask_jf": jf_mean(baseline_table), "videos": len(videos)}
