"""save_figure writes PNG/SVG/PDF atomically, and leaves an existing file alone on failure."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from qmvos_lab import viz
from qmvos_lab.errors import UserError


def small_figure():
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_save_figure_writes_by_suffix(tmp_path, suffix, magic):
    path = viz.save_figure(small_figure(), tmp_path / "sub" / f"plot{suffix}", dpi=50)
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_figure_keeps_the_old_file_when_saving_fails(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    fig = small_figure()

    def broken_savefig(target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a png")
        raise RuntimeError("disk full")

    fig.savefig = broken_savefig
    with pytest.raises(RuntimeError, match="disk full"):
        viz.save_figure(fig, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    viz.save_figure(small_figure(), path, dpi=50)  # a working save replaces it
    assert path.read_bytes().startswith(b"\x89PNG")


def test_save_figure_names_the_formats_it_knows(tmp_path):
    with pytest.raises(UserError, match=r"\.png, \.svg or \.pdf"):
        viz.save_figure(small_figure(), tmp_path / "plot.jpg")
