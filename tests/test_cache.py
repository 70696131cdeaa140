"""One cache folder for everything the kit keeps: trained networks, downloaded checkpoints, locks and
the fast-path decisions (qmvos_lab/cache.py)."""

from pathlib import Path

import pytest

from qmvos_lab import cache, release, zoo
from qmvos_lab.checkpoints import resolve_source, sources
from qmvos_lab.errors import CheckpointError
from qmvos_lab.machine import DECISIONS
from qmvos_lab.train import fast_path


def test_the_default_is_one_folder_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("QMVOS_LAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no longer a second root for downloads
    root = tmp_path / ".cache" / "qmvos-lab"
    assert cache.cache_root() == root == Path.home() / ".cache" / "qmvos-lab"
    assert cache.checkpoints_dir() == root / "checkpoints"
    assert zoo.entry_for(zoo.training_config("xmem-small", smoke=True, amp=False, channels_last=False)
                         ).folder.parent == root / "trained"
    assert fast_path.cache_path() == root / DECISIONS


def test_the_environment_and_an_explicit_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "env"))
    assert cache.cache_root() == tmp_path / "env" and cache.cache_setting() == "QMVOS_LAB_CACHE"
    assert cache.cache_root(tmp_path / "given") == tmp_path / "given" and cache.cache_setting("x") == "--cache"
    assert cache.locks_dir() == tmp_path / "env" / "locks"


def test_downloads_go_to_the_checkpoints_folder(tmp_path, monkeypatch):
    """A checkpoint fetched by URL or release name lands in <cache>/checkpoints (it was
    $XDG_CACHE_HOME/qmvos_lab/checkpoints, a second root, before the cache was one folder)."""
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path))
    seen = []
    monkeypatch.setattr(sources, "download", lambda url, target, progress: seen.append(Path(target)) or target)
    resolve_source("http://example.invalid/weights/XMem.pth", progress=False)
    assert seen == [tmp_path / "checkpoints" / "XMem.pth"]

    def fake(url, output, progress):
        seen.append(Path(output).parent)
        raise CheckpointError("offline")

    with pytest.raises(CheckpointError, match="offline"):
        release.fetch_release("QMVOS", downloader=fake, progress=False)
    assert seen[-1] == tmp_path / "checkpoints"
