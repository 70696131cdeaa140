"""The `qmvos-lab` command line. Each subcommand is a thin layer over the library.

This is where every user-facing failure becomes one line on stderr, `qmvos-lab <command>:
error: <what, where, how to fix>`, with exit status 2: bad arguments (argparse), the library's
UserErrors, and the operating system's refusals (a full disk, a permission). Ctrl-C and SIGTERM
stop a command the same way (exit status 130 and 143): what was being written is removed and the
previous output stays as it was; a download keeps its partial file, and a training run saves a
checkpoint to resume from (and exits with 130). Each command checks its inputs and outputs before
loading a model or starting the work.

What each subcommand does is in commands.py (`cmd_<subcommand>`), its options in parser.py
(`_add_<subcommand>`); this module runs one and turns its failures into that line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings

from ..errors import NoSpaceError, QmvosLabError, QmvosLabWarning, is_no_space
from .parser import build_parser

__all__ = ["build_parser", "main"]


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

    from ..atomic import Terminated, raise_terminated

    if args.command in ("demo", "train", "segment", "ablate", "dose-response", "evaluate"):  # the commands that compute
        from ..machine import use_physical_cores

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

