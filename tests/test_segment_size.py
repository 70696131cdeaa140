"""`qmvos-lab segment` segments at the size the checkpoint was trained for (its saved inference size),
else 480; `--size` overrides; `qmvos-lab info` prints it."""

from __future__ import annotations

import pytest
import torch

from conftest import make_video
from qmvos_lab import segment as segment_module
from qmvos_lab.checkpoints import save_checkpoint
from qmvos_lab.cli import main
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import build_network


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A small QMVOS Lab checkpoint that saved inference size 32, and the same weights as a bare state dict."""
    folder = tmp_path_factory.mktemp("size")
    torch.manual_seed(0)
    net = build_network(ModelConfig.of_size("small")).eval()
    net.inference_size = 32
    torch.save(net.state_dict(), folder / "bare.pth")
    return save_checkpoint(net, folder / "trained.pth"), folder / "bare.pth"


def test_network_size():
    class Net:
        inference_size = -1

    net = Net()
    assert segment_module.network_size(net) == 480 and segment_module.network_size(net, 64) == 64
    net.inference_size = 192
    assert segment_module.network_size(net) == 192 and segment_module.network_size(net, -1) == -1


@pytest.mark.parametrize("which, size, expected", [("trained", None, 32), ("trained", "48", 48),
                                                   ("trained", "-1", -1), ("bare", None, 480)])
def test_segment_uses_the_checkpoints_size_unless_given(tmp_path, monkeypatch, checkpoints, which, size, expected):
    frames, masks, _ = make_video(tmp_path / "in")
    used = {}

    def fake_segment(model, inputs, output, config, **kwargs):
        used["size"] = config.size
        return segment_module.SegmentSummary(1, 1, 1.0, 0.0, "cpu")

    monkeypatch.setattr(segment_module, "segment_to_folder", fake_segment)
    checkpoint = checkpoints[0] if which == "trained" else checkpoints[1]
    args = ["segment", "--frames", str(frames), "--masks", str(masks), "--checkpoint", str(checkpoint),
            "--output", str(tmp_path / "out"), "--quiet"] + (["--size", size] if size is not None else [])
    assert main(args) == 0
    assert used["size"] == expected


def test_info_prints_the_inference_size(checkpoints, capsys):
    assert main(["info", str(checkpoints[0]), "--quiet"]) == 0
    assert "inference size: 32 (saved with the checkpoint" in capsys.readouterr().out
    assert main(["info", str(checkpoints[1]), "--quiet"]) == 0
    assert "inference size: none saved (segment uses 480" in capsys.readouterr().out
