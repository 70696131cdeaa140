"""YouTube-VOS: package results as the submission zip that the evaluation server expects.

The server scores every frame of `valid/JPEGImages/<video>/` (the annotated, every-fifth frames)
and nothing else, as `Annotations/<video>/<frame>.png`. Results computed on all frames
(`valid_all_frames`) are filtered down to those; a missing frame is an error, not a silent gap.
The zip is written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ..atomic import atomic_path, check_writable
from ..data.masks import png_files
from ..errors import UserError


def package_youtube_submission(results_root: str | os.PathLike, frames_root: str | os.PathLike,
                               output_zip: str | os.PathLike) -> tuple[Path, int]:
    """Zip `results_root/<video>/<frame>.png` for every frame listed in `frames_root/<video>/*.jpg`.

    Returns the zip path and the number of masks written.
    """
    results_root, frames_root, output_zip = Path(results_root), Path(frames_root), Path(output_zip)
    check_writable(output_zip, "--output", kind="file")
    if not results_root.is_dir():
        raise UserError(f"results folder {results_root} not found (expected one subfolder of PNGs per video)")
    if not frames_root.is_dir():
        raise UserError(f"YouTube-VOS frames folder {frames_root} not found (expected valid/JPEGImages)")
    videos = sorted(p.name for p in frames_root.iterdir() if p.is_dir())
    if not videos:
        raise UserError(f"no video folders in {frames_root}")
    entries = []
    for video in videos:
        written = {p.stem: p for p in png_files(results_root / video)}  # 00000.PNG as 00000.png
        for frame in sorted(p for p in (frames_root / video).iterdir() if p.suffix.lower() in (".jpg", ".jpeg")):
            mask = written.get(frame.stem, results_root / video / f"{frame.stem}.png")
            if not mask.is_file():
                raise UserError(f"result {mask} is missing: the submission needs a mask for every frame of {frames_root / video}")
            entries.append((mask, f"Annotations/{video}/{frame.stem}.png"))
    if not entries:
        raise UserError(f"no JPEG frames in the video folders of {frames_root} (expected valid/JPEGImages)")
    with atomic_path(output_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for source, name in entries:
                archive.write(source, name)
    return output_zip, len(entries)
