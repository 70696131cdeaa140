"""What each `qmvos-lab` subcommand does, given its parsed arguments: a thin layer over the library
that checks the inputs and outputs before loading a model or starting the work."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..errors import QmvosLabError, UserError, is_no_space

GPU_PRESETS = ("gpu-davis16", "paper")  # training presets sized for GPUs (train/presets.py)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..atomic import check_writable
    from ..demo import run_demo
    from ..cache import cache_root

    for setting, path in (("--output", args.output), ("--cache", cache_root(args.cache)),
                          ("data folder", "data/generated")):
        check_writable(path, setting)
    run_demo(iterations=args.iterations, videos=args.videos, output=args.output, cache=args.cache,
             progress=not args.quiet)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..checkpoints import load_checkpoint
    from ..segment import network_size

    model = load_checkpoint(args.checkpoint, progress=not args.quiet)
    info = model.checkpoint_info
    params = sum(p.numel() for p in model.parameters())
    print(f"checkpoint: {info.source}")
    print(f"variant:    {info.variant}")
    print(f"dimensions: key {info.config.key_dim}, value {info.config.value_dim}, hidden {info.config.hidden_dim}")
    print(f"parameters: {params:,} ({len(model.state_dict())} state-dict entries)")
    saved = model.inference_size
    print(f"inference size: {saved} (saved with the checkpoint; segment uses it unless --size)" if saved > 0
          else f"inference size: none saved (segment uses {network_size(model)} unless --size)")
    for note in info.notes:
        print(f"note:       {note}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from ..checkpoints import load_checkpoint
    from ..config import InferenceConfig
    from ..segment import (check_device, check_memory_budget, check_outputs, check_size, check_trace_path, load_inputs,
                          network_size, segment_to_folder)

    try:
        config = InferenceConfig(
            top_k=args.top_k, mem_every=args.mem_every, deep_update_every=args.deep_update_every,
            enable_long_term=not args.no_long_term, max_mid_term_frames=args.max_mid_term_frames,
            min_mid_term_frames=args.min_mid_term_frames, num_prototypes=args.num_prototypes,
            max_long_term_elements=args.max_long_term_elements,
            size=InferenceConfig().size if args.size is None else args.size)
    except ValueError as error:
        raise UserError(str(error).replace("InferenceConfig.", "--").replace("_", "-")) from None
    check_device(args.device)
    # everything is checked before the model is loaded
    inputs = load_inputs(args.frames, args.masks)
    if args.size is not None:
        check_size(config.size, inputs.frame_size)
        check_memory_budget(config, inputs, args.device)
    check_outputs(args.output, args.overwrite, args.overlay, inputs)
    check_trace_path(args.trace, args.overwrite, args.output)
    model = load_checkpoint(args.checkpoint, progress=not args.quiet)
    if args.size is None:  # the size the checkpoint was trained for, else 480
        config = dataclasses.replace(config, size=network_size(model))
        check_size(config.size, inputs.frame_size)
        check_memory_budget(config, inputs, args.device)
    summary = segment_to_folder(model, inputs, args.output, config, device=args.device,
                                amp={"on": True, "off": False}.get(args.amp, args.amp), compile=args.compile,
                                channels_last=args.channels_last,
                                save_scores=args.save_scores, overlay_path=args.overlay,
                                overwrite=args.overwrite, progress=not args.quiet, trace_path=args.trace)
    print(summary.line())
    if args.trace is not None:
        print(f"trace: {args.trace} (open it with qmvos_lab.viz.open_explorer)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from ..atomic import check_writable

    if args.root is None:
        args.root = "data" if args.action == "download" else "data/generated"
    check_writable(args.root, "--root")
    if args.action == "download":
        from ..data.datasets import download_dataset

        root = download_dataset(args.name, args.root, url=args.url, sha256=args.sha256, progress=not args.quiet)
        print(f"{args.name} is in {root}")
    else:
        from ..data.synthetic import SPLITS, write_split

        if args.name not in SPLITS:
            raise UserError(f"unknown generated split {args.name!r}; choose from {', '.join(SPLITS)}")
        root = write_split(args.root, args.name, num_videos=args.videos, overwrite=args.overwrite)
        print(f"{args.name} is in {root} (DAVIS layout: JPEGImages, Annotations, Given, ImageSets)")
    return 0


def _check_training_device(args: argparse.Namespace) -> None:
    """A GPU preset on a machine without a GPU would run for hours or run out of memory: refuse."""
    import torch

    if args.preset in GPU_PRESETS and not torch.cuda.is_available() and not args.allow_cpu:
        raise UserError(f"--preset {args.preset} is sized for a GPU and this machine has none (CUDA unavailable); "
                        "use --preset cpu-tiny, or pass --allow-cpu to train it on the CPU anyway")


def _mechanism_probe(args: argparse.Namespace, config):
    """The MechanismProbe of `train --probe-videos N [--probe-every K]` (None without it)."""
    from ..ablations import model_config

    if args.probe_every is not None and args.probe_videos is None:
        raise UserError("--probe-every sets how often the mechanism probe runs: add --probe-videos N")
    if args.probe_videos is None:
        return None
    if not model_config(config.ablation, config.model_size).queries:
        raise UserError(f"--probe-videos measures the queries' attention and {config.ablation} has no queries; "
                        "train qmvos (or a QMVOS variant) or leave --probe-videos out")
    from ..mechanism.probe import MechanismProbe, probe_period

    every = args.probe_every or probe_period(config.iterations, config.log_every)
    if every % config.log_every:
        raise UserError(f"--probe-every {every}: the probe runs on logged iterations, so it must be a multiple of "
                        f"log_every ({config.log_every}); pick e.g. {(every // config.log_every + 1) * config.log_every}")
    from ..data.synthetic import split_videos

    return MechanismProbe(list(split_videos("synthetic-hard", args.probe_videos)), every=every)


def cmd_train(args: argparse.Namespace) -> int:
    import importlib.util

    from ..atomic import check_writable
    from ..train.data import check_data
    from ..train.presets import preset
    from ..train.settings import check_config, parse_settings

    _check_training_device(args)
    overrides = parse_settings(args.set or [])
    if args.resume and args.overwrite:
        raise UserError("--resume continues a run and --overwrite restarts it; choose one")
    overrides["ablation"] = overrides.get("ablation", args.ablation or args.model)
    try:
        config = preset(args.preset, **overrides)
    except (ValueError, TypeError) as error:
        raise UserError(str(error)) from None
    config.name = args.name or overrides.get("name") or f"{args.preset}-{config.ablation}"
    check_config(config, world=int(os.environ.get("WORLD_SIZE", "1")))  # processes under torchrun
    check_data(config)
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UserError("tensorboard=true needs the tensorboard package: pip install tensorboard")
    probe = _mechanism_probe(args, config)
    run_dir = Path(args.runs_dir) / config.name
    check_writable(run_dir, "--runs-dir")
    if args.resume and not (run_dir / "checkpoint.pth").is_file():
        why = " (the run stopped before its first checkpoint); restart it with --overwrite" if run_dir.is_dir() else ""
        raise UserError(f"nothing to resume: {run_dir / 'checkpoint.pth'} not found{why}")
    if run_dir.exists() and any(run_dir.iterdir()) and not args.resume and not args.overwrite:
        raise UserError(f"run folder {run_dir} exists; pass --resume to continue it or --overwrite to restart")

    from ..train.trainer import Trainer

    import contextlib

    from ..locks import output_lock

    existed = run_dir.exists()
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun the ranks share the run: rank 0 locks it
    try:
        # a second `train` of the same run is refused, naming the first
        with output_lock(run_dir, "--name") if first_rank else contextlib.nullcontext():
            trainer = Trainer(config, run_dir, resume=args.resume, progress=not args.quiet, probe=probe)
            history = trainer.train()
    except (QmvosLabError, OSError) as error:
        if is_no_space(error) and not (run_dir / "checkpoint.pth").is_file():
            import shutil  # a run that never saved a checkpoint holds nothing to resume: leave no half run

            shutil.rmtree(run_dir, ignore_errors=True)
            if existed:
                run_dir.mkdir(exist_ok=True)
        raise
    if trainer.rank == 0:
        last = history[-1] if history else {}
        if trainer.iteration < config.iterations:  # stopped by Ctrl-C or SIGTERM, after saving a checkpoint
            print(f"qmvos-lab train: interrupted at iteration {trainer.iteration}; {run_dir / 'checkpoint.pth'} "
                  "is saved: continue with the same command and --resume", file=sys.stderr)
            return 130
        print(f"{config.name}: finished at iteration {trainer.iteration}; last loss "
              f"{last.get('loss', float('nan')):.4f}; run folder {run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..eval import evaluate_folders, write_results
    from ..eval.davis import check_output

    check_output(args.output)  # before the work
    sequences = [s for s in args.sequences.split(",") if s] if args.sequences else None
    result = evaluate_folders(args.gt, args.results, sequences, davis2016=args.davis2016,
                              progress=not args.quiet)
    written = write_results(result, args.output)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(result.global_results.to_string(index=False))
        print()
        print(result.per_sequence.to_string(index=False))
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_package_youtube(args: argparse.Namespace) -> int:
    from ..eval import package_youtube_submission

    path, count = package_youtube_submission(args.results, args.frames, args.output)
    print(f"wrote {path} with {count} masks")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    import time

    from .. import ablate
    from ..atomic import check_writable
    from ..train.settings import parse_settings

    _check_training_device(args)
    check_writable(args.output, "--output")
    names = list(ablate.TABLE3) if args.variants == "all" else [v for v in args.variants.split(",") if v.strip()]
    custom = {name: ablate.parse_pairs(pairs, f"--custom {name}") for name, *pairs in args.custom or []}
    variants = {**{name: {} for name in names}, **custom}
    ablate.variants_from(variants)  # bad names and seeds fail before anything is made
    ablate.seeds_from(args.seeds)
    given = args.reference is not None  # the default (qmvos) may be absent: then nothing is compared
    args.reference = args.reference or "qmvos"
    if given and args.reference not in variants:  # compared after every run has trained: check it now
        raise UserError(f"--reference {args.reference} is not among the variants run ({', '.join(variants)}); "
                        "add it to --variants or choose one of them")
    if args.speed:
        from ..config import MODEL_SIZES

        if args.speed_size not in MODEL_SIZES:
            raise UserError(f"--speed-size {args.speed_size}: choose from {', '.join(MODEL_SIZES)}")
    executor = None
    if args.slurm is not None:
        executor = ablate.slurm_executor(Path(args.output) / "submitit", **ablate.parse_pairs(args.slurm, "--slurm"))
    tic = time.perf_counter()
    runs = ablate.run_ablations(variants, args.seeds, args.preset, eval_set=args.eval_set,
                                eval_videos=args.eval_videos, overrides=parse_settings(args.set or []),
                                jobs=args.jobs, executor=executor, cache=args.cache, progress=not args.quiet)
    summary = ablate.compare(runs, reference=args.reference)
    speed = ablate.speed_table(size=args.speed_size) if args.speed else None
    written = ablate.write_outputs(runs, summary, args.output, reference=args.reference, speed=speed)
    print(ablate.format_summary(summary, speed))
    print(f"\n{runs.attrs.get('reused', 0)} of {runs.groupby(['variant', 'seed']).ngroups} runs reused; "
          f"wall time {time.perf_counter() - tic:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 0


def _numbers(text: str, option: str, kind=float) -> list:
    """A comma-separated list of numbers, or one clear line naming the option."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated numbers, e.g. "
                        f"{'0,0.5,0.8' if kind is float else '1,2,4'}") from None
    if not values:
        raise UserError(f"{option}: give at least one value")
    return values


