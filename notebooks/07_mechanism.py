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
# # 07 · What the queries do: the mechanism, measured
#
# **Goals.** By the end of this notebook you will have
# 1. stated, as numbers, what an *object-specific* query would do in the QCIM's cross-attention, and
#    why the mean own-object mass alone cannot tell (section 1, on made-up attention),
# 2. recomputed those numbers by hand on one frame of a trained QMVOS-small and matched the library,
# 3. set them against two baselines: an untrained network of the same config and uniform attention,
# 4. followed them over training (three training lengths, three seeds) and across variants, in a
#    figure with intervals,
# 5. intervened on the queries at inference (swapped between objects, averaged, the QCIM or the SIM's
#    interaction removed) and measured what each costs in J&F, with paired intervals,
# 6. tested one remedy that is *not* in the paper (object-identity codes in the QCIM), and read all
#    of it honestly.
#
# **Paper.** QMVOS (arXiv 2403.11529) Sec. 3.2 (the SIM: masked average pooling of the fused
# F16 + F8 features, then self-attention among the queries, QMVOS Eq. 2), Sec. 3.3 (the QCIM block,
# QMVOS Eq. 3, and its cross-attention, QMVOS Eq. 4: "each object query can attend to the content of
# both its own and other objects"), Sec. 3.3's last paragraph (the queries as dynamic filters),
# Table 3c-3d (no interaction; F16 instead of the readout). QMVOS Eq. 4 is printed without the 1/√d
# of QMVOS Eq. 2; the released code (and this kit) uses `nn.MultiheadAttention`, which scales by it.
#
# **Why this notebook.** Notebooks 04-06 built the SIM and the QCIM and showed their attention. What
# they cannot show on one frame is whether the trained queries *use* their objects: a map can look
# focused and still be the same for every query. Here the kit's networks are measured, and the
# paper's mechanism is tested causally.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: 12-iteration networks, 1 seed, 2 short videos
PRESET = "cpu-tiny"  # the network of sections 2, 3 and 5
SEEDS = [0] if SMOKE else [0, 1, 2]  # training seeds of the study
VIDEOS = 2 if SMOKE else 8  # synthetic-hard (and synthetic-val) videos per network
LENGTH = {"length": 4} if SMOKE else {}  # frames per video (default: the split's)
SPLITS = ["synthetic-hard"] if SMOKE else ["synthetic-hard", "synthetic-val"]

# %%
# %matplotlib inline
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import torch

from qmvos_lab import zoo
from qmvos_lab.data.synthetic import split_videos
from qmvos_lab.mechanism import (CROSS, available_interventions, cross_frame_metrics, effect_table,
                                 intervention_jf, record_videos, recording_metrics, with_baselines)
from qmvos_lab.mechanism.over_training import (KEY_METRICS, StudyNetwork, default_networks, difference,
                                               study_summary, study_table, training_curves)
from qmvos_lab.viz.explorer_metrics import GridGeometry
from qmvos_lab.viz.mechanism_plots import metrics_over_training

warnings.filterwarnings("ignore", message=".*degenerate.*")  # scipy on 2-video resamples (smoke mode)
videos = list(split_videos("synthetic-hard", VIDEOS, **LENGTH))
print(f"{len(videos)} synthetic-hard videos of {len(videos[0].frames)} frames, "
      f"{int(videos[0].labels.max())} objects each")

# %% [markdown]
# ## 1. What "object-specific" would look like
#
# In the QCIM's cross-attention (QMVOS Eq. 4) the query of object q spreads weights A_q over every
# position of every object's readout, M (N·h·w positions, serialised object after object; notebook
# 05). They sum to 1. Six numbers per query and frame (`qmvos_lab.mechanism.metrics`):
#
# | number | definition | uniform attention | object-specific |
# | --- | --- | --- | --- |
# | own-object mass / share | A_q's mass on readout q, times N | 1 | > 1 |
# | preference | A_q's mass on readout q minus the mean mass the *other* queries put on readout q | 0 | > 0 |
# | query-map cosine | mean cosine of A_q with the other queries' maps | 1 | < 1 |
# | in-mask ratio / share | A_q's share inside object q's mask, over the mask's share of the grid | 1 | > 1 |
# | entropy / uniform | entropy of A_q over log(N·h·w) | 1 | < 1 |
# | spatial preference | where A_q looks *in space* (summed over the readouts): its mass inside object q's mask over that mask's share of the grid, minus the same for the other queries | 0 | > 0 |
#
# The preference asks whether a query reads its own object's *readout*; the spatial preference asks
# whether it looks at its own object's *place*, whichever readout it reads there. Both are 0 on
# average when all the queries' maps are the same.
#
# Why the preference: if every query's map is the *same*, each readout's mass is the same for every
# query, and the own-object masses are the diagonal of a matrix with equal rows: their mean is
# exactly 1/N *wherever* the queries look. The made-up attention below shows both cases, computed by
# hand and by the library.

