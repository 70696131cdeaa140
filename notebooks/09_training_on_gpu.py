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
# # 09 · Training on a GPU
#
# **Goals.** By the end of this notebook you will know
# 1. the two real training presets, `gpu-davis16` (one GPU, an afternoon) and `paper` (the released
#    QMVOS code's stage-3 recipe), and how they differ from `cpu-tiny`,
# 2. what automatic mixed precision (AMP) changes in a training step,
# 3. how the same trainer runs data-parallel on several GPUs under `torchrun`,
# 4. how to download the datasets (the command; this notebook never downloads data),
# 5. how this kit can initialise QMVOS from XMem's weights, by doing it on a state dict made here,
# 6. and you will have run the `gpu-davis16` code path: on a GPU with the real preset, otherwise a
#    tiny CPU version of it (same code, tiny sizes, generated data).
#
# **Paper.** QMVOS (arXiv 2403.11529) Sec. 3.4 (implementation details: ResNet-50 image encoder,
# ResNet-18 mask encoder, trained on DAVIS-2017 + YouTube-VOS with 8-frame clips, AdamW, lr 1e-5,
# 65K iterations, batch 16) and Sec. 4.2 (the XMem baseline retrained "using the same configuration");
# XMem (ECCV 2022) and its supplementary material (the training stages, clip sampling, AMP,
# multi-GPU training). The QMVOS paper does not say how QMVOS's weights are initialised.

# %% tags=["parameters"]
from qmvos_lab.zoo import smoke_mode

SMOKE = smoke_mode()  # QMVOS_LAB_SMOKE=1: a few iterations
CPU_ITERATIONS = 3 if SMOKE else 30  # the tiny CPU version of the run (no GPU)
GPU_ITERATIONS = 20 if SMOKE else None  # the GPU run; None: the preset's 3000
GPU_INIT = "XMem"  # the GPU run starts from the released XMem weights (downloaded once)
DATA_ROOT = ""  # a DAVIS-2016 folder with JPEGImages/240p, Annotations/240p for the GPU run; empty: generated

# %%
# %matplotlib inline
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from qmvos_lab import viz, zoo
from qmvos_lab.checkpoints import qmvos_from_xmem, resolve_source
from qmvos_lab.data.datasets import DATASETS
from qmvos_lab.errors import CheckpointError
from qmvos_lab.train.presets import PRESETS, preset
from qmvos_lab.train.trainer import EpochSampler, Trainer

OUTPUT = Path(os.environ.get("QMVOS_LAB_OUTPUT", "outputs/notebooks")) / "09_training_on_gpu"
OUTPUT.mkdir(parents=True, exist_ok=True)
ON_GPU = torch.cuda.is_available()
print("GPU:", torch.cuda.get_device_name(0) if ON_GPU else "none; the run below is the tiny CPU version")

# %% [markdown]
# ## 1. The presets
#
# A preset is a named `TrainConfig` (`qmvos_lab/train/presets.py`); any field can be overridden,
# from Python (`preset("gpu-davis16", iterations=500)`) or from the command line
# (`qmvos-lab train --preset gpu-davis16 --set iterations=500`). The settings that differ:

# %%
configs = {name: preset(name).to_dict() for name in PRESETS}
table = pd.DataFrame(configs).astype(str)  # one row per setting (lists shown as text)
table[table.nunique(axis=1) > 1].drop(index="name")

