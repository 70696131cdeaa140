"""The browser tier: the attention explorer in a real JupyterLab, in headless Chromium.

Starts JupyterLab on a loopback port with a token, opens a copy of notebooks/06_attention_explorer
in Debian's `chromium` driven by Playwright (the `browser` extra; no `playwright install`: the
system browser is used), runs every cell, checks that the widgets rendered (ipywidgets' front end
installed and version-matched) and that no cell failed, then moves two controls (the head
dropdown, the frame slider) and checks that the drawn picture changed (screenshot comparison).

Skips when chromium, Playwright or JupyterLab is missing (QMVOS_LAB_REQUIRE_BROWSER=1 makes that a
failure: `make test-browser` sets it). Screenshots go to $QMVOS_LAB_BROWSER_OUTPUT (default
outputs/browser/). The notebook runs in smoke mode. Its networks are trained before the browser
starts, outside it (`prepared_cache`: in $QMVOS_LAB_CACHE when set, else a fresh cache), so that
the browser only runs the notebook; the test then checks that the notebook trained nothing itself.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "06_attention_explorer.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_S = 1200  # every cell of the notebook, smoke mode, networks trained if not cached
CHANGE_TIMEOUT_S = 60  # a control change until the picture differs

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chromium_path() -> str | None:
    path = os.environ.get("QMVOS_LAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and os.access(path, os.X_OK) else None


def missing() -> list[str]:
    needs = [] if chromium_path() else ["Debian's chromium (apt-get install -y chromium)"]
    needs += [f"{name} (pip install -e '.[browser]')" for name in ("playwright", "jupyterlab")
              if importlib.util.find_spec(name) is None]
    return needs


@pytest.fixture(scope="module")
def requirements():
    needs = missing()
    if needs:
        message = "the browser tier needs " + ", ".join(needs)
        if os.environ.get("QMVOS_LAB_REQUIRE_BROWSER", "") == "1":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the cached networks notebook 06 loads (its `qmvos`, `xmem` and VARIANTS), in smoke mode
NOTEBOOK_NETWORKS = ("qmvos", "xmem", "sim-f16", "no-interaction", "qcim-f16")
PREPARE = """
from qmvos_lab import zoo
for variant in {variants!r}:
    zoo.trained(variant + "-small", "cpu-tiny", progress=False)
"""


def trained_entries(cache: Path) -> set[str]:
    return {p.name for p in (cache / "trained").glob("*")} if (cache / "trained").is_dir() else set()


@pytest.fixture(scope="module")
def prepared_cache(requirements, tmp_path_factory) -> Path:
    """The smoke networks of the notebook, trained (or found) in the cache before the browser starts."""
    cache = Path(os.environ.get("QMVOS_LAB_CACHE") or tmp_path_factory.mktemp("cache"))
    env = dict(os.environ, QMVOS_LAB_SMOKE="1", QMVOS_LAB_CACHE=str(cache), MPLBACKEND="Agg")
    tic = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PREPARE.format(variants=NOTEBOOK_NETWORKS)], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\nthe notebook's {len(NOTEBOOK_NETWORKS)} networks ready in {cache} in {time.monotonic() - tic:.0f} s")
    return cache


@pytest.fixture(scope="module")
def jupyterlab(prepared_cache, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a copy of the explorer notebook: (url, token, log)."""
    home = tmp_path_factory.mktemp("jupyterlab")
    work = home / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)  # JupyterLab writes outputs into the file it runs
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))  # no news toast
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, QMVOS_LAB_SMOKE="1", QMVOS_LAB_OUTPUT=str(home / "outputs"),
               QMVOS_LAB_CACHE=str(prepared_cache),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    env.pop("MPLBACKEND", None)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    log_path = home / "jupyterlab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}: {log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {url} within 120 s; see {log_path}")
                time.sleep(1)
        yield url, token, log_path
    finally:
        server.terminate()  # the server shuts its kernels down
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def screenshot_folder() -> Path:
    folder = Path(os.environ.get("QMVOS_LAB_BROWSER_OUTPUT") or ROOT / "outputs" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write(path: Path, data: bytes) -> Path:
    from qmvos_lab.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


def changed_fraction(a: bytes, b: bytes) -> float:
    """Share of pixels that differ between two PNG screenshots (1.0 when their sizes differ)."""
    from PIL import Image

    x, y = (np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16) for png in (a, b))
    return 1.0 if x.shape != y.shape else float((np.abs(x - y).max(-1) > 8).mean())


def wait_for_change(element, before: bytes, timeout: float = CHANGE_TIMEOUT_S) -> tuple[bytes, float]:
    """Screenshots of `element` until it differs from `before` (the kernel redraws, then the comm syncs)."""
    deadline = time.monotonic() + timeout
    while True:
        after = element.screenshot()
        fraction = changed_fraction(before, after)
        if fraction > 0.001 or time.monotonic() > deadline:
            return after, fraction
        time.sleep(0.5)


ALL_CELLS_DONE = """() => {
    const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_explorer_runs_in_jupyterlab_and_redraws_when_a_control_moves(jupyterlab, prepared_cache):
    from playwright.sync_api import sync_playwright

    url, token, log_path = jupyterlab
    entries = trained_entries(prepared_cache)
    out = screenshot_folder()
    with sync_playwright() as playwright:
        profile = log_path.parent / "chromium-profile"  # a fresh profile for every run
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_function("() => document.body.innerText.includes('| Idle')", timeout=120_000)  # kernel up
            page.locator("li.lm-MenuBar-item", has_text="Run").first.click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            tic = time.monotonic()
            page.wait_for_function(ALL_CELLS_DONE, timeout=RUN_TIMEOUT_S * 1000)
            print(f"\nthe notebook ran in JupyterLab in {time.monotonic() - tic:.0f} s")
            write(out / "notebook.png", page.screenshot(full_page=True))
            text = page.locator(".jp-Notebook").inner_text()
            assert "Traceback (most recent call last)" not in text, "a cell failed in JupyterLab"
            assert "Error displaying widget" not in text, "the ipywidgets front end is missing or mismatched"
            trained_here = trained_entries(prepared_cache) - entries
            assert not trained_here, f"the notebook trained {sorted(trained_here)}: add them to NOTEBOOK_NETWORKS"

            images = page.locator(".jupyter-widgets.widget-image")
            assert images.count() >= 2  # the explorer's two views: attention and memory
            attention = images.first
            attention.scroll_into_view_if_needed()
            time.sleep(1)
            before = write(out / "explorer-before.png", attention.screenshot()).read_bytes()

            head = page.locator(".widget-dropdown", has=page.locator("label", has_text="head")).locator("select").first
            head.select_option(label="head 3")
            after_head, fraction = wait_for_change(attention, before)
            write(out / "explorer-head-3.png", after_head)
            assert fraction > 0.001, "choosing head 3 did not change the picture"

            handle = page.locator(".widget-slider", has=page.locator("label", has_text="frame")).locator(".noUi-handle")
            handle.first.focus()
            handle.first.press("ArrowLeft")  # one frame back
            after_frame, fraction = wait_for_change(attention, after_head)
            path = write(out / "explorer-frame-back.png", after_frame)
            assert fraction > 0.001, "moving the frame slider did not change the picture"
            print(f"screenshots: {path.parent} (explorer-before.png, explorer-head-3.png, explorer-frame-back.png)")
        finally:
            browser.close()
