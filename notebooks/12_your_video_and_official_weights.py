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
# # 12 · Your own video, and the official weights
#
# **Goals.**
# 1. Segment a video of your own — a folder of frames or an `.mp4` — from a first-frame mask, with
#    the `qmvos-lab segment` command and with the Python step API.
# 2. Load the official XMem checkpoints and the released QMVOS weights by name, and know what to do
#    when you are offline.
# 3. Start QMVOS from XMem weights (the released code cannot).
# 4. Save a segmented video's trace once (`--trace`) and explore it later without the network: the
#    attention explorer, a grid of every head, and a standalone HTML page.
#
# **What you need for your own video.** A folder of frames (JPEG or PNG, sorted by name) or a video
# file, and a label PNG for the first frame: 0 background, 1..N the objects (a palette PNG as DAVIS
# writes them, or a grayscale one). Masks named like later frames add objects that enter later.
# This notebook makes such a video itself, so it runs anywhere; point `FRAMES` and `MASKS` at yours.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a short video
FRAMES = None  # your folder of frames or video file (None: a generated one)
MASKS = None  # your folder of masks (None: the generated video's first-frame mask)
CHECKPOINT = None  # a .pth file, URL or release name such as "XMem" (None: the cached small QMVOS)
PRESET = "cpu-tiny"
JUDO = None  # a real clip: a folder with frames/ and masks/ (None: $QMVOS_LAB_JUDO, if set)

# %%
# %matplotlib inline
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import display

from qmvos_lab import viz, zoo
from qmvos_lab.checkpoints import OFFICIAL_CHECKPOINTS, load_checkpoint, qmvos_from_xmem, save_checkpoint
from qmvos_lab.config import InferenceConfig
from qmvos_lab.data.frames import FrameSource
from qmvos_lab.data.masks import read_label_map, write_label_map
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.errors import CheckpointError
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import XMem, build_network
from qmvos_lab.segment import load_inputs
from qmvos_lab.viz.explorer import record

OUTPUT = Path(os.environ.get("QMVOS_LAB_OUTPUT", "../outputs/notebooks")) / "12_your_video"
OUTPUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. A video "of your own"
#
# If you set `FRAMES` and `MASKS` above, your files are used. Otherwise we write a generated video
# as an `.mp4` and its first-frame mask as a palette PNG named `00000.png` (a video file's frames
# are named 00000, 00001, ...), exactly what you would prepare for your own clip.

# %%
generated = FRAMES is None
if generated:
    video = generate_video(SyntheticConfig(num_objects=2, length=8 if SMOKE else 40, height=96, width=160), seed=42)
    FRAMES = viz.write_video(video.frames, OUTPUT / "my_video.mp4", fps=10)
    MASKS = OUTPUT / "my_masks"
    write_label_map(Path(MASKS) / "00000.png", video.labels[0])
source = FrameSource(FRAMES)
first_mask = read_label_map(Path(MASKS) / f"{source.names[0]}.png")
print(f"{FRAMES}: {len(source)} frames; first-frame mask with objects {sorted(set(np.unique(first_mask)) - {0})}")
first_frame = next(iter(source))
viz.show_frames(first_frame[None], ground_truth=first_mask[None], titles=["frame 0 and its mask"])

# %% [markdown]
# ## 2. From the shell: `qmvos-lab segment`
#
# The command reads the frames and masks, segments, and writes one palette PNG per frame (with your
# label ids), plus an overlay video. Nothing is written unless the whole video succeeds. Without
# `--size` it segments at the size the checkpoint was trained for (`qmvos-lab info` prints it; 480
# when the checkpoint saved none); we pass it explicitly here. `--trace` also saves what the attention
# explorer draws (section 6).

# %%
network = zoo.trained("qmvos-small", PRESET) if CHECKPOINT is None else load_checkpoint(CHECKPOINT)
checkpoint = CHECKPOINT or str(network.cache_folder / "final.pth")
command = [sys.executable, "-m", "qmvos_lab", "segment", "--frames", str(FRAMES), "--masks", str(MASKS),
           "--checkpoint", checkpoint, "--output", str(OUTPUT / "results"), "--size", str(network.inference_size),
           "--overlay", str(OUTPUT / "overlay.gif"), "--trace", str(OUTPUT / "my_video.trace.pt"),
           "--overwrite", "--quiet"]
