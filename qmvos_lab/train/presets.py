"""Training presets: `cpu-tiny` (the "small" network, 5 minutes on 2 CPU cores, generated data),
`cpu-quick` (the same recipe in 90 s),
`gpu-davis16` (one GPU, the 240p DAVIS-2016 train split + pasted multi-object clips) and `paper` (the released QMVOS code's
stage-3 settings for users with DAVIS-2017 + YouTube-VOS: batch 16, 60k + 5k iterations, lr 2e-5,
8 frames, 384 crops; start from an XMem stage-0 checkpoint, or train stage 0 with data="static").
QMVOS Sec. 3.4 prints AdamW, lr 1e-5, 65K iterations, batch 16, 8-frame clips: the released
configuration's lr is 2e-5, and that is what this preset keeps."""

from __future__ import annotations

import dataclasses

from ..config import TrainConfig

# the "small" network from scratch on generated clips, 5 minutes on 2 cores (benchmarks/cpu_learning.py;
# README "CPU training" has what each choice was worth):
# - zoom: 128² crops cut from 20-35 % of a generated 96 x 160 frame, so objects are seen at about twice
#   their size (1.75-2.3x) with enough context around them, and the trained network segments generated
#   videos at the same zoom (inference_size=192, twice their 96 px). At their own size objects cover
#   one to four cells of the stride-16 memory grid, and matching has almost nothing to work with.
# - bf16 autocast and channels-last left to "auto" (None): each machine times them and keeps the faster
#   (train/fast_path.py). bf16 paid 1.6x on a CPU with AMX and 1.7x on an AMD EPYC with AVX512-BF16, but
#   cost 1.5x on an Intel Xeon with AVX512-BF16 and no AMX; channels-last paid 1.05-1.2x where measured.
# - lr 3e-4 with a short warm-up and a cosine decay (6e-4 learns less in the same time).
# The generated videos are short, so the skip curriculum is scaled down (2 -> 4 -> 6 -> 2 frames);
# one epoch covers the run, so the in-memory video cache lives as long as the run (workers=0: a
# worker would compete with training for the two cores).
CPU_TINY = dict(data="generated", model_size="small", iterations=680, batch_size=2, num_frames=4, crop_size=128,
                crop_scale=(0.2, 0.35), inference_size=192, amp=None, channels_last=None, lr=3e-4,
                lr_schedule="cosine", warmup=0.05, start_warm=0.3, end_warm=0.8, skip_scale=0.4,
                samples_per_epoch=2000, workers=0, log_every=10, checkpoint_every=100)

PRESETS = {
    "cpu-tiny": CPU_TINY,
    # cpu-tiny cut to 90 s a network, for the notebooks and the ablation runner's quick runs (lr 6e-4 learnt
    # no more in this short run)
    "cpu-quick": {**CPU_TINY, "iterations": 190, "samples_per_epoch": 380, "checkpoint_every": 95},
    "gpu-davis16": dict(data="davis16", iterations=3000, batch_size=8, num_frames=8, crop_size=384, lr=5e-5,
                        lr_steps=(0.8,), amp=True, workers=8, samples_per_epoch=20000, log_every=20,
                        checkpoint_every=500),
    "paper": dict(data="davis17+youtube", iterations=65000, batch_size=16, num_frames=8, crop_size=384, lr=2e-5,
                  lr_steps=(60000 / 65000,), start_warm=20000 / 65000, end_warm=50000 / 65000, amp=True, workers=16,
                  samples_per_epoch=100000, log_every=100, checkpoint_every=5000),
}


def preset(preset_name: str, **overrides) -> TrainConfig:
    """The TrainConfig of a preset, with `overrides` (any TrainConfig field, `name` included)."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose from {', '.join(PRESETS)}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: {', '.join(sorted(fields))}")
    return TrainConfig(**{**PRESETS[preset_name], "name": preset_name, **overrides})
