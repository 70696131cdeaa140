"""Saving a Figure atomically: readers never see half a PNG (see `qmvos_lab.atomic`)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..errors import UserError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100, **savefig_kwargs) -> Path:
    """Write `fig` to `path` (PNG, SVG or PDF, by suffix) through a temporary sibling and a rename:
    an existing file is replaced only once the new one is complete. Does not close the figure."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"save_figure {path}: use a .png, .svg or .pdf file name")
    savefig_kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, **savefig_kwargs)
    return path