# %% [markdown]
# * **cpu-tiny**: the "small" network (ResNet-18 key encoder, narrow layers) from scratch on generated
#   clips of 4 frames at 128 x 128 (objects zoomed about 2x), bf16 or fp32 and channels-last or not
#   as timed on the machine ("auto"): minutes on a laptop (notebook 08).
# * **gpu-davis16**: the released network size ("base": ResNet-50 key encoder) on 8-frame clips with
#   384 x 384 crops, batch 8, AMP, on the DAVIS-2016 train split at 240p plus clips with pasted
#   objects (so that it learns several objects from a single-object dataset). One GPU.
# * **paper**: the released QMVOS code's final stage: DAVIS-2017 + YouTube-VOS, batch 16, 8-frame
#   clips, 65 000 iterations (learning rate 2e-5, divided by 10 after 60 000), bootstrapping from
#   20 000 to 50 000. The paper (Sec. 3.4) prints AdamW with lr **1e-5**, 65K iterations and batch 16;
#   the released configuration's 2e-5 is what the preset keeps (`--set lr=1e-5` gives the printed
#   one). Where to start it from, the paper does not say; this kit offers an XMem checkpoint
#   (`init=XMem`, section 5).
#
# ## 2. Automatic mixed precision (AMP)
#
# With `amp=True` on a GPU, the trainer runs the forward pass under `torch.autocast`: convolutions
# and matrix products in bfloat16 (or float16 on GPUs without bfloat16, with a `GradScaler` that
# scales the loss so that small gradients do not underflow), while reductions, softmax and the loss
# stay in float32 (the trainer casts the logits to float32 before the loss). The weights and the
# optimiser stay in float32. About twice the speed and half the activation memory. On a CPU,
# `amp=True` means bfloat16 too, and whether that pays depends on the CPU: the small network's
# training step ran 1.6x faster in bf16 on a CPU with AMX and 1.7x on an AMD EPYC with AVX512-BF16,
# but 1.5x slower on an Intel Xeon with AVX512-BF16 and no AMX, and 17x slower with AVX2 only
# (emulated; README, "Training on a CPU"). So `cpu-tiny` leaves `amp` to "auto": it is timed on the
# machine (notebook 08). What autocast does to one layer:

# %%
layer = torch.nn.Conv2d(8, 8, 3, padding=1)
x = torch.randn(1, 8, 16, 16)
device_type = "cuda" if ON_GPU else "cpu"
amp_dtype = (torch.bfloat16 if not ON_GPU or torch.cuda.is_bf16_supported() else torch.float16)
layer, x = layer.to(device_type), x.to(device_type)
with torch.autocast(device_type, dtype=amp_dtype):
    y = layer(x)
    p = torch.softmax(y.flatten(1), dim=1)
print(f"weights {layer.weight.dtype}, input {x.dtype} -> conv output {y.dtype}, softmax {p.dtype}")
torch.testing.assert_close(y.float(), layer(x), atol=0.1, rtol=0.05)  # the same numbers, to ~3 digits

# %% [markdown]
# ## 3. Several GPUs: DistributedDataParallel under `torchrun`
#
# The trainer needs no change to run on several GPUs: start the same command under `torchrun`.
# Each process reads `WORLD_SIZE`, `RANK` and `LOCAL_RANK` from the environment, joins the process
# group (NCCL on GPUs, gloo on CPUs), takes GPU `LOCAL_RANK`, wraps the training pass
# (`TrainWrapper`) in `DistributedDataParallel` (which averages the gradients across processes after
# every backward pass), and draws its own share of each epoch's clips. Only rank 0 writes the run
# folder. **`batch_size` is per process**: 4 GPUs with `batch_size=4` train with batches of 16.

# %%
commands = {
    "one GPU": "qmvos-lab train --preset gpu-davis16 --set data_root=PATH/davis16-240p init=XMem",
    "4 GPUs, one machine": "torchrun --standalone --nproc_per_node 4 -m qmvos_lab train --preset paper "
                           "--set data_root=data batch_size=4 init=XMem",
    "2 machines x 8 GPUs (run on each, node_rank 0 and 1)":
        "torchrun --nnodes 2 --node_rank 0 --master_addr HOST0 --master_port 29500 --nproc_per_node 8 "
        "-m qmvos_lab train --preset paper --set data_root=data batch_size=1 init=XMem",
    "resume after a stop (same command + --resume)":
        "torchrun --standalone --nproc_per_node 4 -m qmvos_lab train --preset paper "
        "--set data_root=data batch_size=4 init=XMem --resume",
}
for what, command in commands.items():
    print(f"# {what}\n{command}\n")

# %% [markdown]
# How the clips are shared: `EpochSampler` draws one permutation per epoch from the seed, and
# process r takes every `world`-th item from position r, so the processes see disjoint clips that
# together cover the epoch. For 2 processes and an epoch of 12 clips:

# %%
shares = [EpochSampler(12, seed=0, batch_size=2, iterations=3, rank=r, world=2).indices() for r in range(2)]
assert not set(shares[0]) & set(shares[1]) and sorted(shares[0] + shares[1]) == list(range(12))
pd.DataFrame({f"rank {r}": share for r, share in enumerate(shares)}).T

