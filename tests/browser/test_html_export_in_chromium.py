"""The browser tier: `AttentionExplorer.to_html`'s standalone page in headless Chromium, no kernel and no
server (a file:// URL): the page loads without script errors, and moving the frame slider shows that
frame's picture, moves the metric marker and updates the metric values.

Skips when Debian's chromium or Playwright is missing (QMVOS_LAB_REQUIRE_BROWSER=1, set by
`make test-browser`, makes that a failure)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # the tests may choose the backend; the library never does

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from test_explorer import fake_recording  # noqa: E402

from qmvos_lab.viz.explorer import AttentionExplorer  # noqa: E402

from test_explorer_in_jupyterlab import CHROMIUM_ARGS, chromium_path  # noqa: E402

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def chromium():
    needs = [] if chromium_path() else ["Debian's chromium (apt-get install -y chromium)"]
    if importlib.util.find_spec("playwright") is None:
        needs.append("playwright (pip install -e '.[browser]')")
    if needs:
        message = "the browser tier needs " + ", ".join(needs)
        if os.environ.get("QMVOS_LAB_REQUIRE_BROWSER", "") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return chromium_path()


def test_the_standalone_page_slider_moves_through_the_frames(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    explorer = AttentionExplorer(fake_recording(frames=6, heads=2))
    explorer.set(frame=5, query=2)
    path = explorer.to_html(tmp_path / "explorer.html")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri())
            data = json.loads(page.locator("#explorer-data").text_content())
            view = page.locator("#view")
            assert view.get_attribute("src").endswith(data["images"][5])
            assert view.evaluate("img => img.complete && img.naturalWidth > 0")  # the inline picture decodes
            marker_before = page.locator("#now-0").evaluate("m => m.getBoundingClientRect().left")
            page.locator("#frame").fill("4")  # a range input: sets the value and fires `input`
            assert view.get_attribute("src").endswith(data["images"][4])
            assert page.locator("#frame-label").text_content() == "frame 4"
            marker_after = page.locator("#now-0").evaluate("m => m.getBoundingClientRect().left")
            assert marker_after < marker_before  # one frame to the left
            expected = data["values"][0][4]
            assert page.locator("#value-0").text_content() == f"{expected:.3f}"
            assert errors == []
        finally:
            browser.close()
