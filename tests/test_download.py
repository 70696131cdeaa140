"""Resumable, checksummed, atomic downloads against a local HTTP server on 127.0.0.1."""

import hashlib

import pytest

from qmvos_lab.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def test_download_writes_the_file(tmp_path, http_server):
    http_server.payload = PAYLOAD
    path = download(http_server.url(), tmp_path / "out.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                    progress=False)
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_cut_transfer_resumes_with_a_range_request(tmp_path, http_server):
    http_server.payload, http_server.truncate_first = PAYLOAD, 1
    path = download(http_server.url(), tmp_path / "out.bin", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert "Range" not in http_server.requests[0] and http_server.requests[1]["Range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_resume_from_an_earlier_partial_file(tmp_path, http_server):
    http_server.payload = PAYLOAD
    (tmp_path / "out.bin.part").write_bytes(PAYLOAD[:1000])
    assert download(http_server.url(), tmp_path / "out.bin", progress=False).read_bytes() == PAYLOAD
    assert http_server.requests[0]["Range"] == "bytes=1000-"


def test_server_without_range_support_restarts_from_zero(tmp_path, http_server):
    http_server.payload, http_server.honour_range = PAYLOAD, False
    (tmp_path / "out.bin.part").write_bytes(b"garbage")
    assert download(http_server.url(), tmp_path / "out.bin", progress=False).read_bytes() == PAYLOAD


def test_persistent_cuts_give_up_and_leave_no_target(tmp_path, http_server):
    http_server.payload, http_server.truncate_first, http_server.honour_range = PAYLOAD, 100, False
    with pytest.raises(DownloadError, match="stopped early"):
        download(http_server.url(), tmp_path / "out.bin", progress=False, retries=2)
    assert not (tmp_path / "out.bin").exists()


def test_wrong_checksum_is_refused_and_nothing_is_left(tmp_path, http_server):
    http_server.payload = PAYLOAD
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(http_server.url(), tmp_path / "out.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_matching_checksum_is_reused(tmp_path, http_server):
    (tmp_path / "out.bin").write_bytes(PAYLOAD)
    download(http_server.url(), tmp_path / "out.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(), progress=False)
    assert http_server.requests == []


def test_missing_file_and_unreachable_host(tmp_path, http_server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(http_server.url() + ".nope", tmp_path / "out.bin", progress=False)
    with pytest.raises(DownloadError, match="cannot download"):
        download("http://127.0.0.1:9/none.bin", tmp_path / "out.bin", progress=False, timeout=2)
