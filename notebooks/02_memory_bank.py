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
# # 02 · The memory bank: working, sensory and long-term memory
#
# **Goals.** By the end of this notebook you will have
# 1. stepped a video through `VideoSegmenter.step()` with tracing on, and seen which frames become
#    *working memory* and why (`mem_every`, given masks, the last frame),
# 2. checked the *sensory memory*'s GRU-like update by hand against the running network,
# 3. replayed a *long-term consolidation* by hand (prototypes chosen by usage, memory potentiation)
#    and a *pruning* of long-term memory (least usage first), asserting that the library did the same,
# 4. plotted memory size and memory events over a long generated video, and seen why the memory stays
#    bounded while a working-memory-only bank grows with the video.
#
# **Paper.** XMem (Cheng & Schwing, ECCV 2022), Sec. 3.3 (working memory), Sec. 3.4 (sensory memory),
# Sec. 3.5 (long-term memory: consolidation, memory potentiation, removal), Fig. 2. QMVOS
# (arXiv 2403.11529) keeps XMem's memory bank unchanged.
#
# **The idea** (the Atkinson–Shiffrin model, as XMem puts it). Three stores with three time scales:
# * **sensory memory**: one small hidden state per object, updated on *every* frame (a GRU-like cell
#   fed by the decoder), for what happened a moment ago;
# * **working memory**: keys and values of a few recent frames (every r-th frame), read by
#   the matching of notebook 01, for high-resolution detail;
# * **long-term memory**: when working memory is full, its middle is *consolidated* into a few
#   prototypes and moved here; when this is full, the least-used prototypes are dropped.
#
# The defaults (`InferenceConfig()`: r = 5, T<sub>max</sub> = 10, T<sub>min</sub> = 5, 128 prototypes, 10 000 long-term
# elements) only consolidate after 50 frames of a large video. We shrink them so that everything
# happens within a short, small video.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a network trained for a few iterations, a shorter video
PRESET = "cpu-tiny"  # the CPU training preset of the cached network
LENGTH = 30 if SMOKE else 120  # frames of the generated video
MEMORY = dict(mem_every=2, max_mid_term_frames=4, min_mid_term_frames=2, num_prototypes=16,
              max_long_term_elements=72)  # tiny settings: consolidation every 4 frames, pruning soon after

# %%
# %matplotlib inline
import copy

import numpy as np
import pandas as pd
import torch

from qmvos_lab import viz, zoo
from qmvos_lab.eval.videos import generated_config
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model.blocks import gated_update
from qmvos_lab.model.memory_read import get_similarity, softmax_affinity

# %% [markdown]
# ## 1. A video through `step()`, traced
#
# `VideoSegmenter.step(frame, mask)` takes one RGB frame and, on frames where objects appear, their
# label map; `trace=True` records a `FrameTrace` per frame (`result.trace`). The memory itself is
# `segmenter.core.memory` (a `MemoryManager`). We also keep a copy of it *before* every frame, so that we
# can replay a frame's memory decisions by hand later, and we listen to the two convolutions that
# produce the sensory memory's gates (forward hooks: they record, they change nothing).

# %%
net = zoo.trained("xmem-small", PRESET)
video = generate_video(SyntheticConfig(num_objects=3, length=LENGTH), seed=7)
config = generated_config(net, **MEMORY)  # frames at net.inference_size: 192 x 320 (a 12 x 20 grid) for cpu-tiny
segmenter = VideoSegmenter(net, config, trace=True)

gates = {}  # frame -> {"decoder" | "deep": the gate pre-activations of the sensory update}
hooks = [net.decoder.hidden_update.transform.register_forward_hook(
             lambda module, inputs, output: gates[frame_index].update(decoder=output.clone())),
         net.value_encoder.hidden_reinforce.transform.register_forward_hook(
             lambda module, inputs, output: gates[frame_index].update(deep=output.clone()))]
given = video.given_masks()  # {0: the first frame's label map}: all three objects start on frame 0
results, before = [], []
for frame_index, frame in enumerate(video.frames):
    before.append(copy.deepcopy(segmenter.core.memory))  # the memory bank as this frame finds it
    gates[frame_index] = {}
    results.append(segmenter.step(frame, given.get(frame_index), end=frame_index == LENGTH - 1))
for hook in hooks:
    hook.remove()
traces = [r.trace for r in results]
area = segmenter.core.memory.area  # memory elements per frame: the h x w grid
print(f"{LENGTH} frames, {area} memory elements per frame (grid {traces[0].grid})")

