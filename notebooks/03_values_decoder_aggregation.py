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
# # 03 · Values, decoder and aggregation: from a readout to masks
#
# **Goals.** By the end of this notebook you will have
# 1. built the value encoder's input by hand: the frame, the object's own mask and the *others'* masks,
#    and checked it against what the network sees,
# 2. followed the decoder from the memory readout through g16 → g8 → g4 to one logit map per object,
#    recomputing `segment` step by step,
# 3. derived soft aggregation with the background channel by hand and checked it against
#    `qmvos_lab.model.aggregate.aggregate`,
# 4. segmented a video where objects enter after the first frame, with their masks given on later frames.
#
# **Paper.** XMem (Cheng & Schwing, ECCV 2022), Sec. 3.1–3.2 and Fig. 3 (value encoder, decoder), Sec. 3.4
# (the decoder's sensory update); soft aggregation is STM's (Oh et al., ICCV 2019), kept by XMem.
# QMVOS (arXiv 2403.11529) keeps XMem's mask (value) encoder and decoder (QMVOS Sec. 3.4); the
# released code also keeps the aggregation, and replaces the decoder's last convolution by the
# queries (QMVOS Sec. 3.3; notebook 05).
#
# **The idea.** Notebook 01 read the memory with keys, which depend on the image only. What is read
# out are *values*: one per object and memory frame, encoded from the frame *and that object's mask*.
# The decoder turns each object's readout into a logit map, independently per object; soft
# aggregation then makes the objects and the background compete for every pixel.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a network trained for a few iterations, a shorter video
PRESET = "cpu-tiny"  # the CPU training preset of the cached network
LENGTH = 12 if SMOKE else 24  # frames of the video with objects entering (Sec. 4)

# %%
# %matplotlib inline
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from qmvos_lab import viz, zoo
from qmvos_lab.eval.videos import generated_config
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.inference.preprocess import resize_image, resize_masks, resized_shape, to_image_tensor
from qmvos_lab.model.aggregate import aggregate, hard_masks
from qmvos_lab.model.network import others_mask

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## 1. The value encoder and its mask channels
#
# The value encoder is a ResNet-18 whose first convolution takes **5 channels** per object: RGB, the
# object's own mask, and the sum of the *other* objects' masks (`others_mask`). Channels 1-3 are the
# image; channel 4 (index 3) says "this is me", channel 5 (index 4) "these are not me": with
# similar-looking objects channel 5 matters, since it tells the value of object 1 that the look-alike
# next to it is someone else. Its features are fused
# with the key encoder's f16 into the value (C<sup>v</sup> channels at stride 16).

# %%
net = zoo.trained("xmem-small", PRESET)
video = generate_video(SyntheticConfig(num_objects=3, length=4), seed=7)
labels = torch.from_numpy(video.labels.astype(np.int64))  # T x H x W, 0 = background
num_objects = int(labels.max())
masks = torch.stack([labels[0] == i for i in range(1, num_objects + 1)]).float()[None]  # 1 x N x H x W, one-hot

others = others_mask(masks)  # 1 x N x H x W
torch.testing.assert_close(others, masks.sum(dim=1, keepdim=True) - masks)  # everyone else's mask
union_of_others = torch.stack([(labels[0] > 0) & (labels[0] != i) for i in range(1, num_objects + 1)]).float()[None]
torch.testing.assert_close(others, union_of_others)  # for non-overlapping masks: the union of the others
assert not others_mask(masks[:, :1]).any()  # a single object has no others
viz.show_heatmaps(torch.stack([masks[0], others[0]]), row_titles=["own mask", "others' masks"],
                  column_titles=[f"object {i}" for i in range(1, num_objects + 1)], background=video.frames[0],
                  cmap="viridis", suptitle="The value encoder's two mask channels, frame 0")

# %% [markdown]
# What the first convolution actually receives, recorded with a forward hook, against the input built
# by hand: one 5-channel image per object (objects are folded into the batch). The network was
# trained on generated frames zoomed to `net.inference_size` (192 px for the CPU presets), so from
# here on it sees the frame and its masks at that size, as `VideoSegmenter` would feed them.

