"""The `qmvos-lab` argument parser: one small function per subcommand's options."""

from __future__ import annotations

import argparse

from .commands import (GPU_PRESETS, cmd_ablate, cmd_data, cmd_demo, cmd_dose_response, cmd_evaluate, cmd_info,
                       cmd_package_youtube, cmd_segment, cmd_train)

DESCRIPTION = """\
QMVOS Lab: learn, run, train and ablate QMVOS (query modulation for semi-supervised video
object segmentation) and its XMem baseline. Run `qmvos-lab <subcommand> --help` for the
options of each subcommand."""


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


def _inference_defaults():
    from ..config import InferenceConfig

    return InferenceConfig()


def build_parser() -> argparse.ArgumentParser:
    """The `qmvos-lab` parser: one subparser per command (the functions below)."""
    parser = OneLineParser(prog="qmvos-lab", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"qmvos-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>")
    _add_demo(sub)
    _add_info(sub)
    _add_segment(sub)
    _add_train(sub)
    _add_ablate(sub)
    _add_dose_response(sub)
    _add_data(sub)
    _add_evaluate(sub)
    _add_package_youtube(sub)
    return parser


def _add_demo(sub) -> None:
    """The `demo` subcommand's options."""
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


def _add_info(sub) -> None:
    """The `info` subcommand's options."""
    info = sub.add_parser("info", help="describe a checkpoint",
                          description="Load a checkpoint (file, URL or release name such as XMem) "
                                      "and describe it.")
    info.add_argument("checkpoint", help="a .pth file, an http(s) URL, or a release name (XMem, XMem-s012, ..., QMVOS)")
    info.add_argument("--quiet", action="store_true", help="no download progress bar")
    info.set_defaults(func=cmd_info)


def _add_segment(sub) -> None:
    """The `segment` subcommand's options."""
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


def _add_train(sub) -> None:
    """The `train` subcommand's options."""
    train = sub.add_parser(
        "train", help="train XMem or QMVOS (or a Table 3 ablation) from a preset",
        description="Train from a preset (cpu-tiny, gpu-davis16, paper). Writes runs/<name>/: config.json, "
                    "metrics.jsonl, checkpoint.pth (resumable) and final.pth. Under torchrun the same command "
                    "trains with DistributedDataParallel.")
    from ..ablations import ABLATIONS
    from ..train.presets import PRESETS

    train.add_argument("--preset", required=True, choices=list(PRESETS))
    train.add_argument("--model", default="qmvos", choices=["xmem", "qmvos"], help="default qmvos")
    train.add_argument("--ablation", choices=list(ABLATIONS),
                       help="a Table 3 variant (overrides --model)")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                       help="override preset settings, e.g. iterations=500 lr=5e-5 init=XMem")
    train.add_argument("--name", help="run name (default <preset>-<model>)")
    train.add_argument("--probe-videos", type=positive_int, default=None, metavar="N",
                       help="QMVOS only: log the mechanism metrics (own-object mass, preferences, ...) on N "
                            "synthetic-hard videos into metrics.jsonl as it trains (qmvos_lab.mechanism)")
    train.add_argument("--probe-every", type=positive_int, default=None, metavar="K",
                       help="probe every K iterations, a multiple of log_every (default: about 16 times a run)")
    train.add_argument("--runs-dir", default="runs", help="parent folder of run folders (default runs/)")
    train.add_argument("--resume", action="store_true", help="continue the run from its checkpoint.pth")
    train.add_argument("--overwrite", action="store_true",
                       help="restart a run whose folder exists (its files are removed first)")
    train.add_argument("--allow-cpu", action="store_true",
                       help=f"train a GPU preset ({', '.join(GPU_PRESETS)}) on a machine without a GPU")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)