# %% [markdown]
# ## 4. The data: `qmvos-lab data download`
#
# The kit downloads the public datasets into `data/` (resumable, checksummed, extracted atomically);
# YouTube-VOS needs a link you get after registering. This notebook only shows the command:

# %%
print(subprocess.run([sys.executable, "-m", "qmvos_lab", "data", "--help"], capture_output=True, text=True,
                     check=True).stdout)
pd.DataFrame([{"name": name, "file": a.filename, "from": a.url or a.note} for name, archives in DATASETS.items()
              for a in archives]).set_index("name")

# %% [markdown]
# For example `qmvos-lab data download davis` (DAVIS-2017 train+val, 480p) or
# `qmvos-lab data download youtube --url <your link>`. The `paper` preset expects
# `data_root` to hold `DAVIS/2017/trainval` and `YouTube`.
#
# ## 5. Starting from XMem's weights
#
# QMVOS keeps all of XMem and adds the SIM, the QCIM and two projections; XMem's prediction conv,
# which the queries replace, is dropped. So a trained XMem can be a starting point: every shared
# weight is copied and only the new modules start fresh. (This is the kit's option, not a statement
# of the paper, which says nothing about QMVOS's initialisation.) `--set init=XMem` does this with the released
# XMem checkpoint (downloaded once); `qmvos_lab.checkpoints.qmvos_from_xmem` is the function behind
# it. We try it on an XMem state dict of our own: the small XMem from the cache, saved as a bare
# state dict, the format of the released `XMem.pth`.

# %%
xmem = zoo.trained("xmem-small")
xmem_path = OUTPUT / "xmem-small-state-dict.pth"
torch.save(xmem.state_dict(), xmem_path)
qmvos, report = qmvos_from_xmem(xmem_path, progress=False)
print(qmvos.checkpoint_info.variant, "|", qmvos.config.backbone, "| queries of width", qmvos.config.query_dim)
print(f"copied {len(report['copied'])} tensors, left out {report['unused']}, {len(report['new'])} new")

xmem_state, qmvos_state = xmem.state_dict(), qmvos.state_dict()
assert all(torch.equal(xmem_state[k], qmvos_state[k]) for k in report["copied"])
assert all(k.startswith("decoder.pred.") for k in report["unused"])
new_parts = pd.Series([".".join(k.split(".")[:2]) if k.startswith("decoder.") else k.split(".")[0]
                       for k in report["new"]]).value_counts()
new_parts.rename("new tensors").to_frame()

# %% [markdown]
# The new modules are exactly the SIM (`input_proj`, `simple_upsample_block`, `query_SelfAtt_FFN`)
# and the QCIM (`decoder.g16_proj`, `decoder.QCIM`). Their fresh initialisation makes the refined
# queries zero (the QCIM's last LayerNorm starts with zero weights), so the network starts at
# logit 0, probability 0.5, and not at a saturated random guess.
#
# ## 6. The run
#
# The same `Trainer` code path either way. With a GPU: the `gpu-davis16` preset itself, from the
# released XMem weights (`GPU_INIT`), on the DAVIS-2016 split when `DATA_ROOT` names it (else on
# generated videos). Without: the `gpu-davis16` preset with tiny sizes, generated clips, and our
# small XMem as the initialisation.

