# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The SIM: one query per object
#
# **Goals.** By the end of this notebook you will have
# 1. fused the backbone's F16 and F8 maps into the map that queries come from, by hand, and checked
#    it against `QMVOS.sim_feature`,
# 2. pooled that map under each object's mask into one query per object (masked average pooling),
#    by hand and with `masked_average_pooling`,
# 3. recomputed the multi-object interaction (a post-norm Transformer block over the queries) head by
#    head, and looked at its query-query attention,
# 4. switched the SIM's parts on and off as in Table 3b/3c and seen what changes: which modules
#    exist, which parameters learn from the queries, and the queries themselves.
#
# **Paper.** QMVOS (Zhou et al., ICME 2024, arXiv 2403.11529) Sec. 3.2, Eq. 1 (masked average
# pooling) and Eq. 2 (multi-object interaction); Table 3b (feature scales) and 3c (interaction).
#
# **Where the SIM sits.** XMem segments each frame by matching its pixels against a memory of
# earlier frames. QMVOS adds, for each object, a *query*: a C-dimensional vector that summarises what
# the object looks like. The Scale-aware Interaction Module (SIM) makes these queries from the
# current frame's features and the previous frame's masks; the QCIM (notebook 05) then refines them
# against the memory readout and uses them as dynamic filters that produce the masks.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: networks trained for a few iterations only
PRESET = "cpu-tiny"  # the CPU training preset of the cached network
SEED = 7  # the generated video

# %%
# %matplotlib inline
import pandas as pd
import torch
import torch.nn.functional as F

from qmvos_lab import viz, zoo
from qmvos_lab.ablations import ABLATIONS, model_config
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference.preprocess import to_image_tensor
from qmvos_lab.model import build_network
from qmvos_lab.model.sim import masked_average_pooling

# %% [markdown]
# ## 1. A frame, its objects, and the backbone's features
#
# We take the first frame of a generated video with three objects and its ground-truth masks (on
# frame 0 these are the given annotations; on later frames the SIM uses the previous prediction).
# The key encoder (a ResNet; ResNet-18 in the "small" networks) returns three feature maps:
# F4, F8 and F16 at strides 4, 8 and 16.

# %%
video = generate_video(SyntheticConfig(num_objects=3, length=4), seed=SEED)
image = video.frames[0]  # H x W x 3 uint8
labels = torch.from_numpy(video.labels[0]).long()  # H x W, 0 = background
num_objects = int(labels.max())
masks = torch.stack([labels == i for i in range(1, num_objects + 1)]).float()[None]  # 1 x N x H x W
viz.show_frames(video.frames[:1], ground_truth=video.labels[:1], titles=["frame 0 and its masks"])

# %%
net = zoo.trained("qmvos-small", PRESET)  # eval mode: dropout off, so every step below is deterministic
_ = torch.set_grad_enabled(False)  # from here on, inference only (except where a cell turns it on)
frame = to_image_tensor(image)[None]  # 1 x 3 x H x W, ImageNet-normalised
key, shrinkage, selection, f16, f8, f4 = net.encode_key(frame)
for name, x in (("frame", frame), ("F4", f4), ("F8", f8), ("F16", f16)):
    print(f"{name:5s} {tuple(x.shape)}")

# %% [markdown]
# ## 2. Scale-aware initialisation: fusing F16 and F8
#
# F16 is semantic but coarse (a 96 x 160 frame becomes a 6 x 10 grid); F8 is finer. The SIM fuses
# them into one stride-8 map (the released `simple_upsample_block`):
#
# 1. project F16 to the query width C with a 1 x 1 conv (`input_proj`),
# 2. upsample it x2 (bilinear, corners aligned), 1 x 1 conv + GroupNorm,
# 3. concatenate F8 and mix with a 1 x 1 conv + GroupNorm. There is no activation anywhere, as released.
#
# We redo the three steps with the module's own weights and compare with `net.sim_feature`.

