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
# # 01 · Keys and similarity: how XMem reads its memory
#
# **Goals.** By the end of this notebook you will have
# 1. run the key encoder on a frame and seen its three outputs: the key, the shrinkage and the selection,
# 2. computed XMem's anisotropic L2 similarity by hand on a tiny tensor and checked it against
#    `qmvos_lab.model.memory_read.get_similarity`,
# 3. expanded the square into three matrix products (how the library computes it),
# 4. recovered plain L2 and the dot product as special cases,
# 5. normalised it with the top-k softmax and read the memory out,
# 6. looked at where one pixel of a real frame looks in memory, through a trained network.
#
# **Paper.** XMem (Cheng & Schwing, ECCV 2022), Sec. 3.2 "Memory reading", XMem Eq. 1–3, and the
# key projection of Fig. 3. QMVOS (arXiv 2403.11529) keeps this memory reading unchanged (QMVOS Sec. 3.1).
#
# **The idea.** Every frame is encoded once into a *key*: a C<sup>k</sup>-dimensional vector at each position of
# a stride-16 grid. Memory frames also store a per-object *value*. To segment a new (query) frame,
# each of its positions compares its key with every key in memory, turns the similarities into
# weights that sum to one, and reads out the weighted average of the memory values. The decoder
# (notebook 03) turns that readout into a mask.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a network trained for a few iterations only
PRESET = "cpu-tiny"  # the CPU training preset of the cached network
LENGTH = 10  # frames of the generated video of Sec. 6 (cheap in both modes)

# %%
# %matplotlib inline
import math

import numpy as np
import torch

from qmvos_lab import viz, zoo
from qmvos_lab.eval.videos import generated_config
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.inference.preprocess import pad_to_multiple, to_image_tensor
from qmvos_lab.model.memory_read import get_similarity, readout, softmax_affinity

torch.manual_seed(0)
torch.set_printoptions(precision=3, sci_mode=False)

# %% [markdown]
# ## 1. The key encoder: key, shrinkage, selection
#
# `encode_key` runs the backbone (a ResNet-18 in the "small" network, ResNet-50 as released) on a frame and
# returns multi-scale features f16, f8, f4 (strides 16, 8, 4; the decoder uses all three) and, from
# f16, three 3x3-convolution heads (`KeyProjection`):
#
# * the **key** k (C<sup>k</sup> channels; 32 here, 64 as released);
# * the **shrinkage** s = d² + 1 ≥ 1 (one channel): how *sharp* a memory element is. It multiplies
#   the similarity, so a large s makes that element win or lose decisively;
# * the **selection** e = sigmoid(·) ∈ (0, 1) (C<sup>k</sup> channels): which key channels the *query*
#   cares about at this position.
#
# A memory element keeps its shrinkage; a query position brings its selection.

# %%
net = zoo.trained("xmem-small", PRESET)
video = generate_video(SyntheticConfig(num_objects=3, length=LENGTH), seed=7)
print("frames", video.frames.shape, "objects", int(video.labels.max()))

image, pad = pad_to_multiple(to_image_tensor(video.frames[0]), 16)  # 3 x H x W, ImageNet-normalised
with torch.inference_mode():
    key, shrinkage, selection, f16, f8, f4 = net.encode_key(image[None])  # a batch of one frame
for name, x in [("key", key), ("shrinkage", shrinkage), ("selection", selection), ("f16", f16), ("f8", f8),
                ("f4", f4)]:
    print(f"{name:10s} {tuple(x.shape)}")

# %% [markdown]
# The two extra heads, by hand from f16, against what `encode_key` returned:

# %%
with torch.inference_mode():
    by_hand_shrinkage = net.key_proj.d_proj(f16) ** 2 + 1  # 1 x 1 x h x w
    by_hand_selection = torch.sigmoid(net.key_proj.e_proj(f16))  # 1 x Ck x h x w
