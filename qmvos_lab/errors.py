"""User-facing errors. Each message is one line: what went wrong, where, and how to fix it.

The command line prints them as `qmvos-lab <command>: error: <message>` and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class QmvosLabError(Exception):
    """Base class of the errors caused by bad input rather than by a bug."""


class UserError(QmvosLabError, ValueError):
    """Bad arguments or input files."""


class CheckpointError(QmvosLabError, ValueError):
    """A checkpoint that cannot be used."""


class DownloadError(QmvosLabError, RuntimeError):
    """A download that could not be completed."""


class QmvosLabWarning(UserWarning):
    """Input that was accepted by a documented rule its author may not expect (one line; the
    command line prints it as `qmvos-lab <command>: warning: <message>`)."""