# %%
shape = resized_shape(*video.frames.shape[1:3], net.inference_size)  # 192 x 320 for cpu-tiny (a multiple of 16)
image = resize_image(to_image_tensor(video.frames[0]), shape)[None]  # 1 x 3 x H x W
masks = resize_masks(masks[0], shape)[None]  # 1 x N x H x W, nearest
others = others_mask(masks)
seen = {}
hook = net.value_encoder.conv1.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
with torch.inference_mode():
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(image)
    value, hidden = net.encode_value(image, f16, torch.zeros(1, num_objects, net.hidden_dim, *key.shape[-2:]), masks)
hook.remove()
by_hand = torch.cat([image.expand(num_objects, -1, -1, -1), masks[0, :, None], others[0, :, None]], 1)  # N x 5 x H x W
torch.testing.assert_close(seen["x"], by_hand)
print("value encoder input", tuple(seen["x"].shape), "-> value", tuple(value.shape), "(1 x N x Cv x h x w), hidden",
      tuple(hidden.shape))

# %% [markdown]
# ## 2. The decoder: g16 → g8 → g4 → logits
#
# Take frame 0 as the only memory frame and segment frame 3. The readout (notebook 01) is one
# C<sup>v</sup>-channel map per object at stride 16. The decoder
# 1. concatenates it with the sensory memory h and fuses it with the frame's f16 (`fuser`: residual
#    blocks and CBAM attention) into **g16**;
# 2. upsamples twice, each time adding a projection of the key encoder's skip feature (f8, then f4):
#    **g8** at stride 8, **g4** at stride 4 (`net.decoder.decode` returns all three);
# 3. predicts one logit per object and pixel at stride 4 with a 3x3 convolution (`pred`), and
#    upsamples it x4 to the frame.
#
# Everything up to here is per object: objects are folded into the batch and never see each other.

# %%
t = 3
query_image = resize_image(to_image_tensor(video.frames[t]), shape)[None]  # 1 x 3 x H x W
with torch.inference_mode():
    q_key, _, q_selection, q16, q8, q4 = net.encode_key(query_image)
    readout = net.read_memory(q_key, q_selection, key.unsqueeze(2), shrinkage.unsqueeze(2),
                              value.unsqueeze(3))  # memory of T = 1 frame -> 1 x N x Cv x h x w
    g16, g8, g4 = net.decoder.decode(q16, q8, q4, hidden, readout)
    logits4 = net.decoder.pred(F.relu(g4.flatten(0, 1))).view(1, num_objects, *g4.shape[-2:])  # 1 x N x H/4 x W/4
    logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # 1 x N x H x W
    new_hidden = net.decoder.update_hidden(g16, g8, g4, logits4, hidden)  # the sensory update (notebook 02)
    out = net.segment((q16, q8, q4), readout, hidden)  # the library, in one call
for name, x in [("readout", readout), ("g16", g16), ("g8", g8), ("g4", g4), ("logits", logits)]:
    print(f"{name:8s} {tuple(x.shape)}")
torch.testing.assert_close(out.prob, aggregate(torch.sigmoid(logits), dim=1))
torch.testing.assert_close(out.hidden, new_hidden)
print("decode -> pred -> x4 -> sigmoid -> aggregate, by hand = net.segment")

# %%
def channel_norm(g):  # 1 x N x C x h x w -> N x H x W: how strongly each position is active
    return F.interpolate(g[0].norm(dim=1, keepdim=True), size=video.frames.shape[1:3], mode="bilinear")[:, 0]


scales = torch.stack([channel_norm(g) / channel_norm(g).amax(dim=(1, 2), keepdim=True) for g in (readout, g16, g8, g4)])
viz.show_heatmaps(scales.transpose(0, 1), row_titles=[f"object {i}" for i in range(1, num_objects + 1)],
                  column_titles=["readout (1/16)", "g16", "g8 (1/8)", "g4 (1/4)"], background=video.frames[t],
                  cmap="viridis", colorbar_label="channel norm / max",
                  suptitle=f"Decoder features of frame {t}, per object")

