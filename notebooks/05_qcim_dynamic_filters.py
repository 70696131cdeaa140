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
# # 05 · The QCIM and queries as dynamic filters
#
# **Goals.** By the end of this notebook you will have
# 1. serialised the memory readout of all objects into one sequence and checked its object-major
#    order by hand,
# 2. recomputed the QCIM block (QMVOS Eq. 3) by hand, its self-attention and its cross-attention
#    (QMVOS Eq. 4) from the raw projection weights, and checked the weights the library returns,
# 3. produced every object's mask logits as the dot product of its refined query with the
#    decoder's stride-4 feature, logit = <q, g4>, and matched the library's logits exactly,
# 4. compared this *dynamic filter* with XMem's fixed prediction conv,
# 5. looked at where a trained network's queries look on a generated video frame.
#
# **Paper.** QMVOS (arXiv 2403.11529) Sec. 3.3 (Query-Content Interaction Module): QMVOS Eq. 3 (the
# block), QMVOS Eq. 4 (its cross-attention) and the section's last paragraph (the queries as dynamic
# filters); XMem (Cheng & Schwing, ECCV 2022) for the decoder, which QMVOS Sec. 3.4 keeps.
#
# **Where the QCIM sits.** Notebook 04 built one query per object with the SIM. The decoder of
# XMem fuses each object's memory readout with the frame's features into g16, then upsamples to
# g8 and g4. QMVOS lets the queries attend to each other and then to the serialised readout of
# *all* objects (the QCIM block, QMVOS Eq. 3, whose cross-attention is QMVOS Eq. 4), and then uses
# each refined query as the weights of a 1 x 1 filter on its object's g4: that replaces XMem's
# prediction conv.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: networks trained for a few iterations, a shorter video
PRESET = "cpu-tiny"  # the CPU training preset of the cached networks
SEED = 11  # the generated video
FRAMES = 6 if SMOKE else 20  # frames of the video segmented in the last section

# %%
# %matplotlib inline
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from qmvos_lab import viz, zoo
from qmvos_lab.eval.videos import generated_config
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.inference.preprocess import resize_image, resize_masks, resized_shape, to_image_tensor
from qmvos_lab.model import aggregate
from qmvos_lab.model.qcim import serialise_readout

# %% [markdown]
# ## 1. One frame through the stages
#
# We segment frame 1 of a generated video from a memory that holds frame 0 and its given masks,
# calling the network's stages as the training pass does (`qmvos_lab/train/clip_pass.py`):
# keys of both frames, frame 0's values and sensory memory, frame 1's memory readout, and the queries
# from frame 0's masks (the SIM of notebook 04). As in notebook 04, the frames are fed at the size
# the network was trained for, `net.inference_size` (192 px for the CPU presets).

# %%
video = generate_video(SyntheticConfig(num_objects=3, length=FRAMES), seed=SEED)
print("objects first appear on frames", video.first_frame)
net = zoo.trained("qmvos-small", PRESET)  # from the cache (trained on first use)
xmem = zoo.trained("xmem-small", PRESET)  # XMem of the same size, for section 5
_ = torch.set_grad_enabled(False)  # from here on, inference only

shape = resized_shape(*video.frames[0].shape[:2], net.inference_size)  # 192 x 320 for cpu-tiny
assert xmem.inference_size == net.inference_size  # both trained with the same recipe
frames = torch.stack([resize_image(to_image_tensor(f), shape) for f in video.frames[:2]])[None]  # 1 x 2 x 3 x H x W
labels0 = torch.from_numpy(video.labels[0]).long()
num_objects = int(labels0.max())
masks0 = torch.stack([labels0 == i for i in range(1, num_objects + 1)]).float()  # N x H0 x W0
masks0 = resize_masks(masks0, shape)[None]  # 1 x N x H x W, nearest