# %%
N, h, w = 3, 4, 5
rng = np.random.default_rng(0)
focused = rng.random((1, N, h, w)) ** 8  # one sharp map over N readouts
blind = np.repeat(focused / focused.sum(), N, axis=0)  # every query looks at the same places: N x N x h x w
specific = np.stack([np.where(np.arange(N)[:, None, None] == q, focused[0], 0.05 * focused[0]) for q in range(N)])
specific /= specific.sum((1, 2, 3), keepdims=True)  # query q: mostly its own readout


def by_hand(a):
    """a: Nq x No x h x w (each query's map sums to 1) -> own-object mass / share, preference, cosine."""
    mass = a.sum((2, 3))  # Nq x No
    own = np.diag(mass)
    flat = a.reshape(len(a), -1)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    cos = unit @ unit.T
    return pd.DataFrame({"own-object mass / share": own * a.shape[1],
                         "preference": own - (mass.sum(0) - own) / (len(a) - 1),
                         "query-map cosine": (cos.sum(1) - 1) / (len(a) - 1)})


for name, a in (("object-blind", blind), ("object-specific", specific)):
    mine = by_hand(a)
    library = pd.DataFrame(cross_frame_metrics(a))[mine.columns]
    np.testing.assert_allclose(mine.to_numpy(), library.to_numpy(), rtol=1e-9, atol=1e-12)
    print(f"{name}: mean own-object mass {a.sum((2, 3)).diagonal().mean():.4f} (1/N = {1 / N:.4f})")
    print(mine.round(3).to_string(), "\n")

# %% [markdown]
# The object-blind maps are sharp (low entropy) yet give a mean own-object mass of exactly 1/N, a
# preference of 0 and a cosine of 1. That is the pattern to look for in trained networks.
#
# ## 2. One frame of a trained network, by hand
#
# `record_videos` segments each video with tracing on (`VideoSegmenter(..., trace=True)`, at the
# size the network was trained for) and keeps each frame's attention. `recording_metrics` turns a
# recording into the tidy table: video, frame, query (the object's id), head ("mean" over heads),
# attention (QCIM cross, QCIM self, SIM self), metric, value. We recompute the key numbers of the last
# frame from the raw weights (the masks' coverage of the grid comes from `GridGeometry`; notebook 06
# derived it by hand).

# %%
network = zoo.trained("qmvos-small", PRESET, SEEDS[0])
recording = record_videos(network, videos[:1])[0]
position = max(i for i, tr in enumerate(recording.traces) if tr.qcim_attention is not None)
trace, t = recording.traces[position], recording.traces[position].index  # the last segmented frame
cross = trace.qcim_attention["cross"][0].double().mean(1)  # Nq x heads x No x h x w -> Nq x No x h x w
nq, no, gh, gw = cross.shape
mass = cross.sum((2, 3))  # Nq x No
own = mass.diagonal()
unit = torch.nn.functional.normalize(cross.reshape(nq, -1), dim=1)  # Nq x (No h w)
entropy = -(cross * cross.clamp_min(1e-300).log()).sum((1, 2, 3))
ids = recording.object_ids[position][:nq]  # the queries' object ids, in query order
geometry = GridGeometry(recording.ground_truth.shape[1:], (gh, gw), recording.size)  # the grid on the frame
cover = torch.stack([torch.as_tensor(geometry.coverage(np.asarray(recording.ground_truth[t]) == i)).double()
                     for i in ids])  # Nq x h x w: share of each cell inside each query's object
r = (cross.sum(1)[:, None] * cover[None]).sum((2, 3)) / cover.mean((1, 2))  # r[p, q]: query p in mask q / share
mine = pd.DataFrame({"own-object mass / share": (own * no).numpy(),
                     "preference": (own - (mass.sum(0) - own) / (nq - 1)).numpy(),
                     "query-map cosine": (((unit @ unit.T).sum(1) - 1) / (nq - 1)).numpy(),
                     "entropy / uniform": (entropy / math.log(no * gh * gw)).numpy(),
                     "spatial preference": (r.diagonal() - (r.sum(0) - r.diagonal()) / (nq - 1)).numpy()},
                    index=ids)
