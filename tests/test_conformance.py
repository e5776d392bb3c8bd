"""``prum conformance`` against our own node (a real process, the kit playing the router
and an approver acting at the node), and against our node with one defect at a time:
the named check fails, and only that one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prum.categories.interface import SubjectCategory
from prum.conformance.checks import Context, Outcome
from prum.conformance.declaration import load_declaration
from prum.conformance.runner import run_checks
from prum.conformance.wire import RouterListener, Wire, make_test_pki
from prum.demo.processes import Federation, Layout, PartyLayout, free_port
from prum.errors import PrumError
from prum.federation.messages import Category, HoldReason, RefusalReason
from prum.federation.security import pki
from prum.federation.security.signing import ReplayGuard, parse_time
from prum.federation.transport import BodyLimit, PeerCertProtocol, client
from prum.node import followup
from prum.node.api import create_federation_app
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.schema import core_data, requests_in
from prum.node.users import Role, User, add_user

# Two DNA profiles over the 12 ESS loci: HIT is held three times (three candidates),
# HIDDEN once, as a victim's, which criminal-offence searches must not see.
HIT = {
    "identified": True,
    "loci": {
        "vWA": ["16", "18"], "TH01": ["6", "9.3"], "D21S11": ["29", "29"], "FGA": ["22", "22"],
        "D8S1179": ["13", "16"], "D3S1358": ["14", "16"], "D18S51": ["14", "18"],
        "D1S1656": ["12", "17.3"], "D2S441": ["10", "11.3"], "D10S1248": ["13", "14"],
        "D12S391": ["18.3", "20"], "D22S1045": ["11", "16"],
    },
}  # fmt: skip
HIDDEN = {
    "identified": True,
    "loci": {
        "vWA": ["14", "17"], "TH01": ["7", "8"], "D21S11": ["28", "31.2"], "FGA": ["20", "23"],
        "D8S1179": ["10", "14"], "D3S1358": ["15", "17"], "D18S51": ["12", "13"],
        "D1S1656": ["13", "16"], "D2S441": ["10", "14"], "D10S1248": ["12", "15"],
        "D12S391": ["17", "22"], "D22S1045": ["15", "17"],
    },
}  # fmt: skip
VEHICLE = {"plate": "B-CK 123", "vin": "WVWZZZ1JZXW000001", "make": "Volkswagen"}
PASSWORD = "conformance-approver-password"


def dna_node(root: Path, pki_dir: Path, router_url: str, daily_capacity: int) -> NodeConfig:
    """DE offering DNA (threshold 12 months, cap 10) and vehicles, with HIT x3 and HIDDEN
    enrolled and core data for HIT's records."""
    config = NodeConfig(
        party="DE",
        data_dir=root,
        pki_dir=pki_dir,
        router_url=router_url,
        federation_port=free_port(),
        api_port=free_port(),
        systems_port=free_port(),
        categories={
            Category.DNA: CategoryPolicy(
                min_penalty_months=12, max_candidates=10, daily_capacity=daily_capacity
            ),
            Category.VEHICLE: CategoryPolicy(min_penalty_months=0),
        },
        outbox_retry_seconds=0.2,
    )
    node = Node(config)
    try:
        matcher: Any = node.matcher(Category.DNA)
        references = [matcher.enroll(json.dumps(HIT).encode()) for _ in range(3)]
        with node.engine.begin() as conn:
            for n, reference in enumerate(references):
                data = {"surnames": [f"Conformance {n}"], "gender": "U"}
                conn.execute(core_data.insert().values(reference=reference, data=data))
        matcher.enroll(json.dumps(HIDDEN).encode(), category=SubjectCategory.VICTIM)
        node.matcher(Category.VEHICLE).enroll(json.dumps(VEHICLE).encode())
        add_user(node.engine, "anna", PASSWORD, {Role.APPROVER})
    finally:
        node.close()
    return config