key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)  # key: 1 x Ck x 2 x h x w; f16: 1 x 2 x C x h x w
hidden = torch.zeros(1, num_objects, net.hidden_dim, *key.shape[-2:])  # the sensory memory starts empty
value, hidden = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks0)  # 1 x N x Cv x h x w
queries = net.init_queries((f16[:, 0], f8[:, 0], f4[:, 0]), masks0)  # 1 x N x C (QMVOS Sec. 3.2)
readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1],
                          value.unsqueeze(3), top_k=30)  # 1 x N x Cv x h x w
features = (f16[:, 1], f8[:, 1], f4[:, 1])
out = net.segment(features, readout, hidden, queries=queries, need_weights=True)
print("readout", tuple(readout.shape), "| queries", tuple(queries.shape), "| logits", tuple(out.logits.shape))

# %% [markdown]
# The same stages as a diagram, with the shapes measured by a forward pass of this network at this
# size (`viz.architecture`; orange: QMVOS's parts). This notebook is about the lower right: the QCIM
# and the dynamic filters.

# %%
viz.architecture(net, *shape, objects=num_objects)

# %% [markdown]
# ## 2. The serialised readout
#
# The decoder's first step (`decoder.decode`, as in XMem) fuses each object's readout and sensory
# memory with F16 into g16 (B x N x 512 x h x w as released), then upsamples to g8 and g4. The QCIM
# projects g16 to the query width C (`g16_proj`, a 1 x 1 conv shared by all objects) and flattens
# the objects and positions of the grid into one sequence of N·h·w tokens, **object-major**: all of
# object 1's positions (row by row), then all of object 2's, ... (`serialise_readout`).
#
# The paper calls this sequence M ∈ R<sup>NHW × Cv</sup>, "the serialized memory readout". The released
# code (and the library) serialises `g16_proj(g16)` instead of the raw readout: the readout after the
# decoder's fusion with the sensory memory and F16, projected to the query width. That is a
# difference between the paper's text and the code, which this kit follows.

# %%
g16, g8, g4 = net.decoder.decode(*features, hidden, readout)
projected = net.decoder.g16_proj(g16)  # 1 x N x C x h x w
content = serialise_readout(projected)  # 1 x (N h w) x C
_, n, channels, height, width = projected.shape
print("g16", tuple(g16.shape), "g8", tuple(g8.shape), "g4", tuple(g4.shape), "-> content", tuple(content.shape))

tokens = torch.stack([projected[0, i, :, y, x] for i in range(n) for y in range(height) for x in range(width)])
torch.testing.assert_close(content[0], tokens)  # token (i h + y) w + x is object i at (y, x)
print(f"token s belongs to object s // {height * width}; objects are contiguous blocks of {height * width}")

# %% [markdown]
# ## 3. The QCIM block (QMVOS Eq. 3) and its cross-attention (QMVOS Eq. 4)
#
# The paper writes the QCIM as a post-norm Transformer decoder layer (QMVOS Eq. 3):
#
# $$X' = \mathrm{LN}(\mathrm{SA}(X_{sim}) + X_{sim}), \quad
#   X'' = \mathrm{LN}(\mathrm{CA}(X', M) + X'), \quad
#   X_{qcim} = \mathrm{LN}(\mathrm{FFN}(X'') + X'')$$
#
# and its cross-attention as (QMVOS Eq. 4)
#
# $$\mathrm{CA}(X', M) = \mathrm{Softmax}(Q_X K_M^\top)\,V_M$$
#
# printed with one head and without the 1/√d of its own self-attention (QMVOS Eq. 2). The released
# code (`model/qcim.py: cross_attention`) uses torch's multi-head attention: 8 heads of d = C/8
# channels, each *scaled* by 1/√d, and an output projection. Every object's query may read every
# object's features. With `need_weights=True`, `segment` returns both attentions, per head, reshaped
# for pictures: `"self"` B x N_query x heads x N_query and `"cross"` B x N_query x heads x
# N_object x h x w. We redo the whole block by hand from the packed projection weights, without
# calling the attention modules.

# %%
qcim = net.decoder.QCIM  # model/qcim.py: QueryContentInteraction


