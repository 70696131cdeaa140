"""The `qmvos-lab` command line. Each subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import sys

from .errors import QmvosLabError

DESCRIPTION = """\
QMVOS Lab: learn, run, train and ablate QMVOS (query modulation for semi-supervised video
object segmentation) and its XMem baseline.

Subcommands:
  demo   run the main job on embedded, generated data (no downloads)
  info   describe a checkpoint: variant, dimensions, parameter count

Run `qmvos-lab <subcommand> --help` for the options of each."""


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
