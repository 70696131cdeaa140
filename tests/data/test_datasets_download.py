"""Dataset downloads against a local HTTP server: extraction, resume, checksums, nothing half-written."""

import io
import zipfile

import pytest

from qmvos_lab.data import datasets
from qmvos_lab.data.datasets import Archive, download_dataset
from qmvos_lab.errors import DownloadError, UserError


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("DAVIS/ImageSets/2017/val.txt", "bear\n")
        archive.writestr("DAVIS/JPEGImages/480p/bear/00000.jpg", b"x" * 5000)
        archive.writestr("DAVIS/Annotations/480p/bear/00000.png", b"y")  # the layout a DAVIS archive must hold
    return buffer.getvalue()


@pytest.fixture
def registry(monkeypatch, http_server):
    http_server.payload, http_server.filename = zip_bytes(), "DAVIS-test.zip"
    monkeypatch.setitem(datasets.DATASETS, "test", [Archive("DAVIS-test.zip", http_server.url())])
    return http_server


def test_download_extracts_and_records_the_checksum(tmp_path, registry):
    download_dataset("test", tmp_path, progress=False)
    assert (tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert "DAVIS-test.zip" in (tmp_path / "downloads" / "checksums.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cut_transfer_resumes(tmp_path, registry):
    registry.truncate_first = 1
    download_dataset("test", tmp_path, progress=False)
    assert (tmp_path / "DAVIS" / "JPEGImages" / "480p" / "bear" / "00000.jpg").stat().st_size == 5000
    assert registry.requests[1]["Range"].startswith("bytes=")


def test_wrong_checksum_is_refused_and_nothing_is_left(tmp_path, registry):
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_dataset("test", tmp_path, sha256="0" * 64, progress=False)
    assert not (tmp_path / "DAVIS").exists()
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_recorded_checksum_catches_a_changed_archive(tmp_path, registry):
    download_dataset("test", tmp_path, progress=False)
    registry.payload = zip_bytes().replace(b"bear", b"deer")  # the server now sends something else
    (tmp_path / "downloads" / "DAVIS-test.zip").unlink()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_dataset("test", tmp_path, progress=False)


def test_corrupt_archive_and_unknown_names(tmp_path, registry):
    registry.payload = b"not a zip at all"
    with pytest.raises(DownloadError, match="not a zip archive"):
        download_dataset("test", tmp_path, progress=False)
    with pytest.raises(UserError, match="unknown dataset"):
        download_dataset("imagenet", tmp_path)
    with pytest.raises(UserError, match="pass the link"):
        download_dataset("youtube", tmp_path)


def test_a_bad_first_download_does_not_poison_the_next(tmp_path, registry):
    """Issue 18, defect 3: a checksum is recorded only for an archive that tested and extracted well."""
    good = registry.payload
    registry.payload = b"an error page, not a zip"
    with pytest.raises(DownloadError, match="not a zip archive; it was deleted: run the same command again"):
        download_dataset("test", tmp_path, progress=False)
    assert not (tmp_path / "downloads" / "checksums.json").exists()
    assert not (tmp_path / "downloads" / "DAVIS-test.zip").exists()
    registry.payload = good
    download_dataset("test", tmp_path, progress=False)
    assert (tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert "DAVIS-test.zip" in (tmp_path / "downloads" / "checksums.json").read_text()


def test_a_local_archive_is_read_where_it_is(tmp_path):
    """Issue 18, defect 11: `--url /local/path` (or file://) works, as the offline message says."""
    archive = tmp_path / "mirror" / "DAVIS-local.zip"
    archive.parent.mkdir()
    archive.write_bytes(zip_bytes())
    download_dataset("davis", tmp_path / "a", url=str(archive), progress=False)
    assert (tmp_path / "a" / "DAVIS" / "ImageSets" / "2017" / "val.txt").is_file()
    assert not (tmp_path / "a" / "downloads" / "DAVIS-local.zip").exists()  # not copied
    download_dataset("davis", tmp_path / "b", url=archive.as_uri(), progress=False)
    assert (tmp_path / "b" / "DAVIS" / "JPEGImages" / "480p" / "bear" / "00000.jpg").stat().st_size == 5000
    assert archive.is_file()  # never deleted, even when bad
    archive.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a zip archive; check the file"):
        download_dataset("davis", tmp_path / "c", url=str(archive), progress=False)
    assert archive.read_bytes() == b"not a zip"
    with pytest.raises(UserError, match="no such file"):
        download_dataset("davis", tmp_path / "c", url=str(tmp_path / "nope.zip"))


def test_extraction_merges_into_the_root_and_keeps_other_files(tmp_path, registry):
    (tmp_path / "DAVIS" / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "DAVIS" / "ImageSets" / "2017" / "test-dev.txt").write_text("mine\n")
    download_dataset("test", tmp_path, progress=False)
    assert (tmp_path / "DAVIS" / "ImageSets" / "2017" / "test-dev.txt").read_text() == "mine\n"
    assert (tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert not list(tmp_path.rglob(".*"))