# %% [markdown]
# ## 3. Soft aggregation with the background channel
#
# The decoder's sigmoids p<sub>i</sub> are independent: two objects can both claim a pixel with 0.9, and
# nothing says "background". Soft aggregation (STM) fixes both:
# 1. the background gets p<sub>0</sub> = ∏<sub>i</sub> (1 − p<sub>i</sub>): the chance that no object is there;
# 2. all N + 1 probabilities are clamped to (10<sup>−7</sup>, 1 − 10<sup>−7</sup>), turned into logits
#    log(p / (1 − p)), and renormalised with a softmax over the N + 1 channels.
#
# Since exp(log(p / (1 − p))) = p / (1 − p), the result is each channel's **odds** divided by the sum
# of the odds: q<sub>i</sub> = o<sub>i</sub> / Σ<sub>j</sub> o<sub>j</sub> with
# o<sub>i</sub> = p<sub>i</sub> / (1 − p<sub>i</sub>).
# A channel that is confident (p near 1, odds large) takes the pixel. A tiny example: 2 objects, 4 pixels.

# %%
p = torch.tensor([[0.9, 0.6, 0.1, 0.5],  # object 1
                  [0.8, 0.2, 0.1, 0.5]])  # object 2   (N x pixels)
background = torch.prod(1 - p, dim=0, keepdim=True)  # 1 x pixels
with_background = torch.cat([background, p]).clamp(1e-7, 1 - 1e-7)  # (N + 1) x pixels
by_hand = torch.softmax(torch.log(with_background / (1 - with_background)), dim=0)
torch.testing.assert_close(aggregate(p, dim=0), by_hand)

odds = with_background / (1 - with_background)
torch.testing.assert_close(by_hand, odds / odds.sum(dim=0, keepdim=True))  # odds, normalised
torch.testing.assert_close(by_hand.sum(dim=0), torch.ones(4))  # every pixel sums to one
pd.DataFrame(torch.cat([torch.cat([background, p]), by_hand]).T.numpy(), columns=[
    "p0 = ∏(1-p)", "p1", "p2", "q0 (background)", "q1", "q2"]).round(3)

# %% [markdown]
# Pixel 0: both objects are confident; object 1 wins (odds 9 vs 4), the background almost vanishes.
# Pixel 2: neither object claims it; the background gets p<sub>0</sub> = 0.81 and wins. Pixel 3: two
# half-sure objects leave the background a quarter, and its odds are small, so the two objects keep most.
#
# The same on the real frame: the independent sigmoids (with p<sub>0</sub> = ∏(1 − p<sub>i</sub>)) against the
# aggregated probabilities that `segment` returns. The label map is their per-pixel argmax (`hard_masks` gives
# it as one-hot masks, as QMVOS pools its queries under them).

# %%
independent = torch.cat([torch.prod(1 - torch.sigmoid(logits), dim=1, keepdim=True), torch.sigmoid(logits)], 1)
viz.show_heatmaps(torch.stack([independent[0], out.prob[0]]), row_titles=["sigmoid", "aggregated"],
                  column_titles=["background"] + [f"object {i}" for i in range(1, num_objects + 1)],
                  background=video.frames[t], vmin=0.0, vmax=1.0, colorbar_label="probability",
                  suptitle=f"Frame {t}: soft aggregation")

# %%
prediction = out.prob[0].argmax(dim=0)  # H x W: 0 = background, i = object i
one_hot = torch.stack([prediction == i for i in range(1, num_objects + 1)]).float()  # N x H x W
torch.testing.assert_close(hard_masks(out.prob)[0], one_hot)
prediction = F.interpolate(prediction[None, None].float(), size=video.frames.shape[1:3], mode="nearest")[0].long()
viz.show_frames(video.frames[t:t + 1], ground_truth=video.labels[t:t + 1], prediction=prediction,
                titles=[f"frame {t}, memory: frame 0 only"])