torch.testing.assert_close(by_hand_shrinkage, shrinkage)
torch.testing.assert_close(by_hand_selection, selection)
assert shrinkage.min() >= 1 and 0 < selection.min() and selection.max() < 1
viz.show_heatmaps(torch.stack([shrinkage[0, 0], selection[0].mean(0)]),
                  column_titles=["shrinkage s", "mean selection e"], background=video.frames[0],
                  shared_scale=False, cmap="viridis",
                  suptitle="Key projection of frame 0 (stride-16 grid over the frame)")

# %%
viz.readout_channels(key, channels=8)  # the first 8 of the key's channels

# %% [markdown]
# ## 2. The anisotropic L2 similarity, by hand (XMem Eq. 3)
#
# For memory element i (key k<sub>i</sub>, shrinkage s<sub>i</sub>) and query position j (key q<sub>j</sub>,
# selection e<sub>j</sub>):
#
# $$S(\mathbf{k}, \mathbf{q})_{ij} = -\frac{s_i}{\sqrt{C^k}} \sum_{c=1}^{C^k} e_{cj}\,(k_{ci} - q_{cj})^2 .$$
#
# A tiny example: C<sup>k</sup> = 3 channels, N = 4 memory elements, P = 2 query positions, batch of one.
# Layouts are those of the library: channels first, positions last (`B x Ck x N`).

# %%
Ck, N, P = 3, 4, 2
mk = torch.randn(1, Ck, N)  # memory keys          B x Ck x N
ms = 1 + torch.rand(1, 1, N) * 2  # shrinkage (>= 1) B x 1 x N
qk = torch.randn(1, Ck, P)  # query keys           B x Ck x P
qe = torch.rand(1, Ck, P)  # selection in (0, 1)   B x Ck x P

by_hand = torch.zeros(1, N, P)
for i in range(N):
    for j in range(P):
        squares = sum(qe[0, c, j] * (mk[0, c, i] - qk[0, c, j]) ** 2 for c in range(Ck))
        by_hand[0, i, j] = -ms[0, 0, i] * squares / math.sqrt(Ck)

similarity = get_similarity(mk, ms, qk, qe)  # B x N x P
torch.testing.assert_close(similarity, by_hand)
similarity

# %% [markdown]
# ## 3. The expansion into matrix products
#
# The double loop is N·P·C<sup>k</sup> scalar operations; on a real frame N is tens of thousands. Expanding the
# square turns everything into matrix products (what `get_similarity` does):
#
# $$-\sum_c e_{cj}(k_{ci} - q_{cj})^2 = -\underbrace{(\mathbf{k}^{\circ 2})^\top \mathbf{e}}_{N\times P}
#   + 2\,\underbrace{\mathbf{k}^\top(\mathbf{q}\circ\mathbf{e})}_{N\times P}
#   - \underbrace{\textstyle\sum_c e_{cj} q_{cj}^2}_{1\times P},$$
#
# then multiplied by s<sub>i</sub> (a row scale) and divided by √C<sup>k</sup>.

# %%
a_sq = mk.transpose(1, 2).pow(2) @ qe  # B x N x P
two_ab = 2 * mk.transpose(1, 2) @ (qk * qe)  # B x N x P
b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)  # B x 1 x P (broadcast over the memory axis)
expanded = (-a_sq + two_ab - b_sq) * ms.transpose(1, 2) / math.sqrt(Ck)  # B x N x P
torch.testing.assert_close(expanded, similarity)

# %% [markdown]
# ## 4. Plain L2 and the dot product as special cases
#
# * **s = 1, e = 1** (no shrinkage, no selection): S is the negative squared Euclidean distance,
#   −‖k<sub>i</sub> − q<sub>j</sub>‖² / √C<sup>k</sup> (STCN's similarity).
# * Passing `None` for the selection means e = 1 *and* drops the −‖q<sub>j</sub>‖² term, as upstream does: it is
#   the same for every memory element i, so the softmax over i (next section) does not change.
# * If every memory key has the same norm (e.g. unit keys), −‖k<sub>i</sub>‖² is constant along i as well, and
#   what is left is the **dot product** 2 k<sub>i</sub>ᵀq<sub>j</sub> / √C<sup>k</sup>: the attention of the
#   Transformer (STM's similarity), with a temperature.