def multi_head(module, queries, keys):
    """Scaled multi-head attention from `module`'s raw weights: B x L x C attend to B x S x C.
    Returns B x L x C (after the output projection) and the weights B x heads x L x S."""
    heads = module.num_heads
    head_dim = queries.shape[-1] // heads
    w_q, w_k, w_v = module.in_proj_weight.chunk(3)  # C x C each
    b_q, b_k, b_v = module.in_proj_bias.chunk(3)

    def split_heads(t):  # B x L x C -> B x heads x L x C/heads
        return t.view(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)

    q = split_heads(queries @ w_q.T + b_q)  # B x heads x L x d
    k = split_heads(keys @ w_k.T + b_k)  # B x heads x S x d
    v = split_heads(keys @ w_v.T + b_v)
    weights = torch.softmax(q @ k.transpose(-2, -1) / head_dim ** 0.5, dim=-1)  # B x heads x L x S
    attended = (weights @ v).transpose(1, 2).flatten(2)  # B x L x C, heads concatenated
    return attended @ module.out_proj.weight.T + module.out_proj.bias, weights


def layer_norm(x, norm):  # LayerNorm over channels, written out
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


heads = qcim.cross_attn.num_heads
self_out, self_weights = multi_head(qcim.self_attn, queries, queries)
x = layer_norm(queries + self_out, qcim.norm2)  # X' (dropout is off in eval mode)
attended, cross_weights = multi_head(qcim.cross_attn, x, content)  # QMVOS Eq. 4, as released: 1 x N x C
x = layer_norm(x + attended, qcim.norm1)  # X''
ffn = F.relu(x @ qcim.linear1.weight.T + qcim.linear1.bias) @ qcim.linear2.weight.T + qcim.linear2.bias
refined = layer_norm(x + ffn, qcim.norm3)  # X_qcim

attention = out.attention
torch.testing.assert_close(attention["self"], self_weights.transpose(1, 2))  # 1 x N x heads x N
cross_by_hand = cross_weights.view(1, heads, n, n, height, width).transpose(1, 2)  # 1 x Nq x heads x No x h x w
torch.testing.assert_close(attention["cross"], cross_by_hand)
torch.testing.assert_close(out.queries, refined)
torch.testing.assert_close(attention["self"].sum(-1), torch.ones(1, n, heads))  # each row sums to 1 ...
torch.testing.assert_close(attention["cross"].sum(dim=(-3, -2, -1)), torch.ones(1, n, heads))  # ... over all objects
print("self", tuple(attention["self"].shape), "| cross", tuple(attention["cross"].shape))

# %% [markdown]
# How much of each query's attention lands on each object's readout (the cross-attention summed
# over the grid, `viz.attention_mass`; heads averaged)? A diagonal matrix would mean each query reads
# its own object only; the off-diagonal mass is what it learns about the others.

# %%
names = [f"object {i + 1}" for i in range(n)]
viz.attention_mass_matrix(viz.attention_mass(attention["cross"][0]), [f"query {i + 1}" for i in range(n)], names)

# %% [markdown]
# ## 4. Queries as dynamic filters: logit = <q, g4>
#
# XMem predicts each object's logits with a 3 x 3 conv on relu(g4), the same weights for every
# object and every video. The paper (last paragraph of Sec. 3.3) uses the queries "as dynamic
# filters ... by dot-producting them with the feature output from the decoder". As released (and in
# `model/qcim.py: dynamic_filter_logits`), QMVOS drops XMem's conv (`decoder.pred` does not exist in
# it) and uses each refined query as a 1 x 1 filter on its own object's stride-4 feature g4, without
# bias or scale:
#
# $$\ell_i(x) = \langle q_i, g4_i(x) \rangle$$
#
# Then, as in XMem, the stride-4 logits are upsampled x4, turned into probabilities, and aggregated
# with the background (soft aggregation, notebook 03). We redo it all and compare with `segment`.

