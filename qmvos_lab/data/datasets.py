"""Downloading the public VOS datasets (for users who are online): resumable, with progress,
checksummed, and extracted atomically.

The official sites publish no checksums. An archive with a known SHA-256 (given with --sha256 or
listed below) is verified; otherwise its SHA-256 is recorded in `<root>/downloads/checksums.json`
after the first download that tested and extracted well, and verified on every later use ("trust
on first use"), so a corrupted or swapped archive is noticed. A zip is tested before extraction,
extracted into a staging folder and only then moved into place. `--url` may also name a local
archive (a path or a file:// URL): it is read where it is. Before anything is extracted or
recorded, the archive's listing must hold the dataset's layout (`Archive.layout`: the folders the
readers expect), so that any other zip given with --url is refused rather than trusted.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..atomic import atomic_path, check_writable, staged_folder
from ..download import download, sha256_of
from ..errors import DownloadError, UserError, not_a_file


@dataclass(frozen=True)
class Archive:
    filename: str
    url: str | None
    sha256: str | None = None
    note: str = ""
    layout: tuple[str, ...] = ()  # path parts that some entry of the archive must hold (the readers' layout)


DATASETS = {
    "davis": [Archive("DAVIS-2017-trainval-480p.zip",
                      "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
                      layout=("JPEGImages/480p/", "Annotations/480p/", "ImageSets/2017/"))],
    "davis2016": [Archive("DAVIS-data.zip", "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
                          layout=("JPEGImages/480p/", "Annotations/480p/"))],
    "youtube": [Archive("youtube-vos.zip", None, note="YouTube-VOS is distributed after registration "
                        "(https://youtube-vos.org): pass the link you were given with --url",
                        layout=("JPEGImages/", "Annotations/", "meta.json"))],
}


def _recorded(root: Path) -> dict:
    path = root / "downloads" / "checksums.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(root: Path, filename: str, digest: str) -> None:
    table = _recorded(root)
    table[filename] = digest
    with atomic_path(root / "downloads" / "checksums.json") as tmp:
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def _local_archive(source: str) -> Path | None:
    """The path of a local archive (a path or a file:// URL), None for a download link."""
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return Path(url2pathname(urlparse(source).path))
    if scheme and len(scheme) > 1:  # ftp:, s3:, ...; a one-letter scheme is a Windows drive
        raise UserError(f"--url {source}: use an http(s) link or a local file path")
    return Path(source).expanduser()


def download_dataset(name: str, root: str | os.PathLike = "data", url: str | None = None,
                     sha256: str | None = None, progress: bool = True) -> Path:
    """Download (or take from a local path) and extract a dataset into `root`. Returns `root`.

    A checksum is recorded only for an archive that was tested and extracted, so a bad first
    download never makes the good one look wrong later.
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    root = Path(root)
    check_writable(root, "--root")
    for archive in DATASETS[name]:
        source = url or archive.url
        if source is None:
            raise UserError(f"{name}: {archive.note}")
        local = _local_archive(source)
        why = not_a_file(local) if local is not None else None
        if why == "not found":
            raise UserError(f"--url {source}: no such file (give a local archive or an http(s) link)")
        if why is not None:
            raise UserError(f"--url {source} {why}")
        filename = local.name if local is not None else (Path(urlparse(source).path).name or archive.filename)
        expected = sha256 or archive.sha256 or _recorded(root).get(filename)
        if local is not None:
            path = local
            if expected is not None and sha256_of(path) != expected.lower():
                raise DownloadError(f"checksum mismatch for {path}: expected sha256 {expected}, got "
                                    f"{sha256_of(path)} (check the file or the expected checksum)")
        else:
            path = download(source, root / "downloads" / filename, sha256=expected, progress=progress)
        extract_zip(path, root, downloaded=local is None, layout=archive.layout, dataset=name)
        if expected is None:
            _record(root, filename, sha256_of(path))
    return root


def extract_zip(path: Path, root: Path, downloaded: bool = False, layout: tuple[str, ...] = (),
                dataset: str = "the dataset") -> None:
    """Check the layout, test, then extract into a staging folder merged into `root` (atomic.staged_folder).

    A corrupt archive that we `downloaded` is deleted, so that the next run fetches it afresh.
    """
    def refuse(problem: str):
        if downloaded:
            path.unlink(missing_ok=True)
            return DownloadError(f"{problem}; it was deleted: run the same command again to download it afresh "
                                 "(or check the URL)")
        return DownloadError(f"{problem}; check the file")

    try:
        with zipfile.ZipFile(path) as archive:
            names = ["/" + n for n in archive.namelist()]
            missing = [part for part in layout if not any(f"/{part}" in n for n in names)]
            if missing:
                raise refuse(f"{path} does not hold the {dataset} layout: no {missing[0]} in it (expected "
                             f"{', '.join(layout)}), so it is not the {dataset} archive")
            broken = archive.testzip()
            if broken is not None:
                raise refuse(f"archive {path} is corrupt at {broken}")
            with staged_folder(root, merge=True) as staging:
                archive.extractall(staging)
    except zipfile.BadZipFile:
        raise refuse(f"{path} is not a zip archive") from None