# %%
gpu_overrides = {"name": "gpu-davis16-qmvos", "init": GPU_INIT}
gpu_overrides.update({"data_root": DATA_ROOT} if DATA_ROOT else {"data": "generated"})
if GPU_ITERATIONS is not None:
    gpu_overrides.update(iterations=GPU_ITERATIONS, log_every=max(1, GPU_ITERATIONS // 20))
gpu_config = preset("gpu-davis16", **gpu_overrides)
cpu_config = preset("gpu-davis16", name="gpu-davis16-on-cpu", data="generated", init=str(xmem_path),
                    iterations=CPU_ITERATIONS, batch_size=2, num_frames=4, crop_size=64, skip_scale=0.4,
                    workers=0, samples_per_epoch=100, log_every=1, checkpoint_every=CPU_ITERATIONS)
gpu_fields, cpu_fields = gpu_config.to_dict(), cpu_config.to_dict()
pd.DataFrame([{"setting": k, "GPU run": str(v), "CPU version": str(cpu_fields[k])} for k, v in gpu_fields.items()
              if v != cpu_fields[k]]).set_index("setting")

# %%
if ON_GPU:
    try:
        resolve_source(GPU_INIT)  # downloads the released weights once into the cache
        config = gpu_config
    except CheckpointError as error:  # offline: start from the small XMem made above
        print(f"{error}\n-> starting from {xmem_path} instead")
        config = preset("gpu-davis16", **{**gpu_overrides, "init": str(xmem_path)})
else:
    config = cpu_config

records, handle = [], None


def redraw(record):  # the live loss curve of notebook 08
    global handle
    records.append(record)
    fig = viz.loss_curves(records)
    fig.axes[0].set_title(f"{config.name}: iteration {record['iteration']} of {config.iterations}")
    if handle is None:
        handle = display(fig, display_id=True)
    else:
        handle.update(fig)


trainer = Trainer(config, OUTPUT / config.name, callback=redraw, progress=False)
print(f"device {trainer.device}, autocast {trainer.amp_dtype}, "
      f"{sum(p.numel() for p in trainer.network.parameters()) / 1e6:.1f} M parameters, "
      f"{config.iterations} iterations of batch {config.batch_size} x {config.num_frames} frames "
      f"at {config.crop_size} px")
history = trainer.train()

# %%
summary = pd.DataFrame(history)[["iteration", "loss", "ce", "dice", "lr", "it_per_s", "memory_mib"]]
print(f"{summary['it_per_s'].mean():.2f} it/s; peak memory {summary['memory_mib'].max():.0f} MiB; "
      f"the run folder is {OUTPUT / config.name}")
summary.round(4).tail()

# %% [markdown]
# The trained network is `final.pth` in the run folder: `qmvos-lab segment --checkpoint
# <run>/final.pth ...` segments a video with it, and `qmvos-lab evaluate` scores the results
# (notebook 10).
#
# **Exercises.**
# 1. On a GPU, time one iteration of `gpu-davis16` with `amp=False` and with `amp=True`
#    (`summary["it_per_s"]`, `memory_mib`). How much do speed and memory change?
# 2. Launch a tiny version under DDP in a terminal, two CPU processes talking over gloo:
#    `torchrun --standalone --nproc_per_node 2 -m qmvos_lab train --preset gpu-davis16 --allow-cpu
#    --set data=generated model_size=small iterations=4 batch_size=1 num_frames=4 crop_size=64
#    workers=0 samples_per_epoch=20` (about a minute). Which files does `runs/gpu-davis16-qmvos` get,
#    and which rank writes them?
# 3. `qmvos_from_xmem` refuses a QMVOS checkpoint and one of other dimensions. Make a state dict of
#    the "base" size (`build_network(model_config("xmem"))`) and try to turn it into a *small* QMVOS.
#    What does the message say?
# 4. The paper trains with batch 16 (QMVOS Sec. 3.4). With 8 GPUs, which `batch_size` reproduces it, and what
#    happens to the number of clips per epoch each GPU sees?

# %% [markdown]
# ## Summary
#
# * `gpu-davis16` trains the released size on one GPU; `paper` holds the released stage-3 settings
#   (lr 2e-5 there; the paper prints 1e-5).
# * AMP runs the forward pass in bfloat16 (float16 with a loss scaler) and keeps reductions in float32.
# * The same trainer runs data-parallel under `torchrun`; the batch size is per process.
# * `qmvos_from_xmem` copies every shared XMem tensor and starts the SIM and QCIM fresh, with zero
#   queries (logit 0) at the start; the paper does not say how it initialised QMVOS.
#
# ## References
#
# * H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation", ICME 2024,
#   arXiv:2403.11529: Sec. 3.4 (implementation details), Sec. 4.2 (XMem retrained).
# * H. K. Cheng, A. G. Schwing, "XMem", ECCV 2022, and its supplementary material (training stages).
# * I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW).
# * Library: `qmvos_lab/train/presets.py`, `qmvos_lab/train/trainer.py`, `qmvos_lab/checkpoints/`.