def _add_ablate(sub) -> None:
    """The `ablate` subcommand's options."""
    ablate = sub.add_parser(
        "ablate", help="rerun QMVOS Table 3: variants x seeds, paired intervals, next to the paper",
        description="Train and evaluate every (variant, seed) run of a preset through the trained-network cache "
                    "(finished runs are reused, stopped ones resume), then compare each variant with the full "
                    "model: paired intervals (videos; runs and videos), exact sign-flip p-values with Holm's "
                    "adjustment, the difference the design could detect (80 % power), IQM and probability of "
                    "improvement, next to the paper's Table 3. Writes DIR/runs.csv, DIR/summary.csv, "
                    "jf_per_variant.png, differences.png.")
    from ..ablations import ABLATIONS, BEYOND_THE_PAPER

    paper = [name for name in ABLATIONS if name not in BEYOND_THE_PAPER]
    ablate.add_argument("--preset", required=True, help="training preset of every run (cpu-tiny, ...)")
    ablate.add_argument("--variants", default="all",
                        help=f"comma-separated variants: Table 3's ({', '.join(paper)}; all: every one, the default) "
                             f"or beyond the paper ({', '.join(BEYOND_THE_PAPER)})")
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


def _add_dose_response(sub) -> None:
    """The `dose-response` subcommand's options."""
    from ..ablate.dose import COUNTS, DEFAULT_VIDEOS, SIMILARITIES

    dose = sub.add_parser(
        "dose-response", help="the QMVOS - XMem gap against object similarity and object count (QMVOS Fig. 3's "
                              "claim as a curve)",
        description="Score two variants (default qmvos and xmem; each seed trained once into the cache, the "
                    "same runs as `ablate`) on held-out generated videos (split synthetic-dose) at each object "
                    "similarity (4 objects) and each object count (similarity 0.9), and report the gap per point "
                    "with its two-stage interval, Holm-adjusted sign-flip p and minimum detectable difference, and "
                    "the trend (last point minus first, paired by scene). Writes DIR/dose_runs.csv, "
                    "DIR/dose_gaps.csv and DIR/dose_response.png; a rerun reads every score from the cache.")
    dose.add_argument("--preset", default="cpu-tiny", help="training preset of every run (default cpu-tiny)")
    dose.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    dose.add_argument("--variant", default="qmvos", help="the variant (default qmvos)")
    dose.add_argument("--reference", default="xmem", help="what the gap is measured against (default xmem)")
    dose.add_argument("--similarities", default=",".join(f"{s:g}" for s in SIMILARITIES),
                      help="comma-separated similarities in [0, 1] (default %(default)s)")
    dose.add_argument("--counts", default=",".join(str(k) for k in COUNTS),
                      help="comma-separated object counts (default %(default)s)")
    dose.add_argument("--videos", type=positive_int, default=DEFAULT_VIDEOS,
                      help="held-out videos per point (default %(default)s)")
    dose.add_argument("--length", type=positive_int, default=None, help="frames per video (default: the split's)")
    dose.add_argument("--output", required=True, help="folder for the tables and the figure")
    dose.add_argument("--jobs", type=positive_int, default=1, help="local worker processes (default 1)")
    dose.add_argument("--cache", default=None,
                      help="folder of the trained-network cache (default $QMVOS_LAB_CACHE or ~/.cache/qmvos-lab)")
    dose.add_argument("--allow-cpu", action="store_true",
                      help=f"run a GPU preset ({', '.join(GPU_PRESETS)}) on a machine without a GPU")
    dose.add_argument("--quiet", action="store_true", help="no progress bars")
    dose.set_defaults(func=cmd_dose_response)


def _add_data(sub) -> None:
    """The `data` subcommand's options."""
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


def _add_evaluate(sub) -> None:
    """The `evaluate` subcommand's options."""
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


def _add_package_youtube(sub) -> None:
    """The `package-youtube` subcommand's options."""
    youtube = sub.add_parser(
        "package-youtube", help="zip YouTube-VOS results for the evaluation server",
        description="Zip Annotations/<video>/<frame>.png for exactly the frames of valid/JPEGImages.")
    youtube.add_argument("--results", required=True, help="results folder, one subfolder of PNGs per video")
    youtube.add_argument("--frames", required=True, help="YouTube-VOS valid/JPEGImages")
    youtube.add_argument("--output", required=True, help="the zip file to write")
    youtube.set_defaults(func=cmd_package_youtube)
