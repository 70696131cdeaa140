"""`qmvos-lab segment` end to end (random weights): files, ids, palette, shapes, scores, overlays,
video input, determinism, and a one-line error with no output left behind for each bad input."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_video, with_random_heads
from qmvos_lab.cli import main
from qmvos_lab.data.masks import write_label_map


@pytest.fixture
def video(tmp_path):
    frames, masks, labels = make_video(tmp_path / "in")
    return frames, masks, labels


def segment_args(frames, masks, checkpoint, output, *extra):
    return ["segment", "--frames", str(frames), "--masks", str(masks), "--checkpoint", str(checkpoint),
            "--output", str(output), "--size", "-1", "--quiet", *extra]


@pytest.mark.e2e
def test_segment_writes_palette_masks_scores_and_overlay(tmp_path, video, xmem_checkpoint):
    frames, masks, _ = video
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "qmvos_lab",
                             *segment_args(frames, masks, xmem_checkpoint, out, "--save-scores",
                                           "--overlay", str(tmp_path / "overlay.gif"))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("segmented 8 frames, 3 objects:") and "FPS (excluding I/O)" in result.stdout
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{t:05d}.png" for t in range(8)]
    first = Image.open(out / "00000.png")
    assert first.mode == "P" and first.size == (64, 48)
    assert first.getpalette()[:12] == list(Image.open(masks / "00000.png").getpalette()[:12])
    for t in range(8):
        ids = set(np.unique(np.asarray(Image.open(out / f"{t:05d}.png"))))
        assert ids <= ({0, 2, 4} if t < 4 else {0, 2, 4, 7})
    np.testing.assert_array_equal(np.asarray(first), np.asarray(Image.open(masks / "00000.png")))
    scores = np.load(out / "scores" / "00006.npy")
    assert scores.dtype == np.float16 and scores.shape == (4, 48, 64)  # background, ids 2, 4, 7
    np.testing.assert_allclose(scores.astype(np.float32).sum(0), 1, atol=2e-3)
    # the written id is the most probable channel (up to float16 rounding of near-ties)
    channel = np.searchsorted([0, 2, 4, 7], np.asarray(Image.open(out / "00006.png")))
    chosen = np.take_along_axis(scores.astype(np.float32), channel[None], 0)[0]
    assert (chosen >= scores.astype(np.float32).max(0) - 2e-3).all()
    gif = Image.open(tmp_path / "overlay.gif")
    assert gif.n_frames == 8 and gif.size == (64, 48)
    assert not list(tmp_path.glob(".*"))  # no staging or temporary files left


def write_lossless_mp4(frames, path):
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt, stream.options = "yuv444p", {"crf": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_segment_is_deterministic_and_reads_video_files(tmp_path, video, xmem_checkpoint, capsys):
    frames, masks, _ = video
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "a")) == 0
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "b", "--overlay",
                             str(tmp_path / "overlay.mp4"))) == 0
    for t in range(8):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / f"{t:05d}.png")),
                                      np.asarray(Image.open(tmp_path / "b" / f"{t:05d}.png")))
    # the same frames as an MP4 (frames named 00000, 00001, ... like the masks), nearly lossless
    # (H.264 4:4:4 at crf 0: pixels within 2 levels), so the masks must match the JPEG run's
    write_lossless_mp4([np.asarray(Image.open(p)) for p in sorted(frames.glob("*.jpg"))], tmp_path / "clip.mp4")
    assert main(segment_args(tmp_path / "clip.mp4", masks, xmem_checkpoint, tmp_path / "c")) == 0
    assert len(list((tmp_path / "c").glob("*.png"))) == 8
    from qmvos_lab.eval.metrics import jaccard

    for t in range(8):
        jpeg, mp4 = (np.asarray(Image.open(tmp_path / run / f"{t:05d}.png")) for run in ("a", "c"))
        for object_id in (2, 4, 7) if t >= 4 else (2, 4):
            iou = jaccard(jpeg == object_id, mp4 == object_id)
            given = t == 0 or (t == 4 and object_id == 7)  # a given mask is reproduced exactly by both
            assert iou == 1.0 if given else iou >= 0.8, (t, object_id, iou)  # a frame off: about 0.5
    assert (tmp_path / "overlay.mp4").stat().st_size > 0


def test_overwrite_replaces_an_existing_output(tmp_path, video, xmem_checkpoint, capsys):
    frames, masks, _ = video
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(segment_args(frames, masks, xmem_checkpoint, out)) == 2
    assert "already holds files; pass --overwrite" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    assert main(segment_args(frames, masks, xmem_checkpoint, out, "--overwrite")) == 0
    assert not (out / "notes.txt").exists() and len(list(out.glob("*.png"))) == 8


def bad_inputs(tmp_path, frames, masks):
    """name -> (frames, masks, checkpoint or None for the good one, expected message)."""
    cases = {}
    cases["missing frames"] = (tmp_path / "nope", masks, None, "frames .*nope not found")
    (tmp_path / "empty").mkdir()
    cases["empty frames"] = (tmp_path / "empty", masks, None, "no JPEG/PNG frames in")
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in sorted(frames.glob("*.jpg")):
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "00000.jpg").write_bytes(b"not a jpeg")
    cases["unreadable frame"] = (broken, masks, None, "cannot read frame .*00000.jpg")
    small = tmp_path / "small_masks"
    write_label_map(small / "00000.png", np.ones((10, 10), np.uint8))
    cases["mask size"] = (frames, small, None, "mask .*00000.png is 10x10 but the frames are 64x48")
    late_only = tmp_path / "late_only"
    write_label_map(late_only / "00003.png", np.ones((48, 64), np.uint8))
    cases["no first mask"] = (frames, late_only, None, "no mask for the first frame")
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.new("RGB", (64, 48), (255, 0, 0)).save(rgb / "00000.png")
    cases["rgb mask"] = (frames, rgb, None, "RGB image, not a label map")
    many = tmp_path / "many"
    many.mkdir()
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 300 + 1).astype(np.uint16)).save(many / "00000.png")
    cases["too many objects"] = (frames, many, None, "label id 300 does not fit")  # ids 1..254: at most 254
    (tmp_path / "corrupt.pth").write_bytes(b"\x00garbage")
    cases["corrupt checkpoint"] = (frames, masks, tmp_path / "corrupt.pth", "cannot read checkpoint")
    torch.save({"layer.weight": torch.zeros(1)}, tmp_path / "foreign.pth")
    cases["foreign checkpoint"] = (frames, masks, tmp_path / "foreign.pth", "not an XMem/QMVOS network")
    return cases


def test_bad_inputs_give_one_line_errors_and_leave_nothing(tmp_path, video, xmem_checkpoint, capsys):
    frames, masks, _ = video
    for name, (bad_frames, bad_masks, checkpoint, message) in bad_inputs(tmp_path, frames, masks).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        code = main(segment_args(bad_frames, bad_masks, checkpoint or xmem_checkpoint, out))
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith("qmvos-lab segment: error:") and err.count("\n") == 1, (name, err)
        assert __import__("re").search(message, err), (name, err)
        assert not out.exists(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failure_mid_video_leaves_no_output(tmp_path, video, xmem_checkpoint, capsys):
    frames, masks, _ = video
    (frames / "00005.jpg").write_bytes(b"cut off")
    code = main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "out", "--overlay",
                             str(tmp_path / "o.gif")))
    assert code == 2 and "cannot read frame" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o.gif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_settings_are_refused(tmp_path, video, xmem_checkpoint, capsys):
    frames, masks, _ = video
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "o", "--min-mid-term-frames", "12")) == 2
    assert "--min-mid-term-frames (12) must be below" in capsys.readouterr().err
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "o", "--overlay", "x.avi")) == 2
    assert "use a .gif or .mp4" in capsys.readouterr().err


def test_segment_runs_a_qmvos_checkpoint(tmp_path, video, capsys):
    from qmvos_lab.checkpoints import save_checkpoint
    from qmvos_lab.config import ModelConfig
    from qmvos_lab.model import QMVOS

    frames, masks, _ = video
    torch.manual_seed(0)
    path = save_checkpoint(with_random_heads(QMVOS(ModelConfig(queries=True, query_propagation="first"))),
                           tmp_path / "q.pth")
    assert main(["info", str(path), "--quiet"]) == 0
    assert "variant:    qmvos (query_propagation=first)" in capsys.readouterr().out
    assert main(segment_args(frames, masks, path, tmp_path / "out")) == 0
    assert "segmented 8 frames, 3 objects" in capsys.readouterr().out
    ids = set(np.unique(np.asarray(Image.open(tmp_path / "out" / "00007.png"))))
    assert ids <= {0, 2, 4, 7}


def test_fast_switches_reach_segment(tmp_path, video, xmem_checkpoint, monkeypatch):
    """--amp --channels-last --compile reach the VideoSegmenter; channels-last keeps the fp32 masks
    (but for pixels at a tie)."""
    import qmvos_lab.segment as segment_module

    frames, masks, _ = video
    seen = []
    real = segment_module.VideoSegmenter

    def recording(*args, **kwargs):
        seen.append({k: kwargs[k] for k in ("amp", "compile", "channels_last")})
        return real(*args, **{**kwargs, "compile": False})  # compiling is tested in tests/inference

    monkeypatch.setattr(segment_module, "VideoSegmenter", recording)
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "plain")) == 0
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "fast", "--channels-last")) == 0
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "all", "--amp", "--compile")) == 0
    assert seen == [{"amp": False, "compile": False, "channels_last": False},
                    {"amp": False, "compile": False, "channels_last": True},
                    {"amp": True, "compile": True, "channels_last": False}]
    # fp32 either way; random weights leave pixels near a tie, where rounding may flip one
    plain, fast = ([np.asarray(Image.open(tmp_path / run / f"{t:05d}.png")) for t in range(8)] for run in ("plain", "fast"))
    assert np.mean([(a == b).mean() for a, b in zip(plain, fast)]) > 0.995


def test_amp_auto_times_both_once_and_passes_a_decision(tmp_path, video, xmem_checkpoint, monkeypatch, capsys):
    """--amp auto: fp32 and bf16 timed on this CPU, the faster kept in the cache root's decisions and reused."""
    import json

    import qmvos_lab.segment as segment_module
    from qmvos_lab.machine import DECISIONS

    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "cache"))
    frames, masks, _ = video
    seen = []
    real = segment_module.VideoSegmenter
    monkeypatch.setattr(segment_module, "VideoSegmenter",
                        lambda *args, **kwargs: seen.append(kwargs["amp"]) or real(*args, **kwargs))
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "a", "--amp", "auto")) == 0
    (key, record), = json.loads((tmp_path / "cache" / DECISIONS).read_text()).items()
    assert key.startswith("inference-") and set(record["median_s"]) == {"fp32", "bf16"}
    assert seen == [record["amp"]] and isinstance(seen[0], bool)
    record["amp"] = not record["amp"]  # a decision on file is read, not measured again
    (tmp_path / "cache" / DECISIONS).write_text(json.dumps({key: record}))
    assert main(segment_args(frames, masks, xmem_checkpoint, tmp_path / "b", "--amp", "auto")) == 0
    assert seen[1] == record["amp"]