print(" ".join(command[2:]))
finished = subprocess.run(command, capture_output=True, text=True)
print(finished.stdout or finished.stderr)
assert finished.returncode == 0
results = sorted((OUTPUT / "results").glob("*.png"))
assert len(results) == len(source)

# %% [markdown]
# ## 3. From Python: the step API
#
# `VideoSegmenter.step(frame, mask)` takes one RGB frame (H x W x 3 uint8) and, when there is one,
# a label map; it returns the labels and the probabilities of that frame. This is what the command
# runs; it is also how you would put QMVOS Lab into your own application.

# %%
segmenter = VideoSegmenter(network, InferenceConfig(size=network.inference_size))
labels = []
for t, frame in enumerate(source):
    result = segmenter.step(frame, first_mask if t == 0 else None, end=t == len(source) - 1)
    labels.append(result.labels)
labels = np.stack(labels)
from_command = np.stack([read_label_map(p) for p in results])
agreement = (labels == from_command).mean()
print(f"the command and the step API agree on {100 * agreement:.2f} % of the pixels")
assert agreement > 0.99  # same network, same settings (the command reads the mp4 frames the same way)
frames = np.stack(list(source))
panels = np.stack([viz.overlay(f, l) for f, l in zip(frames, labels)])
viz.show_frames(panels[:: max(1, len(panels) // 6)], columns=6)

# %% [markdown]
# ## 4. The official weights: XMem, and the released QMVOS
#
# `load_checkpoint` takes a file, an http(s) URL, or a release name. A release name downloads once
# into `~/.cache/qmvos-lab/checkpoints` (the kit's cache; resumable) and loads strictly: every one of the 412 official
# XMem entries (450 for QMVOS) must be there with its shape. `"QMVOS"` fetches the authors' file from
# Google Drive with gdown; before it is kept it must have the released layout, and its SHA-256 is
# recorded on the first download and checked afterwards. Offline, or when Drive refuses (its download
# quota), you get a one-line message that says what to do instead: download the file by hand (Google
# Drive or Baidu NetDisk) and give its path.

# %%
print("release names:", ", ".join([*OFFICIAL_CHECKPOINTS, "QMVOS"]))
try:
    official = load_checkpoint("XMem")
    print(official.checkpoint_info)
except CheckpointError as error:  # no internet: download XMem.pth elsewhere and give its path
    print("offline:", error)
try:
    released = load_checkpoint("QMVOS")
    print(released.checkpoint_info, "inference size:", released.inference_size)
except CheckpointError as error:
    released = None
    print("offline:", error)

# %% [markdown]
# The same loader reads any file with the official layout. Here we write one ourselves (random
# weights with the official key set) and read it back, as you would read `saves/XMem.pth`:

# %%
torch.manual_seed(0)
official_layout = OUTPUT / "XMem-layout.pth"
torch.save(XMem().state_dict(), official_layout)  # a bare state dict, as released
loaded = load_checkpoint(official_layout)
print(loaded.checkpoint_info.variant, "-", len(loaded.state_dict()), "entries;", loaded.checkpoint_info.notes)
assert len(loaded.state_dict()) == 412

# %% [markdown]
# ## 5. QMVOS from XMem weights
#
# QMVOS is XMem plus the SIM, the QCIM and the query projections, minus XMem's prediction conv.
# `qmvos_from_xmem` copies every shared weight and initialises the new modules fresh, so that
# fine-tuning starts from a working XMem (`qmvos-lab train --set init=XMem ...` does this).

# %%
qmvos_init, report = qmvos_from_xmem(official_layout)
print(f"copied {len(report['copied'])} tensors, {len(report['new'])} new, unused: {report['unused']}")
assert torch.equal(qmvos_init.state_dict()["key_encoder.conv1.weight"], loaded.state_dict()["key_encoder.conv1.weight"])
save_checkpoint(qmvos_init, OUTPUT / "qmvos-from-xmem.pth")

# %% [markdown]
#
# %% [markdown]
# ## 6. Explore a segmented video later: the trace
#
# The command in section 2 also wrote `my_video.trace.pt`: the frames, the predictions, and per frame
# what the attention explorer draws (the QCIM and SIM attention of the queries, QMVOS Sec. 3.3 and
# 3.2; the top-k memory affinity of XMem Sec. 3.2). `viz.load_recording` opens it as the same
# `Recording` that `record` makes in a notebook, so nothing is recomputed. To check that claim we
# record the same video here, with the same network and settings, and compare the attention metrics
# (`explorer_metrics`) of both. The metrics need ground truth: the generated video's labels (for
# your own video, the command's predictions stand in for them).

# %%
reference = video.labels if generated else from_command
given = load_inputs(FRAMES, MASKS).masks  # every given mask, with the ids the network sees, as the command read them
from_trace = viz.load_recording(OUTPUT / "my_video.trace.pt", ground_truth=reference)
in_notebook = record(network, frames, given, reference, InferenceConfig(size=network.inference_size))
table_trace, table_notebook = from_trace.metrics(), in_notebook.metrics()
pd.testing.assert_frame_equal(table_trace, table_notebook)
print(f"the trace's metric table equals the notebook's: {len(table_trace)} rows, e.g.")
table_trace.pivot_table(index="frame", columns="metric", values="value").tail(3)

# %% [markdown]
# The explorer opens the file directly. Besides its views (notebook 06), two exports need no kernel
# to be looked at: `head_grid`, every head of one query's cross-attention on one frame (small
# multiples, one colour scale), and `to_html`, one self-contained HTML page with a picture per frame,
# a slider and the query's metrics over time, to send to someone or open in any browser. (In
# JupyterLab with `ipyevents` installed, clicking the frame of the memory view picks its pixel.)

# %%
explorer = viz.open_explorer(OUTPUT / "my_video.trace.pt", ground_truth=reference)
last = len(frames) - 1
explorer.set(frame=last)
page = explorer.to_html(OUTPUT / "my_video.html")  # the attention view (the memory view for XMem)
print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB, self-contained)")
explorer.head_grid(frame=last, query=explorer.ids[0]) if explorer.has_queries else explorer.widget

# %% [markdown]
# ### On a real video: the judo clip
#
# Set `JUDO` (or the environment variable `QMVOS_LAB_JUDO`) to a folder with `frames/` and `masks/`,
# such as the 240p judo clip (16 frames; four athletes, given on frames 0, 5, 8 and 13), to run the
# same pipeline on real footage with a network of the released size and layout: the released QMVOS
# weights when section 4 could load them, otherwise a QMVOS with the official layout and **random**
# weights. With random weights the pictures show the pipeline (segment once, explore later), not
# what QMVOS learnt: read its attention only with the released weights. We segment at the clip's own
# 240p (`--size -1`), which a CPU does in a minute or two; the released network was evaluated at 480p.

# %%
JUDO = JUDO or os.environ.get("QMVOS_LAB_JUDO")
if JUDO is None:
    print("no real clip: set QMVOS_LAB_JUDO to a folder with frames/ and masks/ to run this part")
else:
    if released is not None:
        judo_weights, judo_note = "QMVOS", "released QMVOS weights"
    else:
        torch.manual_seed(0)
        judo_weights = OUTPUT / "QMVOS-layout.pth"
        torch.save(build_network(ModelConfig(queries=True)).state_dict(), judo_weights)  # 450 entries, as released
        judo_note = "official layout, RANDOM weights: the pipeline, not QMVOS's behaviour"
    judo_command = [sys.executable, "-m", "qmvos_lab", "segment", "--frames", str(Path(JUDO) / "frames"),
                    "--masks", str(Path(JUDO) / "masks"), "--checkpoint", str(judo_weights),
                    "--output", str(OUTPUT / "judo"), "--size", "-1", "--trace", str(OUTPUT / "judo.trace.pt"),
                    "--overwrite", "--quiet"]
    finished = subprocess.run(judo_command, capture_output=True, text=True)
    print(judo_note + ":", finished.stdout or finished.stderr)
    assert finished.returncode == 0
    judo = viz.open_explorer(OUTPUT / "judo.trace.pt")  # no ground truth: the views, and the metrics that need none
    judo.set(frame=len(judo.rec.frames) - 1, query=judo.ids[0], readout=judo.ids[-1])
    print("wrote", judo.to_html(OUTPUT / "judo.html"))
    display(judo.head_grid())
    display(judo)  # the explorer's widget

# %% [markdown]
# **Exercises.**
# 1. Record a short clip with your phone, draw the first-frame mask of one object in any paint
#    program (0 background, 1 object), and segment it with the cached network and, if you have it,
#    with `XMem.pth`.
# 2. Add a second mask on a later frame for an object that enters then (`00020.png`, say): what does
#    the segmenter do with the objects it already tracks?
# 3. Compare `--size 240` with `--size -1` on your video: speed and quality.
