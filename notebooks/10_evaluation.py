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
# # 10 · Evaluation: J, F and the DAVIS protocol
#
# **Goals.**
# 1. Compute the region similarity J (IoU) and the boundary F-measure by hand and check them
#    against `qmvos_lab.eval.metrics`, which matches the official DAVIS tool exactly.
# 2. See how the boundary tolerance works (a disk of radius 0.008 x the image diagonal).
# 3. Understand the statistics of the protocol: Mean, Recall and Decay per object, and J&F.
# 4. Draw per-frame J curves for a trained network and find its failure cases automatically.
#
# **Papers.** Perazzi et al., *A Benchmark Dataset and Evaluation Methodology for Video Object
# Segmentation*, CVPR 2016, Sec. 3 (J, F, and their statistics); the semi-supervised protocol of
# DAVIS 2017 (Pont-Tuset et al.): the first frame and the last frame are not scored.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: shorter videos, fewer of them
NUM_VIDEOS = 3 if SMOKE else 10
PRESET = "cpu-tiny"

# %%
# %matplotlib inline
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qmvos_lab import viz, zoo
from qmvos_lab.data.synthetic import split_videos
from qmvos_lab.eval.davis import evaluate_sequence
from qmvos_lab.eval.metrics import boundary_map, boundary_radius, decay_bin_edges, f_measure, jaccard, statistics
from qmvos_lab.eval.videos import jf_mean, jf_table, segment_videos

# %% [markdown]
# ## 1. J: region similarity
#
# J is the intersection over union of the predicted mask M and the ground truth G:
# $J = |M \cap G| / |M \cup G|$. When both are empty the official tool scores 1 (nothing to find,
# nothing found). Two squares shifted by two pixels, by hand:

