"""A federation on one machine: a PKI, a router and nodes as separate processes.

Used by ``prum demo`` and by the integration tests: :func:`lay_out` writes the
certificates and configuration files; :class:`Federation` starts, watches, kills and
restarts the processes. Everything talks real HTTPS with client certificates on
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from prum.categories.records.keys import create_key_file
from prum.errors import Unavailable
from prum.federation.messages import Category, Purpose
from prum.federation.security import pki
from prum.node.config import CategoryPolicy, NodeConfig

_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768 and up on Linux), so that
    no outgoing connection takes it before the server binds it; never the same twice
    in one process."""
    while True:
        port = random.randrange(20_000, 32_000)
        if port in _GIVEN:
            continue
        _GIVEN.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def poll(what: str, fetch: Callable[[], Any], timeout: float = 120, every: float = 0.3) -> Any:
    """``fetch()`` every ``every`` seconds until it returns something true, which is
    returned; Unavailable naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return value
        time.sleep(every)
    raise Unavailable(f"timed out waiting for {what}")


@dataclass
class PartyLayout:
    party: str
    config_path: Path
    data_dir: Path
    federation_port: int
    api_port: int
    systems_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def systems_url(self) -> str:
        """The national-systems interface (machines, bearer tokens)."""
        return f"http://127.0.0.1:{self.systems_port}"

    @property
    def federation_url(self) -> str:
        return f"https://localhost:{self.federation_port}"


@dataclass
class Layout:
    root: Path
    pki_dir: Path
    router_port: int
    router_data: Path
    directory_file: Path
    parties: dict[str, PartyLayout] = field(default_factory=dict)

    @property
    def router_url(self) -> str:
        return f"https://localhost:{self.router_port}"

    def config(self, party: str) -> NodeConfig:
        return NodeConfig.load(self.parties[party].config_path)


def lay_out(
    root: Path,
    parties: list[str],
    *,
    policies: dict[str, dict[Category, CategoryPolicy]] | None = None,
    europol_scope: dict[str, list[str]] | None = None,
    outbox_retry_seconds: float = 0.5,
) -> Layout:
    """Create the PKI, the router's directory and one configuration per node."""
    root.mkdir(parents=True, exist_ok=True)
    pki_dir = root / "pki"
    pki.init_ca(pki_dir)
    pki.issue(pki_dir, "ROUTER", role="router")
    create_key_file(pki_dir / "records.key", "federation-1")  # police records (EPRIS)
    layout = Layout(
        root=root,
        pki_dir=pki_dir,
        router_port=free_port(),
        router_data=root / "router",
        directory_file=root / "directory.json",
    )
    policies = policies or {}
    directory: dict[str, Any] = {"parties": {}}
    for party in parties:
        pki.issue(pki_dir, party, role="node")
        data_dir = root / party.lower()
        data_dir.mkdir(parents=True, exist_ok=True)
        plan = PartyLayout(
            party=party,
            config_path=data_dir / "node.json",
            data_dir=data_dir,
            federation_port=free_port(),
            api_port=free_port(),
            systems_port=free_port(),
        )
        categories = policies.get(party) or {Category.FACE: CategoryPolicy()}
        config = NodeConfig(
            party=party,
            data_dir=data_dir,
            pki_dir=pki_dir,
            router_url=layout.router_url,
            federation_port=plan.federation_port,
            api_port=plan.api_port,
            systems_port=plan.systems_port,
            categories=categories,
            outbox_retry_seconds=outbox_retry_seconds,
        )
        plan.config_path.write_text(config.model_dump_json(indent=2))
        layout.parties[party] = plan
        entry: dict[str, Any] = {
            "url": plan.federation_url,
            "offers": sorted(c.value for c in categories),
            "accepts": sorted({p.value for c in categories.values() for p in c.purposes}),
        }
        if party == "EUROPOL":
            # Art 49: Europol's access is narrower, by configuration.
            entry["may_search"] = europol_scope or {
                Category.FACE.value: [Purpose.INVESTIGATION.value]
            }
        directory["parties"][party] = entry
    layout.directory_file.write_text(json.dumps(directory, indent=2))
    return layout


class Federation:
    """The router and node processes of a layout."""

    def __init__(self, layout: Layout, *, log_dir: Path | None = None):
        self.layout = layout
        self.log_dir = log_dir or layout.root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # Extra environment per process name (e.g. a faked clock for one node).
        self.environment: dict[str, dict[str, str]] = {}

    def _command(self, name: str) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if name == "ROUTER":
            env.update(
                PRUM_ROUTER_PKI_DIR=str(self.layout.pki_dir),
                PRUM_ROUTER_DIRECTORY_FILE=str(self.layout.directory_file),
                PRUM_ROUTER_HOST="127.0.0.1",
                PRUM_ROUTER_PORT=str(self.layout.router_port),
                PRUM_ROUTER_DATA_DIR=str(self.layout.router_data),
            )
            return [sys.executable, "-m", "prum", "router", "serve"], env
        config = self.layout.parties[name].config_path
        return [sys.executable, "-m", "prum", "node", "serve", "--config", str(config)], env

    def start(self, name: str) -> None:
        command, env = self._command(name)
        env.update(self.environment.get(name, {}))
        log = open(self.log_dir / f"{name.lower()}.log", "ab")  # noqa: SIM115 - child owns it
        self.processes[name] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def start_all(self, *, timeout: float = 120) -> None:
        self.start("ROUTER")
        for party in self.layout.parties:
            self.start(party)
        self.wait_ready(timeout=timeout)

    def wait_ready(self, names: list[str] | None = None, *, timeout: float = 120) -> None:
        """Until every process answers its health check (or one of them died)."""
        names = names or ["ROUTER", *self.layout.parties]
        deadline = time.monotonic() + timeout
        context = pki.client_context(self.layout.pki_dir, next(iter(self.layout.parties)))
        pending = set(names)
        with httpx.Client(verify=context, timeout=2) as client:
            while pending:
                for name in sorted(pending):
                    process = self.processes[name]
                    if process.poll() is not None:
                        raise Unavailable(
                            f"{name} exited with code {process.returncode}; see"
                            f" {self.log_dir / (name.lower() + '.log')}"
                        )
                    url = (
                        f"{self.layout.router_url}/v1/health"
                        if name == "ROUTER"
                        else f"{self.layout.parties[name].api_url}/api/health"
                    )
                    try:
                        if client.get(url).status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise Unavailable(f"not ready after {timeout:.0f} s: {sorted(pending)}")
                if pending:
                    time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def restart(self, name: str, *, timeout: float = 120) -> None:
        self.start(name)
        self.wait_ready([name], timeout=timeout)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