# %%
filters = out.queries  # the refined queries (equal to ours above up to float rounding)
logits4 = torch.einsum("bnc,bnchw->bnhw", filters, g4)  # 1 x N x H/4 x W/4
logits = F.interpolate(logits4, scale_factor=4, mode="bilinear", align_corners=False)  # 1 x N x H x W
agg_logits, prob = aggregate(torch.sigmoid(logits), dim=1, return_logits=True)  # 1 x (N + 1) x H x W
torch.testing.assert_close(agg_logits, out.logits)
torch.testing.assert_close(prob, out.prob)

# a dynamic filter is a convolution whose weights are computed: object 1's logits as a 1 x 1 conv
as_conv = F.conv2d(g4[:, 0], filters[0, 0].view(1, channels, 1, 1))  # 1 x 1 x H/4 x W/4
torch.testing.assert_close(as_conv[:, 0], logits4[:, 0])
assert not hasattr(net.decoder, "pred")
print("logits = <q, g4>: equal to the library's; probabilities", tuple(out.prob.shape), "(background first)")

# %%
viz.show_heatmaps(torch.cat([logits4[0], out.object_prob[0, :, ::4, ::4]]).view(2, n, *logits4.shape[-2:]),
                  row_titles=["<q_i, g4_i>", "probability"], column_titles=names, shared_scale=False,
                  cmap="viridis", background=video.frames[1],
                  suptitle="Frame 1: each object's query as a filter on its own g4")

# %% [markdown]
# ## 5. Against XMem's prediction conv
#
# The XMem network of the same size, trained the same way, computes its logits from the same kind of
# g4 with one fixed conv. We reproduce them from its `decoder.decode` and `decoder.pred`.

# %%
x_key, x_shrinkage, x_selection, x16, x8, x4 = xmem.encode_key(frames)
x_hidden = torch.zeros(1, num_objects, xmem.hidden_dim, *x_key.shape[-2:])
x_value, x_hidden = xmem.encode_value(frames[:, 0], x16[:, 0], x_hidden, masks0)
x_readout = xmem.read_memory(x_key[:, :, 1], x_selection[:, :, 1], x_key[:, :, :1], x_shrinkage[:, :, :1],
                             x_value.unsqueeze(3), top_k=30)
x_features = (x16[:, 1], x8[:, 1], x4[:, 1])
x_out = xmem.segment(x_features, x_readout, x_hidden)

_, _, x_g4 = xmem.decoder.decode(*x_features, x_hidden, x_readout)  # 1 x N x C4 x H/4 x W/4
x_logits4 = xmem.decoder.pred(F.relu(x_g4.flatten(0, 1))).view(1, num_objects, *x_g4.shape[-2:])  # one conv for all
x_logits = F.interpolate(x_logits4, scale_factor=4, mode="bilinear", align_corners=False)
torch.testing.assert_close(aggregate(torch.sigmoid(x_logits), dim=1, return_logits=True)[0], x_out.logits)

pred = xmem.decoder.pred
pd.DataFrame([
    {"": "XMem: decoder.pred", "weights": f"{tuple(pred.weight.shape)} + bias {tuple(pred.bias.shape)}",
     "parameters of the filter itself": pred.weight.numel() + pred.bias.numel(), "per object": "shared",
     "per frame": "fixed", "input": "relu(g4), 3 x 3 window"},
    {"": "QMVOS: queries", "weights": f"N x {channels} (computed)", "parameters of the filter itself": 0,
     "per object": "its own", "per frame": "recomputed", "input": "g4, one position"},
]).set_index("")

# %% [markdown]
# The QMVOS filters of the three objects on this frame, each scaled to unit length. They differ
# from object to object; XMem has one filter for all objects and tells them apart only through g4
# itself. (We do not draw XMem's filter in the same picture: the two networks were trained
# separately, so channel i of XMem's g4 and channel i of QMVOS's g4 have nothing to do with each
# other, and a side-by-side of their weights would suggest a correspondence that does not exist.)

