"""The trainer: optimisation, checkpoints that resume exactly, metrics, and DDP through torchrun.

`Trainer(config, run_dir).train()` runs `config.iterations` iterations of the training pass
(clip_pass.py, through `TrainWrapper`) with AdamW, a step or cosine lr schedule with optional
warm-up (schedule.py), gradient clipping and frozen BatchNorm (as upstream), optionally with
autocast (bf16 where supported). It writes into `run_dir`:
    config.json          the TrainConfig and the ModelConfig
    metrics.jsonl        one line per `log_every` iterations: loss terms averaged over those
                         iterations, lr, it/s, memory (and, with a `probe`, what it measured)
    checkpoint.pth       the latest training checkpoint (network, optimiser, scheduler, scaler,
                         iteration, data position, the log window, the RNG states of every
                         rank), rewritten atomically
    final.pth            the trained network (a QMVOS Lab checkpoint, loadable by segment)
SIGINT / SIGTERM save a checkpoint before exiting; `resume=True` continues from checkpoint.pth
exactly (same losses as an uninterrupted run on the CPU), and refuses settings that changed.

Run under `torchrun --nproc_per_node N` the same code trains with DistributedDataParallel (gloo
on the CPU, NCCL on GPUs); each rank draws different clips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from ..ablations import model_config
from ..atomic import atomic_path, empty_folder
from ..checkpoints import init_from_imagenet, load_checkpoint, qmvos_from_xmem, save_checkpoint
from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from ..inference.fast import autocast_dtype, prepare_network
from ..model import build_network
from ..resources import peak_memory_mib
from .clip_pass import PassConfig, TrainWrapper
from .data import build_dataset
from .fast_path import resolve_fast_path
from .losses import clip_loss
from .run_files import _numpy_state_from_tensors, _numpy_state_to_tensors, read_metrics, read_training_checkpoint
from .sampler import EpochSampler
from .schedule import build_scheduler

__all__ = ["EpochSampler", "Trainer", "freeze_batchnorm", "read_metrics", "read_training_checkpoint"]


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm layers keep their running statistics (eval mode) while training, as upstream."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                 callback: Callable[[dict], None] | None = None, progress: bool = True,
                 probe: Callable[[torch.nn.Module, int], dict] | None = None, *,
                 network: torch.nn.Module | ModelConfig | None = None):
        """probe: optional, called on rank 0 with (network, iteration) on each logged iteration; what
        it returns joins that line of metrics.jsonl (e.g. `mechanism.MechanismProbe`). Off by default.
        network: the network to train, or the ModelConfig to build it from (from scratch only); None
        builds the one `config` names (its ablation at its model size, initialised as `config.init`)."""
        self.run_dir, self.callback, self.progress, self.probe = Path(run_dir), callback, progress, probe
        self.config = config
        self._join_process_group()
        self._seed_everything(config.seed * 1000 + self.rank)
        self._prepare_network(network, resume)
        self._prepare_optimisation()
        self._prepare_data()
        self.iteration, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.log_window: dict[str, float] = {}  # sums of the step metrics since the last log line, "iterations"
        self.stop_requested = False
        self._open_run_folder(resume)

    # ------------------------------------------------------------------------------ set-up
    def _join_process_group(self) -> None:
        """Under torchrun (WORLD_SIZE > 1, set by the launcher): join the process group (NCCL on GPUs,
        gloo on CPUs) and take GPU LOCAL_RANK. Sets distributed, rank, world, local_rank and device."""
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def _prepare_network(self, network: torch.nn.Module | ModelConfig | None, resume: bool) -> None:
        """The network (`self.network`) on the device in its memory layout, and the training pass around it
        (`self.model`: TrainWrapper, under DDP when distributed). Resolves the config's fast path."""
        self.model = self._build_model(network).to(self.device)
        # after the build, whose bad input (an --init or ImageNet file) is refused before any timing is
        # recorded; the timing leaves the random state as it was
        self.config = config = self._resolve_fast_path(self.config, resume)
        self.model.inference_size = config.inference_size  # saved with it: how it segments generated videos
        prepare_network(self.model, config.channels_last, config.compile, dynamic=None)  # as inference does
        self.network = self.model
        self.model = TrainWrapper(self.network, PassConfig(config.num_ref_frames, config.deep_update_prob))
        if self.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=True)  # the deep update is random

    def _prepare_optimisation(self) -> None:
        """AdamW, the lr schedule, and autocast with its gradient scaler."""
        config = self.config
        # the fused AdamW kernel on GPUs (one launch for all parameters); the CPU keeps the default
        # implementation, whose arithmetic the CPU recipes and their cached networks were made with
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=config.lr, weight_decay=config.weight_decay,
                                           fused=self.device.type == "cuda")
        self.scheduler = build_scheduler(self.optimizer, config)
        # amp: bf16 autocast where supported (GPUs with bf16, and CPUs), fp16 with a gradient scaler otherwise
        self.amp_dtype = autocast_dtype(self.device) if config.amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def _prepare_data(self) -> None:
        """The training clips, their per-epoch sampler and the generator of memory picks and deep updates."""
        config = self.config
        self.dataset = build_dataset(config)
        self.sampler = EpochSampler(len(self.dataset), config.seed, config.batch_size, config.iterations,
                                    self.rank, self.world)
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + self.rank)  # memory picks, deep updates

    def _open_run_folder(self, resume: bool) -> None:
        """A fresh run empties its folder and writes config.json; a resumed one loads checkpoint.pth.
        Opens TensorBoard when asked (rank 0 only)."""
        config = self.config
        if not resume and self.rank == 0:  # a fresh run: an old run's files go first, never mixed with the new
            empty_folder(self.run_dir)
        self.tensorboard = None
        if config.tensorboard and self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        if resume:
            self._load_training_checkpoint()
        elif self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.run_dir / "config.json") as tmp:
                tmp.write_text(json.dumps({"train": config.to_dict(), "model": self.network.config.to_dict()},
                                          indent=2) + "\n")
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)

    def _resolve_fast_path(self, config: TrainConfig, resume: bool) -> TrainConfig:
        """amp / channels_last left to "auto": a resumed run keeps what it was started with (its
        config.json, else its checkpoint's settings), a new one times them on this machine
        (fast_path.py); either way resolved. A resume never times: where neither file says, fp32
        stands in and loading the checkpoint then refuses the run with its own one-line reason."""
        if config.amp is not None and config.channels_last is not None:
            return config
        if resume:
            train = self._saved_train_settings()
            return dataclasses.replace(
                config, amp=bool(train.get("amp", False)) if config.amp is None else config.amp,
                channels_last=bool(train.get("channels_last", False)) if config.channels_last is None
                else config.channels_last)
        if not self.distributed:
            return resolve_fast_path(config, log=print if self.progress else None)
        chosen = [resolve_fast_path(config, log=print if self.progress else None) if self.rank == 0 else None]
        dist.broadcast_object_list(chosen, src=0)  # one choice for every rank: rank 0's
        return chosen[0]

    def _saved_train_settings(self) -> dict:
        """The train settings a run was started with: its config.json, else its checkpoint's; {} if
        neither can be read."""
        try:
            train = json.loads((self.run_dir / "config.json").read_text())["train"]
            if "amp" in train and "channels_last" in train:
                return train
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            state = torch.load(self.run_dir / "checkpoint.pth", map_location="cpu", weights_only=True)
            return dict(state["train_config"])
        except Exception:  # noqa: BLE001 - a missing or broken checkpoint is refused when it is loaded
            return {}

    @staticmethod
    def _seed_everything(seed: int) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2 ** 32)
        random.seed(seed)

    def _build_model(self, network: torch.nn.Module | ModelConfig | None = None):
        """The network to train: `network` as given, built from a given ModelConfig (from scratch), else
        the config's ablation at its model size, from scratch, ImageNet or a checkpoint (`init`)."""
        c = self.config
        if isinstance(network, ModelConfig):
            if c.init != "scratch":
                raise UserError(f"{c.name}: a network with its own ModelConfig trains from scratch only, "
                                f"not init={c.init!r}; drop the init setting")
            return build_network(network)
        if network is not None:
            return network
        if c.init in ("scratch", "imagenet"):
            model = build_network(model_config(c.ablation, c.model_size))
            if c.init == "imagenet":
                init_from_imagenet(model, c.resnet50 or None, c.resnet18 or None, seed=c.seed)
            return model
        if c.ablation == "xmem":
            return load_checkpoint(c.init, progress=self.rank == 0)
        loaded = load_checkpoint(c.init, progress=self.rank == 0)
        wanted = model_config(c.ablation, **loaded.config.dimensions())
        if loaded.config == wanted:
            return loaded
        if loaded.config.queries:
            raise UserError(f"checkpoint {c.init} is a {loaded.checkpoint_info.variant} network, not the "
                            f"{c.ablation} variant asked for")
        model, _ = qmvos_from_xmem(c.init, wanted, progress=False)
        return model

    def _loader(self):
        self.sampler.set_position(self.epoch, self.batch_in_epoch * self.config.batch_size, self.iteration)
        self.dataset.set_epoch(self.epoch)
        workers = self.config.workers
        # the workers' base seed comes from a generator of its own: drawn from torch's global one, it
        # would shift the dropout draws of a resumed run (items are seeded by (seed, epoch, index) anyway)
        seeds = torch.Generator().manual_seed((self.config.seed * 1000 + self.rank) * 100_003 + self.epoch)
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=self.config.batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=True, persistent_workers=False,
            worker_init_fn=None, multiprocessing_context="fork" if workers > 0 else None, generator=seeds)

    # ------------------------------------------------------------------------------ checkpoints
    def _training_state(self, rng: list[dict]) -> dict:
        return {"iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "train_config": self.config.to_dict(),
                "log_window": dict(self.log_window), "rng": rng}

    def _rng_state(self) -> dict:
        return {"torch": torch.get_rng_state(), "numpy": _numpy_state_to_tensors(np.random.get_state()),
                "python": random.getstate(), "generator": self.generator.get_state()}

    def _rng_states(self) -> list[dict]:
        """The RNG states of every rank, in rank order (each rank draws its own memory picks, deep
        updates and dropout). Under DDP this is a collective: every rank calls save()."""
        if not self.distributed:
            return [self._rng_state()]
        states = [None] * self.world
        dist.all_gather_object(states, self._rng_state())
        return states

    def _average_batchnorm_statistics(self) -> None:
        """Under DDP, BatchNorm layers that learn their statistics (training from scratch) see their
        rank's batches only: average the running statistics over the ranks, so that every rank and
        the checkpoint hold one network. Frozen statistics (as in step()) are equal on every rank already."""
        c = self.config
        frozen = c.freeze_batchnorm if c.freeze_batchnorm is not None else c.init != "scratch"
        if not self.distributed or frozen:
            return
        buffers = [b for m in self.network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for b in (m.running_mean, m.running_var) if b is not None]
        if buffers:
            flat = torch.cat([b.flatten() for b in buffers])
            dist.all_reduce(flat)
            offset = 0
            for b in buffers:
                b.copy_(flat[offset:offset + b.numel()].view_as(b) / self.world)
                offset += b.numel()

    def save(self, name: str = "checkpoint.pth") -> Path | None:
        self._average_batchnorm_statistics()
        rng = self._rng_states()
        if self.rank != 0:
            return None
        return save_checkpoint(self.network, self.run_dir / name, **self._training_state(rng))

    def _refuse_changed_config(self, saved: dict) -> None:
        """Resuming must continue the same run: any setting that changes what is trained is refused."""
        current = self.config.to_dict()
        harmless = ("workers", "log_every", "checkpoint_every", "tensorboard")  # how, not what, is trained
        changed = [f"{key} {saved.get(key)!r} -> {current.get(key)!r}" for key in sorted(set(saved) | set(current))
                   if key not in harmless and saved.get(key) != current.get(key)]
        if changed:
            raise UserError(f"cannot resume {self.run_dir}: its settings changed ({', '.join(changed)}); resume with "
                            "the original settings, or start a new run with --name or --overwrite")

    def _load_training_checkpoint(self) -> None:
        path = self.run_dir / "checkpoint.pth"
        if not path.is_file():
            raise UserError(f"nothing to resume: {path} not found")
        state = read_training_checkpoint(path, self.network)  # plain tensors and numbers only, checked
        self._refuse_changed_config(state["train_config"])
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the kernel follows this machine, not the checkpoint's
            group["fused"] = self.device.type == "cuda"
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.epoch, self.batch_in_epoch = state["iteration"], state["epoch"], state["batch_in_epoch"]
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # one state per rank
        if len(rng) != self.world:
            raise UserError(f"cannot resume {self.run_dir} on {self.world} processes: its checkpoint holds the random "
                            f"state of {len(rng)}; resume with torchrun --nproc_per_node {len(rng)}")
        rng = rng[self.rank]
        self.log_window = dict(state.get("log_window", self.log_window))
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(_numpy_state_from_tensors(rng["numpy"]))
        random.setstate(rng["python"])
        self.generator.set_state(rng["generator"].cpu())

    # ------------------------------------------------------------------------------ training
    def _request_stop(self, signum, frame) -> None:
        self.stop_requested = True

    def step(self, batch: dict) -> dict:
        c = self.config
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        selector = batch["selector"].to(self.device, non_blocking=True)
        num_objects = [int(n) for n in batch["num_objects"]]
        self.model.train()
        if c.freeze_batchnorm or (c.freeze_batchnorm is None and c.init != "scratch"):
            freeze_batchnorm(self.model)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)
        with autocast:
            out = self.model(frames, masks, selector, self.generator)  # TrainWrapper.forward: the clip pass
            losses = clip_loss([x.float() for x in out["logits"]], [x.float() for x in out["probs"]], labels,
                               num_objects, self.iteration, int(c.start_warm * c.iterations),
                               int(c.end_warm * c.iterations))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": losses["total"].item(), "ce": float(losses["ce"].detach()),
                "dice": float(losses["dice"].detach()), "p": losses["p"], "grad_norm": float(grad_norm)}

    def train(self) -> list[dict]:
        """Run to `config.iterations`; returns the logged metrics of this call."""
        c = self.config
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        history, tic, since = [], time.perf_counter(), 0
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.iterations, initial=self.iteration, desc=f"train {c.name}", unit="it")
        try:
            while self.iteration < c.iterations and not self.stop_requested:
                for batch in self._loader():
                    metrics = self.step(batch)
                    window = self.log_window  # checkpointed: a resumed run logs the window it stopped in
                    for key, value in {**metrics, "iterations": 1}.items():
                        window[key] = window.get(key, 0.0) + value
                    self.iteration += 1
                    self.batch_in_epoch += 1
                    since += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
                    if self.iteration % c.log_every == 0 or self.iteration == c.iterations:
                        elapsed = time.perf_counter() - tic
                        count = window.pop("iterations")
                        means = {key: total / count for key, total in window.items()}  # over the window
                        record = {"iteration": self.iteration, **means, "lr": self.scheduler.get_last_lr()[0],
                                  "it_per_s": since / max(elapsed, 1e-9), "memory_mib": peak_memory_mib(self.device)}
                        if self.probe is not None and self.rank == 0:
                            record.update(self.probe(self.network, self.iteration))
                        history.append(record)
                        self._log(record)
                        tic, since, self.log_window = time.perf_counter(), 0, {}
                    if self.iteration % c.checkpoint_every == 0:
                        self.save()
                    if self.iteration >= c.iterations or self.stop_requested:
                        break
                else:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if bar is not None:
                bar.close()
        self.save()
        if self.iteration >= c.iterations and self.rank == 0:
            save_checkpoint(self.network, self.run_dir / "final.pth", iteration=self.iteration)
        return history

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "iteration" and value is not None:  # a probe's undefined metric is None
                    self.tensorboard.add_scalar(f"train/{key}", value, record["iteration"])
        if self.callback is not None:
            self.callback(record)
