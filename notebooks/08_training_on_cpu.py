# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Training on a CPU
#
# **Goals.** By the end of this notebook you will have
# 1. computed XMem's training loss, bootstrapped cross-entropy + dice, by hand on a tiny example,
#    and matched `qmvos_lab.train.losses`,
# 2. run one training pass over a clip (`TrainWrapper`) and drawn it frame by frame,
# 3. trained a small QMVOS with a loss curve that redraws itself while training runs (the
#    `Trainer`'s `callback`),
# 4. stopped a run and resumed it, and checked that its losses continue exactly as if it had never
#    stopped.
#
# **Paper.** XMem (ECCV 2022) Sec. 3.6 and its supplementary material (training: clips of 8 frames,
# memory of earlier frames, bootstrapped cross-entropy + dice); QMVOS (arXiv 2403.11529) Sec. 3.4
# (eight consecutive frames per clip, "following" XMem; the paper does not state its loss: the
# released code, and this kit, use XMem's).
#
# Everything runs on a laptop CPU with the `cpu-tiny` preset: the "small" network (ResNet-18 key
# encoder) on generated clips of 4 frames at 128 x 128 pixels, cut from a fifth to a third of a
# 96 x 160 frame so that objects are seen at about twice their size (the trained network segments
# generated videos at that zoom too: `net.inference_size`, 192). Whether it trains in bf16 or fp32,
# with channels-last tensors or not, the preset leaves to your machine (`amp` and `channels_last`
# are "auto"): the first run on a CPU times a few training steps of each setting and keeps the
# fastest (`qmvos_lab.train.fast_path`), because bf16 pays only on CPUs with bf16 units (AMX, or
# AVX512-BF16 on some CPUs) and is many times slower where it is emulated. Notebook 09 covers the
# GPU presets.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a few iterations per run
PRESET = "cpu-tiny"
LIVE_ITERATIONS = 4 if SMOKE else 150  # the run with the live loss curve
LOG_EVERY = 1 if SMOKE else 10  # iterations per point of the curve
STOP_AT = 2 if SMOKE else 20  # the stop-and-resume run stops here and runs to twice this

# %%
# %matplotlib inline
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.figure import Figure

from qmvos_lab import viz, zoo
from qmvos_lab.data.frames import IMAGENET_MEAN, IMAGENET_STD
from qmvos_lab.train import TrainWrapper, losses
from qmvos_lab.train.data import build_dataset
from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import Trainer, read_metrics

OUTPUT = Path(os.environ.get("QMVOS_LAB_OUTPUT", "outputs/notebooks")) / "08_training_on_cpu"
OUTPUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The loss
#
# Every frame after the first is segmented and compared with its ground truth by two terms.
#
# **Bootstrapped cross-entropy.** The per-pixel cross-entropy of the aggregated logits (background
# + objects, a softmax over N + 1 classes), averaged over the *hardest* fraction p of the pixels
# only. Early in training p = 1 (the plain cross-entropy); between `start_warm` and `end_warm` it
# falls linearly to 0.15, so that the network spends its effort on the pixels it still gets wrong
# (the boundaries), not on the easy background.
#
# **Dice.** For each object, 1 - (2 |P ∩ G| + 1) / (|P| + |G| + 1) with P the predicted
# probabilities and G the ground-truth mask: a loss on the overlap, blind to how large the object
# is, so small objects count as much as big ones.
#
# A tiny example: 4 x 4 pixels, background + 2 objects.

# %%
generator = torch.Generator().manual_seed(0)
logits = torch.randn(1, 3, 4, 4, generator=generator)  # B x (N + 1) x H x W
labels = torch.tensor([[[0, 0, 1, 1],
                        [0, 1, 1, 1],
                        [0, 0, 2, 2],
                        [0, 0, 2, 0]]])  # B x H x W: 0 background, 1..N objects

per_pixel = -F.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]  # B x H x W: -log p(true class)
fraction = 0.25  # the hardest 25 % of the pixels: 4 of 16
hardest = per_pixel.flatten().sort(descending=True).values[: int(per_pixel.numel() * fraction)]
torch.testing.assert_close(losses.bootstrapped_cross_entropy(logits, labels, fraction), hardest.mean())
torch.testing.assert_close(losses.bootstrapped_cross_entropy(logits, labels, 1.0), per_pixel.mean())

prob = torch.softmax(logits, dim=1)[:, 1:]  # B x N x H x W, the objects' probabilities
dice = []
for i in range(prob.shape[1]):
    truth = (labels == i + 1).float()
    dice.append(1 - (2 * (prob[:, i] * truth).sum() + 1) / (prob[:, i].sum() + truth.sum() + 1))
torch.testing.assert_close(losses.dice_loss(prob, labels), torch.stack(dice).mean())
print(f"cross-entropy {per_pixel.mean():.4f} | bootstrapped (p = {fraction}) {hardest.mean():.4f} | "
      f"dice {torch.stack(dice).mean():.4f}")