# %%
table = pd.DataFrame([{"frame": tr.index, "segmented": tr.events["segmented"],
                       "memory frame": tr.events["memory_frame"], "working memory frames": tr.working_frames,
                       "working": tr.working_size, "long-term": tr.long_term_size,
                       "consolidation": tr.events["consolidation"]} for tr in traces])
table.head(12)

# %% [markdown]
# ## 2. Working memory and `mem_every` (Sec. 3.3)
#
# A frame becomes a memory frame when `mem_every` frames have passed since the last one, and whenever
# it comes with a mask (frame 0 here). Its key and its per-object values are appended to working memory.
# The last frame (`end=True`) stores nothing: no frame will read it. Frame 0 is never segmented: its
# mask is given.

# %%
memory_frames = [tr.index for tr in traces if tr.events["memory_frame"]]
assert memory_frames == list(range(0, LENGTH - 1, config.mem_every))
assert not traces[0].events["segmented"] and all(tr.events["segmented"] for tr in traces[1:])

# which video frames are in working memory after each frame: the first frame stays, the rest slides
first = min(LENGTH, 30)  # the first 30 frames
in_memory = np.zeros((first, first))
for tr in traces[:first]:
    in_memory[tr.index, tr.working_frames] = 1
title = (f"Working memory (mem_every={config.mem_every}, T_max={config.max_mid_term_frames}, "
         f"T_min={config.min_mid_term_frames})")
fig = viz.show_heatmaps(in_memory, cmap="Greys", xlabel="video frame held in working memory", ylabel="after frame t",
                        shared_scale=False, suptitle=title)
fig.set_size_inches(5, 4.5)
fig

# %% [markdown]
# ## 3. The sensory memory and its GRU-like update (Sec. 3.4)
#
# Each object carries a hidden state h (C<sup>h</sup> = 32 channels on the 12 x 20 grid) that the decoder reads
# together with the memory readout. After decoding, a convolution of the decoder's multi-scale
# features and h gives three maps per channel: a forget gate f, an update gate u and a candidate c;
# then
#
# $$h' = f \odot h \odot (1 - u) + u \odot \tanh(c),\qquad f, u = \mathrm{sigmoid}(\cdot).$$
#
# (Unlike a textbook GRU, the candidate is not gated by f; this follows the official code.) On memory
# frames the *deep update* replaces it: the same cell, fed by the value encoder's new memory value
# (`deep_update_every=-1` synchronises it with the memory frames). Let us recompute h' of the first
# frame of each kind (after frame 0, which starts the sensory memory) from the recorded gate pre-activations.

# %%
C = net.hidden_dim
for source in ("decoder", "deep"):
    t = next(t for t in range(1, LENGTH) if source in gates[t])
    values, h = gates[t][source], traces[t].hidden_before  # 1 x N x 3C x h x w, 1 x N x C x h x w
    forget, update = torch.sigmoid(values[:, :, :C]), torch.sigmoid(values[:, :, C:2 * C])
    candidate = torch.tanh(values[:, :, 2 * C:])
    by_hand = forget * h * (1 - update) + update * candidate
    torch.testing.assert_close(by_hand, traces[t].hidden_after)
    torch.testing.assert_close(gated_update(values, h, C), by_hand)
    print(f"frame {t}: the {source} update of the sensory memory, by hand = library")

# %% [markdown]
# Where does the sensory memory of object 1 change? The update gate u (mean over channels) on a few
# frames, and the size of h over the video: it starts at zero and is rewritten every frame.

# %%
shown = [t for t in range(1, LENGTH) if "decoder" in gates[t]][:6]  # frames with a normal (decoder) update
update_gates = torch.stack([torch.sigmoid(gates[t]["decoder"][0, 0, C:2 * C]).mean(0) for t in shown])  # T x h x w
viz.show_heatmaps(update_gates, column_titles=[f"frame {t}" for t in shown], background=video.frames[shown],
                  colorbar_label="update gate u (mean)", suptitle="Sensory memory of object 1: update gate")

# %%
norms = {f"object {n + 1}": [float(tr.hidden_after[0, n].norm()) for tr in traces[:-1]] for n in range(3)}
viz.metric_over_time(range(LENGTH - 1), norms, events=viz.events_by_name([tr.events for tr in traces[:-1]],
                                                                            names=["deep_update"]),
                     ylabel="‖h‖ after the frame", title="Sensory memory over the video")

