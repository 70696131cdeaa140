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