# %% [markdown]
# ## 4. Objects entering mid-video
#
# In a real video not every object is there on frame 0. Generated videos do this with
# `SyntheticConfig(enter_prob=...)`: each object but the first enters from a border after the start.
# `video.first_frame[i]` is the frame where object i + 1 first shows a pixel, and `video.given_masks()`
# gives each object's mask on *that* frame only, as a semi-supervised benchmark does.
#
# `VideoSegmenter.step(frame, mask)` handles this: a mask with new ids registers them (internal indices
# follow the order of appearance), their pixels are set to the given mask, and the objects the mask does
# not contain keep their prediction outside its foreground. Each new object gets a zero sensory memory,
# and its values start a new *object group* in memory, covering only the frames since it entered.

# %%
entering = generate_video(SyntheticConfig(num_objects=3, enter_prob=1.0, length=LENGTH), seed=1)
given = entering.given_masks()
print("first frame of each object:", entering.first_frame,
      "| given masks on frames", {f: sorted(int(i) for i in np.unique(m) if i) for f, m in given.items()})

segmenter = VideoSegmenter(net, generated_config(net, mem_every=3), trace=True)
results = [segmenter.step(frame, given.get(f), end=f == LENGTH - 1) for f, frame in enumerate(entering.frames)]
for f, result in enumerate(results):
    known = sum(first <= f for first in entering.first_frame)  # objects that have entered by frame f
    assert result.prob.shape[0] == 1 + known and result.object_ids == list(range(1, known + 1))
    if f in given:  # the given mask wins where it is foreground
        assert (result.labels[given[f] > 0] == given[f][given[f] > 0]).all()
        assert result.trace.events["objects_added"] == sorted(int(i) for i in np.unique(given[f]) if i)

memory = segmenter.core.memory.work_mem
pd.DataFrame({"group": range(memory.num_groups), "objects (0-based)": memory.groups,
              "value elements": [memory.value_size(g) for g in range(memory.num_groups)],
              "memory frames covered": [memory.value_size(g) // segmenter.core.memory.area
                                        for g in range(memory.num_groups)]})

# %%
shown = sorted({0, *given, *range(0, LENGTH, 3)})[:8]
viz.show_frames(entering.frames[shown], ground_truth=entering.labels[shown],
                prediction=np.stack([results[f].labels for f in shown]),
                titles=[f"frame {f}" + (" (mask given)" if f in given else "") for f in shown], columns=4)

# %%
tracked = {f"object {i + 1}": [float((r.labels == i + 1).mean()) for r in results] for i in range(3)}
entries = {f"object {i + 1} enters": [f] for i, f in enumerate(entering.first_frame) if f > 0}
viz.metric_over_time(range(LENGTH), tracked, events=entries,
                     ylabel="fraction of the frame predicted", title="Objects entering: predicted area per object")

# %% [markdown]
# **Exercises.**
# 1. Zero the others' channel (`net.value_encoder(image, f16, hidden, masks, torch.zeros_like(masks))`) and
#    compare the values of object 1 with and without it. Where do they differ most?
# 2. In the tiny aggregation example, find p<sub>1</sub> = p<sub>2</sub> = p such that the background gets exactly
#    one third. What does this say about pixels where every object is unsure?
# 3. Give object 2's mask one frame later than its first frame (shift its key in `given`). What does the
#    network predict for it on the frame it was skipped?
# 4. Use `generate_video(SyntheticConfig(num_objects=3, enter_prob=1.0, length=16), seed=2)`: object 3 enters
#    before object 2. Check `result.object_ids` and `result.internal_ids` on the last frame: which is which?

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. The value of object 1 with and without the others' channel: the difference per position.
with torch.inference_mode():
    zero_hidden = torch.zeros(1, num_objects, net.hidden_dim, *key.shape[-2:])
    with_others, _ = net.value_encoder(image, f16, zero_hidden, masks, others)
    without_others, _ = net.value_encoder(image, f16, zero_hidden, masks, torch.zeros_like(masks))
