"""The `qmvos-lab` command line: help, checkpoint info, one-line errors, and the demo end to end."""

import subprocess
import sys

import pytest
import torch

from conftest import random_official_state


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "qmvos_lab", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "info" in result.stdout and "QMVOS" in result.stdout


def test_info_describes_a_checkpoint(tmp_path):
    torch.save(random_official_state(hidden=False), tmp_path / "XMem-no-sensory.pth")
    result = run_cli("info", str(tmp_path / "XMem-no-sensory.pth"))
    assert result.returncode == 0, result.stderr
    assert "variant:    xmem-no-sensory" in result.stdout
    assert "key 64, value 512, hidden 0" in result.stdout


@pytest.mark.parametrize("content", [b"garbage", None])
def test_bad_checkpoint_gives_one_line_error_and_exit_2(tmp_path, content):
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("info", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("qmvos-lab info: error:")
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_console_script_runs_the_demo(tmp_path):
    """The main job, shortened: generate, train both models, segment, evaluate, write the figures."""
    script = __import__("shutil").which("qmvos-lab") or str(__import__("pathlib").Path(sys.executable).parent / "qmvos-lab")
    result = subprocess.run([script, "demo", "--iterations", "2", "--videos", "2", "--quiet", "--cache", "cache"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "copy first mask" in result.stdout and "qmvos" in result.stdout
    out = tmp_path / "outputs" / "demo"
    table = (out / "jf_table.csv").read_text().splitlines()
    assert table[0] == "method,J&F,J,F" and len(table) == 4
    assert (out / "overlay.gif").stat().st_size > 0 and (out / "attention.png").stat().st_size > 0
    assert (tmp_path / "data" / "generated" / "ImageSets" / "synthetic-val.txt").is_file()
    trained = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "trained").iterdir())
    assert trained == ["qmvos-small", "xmem-small"]  # the demo's networks live in the shared cache
    assert all((p / "final.pth").is_file() for p in (tmp_path / "cache" / "trained").iterdir())