# %%
threshold = hardest[-1]
viz.show_heatmaps(torch.stack([per_pixel[0], (per_pixel[0] >= threshold).float()]),
                  column_titles=["cross-entropy per pixel", f"the hardest {fraction:.0%}, which count"],
                  shared_scale=False)

# %% [markdown]
# The fraction p over a run (`losses.hard_pixel_fraction`), with the `cpu-tiny` preset's
# `start_warm` and `end_warm` (fractions of the iterations; XMem uses 0.2 and 0.7):

# %%
config = preset(PRESET)
start, end = int(config.start_warm * config.iterations), int(config.end_warm * config.iterations)
iterations = np.arange(config.iterations)
fig = Figure(figsize=(6, 2.5), layout="constrained")
ax = fig.subplots()
ax.plot(iterations, [losses.hard_pixel_fraction(int(i), start, end) for i in iterations])
ax.set_xlabel("iteration")
ax.set_ylabel("fraction p of pixels")
ax.set_title(f"Bootstrapped cross-entropy, preset {PRESET}: p = 1 until {start}, 0.15 from {end}")
fig

# %% [markdown]
# ## 2. One training pass over a clip
#
# A training sample is a clip: frames T x 3 x S x S (ImageNet-normalised), the masks of up to
# `max_objects` objects, and a selector saying which object slots are real
# (`qmvos_lab/data/clips.py`). The pass (`TrainWrapper.forward`, `qmvos_lab/train/clip_pass.py`)
# gives the network only frame 0's masks; it segments frame 1 from memory, writes its own soft
# prediction into memory, segments frame 2, and so on. So the network learns to recover from its own
# mistakes, as it must at test time. The loss covers frames 1..T-1.

# %%
dataset = build_dataset(config)
clip = dataset[0]
print({k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in clip.items()})


def to_rgb(frames):  # T x 3 x S x S normalised -> T x S x S x 3 in [0, 1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (frames * std + mean).clamp(0, 1).permute(0, 2, 3, 1)


# %% [markdown]
# We run the pass with the trained small QMVOS from the cache (in eval mode and without gradients,
# to draw it; the trainer runs the same pass in training mode and backpropagates the loss).

# %%
net = zoo.trained("qmvos-small", PRESET)
wrapper = TrainWrapper(net)
batch = {k: v[None] for k, v in clip.items() if isinstance(v, torch.Tensor)}  # a batch of one clip
with torch.no_grad():
    out = wrapper(batch["frames"], batch["masks"], batch["selector"], torch.Generator().manual_seed(0))
predicted = [labels_t[0] for labels_t in (x.argmax(1) for x in out["logits"])]  # per frame 1..T-1: S x S
clip_losses = losses.clip_loss(out["logits"], out["probs"], batch["labels"], [clip["num_objects"]],
                               iteration=0, start_warm=start, end_warm=end)
num_frames = len(clip["frames"])
viz.show_frames(to_rgb(clip["frames"]), ground_truth=clip["labels"],
                prediction=[clip["labels"][0]] + predicted,
                titles=["frame 0 (given)"] + [f"frame {t}" for t in range(1, num_frames)])

# %%
print({k: round(float(v), 4) for k, v in clip_losses.items()}, "(summed over frames 1..T-1)")

# %% [markdown]
# ## 3. Training with a live loss curve
#
# `Trainer(config, run_dir, callback=fn)` calls `fn(record)` every `log_every` iterations with the
# logged metrics (loss terms averaged over the window, learning rate, iterations per second). Here
# the callback redraws the loss curve in place (`IPython.display` with a `display_id`), which works
# in JupyterLab and in a headless run alike. This run keeps p = 1 (`start_warm=end_warm=1`), so
# that the curve shows the network learning rather than the bootstrapping (see below).

# %%
live_dir = OUTPUT / "live"
shutil.rmtree(live_dir, ignore_errors=True)
live_config = preset(PRESET, name="live", iterations=LIVE_ITERATIONS, log_every=LOG_EVERY,
                     checkpoint_every=LIVE_ITERATIONS, start_warm=1.0, end_warm=1.0)  # p = 1 throughout
records, handle = [], None


def redraw(record):
    global handle
    records.append(record)
    fig = viz.loss_curves(records)
    fig.axes[0].set_title(f"iteration {record['iteration']} of {LIVE_ITERATIONS}, "
                          f"{record['it_per_s']:.1f} it/s")
    if handle is None:
        handle = display(fig, display_id=True)
    else:
        handle.update(fig)


trainer = Trainer(live_config, live_dir, callback=redraw, progress=False)
history = trainer.train()
print(f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}; run folder: "
      f"{sorted(p.name for p in live_dir.iterdir())}")