def cmd_dose_response(args: argparse.Namespace) -> int:
    import time

    from .. import ablate
    from ..ablate import dose
    from ..atomic import check_writable
    from ..ablate.report import write_csv
    from ..viz.save import save_figure

    _check_training_device(args)
    check_writable(args.output, "--output")
    ablate.variants_from([args.reference, args.variant])  # unknown names fail before anything is made
    ablate.seeds_from(args.seeds)
    cells = dose.cells(_numbers(args.similarities, "--similarities"), _numbers(args.counts, "--counts", int),
                       args.videos, args.length)  # bad levels fail here too
    tic = time.perf_counter()
    runs = dose.run_dose_response(args.variant, args.reference, args.seeds, args.preset,
                                  similarities=[c.level for c in cells if c.axis == "similarity"],
                                  counts=[int(c.level) for c in cells if c.axis == "objects"], videos=args.videos,
                                  length=args.length, jobs=args.jobs, cache=args.cache, progress=not args.quiet)
    table = dose.gaps(runs, args.variant, args.reference)
    text, figure = dose.format_gaps(table, args.variant, args.reference), dose.gap_figure(table, args.variant,
                                                                                           args.reference)
    output = Path(args.output)  # everything is computed: now write (each file atomically)
    written = [write_csv(runs, output / "dose_runs.csv"), write_csv(table, output / "dose_gaps.csv"),
               save_figure(figure, output / "dose_response.png")]
    print(text)
    print(f"\nwall time {time.perf_counter() - tic:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 0
