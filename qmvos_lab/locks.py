"""Advisory file locks (fcntl.flock) on what several processes may write at once, saying who holds them.

* `entry_lock(folder, locks)`: a trained-network cache entry (zoo.py, the ablation runner). The lock
  file lies in the cache (`<cache>/locks/<entry>.lock`, so it works wherever the cache is shared,
  e.g. by Slurm jobs); a second process waits for the first, then finds the entry trained and
  reuses it instead of training it twice.
* `output_lock(path, setting)`: an output folder of a command (`segment --output`, `train`'s run
  folder). A second process is refused at once with a one-line UserError naming the holder. These
  lock files live in the temporary folder (`<tmp>/qmvos-lab-locks/<hash of the path>.lock`), so that
  nothing is added beside the user's outputs; they serialise the processes of one machine.

A lock file holds "<pid> <command line>" of its holder while it is held. Lock files are never
deleted (deleting one while another process waits on it would let two processes hold "the" lock);
the kernel releases a lock when its holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 400, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    return f"process {pid} ({command})" if pid else "another process"


@contextmanager
def file_lock(lock_file: Path, busy, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` for the block. When another process holds it:
    wait=False raises `busy(holder)` (an exception); wait=True prints `busy(holder)` (a line) and waits."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        writable = True
    except PermissionError:  # another user's lock file: lock it read-only, without naming ourselves
        fd, writable = os.open(lock_file, os.O_RDONLY), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise busy(holder) from None
            print(busy(holder), file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv)[:300]}\n".encode(), 0)
        try:
            yield
        finally:
            if writable:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def entry_lock(folder: str | os.PathLike, locks: str | os.PathLike, what: str = "cache entry") -> "contextmanager":
    """Wait for, then hold, the lock of a cache entry folder, kept in the folder `locks` (see the module
    docstring)."""
    folder = Path(folder)
    return file_lock(Path(locks) / f"{folder.name}.lock",
                     lambda holder: f"waiting for the {what} {folder}: {holder} is training or evaluating it",
                     wait=True)


def _lock_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "qmvos-lab-locks"
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        try:
            folder.chmod(0o1777)  # shared by the users of the machine, like /tmp itself
        except OSError:
            pass
    return folder


def holding_output_lock(function):
    """Decorator: `function(model, inputs, output, ...)` runs holding `output_lock(output)`."""
    import functools
    import inspect

    signature = inspect.signature(function)

    @functools.wraps(function)
    def locked(*args, **kwargs):
        output = signature.bind(*args, **kwargs).arguments["output"]
        with output_lock(output, "--output"):
            return function(*args, **kwargs)

    return locked


def output_lock(path: str | os.PathLike, setting: str = "--output") -> "contextmanager":
    """Hold the lock of an output path, or raise a one-line UserError naming the process that holds it."""
    path = Path(os.path.abspath(path))
    key = hashlib.sha256(str(path).encode()).hexdigest()[:20]

    def busy(holder: str) -> UserError:
        return UserError(f"{setting} {path} is being written by {holder}; wait for it to finish or choose another "
                         f"{setting}")

    return file_lock(_lock_folder() / f"{key}.lock", busy, wait=False)
