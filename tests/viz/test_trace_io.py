"""A traced run on disk: saved and reopened it is the same Recording (same metric table, same
pictures), and one written by `qmvos-lab segment --trace` equals a recording made in Python."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qmvos_lab import viz
from qmvos_lab.errors import UserError
from qmvos_lab.viz.explorer import AttentionExplorer, record
from qmvos_lab.viz.trace_io import FEATURE_MAPS, load_recording, save_recording
from test_explorer import fake_recording


def test_a_saved_recording_reopens_with_the_same_metrics_and_pictures(tmp_path):
    rec = fake_recording()
    path = save_recording(rec, tmp_path / "run.pt")
    loaded = viz.load_recording(path)
    assert loaded.object_ids == rec.object_ids and loaded.size == rec.size and loaded.name == rec.name
    np.testing.assert_array_equal(loaded.frames, rec.frames)
    pd.testing.assert_frame_equal(loaded.metrics(), rec.metrics())
    pd.testing.assert_frame_equal(loaded.metrics(head=1), rec.metrics(head=1))
    before, after = AttentionExplorer(rec), viz.open_explorer(path)
    for explorer in (before, after):
        explorer.set(frame=4, query=2, head=1, pixel=(1, 2))
    assert before.png("attention") == after.png("attention") and before.png("memory") == after.png("memory")
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # written atomically, nothing else left


def test_ground_truth_given_on_opening_and_bad_files(tmp_path):
    rec = fake_recording()
    truth = rec.ground_truth
    rec.ground_truth = None
    path = save_recording(rec, tmp_path / "run.pt")
    with pytest.raises(UserError, match="ground truth"):
        load_recording(path).metrics()
    pd.testing.assert_frame_equal(load_recording(path, ground_truth=truth).metrics(), fake_recording().metrics())
    with pytest.raises(UserError, match="the ground truth is .* the video"):
        load_recording(path, ground_truth=truth[:2])
    (tmp_path / "bad.pt").write_bytes(b"nothing")
    with pytest.raises(UserError, match="cannot read trace"):
        load_recording(tmp_path / "bad.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a QMVOS Lab trace"):
        load_recording(tmp_path / "other.pt")
    with pytest.raises(UserError, match="not found"):
        load_recording(tmp_path / "missing.pt")


def test_segment_trace_equals_a_recording_made_in_python(tmp_path):
    from qmvos_lab.checkpoints import load_checkpoint, save_checkpoint
    from qmvos_lab.cli import main
    from qmvos_lab.config import InferenceConfig, ModelConfig
    from qmvos_lab.data.masks import write_label_map
    from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
    from qmvos_lab.model import build_network
    from PIL import Image

    video = generate_video(SyntheticConfig(num_objects=2, length=6, height=48, width=64, enter_prob=1.0), seed=3)
    given = video.given_masks()
    assert len(given) == 2  # the second object enters later
    for t, frame in enumerate(video.frames):
        (tmp_path / "frames").mkdir(exist_ok=True)
        Image.fromarray(frame).save(tmp_path / "frames" / f"{t:05d}.png")  # lossless: the same pixels
    for t, mask in given.items():
        write_label_map(tmp_path / "masks" / f"{t:05d}.png", mask)
    torch.manual_seed(0)
    with torch.no_grad():
        net = build_network(ModelConfig.of_size("small", queries=True)).eval()
        torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)  # distinct queries (see conftest.with_random_heads)
    checkpoint = save_checkpoint(net, tmp_path / "net.pth")
    assert main(["segment", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                 "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out"), "--size", "-1",
                 "--mem-every", "2", "--trace", str(tmp_path / "run.pt"), "--quiet"]) == 0
    from_command = load_recording(tmp_path / "run.pt", ground_truth=video.labels)
    in_python = record(load_checkpoint(checkpoint), video.frames, given, video.labels,
                       InferenceConfig(size=-1, mem_every=2))
    table = in_python.metrics()
    assert set(table["query"]) == {1, 2} and table["value"].notna().any()
    pd.testing.assert_frame_equal(from_command.metrics(), table)
    np.testing.assert_array_equal(from_command.predictions, in_python.predictions)
    assert from_command.object_ids == in_python.object_ids and from_command.size == -1
    assert all(getattr(t, name) is None for t in from_command.traces for name in FEATURE_MAPS)  # slim
    AttentionExplorer(from_command).set(frame=5, query=2)
    # refused before any work: an existing trace without --overwrite
    assert main(["segment", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                 "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out2"),
                 "--trace", str(tmp_path / "run.pt"), "--quiet"]) == 2
    assert not (tmp_path / "out2").exists()


JUDO = os.environ.get("QMVOS_LAB_JUDO", "")


@pytest.mark.slow
@pytest.mark.skipif(not JUDO, reason="set QMVOS_LAB_JUDO to the judo clip (frames/, masks/) to run this")
def test_a_real_clip_segmented_once_is_explored_from_its_trace(tmp_path):
    """The judo clip (four athletes given on frames 0, 5, 8, 13) with a small QMVOS of random weights:
    the command's trace opens in the explorer with every object, and exports."""
    from qmvos_lab.checkpoints import save_checkpoint
    from qmvos_lab.cli import main
    from qmvos_lab.config import ModelConfig
    from qmvos_lab.data.frames import FrameSource
    from qmvos_lab.model import build_network

    torch.manual_seed(0)
    with torch.no_grad():
        net = build_network(ModelConfig.of_size("small", queries=True)).eval()
        torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)
    checkpoint = save_checkpoint(net, tmp_path / "net.pth")
    judo = Path(JUDO)
    assert main(["segment", "--frames", str(judo / "frames"), "--masks", str(judo / "masks"), "--checkpoint",
                 str(checkpoint), "--output", str(tmp_path / "out"), "--size", "-1", "--trace",
                 str(tmp_path / "judo.pt"), "--quiet"]) == 0
    rec = load_recording(tmp_path / "judo.pt")
    source = FrameSource(judo / "frames")
    assert rec.frames.shape == (len(source), *source.first_frame_size(), 3) and rec.ground_truth is None
    first = {int(p.stem) for p in (judo / "masks").glob("*.png")}
    assert [min(t for t, ids in enumerate(rec.object_ids) if i in ids) for i in rec.ids] == sorted(first)
    explorer = AttentionExplorer(rec)
    explorer.set(frame=len(source) - 1, query=rec.ids[-1])
    assert explorer.head_grid().axes
    page = explorer.to_html(tmp_path / "judo.html")
    assert page.read_text().count("data:image/png;base64,") >= 2
