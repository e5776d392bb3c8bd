"""What the workbench's browser tests share (the fixtures themselves are in conftest.py,
so that a session-wide one is made once, not once per module that imports it).

- One chromium for the session, a fresh browser context for every test.
- A national app served over HTTP in this process (test_web_decisions, test_web_evidence).
- The demo federation (router and five nodes as processes, real faces and the other
  categories' demo data) built once for test_web_browser and test_web_categories; its
  processes run while tests that use it run, and stop between them.
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
    from playwright.sync_api import Browser, Page

PASSWORD = "correct horse battery"  # the national users of the in-process nodes
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
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    page.set_default_timeout(15_000)
    page.goto(url + "/workbench/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/workbench/")
    return page


# --- the demo federation -------------------------------------------------------------------


@dataclass
class DemoFederation:
    """The demo's layout, filled once; the processes run on demand (:meth:`running`)."""

    layout: Layout
    probe: Path | None  # the face probe (None without real sample faces)
    facts: scenarios.Facts  # what the scripted cases of the other categories know
    shots: Path
    group_photos: list[Path] = field(default_factory=list)
    processes: Federation | None = None

    def url(self, party: str, path: str = "/workbench/") -> str:
        return self.layout.parties[party].api_url + path

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
