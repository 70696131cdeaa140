"""The kit's one cache folder: $QMVOS_LAB_CACHE, default ~/.cache/qmvos-lab.

Inside it:

* `trained/`: the trained-network cache (zoo.py), one folder per entry;
* `checkpoints/`: downloaded checkpoints, the official XMem files (by URL or release name,
  checkpoints/sources.py) and the released QMVOS weights (release.py);
* `locks/`: the file locks of the entries being trained (locks.py);
* `fast-path.json`: the fast-path decisions timed on this machine (machine.DECISIONS).

Every function takes the folder a caller was given (`--cache`, `cache=`); None means the default.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

ENVIRONMENT = "QMVOS_LAB_CACHE"


def cache_root(folder: str | os.PathLike | None = None) -> Path:
    """`folder`, else $QMVOS_LAB_CACHE, else ~/.cache/qmvos-lab."""
    return Path(folder or os.environ.get(ENVIRONMENT) or Path.home() / ".cache" / "qmvos-lab")


def trained_dir(folder: str | os.PathLike | None = None) -> Path:
    """The trained-network cache (zoo.py)."""
    return cache_root(folder) / "trained"


def locks_dir(folder: str | os.PathLike | None = None) -> Path:
    """The lock files of the trained-network entries (locks.entry_lock)."""
    return cache_root(folder) / "locks"


def checkpoints_dir(folder: str | os.PathLike | None = None) -> Path:
    """Downloaded checkpoints: official XMem files and the released QMVOS weights."""
    return cache_root(folder) / "checkpoints"


def cache_setting(folder=None) -> str:
    """What chose the cache folder, for messages: --cache, QMVOS_LAB_CACHE, or the default."""
    if folder is not None:
        return "--cache"
    return ENVIRONMENT if os.environ.get(ENVIRONMENT) else "the cache folder"


def check_cache(folder: str | os.PathLike, setting: str) -> None:
    """Refuse, before anything is written, a cache folder that is a file or cannot be written."""
    from .atomic import check_writable

    try:
        check_writable(folder, setting)
    except UserError as error:
        fix = "unset it or point it at a folder you can write to" if setting == ENVIRONMENT else ""
        raise UserError(f"{error}{'; ' + fix if fix else ''}") from None
