"""Kill -9 in the middle of a bulk enrolment, run again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from prum.categories.face.gallery import FaceGallery
from prum.config import Settings
from prum.demo.samples import SampleSet

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

COPIES = 48


def enrolled(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from face_records").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


def run_enrol(folder: Path, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PRUM_DATA_DIR=str(data_dir))
    cmd = [sys.executable, "-c", "from prum.cli import app; app()", "face", "enroll"]
    cmd += [str(folder), "--workers", "2", "--category", "convicted"]
    with open(log, "wb") as out:
        # A session of its own, so the kill reaches the parent and its workers.
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_kill_during_enrolment_then_resume(tmp_path: Path, samples: SampleSet) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    # Small copies under distinct names: enough work to be killed in the middle.
    sources = [p for p, _ in samples.images]
    for n in range(COPIES):
        image = Image.open(sources[n % len(sources)]).convert("RGB")
        image.thumbnail((640, 640))
        image.save(folder / f"photo-{n:03d}.jpg", quality=90)
    data_dir = tmp_path / "node"
    db = data_dir / "gallery.sqlite"

    first = run_enrol(folder, data_dir, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while enrolled(db) < 10:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        assert time.monotonic() < deadline, "enrolment made no progress"
        time.sleep(0.2)
    # The parent and its workers, mid-run: no goodbye, no flush.
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    at_kill = enrolled(db)
    assert 10 <= at_kill < COPIES, f"expected a partial run, found {at_kill} records"

    second = run_enrol(folder, data_dir, tmp_path / "second.log")
    second.wait(timeout=600)
    output = (tmp_path / "second.log").read_text()
    assert second.returncode == 0, output
    assert f"already present {at_kill}," in output

    gallery = FaceGallery(Settings(data_dir=data_dir))
    keys = [gallery.store.source_key(ref) for ref in _references(db)]
    refused = output.count("refused photo-")
    assert len(keys) == len(set(keys)), "a photo was enrolled twice"
    assert len(keys) + refused == COPIES, output
    assert len(gallery.index) == len(keys)


def _references(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("select reference from face_records")]
