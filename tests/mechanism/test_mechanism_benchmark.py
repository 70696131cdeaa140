"""benchmarks/mechanism.py in smoke form: a 12-iteration zoo network in a temporary cache, two short
videos; both tables print, with the uniform baseline at its exact values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_prints_both_tables(tmp_path):
    env = {**os.environ, "QMVOS_LAB_SMOKE": "1", "QMVOS_LAB_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mechanism.py"), "--videos", "2",
                             "--frames", "5"], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "12 iterations) on 2 synthetic-hard videos" in out
    share = next(line for line in out.splitlines() if "own-object mass / share" in line)
    assert share.rstrip().endswith("1.000 [1.000, 1.000]")  # the uniform column
    assert len(re.findall(r"\d\.\d{3} \[", share)) == 3  # trained, untrained, uniform
    for name in ("permuted queries", "mean query", "no QCIM", "no SIM interaction", "first-frame queries"):
        assert re.search(rf"^\s*{name}\s+[+-]\d\.\d{{4}}", out, re.M), name


def test_several_seeds_average_each_video_over_the_seeds(tmp_path):
    """--seeds: the pooled ΔJ&F of an intervention is the mean of the seeds' ΔJ&F (equal videos per
    seed, so the mean over videos of the per-video seed means is the mean of the seed means)."""
    env = {**os.environ, "QMVOS_LAB_SMOKE": "1", "QMVOS_LAB_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mechanism.py"), "--videos", "2",
                             "--frames", "4", "--seeds", "0", "1"], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "seed 0, 12 iterations" in out and "seed 1, 12 iterations" in out
    assert "each video averaged over seeds [0, 1]" in out
    pooled = float(re.search(r"^\s*mean query\s+([+-]\d\.\d{4})", out, re.M).group(1))
    per_seed = [float(x) for x in re.search(r"^mean query\s+([+-]\d\.\d{4})\s+([+-]\d\.\d{4})\s*$",
                                            out, re.M).groups()]
    assert abs(pooled - sum(per_seed) / 2) <= 1e-4 + 1e-12