def declaration(root: Path, config: NodeConfig, *, daily_capacity: int | None) -> Path:
    (root / "hit.json").write_text(json.dumps(HIT))
    (root / "hidden.json").write_text(json.dumps(HIDDEN))
    (root / "vehicle.json").write_text(json.dumps({"vin": VEHICLE["vin"]}))
    dna: dict[str, Any] = {
        "purposes": ["investigation"],
        "min_penalty_months": 12,
        "max_candidates": 10,
        "hit_probe": "hit.json",
        "hidden_probe": "hidden.json",
    }
    if daily_capacity is not None:
        dna["daily_capacity"] = daily_capacity
    path = root / "declaration.json"
    path.write_text(
        json.dumps(
            {
                "party": "DE",
                "federation_url": f"https://localhost:{config.federation_port}",
                "categories": {"dna": dna, "vehicle": {"hit_probe": "vehicle.json"}},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("conformance-pki")
    make_test_pki(directory, "DE", [], list(pki.DEFAULT_HOSTS))
    return directory


# --- our own node, a real process --------------------------------------------------------


def approve(api_url: str, stop: threading.Event) -> dict[str, int]:
    """The tested node's approver: acts on each kit request as its facts ask."""
    actions = {
        "release": {"action": "release"},
        "hold": {"action": "hold", "hold_reason": "judicial_authorisation"},
    }
    actions["refuse"] = {
        "action": "refuse",
        "reason": "disproportionate",
        "explanation": "Shoplifting of this value does not justify it.",
    }
    actions["unknown"] = {"action": "release"}  # must fail: nothing is held under it
    done: dict[str, int] = {}
    with httpx.Client(base_url=api_url, auth=("anna", PASSWORD), timeout=10) as client:
        while not stop.is_set() and len(done) < len(actions):
            rows = client.get("/api/inbox").json()
            for row in rows:
                facts = row["request"]["facts"]
                ask = next((a for a in actions if f"request '{a}'" in facts), None)
                if ask and ask not in done and row["status"] == "pending":
                    answer = client.post(f"/api/inbox/{row['id']}/decision", json=actions[ask])
                    done[ask] = answer.status_code
            time.sleep(0.2)
    return done


@dataclass
class KitRun:
    """`prum conformance run` against our node: the kit's process, its report's results,
    what the node's approver was answered per ask, and the seconds from the node's start
    to the kit's end."""

    kit: subprocess.CompletedProcess[str]
    results: list[dict[str, Any]]
    acted: dict[str, int]
    seconds: float


def run_kit_on_our_node(
    root: Path, pki_dir: Path, *, ready_timeout: float, kit_timeout: float
) -> KitRun:
    """The kit (playing the router) against DE's node as a process (:func:`dna_node`, a
    daily capacity of 20), the node's approver acting on the kit's requests; also run
    by bench/abis.py."""
    kit_port = free_port()
    config = dna_node(root / "de", pki_dir, f"https://localhost:{kit_port}", 20)
    declared = declaration(root, config, daily_capacity=20)
    (root / "de" / "node.json").write_text(config.model_dump_json())
    plan = PartyLayout(
        "DE",
        root / "de" / "node.json",
        config.data_dir,
        config.federation_port,
        config.api_port,
        config.systems_port,
    )
    layout = Layout(root, pki_dir, kit_port, root / "router", root / "dir.json")
    layout.parties["DE"] = plan
    report = root / "report.json"
    stop = threading.Event()
    acted: dict[str, int] = {}
    started = time.perf_counter()
    with Federation(layout) as federation:
        federation.start("DE")
        federation.wait_ready(["DE"], timeout=ready_timeout)
        approver = threading.Thread(target=lambda: acted.update(approve(plan.api_url, stop)))
        approver.start()
        try:
            kit = subprocess.run(
                [
                    *(sys.executable, "-m", "prum", "conformance", "run"),
                    *("--declaration", str(declared), "--pki", str(pki_dir)),
                    *("--listen", f"127.0.0.1:{kit_port}", "--await-decisions", "30"),
                    *("--report", str(report)),
                ],
                capture_output=True,
                text=True,
                timeout=kit_timeout,
            )
        finally:
            stop.set()
            approver.join()
    seconds = time.perf_counter() - started
    return KitRun(kit, json.loads(report.read_text())["results"], acted, seconds)


@pytest.mark.slow  # a node process, and the approver's decisions with their grace
def test_our_node_passes_every_check(pki_dir: Path, tmp_path: Path) -> None:
    run = run_kit_on_our_node(tmp_path, pki_dir, ready_timeout=60, kit_timeout=120)
    kit, results, acted = run.kit, run.results, run.acted
    failed = [r for r in results if r["outcome"] == "fail"]
    assert not failed, failed
    assert kit.returncode == 0, kit.stdout[-3000:] + kit.stderr[-2000:]
    assert len(results) >= 30
    outcomes = {r["id"]: r["outcome"] for r in results}
    # The checks that need the approver were made, not skipped.
    made = ("step2.release", "step2.refusal_with_reason", "step2.hold_not_answered")
    for check_id in (*made, "step2.hold_told"):
        assert outcomes[check_id] == "pass", check_id
    assert outcomes["step2.outbox_retries"] == "pass"
    assert outcomes["refusal.capacity_exhausted"] == "pass"
    assert outcomes["exposure.hidden_not_returned"] == "pass"
    assert acted["unknown"] == 404  # the approver could not release the unknown reference
    not_applicable = [r for r in results if r["outcome"] == "not applicable"]
    assert all(r["detail"] for r in not_applicable)
    print(
        f"\nchecks={len(results)} passed={len(results) - len(not_applicable)}"
        f" not_applicable={len(not_applicable)}"
    )


def test_step2_decisions_are_not_applicable_without_an_approver(
    pki_dir: Path, defective: DefectiveNode
) -> None:
    results = defective.run(None, only={"step2"})
    outcomes = {r.id: r for r in results}
    assert outcomes["step2.request_acknowledged"].outcome is Outcome.PASS
    assert outcomes["step2.release"].outcome is Outcome.NOT_APPLICABLE
    assert "approver" in outcomes["step2.release"].detail


# --- our node with one defect at a time ---------------------------------------------------


class AnyTimeGuard(ReplayGuard):
    """Defect: a message dated in the future is taken as if sent now."""

    def check(self, message_id: str, issued_at: Any, now: Any = None) -> None:
        import datetime as dt

        current = dt.datetime.now(dt.UTC)
        super().check(message_id, min(parse_time(issued_at), current), now)


class ForgetfulGuard(ReplayGuard):
    """Defect: the time window is checked, message ids are not remembered."""

    def check(self, message_id: str, issued_at: Any, now: Any = None) -> None:
        import uuid

        super().check(str(uuid.uuid4()), issued_at, now)


class CapIgnored:
    """Defect: the matcher returns up to 100 candidates whatever was asked."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def search(self, probe: Any, *, max_candidates: int, **kw: Any) -> Any:
        return self.inner.search(probe, max_candidates=100, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


Rewrite = Callable[[str, bytes, int, bytes], Awaitable[tuple[int, bytes]]]


def rewriting(app: ASGIApp, rewrite: Rewrite) -> ASGIApp:
    """``app`` with its answers passed through ``rewrite(path, request, status, body)``."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request = b""
        while True:
            message = await receive()
            request += message.get("body", b"")
            if not message.get("more_body"):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": request, "more_body": False}

        status, body = 0, b""

        async def capture(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")

        await app(scope, replay, capture)
        status, body = await rewrite(scope["path"], request, status, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return wrapped


async def unsigned(path: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
    if path == "/v1/search" and status == 200:
        return status, json.dumps(json.loads(body)["body"]).encode()
    return status, body


async def crash_on_bad_json(
    path: str, request: bytes, status: int, body: bytes
) -> tuple[int, bytes]:
    try:
        json.loads(request or b"{}")
    except ValueError:
        return 500, b"Internal Server Error"
    return status, body


async def framework_404(path: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
    return (404, b'{"detail": "Not Found"}') if status == 404 else (status, body)


async def late_when_hurried(
    path: str, request: bytes, status: int, body: bytes
) -> tuple[int, bytes]:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        deadline_ms = json.loads(request)["body"]["deadline_ms"]
        if deadline_ms <= 2000:
            await asyncio.sleep(deadline_ms / 1000 + 0.3)
    return status, body


@dataclass
class DefectiveNode:
    """Our node in this process, served over mutual TLS, with a defect switched on."""

    node: Node
    server: uvicorn.Server
    app: dict[str, ASGIApp]
    declaration: Path
    pki_dir: Path

    kit_port: int

    def run(
        self, defect: str | None, only: set[str] | None = None, *, approver: bool = False
    ) -> list[Any]:
        self.app["current"] = self.app.get(defect or "none", self.app["none"])
        declared = load_declaration(self.declaration)
        wire = Wire(self.pki_dir, "DE", declared.federation_url)
        listener = RouterListener("127.0.0.1", self.kit_port, self.pki_dir, "DE")
        try:
            if not approver:
                return run_checks(Context(wire, declared), only)
            listener.start()
            with acting_approver(self.node, self.pki_dir):
                return run_checks(Context(wire, declared, listener, 20.0), only)
        finally:
            listener.stop()
            wire.close()


@contextlib.contextmanager
def acting_approver(node: Node, pki_dir: Path) -> Iterator[None]:
    """The in-process node's outbox (to the kit's delivery endpoint) and an approver who
    acts on each pending request as its facts ask, in two threads."""
    stop = threading.Event()
    user = User("anna", frozenset({Role.APPROVER}))
    actions = {"release": "release", "refuse": "refuse", "hold": "hold", "unknown": "release"}
    tried: set[int] = set()

    def approve() -> None:
        while not stop.is_set():
            with node.engine.connect() as conn:
                rows = conn.execute(select(requests_in).where(requests_in.c.status == "pending"))
                pending = [(r.id, r.request["facts"]) for r in rows]
            for row_id, facts in pending:
                ask = next((a for a in actions if f"request '{a}'" in facts), None)
                if ask is None or row_id in tried:
                    continue
                tried.add(row_id)
                refuse = ask == "refuse"
                with contextlib.suppress(PrumError):  # the unknown reference cannot be released
                    followup.decide(
                        node,
                        user,
                        row_id,
                        action=actions[ask],
                        reason=RefusalReason.DISPROPORTIONATE if refuse else None,
                        explanation="Not proportionate to the offence." if refuse else None,
                        hold_reason=HoldReason.JUDICIAL_AUTHORISATION if ask == "hold" else None,
                    )
            time.sleep(0.1)

    async def deliver() -> None:
        async with client(pki.client_context(pki_dir, "DE")) as http:
            while not stop.is_set():
                await followup.deliver_due(node, http)
                await asyncio.sleep(0.1)

    threads = [
        threading.Thread(target=approve),
        threading.Thread(target=lambda: asyncio.run(deliver())),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def defective(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefectiveNode]:
    root = tmp_path_factory.mktemp("defective")
    kit_port = free_port()
    # No capacity to exhaust here: the runs share the node and its day's counts.
    config = dna_node(root / "de", pki_dir, f"https://localhost:{kit_port}", 100_000)
    declared = declaration(root, config, daily_capacity=None)
    node = Node(config)
    base = create_federation_app(node)
    apps: dict[str, ASGIApp] = {
        "none": base,
        "unsigned": rewriting(base, unsigned),
        "crash": rewriting(base, crash_on_bad_json),
        "shape": rewriting(base, framework_404),
        "late": rewriting(base, late_when_hurried),
        "replay": base,
        "future": base,
        "cap": base,
    }

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        await apps["current"](scope, receive, send)

    apps["current"] = base
    tls = pki.server_context(pki_dir, "DE")
    uv = uvicorn.Config(
        BodyLimit(dispatch),
        host="127.0.0.1",
        port=config.federation_port,
        http=PeerCertProtocol,
        log_level="warning",
        lifespan="off",
    )
    uv.load()
    uv.ssl = tls
    server = uvicorn.Server(uv)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield DefectiveNode(node, server, apps, declared, pki_dir, kit_port)
    server.should_exit = True
    thread.join(timeout=10)
    node.close()


DEFECTS = {
    "replay": "envelope.replay_refused",
    "future": "envelope.future_refused",
    "cap": "search.candidate_cap_requested",
    "unsigned": "envelope.reply_signed",
    "crash": "errors.not_json",
    "shape": "errors.unknown_path",
    "late": "search.deadline",
}


def test_a_node_that_releases_anything_fails_only_the_unknown_reference_check(
    defective: DefectiveNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approver tries to release core data of a reference the node never returned;
    this node finds some (it releases whatever it is asked for)."""
    invented = {"surnames": ["Anyone"], "gender": "U"}
    monkeypatch.setattr(followup, "_kept_by_matcher", lambda node, request: invented)
    results = defective.run(None, approver=True)
    failed = [r.id for r in results if r.outcome is Outcome.FAIL]
    assert failed == ["step2.unknown_reference_not_released"], failed
    made = {r.id for r in results if r.outcome is Outcome.PASS}
    assert {
        "step2.release",
        "step2.refusal_with_reason",
        "step2.hold_not_answered",
        "step2.hold_told",
    } <= made


def test_our_node_in_process_passes_before_any_defect(defective: DefectiveNode) -> None:
    results = defective.run(None)
    for r in results:
        print(f"{r.outcome.value:15} {r.id:42} {r.detail[:110]}")
    assert [r.id for r in results if r.outcome is Outcome.FAIL] == []


@pytest.mark.parametrize(("defect", "named"), sorted(DEFECTS.items()))
def test_a_defect_fails_its_named_check_and_only_that(
    defective: DefectiveNode, monkeypatch: pytest.MonkeyPatch, defect: str, named: str
) -> None:
    node = defective.node
    if defect == "replay":
        monkeypatch.setattr(node, "replay", ForgetfulGuard())
    elif defect == "future":
        monkeypatch.setattr(node, "replay", AnyTimeGuard())
    elif defect == "cap":
        matcher = node.matcher
        monkeypatch.setattr(node, "matcher", lambda category: CapIgnored(matcher(category)))
    results = defective.run(defect)
    failed = [r.id for r in results if r.outcome is Outcome.FAIL]
    assert failed == [named], [(r.id, r.detail) for r in results if r.outcome is Outcome.FAIL]


def test_the_kit_imports_only_the_wire_layer() -> None:
    """It must work against a node written by someone else: no node, no category."""
    import ast

    import prum.conformance

    folder = Path(prum.conformance.__file__).parent
    imported = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {m for m in imported if m.startswith("prum.")}
    allowed = ("prum.conformance", "prum.federation.messages", "prum.federation.security")
    allowed += ("prum.federation.transport", "prum.errors", "prum.cliargs")
    assert {m for m in ours if not m.startswith(allowed)} == set()