table = recording_metrics(recording)
library = (table[(table.frame == t) & (table.attention == CROSS) & (table["head"].astype(str) == "mean")]
           .pivot_table(index="query", columns="metric", values="value")[mine.columns].loc[mine.index])
np.testing.assert_allclose(mine.to_numpy(), library.to_numpy(), rtol=1e-6, atol=1e-9)
print(f"frame {t}: {nq} queries over {no} readouts of {gh} x {gw} cells")
mine.round(3)

# %% [markdown]
# ## 3. Two baselines
#
# A number means little alone. `with_baselines` measures the same videos three ways: the trained
# network, an untrained network of the same config (what the architecture does before learning) and
# uniform attention (the trained network's frames and masks, every weight 1 / its keys: the ratios
# are 1 and the preferences 0 by construction). The unit of the interval is the video.

# %%
from qmvos_lab.mechanism import summarise  # noqa: E402

baselines = with_baselines(network, videos)
summary = summarise(baselines)
keys = pd.MultiIndex.from_tuples(KEY_METRICS, names=["attention", "metric"])
summary = summary.set_index(["attention", "metric"]).loc[lambda s: s.index.isin(keys)].reset_index()
summary.pivot_table(index=["attention", "metric"], columns="network", values="mean", sort=False).round(3)

# %% [markdown]
# ## 4. Over training and across variants
#
# The study (`mechanism.over_training`): QMVOS-small trained for three lengths (`cpu-quick`, 190
# iterations; `cpu-tiny`, 680; and 4 x `cpu-tiny`, 2720, one seed: 26 minutes), `no-interaction`
# (Table 3c), `qcim-f16` (Table 3d: the queries read F16, not the readout, so they have no own object)
# and `qcim-identity` (section 6), three seeds each, on synthetic-hard and synthetic-val. Each
# network's table is cached beside it, so a rerun reads them. The interval of a mean resamples the
# seeds and then the videos (the ablation runner's two-stage bootstrap): it holds the training noise.
#
# In smoke mode the study has two 12-iteration networks (QMVOS and no-interaction) on two short
# videos: it shows the machinery, not a result. `python benchmarks/mechanism_study.py --output DIR` prints the full study (section 7
# has its numbers).

# %%
if SMOKE:  # two networks notebook 06 already trained in the tier's cache
    networks = [StudyNetwork("qmvos-small", PRESET), StudyNetwork("no-interaction-small", PRESET)]
else:
    networks = default_networks()
study = study_table(networks, SEEDS, SPLITS, VIDEOS, LENGTH.get("length"), progress=False)
study_means = study_summary(study)
curves = training_curves(networks, SEEDS)
print(f"{study['label'].nunique()} networks, {len(study):,} per-video rows")
study_means[study_means.network == "trained"].pivot_table(
    index=["split", "label"], columns="metric", values="mean", aggfunc="first", sort=False).round(3)

# %% [markdown]
# A summary mean is the mean over seeds and videos of each video's mean over its frames and queries.
# One cell, from the per-video table:

# %%
row = study_means[(study_means.network == "trained") & (study_means.metric == "preference")
                  & (study_means.attention == CROSS)].iloc[0]
cell = study[(study.label == row.label) & (study.split == row.split) & (study.network == "trained")
             & (study.attention == CROSS) & (study.metric == "preference")]
assert len(cell) == cell.seed.nunique() * cell.video.nunique() == row.seeds * row.videos  # a full grid
assert math.isclose(cell.groupby("seed")["value"].mean().mean(), row["mean"], rel_tol=1e-9, abs_tol=1e-12)
print(f"{row.label}, {row.split}: preference {row['mean']:+.4f} [{row.low:+.4f}, {row.high:+.4f}] "
      f"over {row.seeds} seed(s) x {row.videos} videos")

# %%
metrics_over_training(study_means, KEY_METRICS, "synthetic-hard", curves)