# %%
fuse = net.simple_upsample_block  # model/sim.py: UpsampleFuse
projected = net.input_proj(f16)  # 1 x C x h16 x w16
upsampled = F.interpolate(projected, scale_factor=2, mode="bilinear", align_corners=True)  # 1 x C x h8 x w8
conv, norm = fuse.up[1], fuse.up[2]
low = F.group_norm(F.conv2d(upsampled, conv.weight), norm.num_groups, norm.weight, norm.bias, norm.eps)
conv, norm = fuse.output_conv
mixed = F.conv2d(torch.cat([low, f8], 1), conv.weight)  # 1 x C x h8 x w8 from C + C8 channels
fused = F.group_norm(mixed, norm.num_groups, norm.weight, norm.bias, norm.eps)

torch.testing.assert_close(fused, net.sim_feature(f16, f8, f4))
print("fused map", tuple(fused.shape), "= net.sim_feature(f16, f8, f4)")

# %% [markdown]
# Where is the fused map strong? The norm over channels of the projected F16 (shown at stride 8,
# nearest) and of the fused map, over the frame: the fused map has twice the resolution, so object
# boundaries are sharper.

# %%
energy = torch.stack([F.interpolate(projected, size=fused.shape[-2:], mode="nearest")[0].norm(dim=0),
                      fused[0].norm(dim=0)])  # 2 x h8 x w8
viz.show_heatmaps(energy, column_titles=["|input_proj(F16)|", "|fused F16 + F8|"], shared_scale=False,
                  background=image)

# %%
viz.readout_channels(fused[0], channels=8)

# %% [markdown]
# ## 3. Masked average pooling (Eq. 1)
#
# Each object's query is the mean of the fused map under its mask:
#
# $$q_i = \frac{\sum_{x} F(x)\, M_i(x)}{\sum_x M_i(x) + \epsilon}$$
#
# The masks are first resized to the map's grid (nearest), and, as released, ε = 5e-4 keeps an
# empty mask from dividing by zero (its query is then 0).

# %%
small = F.interpolate(masks, size=fused.shape[-2:], mode="nearest")  # 1 x N x h8 x w8
area = small.sum(dim=(-2, -1))  # 1 x N: cells of each object on the stride-8 grid
by_hand = (fused[:, None] * small[:, :, None]).sum(dim=(-2, -1)) / (area[..., None] + 5e-4)  # 1 x N x C

pooled = masked_average_pooling(fused, masks)  # 1 x N x C
torch.testing.assert_close(by_hand, pooled)
assert masked_average_pooling(fused, torch.zeros_like(masks)).abs().max() == 0  # empty mask -> zero query
print("queries before the interaction:", tuple(pooled.shape), "| cells per object:", area[0].int().tolist())

# %%
viz.show_heatmaps(small[0], column_titles=[f"object {i + 1}: {int(a)} cells" for i, a in enumerate(area[0])],
                  background=image, suptitle="The masks on the stride-8 grid the queries are pooled from")

# %% [markdown]
# ## 4. Multi-object interaction (Eq. 2)
#
# The N queries of a video then attend to each other: a post-norm Transformer block
# (`query_SelfAtt_FFN`; 8 heads, FFN 4C):
#
# $$q' = \mathrm{LN}(q + \mathrm{MHA}(q, q, q)), \qquad q'' = \mathrm{LN}(q' + \mathrm{FFN}(q'))$$
#
# so that each object's query knows about the others (useful when objects look alike). We compute
# the attention head by head from the packed projection weights of `nn.MultiheadAttention`, and
# compare with `net.sim(..., need_weights=True)`, which returns the queries and the per-head
# attention, B x heads x N x N.

# %%
queries, weights = net.sim((f16, f8, f4), masks, need_weights=True)  # 1 x N x C, 1 x heads x N x N

block = net.query_SelfAtt_FFN  # model/sim.py: QueryInteraction
attention = block.self_attn
batch, n, channels = pooled.shape
heads = attention.num_heads
head_dim = channels // heads
w_q, w_k, w_v = attention.in_proj_weight.chunk(3)  # each C x C
b_q, b_k, b_v = attention.in_proj_bias.chunk(3)


