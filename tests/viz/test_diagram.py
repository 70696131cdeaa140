"""The architecture diagram: its shapes come from a real forward pass of the network drawn."""

import pytest
import torch
from matplotlib.figure import Figure

from qmvos_lab import viz
from qmvos_lab.ablations import model_config
from qmvos_lab.model import build_network


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    return {name: build_network(model_config(name, "small")).eval() for name in ("qmvos", "xmem", "qcim-f16")}


def texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.axes[0].texts)


def test_shapes_are_those_of_the_stages(networks):
    net = networks["qmvos"]
    shapes = viz.forward_shapes(net, 64, 96, objects=3)
    c = net.config
    assert shapes["F16"][-2:] == (4, 6) and shapes["F8"][-2:] == (8, 12) and shapes["F4"][-2:] == (16, 24)
    assert shapes["queries"] == shapes["refined queries"] == (1, 3, c.query_dim)
    assert shapes["F_fuse"] == (1, c.query_dim, 8, 12)  # stride 8 (QMVOS Eq. 1)
    assert shapes["M"] == (1, 3 * 4 * 6, c.query_dim)  # N*h*w tokens
    assert shapes["object logits"] == (1, 3, 16, 24) and shapes["prob"] == (1, 4, 64, 96)
    assert "queries" not in viz.forward_shapes(networks["xmem"], 64, 96)
    with pytest.raises(ValueError, match="multiples of 16"):
        viz.forward_shapes(net, 60, 96)


def test_the_figure_shows_the_measured_shapes_and_each_networks_parts(networks):
    fig = viz.architecture(networks["qmvos"], 64, 96, objects=3)
    assert isinstance(fig, Figure)
    text = texts(fig)
    assert f"refined queries 1 x 3 x {networks['qmvos'].config.query_dim}" in text
    assert "QMVOS Eq. 1" in text and "QMVOS Eq. 3-4" in text and "F_fuse 1 x" in text
    xmem = texts(viz.architecture(networks["xmem"], 64, 96))
    assert "prediction conv" in xmem and "QCIM" not in xmem
    assert "content: F16 of frame t" in texts(viz.architecture(networks["qcim-f16"], 64, 96))
