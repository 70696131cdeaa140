"""Resumable, checksummed downloads with a progress bar, written atomically.

The bytes go to `<target>.part`; an interrupted transfer resumes from there with an HTTP Range
request, and only a complete file (length as announced, SHA-256 as expected when given) is
renamed to `<target>`. A failed check deletes the partial file, so nothing half-written is left;
Ctrl-C or SIGTERM keeps it, and the same call later resumes from it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import DownloadError, NoSpaceError, is_no_space

CHUNK_BYTES = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: str | os.PathLike, sha256: str | None = None,
             progress: bool = True, timeout: float = 60.0, retries: int = 3) -> Path:
    """Download `url` to `target` (resuming a previous `.part`), verify it, return the path.

    An existing `target` is reused when its checksum matches (or when no checksum is given).
    A transfer that ends early is resumed up to `retries` times before giving up.
    """
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {url}: not an http(s) URL")
    target = Path(target)
    if target.exists() and (sha256 is None or sha256_of(target) == sha256.lower()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(retries + 1):
        complete = _fetch_into(url, part, progress, timeout)
        if complete:
            break
    else:
        raise DownloadError(f"download of {url} stopped early {retries + 1} times; "
                            f"the partial file {part} is kept: run the same command again to resume")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                                "the file was deleted (check the URL or the expected checksum)")
    os.replace(part, target)
    return target


def _fetch_into(url: str, part: Path, progress: bool, timeout: float) -> bool:
    """Append the rest of `url` to `part`. True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part already holds everything
            return True
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        raise DownloadError(f"cannot download {url}: {getattr(error, 'reason', error)} "
                            "(are you online? a local file path works too)") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, disable=not progress,
                desc=Path(urllib.request.url2pathname(url)).name, leave=False) as bar:
            try:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                if is_no_space(error):  # a full disk is not a cut connection: retrying cannot help
                    raise NoSpaceError(part) from None
                return False  # connection cut: resume
    return total is None or received >= total