# %%
unit_filters = F.normalize(filters[0], dim=1)  # N x C, unit length
fig = Figure(figsize=(8, 1.8), layout="constrained")
ax = fig.subplots()
shown = ax.imshow(unit_filters, aspect="auto", cmap="coolwarm", vmin=-0.5, vmax=0.5, interpolation="nearest")
ax.set_yticks(range(n), [f"QMVOS query {i + 1}" for i in range(n)])
ax.set_xlabel("channel of g4 (this network)")
ax.set_title("QMVOS's per-object prediction filters on g4, each scaled to unit length")
fig.colorbar(shown, ax=ax, label="weight / |filter|")
fig

# %%
unit = F.normalize(filters[0], dim=1)
pd.DataFrame((unit @ unit.T).numpy(), index=names, columns=names).round(2)  # cosine similarity of the filters

# %% [markdown]
# ## 6. Where the queries look, on a segmented video
#
# `VideoSegmenter(..., record_attention=True)` keeps the QCIM weights of every segmented frame.
# We segment the whole video and draw, for the last frame, each query's cross-attention (heads
# averaged) over each object's readout grid, upsampled over the frame.

# %%
segmenter = VideoSegmenter(net, generated_config(net), record_attention=True)  # at net.inference_size
given = video.given_masks()
results = [segmenter.step(image, given.get(t), end=t == len(video.frames) - 1) for t, image in enumerate(video.frames)]
last = results[-1]
print("cross-attention of the last frame:", tuple(last.attention["cross"].shape))
viz.show_frames(video.frames[-1:], ground_truth=video.labels[-1:], prediction=[last.labels],
                titles=[f"frame {last.index}"])

# %%
viz.cross_attention(last.attention["cross"], video.frames[-1], heads="mean",
                    object_labels=[f"readout of {name}" for name in names],
                    query_labels=[f"query {i + 1}" for i in range(n)])

# %%
viz.cross_attention(last.attention["cross"], video.frames[-1], query=0, heads="each",
                    object_labels=[f"readout of {name}" for name in names])

# %% [markdown]
# In smoke mode the network has trained for a few iterations only, so the maps are close to
# uniform. With the cpu-tiny network of full mode, read the attention mass matrix of section 3 again:
# how much of each query's attention stays on its own object's readout, and which heads look at the
# others? One frame is an anecdote: notebook 07 measures it over seeds and videos, and finds that the
# kit's trained queries give their own object's readout the uniform share 1/N (no preference), while
# concentrating on where the objects are.
#
# **Exercises.**
# 1. Zero the cross-attention's contribution (replace `attended` by zeros above) and compare the
#    resulting masks with the library's: how much does reading the readout change the filters?
# 2. The "f16" variant of Table 3d (`zoo.trained("qcim-f16-small")`) attends to the frame's F16
#    instead of the serialised readout. What is the shape of its `"cross"` attention, and why?
# 3. Negate one object's refined query and recompute its logits: what happens to its mask, and to
#    the others' after soft aggregation?
# 4. On a frame where two objects overlap, find the head whose attention mass on the *other*
#    object is largest (`viz.attention_mass`).

# %% [markdown]
# **Solutions** (the cells are collapsed: click to open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. The QCIM without its cross-attention's contribution (X'' = LN(X') instead of LN(CA(X', M) + X')).
x_self = layer_norm(queries + multi_head(qcim.self_attn, queries, queries)[0], qcim.norm2)  # X'
x_no_cross = layer_norm(x_self, qcim.norm1)
ffn = F.relu(x_no_cross @ qcim.linear1.weight.T + qcim.linear1.bias) @ qcim.linear2.weight.T + qcim.linear2.bias
no_cross = layer_norm(x_no_cross + ffn, qcim.norm3)
logits_no_cross = F.interpolate(torch.einsum("bnc,bnchw->bnhw", no_cross, g4), scale_factor=4, mode="bilinear",
                                align_corners=False)
