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
# # 00 · A tour of QMVOS Lab
#
# **Goals.** By the end of this notebook you will have
# 1. segmented a generated video with a small, trained QMVOS network (from the cache),
# 2. watched the result as an animation next to the ground truth and to XMem,
# 3. scored both with the DAVIS J&F metric next to the "copy the first mask" baseline,
# 4. a map of the series.
#
# **The task.** Semi-supervised video object segmentation (VOS): you get a video and, on the
# frame where each object first appears, its mask; the method must segment those objects in
# every later frame. XMem (Cheng & Schwing, ECCV 2022) does it by *pixel-level matching* against a
# memory bank of earlier frames. QMVOS (Zhou et al., ICME 2024, arXiv 2403.11529) adds one *query*
# per object that summarises it (the SIM, QMVOS Sec. 3.2), reads the memory readout of all objects
# (the QCIM, QMVOS Sec. 3.3), and then acts as a dynamic filter that produces the object's mask.
#
# Everything here runs on a laptop CPU. Set `QMVOS_LAB_SMOKE=1` to run a tiny version of every
# expensive cell (the test suite does).

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a few training iterations, short videos
PRESET = "cpu-tiny"  # the CPU training preset of the cached networks

# %%
# %matplotlib inline
import numpy as np
import pandas as pd

from qmvos_lab import viz, zoo
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video, split_videos
from qmvos_lab.inference.preprocess import resized_shape
from qmvos_lab.eval.videos import copy_first_mask, jf_mean, jf_table, segment_videos

# %% [markdown]
# ## 1. A generated video
#
# The kit ships no data: it draws videos whose ground truth is exact. `synthetic-val` is a
# held-out split (never trained on): textured objects that move, deform, occlude each other and
# look alike, on a moving textured background.

# %%
video = next(split_videos("synthetic-val", 1, length=8 if SMOKE else 20))
print(video.name, "frames:", video.frames.shape, "objects:", int(video.labels.max()))
viz.show_frames(video.frames[::4], ground_truth=video.labels[::4], columns=5)

# %% [markdown]
# ## 2. Two trained networks, from the cache
#
# `zoo.trained(name)` returns a network trained on the generated training split with a CPU
# preset. The first call trains it (a few minutes; a progress bar shows it), later calls load it in
# seconds. Both are the "small" size: a ResNet-18 key encoder and narrow layers, 9 M parameters.

# %%
qmvos = zoo.trained("qmvos-small", PRESET)
xmem = zoo.trained("xmem-small", PRESET)
print(f"QMVOS: {sum(p.numel() for p in qmvos.parameters()) / 1e6:.1f} M parameters, "
      f"cached in {qmvos.cache_folder}")

# %% [markdown]
# **The two networks, drawn.** `viz.architecture` runs one frame through a network's stages (a
# memory of one earlier frame, two objects) and draws them with the shape of every tensor it
# measured, here at the size the networks were trained for (`inference_size`). Blue is XMem; orange
# is what QMVOS adds: the SIM (QMVOS Sec. 3.2), the QCIM (QMVOS Sec. 3.3) and the queries as dynamic
# filters in place of XMem's prediction conv. Notebooks 01-03 open the blue boxes, 04-05 the orange.

# %%
size = resized_shape(*video.frames.shape[1:3], qmvos.inference_size)  # 192 x 320 for the CPU presets
viz.architecture(qmvos, *size)

# %%
viz.architecture(xmem, *size)

# %% [markdown]
# ## 3. Segment the video
#
# `segment_videos` runs `VideoSegmenter.step` frame by frame, giving each object's mask on the
# frame where it first appears. The animation shows ground truth | XMem | QMVOS.

# %%
predictions = {name: segment_videos(net, [video])[0][0] for name, net in (("xmem", xmem), ("qmvos", qmvos))}
panels = np.stack([np.concatenate([viz.overlay(video.frames[t], video.labels[t]),
                                   viz.overlay(video.frames[t], predictions["xmem"][t]),
                                   viz.overlay(video.frames[t], predictions["qmvos"][t])], 1)
                   for t in range(len(video.frames))])
viz.show_frames(panels[::4], titles=[f"frame {t}: truth | XMem | QMVOS" for t in range(0, len(panels), 4)],
                columns=3)

# %%
from IPython.display import HTML  # noqa: E402

HTML(viz.animate_frames(panels, fps=6))

# %% [markdown]
# ## 4. How good is it? J&F on held-out videos
#
# J is the region similarity (IoU) and F the boundary F-measure; J&F is their mean, computed
# exactly as the official DAVIS tool does (notebook 10 derives both). The baseline copies the
# first frame's mask to every frame: a method that does not beat it is not tracking.