# "auto" is resolved before the run starts, and config.json holds the resolved values: measured once
# per CPU for runs of 100 iterations or more, fp32 in the default layout for shorter ones
print(f"trained in {'bf16' if trainer.config.amp else 'fp32'}"
      f"{' with channels-last tensors' if trainer.config.channels_last else ''} "
      f"(the preset says amp={live_config.amp}, channels_last={live_config.channels_last}: None is 'auto')")

# %% [markdown]
# With the preset's bootstrapping the logged loss can *rise* while the network improves: from
# `start_warm` on, the cross-entropy averages over a shrinking set of the hardest pixels (p, logged
# as `p`). Compare runs at the same p, or look at the dice term (section 4 runs the preset as it is).
#
# The run folder holds everything: `config.json`, `metrics.jsonl` (the records above), the
# resumable `checkpoint.pth` and the trained network `final.pth`. `viz.loss_curves` also reads a
# folder, so a run launched from a terminal (`qmvos-lab train --preset cpu-tiny`) can be
# watched from a notebook:

# %%
pd.DataFrame(read_metrics(live_dir)).round(4).tail()

# %% [markdown]
# ## 4. Stop and resume
#
# A run stops cleanly on Ctrl-C or SIGTERM (a cluster's time limit): the trainer finishes the
# iteration, writes `checkpoint.pth` (network, optimiser, scheduler, iteration, data position and
# every random-number generator) and returns. `Trainer(..., resume=True)` continues from it.
#
# We run the same configuration twice: straight through, and stopped halfway (our callback sets
# the flag that the signal handler sets), then resumed. On the CPU the losses are identical.

# %%
resume_config = preset(PRESET, name="resume", iterations=2 * STOP_AT, log_every=1, checkpoint_every=1000)
straight_dir, stopped_dir = OUTPUT / "straight", OUTPUT / "stopped"
for folder in (straight_dir, stopped_dir):
    shutil.rmtree(folder, ignore_errors=True)

straight = Trainer(resume_config, straight_dir, progress=False).train()

stopping = Trainer(resume_config, stopped_dir, progress=False)
stopping.callback = lambda record: setattr(stopping, "stop_requested", record["iteration"] >= STOP_AT)
first_part = stopping.train()
print(f"stopped at iteration {stopping.iteration}; checkpoint.pth exists: "
      f"{(stopped_dir / 'checkpoint.pth').is_file()}; final.pth exists: {(stopped_dir / 'final.pth').is_file()}")

resumed = Trainer(resume_config, stopped_dir, resume=True, progress=False)
print("resumed at iteration", resumed.iteration)
second_part = resumed.train()

assert [r["iteration"] for r in first_part + second_part] == [r["iteration"] for r in straight]
assert [r["loss"] for r in first_part + second_part] == [r["loss"] for r in straight]  # exactly
assert len(read_metrics(stopped_dir)) == 2 * STOP_AT  # one metrics file across both parts
print("the stopped-and-resumed run has exactly the losses of the straight run")

# %%
fig = viz.loss_curves(straight, terms=("loss",))
ax = fig.axes[0]
ax.lines[0].set_label("straight run")
ax.plot([r["iteration"] for r in first_part], [r["loss"] for r in first_part], "o", label="before the stop")
ax.plot([r["iteration"] for r in second_part], [r["loss"] for r in second_part], "x", label="after resuming")
ax.axvline(STOP_AT, color="grey", linestyle=":")
ax.legend()
ax.set_title("Stop and resume: the same losses")
fig

# %% [markdown]
# **Exercises.**
# 1. Set `LIVE_ITERATIONS = 400` and plot `ce` and `dice` on a log scale
#    (`viz.loss_curves(records, log_scale=True)`). Where does the bootstrapping (p falling from 1)
#    show in the cross-entropy?
# 2. Train the XMem baseline with the same preset (`preset(PRESET, ablation="xmem", ...)`) and
#    compare the two loss curves. Which learns faster at the start, and why might the queries help or
#    hurt (notebook 05: fresh queries start at zero)?
# 3. Try to resume the stopped run with a *different* configuration (say `lr=1e-4`). What does the
#    trainer say, and why would a silent change break the "same losses as a straight run" guarantee?
# 4. Draw one clip pass of the untrained network (`build_network(model_config("qmvos", "small"))`)
#    and of the cached one: on which frame does the untrained one lose the objects?

# %% [markdown]
# ## Summary
#
# * The loss is XMem's: bootstrapped cross-entropy (the hardest pixels, a share that shrinks
#   during training) plus a dice loss, on every frame after the first of a clip.
# * One clip pass segments each frame from the memory of the earlier ones, with QMVOS's queries
#   carried from frame to frame as at inference.
# * The `cpu-tiny` preset trains the "small" network on generated clips in minutes; training stops
#   and resumes exactly.
#
# ## References
#
# * H. K. Cheng, A. G. Schwing, "XMem", ECCV 2022, and its supplementary material (training).
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529, Sec. 3.4.
# * Library: `qmvos_lab/train/losses.py`, `qmvos_lab/train/clip_pass.py`, `qmvos_lab/train/trainer.py`.
