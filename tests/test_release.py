"""`load_checkpoint("QMVOS")`: the released weights fetched with gdown from a local server standing in
for Google Drive (no network): the released layout is kept with its sha256 recorded; a web page, a
truncated file, another network, a cut transfer, Drive's refusal and no connection are one-line errors
that say how to place the file by hand."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch

from conftest import released_qmvos_shapes
from qmvos_lab import release
from qmvos_lab.checkpoints import load_checkpoint
from qmvos_lab.errors import CheckpointError

pytest.importorskip("gdown")


def torch_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def released_layout(full: bool = False, elements: int = 1) -> dict:
    """The released key set: tensors of `elements` zeros, or of the real shapes when `full` (float16)."""
    return {k: torch.zeros(v if full else (elements,), dtype=torch.float16) for k, v in released_qmvos_shapes().items()}


@pytest.fixture
def drive(http_server, monkeypatch):
    """The local server as the Drive address of the QMVOS release."""
    http_server.filename = "QMVOS.pth"
    monkeypatch.setattr(release.Release, "url", property(lambda self: http_server.url()))
    return http_server


def fetch(cache, **kwargs):
    return release.fetch_release("QMVOS", cache, progress=False, **kwargs)


def assert_one_line_with_the_manual_way(error: CheckpointError) -> str:
    message = str(error)
    assert "\n" not in message
    assert "drive.google.com/file/d/1XVXo2W7seI6Jor6Jsv-f6Qk8PCgeOm_r" in message and "pan.baidu.com" in message
    assert "load_checkpoint(PATH)" in message
    return message


def test_download_keeps_the_released_layout_and_records_its_sha256(tmp_path, drive, capsys):
    drive.payload = torch_bytes(released_layout())
    path = fetch(tmp_path)
    assert path == tmp_path / "QMVOS.pth" and path.read_bytes() == drive.payload
    digest = hashlib.sha256(drive.payload).hexdigest()
    assert (tmp_path / "QMVOS.pth.sha256").read_text().split()[0] == digest
    assert digest in capsys.readouterr().err  # says so
    assert sorted(p.name for p in tmp_path.iterdir()) == ["QMVOS.pth", "QMVOS.pth.sha256"]
    requests = len(drive.requests)
    assert fetch(tmp_path) == path and len(drive.requests) == requests  # cached: no second download


def test_a_changed_cached_file_is_refused(tmp_path, drive):
    drive.payload = torch_bytes(released_layout())
    path = fetch(tmp_path)
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(CheckpointError, match="not the .* recorded when it was downloaded.*delete it"):
        fetch(tmp_path)


def test_a_file_placed_in_the_cache_by_hand_is_checked_and_recorded(tmp_path, drive):
    (tmp_path / "QMVOS.pth").write_bytes(torch_bytes(released_layout()))
    assert fetch(tmp_path) == tmp_path / "QMVOS.pth" and drive.requests == []
    assert (tmp_path / "QMVOS.pth.sha256").is_file()
    (tmp_path / "QMVOS.pth.sha256").unlink()
    (tmp_path / "QMVOS.pth").write_bytes(b"<html>")
    with pytest.raises(CheckpointError, match="web page.*delete it"):
        fetch(tmp_path)


@pytest.mark.parametrize("payload, why", [
    (b"<!DOCTYPE html><html><body>Google Drive - Quota exceeded</body></html>", "sent a web page"),
    ("truncated", "not a complete PyTorch checkpoint"),
    ("xmem", "not the released QMVOS network .it lacks decoder.QCIM"),
], ids=["html", "truncated", "another-network"])
def test_a_wrong_file_is_refused_in_one_line_and_not_kept(tmp_path, drive, payload, why):
    whole = torch_bytes(released_layout())
    drive.payload = {"truncated": whole[: len(whole) // 2],
                     "xmem": torch_bytes({k: v for k, v in released_layout().items() if "QCIM" not in k})}.get(payload, payload)
    with pytest.raises(CheckpointError, match=why) as error:
        fetch(tmp_path)
    assert_one_line_with_the_manual_way(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing kept: the next call starts over


def test_a_cut_transfer_resumes(tmp_path, drive):
    drive.payload = torch_bytes(released_layout(elements=4096))  # 3.7 MB: the cut comes after whole chunks
    drive.truncate_first = 1  # gdown reconnects with a Range request within the same call
    assert fetch(tmp_path).read_bytes() == drive.payload
    assert "Range" not in drive.requests[0] and drive.requests[1]["Range"] != "bytes=0-"


def test_a_transfer_cut_again_and_again_keeps_its_bytes_for_the_next_call(tmp_path, drive):
    drive.payload = torch_bytes(released_layout(elements=4096))
    drive.truncate_first = 100
    with pytest.raises(CheckpointError, match="stopped early.*run the same command again to resume") as error:
        fetch(tmp_path)
    assert_one_line_with_the_manual_way(error.value)
    assert not (tmp_path / "QMVOS.pth").exists()
    parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < len(drive.payload)
    kept = parts[0].stat().st_size
    drive.truncate_first, drive.requests = 0, []
    assert fetch(tmp_path).read_bytes() == drive.payload
    # gdown first asks for the file (to learn its name), then resumes from the kept bytes
    assert [r.get("Range") for r in drive.requests] == [None, f"bytes={kept}-"]


def test_no_connection_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "RETRIES", 0)
    with pytest.raises(CheckpointError, match="no connection to Google Drive") as error:
        fetch(tmp_path, url="http://127.0.0.1:9/QMVOS.pth")
    assert_one_line_with_the_manual_way(error.value)


def test_drives_refusal_and_a_missing_gdown_are_one_line(tmp_path, monkeypatch):
    import gdown

    def refused(*args, **kwargs):
        raise gdown.exceptions.FileURLRetrievalError("Failed to retrieve file url:\n\n\tToo many users have "
                                                     "viewed or downloaded this file recently.\n")

    monkeypatch.setattr(gdown, "download", refused)
    with pytest.raises(CheckpointError, match="quota") as error:
        fetch(tmp_path)
    assert_one_line_with_the_manual_way(error.value)
    monkeypatch.setitem(__import__("sys").modules, "gdown", None)
    with pytest.raises(CheckpointError, match="pip install gdown"):
        fetch(tmp_path)


def test_a_fake_downloader_serving_a_file_the_test_writes(tmp_path):
    payload = torch_bytes(released_layout())
    calls = []

    def fake(url, output, progress):
        calls.append(url)
        output.write_bytes(payload)

    assert fetch(tmp_path, downloader=fake).read_bytes() == payload
    assert calls == [release.RELEASES["QMVOS"].url] and "1XVXo2W7seI6Jor6Jsv-f6Qk8PCgeOm_r" in calls[0]


@pytest.mark.slow
def test_load_checkpoint_and_the_commands_by_name(tmp_path, drive, monkeypatch, capsys):
    """The full-size released layout (float16 zeros, ~140 MB) served, loaded strictly by name."""
    from qmvos_lab.cli import main

    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path))
    drive.payload = torch_bytes(released_layout(full=True))
    model = load_checkpoint("QMVOS", progress=False)
    assert model.checkpoint_info.variant == "qmvos" and len(model.state_dict()) == 450
    assert (tmp_path / "checkpoints" / "QMVOS.pth").is_file()
    capsys.readouterr()
    assert main(["info", "QMVOS", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "variant:    qmvos" in out and "450 state-dict entries" in out


def test_the_command_offline_is_one_line(tmp_path, monkeypatch, capsys):
    from qmvos_lab.cli import main

    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(release, "RETRIES", 0)
    monkeypatch.setattr(release.Release, "url", property(lambda self: "http://127.0.0.1:9/QMVOS.pth"))
    assert main(["info", "QMVOS", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qmvos-lab info: error: cannot download the released QMVOS weights: no connection")
    assert "\n" not in err