# %%
videos = list(split_videos("synthetic-val", 3 if SMOKE else 20))
rows = [{"method": "copy first mask", "J&F": jf_mean(jf_table(videos, copy_first_mask(videos)))}]
for name, net in (("xmem-small", xmem), ("qmvos-small", qmvos)):
    rows.append({"method": name, "J&F": jf_mean(jf_table(videos, segment_videos(net, videos)[0]))})
scores = pd.DataFrame(rows)
scores

# %%
viz.jf_per_variant(scores.rename(columns={"method": "variant"}).assign(video="all"))

# %% [markdown]
# ## A map of the series
#
# | notebook | what you build or see |
# | --- | --- |
# | 01 keys and similarity | key, shrinkage, selection; the anisotropic L2 similarity by hand; top-k softmax; readout |
# | 02 memory bank | working memory, sensory memory, long-term consolidation over a long video |
# | 03 values, decoder, aggregation | the value encoder's mask channels, the decoder, soft aggregation, objects entering later |
# | 04 SIM | QMVOS Sec. 3.2: F16/F8 fusion, masked average pooling, multi-object interaction |
# | 05 QCIM and dynamic filters | QMVOS Sec. 3.3: serialised readout, cross-attention, logit = <q, g4> |
# | 06 attention explorer | query ↔ readout attention, interactively |
# | 07 training on a CPU | the loss, one clip pass, a live loss curve, stop and resume |
# | 08 training on a GPU | the real presets, AMP, DDP, data download |
# | 09 evaluation | J, F, decay, the DAVIS protocol, failure cases |
# | 10 ablations | Table 3 rerun with seeds and intervals |
# | 11 your video and official weights | your own frames and masks; the released checkpoints |
#
# **Exercises.**
# 1. Generate a harder video with `generate_video(SyntheticConfig(num_objects=4, similarity=0.9), seed=5)`
#    and segment it. Which network copes better with near-identical objects?
# 2. Find the frame where QMVOS's prediction is worst (lowest IoU against `video.labels`) and show it.
# 3. How much better than the copy baseline are the networks on `synthetic-hard`?

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. Near-identical objects.
hard = generate_video(SyntheticConfig(num_objects=4, similarity=0.9, length=8 if SMOKE else 20), seed=5)
print({name: round(jf_mean(jf_table([hard], segment_videos(net, [hard])[0])), 3)
       for name, net in (("xmem-small", xmem), ("qmvos-small", qmvos))})

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. QMVOS's worst frame (mean IoU over the objects; frame 0 is given).
from qmvos_lab.eval.metrics import jaccard  # noqa: E402

objects = range(1, int(video.labels.max()) + 1)
iou = [np.mean([jaccard(video.labels[t] == i, predictions["qmvos"][t] == i) for i in objects])
       for t in range(len(video.frames))]
worst = 1 + int(np.argmin(iou[1:]))
viz.show_frames(panels[worst:worst + 1], titles=[f"frame {worst}: mean IoU {iou[worst]:.2f} (truth | XMem | QMVOS)"])

# %% jupyter={"source_hidden": true} tags=["solution"]
# 3. synthetic-hard against the copy baseline.
hard_videos = list(split_videos("synthetic-hard", 3 if SMOKE else 20))
copy_hard = jf_mean(jf_table(hard_videos, copy_first_mask(hard_videos)))
print({name: round(jf_mean(jf_table(hard_videos, segment_videos(net, hard_videos)[0])) - copy_hard, 3)
       for name, net in (("xmem-small", xmem), ("qmvos-small", qmvos))}, "J&F above the copy baseline")

# %% [markdown]
# ## Summary
#
# * Semi-supervised VOS: each object's mask is given on the frame where it first appears; the
#   method segments it in every later frame.
# * XMem matches pixels against a memory of earlier frames; QMVOS adds one query per object (SIM),
#   refines it against the readout of all objects (QCIM) and uses it as a dynamic filter.
# * `zoo.trained` gives small networks trained on generated videos; `viz.architecture` draws a
#   network with the shapes of a real forward pass.
# * J&F against the copy-the-first-mask baseline says whether a network tracks at all.
#
# ## References
#
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529.
# * H. K. Cheng, A. G. Schwing, "XMem: Long-Term Video Object Segmentation with an Atkinson-Shiffrin
#   Memory Model", ECCV 2022.
# * F. Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object
#   Segmentation", CVPR 2016 (J and F).
# * Library: `qmvos_lab/zoo.py`, `qmvos_lab/viz/diagram.py`, `qmvos_lab/eval/videos.py`.