# %%
ones_s, ones_e = torch.ones(1, 1, N), torch.ones(1, Ck, P)
l2 = -torch.cdist(mk.transpose(1, 2), qk.transpose(1, 2)) ** 2 / math.sqrt(Ck)  # B x N x P
torch.testing.assert_close(get_similarity(mk, ones_s, qk, ones_e), l2)

without_q_term = get_similarity(mk, None, qk, None)  # e = 1, and -||q||^2 dropped
assert not torch.allclose(without_q_term, l2)  # the values differ by a per-column constant ...
torch.testing.assert_close(without_q_term.softmax(dim=1), l2.softmax(dim=1))  # ... the weights do not

unit_keys = mk / mk.norm(dim=1, keepdim=True)  # every memory key has norm 1
dot = 2 * unit_keys.transpose(1, 2) @ qk / math.sqrt(Ck)  # B x N x P
torch.testing.assert_close(get_similarity(unit_keys, None, qk, None).softmax(dim=1), dot.softmax(dim=1))
print("plain L2 and the dot product are special cases: checked")

# %% [markdown]
# ## 5. Top-k softmax and readout (XMem Eq. 2 and XMem Eq. 1)
#
# The similarities of one query position j (a column) become weights over the memory axis:
# W<sub>ij</sub> = softmax<sub>i</sub>(S<sub>ij</sub>) (XMem Eq. 2). At inference XMem keeps only the k largest
# similarities of each column (k = 30 by default) and gives the others weight exactly 0: the readout
# ignores the long tail of weakly similar elements, and memory can grow without diluting the weights.
# `softmax_affinity(..., return_usage=True)` also returns each element's **usage**, Σ<sub>j</sub> W<sub>ij</sub>: how
# much the frame relied on it. Usage decides what long-term memory keeps (notebook 02).
#
# Then the readout of position j is the weighted average of the memory values (XMem Eq. 1):
# readout<sub>j</sub> = Σ<sub>i</sub> W<sub>ij</sub> v<sub>i</sub>, i.e. `V @ W` with V: C<sup>v</sup> x N.

# %%
top_k = 2
affinity, usage = softmax_affinity(similarity, top_k=top_k, return_usage=True)  # B x N x P, B x N

values, indices = similarity.topk(top_k, dim=1)  # B x k x P
weights = values.exp() / values.exp().sum(dim=1, keepdim=True)  # softmax over the k kept
by_hand = torch.zeros_like(similarity).scatter_(1, indices, weights)  # zeros elsewhere
torch.testing.assert_close(affinity, by_hand)
torch.testing.assert_close(usage, affinity.sum(dim=2))
torch.testing.assert_close(affinity.sum(dim=1), torch.ones(1, P))  # each column sums to one
assert ((affinity > 0).sum(dim=1) == top_k).all()

Cv = 5
mv = torch.randn(1, Cv, N)  # memory values        B x Cv x N
read = readout(affinity, mv)  # B x Cv x P
torch.testing.assert_close(read, torch.einsum("bcn,bnp->bcp", mv, affinity))
print("usage of each memory element:", usage)

# %%
viz.show_heatmaps(torch.stack([similarity[0], softmax_affinity(similarity)[0], affinity[0]]),
                  column_titles=["similarity S", "softmax W (all)", f"top-{top_k} softmax W"],
                  shared_scale=False, xlabel="query position j", ylabel="memory element i",
                  suptitle="Tiny example: XMem Eq. 3 -> XMem Eq. 2")

# %% [markdown]
# ## 6. One pixel of a real frame, against its memory
#
# Now the same computation inside a running network. `VideoSegmenter(net, config, trace=True)`
# records, for every frame, its key, shrinkage and selection, and the top-k affinity of its grid
# positions over memory (`result.trace.affinity`, one `GroupAffinity` per object group: the objects
# given on the same frame share their keys, hence their affinity).
#
# We store a memory frame every 3 frames (`mem_every=3`): frames 0, 3 and 6 are in working memory
# when the last frame is segmented. `generated_config(net, ...)` resizes the frame to the size the
# network's training recipe segments generated videos at, `net.inference_size`: the CPU presets
# train on crops that show objects at twice their size, so 192 x 320 (a 12 x 20 grid) instead of the
# frame's own 96 x 160 (6 x 10).

