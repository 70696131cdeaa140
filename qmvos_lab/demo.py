"""The main job (`make demo`): on generated data, with no downloads, in under five minutes on two
CPU cores of any x86 class:

1. write the synthetic-val split in the DAVIS layout (data/generated/);
2. train XMem and QMVOS from scratch with the cpu-tiny preset ("small" networks) through the
   trained-network cache (qmvos_lab.zoo), so that a second run, and the notebooks, load them in
   seconds. The preset's fast path ("auto": bf16 or fp32, channels-last or not) is timed once on
   this CPU (train/fast_path.py); from that step time the demo trains at most 260 iterations a
   network, fewer where they would not fit `TRAIN_BUDGET_S` (on a CPU without bf16 units), and
   says how many it trained;
3. segment synthetic-val videos with both, evaluate J&F (DAVIS protocol) next to the
   "copy the first mask" baseline;
4. write outputs/demo/: jf_table.csv, an overlay GIF of one video (ground truth | XMem | QMVOS,
   scaled up and labelled), and a figure of QMVOS's query-to-readout attention on one frame.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import zoo
from .data.synthetic import split_videos, write_split
from .machine import cpu_line
from .train.fast_path import FastPath, step_seconds
from .train.run_files import read_metrics
from .eval.videos import copy_first_mask, jf_mean, jf_table, segment_videos
from .viz.attention import attention_figure
from .viz.overlay import labelled_panels, overlay, write_video
from .viz.save import save_figure

DEMO_PRESET = "cpu-tiny"
DEMO_ITERATIONS = 260  # per network, at most
# seconds of training per network: with the fast-path timing (once per machine), the data, the
# scoring and the figures, the demo stays under five minutes on 2 cores
TRAIN_BUDGET_S = 105
# below this many iterations the networks do not beat copying the first mask yet (measured on the
# demo's videos, copy 0.25: 80-90 iterations in fp32 scored 0.19-0.28; 110 in fp32 0.32-0.33; 110-170
# in bf16 0.33-0.44)
FEW_ITERATIONS = 100
GIF_SCALE = 3  # the overlay's 160 x 96 panels, scaled up with nearest neighbour


def demo_iterations(cache: str | Path | None = None, most: int = DEMO_ITERATIONS,
                    budget_s: float = TRAIN_BUDGET_S) -> tuple[int, float]:
    """Iterations a network (a multiple of 10, at most `most`) that fit `budget_s` on this CPU, and
    the seconds a step takes there (the fast-path timing's median of the chosen setting; measured
    on the first call on a machine)."""
    config = zoo.training_config("qmvos-small", DEMO_PRESET, iterations=most, smoke=False)
    step_s = step_seconds(config, cache)  # a whole iteration, its clips drawn
    return max(10, min(most, int(budget_s / step_s) // 10 * 10)), step_s


def run_demo(iterations: int | None = None, videos: int = 8, output: str | Path = "outputs/demo",
             cache: str | Path | None = None, data_root: str | Path = "data/generated",
             progress: bool = True) -> pd.DataFrame:
    """`iterations=None`: as many as fit the budget on this CPU (`demo_iterations`), at most 260."""
    start = time.perf_counter()
    output = Path(output)
    print(cpu_line())
    write_split(data_root, "synthetic-val")
    print(f"1. synthetic-val (20 generated videos, DAVIS layout) is in {data_root}")
    if iterations is None:
        iterations, step_s = demo_iterations(cache)
        fits = "the most the demo trains" if iterations == DEMO_ITERATIONS else \
            f"what fits {TRAIN_BUDGET_S} s a network on this CPU; the cpu-tiny preset trains 680"
        print(f"   {iterations} training iterations a network at about {step_s:.2f} s each ({fits})")
        if iterations < FEW_ITERATIONS:
            print(f"   note: {iterations} iterations are too few to beat copying the first mask on this CPU; "
                  f"`qmvos-lab demo --iterations {DEMO_ITERATIONS}` trains the demo's full length "
                  f"(about {2 * DEMO_ITERATIONS * step_s / 60:.0f} minutes of training here)")
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
        precision = read_precision(model.cache_folder)
        print(f"2. {name}: {iterations} iterations in {precision} (cached in {model.cache_folder}): dice loss "
              f"{first:.2f} -> {last:.2f} ({time.perf_counter() - start:.0f} s so far)")
    clips = list(split_videos("synthetic-val", videos))
    tables = {"copy first mask": jf_table(clips, copy_first_mask(clips))}
    predictions = {}
    with torch.no_grad():
        for name, model in models.items():
            predictions[name], recorded = segment_videos(model, clips, record_attention_of=0 if name == "qmvos" else None)
            tables[name] = jf_table(clips, predictions[name])
            if name == "qmvos":
                attention_frames = recorded
    summary = pd.DataFrame([{"method": name, "J&F": jf_mean(t), "J": t["J-Mean"].mean(), "F": t["F-Mean"].mean()}
                            for name, t in tables.items()])
    summary["iterations"] = [0] + [iterations] * len(models)
    output.mkdir(parents=True, exist_ok=True)
    summary.to_csv(output / "jf_table.csv", index=False, float_format="%.4f")
    print(f"3. J&F on {videos} synthetic-val videos (networks trained {iterations} iterations each):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    video = clips[0]
    titles = ("ground truth", f"XMem, J&F {jf_mean(tables['xmem']):.2f}", f"QMVOS, J&F {jf_mean(tables['qmvos']):.2f}")
    panels = [labelled_panels([overlay(video.frames[t], video.labels[t]),
                               overlay(video.frames[t], predictions["xmem"][0][t]),
                               overlay(video.frames[t], predictions["qmvos"][0][t])], titles, GIF_SCALE)
              for t in range(len(video.frames))]
    write_video(panels, output / "overlay.gif", fps=6)
    frame = len(video.frames) // 2
    save_figure(attention_figure(video.frames[frame], attention_frames[frame]), output / "attention.png", dpi=90)
    print(f"4. wrote {output / 'jf_table.csv'}, {output / 'overlay.gif'} (ground truth | XMem | QMVOS) and "
          f"{output / 'attention.png'}")
    print(f"demo done in {time.perf_counter() - start:.0f} s")
    return summary


def read_precision(run: Path) -> str:
    """'bf16 + channels-last', 'fp32', ... as the run's config.json says it trained."""
    try:
        train = json.loads((Path(run) / "config.json").read_text())["train"]
    except (OSError, ValueError, KeyError):
        return "an unrecorded precision"
    return FastPath(bool(train.get("amp")), bool(train.get("channels_last"))).label
