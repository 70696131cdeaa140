"""The released QMVOS weights by name: `load_checkpoint("QMVOS")` downloads them once from Google
Drive, checks them, and keeps them in the kit's cache (`cache.checkpoints_dir()`,
beside the official XMem files).

The authors publish one file (the README of zht8506/QMVOS): on Google Drive (file id below) and on
Baidu NetDisk. Drive serves large files through a confirmation page, and for a while refuses a file
that many people fetched (its quota page); `gdown`, a maintained Drive downloader, follows the
confirmation. What comes back is checked before it is kept:

1. gdown writes `<cache>/.QMVOS.pth.download`; its partial bytes stay in a `.part` file beside it
   when the transfer is cut or interrupted, and the next call resumes from them;
2. the file must be a PyTorch checkpoint (not a web page, not truncated) with the released layout:
   450 state-dict entries, among them the QCIM's cross-attention (QMVOS Sec. 3.3, Eq. 4) and the
   SIM's query self-attention (QMVOS Sec. 3.2); a file that fails is deleted;
3. it is published as `QMVOS.pth` together with `QMVOS.pth.sha256`, its SHA-256 recorded on this
   first download (and printed), as a pair (`atomic.atomic_paths`);
4. later calls check the cached file against that record before loading it.

Every failure is one line that says what happened and how to place the file by hand.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomic import atomic_paths
from .cache import checkpoints_dir
from .download import sha256_of
from .errors import CheckpointError, DownloadError


@dataclass(frozen=True)
class Release:
    """One released file on Google Drive: where it is, how it is cached, what its layout must be."""

    name: str
    drive_id: str
    filename: str
    entries: int  # state-dict entries of the released layout
    markers: tuple[str, ...]  # entries that only this network has
    baidu: str = ""
    sha256: str | None = None  # known checksum; None: recorded on the first download

    @property
    def url(self) -> str:
        return f"https://drive.google.com/uc?id={self.drive_id}"

    @property
    def page(self) -> str:
        return f"https://drive.google.com/file/d/{self.drive_id}/view"

    def by_hand(self) -> str:
        """How to place the file without the downloader."""
        baidu = f" or Baidu NetDisk {self.baidu}" if self.baidu else ""
        return (f"download {self.filename} by hand from {self.page}{baidu} and load that file "
                "(load_checkpoint(PATH), or --checkpoint PATH)")


RELEASES = {
    "QMVOS": Release(
        name="QMVOS", drive_id="1XVXo2W7seI6Jor6Jsv-f6Qk8PCgeOm_r", filename="QMVOS.pth", entries=450,
        markers=("decoder.QCIM.cross_attn.in_proj_weight", "query_SelfAtt_FFN.self_attn.in_proj_weight"),
        baidu="https://pan.baidu.com/s/1bvk6QM4FL2g-lzghM-cMxQ?pwd=ke2n (code ke2n)"),
}

# downloader(url, output, progress): writes the file at `url` to `output` or raises DownloadError
Downloader = Callable[[str, Path, bool], None]
RETRIES = 2  # gdown's reconnections (resuming) before a transfer is given up
TIMEOUT = 60.0  # seconds without a byte before a connection is given up


def gdown_download(url: str, output: Path, progress: bool = True) -> None:
    """Download with gdown (follows Drive's confirmation page; resumes its `.part` file)."""
    try:
        import gdown
        import requests
    except ImportError:
        raise DownloadError("the gdown package is missing (pip install gdown)") from None
    try:
        gdown.download(url, str(output), quiet=not progress, use_cookies=False, resume=True,
                       timeout=TIMEOUT, retries=RETRIES)
    except gdown.exceptions.FileURLRetrievalError:
        raise DownloadError("Google Drive did not hand out the file (its download quota for the file is "
                            "used up for now, or the link's permissions changed)") from None
    except gdown.exceptions.DownloadError as error:
        if "incomplete" in str(error) or "byte range" in str(error):  # cut mid-transfer: gdown keeps the bytes
            raise DownloadError(f"the transfer stopped early ({_first_line(error)}); the partial file is kept "
                                f"in {output.parent}: run the same command again to resume") from None
        cause = error.__cause__ if isinstance(error.__cause__, requests.RequestException) else error
        raise DownloadError(f"no connection to Google Drive ({_reason(cause)}; are you online?)") from None
    except requests.HTTPError as error:
        raise DownloadError(f"Google Drive answered HTTP {error.response.status_code}") from None
    except requests.RequestException as error:
        raise DownloadError(f"no connection to Google Drive ({_reason(error)}; are you online?)") from None


def _reason(error: BaseException) -> str:
    """The part of a connection error that says what failed (requests' messages nest several)."""
    text = str(error)
    for pattern in (r"Failed to resolve '[^']+'", r"Connection refused", r"timed out", r"Network is unreachable"):
        match = re.search(pattern, text)
        if match:
            return match.group(0)
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")[0].split())
    return (text[:150].rsplit(" ", 1)[0] + " ...") if len(text) > 150 else text or type(error).__name__


def is_web_page(path: Path) -> bool:
    """True when the file starts like HTML (Drive's quota, virus-scan or sign-in page)."""
    with open(path, "rb") as f:
        head = f.read(1024).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in head


def check_layout(path: Path, release: Release) -> None:
    """Refuse (CheckpointError) a file that is not the released network: not a PyTorch file,
    truncated, a web page, or another state dict."""
    from .checkpoints import read_checkpoint_file

    if is_web_page(path):
        raise CheckpointError("Google Drive sent a web page instead of the checkpoint (its quota page or a "
                              "sign-in page)")
    try:
        state, _, _ = read_checkpoint_file(path)
    except CheckpointError:
        raise CheckpointError(f"the file is not a complete PyTorch checkpoint ({path.stat().st_size:,} bytes; "
                              "truncated?)") from None
    missing = [m for m in release.markers if m not in state]
    if len(state) != release.entries or missing:
        why = f"it lacks {missing[0]}" if missing else f"it has {len(state)} entries"
        raise CheckpointError(f"the file is not the released {release.name} network ({why}; the release has "
                              f"{release.entries} entries with {', '.join(release.markers)})")


def record_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def read_record(target: Path) -> str | None:
    record = record_path(target)
    return record.read_text().split()[0].lower() if record.is_file() and record.read_text().strip() else None


def fetch_release(name: str, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  downloader: Downloader | None = None, url: str | None = None) -> Path:
    """The local path of the released file `name` (RELEASES), downloaded and checked on first use
    (see the module docstring). `url` replaces the Drive address (mirrors, tests); `downloader`
    replaces gdown. Raises a one-line CheckpointError when the file cannot be had."""
    release = RELEASES[name]
    folder = Path(cache_dir) if cache_dir is not None else checkpoints_dir()
    target = folder / release.filename
    if target.is_file():
        return _check_cached(target, release)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{release.filename}.download"
    try:
        (downloader or gdown_download)(url or release.url, staging, progress)
        if not staging.is_file():
            raise DownloadError("the downloader wrote no file")
        check_layout(staging, release)
    except (DownloadError, CheckpointError) as error:
        if isinstance(error, CheckpointError):
            staging.unlink(missing_ok=True)  # a wrong file: the next call starts over
        raise CheckpointError(f"cannot download the released {name} weights: {error}; {release.by_hand()}") from None
    digest = sha256_of(staging)
    if release.sha256 is not None and digest != release.sha256.lower():
        staging.unlink()
        raise CheckpointError(f"the downloaded {name} weights have sha256 {digest}, not the released "
                              f"{release.sha256}; {release.by_hand()}")
    with atomic_paths(target, record_path(target)) as (tmp, tmp_record):
        os.replace(staging, tmp)
        tmp_record.write_text(f"{digest}  {release.filename}\n")
    print(f"{name}: downloaded to {target}; sha256 {digest} (recorded in {record_path(target).name}, "
          "checked on every later load)", file=sys.stderr)
    return target


def _check_cached(target: Path, release: Release) -> Path:
    """A cached file must match its recorded (or the known) checksum; one placed by hand is checked
    for the released layout and its checksum recorded."""
    expected = release.sha256.lower() if release.sha256 else read_record(target)
    if expected is None:
        try:
            check_layout(target, release)
        except CheckpointError as error:
            raise CheckpointError(f"the cached {target} is not usable: {error}; delete it to download it "
                                  "again") from None
        digest = sha256_of(target)
        with atomic_paths(record_path(target)) as (tmp_record,):
            tmp_record.write_text(f"{digest}  {release.filename}\n")
        print(f"{release.name}: {target} has sha256 {digest} (recorded in {record_path(target).name})",
              file=sys.stderr)
        return target
    digest = sha256_of(target)
    if digest != expected:
        raise CheckpointError(f"the cached {target} has sha256 {digest}, not the {expected} recorded when it "
                              "was downloaded (changed or damaged); delete it to download it again")
    return target
