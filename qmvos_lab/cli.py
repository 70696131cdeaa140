"""The `qmvos-lab` command line. Each subcommand is a thin layer over the library.

This is where every user-facing failure becomes one line on stderr, `qmvos-lab <command>:
error: <what, where, how to fix>`, with exit status 2: bad arguments (argparse), the library's
UserErrors, and the operating system's refusals (a full disk, a permission). Ctrl-C and SIGTERM
stop a command the same way (exit status 130 and 143): what was being written is removed and the
previous output stays as it was; a download keeps its partial file, and a training run saves a
checkpoint to resume from (and exits with 130). Each command checks its inputs and outputs before
loading a model or starting the work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import warnings
from pathlib import Path

from .errors import NoSpaceError, QmvosLabError, QmvosLabWarning, UserError, is_no_space

GPU_PRESETS = ("gpu-davis16", "paper")  # training presets sized for GPUs (train/presets.py)

DESCRIPTION = """\
QMVOS Lab: learn, run, train and ablate QMVOS (query modulation for semi-supervised video
object segmentation) and its XMem baseline. Run `qmvos-lab <subcommand> --help` for the
options of each subcommand."""


def cmd_demo(args: argparse.Namespace) -> int:
    from .atomic import check_writable
    from .demo import run_demo
    from .cache import cache_root

    for setting, path in (("--output", args.output), ("--cache", cache_root(args.cache)),
                          ("data folder", "data/generated")):
        check_writable(path, setting)
    run_demo(iterations=args.iterations, videos=args.videos, output=args.output, cache=args.cache,
             progress=not args.quiet)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoints import load_checkpoint
    from .segment import network_size

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
    from .checkpoints import load_checkpoint
    from .config import InferenceConfig
    from .segment import (check_device, check_memory_budget, check_outputs, check_size, check_trace_path, load_inputs,
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
    from .atomic import check_writable

    if args.root is None:
        args.root = "data" if args.action == "download" else "data/generated"
    check_writable(args.root, "--root")
    if args.action == "download":
        from .data.datasets import download_dataset

        root = download_dataset(args.name, args.root, url=args.url, sha256=args.sha256, progress=not args.quiet)
        print(f"{args.name} is in {root}")
    else:
        from .data.synthetic import SPLITS, write_split

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


def cmd_train(args: argparse.Namespace) -> int:
    import importlib.util

    from .atomic import check_writable
    from .train.data import check_data
    from .train.presets import preset
    from .train.settings import check_config, parse_settings

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
    run_dir = Path(args.runs_dir) / config.name
    check_writable(run_dir, "--runs-dir")
    if args.resume and not (run_dir / "checkpoint.pth").is_file():
        why = " (the run stopped before its first checkpoint); restart it with --overwrite" if run_dir.is_dir() else ""
        raise UserError(f"nothing to resume: {run_dir / 'checkpoint.pth'} not found{why}")
    if run_dir.exists() and any(run_dir.iterdir()) and not args.resume and not args.overwrite:
        raise UserError(f"run folder {run_dir} exists; pass --resume to continue it or --overwrite to restart")

    from .train.trainer import Trainer

    import contextlib

    from .locks import output_lock

    existed = run_dir.exists()
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun the ranks share the run: rank 0 locks it
    try:
        # a second `train` of the same run is refused, naming the first
        with output_lock(run_dir, "--name") if first_rank else contextlib.nullcontext():
            trainer = Trainer(config, run_dir, resume=args.resume, progress=not args.quiet)
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

    from .eval import evaluate_folders, write_results
    from .eval.davis import check_output

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
    from .eval import package_youtube_submission

    path, count = package_youtube_submission(args.results, args.frames, args.output)
    print(f"wrote {path} with {count} masks")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (instead of the usage block, then the error)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def cmd_ablate(args: argparse.Namespace) -> int:
    import time

    from . import ablate
    from .atomic import check_writable
    from .train.settings import parse_settings

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
        from .config import MODEL_SIZES

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


def _inference_defaults():
    from .config import InferenceConfig

    return InferenceConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="qmvos-lab", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"qmvos-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>")

    demo = sub.add_parser("demo", help="run the main job on embedded, generated data",
                          description="Train XMem and QMVOS briefly on generated data (no downloads), segment and "
                                      "evaluate synthetic-val, and write a J&F table, an overlay GIF and "
                                      "an attention figure to outputs/demo/.")
    demo.add_argument("--iterations", type=positive_int, default=None,
                      help="training iterations per model (default: at most 260, as many as fit the demo's time "
                           "budget on this CPU, from a timing of its training step)")
    demo.add_argument("--videos", type=positive_int, default=8, help="synthetic-val videos to evaluate (default 8)")
    demo.add_argument("--output", default="outputs/demo", help="folder for the table and figures")
    demo.add_argument("--cache", default=None,
                      help="folder of the trained-network cache (default $QMVOS_LAB_CACHE or ~/.cache/qmvos-lab)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    info = sub.add_parser("info", help="describe a checkpoint",
                          description="Load a checkpoint (file, URL or release name such as XMem) "
                                      "and describe it.")
    info.add_argument("checkpoint", help="a .pth file, an http(s) URL, or a release name (XMem, XMem-s012, ..., QMVOS)")
    info.add_argument("--quiet", action="store_true", help="no download progress bar")
    info.set_defaults(func=cmd_info)

    segment = sub.add_parser(
        "segment", help="segment a video from its first-frame mask",
        description="Segment the objects of a video (a folder of JPEG/PNG frames or a video file) given their "
                    "masks: the first frame's, and the frames where new objects enter. Writes one palette PNG "
                    "per frame with the original label ids.")
    segment.add_argument("--frames", required=True, help="folder of frames (sorted by name) or a video file")
    segment.add_argument("--masks", required=True, help="folder of label PNGs named like their frames; "
                                                        "the first frame must have one")
    segment.add_argument("--checkpoint", required=True, help="a .pth file, a URL, or a release name such as XMem or QMVOS")
    segment.add_argument("--output", required=True, help="folder for <frame>.png results")
    defaults = _inference_defaults()
    segment.add_argument("--size", type=int, default=None,
                         help="resize the shorter side to this for the network; -1 keeps it (default: the "
                              f"checkpoint's inference size when it saved one, else {defaults.size})")
    segment.add_argument("--top-k", type=int, default=defaults.top_k, help=f"top-k of the memory readout (default {defaults.top_k})")
    segment.add_argument("--mem-every", type=int, default=defaults.mem_every,
                         help=f"a memory frame every r frames (default {defaults.mem_every})")
    segment.add_argument("--deep-update-every", type=int, default=defaults.deep_update_every,
                         help="deep sensory update every k frames; -1 = with memory frames (default)")
    segment.add_argument("--no-long-term", action="store_true", help="working memory only (grows without bound)")
    segment.add_argument("--max-mid-term-frames", type=int, default=defaults.max_mid_term_frames,
                         help=f"T_max of working memory (default {defaults.max_mid_term_frames})")
    segment.add_argument("--min-mid-term-frames", type=int, default=defaults.min_mid_term_frames,
                         help=f"T_min of working memory (default {defaults.min_mid_term_frames})")
    segment.add_argument("--num-prototypes", type=int, default=defaults.num_prototypes,
                         help=f"prototypes per consolidation (default {defaults.num_prototypes})")
    segment.add_argument("--max-long-term-elements", type=int, default=defaults.max_long_term_elements,
                         help=f"long-term memory capacity (default {defaults.max_long_term_elements})")
    segment.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    segment.add_argument("--amp", nargs="?", const="on", default="off", choices=["on", "off", "auto"],
                         help="autocast: bf16 (fp16 on GPUs without bf16); `--amp auto` times fp32 and bf16 on this "
                              "CPU once (per network and frame size) and keeps the faster (default off: exact fp32)")
    segment.add_argument("--compile", action="store_true", help="torch.compile the network (the first frames compile)")
    segment.add_argument("--channels-last", action="store_true", help="NHWC weights and features")
    segment.add_argument("--trace", default=None, metavar="FILE",
                         help="also save the run's trace (attention, memory affinity) to FILE, to explore it "
                              "later without the network: qmvos_lab.viz.open_explorer(FILE)")
    segment.add_argument("--save-scores", action="store_true",
                         help="also write scores/<frame>.npy: float16 (N+1) x H x W probabilities")
    segment.add_argument("--overlay", help="also write an overlay video (.mp4 or .gif)")
    segment.add_argument("--overwrite", action="store_true",
                         help="replace an output folder that holds files (and an existing --overlay file)")
    segment.add_argument("--quiet", action="store_true", help="no progress bars")
    segment.set_defaults(func=cmd_segment)

    train = sub.add_parser(
        "train", help="train XMem or QMVOS (or a Table 3 ablation) from a preset",
        description="Train from a preset (cpu-tiny, gpu-davis16, paper). Writes runs/<name>/: config.json, "
                    "metrics.jsonl, checkpoint.pth (resumable) and final.pth. Under torchrun the same command "
                    "trains with DistributedDataParallel.")
    from .ablations import ABLATIONS
    from .train.presets import PRESETS

    train.add_argument("--preset", required=True, choices=list(PRESETS))
    train.add_argument("--model", default="qmvos", choices=["xmem", "qmvos"], help="default qmvos")
    train.add_argument("--ablation", choices=list(ABLATIONS),
                       help="a Table 3 variant (overrides --model)")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                       help="override preset settings, e.g. iterations=500 lr=5e-5 init=XMem")
    train.add_argument("--name", help="run name (default <preset>-<model>)")
    train.add_argument("--runs-dir", default="runs", help="parent folder of run folders (default runs/)")
    train.add_argument("--resume", action="store_true", help="continue the run from its checkpoint.pth")
    train.add_argument("--overwrite", action="store_true",
                       help="restart a run whose folder exists (its files are removed first)")
    train.add_argument("--allow-cpu", action="store_true",
                       help=f"train a GPU preset ({', '.join(GPU_PRESETS)}) on a machine without a GPU")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    ablate = sub.add_parser(
        "ablate", help="rerun QMVOS Table 3: variants x seeds, paired intervals, next to the paper",
        description="Train and evaluate every (variant, seed) run of a preset through the trained-network cache "
                    "(finished runs are reused, stopped ones resume), then compare each variant with the full "
                    "model: paired intervals (videos; runs and videos), exact sign-flip p-values with Holm's "
                    "adjustment, the difference the design could detect (80 % power), IQM and probability of "
                    "improvement, next to the paper's Table 3. Writes DIR/runs.csv, DIR/summary.csv, "
                    "jf_per_variant.png, differences.png.")
    ablate.add_argument("--preset", required=True, help="training preset of every run (cpu-tiny, ...)")
    ablate.add_argument("--variants", default="all",
                        help=f"comma-separated Table 3 variants ({', '.join(ABLATIONS)}) or all (default)")
    ablate.add_argument("--custom", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a variant of your own: ModelConfig overrides on a base ablation, e.g. "
                             "--custom no-sensory hidden_dim=0 base=qmvos (repeatable)")
    ablate.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ablate.add_argument("--output", required=True, help="folder for the tables and figures")
    ablate.add_argument("--eval-set", default="synthetic-hard",
                        help="held-out generated split (default synthetic-hard, or synthetic-val), "
                             "or davis2017:ROOT / davis2016:ROOT")
    ablate.add_argument("--eval-videos", type=positive_int, help="evaluate on the first N videos (default: all)")
    ablate.add_argument("--reference", default=None,
                        help="the full model each variant is compared with (default qmvos)")
    ablate.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override preset settings (all runs)")
    where = ablate.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=positive_int, default=1, help="local worker processes (default 1: this process)")
    where.add_argument("--slurm", nargs="*", metavar="KEY=VALUE",
                       help="run on Slurm through submitit, e.g. --slurm slurm_partition=gpu timeout_min=60 "
                            "gpus_per_node=1 (cluster=local runs the jobs locally)")
    ablate.add_argument("--cache", default=None,
                        help="folder of the trained-network cache (default $QMVOS_LAB_CACHE or ~/.cache/qmvos-lab)")
    ablate.add_argument("--speed", action="store_true",
                        help="also measure QMVOS / XMem time per frame side by side (Table 3a) into speed.csv")
    ablate.add_argument("--speed-size", default="base", help="network size of the speed run (default base)")
    ablate.add_argument("--allow-cpu", action="store_true",
                        help=f"run a GPU preset ({', '.join(GPU_PRESETS)}) on a machine without a GPU")
    ablate.add_argument("--quiet", action="store_true", help="no progress bars")
    ablate.set_defaults(func=cmd_ablate)

    data = sub.add_parser("data", help="download datasets or write the generated set",
                          description="Download DAVIS / YouTube-VOS (resumable, checksummed) or write a "
                                      "split of the generated video set in the DAVIS layout.")
    data.add_argument("action", choices=["download", "generate"])
    data.add_argument("name", help="download: davis, davis2016, youtube; generate: synthetic-val, "
                                   "synthetic-hard, synthetic-train")
    data.add_argument("--root", default=None, help="target folder (default data/ or data/generated/)")
    data.add_argument("--url", help="download from this URL instead (mirrors; required for youtube)")
    data.add_argument("--sha256", help="expected SHA-256 of the archive")
    data.add_argument("--videos", type=positive_int, help="generate: number of videos (default: the split's)")
    data.add_argument("--overwrite", action="store_true", help="generate: rewrite an existing split")
    data.add_argument("--quiet", action="store_true", help="no progress bar")
    data.set_defaults(func=cmd_data)

    evaluate = sub.add_parser(
        "evaluate", help="J&F against DAVIS-style annotations",
        description="J&F as the official DAVIS tool (semi-supervised protocol): the first and last frames "
                    "are not evaluated, void counts as background, objects are the ids of the first "
                    "annotation. Writes global_results.csv and per-sequence_results.csv.")
    evaluate.add_argument("--gt", required=True, help="annotations folder with one subfolder of PNGs per sequence "
                                                      "(e.g. DAVIS/Annotations/480p)")
    evaluate.add_argument("--results", required=True, help="results folder, same layout")
    evaluate.add_argument("--output", required=True, help="folder for the CSV files")
    evaluate.add_argument("--davis2016", action="store_true", help="DAVIS-2016: every non-zero pixel is the object")
    evaluate.add_argument("--sequences", help="comma-separated subset of sequences (default: all in --gt)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=cmd_evaluate)

    youtube = sub.add_parser(
        "package-youtube", help="zip YouTube-VOS results for the evaluation server",
        description="Zip Annotations/<video>/<frame>.png for exactly the frames of valid/JPEGImages.")
    youtube.add_argument("--results", required=True, help="results folder, one subfolder of PNGs per video")
    youtube.add_argument("--frames", required=True, help="YouTube-VOS valid/JPEGImages")
    youtube.add_argument("--output", required=True, help="the zip file to write")
    youtube.set_defaults(func=cmd_package_youtube)
    return parser


OUTPUT_SETTINGS = {"train": "runs_dir", "data": "root"}  # the option naming where a command writes (else --output)


def _no_space_line(error: BaseException, args: argparse.Namespace) -> str:
    """A full disk: where, and which option chooses another place."""
    dest = OUTPUT_SETTINGS.get(args.command, "output")
    setting = f"--{dest.replace('_', '-')}"
    path = error.path if isinstance(error, NoSpaceError) else error.filename
    path = path if path is not None else getattr(args, dest, None) or "the output folder"
    return NoSpaceError(path).message(setting)


def _one_line(error: BaseException) -> str:
    """The message of a user-facing error, on one line."""
    if isinstance(error, OSError) and not isinstance(error, QmvosLabError):
        where = error.filename if error.filename is not None else ""
        text = f"{where}: {error.strerror}" if error.strerror else str(error)
        return f"cannot use {text.lstrip(': ')} (check the path, the free space and the permissions)"
    return " ".join(str(error).split()) or type(error).__name__


def _warning_printer(command: str, fallback):
    """The kit's own warnings (QmvosLabWarning) as one line `qmvos-lab <command>: warning: ...`."""
    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, QmvosLabWarning):
            return fallback(message, category, filename, lineno, file, line)
        print(f"qmvos-lab {command}: warning: {_one_line(message)}", file=sys.stderr)
    return show


INTERRUPTED = {  # what an interrupted command leaves, where it is not "nothing"
    "data download": "the partial download is kept: run the same command again to resume it",
    "train": "if the run folder holds a checkpoint.pth, run the same command with --resume to continue",
    "demo": "the steps already done (generated data, training runs) are kept; run the same command again",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import threading

    from .atomic import Terminated, raise_terminated

    if args.command in ("demo", "train", "segment", "ablate", "evaluate"):  # the commands that compute
        from .machine import use_physical_cores

        use_physical_cores()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None  # cleans up like Ctrl-C
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command, warnings.showwarning)
            return args.func(args)
    except (QmvosLabError, OSError) as error:
        line = _no_space_line(error, args) if is_no_space(error) else _one_line(error)
        print(f"qmvos-lab {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        by = "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"
        left = INTERRUPTED.get(f"{args.command} {getattr(args, 'action', '')}".strip(), INTERRUPTED.get(
            args.command, "nothing was written; the previous output is as it was"))
        print(f"qmvos-lab {args.command}: interrupted ({by}); {left}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