# %% [markdown]
# ## 4. Long-term consolidation, by hand (Sec. 3.5)
#
# When a new memory frame brings working memory to T<sub>max</sub> frames, XMem keeps the first frame (the one
# with the given mask) and the newest T<sub>min</sub> − 1 frames, and consolidates the others, the *candidates*:
#
# 1. **prototypes by usage**: every read adds to each memory element the affinity it received (its
#    usage, notebook 01), divided by the element's age. The P most-used candidates become prototypes:
#    their keys are kept. Their selections serve once, in the next step, and are then dropped: the
#    long-term store keeps key, shrinkage and value only (`long_mem.add(..., selection=None)` in
#    `compress`), because a memory element is always read with the *query* frame's selection;
# 2. **memory potentiation**: each prototype key, with its selection, reads the candidates
#    (XMem Eq. 1–3, the prototype as the query), and its value is the affinity-weighted average of
#    the candidates' values; its shrinkage too.
#    A prototype thus summarises the candidates that resemble it, not just its own position.
#
# We replay the first consolidation from the copy of the memory taken before that frame: redo the
# frame's read (it adds the usage), then pick and potentiate.

# %%
t = next(tr.index for tr in traces if tr.events["consolidation"])
memory = copy.deepcopy(before[t])
with torch.inference_mode():
    memory.match_memory(traces[t].key, traces[t].selection)  # the read of frame t: usage is counted
work = memory.work_mem
start, end = area, (config.max_mid_term_frames - config.min_mid_term_frames + 1) * area  # not the first frame,
candidates = slice(start, end)  # nor the newest T_min - 1 frames (the new frame will be the newest)
usage = work.usage()[:, :, candidates]  # 1 x 1 x M: use count / age
_, chosen = usage.topk(config.num_prototypes, dim=-1)  # 1 x 1 x P
chosen = chosen.flatten()  # P
key, shrinkage, selection = (x[:, :, candidates] for x in (work.key, work.shrinkage, work.selection))  # 1 x C x M
prototype_key, prototype_selection = key[:, :, chosen], selection[:, :, chosen]  # 1 x Ck x P
affinity = softmax_affinity(get_similarity(key, shrinkage, prototype_key, prototype_selection))  # 1 x M x P
prototype_value = work.values[0][:, :, candidates] @ affinity  # N x Cv x P: potentiation
prototype_shrinkage = shrinkage @ affinity  # 1 x 1 x P

long_after = before[t + 1].long_mem  # the long-term memory the library built on frame t
P = config.num_prototypes
torch.testing.assert_close(long_after.key[:, :, -P:], prototype_key)
torch.testing.assert_close(long_after.values[0][:, :, -P:], prototype_value)
torch.testing.assert_close(long_after.shrinkage[:, :, -P:], prototype_shrinkage)
assert long_after.selection is None  # the prototypes' selections are not stored
effective = 1 / affinity.pow(2).sum(dim=1)  # how many candidates each prototype averages, effectively
print(f"frame {t}: {usage.numel()} candidates (video frames {before[t].work_frames[1:end // area]}) -> {P} prototypes; "
      f"each averages {float(effective.mean()):.1f} candidates effectively. By hand = library.")