# %%
config = generated_config(net, mem_every=3)
segmenter = VideoSegmenter(net, config, trace=True)
given = video.given_masks()
results = [segmenter.step(frame, given.get(t), end=t == len(video.frames) - 1) for t, frame in enumerate(video.frames)]
query = results[-1].trace  # the last frame: segmented, not stored
memory_frames = results[-2].trace.working_frames  # working memory as the last frame found it
group = query.affinity[0]  # object group 0: every object was given on frame 0
height, width = query.grid
print("memory frames", memory_frames, "| grid", query.grid, "| traced pixels", len(query.pixels),
      "| affinity", tuple(group.indices.shape), "over", group.working, "working-memory elements")

# %% [markdown]
# Pick the query pixel at the centre of object 1 in the last frame, and check the trace against the
# formula: stack the keys and shrinkages of the memory frames (as the memory manager stored them),
# compute XMem Eq. 3 with the query frame's key and selection, and take the top-k softmax.

# %%
rows, cols = np.nonzero(video.labels[-1] == 1)
pixel = (int(rows.mean() * height / video.labels.shape[1]), int(cols.mean() * width / video.labels.shape[2]))
p = int(((query.pixels == torch.tensor(pixel)).all(dim=1)).nonzero())  # its row among the traced pixels

mem_key = torch.stack([results[t].trace.key for t in memory_frames], dim=2)  # 1 x Ck x T x h x w
mem_shrinkage = torch.stack([results[t].trace.shrinkage for t in memory_frames], dim=2)  # 1 x 1 x T x h x w
S = get_similarity(mem_key, mem_shrinkage, query.key, query.selection)  # 1 x (T h w) x (h w)
W = softmax_affinity(S, top_k=config.top_k)  # 1 x (T h w) x (h w)
column = W[0, :, pixel[0] * width + pixel[1]]  # T h w: the weights of our pixel
torch.testing.assert_close(column, group.dense()[p], rtol=1e-4, atol=1e-5)
print(f"query pixel {pixel}: {int((column > 0).sum())} non-zero weights of {column.numel()}; "
      f"trace and formula agree")

# %%
viz.affinity_over_memory(column.view(len(memory_frames), height, width), video.frames[memory_frames], pixel,
                         video.frames[-1], [f"memory frame {t}" for t in memory_frames])

# %% [markdown]
# Top-k against the plain softmax for the same pixel: the plain softmax spreads some weight over
# every element; top-k cuts that tail to zero. How much of the pixel's weight lands on its own
# object in memory? (In smoke mode the network has trained for a few iterations only, so the
# answer may be poor: this notebook shows the mechanism, not the quality.)

