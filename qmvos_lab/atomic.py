"""Writing so that nobody ever sees half of a result, and checking before any work that it can be written.

* `atomic_path(out)`: a temporary sibling file, renamed over `out` when the block succeeds.
* `atomic_paths(a, b)`: the same for files that belong together (renamed one after the other,
  with Ctrl-C and SIGTERM held back meanwhile, so they are published as a pair).
* `staged_folder(out)`: a staging folder, published when the block succeeds, either replacing
  `out` or merged into it file by file.

On every other exit (an error, Ctrl-C, SIGTERM) the temporary file or folder is removed and the
target is as it was. The temporary names hold the process id (`.<name>.tmp-<pid>`,
`.<name>.partial-<pid>`, `.<name>.old-<pid>` beside the target; `.staging.partial-<pid>` inside
a folder that is merged into); leftovers of processes that died without cleaning up (SIGKILL,
power loss) are removed by the next writer of the same target.
`check_writable(path, setting)` refuses an output that cannot be written, before the work.
A full disk (ENOSPC, EDQUOT) met inside a block becomes `NoSpaceError(target)`, after the same clean-up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import NoSpaceError, UserError, is_no_space

LEFTOVER_KINDS = ("tmp", "partial", "old")


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM where it is handled like Ctrl-C, so that the same clean-up runs."""


def raise_terminated(signum, frame) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises `Terminated` (where it would otherwise kill the process
    without clean-up: default handler, main thread)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (the few renames that publish a result)."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None}  # None: not Python's
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])  # now handled as it would have been


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing ancestors; return those created (outermost first)."""
    created = []
    for parent in [folder, *folder.parents][::-1]:
        if not parent.exists():
            try:
                parent.mkdir()
                created.append(parent)
            except FileExistsError:  # made meanwhile by someone else
                pass
    return created


def remove_if_empty(created: list[Path]) -> None:
    """Undo `make_parents` where the folders are still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def leftover_name(target: Path, kind: str, pid: int | None = None) -> Path:
    """The temporary sibling of `target` of this process: `.<name>.<kind>-<pid>`."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid() if pid is None else pid}")


def _in_own_staging(path: Path) -> bool:
    mark = f".partial-{os.getpid()}"
    return any(parent.name.endswith(mark) for parent in path.parents)


def remove_leftovers(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of `target` left by dead processes; returns what was removed."""
    target = Path(target)
    prefix = f".{target.name}."
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:{'|'.join(LEFTOVER_KINDS)})-(\d+)$")
    removed = []
    try:
        with os.scandir(target.parent) as scan:
            entries = [e for e in scan if e.name.startswith(prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _pid_alive(int(match.group(1))):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def no_space_is_named(target: Path) -> Iterator[None]:
    """A full disk inside the block is reported as `NoSpaceError(target)` (one line)."""
    try:
        yield
    except (OSError, NoSpaceError) as error:
        if is_no_space(error):  # the outermost block names the place (the output, not a staging file)
            raise NoSpaceError(target) from None
        raise


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield temporary paths next to `paths`; when the block succeeds they replace `paths` (as a
    group: no signal can stop the renames half-way); on any failure they are removed.

        with atomic_paths(a, b) as (tmp_a, tmp_b):
            ...
    """
    targets = [Path(p) for p in paths]
    temporaries, created = [], []
    for target in targets:
        created += make_parents(target.parent)
        if not _in_own_staging(target):  # a fresh staging folder holds no leftovers: skip the scan
            remove_leftovers(target)
        temporaries.append(leftover_name(target, "tmp"))
    done = False
    try:
        with sigterm_as_interrupt(), no_space_is_named(targets[0]):
            yield temporaries
            with signals_deferred():
                for tmp, target in zip(temporaries, targets):
                    os.replace(tmp, target)
                done = True
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
        if not done:
            remove_if_empty(created)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on failure it is removed.

        with atomic_path(out) as tmp:
            torch.save(state, tmp)
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextmanager
def staged_folder(target: str | os.PathLike, merge: bool = False, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds, publish it into `target`.

    merge=False: the staging folder (beside `target`) replaces `target`, whatever it held.
    merge=True: the staging folder lies inside `target`, and each of its files moves to the same
    place under `target`, replacing a file of that name and keeping the others; the files named
    in `last` (relative paths) move last, so that their presence marks a complete result.
    On an error, Ctrl-C or SIGTERM the staging folder is removed and `target` is as it was.
    """
    target = Path(target)
    created = make_parents(target if merge else target.parent)
    anchor = target / "staging" if merge else target  # the staging folder is a sibling of `anchor`
    remove_leftovers(anchor)
    staging = leftover_name(anchor, "partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    done = False
    try:
        with sigterm_as_interrupt(), no_space_is_named(target):
            yield staging
            with signals_deferred():
                _merge(staging, target, last) if merge else _replace(staging, target)
                done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            remove_if_empty(created)


def empty_folder(folder: str | os.PathLike) -> Path:
    """Make `folder` an empty folder: what it held is first moved aside (in one rename), then removed,
    so that old and new content are never mixed, even after an interruption."""
    folder = Path(folder)
    remove_leftovers(folder)
    if folder.is_dir() and any(folder.iterdir()):
        old = leftover_name(folder, "old")
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _replace(staging: Path, target: Path) -> None:
    if target.exists() or target.is_symlink():
        old = leftover_name(target, "old")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    else:
        os.replace(staging, target)


def _merge(staging: Path, target: Path, last: tuple[str, ...]) -> None:
    files = [p for p in sorted(staging.rglob("*")) if p.is_file()]
    late = {staging / name for name in last}
    for path in [p for p in files if p not in late] + [p for p in files if p in late]:
        destination = target / path.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(path, destination)


def check_writable(path: str | os.PathLike, setting: str, kind: str = "folder") -> Path:
    """Refuse an output that cannot be written, before any work: a one-line UserError naming
    `setting` (e.g. "--output"). `kind` is "folder" (created if missing) or "file"."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise UserError(f"{setting} {path} is a folder; give a file name")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise UserError(f"{setting} {path} is a file, not a folder; give a folder")
    probe = path.parent if kind == "file" else path
    probe = Path(os.path.abspath(probe))
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{setting} {path} cannot be made: {probe} is a file, not a folder")
    try:
        handle, name = tempfile.mkstemp(prefix=".qmvos-lab-write-test-", dir=probe)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        raise UserError(f"{setting} {path} cannot be written: {error.strerror or error} in {probe}; "
                        "choose a folder you can write to") from None
    return path