# %% [markdown]
# Thin lines: the probe's values during training (`mechanism.MechanismProbe`, logged into the run's
# `metrics.jsonl` on two synthetic-hard videos; only runs trained with the probe have them). Points:
# the finished networks, with intervals. Grey dashes: untrained; black dots: uniform.
#
# ## 5. What the queries cause: interventions at inference
#
# A metric says where a query looks; an intervention says what that does. Each is a context manager
# on the network (`mechanism.interventions`); nothing is retrained. ΔJ&F is paired by video against
# the intact network (`effect_table`: BCa interval and sign-flip p, as the ablation runner computes
# them; p_holm adjusts p for the number of interventions tested, with Holm's step-down method). If swapping the queries between objects costs nothing, the decoder does not use which
# object a query came from.

# %%
chosen = available_interventions(network, heads=False)
if SMOKE:  # two of them show the machinery
    chosen = {name: chosen[name] for name in ("permuted queries", "no QCIM")}
jf = intervention_jf(network, videos, chosen)
effects = effect_table(jf)
effects

# %% [markdown]
# By hand: the mean paired difference, the exact sign-flip p (all 2^n sign patterns of the n
# per-video differences; the share whose |mean| reaches the observed one), and Holm's adjustment (the
# k-th smallest of m p-values times m - k + 1, never below the one before, at most 1).

# %%
d = (jf["permuted queries"] - jf["intact"]).to_numpy()
signs = np.array(list(itertools.product([1, -1], repeat=len(d))))  # 2^n x n
p_by_hand = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-9) - 1e-15))
library = effects.set_index("intervention").loc["permuted queries"]
assert math.isclose(d.mean(), library["ΔJ&F"], abs_tol=1e-12) and math.isclose(p_by_hand, library["p"])
print(f"permuted queries: ΔJ&F {d.mean():+.4f}, exact p {p_by_hand:.3g} over {len(d)} videos")
order = np.argsort(effects["p"].to_numpy(), kind="stable")
m = len(order)
steps = np.maximum.accumulate([min(1.0, (m - k) * effects["p"].to_numpy()[i]) for k, i in enumerate(order)])
holm_by_hand = np.empty(m)
holm_by_hand[order] = steps
np.testing.assert_allclose(holm_by_hand, effects["p_holm"].to_numpy())

# %% [markdown]
# ## 6. A remedy beyond the paper: object-identity codes
#
# Why could the released design be object-blind? In QMVOS Eq. 4 nothing in M says which object a
# position belongs to: the readouts of different objects are the same kind of feature, and the
# query of object q can prefer readout q only through its *content*. On generated videos with
# near-identical objects that content is nearly the same for every object.
#
# `ModelConfig.qcim_identity` (variant `qcim-identity`; **not in the paper**, off by default, adds no
# state-dict keys when off) adds a learnt code e_n to object n's query and to every position of its
# readout, for the cross-attention's queries and keys only (`model.qcim.ObjectIdentity`). The logit of
# query n on a position of object m then gains e_n W_q^T W_k e_m, which can favour m = n. In
# training, each clip draws its objects' codes at random from 16 slots, so every code learns to
# mean "this one object". The study trains it beside QMVOS with the same recipe and seeds; the
# difference in a metric pairs the videos and resamples each network's seeds.

# %%
remedy = "no-interaction" if SMOKE else "qcim-identity"  # smoke mode: the machinery on a network it has
for split in SPLITS:
    for attention, metric in KEY_METRICS[:2]:
        other = next(n for n in networks if n.variant == remedy)
        base = next(n for n in networks if n.variant == "qmvos" and n.preset == other.preset and n.iterations is None)
        diff, low, high = difference(study, other.label, base.label, split, attention, metric)
        print(f"{split}, {attention}: {metric}: {other.label} - {base.label} = {diff:+.3f} [{low:+.3f}, {high:+.3f}]")

