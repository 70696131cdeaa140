"""Where a checkpoint comes from: a local file, an http(s) URL (downloaded once into the cache's
`checkpoints/`, with progress), or the name of a released model (`XMem`, `XMem-s012`, ..., and
`QMVOS`, fetched from Google Drive by release.py)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from ..cache import cache_root, cache_setting, check_cache, checkpoints_dir
from ..download import download
from ..errors import CheckpointError, DownloadError, not_a_file

RELEASE_URL = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
OFFICIAL_CHECKPOINTS = {
    "XMem": RELEASE_URL + "XMem.pth",
    "XMem-s012": RELEASE_URL + "XMem-s012.pth",
    "XMem-s2": RELEASE_URL + "XMem-s2.pth",
    "XMem-no-sensory": RELEASE_URL + "XMem-no-sensory.pth",
}

RELEASE_NAMES = ("QMVOS",)  # the released QMVOS weights, on Google Drive (release.RELEASES)


def resolve_source(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> Path:
    """A local path for `source`: the file itself, or the cached download of a URL or release name."""
    source = str(source)
    if source in RELEASE_NAMES:  # published on Google Drive: release.py
        from ..release import fetch_release

        return fetch_release(source, cache_dir, progress)
    if source in OFFICIAL_CHECKPOINTS:
        source = OFFICIAL_CHECKPOINTS[source]
    if urlparse(source).scheme in ("http", "https"):
        cache = Path(cache_dir) if cache_dir is not None else checkpoints_dir()
        name = Path(urlparse(source).path).name or "checkpoint.pth"
        if not (cache / name).is_file():
            check_cache(cache if cache_dir is not None else cache_root(), cache_setting(cache_dir))
        try:
            return download(source, cache / name, progress=progress)
        except DownloadError as error:
            raise CheckpointError(str(error)) from None
    path = Path(source).expanduser()
    if path.is_dir():
        inside = ", ".join(p.name for p in sorted(path.glob("*.pth"))[:3])
        raise CheckpointError(f"checkpoint {source} is a folder, not a file; give "
                              f"{f'one of the files in it ({inside})' if inside else 'a .pth file'}")
    why = not_a_file(path)
    if why == "not found":
        known = ", ".join([*OFFICIAL_CHECKPOINTS, *RELEASE_NAMES])
        raise CheckpointError(f"checkpoint {source} not found: give a file, a URL, or one of {known}")
    if why is not None:
        raise CheckpointError(f"checkpoint {source} {why}")
    return path
