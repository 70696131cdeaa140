"""The `qmvos-lab` command line: help, checkpoint info, one-line errors, and the demo end to end."""

import subprocess
import sys

import pytest
import torch

from conftest import random_official_state


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "qmvos_lab", *args], capture_output=True, text=True,
                          timeout=timeout)


SUBCOMMANDS = ["demo", "info", "segment", "train", "ablate", "dose-response", "data", "evaluate", "package-youtube"]


def test_help_lists_the_subcommands(capsys):
    result = run_cli("--help")
    assert result.returncode == 0 and "QMVOS" in result.stdout
    block = result.stdout.split("positional arguments:")[1].split("options:")[0]
    listed = [line.split()[0] for line in block.splitlines() if line.startswith("    ") and line[4] != " "]
    assert listed == SUBCOMMANDS  # every subcommand, each with its one-line help
    from qmvos_lab.cli import build_parser, main

    registered = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert list(registered) == SUBCOMMANDS
    for name in SUBCOMMANDS:  # and each has a working --help of its own
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: qmvos-lab {name}")


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
    assert table[0] == "method,J&F,J,F,iterations" and len(table) == 4
    rows = {line.split(",")[0]: [float(v) for v in line.split(",")[1:4]] for line in table[1:]}
    assert list(rows) == ["copy first mask", "xmem", "qmvos"]
    assert [line.split(",")[4] for line in table[1:]] == ["0", "2", "2"]  # the copy trains nothing
    for jf, j, f in rows.values():  # finite scores, J&F the mean of J and F (4 decimals in the file)
        assert 0 <= j <= 1 and 0 <= f <= 1 and abs(jf - (j + f) / 2) <= 1e-4
    # the baseline row is what the DAVIS protocol gives the copied first masks of the written split
    import numpy as np

    from qmvos_lab.data.masks import read_label_map, write_label_map
    from qmvos_lab.eval import evaluate_folders

    gt_root = next((tmp_path / "data" / "generated" / "Annotations").iterdir())
    names = (tmp_path / "data" / "generated" / "ImageSets" / "synthetic-val.txt").read_text().split()[:2]
    for name in names:
        first = read_label_map(sorted((gt_root / name).glob("*.png"))[0])
        for png in sorted((gt_root / name).glob("*.png")):
            write_label_map(tmp_path / "copy" / name / png.name, first)
    copied = evaluate_folders(gt_root, tmp_path / "copy", sequences=names)
    assert abs(rows["copy first mask"][0] - copied.jf_mean) <= 1e-4 and 0.05 < copied.jf_mean < 0.95
    # two iterations do not train: the networks only have to segment something (not the copy's score,
    # nothing above it yet: that takes the demo's 260 iterations, minutes on a CPU)
    assert all(rows[name][0] > 0 and rows[name] != rows["copy first mask"] for name in ("xmem", "qmvos"))
    assert np.isfinite(list(rows.values())).all()
    assert (out / "overlay.gif").stat().st_size > 0 and (out / "attention.png").stat().st_size > 0
    assert (tmp_path / "data" / "generated" / "ImageSets" / "synthetic-val.txt").is_file()
    trained = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "trained").iterdir())
    assert trained == ["qmvos-small", "xmem-small"]  # the demo's networks live in the shared cache
    assert all((p / "final.pth").is_file() for p in (tmp_path / "cache" / "trained").iterdir())


def test_the_demo_trains_what_fits_its_budget_on_this_cpu(tmp_path, monkeypatch):
    """No --iterations: the demo module decides, from the timed step, at most DEMO_ITERATIONS."""
    from qmvos_lab import demo
    from qmvos_lab.cli import build_parser

    assert build_parser().parse_args(["demo"]).iterations is None
    seen = []

    def step_seconds(config, cache=None):
        seen.append((config.amp, config.channels_last, config.iterations))
        return speed

    monkeypatch.setattr(demo, "step_seconds", step_seconds)
    for speed, expected in ((0.3, demo.DEMO_ITERATIONS), (0.5, 210), (0.9, 110), (60.0, 10)):
        iterations, step_s = demo.demo_iterations(tmp_path)
        assert iterations == expected and step_s == speed
        assert iterations * step_s <= demo.TRAIN_BUDGET_S or iterations == 10
    assert seen[0] == (None, None, demo.DEMO_ITERATIONS)  # the preset's "auto", resolved by the timing