# %% [markdown]
# ## 7. What the full study measured
#
# (AMD EPYC Zen 4, 2 cores, avx512_bf16, no AMX; torch 2.14.1; `python benchmarks/mechanism_study.py
# --output DIR` for the metrics, `python benchmarks/mechanism.py --network qmvos-small --preset
# cpu-tiny --seeds 0 1 2 --split synthetic-hard --videos 8` for the interventions. Means over 3 seeds
# x 8 videos with 95 % two-stage intervals, QCIM cross-attention, head mean, synthetic-hard.)
#
# | network | iterations | own-object mass / share | preference | spatial preference | query-map cosine | in-mask ratio / share | entropy / uniform | J&F |
# | --- | --- | --- | --- | --- | --- | --- | --- | --- |
# | qmvos | 190 | 1.001 [0.997, 1.007] | +0.000 [-0.001, +0.002] | +0.013 [-0.013, +0.046] | 0.993 [0.985, 0.996] | 3.33 [2.58, 4.33] | 0.922 [0.879, 0.958] | 0.238 |
# | qmvos | 680 | 1.002 [0.986, 1.013] | +0.001 [-0.005, +0.004] | +0.001 [-0.091, +0.068] | 0.939 [0.868, 0.980] | 2.36 [1.40, 3.46] | 0.959 [0.930, 0.983] | 0.332 |
# | qmvos (1 seed) | 2720 | 0.991 [0.950, 1.030] | -0.003 [-0.017, +0.010] | -0.129 [-0.509, +0.117] | 0.936 [0.893, 0.970] | 5.52 [3.50, 7.53] | 0.799 [0.747, 0.853] | 0.485 |
# | no-interaction (3c) | 190 | 1.013 [1.001, 1.032] | +0.004 [+0.000, +0.011] | +0.022 [-0.023, +0.103] | 0.950 [0.890, 0.992] | 2.85 [2.40, 3.36] | 0.953 [0.934, 0.967] | 0.236 |
# | no-interaction (3c) | 680 | 1.007 [0.990, 1.024] | +0.002 [-0.003, +0.008] | -0.018 [-0.104, +0.059] | 0.928 [0.872, 0.965] | 2.71 [1.96, 3.62] | 0.956 [0.923, 0.977] | 0.325 |
# | qcim-f16 (3d) | 190 | (one map) | (one map) | -0.000 [-0.003, +0.002] | 1.000 | 0.98 [0.94, 1.03] | 1.000 | 0.228 |
# | qcim-identity (beyond) | 190 | 0.959 [0.929, 0.987] | -0.014 [-0.024, -0.004] | -0.018 [-0.123, +0.092] | 0.865 [0.824, 0.907] | 2.99 [2.44, 3.63] | 0.927 [0.900, 0.950] | 0.241 |
# | qcim-identity (beyond) | 680 | 0.990 [0.937, 1.035] | -0.003 [-0.021, +0.012] | +0.023 [-0.201, +0.234] | 0.834 [0.736, 0.920] | 4.05 [2.47, 6.05] | 0.869 [0.776, 0.944] | 0.345 |
# | untrained qmvos | 0 | 1.000 | -0.000 | -0.000 | 1.000 | 1.00 | 1.000 | |
# | uniform attention | | 1 | 0 | 0 | 1 | 1 | 1 | |
#
# J&F: the ablation runner's, on all 20 synthetic-hard videos (copying the first mask gives 0.142).
# Interventions on the cpu-tiny networks (3 seeds, 8 videos, ΔJ&F against the intact network with its
# 95 % BCa interval, Holm over the five): without the QCIM -0.241 [-0.304, -0.175] (qmvos) and -0.175
# [-0.230, -0.119] (qcim-identity), both Holm p 0.039, the smallest 8 videos allow; without the SIM's
# interaction -0.004 [-0.008, -0.002] and -0.002 [-0.004, -0.001]; swapped queries -0.006 [-0.018,
# -0.000] and -0.007 [-0.011, -0.002]; one mean query for all objects -0.004 and -0.005; first-frame
# queries -0.002 (no effect detected). With 8 videos Holm over five can reach 0.039 at best: only the
# QCIM's removal and, for qmvos, the SIM's interaction (-0.004, Holm p 0.039) are decided; swapping
# the queries (Holm p 0.38 and 0.12) and the mean query (0.28, 0.12) are not.
#
# **Reading.** the trained queries are **object-blind at every training length and in every
# variant**: none gives its own object's readout clearly more than the uniform share (own-object mass /
# share 0.96-1.01 and preference within ±0.004 for QMVOS; the one interval above 1, no-interaction at
# 190 iterations, 1.013 [1.001, 1.032], is marginal, absent on synthetic-val and one of some 30
# uncorrected intervals), and none looks at its own object's place more than the other queries do
# (every spatial preference's interval contains 0). What training does
# teach them is *where the objects are* (and J&F rises from 0.33 to 0.49 with 4 x the training, one
# seed): the attention concentrates (entropy 0.80 of uniform after 2720 iterations) on objects (the in-mask ratio 2.4-5.5 times the mask's share; 11 on the 3-object
# synthetic-val), every query on every object alike (cosine 0.93-0.99); the qcim-f16 queries, which
# read the frame's F16 instead, learn nothing of the kind (their attention stays uniform). Causally the
# QCIM's *content* matters: removing it costs 0.24 of 0.35 J&F (below copying the first mask), while
# the queries' identity matters little: swapping them or giving every object one mean query costs
# -0.004 to -0.007 J&F (point estimates; the intervals allow up to 0.018, and none is decided). A plausible reason: a query acts
# as a filter on *its own object's* decoder features, which the per-object memory readout has already
# made object-specific, so one "object-ness" filter serves every object. The identity codes (beyond
# the paper) make the queries' maps differ (cosine 0.83-0.87) without making them read their own
# object (at 190 iterations they read it slightly *less*), and J&F moves +0.003 [-0.023, +0.033]
# (cpu-quick) and +0.013 [-0.020, +0.047] (cpu-tiny): inconclusive, with a minimum detectable
# difference of about 0.047. At this scale (small networks, minutes of CPU training, generated
# videos) the paper's "each object query can attend to the content of both its own and other
# objects" holds only in the trivial sense: every query attends to every object, the same way.

