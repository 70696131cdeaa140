"""User-facing errors. Each message is one line: what went wrong, where, and how to fix it.

The command line prints them as `qmvos-lab <command>: error: <message>` and exits with status 2;
anything else is a bug and keeps its traceback.
"""

import os
import stat


class QmvosLabError(Exception):
    """Base class of the errors caused by bad input rather than by a bug."""


class UserError(QmvosLabError, ValueError):
    """Bad arguments or input files."""


class CheckpointError(QmvosLabError, ValueError):
    """A checkpoint that cannot be used."""


class DownloadError(QmvosLabError, RuntimeError):
    """A download that could not be completed."""


NO_SPACE_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (a disk quota counts as a full disk)


class NoSpaceError(UserError):
    """The disk filled up while writing `path` (what was being written has been removed). The command
    line names the option that chooses the place (`--output`, `--runs-dir`, `--root`)."""

    def __init__(self, path, setting: str = "output folder"):
        self.path = path
        super().__init__(self.message(setting))

    def message(self, setting: str) -> str:
        return f"no space left on device at {self.path}; free space or choose another {setting}"


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, NoSpaceError) or (isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS)


class QmvosLabWarning(UserWarning):
    """Input that was accepted by a documented rule its author may not expect (one line; the
    command line prints it as `qmvos-lab <command>: warning: <message>`)."""


def not_a_file(path) -> str | None:
    """Why `path` cannot be read as a file ("not found", "is a folder", "is a FIFO (named pipe), not a
    regular file", ...), or None for a regular file. Never opens it (opening a FIFO blocks)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"is {kind}, not a regular file; give a file saved on disk"
