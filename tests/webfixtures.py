"""What the workbench's browser tests share (the fixtures themselves are in conftest.py,
so that a session-wide one is made once, not once per module that imports it).

- One chromium for the session, a fresh browser context for every test.
- A national app served over HTTP in this process (test_web_decisions, test_web_evidence).
- The demo federation (router and five nodes as processes, real faces and the other
  categories' demo data) built once for test_web_browser and test_web_categories; each
  part of its data filled once, when first needed; its processes run while the tests
  that use it run, and stop between them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from prum.demo import scenarios
from prum.demo.processes import Federation, Layout
from prum.federation.messages import Category
from prum.federation.security import pki
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.users import Role, add_user

if TYPE_CHECKING:  # conftest imports this module: no browser or server until used
    from playwright.sync_api import Browser, Page, StorageState, ViewportSize

    from prum.demo.samples import SampleSet

PASSWORD = "correct horse battery"  # the national users of the in-process nodes
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
NATIONAL_PARTIES = ("AT", "DE")  # the in-process nodes' parties (their PKI has a router)


def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PRUM_SCREENSHOTS (to refresh the documentation's), else a temporary directory."""
    path = Path(os.environ.get("PRUM_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- nodes served in this process ----------------------------------------------------------


def issue_pki(path: Path) -> Path:
    """A federation CA with the router and the in-process nodes' certificates."""
    pki.init_ca(path)
    pki.issue(path, "ROUTER", role="router")
    for party in NATIONAL_PARTIES:
        pki.issue(path, party, role="node")
    return path


def national_node(
    data_dir: Path, pki_dir: Path, party: str, category: Category, users: dict[str, set[Role]]
) -> Node:
    """A node whose router does not exist (the tests play its part), with its users."""
    node = Node(
        NodeConfig(
            party=party,
            data_dir=data_dir,
            pki_dir=pki_dir,
            router_url="https://localhost:1",
            categories={category: CategoryPolicy()},
        )
    )
    for name, roles in users.items():
        add_user(node.engine, name, PASSWORD, roles)
    return node


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(node: Node) -> Iterator[str]:
    """The node's national app (workbench and API) over HTTP in a thread; its URL."""
    import uvicorn

    from prum.node.api import create_national_app

    config = uvicorn.Config(
        create_national_app(node),
        host="127.0.0.1",
        port=_free_port(),
        lifespan="off",  # no outbox loop: these nodes have no router
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the national app of {node.party} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def log_in(browser: Browser, url: str, user: str, **context: Any) -> Page:
    """A new browser context with ``user`` logged in to the workbench at ``url``."""
    page = browser.new_context(viewport=DESKTOP, **context).new_page()
    page.set_default_timeout(15_000)
    page.goto(url + "/workbench/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/workbench/")
    return page


class Logins:
    """Each user's workbench session, logged in once (argon2 is slow on purpose): every
    later page gets a fresh browser context carrying that session's cookie."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], StorageState] = {}

    def page(self, browser: Browser, url: str, user: str) -> Page:
        """A new browser context, ``user`` logged in, on the workbench's home page."""
        session = self._sessions.get((url, user))
        if session is None:
            page = log_in(browser, url, user)
            self._sessions[(url, user)] = page.context.storage_state()
            return page
        context = browser.new_context(viewport=DESKTOP, storage_state=session)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/workbench/")
        return page


# --- the demo federation -------------------------------------------------------------------


FACES, OTHER_CATEGORIES = "faces", "other categories"  # what the demo's nodes can hold


@dataclass
class DemoFederation:
    """The demo's layout and users; its data filled when first needed (:meth:`ready`),
    its processes run on demand. Filling needs the processes stopped, so every part the
    run's tests need (``planned``) is filled at the first fill; under pytest-xdist a
    worker does not know its tests in advance and fills only what its tests ask for."""

    layout: Layout
    shots: Path
    planned: set[str] = field(default_factory=set)
    filled: set[str] = field(default_factory=set)
    samples: SampleSet | None = None  # real faces, when this machine has them
    probe: Path | None = None  # the face probe (None until the faces are filled)
    facts: scenarios.Facts = field(default_factory=scenarios.Facts)
    processes: Federation | None = None

    @property
    def group_photos(self) -> list[Path]:
        return self.samples.group_photos if self.samples else []

    def url(self, party: str, path: str = "/workbench/") -> str:
        return self.layout.parties[party].api_url + path

    def ready(self, part: str) -> DemoFederation:
        """The federation holding ``part`` (and whatever else is planned), running."""
        missing = ({part} | self.planned) - self.filled
        if missing:
            self.stop()
            self._fill(missing)
        return self.running()

    def _fill(self, parts: set[str]) -> None:
        """Each country's national systems send their records, as `prum demo` has them."""
        from rich.console import Console

        from prum.demo import national
        from prum.demo import run as demo

        nodes = {party: Node(self.layout.config(party)) for party in self.layout.parties}
        try:
            with (self.layout.root / "demo.log").open("a") as log:
                out = Console(file=log, width=120)
                if FACES in parts and self.samples is not None:
                    self.probe = national.enrol_faces(
                        nodes,
                        self.samples,
                        requester=demo.REQUESTER,
                        holder=demo.HOLDER,
                        # In this process: two workers per node meant ten processes each
                        # loading the face models (65 s against 54 s on two busy cores).
                        workers=1,
                        out=out,
                    )
                if OTHER_CATEGORIES in parts:
                    self.facts = national.enrol_others(nodes, out)
        finally:
            for node in nodes.values():
                node.close()
        self.filled |= parts

    def running(self) -> DemoFederation:
        if self.processes is None:
            processes = Federation(self.layout)
            try:
                processes.start_all()
            except BaseException:
                processes.stop()
                raise
            self.processes = processes
        return self

    def stop(self) -> None:
        if self.processes is not None:
            self.processes.stop()
            self.processes = None


DEMO_FEDERATION = pytest.StashKey[DemoFederation]()