# %%
candidate_frames = before[t].work_frames[1:end // area]  # the video frames of the candidates
chosen_map = torch.zeros(usage.numel()).index_fill_(0, chosen, 1.0)  # 1 on the prototypes
heights, widths = traces[t].grid
maps = torch.stack([usage.flatten() / usage.max(), chosen_map]).view(2, len(candidate_frames), heights, widths)
viz.show_heatmaps(maps, row_titles=["usage (scaled)", "prototypes"],
                  column_titles=[f"candidate: frame {f}" for f in candidate_frames],
                  background=video.frames[candidate_frames], shared_scale=True,
                  suptitle=f"Consolidation on frame {t}: the most-used candidates become prototypes")

# %% [markdown]
# ## 5. Pruning long-term memory
#
# Long-term memory holds at most LT<sub>max</sub> elements. Before adding P new prototypes to a memory that
# would overflow, XMem drops its least-used elements (usage / age again) down to LT<sub>max</sub> − P.
# We replay the first pruning the same way.

# %%
capacity = config.max_long_term_elements - P
t = next(tr.index for tr in traces if tr.events["consolidation"] and before[tr.index].long_mem.size >= capacity)
memory = copy.deepcopy(before[t])
with torch.inference_mode():
    memory.match_memory(traces[t].key, traces[t].selection)
long_usage = memory.long_mem.usage().flatten()  # L
lowest, _ = long_usage.topk(memory.long_mem.size - capacity, largest=False, sorted=True)
survived = long_usage > lowest[-1]  # L: strictly more used than the last one dropped
kept = int(survived.sum())
torch.testing.assert_close(before[t + 1].long_mem.key[:, :, :kept], memory.long_mem.key[:, :, survived])
assert before[t + 1].long_mem.size == kept + P
print(f"frame {t}: long-term memory held {memory.long_mem.size}, kept the {kept} most used, added {P}: "
      f"{before[t + 1].long_mem.size} <= {config.max_long_term_elements}. By hand = library.")

# %% [markdown]
# ## 6. Memory over the whole video
#
# Sizes after every frame, with the events that change them. Pruning is not a trace event of its
# own; we read it off the sizes: on a consolidation frame, long-term memory grows by P unless it
# was pruned first.

# %%
frames = [tr.index for tr in traces]
working = [tr.working_size for tr in traces]
long_term = [tr.long_term_size for tr in traces]
per_frame = [{**tr.events,
              "pruning": tr.events["consolidation"] and before[tr.index].long_mem.size + P > tr.long_term_size}
             for tr in traces]
events = viz.events_by_name(per_frame, names=["consolidation", "pruning"])  # memory frames: Sec. 2
print({name: len(frames_) for name, frames_ in events.items()})
viz.memory_over_time(frames, working, long_term, events=events)

# %% [markdown]
# ## 7. Why memory stays bounded
#
# Working memory never holds more than T<sub>max</sub> frames (it is consolidated as soon as it reaches them) and
# long-term memory never more than LT<sub>max</sub> elements, so reading costs the same on frame 1 000 as on frame
# 50. Without long-term memory (`enable_long_term=False`), working memory keeps every memory frame and
# grows linearly with the video: on a long video it runs out of GPU memory, the problem XMem sets out
# to solve (XMem Sec. 1).

# %%
assert max(working) <= config.max_mid_term_frames * area
assert max(long_term) <= config.max_long_term_elements
unbounded = VideoSegmenter(net, generated_config(net, enable_long_term=False, **MEMORY))
unbounded_sizes = []
for t, frame in enumerate(video.frames):
    unbounded.step(frame, given.get(t), end=t == LENGTH - 1)
    unbounded_sizes.append(unbounded.core.memory.work_mem.size)
assert unbounded_sizes[-1] == len(memory_frames) * area  # every memory frame, kept
bound = config.max_mid_term_frames * area + config.max_long_term_elements
viz.metric_over_time(frames, {"XMem: working + long-term": np.add(working, long_term),
                              "working memory only (no long-term)": unbounded_sizes,
                              "bound: T_max x area + LT_max": [bound] * LENGTH},
                     ylabel="memory elements", title="Memory size: bounded with long-term memory")

# %% [markdown]
# **Exercises.**
# 1. Set `mem_every=1`. How often does consolidation happen now? Does the bound change?
# 2. Give object 2 a mask again on frame 9 (`segmenter.step(frame, mask)` with the label map of
#    object 2 only). Which frames become memory frames, and what happens to the others' predictions?
# 3. Count how many of the prototypes of the first consolidation survive until the end of the video.
#    Are the survivors on the objects or on the background?
# 4. Replace the usage ranking by a random choice of prototypes (copy the memory, edit by hand) and
#    compare the readout of the next frame. How much does usage matter?

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. mem_every=1: a memory frame on every frame, so working memory fills (and is consolidated) more
# often; the bound T_max x area + LT_max does not depend on mem_every.
every_frame = VideoSegmenter(net, generated_config(net, **{**MEMORY, "mem_every": 1}), trace=True)
every_traces = [every_frame.step(frame, given.get(t), end=t == LENGTH - 1).trace
                for t, frame in enumerate(video.frames)]
consolidations = sum(bool(tr.events.get("consolidation")) for tr in every_traces)
print(f"consolidations: {consolidations} with mem_every=1, "
      f"{len(events['consolidation'])} with mem_every={config.mem_every}")
assert max(tr.working_size + tr.long_term_size for tr in every_traces) <= bound

# %% [markdown]
# ## Summary
#
# * Working memory stores the key, shrinkage, selection and values of every r-th frame (`mem_every`).
# * The sensory memory is updated every frame by a GRU-like block from the decoder's features.
# * When working memory is full, its middle frames are consolidated: the most-used elements become
#   prototypes, whose values are potentiated (an affinity-weighted average of the candidates'); the
#   long-term store keeps their keys, shrinkages and values, not their selections.
# * Long-term memory drops its least-used elements when full, so memory stays bounded.
#
# ## References
#
# * H. K. Cheng, A. G. Schwing, "XMem: Long-Term Video Object Segmentation with an Atkinson-Shiffrin
#   Memory Model", ECCV 2022 (working, sensory and long-term memory).
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529, Sec. 3.4 (memory every five frames at inference).
# * Library: `qmvos_lab/inference/memory_manager.py`, `qmvos_lab/inference/memory_store.py`.
