"""Downloading the public VOS datasets (for users who are online): resumable, with progress,
checksummed, and extracted atomically.

The official sites publish no checksums. An archive with a known SHA-256 (given with --sha256 or
listed below) is verified; otherwise its SHA-256 is recorded in `<root>/downloads/checksums.json`
after the first complete download and verified on every later use ("trust on first use"), so a
corrupted or swapped archive is noticed. A zip is tested before extraction, extracted into a
staging folder and only then moved into place.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_path
from ..download import download, sha256_of
from ..errors import DownloadError, UserError


@dataclass(frozen=True)
class Archive:
    filename: str
    url: str | None
    sha256: str | None = None
    note: str = ""


DATASETS = {
    "davis": [Archive("DAVIS-2017-trainval-480p.zip",
                      "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip")],
    "davis2016": [Archive("DAVIS-data.zip", "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip")],
    "youtube": [Archive("youtube-vos.zip", None, note="YouTube-VOS is distributed after registration "
                        "(https://youtube-vos.org): pass the link you were given with --url")],
}


def _recorded(root: Path) -> dict:
    path = root / "downloads" / "checksums.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(root: Path, filename: str, digest: str) -> None:
    table = _recorded(root)
    table[filename] = digest
    with atomic_path(root / "downloads" / "checksums.json") as tmp:
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def download_dataset(name: str, root: str | os.PathLike = "data", url: str | None = None,
                     sha256: str | None = None, progress: bool = True) -> Path:
    """Download and extract a dataset into `root`. Returns `root`."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    root = Path(root)
    for archive in DATASETS[name]:
        source = url or archive.url
        if source is None:
            raise UserError(f"{name}: {archive.note}")
        filename = Path(source.split("?")[0]).name or archive.filename
        expected = sha256 or archive.sha256 or _recorded(root).get(filename)
        path = download(source, root / "downloads" / filename, sha256=expected, progress=progress)
        digest = sha256_of(path)
        if expected is None:
            _record(root, filename, digest)
        extract_zip(path, root)
    return root


def extract_zip(path: Path, root: Path) -> None:
    """Test, then extract into a staging folder, then move each top-level entry into `root`."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            if broken is not None:
                raise DownloadError(f"archive {path} is corrupt at {broken}; delete it and download again")
            staging = root / f".extract-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                archive.extractall(staging)
                for entry in staging.iterdir():
                    target = root / entry.name
                    if target.exists():
                        shutil.rmtree(target) if target.is_dir() else target.unlink()
                    os.replace(entry, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except zipfile.BadZipFile:
        raise DownloadError(f"{path} is not a zip archive; delete it and download again") from None