prob_no_cross = aggregate(torch.sigmoid(logits_no_cross), dim=1)
changed = (prob_no_cross.argmax(1) != out.prob.argmax(1)).float().mean()
print(f"filters change by {float((no_cross - out.queries).norm() / out.queries.norm()):.2f} (relative); "
      f"{100 * float(changed):.1f} % of the pixels change label")

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. The "f16" variant's cross-attention: one image feature for all objects, so N_obj = 1 (a fresh
# network answers the question about shapes; no training needed).
from qmvos_lab.ablations import model_config  # noqa: E402
from qmvos_lab.model import build_network  # noqa: E402

torch.manual_seed(0)
f16_variant = build_network(model_config("qcim-f16", "small")).eval()
*_, v16, v8, v4 = f16_variant.encode_key(frames[:, 1])
v_hidden = torch.zeros(1, n, f16_variant.hidden_dim, *v16.shape[-2:])
v_out = f16_variant.segment((v16, v8, v4), torch.randn(1, n, f16_variant.config.value_dim, *v16.shape[-2:]), v_hidden,
                            queries=torch.randn(1, n, f16_variant.config.query_dim), need_weights=True)
print("qcim-f16 cross-attention:", tuple(v_out.attention["cross"].shape), "(B x N_query x heads x 1 x h x w)")
assert v_out.attention["cross"].shape[3] == 1

# %% jupyter={"source_hidden": true} tags=["solution"]
# 3. Negating object 1's refined query negates its logits: sigmoid(-l) = 1 - p, so its mask becomes the
# complement of what it was, and after the aggregation it competes for (and takes) pixels the others held.
negated = filters.clone()
negated[0, 0] = -negated[0, 0]
negated_logits = F.interpolate(torch.einsum("bnc,bnchw->bnhw", negated, g4), scale_factor=4, mode="bilinear",
                               align_corners=False)
negated_labels = aggregate(torch.sigmoid(negated_logits), dim=1).argmax(1)[0]
labels_before = out.prob.argmax(1)[0]
for i in range(n + 1):
    print(f"{'background' if i == 0 else f'object {i}'}: {int((labels_before == i).sum())} -> "
          f"{int((negated_labels == i).sum())} pixels")

# %% jupyter={"source_hidden": true} tags=["solution"]
# 4. Per head, the share of each query's attention that lands on the *other* objects' readouts (frame 1
# here; pick a frame with overlapping objects from section 6's `results` for the exercise proper).
mass = attention["cross"][0].sum(dim=(-2, -1))  # N_query x heads x N_obj
others_share = torch.stack([mass[q, :, [o for o in range(n) if o != q]].sum(-1) for q in range(n)])  # N_query x heads
head = int(others_share.mean(0).argmax())
print("mass on the other objects, per head (mean over queries):", others_share.mean(0).numpy().round(3),
      f"-> head {head}")

# %% [markdown]
# ## Summary
#
# * The QCIM's content M is the readout of all objects, serialised object-major into N·h·w tokens;
#   as released it is `g16_proj(g16)` (the decoder-fused readout), not the raw readout the paper
#   names.
# * The QCIM block is QMVOS Eq. 3 (self-attention, cross-attention, FFN, each with a residual and a
#   LayerNorm); its cross-attention is QMVOS Eq. 4, printed with one head and no 1/√d, released with
#   8 scaled heads and an output projection.
# * Each refined query is a 1 x 1 filter on its own object's g4: logit = <q, g4>, no bias, no scale;
#   it replaces XMem's fixed 3 x 3 prediction conv.
# * Every query may attend to every object's readout; the attention mass matrix shows how much it
#   does.
#
# ## References
#
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529: Sec. 3.3 (QCIM, QMVOS Eq. 3-4, dynamic filters), Sec. 3.4 (the XMem decoder),
#   Table 3d (what the QCIM attends to).
# * H. K. Cheng, A. G. Schwing, "XMem", ECCV 2022 (the decoder and its prediction conv).
# * A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (multi-head scaled attention).
# * Library: `qmvos_lab/model/qcim.py` (`QueryContentInteraction`, `cross_attention`,
#   `serialise_readout`, `dynamic_filter_logits`), `qmvos_lab/model/decoder.py` (`QueryDecoder`).
