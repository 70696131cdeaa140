"""The main job (`make demo`): on generated data, with no downloads, in under five minutes on two
CPU cores:

1. write the synthetic-val split in the DAVIS layout (data/generated/);
2. train XMem and QMVOS from scratch with the cpu-tiny preset ("small" networks), 260 iterations
   each instead of the preset's 680 (under 2 minutes each on 2 cores), through the trained-network
   cache (qmvos_lab.zoo), so that a second run, and the notebooks, load them in seconds;
3. segment synthetic-val videos with both, evaluate J&F (DAVIS protocol) next to the
   "copy the first mask" baseline;
4. write outputs/demo/: jf_table.csv, an overlay GIF of one video (ground truth | XMem | QMVOS),
   and a figure of QMVOS's query-to-readout attention on one frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import zoo
from .data.synthetic import split_videos, write_split
from .train.trainer import read_metrics
from .train.validate import copy_first_mask, jf_mean, jf_table, segment_generated
from .viz.attention import attention_figure
from .viz.overlay import overlay, write_video
from .viz.save import save_figure

DEMO_PRESET = "cpu-tiny"
DEMO_ITERATIONS = 260  # per network: the two trainings and the rest fit in five minutes on 2 cores


def run_demo(iterations: int = DEMO_ITERATIONS, videos: int = 8, output: str | Path = "outputs/demo",
             cache: str | Path | None = None, data_root: str | Path = "data/generated",
             progress: bool = True) -> pd.DataFrame:
    start = time.perf_counter()
    output = Path(output)
    write_split(data_root, "synthetic-val")
    print(f"1. synthetic-val (20 generated videos, DAVIS layout) is in {data_root}")
    models = {}
    for name in ("xmem", "qmvos"):
        model = zoo.trained(f"{name}-small", DEMO_PRESET, iterations=iterations, smoke=False, cache=cache,
                            progress=progress)
        models[name] = model
        # the dice term, averaged over the first and the last quarter of the run (the cross-entropy
        # term counts only the hardest pixels later in the run, so the total is not comparable)
        history = read_metrics(model.cache_folder)
        quarter = max(1, len(history) // 4)
        first, last = (np.mean([r["dice"] for r in part]) for part in (history[:quarter], history[-quarter:]))
        print(f"2. {name}: {iterations} iterations (cached in {model.cache_folder}): dice loss {first:.2f} -> "
              f"{last:.2f} ({time.perf_counter() - start:.0f} s so far)")
    clips = list(split_videos("synthetic-val", videos))
    tables = {"copy first mask": jf_table(clips, copy_first_mask(clips))}
    predictions = {}
    with torch.no_grad():
        for name, model in models.items():
            predictions[name], recorded = segment_generated(model, clips, record_attention_of=0 if name == "qmvos" else None)
            tables[name] = jf_table(clips, predictions[name])
            if name == "qmvos":
                attention_frames = recorded
    summary = pd.DataFrame([{"method": name, "J&F": jf_mean(t), "J": t["J-Mean"].mean(), "F": t["F-Mean"].mean()}
                            for name, t in tables.items()])
    output.mkdir(parents=True, exist_ok=True)
    summary.to_csv(output / "jf_table.csv", index=False, float_format="%.4f")
    print(f"3. J&F on {videos} synthetic-val videos:")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    video = clips[0]
    panels = [np.concatenate([overlay(video.frames[t], video.labels[t]),
                              overlay(video.frames[t], predictions["xmem"][0][t]),
                              overlay(video.frames[t], predictions["qmvos"][0][t])], 1)
              for t in range(len(video.frames))]
    write_video(panels, output / "overlay.gif", fps=6)
    frame = len(video.frames) // 2
    save_figure(attention_figure(video.frames[frame], attention_frames[frame]), output / "attention.png", dpi=90)
    print(f"4. wrote {output / 'jf_table.csv'}, {output / 'overlay.gif'} (ground truth | XMem | QMVOS) and "
          f"{output / 'attention.png'} in {time.perf_counter() - start:.0f} s")
    return summary