def split_heads(x):  # B x N x C -> B x heads x N x C/heads
    return x.view(batch, n, heads, head_dim).transpose(1, 2)


q, k, v = (split_heads(pooled @ w.T + b) for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
weights_by_hand = torch.softmax(q @ k.transpose(-2, -1) / head_dim ** 0.5, dim=-1)  # B x heads x N x N
attended = (weights_by_hand @ v).transpose(1, 2).reshape(batch, n, channels)  # B x N x C, heads concatenated
attended = attended @ attention.out_proj.weight.T + attention.out_proj.bias
x = block.norm1(pooled + attended)  # post-norm: residual, then LayerNorm
queries_by_hand = block.norm2(x + block.linear2(F.relu(block.linear1(x))))  # the FFN sub-layer

torch.testing.assert_close(weights_by_hand, weights)
torch.testing.assert_close(queries_by_hand, queries)
torch.testing.assert_close(weights.sum(-1), torch.ones(batch, heads, n))  # each row is a distribution
print("queries", tuple(queries.shape), "| attention", tuple(weights.shape))

# %% [markdown]
# Each panel is one head: row i is how much query i reads from each query j (rows sum to 1).

# %%
object_names = [f"obj {i + 1}" for i in range(n)]
viz.show_heatmaps(weights[0], column_titles=[f"head {h}" for h in range(heads)], xlabel="attended query (key)",
                  ylabel="query", vmin=0.0, vmax=1.0, colorbar_label="attention weight",
                  suptitle="SIM multi-object interaction (Eq. 2): query-query attention per head")

# %% [markdown]
# **Padded objects.** Training clips carry a fixed number of object slots; empty slots are marked
# invalid (`object_valid`), become a key-padding mask, and receive no attention. The valid queries
# are then exactly those of a video without the padded object.

# %%
valid = torch.tensor([[True] * (n - 1) + [False]])  # the last object is a padded slot
padded_queries, padded_weights = net.sim((f16, f8, f4), masks, valid, need_weights=True)
assert padded_weights[..., -1].abs().max() == 0  # nobody attends to the padded slot
alone, _ = net.sim((f16, f8, f4), masks[:, :-1])  # the same video without that object
torch.testing.assert_close(padded_queries[:, :-1], alone)
print("valid queries with a padded slot == queries without it")

# %% [markdown]
# ## 5. The Table 3b/3c switches
#
# `ModelConfig(sim_scales=..., sim_interaction=...)` selects what the SIM pools from and whether
# the queries interact; `qmvos_lab.ablations.ABLATIONS` names the paper's variants:

# %%
variants = ["qmvos", "sim-f16", "sim-f8", "sim-f16-f8-f4", "no-interaction"]
pd.DataFrame([{"variant": name, **ABLATIONS[name]} for name in variants]).fillna("")

# %% [markdown]
# We build each variant fresh (same seed, "small" size) and look at the SIM's modules: which exist,
# their parameters, and the stride of the map that queries are pooled from. (`input_proj` is kept
# without F16 only when the QCIM attends to F16, Table 3d.)

# %%
SIM_MODULES = ["input_proj", "f8_proj", "simple_upsample_block", "f4_fuse", "query_SelfAtt_FFN"]
networks = {}
for name in variants:
    torch.manual_seed(0)
    networks[name] = build_network(model_config(name, "small")).eval()
rows = []
for name, variant in networks.items():
    *_, v16, v8, v4 = variant.encode_key(frame)
    row = {"variant": name, "pooled from stride": frame.shape[-1] // variant.sim_feature(v16, v8, v4).shape[-1]}
    for module in SIM_MODULES:
        part = getattr(variant, module, None)
        row[module] = "-" if part is None else f"{sum(p.numel() for p in part.parameters()):,}"
    rows.append(row)
pd.DataFrame(rows).set_index("variant")

# %% [markdown]
# **Which parameters learn from the queries.** Backpropagate a loss on the queries alone (their
# squared norm, a stand-in) and see which parts of the network receive a gradient. With F8 alone the
# backbone's last stage (`layer3`, which makes F16) gets none from the SIM; without the interaction
# there is no Transformer block to train.

# %%
PARTS = {"backbone res2 (F4)": "key_encoder.res2", "backbone layer2 (F8)": "key_encoder.layer2",
         "backbone layer3 (F16)": "key_encoder.layer3", **{m: m for m in SIM_MODULES}}
rows = []
with torch.enable_grad():
    for name, variant in networks.items():
        variant.zero_grad(set_to_none=True)
        *_, v16, v8, v4 = variant.encode_key(frame)
        variant.init_queries((v16, v8, v4), masks).pow(2).sum().backward()
        row = {"variant": name}
        for label, prefix in PARTS.items():
            grads = [p.grad for k, p in variant.named_parameters() if k.startswith(prefix + ".")]
            row[label] = ("-" if not grads else
                          "yes" if any(g is not None and g.abs().sum() > 0 for g in grads) else "no")
        rows.append(row)
pd.DataFrame(rows).set_index("variant")

# %% [markdown]
# **The queries they produce.** Two differences show up on one frame:
#
# * *resolution*: at stride 16 an object covers a quarter of the cells it covers at stride 8, and
#   a thin object may vanish from the grid (nearest resizing), leaving a zero query;
# * *coupling*: with the interaction, moving object 3's mask changes object 1's query; without it,
#   object 1's query depends on object 1 alone (it is just the pooled feature).

# %%
moved = masks.clone()
moved[:, -1] = torch.roll(masks[:, -1], shifts=(8, 16), dims=(-2, -1))  # object 3 elsewhere
rows, similarity = [], []
for name, variant in networks.items():
    *_, v16, v8, v4 = variant.encode_key(frame)
    feature = variant.sim_feature(v16, v8, v4)
    cells = F.interpolate(masks, size=feature.shape[-2:], mode="nearest").sum(dim=(-2, -1))[0]  # N
    before = variant.init_queries((v16, v8, v4), masks)  # 1 x N x C
    after = variant.init_queries((v16, v8, v4), moved)
    rows.append({"variant": name, "grid": "x".join(map(str, feature.shape[-2:])),
                 "cells per object": cells.int().tolist(),
                 "|change of query 1| when object 3 moves": float((after[0, 0] - before[0, 0]).norm())})
    unit = F.normalize(before[0], dim=-1)
    similarity.append(unit @ unit.T)  # N x N cosine similarity of the queries
changes = pd.DataFrame(rows).set_index("variant")
assert changes.loc["no-interaction"].iloc[-1] < 1e-6 and changes.loc["qmvos"].iloc[-1] > 0
changes

# %%
viz.show_heatmaps(torch.stack(similarity), column_titles=variants, xlabel="query", ylabel="query",
                  vmin=-1.0, vmax=1.0, cmap="coolwarm", colorbar_label="cosine similarity",
                  suptitle="Cosine similarity between the object queries of each variant (fresh networks)")

# %% [markdown]
# These networks are untrained, so the similarities only say that the variants compute different
# things; notebook 10 trains each variant and compares their J&F (Table 3).
#
# **Exercises.**
# 1. Pick a generated video with a thin or small object (`SyntheticConfig(num_objects=4)`, other
#    seeds) and find a frame where its mask vanishes on the stride-16 grid. What is its query in the
#    `sim-f16` variant?
# 2. Load the trained variants, `zoo.trained("sim-f8-small")` and `zoo.trained("no-interaction-small")`,
#    and compare their query cosine similarities on a frame with near-identical objects
#    (`SyntheticConfig(similarity=0.95)`) with those of `qmvos-small`.
# 3. Replace the second object's mask by the first's (two identical masks). Without the
#    interaction the two queries are equal; are they equal with it? Why (think of what each query
#    attends to)?
# 4. Count the parameters of the whole SIM in the released ("base") size with
#    `build_network(model_config("qmvos"))` and compare them with those of the decoder.