# %%
dense = softmax_affinity(S)[0, :, pixel[0] * width + pixel[1]]  # T h w, no top-k
cell = video.labels.shape[1] // height  # frame pixels per grid cell (8 at 192 x 320, 16 at the frame's own size)
on_object = torch.from_numpy(np.stack([video.labels[t, cell // 2::cell, cell // 2::cell] == 1
                                       for t in memory_frames])).flatten()  # T h w: cell centres on object 1
print(f"weight on object 1 in memory: top-k {column[on_object].sum():.2f}, plain softmax {dense[on_object].sum():.2f}")
viz.show_heatmaps(torch.stack([dense, column]).view(2, len(memory_frames), height, width),
                  row_titles=["plain softmax", f"top-{config.top_k}"],
                  column_titles=[f"memory frame {t}" for t in memory_frames], background=video.frames[memory_frames],
                  colorbar_label="affinity weight", suptitle=f"Affinity of query pixel {pixel} of the last frame")

# %% [markdown]
# **Exercises.**
# 1. Set the shrinkage of one memory element to 10 in the tiny example. How do the columns of the
#    softmax change? Why is a large shrinkage called "sharp"?
# 2. Replace the query frame's selection by ones (`get_similarity(mem_key, mem_shrinkage, query.key,
#    torch.ones_like(query.selection))`). Does the pixel's top-k set change? By how many elements?
# 3. Plot the fraction of the pixel's weight on its own object against k (1 ... 200) for the top-k
#    softmax. Where does it saturate?
# 4. Show that `get_similarity(mk, None, qk, None)` and `get_similarity(mk, torch.ones(1, 1, N), qk,
#    torch.ones(1, Ck, P))` differ by exactly ‖q<sub>j</sub>‖² / √C<sup>k</sup> in every column.

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. Shrinkage 10 on memory element 0: its (negative) distance term is scaled up, so its similarity
# falls off ten times faster with distance and it only receives weight from queries very close to it:
# a sharp peak. Its row of the softmax, before and after:
sharp = ms.clone()
sharp[0, 0, 0] = 10.0
before = softmax_affinity(get_similarity(mk, ms, qk, qe))[0]  # N x P
after = softmax_affinity(get_similarity(mk, sharp, qk, qe))[0]
print("element 0's weight per query position, shrinkage", round(float(ms[0, 0, 0]), 2), ":",
      before[0].numpy().round(3), "| shrinkage 10:", after[0].numpy().round(3))
torch.testing.assert_close(after.sum(0), torch.ones(P))  # still a distribution over the memory

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. The pixel's top-k set with the selection replaced by ones.
S_ones = get_similarity(mem_key, mem_shrinkage, query.key, torch.ones_like(query.selection))
column_ones = softmax_affinity(S_ones, top_k=config.top_k)[0, :, pixel[0] * width + pixel[1]]
kept = set((column > 0).nonzero().flatten().tolist())
kept_ones = set((column_ones > 0).nonzero().flatten().tolist())
print(f"{len(kept - kept_ones)} of the {len(kept)} top-{config.top_k} elements change without the selection")

# %% jupyter={"source_hidden": true} tags=["solution"]
# 3. The pixel's weight on its own object against k.
ks = [k for k in (1, 2, 5, 10, 20, 30, 50, 100, 200) if k <= S.shape[1]]
on_own = [float(softmax_affinity(S, top_k=k)[0, :, pixel[0] * width + pixel[1]][on_object].sum()) for k in ks]
viz.metric_over_time(ks, {"weight on object 1": on_own}, ylabel="share of the pixel's weight",
                     title="Top-k: weight on the pixel's own object against k")

# %% jupyter={"source_hidden": true} tags=["solution"]
# 4. Without shrinkage and selection the -||q_j||^2 term is dropped: the two differ by ||q_j||^2 / sqrt(Ck).
plain = get_similarity(mk, None, qk, None)
full = get_similarity(mk, torch.ones(1, 1, N), qk, torch.ones(1, Ck, P))
torch.testing.assert_close(plain - full, (qk.pow(2).sum(1, keepdim=True) / math.sqrt(Ck)).expand_as(plain))
print("difference per column:", (plain - full)[0, 0].numpy().round(4), "= ||q_j||^2 / sqrt(Ck)")

# %% [markdown]
# ## Summary
#
# * The key projection gives every stride-16 position a key, a shrinkage s ≥ 1 (for memory) and a
#   selection e in (0, 1) (for queries).
# * The anisotropic L2 similarity (XMem Eq. 3) weighs each channel by the query's selection and the
#   whole term by the memory element's shrinkage; L2 and the dot product are special cases.
# * A (top-k) softmax over the memory (XMem Eq. 2) turns similarities into affinities, and the
#   readout is the affinity-weighted sum of memory values (XMem Eq. 1). QMVOS keeps this reading.
#
# ## References
#
# * H. K. Cheng, A. G. Schwing, "XMem", ECCV 2022, Sec. 3.2 (memory reading).
# * H. K. Cheng, Y.-W. Tai, C.-K. Tang, "Rethinking Space-Time Networks with Improved Memory
#   Coverage for Efficient Video Object Segmentation", NeurIPS 2021 (STCN: L2 similarity, top-k).
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529, Sec. 3.1.
# * Library: `qmvos_lab/model/encoders.py`, `qmvos_lab/model/memory_read.py`.