# %% [markdown]
# **Exercises.**
# 1. Is any single head object-specific when the mean over heads is not? Measure with
#    `recording_metrics(recording, heads=True)` and compare the preference per head.
# 2. Show with made-up maps that when every query has the *same* map, the mean own-object mass is
#    exactly 1/N for any map, while a single query's own mass can be anything.
# 3. Swap the queries with another permutation (`permuted_queries(network, shift=2)`, or reverse
#    them) and measure ΔJ&F on the same videos. Does the permutation matter?

# %% [markdown]
# **Solutions** (collapsed: open them after trying).

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. The preference of each head of the QCIM cross-attention on the recorded video.
per_head = recording_metrics(recording, heads=True)
per_head = per_head[(per_head.attention == CROSS) & (per_head.metric == "preference")]
print(per_head.groupby(per_head["head"].astype(str))["value"].mean().round(4).to_string())

# %% jupyter={"source_hidden": true} tags=["solution"]
# 2. Same map for every query: the own masses are the diagonal of a matrix with equal rows.
for trial in range(3):
    one = rng.random((N, h, w))
    one /= one.sum()
    same = np.repeat(one[None], N, axis=0)  # N x N x h x w
    own_masses = same.sum((2, 3)).diagonal()  # each query's mass on its own readout
    assert math.isclose(own_masses.mean(), 1 / N)
    print("own masses", own_masses.round(3), "mean", round(own_masses.mean(), 6))

# %% jupyter={"source_hidden": true} tags=["solution"]
# 3. Another permutation: reversing the objects (a fixed point when N is odd: that object keeps its query).
from qmvos_lab.mechanism import permuted_queries  # noqa: E402

reverse = {"reversed queries": lambda net: permuted_queries(net, permutation=list(range(nq))[::-1])}
other = intervention_jf(network, videos, reverse)
print(f"reversed: ΔJ&F {(other['reversed queries'] - other['intact']).mean():+.4f}; "
      f"cyclic shift: {library['ΔJ&F']:+.4f}")

# %% [markdown]
# ## Summary
#
# * Object-specific attention is a pattern of numbers: own-object mass above 1/N, a positive
#   preference, query maps that differ. A mean own-object mass of 1/N is what identical maps give,
#   wherever they look.
# * The library's numbers were recomputed here by hand, on made-up maps and on a trained network's
#   frame, and set against an untrained network and uniform attention.
# * The study follows them over three training lengths and across Table 3c-3d's variants, with
#   intervals over seeds and videos; the interventions measure what the queries cause in J&F.
# * Measured: the kit's trained queries are object-blind (no own-object or own-place preference at
#   190, 680 or 2720 iterations, with or without the SIM's interaction, and with the identity codes
#   beyond the paper); they learn where the objects are, and the QCIM's content, not the queries'
#   identity, is what J&F depends on.
#
# ## References
#
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529: Sec. 3.2-3.3 (QMVOS Eq. 2-4), Table 3c-3d.
# * H. K. Cheng, A. G. Schwing, "XMem", ECCV 2022 (the baseline the queries are added to).
# * Library: `qmvos_lab/mechanism/` (`metrics.py`, `study.py`, `interventions.py`, `effects.py`,
#   `probe.py`, `over_training.py`), `qmvos_lab/viz/mechanism_plots.py`, `qmvos_lab/model/qcim.py`
#   (`ObjectIdentity`); `benchmarks/mechanism.py`, `benchmarks/mechanism_study.py`.