# %%
gt = np.zeros((40, 60), bool)
gt[10:30, 10:30] = True
pred = np.zeros_like(gt)
pred[12:32, 12:32] = True
by_hand = (gt & pred).sum() / (gt | pred).sum()
assert math.isclose(by_hand, jaccard(gt, pred))
assert jaccard(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
print(f"J = {by_hand:.4f}")

# %% [markdown]
# ## 2. F: boundary accuracy
#
# F compares the *contours*. Each mask's boundary is the set of pixels that differ from their right,
# lower or lower-right neighbour (`boundary_map`). A predicted boundary pixel counts as correct
# when a ground-truth boundary pixel lies within a disk of radius
# $r = \lceil 0.008 \cdot \sqrt{H^2 + W^2} \rceil$ (precision), and conversely (recall);
# $F = 2PR / (P + R)$.

# %%
radius = boundary_radius(*gt.shape)
gt_boundary, pred_boundary = boundary_map(gt), boundary_map(pred)


def within(boundary, other, radius):
    """For each pixel of `boundary`, is a pixel of `other` within the disk? (by hand, slowly)"""
    ys, xs = np.nonzero(other)
    hits = []
    for y, x in zip(*np.nonzero(boundary)):
        hits.append(((ys - y) ** 2 + (xs - x) ** 2 <= radius ** 2).any())
    return np.array(hits)


precision = within(pred_boundary, gt_boundary, radius).mean()
recall = within(gt_boundary, pred_boundary, radius).mean()
f_by_hand = 2 * precision * recall / (precision + recall)
assert math.isclose(f_by_hand, f_measure(gt, pred), rel_tol=1e-9)
print(f"radius {radius} px: precision {precision:.3f}, recall {recall:.3f}, F = {f_by_hand:.4f}")

# %%
fig = Figure(figsize=(9, 3))
for ax, (title, image) in zip(fig.subplots(1, 3), [("ground truth and prediction", gt * 1.0 + pred * 0.5),
                                                    ("ground-truth boundary", gt_boundary),
                                                    ("predicted boundary", pred_boundary)]):
    ax.imshow(image, cmap="gray")
    ax.set_title(title)
    ax.set_axis_off()
fig

# %% [markdown]
# On this 40 x 60 image the tolerance is tiny: r = ⌈0.008 · √(40² + 60²)⌉ = ⌈0.58⌉ = 1 pixel. So the
# diagonal 2-pixel shift above already costs F almost everything (printed above): hardly a boundary
# pixel of one square lies within 1 pixel of the other's contour. Shift the square vertically, one
# pixel at a time: a 1-pixel shift costs J about a tenth and F nothing (both contours are within the
# radius of each other); from 2 pixels on, the top and bottom edges fall out of tolerance and F
# drops to about one half at once, while only the left and right edges still match. F falls off a
# cliff just past the radius; J declines smoothly.

# %%
shifts = np.arange(0, 9)
scores = []
for s in shifts:
    moved = np.zeros_like(gt)
    moved[10 + s:30 + s, 10:30] = True
    scores.append({"shift (px)": s, "J": jaccard(gt, moved), "F": f_measure(gt, moved)})
scores = pd.DataFrame(scores)
assert radius == 1 and scores.F[1] == 1.0 and scores.F[2] < 0.6  # the cliff just past the radius
print(scores.round(3).to_string(index=False))
viz.metric_over_time(scores["shift (px)"], {"J": scores["J"], "F": scores["F"]},
                     events={"tolerance radius": [radius]}, ylabel="score", title="J and F against a vertical shift")

# %% [markdown]
# ## 3. The protocol: Mean, Recall, Decay
#
# For each object, over the evaluated frames (all but the first, which is given, and the last):
# **Mean** of the per-frame scores, **Recall** the fraction of frames scoring above 0.5, and
# **Decay** the mean of the first quarter minus the mean of the last quarter (how much worse it
# gets over time; the bin edges are those of the official code). J&F is the mean of J-Mean and F-Mean.

# %%
per_frame = np.array([0.9, 0.8, 0.85, 0.7, 0.6, 0.4, 0.55, 0.3])
edges = decay_bin_edges(len(per_frame))
mean, recall, decay = statistics(per_frame)
assert math.isclose(mean, per_frame.mean()) and math.isclose(recall, (per_frame > 0.5).mean())
assert math.isclose(decay, per_frame[edges[0]:edges[1] + 1].mean() - per_frame[edges[3]:edges[4] + 1].mean())
print(f"bin edges {edges.tolist()}: mean {mean:.3f}, recall {recall:.3f}, decay {decay:.3f}")

# %% [markdown]
# ## 4. A trained network on held-out videos: per-frame J, and where it fails
#
# `evaluate_sequence` scores every object on every interior frame (objects x frames), exactly as the
# folder-level `qmvos-lab evaluate` does.

# %%
qmvos = zoo.trained("qmvos-small", PRESET)
videos = list(split_videos("synthetic-val", NUM_VIDEOS, length=10 if SMOKE else 20))
predictions = segment_videos(qmvos, videos)[0]
rows = []
for video, prediction in zip(videos, predictions):
    j, f = evaluate_sequence(video.labels, prediction[1:-1], name=video.name)
    for obj in range(j.shape[0]):
        for t in range(j.shape[1]):
            rows.append({"video": video.name, "object": obj + 1, "frame": t + 1, "J": j[obj, t], "F": f[obj, t]})
frames = pd.DataFrame(rows)
table = jf_table(videos, predictions)
print(f"J&F over {len(videos)} videos: {jf_mean(table):.3f}")
assert math.isclose(jf_mean(table), (frames.groupby(["video", "object"]).J.mean().mean()
                                     + frames.groupby(["video", "object"]).F.mean().mean()) / 2)

# %%
curves = {f"{v[-3:]} obj {o}": g.J.to_numpy() for (v, o), g in frames.groupby(["video", "object"])}
viz.metric_over_time(np.arange(1, len(next(iter(curves.values()))) + 1), curves, ylabel="J",
                     title="per-frame J of every object")

# %% [markdown]
# **Failure cases, found automatically.** The frames with the lowest J, with the prediction next to
# the ground truth:

# %%
worst = frames.nsmallest(4, "J")
worst

# %%
panels, titles = [], []
by_name = {v.name: (v, p) for v, p in zip(videos, predictions)}
for _, row in worst.iterrows():
    video, prediction = by_name[row.video]
    t = int(row.frame)
    panels.append(np.concatenate([viz.overlay(video.frames[t], video.labels[t]),
                                  viz.overlay(video.frames[t], prediction[t])], 1))
    titles.append(f"{row.video[-3:]} frame {t} object {row.object}: J {row.J:.2f}")
viz.show_frames(np.stack(panels), titles=titles, columns=2)

# %% [markdown]
# **Exercises.**
# 1. Shift the square diagonally instead of vertically: at which shift does F drop, and why is it
#    not the same as for a vertical shift?
# 2. Evaluate the copy-the-first-mask baseline (`qmvos_lab.eval.videos.copy_first_mask`) on the
#    same videos: which statistic (Mean, Recall, Decay) separates it most clearly from QMVOS?
# 3. Write the predictions to a folder (`qmvos-lab data generate` writes the ground truth in the DAVIS
#    layout) and check that `qmvos-lab evaluate` gives the same J&F as this notebook.

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. A diagonal shift moves all four edges, a vertical one only the top and bottom edges: past the
# same 1-pixel radius, F falls towards 0 instead of to about one half.
diagonal = []
for s in shifts:
    moved = np.zeros_like(gt)
    moved[10 + s:30 + s, 10 + s:30 + s] = True
    diagonal.append(f_measure(gt, moved))
both = pd.DataFrame({"shift (px)": shifts, "F vertical": scores["F"], "F diagonal": diagonal})
print(both.round(3).to_string(index=False))

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. Mean, Recall and Decay of the copy-the-first-mask baseline against QMVOS on the same videos.
from qmvos_lab.eval.videos import copy_first_mask  # noqa: E402

statistics_rows = []
for method, method_predictions in (("copy first mask", copy_first_mask(videos)), ("qmvos-small", predictions)):
    for video, prediction in zip(videos, method_predictions):
        j, _ = evaluate_sequence(video.labels, prediction[1:-1], name=video.name)
        for obj in range(j.shape[0]):
            j_mean, j_recall, j_decay = statistics(j[obj])
            statistics_rows.append({"method": method, "J-Mean": j_mean, "J-Recall": j_recall, "J-Decay": j_decay})
print(pd.DataFrame(statistics_rows).groupby("method").mean().round(3))

# %% [markdown]
# ## Summary
#
# * J is the IoU of prediction and ground truth (1 when both are empty); F is the F-measure of the
#   two contours, matched within a disk of radius ⌈0.008 x diagonal⌉, which is 1 pixel on a small
#   image.
# * F is flat inside the radius and drops at once past it; J declines smoothly with a shift.
# * The protocol scores every object over the frames between the first and the last: Mean, Recall
#   (share of frames above 0.5) and Decay; J&F is the mean of J and F. QMVOS reports J&F, J and F
#   on DAVIS (Tables 1 and 3) and G with J, F on seen and unseen classes on YouTube-VOS (Table 2),
#   on the 0-100 scale (QMVOS Sec. 4.1); this kit prints 0-1.
# * Per-frame J curves find the failure cases without looking at every frame.
#
# ## References
#
# * F. Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object
#   Segmentation", CVPR 2016 (J, F and their statistics).
# * J. Pont-Tuset et al., "The 2017 DAVIS Challenge on Video Object Segmentation", arXiv:1704.00675.
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529, Sec. 4.1 (metrics).
# * Library: `qmvos_lab/eval/metrics.py`, `qmvos_lab/eval/davis.py`.
