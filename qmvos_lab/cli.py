"""The `qmvos-lab` command line. Each subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import sys

from .errors import QmvosLabError

DESCRIPTION = """\
QMVOS Lab: learn, run, train and ablate QMVOS (query modulation for semi-supervised video
object segmentation) and its XMem baseline. Run `qmvos-lab <subcommand> --help` for the
options of each subcommand."""


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(num_frames=args.frames, height=args.height, width=args.width)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoints import load_checkpoint

    model = load_checkpoint(args.checkpoint, progress=not args.quiet)
    info = model.checkpoint_info
    params = sum(p.numel() for p in model.parameters())
    print(f"checkpoint: {info.source}")
    print(f"variant:    {info.variant}")
    print(f"dimensions: key {info.config.key_dim}, value {info.config.value_dim}, hidden {info.config.hidden_dim}")
    print(f"parameters: {params:,} ({len(model.state_dict())} state-dict entries)")
    for note in info.notes:
        print(f"note:       {note}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .eval import evaluate_folders, write_results

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmvos-lab", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"qmvos-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>")

    demo = sub.add_parser("demo", help="run the main job on embedded, generated data",
                          description="Run the main job on generated data, with no downloads.")
    demo.add_argument("--frames", type=int, default=6, help="clip length (default 6)")
    demo.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    demo.add_argument("--width", type=int, default=432, help="frame width (default 432)")
    demo.set_defaults(func=cmd_demo)

    info = sub.add_parser("info", help="describe a checkpoint",
                          description="Load a checkpoint (file, URL or release name such as XMem) "
                                      "and describe it.")
    info.add_argument("checkpoint", help="a .pth file, an http(s) URL, or a release name (XMem, XMem-s012, ...)")
    info.add_argument("--quiet", action="store_true", help="no download progress bar")
    info.set_defaults(func=cmd_info)

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except QmvosLabError as error:
        print(f"qmvos-lab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qmvos-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
