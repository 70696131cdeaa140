"""The GPU suite's dry run (benchmarks/gpu_suite.sh --tiny): every stage runs end to end on the CPU
with CI-sized settings on a tiny DAVIS-2016-shaped split, so the suite works the first time it
meets a GPU. The figures it prints mean nothing; that each stage ran and wrote them does."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qmvos_lab.data.synthetic import SyntheticConfig, generate_video

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def write_davis16_like(root: Path, names: list[str]) -> None:
    """The 240p DAVIS-2016 layout (0/255 masks, one object) with small generated videos."""
    for index, name in enumerate(names):
        video = generate_video(SyntheticConfig(num_objects=1, length=6, height=64, width=112), seed=index)
        (root / "JPEGImages" / "240p" / name).mkdir(parents=True)
        (root / "Annotations" / "240p" / name).mkdir(parents=True)
        for t, (frame, label) in enumerate(zip(video.frames, video.labels)):
            Image.fromarray(frame).save(root / "JPEGImages" / "240p" / name / f"{t:05d}.jpg", quality=95)
            Image.fromarray(np.where(label > 0, 255, 0).astype(np.uint8)).save(
                root / "Annotations" / "240p" / name / f"{t:05d}.png")
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "train.txt").write_text("\n".join(names) + "\n")


def test_gpu_suite_dry_run(tmp_path):
    data, out = tmp_path / "davis16-240p", tmp_path / "out"
    write_davis16_like(data, [f"clip{i}" for i in range(5)])
    env_python = Path(sys.executable).parent
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), str(data), str(out), "--tiny"],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            env={"PATH": f"{env_python}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = (out / "summary.md").read_text()
    for stage in ("inference_speed", "training_speed", "davis16_training"):
        assert f"## {stage} (" in summary and "exit 0" in summary.split(f"## {stage} (")[1].split("\n")[0]

    speed = pd.read_csv(out / "inference_speed.csv")
    assert set(speed["network"]) == {"xmem-small", "qmvos-small"}
    assert set(speed["mode"]) == {"fp32", "amp+channels-last"}
    ratios = speed["qmvos_over_xmem_time"].dropna()  # one per qmvos row; its value is a timing: not checked
    assert (speed["fps"] > 0).all() and len(ratios) == 2 and (ratios > 0).all()
    assert (speed.loc[speed["mode"] == "fp32", "max_abs_dprob"] == 0).all()  # fp32 is its own reference

    training = pd.read_csv(out / "training_speed.csv")
    assert set(training["network"]) == {"xmem", "qmvos"} and (training["clips_per_s"] > 0).all()

    log = (out / "davis16_training.log").read_text()
    assert "trained 2 iterations" in log and "clip3 clip4" in log  # held out: the last two sequences
    header, values = [line for line in log.splitlines() if "J&F-Mean" in line][0], None
    lines = log.splitlines()
    values = lines[lines.index(header) + 1].split()
    assert math.isfinite(float(values[0])) and 0 <= float(values[0]) <= 1
    assert (out / "davis16-run" / "runs" / "gpu-davis16" / "final.pth").is_file()


def test_gpu_suite_refuses_a_folder_that_is_not_the_split(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path), str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not the 240p DAVIS-2016 train split" in result.stderr
