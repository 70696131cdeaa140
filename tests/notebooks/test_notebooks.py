"""The notebook tier: every tutorial is a jupytext pair (.py source + .ipynb, outputs stripped) and
runs headless in smoke mode (QMVOS_LAB_SMOKE=1) without an error, producing its figures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
# outputs a notebook must produce beyond a figure (mime types)
EXTRA_OUTPUTS = {"06_attention_explorer": ["application/vnd.jupyter.widget-view+json"]}
TIMEOUT_S = 240  # per cell, in smoke mode


def test_there_are_notebooks():
    assert SOURCES, f"no notebook sources in {NOTEBOOKS}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_has_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: run `make sync-notebooks`"
    notebook = nbformat.read(paired, as_version=4)
    from_source = jupytext.read(source)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [(c.cell_type, c.source) for c in from_source.cells], \
        f"{paired.name} and {source.name} differ: run `make sync-notebooks`"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{paired.name} has outputs: strip them"
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "smoke_mode()" in parameters[0].source, \
        "one `parameters` cell reads the smoke switch (SMOKE = smoke_mode())"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache of trained networks for the whole tier: the first notebook trains, the rest load."""
    return tmp_path_factory.mktemp("notebook-cache")


@pytest.mark.notebooks
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_runs_in_smoke_mode(source, shared_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("QMVOS_LAB_SMOKE", "1")
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(shared_cache))
    monkeypatch.setenv("QMVOS_LAB_OUTPUT", str(tmp_path))  # where a notebook may write files
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    tic = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{source.stem}: {time.perf_counter() - tic:.1f} s in smoke mode")
    mimes = [m for c in notebook.cells if c.cell_type == "code" for o in c.outputs for m in o.get("data", {})]
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert "image/png" in mimes, f"{source.stem} shows no figure"
    for mime in EXTRA_OUTPUTS.get(source.stem, []):
        assert mime in mimes, f"{source.stem} produced no {mime} output"