change = (with_others - without_others)[0, 0].norm(dim=0)  # h x w, object 1
y, x = divmod(int(change.argmax()), change.shape[-1])
print(f"object 1's value changes most at stride-16 cell {(y, x)}; there the others' mask covers "
      f"{float(F.avg_pool2d(others[:, :1], 16)[0, 0, y, x]):.2f} of the cell")
viz.show_heatmaps(change[None], column_titles=["|value change| of object 1"], background=video.frames[0],
                  cmap="viridis")

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. p1 = p2 = p with the background at exactly one third: its odds must equal each object's,
# (1 - p)^2 / (1 - (1 - p)^2) = p / (1 - p). Bisection on the difference (decreasing in p):
low_p, high_p = 0.01, 0.99
for _ in range(60):
    p = (low_p + high_p) / 2
    gap = (1 - p) ** 2 / (1 - (1 - p) ** 2) - p / (1 - p)
    low_p, high_p = (p, high_p) if gap > 0 else (low_p, p)
shares = aggregate(torch.tensor([[p], [p]], dtype=torch.float64), dim=0)[:, 0]
print(f"p = {p:.4f}: background, object 1, object 2 get {shares.numpy().round(4)}")
torch.testing.assert_close(shares, torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-4, rtol=0)
# p = (3 - sqrt(5)) / 2, about 0.38: every object is unsure and the pixel is split three ways; the
# label map's argmax is then decided by tiny differences, which is where masks flicker.

# %% jupyter={"source_hidden": true} tags=["solution"]
# 3. Object 2's mask given one frame late: on the frame it was skipped it has no channel at all.
late = dict(given)
second = entering.first_frame[1]
late[second + 1] = late.pop(second)
late_segmenter = VideoSegmenter(net, generated_config(net, mem_every=3))
late_results = [late_segmenter.step(frame, late.get(f), end=f == LENGTH - 1) for f, frame in enumerate(entering.frames)]
skipped = late_results[second]
truth2 = entering.labels[second] == 2
print(f"frame {second}: objects {skipped.object_ids}; object 2's pixels in the truth: "
      f"{int(truth2.sum())}, predicted as {np.unique(skipped.labels[truth2])}")
assert 2 not in skipped.object_ids

# %% jupyter={"source_hidden": true} tags=["solution"]
# 4. Object 3 entering before object 2: channels are in id order (`object_ids`), internal order is the
# order of appearance (`segmenter.object_ids`).
swapped = generate_video(SyntheticConfig(num_objects=3, enter_prob=1.0, length=16), seed=2)
swapped_segmenter = VideoSegmenter(net, generated_config(net))
swapped_given = swapped.given_masks()
for f, frame in enumerate(swapped.frames):
    last_result = swapped_segmenter.step(frame, swapped_given.get(f), end=f == len(swapped.frames) - 1)
print("first frames:", swapped.first_frame, "| channels (object_ids):", last_result.object_ids,
      "| internal order:", swapped_segmenter.object_ids)

# %% [markdown]
# ## Summary
#
# * The value encoder sees 5 channels per object: RGB, the object's own mask, the others' masks.
# * The decoder fuses each object's readout (and sensory memory) with f16 into g16, upsamples to g8
#   and g4 with skip features, and predicts one logit map per object with one shared 3 x 3 conv;
#   objects never see each other inside it.
# * Soft aggregation turns the independent sigmoids into one distribution over background and
#   objects per pixel: each channel's odds over the sum of odds.
# * Objects may enter mid-video: their masks register new ids, and their values start a new group.
#
# ## References
#
# * H. K. Cheng, A. G. Schwing, "XMem: Long-Term Video Object Segmentation with an Atkinson-Shiffrin
#   Memory Model", ECCV 2022 (value encoder, decoder, sensory memory).
# * S. W. Oh, J.-Y. Lee, N. Xu, S. J. Kim, "Video Object Segmentation using Space-Time Memory
#   Networks", ICCV 2019 (soft aggregation).
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529, Sec. 3.4 (the XMem encoders and decoder kept).
# * Library: `qmvos_lab/model/encoders.py`, `qmvos_lab/model/decoder.py`, `qmvos_lab/model/aggregate.py`,
#   `qmvos_lab/inference/video.py`.
