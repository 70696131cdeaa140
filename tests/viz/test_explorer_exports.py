"""The explorer's standalone HTML page (parsed: self-contained, one picture per frame, a slider, the
metric plot and its marker), the grid of every head for one query, and click-to-pick on the memory
view (the widget's Python side), all under Agg."""

from __future__ import annotations

import base64
import html.parser
import io
import json

import numpy as np
import pytest
from PIL import Image

from qmvos_lab.errors import UserError
from qmvos_lab.viz import explorer_metrics as em
from qmvos_lab.viz.explorer import AttentionExplorer
from qmvos_lab.viz.pixel_pick import on_click, pixel_at
from test_explorer import fake_recording


class Page(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text of each script."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data

    def by_id(self, name):
        found = [attrs for tag, attrs in self.tags if attrs.get("id") == name]
        assert len(found) == 1, name
        return found[0]


@pytest.fixture(scope="module")
def explorer():
    return AttentionExplorer(fake_recording(frames=6, heads=2))


def parse(path) -> tuple[Page, dict]:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    data = json.loads(next(text for attrs, text in page.scripts if attrs.get("id") == "explorer-data"))
    return page, data


def png_size(encoded: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(encoded))).size


def test_to_html_writes_one_self_contained_page(explorer, tmp_path):
    explorer.set(frame=4, query=2, head=1)
    path = explorer.to_html(tmp_path / "run.html")
    assert [p.name for p in tmp_path.iterdir()] == ["run.html"]  # atomic: no temporary file left
    page, data = parse(path)
    # nothing outside the file: every picture inline, no external script, style or link
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            assert key not in attrs or attrs[key].startswith("data:"), (tag, attrs)
    slider = page.by_id("frame")
    assert slider["type"] == "range" and (slider["min"], slider["max"], slider["value"]) == ("0", "5", "4")
    assert data["frames"] == list(range(6)) and len(data["images"]) == 6
    assert page.by_id("view")["src"] == "data:image/png;base64," + data["images"][4]  # the current frame
    assert {png_size(i) for i in data["images"]} == {Image.open(io.BytesIO(explorer.png("attention"))).size}
    assert len(set(data["images"])) == 6  # each frame its own picture
    # the metric plot: the chosen query's metrics, a marker per panel moving right with the frame
    assert data["metrics"] == list(em.METRICS)
    table = explorer.rec.metrics(head=1)
    own = table[(table["query"] == 2) & (table["metric"] == "own-object mass")].set_index("frame")["value"]
    values = data["values"][0]
    assert values[:4] == [None] * 4  # the query of object 2 reads from frame 4 on
    np.testing.assert_allclose(values[4:], own.reindex([4, 5]).to_numpy())
    assert page.by_id("metric-plot")["src"].startswith("data:image/png;base64,")
    assert len(data["panels"]) == 4
    for p, panel in enumerate(data["panels"]):
        page.by_id(f"now-{p}")
        assert np.all(np.diff(panel["x"]) > 0) and 0 < panel["x"][0] < panel["x"][-1] < 1
    assert "query 2, head 1" in path.read_text()
    assert explorer.state["frame"] == 4  # the controls are as they were


def test_to_html_memory_view_frames_and_no_ground_truth(tmp_path):
    rec = fake_recording()
    rec.ground_truth = None
    explorer = AttentionExplorer(rec)
    page, data = parse(explorer.to_html(tmp_path / "memory.html", view="memory", frames=[1, 3, 5]))
    assert page.by_id("frame")["max"] == "2" and data["frames"] == [1, 3, 5]
    # without ground truth, the metrics that need none
    assert data["metrics"] == ["own-object mass", "entropy"]
    with pytest.raises(UserError, match="frames must lie in"):
        explorer.to_html(tmp_path / "bad.html", frames=[9])
    assert not (tmp_path / "bad.html").exists()


def test_xmem_page_has_the_memory_view_and_no_metrics(tmp_path):
    explorer = AttentionExplorer(fake_recording(queries=False))
    page, data = parse(explorer.to_html(tmp_path / "xmem.html"))
    assert data["metrics"] == [] and "no queries" in (tmp_path / "xmem.html").read_text()


def test_head_grid_draws_every_head_of_one_query(explorer):
    fig = explorer.head_grid(frame=5, query=2)
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 2 * 2  # 2 readouts x 2 heads (plus the colour bar)
    assert [ax.get_title() for ax in images[:2]] == ["head 0", "head 1"]
    # each panel is that head's map over that readout, brought onto the frame
    expected = explorer.geometry.upsample(explorer.cross[5][explorer.query_index(5, 2)])  # heads x No x H x W
    drawn = images[1 * 2 + 0].get_images()[-1].get_array()  # readout row 1, head 0
    np.testing.assert_allclose(np.asarray(drawn), expected[0, 1], rtol=1e-6)
    assert explorer.head_grid().axes  # the current controls
    with pytest.raises(UserError, match="no cross-attention on frame 0"):
        explorer.head_grid(frame=0)
    with pytest.raises(UserError, match="no queries"):
        AttentionExplorer(fake_recording(queries=False)).head_grid()


def image_point(explorer, cell):
    """Where the centre of grid `cell` lies on the memory view's picture (pixels from the top left)."""
    fig, ax = explorer.figures["memory"], explorer.views["memory"].ax_query
    row, column = explorer.centres[cell]
    x, y = ax.transData.transform((column, row))
    return x, fig.bbox.height - y


def test_click_on_the_frame_picks_the_memory_pixel(explorer):
    explorer.set(frame=4, pixel=(0, 0))
    x, y = image_point(explorer, (2, 3))
    assert pixel_at(explorer, x, y) == (2, 3)
    before = explorer.png("memory")
    assert on_click(explorer, {"type": "click", "dataX": x, "dataY": y})
    assert explorer.state["pixel"] == (2, 3) and explorer.png("memory") != before
    # the widget shown at half size: its relative position is scaled back to the picture's pixels
    width, height = explorer.figures["memory"].bbox.size
    x, y = image_point(explorer, (1, 1))
    assert on_click(explorer, {"type": "click", "relativeX": x / 2, "relativeY": y / 2,
                               "boundingRectWidth": width / 2, "boundingRectHeight": height / 2})
    assert explorer.state["pixel"] == (1, 1)
    # outside the frame panel (a memory frame's panel) nothing changes
    outside = explorer.views["memory"].memory_axes[0].bbox
    assert not on_click(explorer, {"type": "click", "dataX": outside.x0 + 3, "dataY": height - outside.y1 + 3})
    assert explorer.state["pixel"] == (1, 1)


def test_the_widget_follows_a_click(explorer):
    widget = explorer.widget
    x, y = image_point(explorer, (2, 1))
    on_click(explorer, {"type": "click", "dataX": x, "dataY": y})
    assert (widget.controls["pixel row"].value, widget.controls["pixel col"].value) == (2, 1)
    assert widget.pick_events is None or widget.pick_events.watched_events == ["click"]
