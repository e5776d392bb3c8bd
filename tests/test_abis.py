"""An external matcher (ABIS) in one process: DE's DNA category served by our own ABIS
(prum.node.abis.service on HTTP, in a thread): records sent by the national systems
reach it through the outbox, once and in order; its answers equal the built-in
matcher's; an ABIS that is down, slow or answering garbage is an error or a timeout
with a reason, and the circuit breaker stops waiting on it. The federation with face
and fingerprint ABIS processes killed with -9 is in test_abis_federation.py."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.categories.interface import Exposure, SubjectCategory
from prum.errors import MatcherTimeout, MatcherUnavailable
from prum.federation.messages import Category, Probe
from prum.federation.security import pki
from prum.node.abis.adapter import CircuitBreaker, client_options
from prum.node.abis.contract import json_schemas
from prum.node.abis.delivery import backlog, deliver_category
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.abis.server import create_abis_app
from prum.node.abis.service import AbisService
from prum.node.categories import make_matcher
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.systems.accounts import SystemAccount
from prum.node.systems.contract import DeletionIn, RecordIn
from prum.node.systems.service import NationalSystems

TOKEN = "abis-test-token"
SYSTEM = SystemAccount("dna-db", frozenset(Category))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """Our DNA ABIS on a real port, in a thread."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.service = AbisService(Category.DNA, data_dir)
        config = uvicorn.Config(
            create_abis_app(self.service, token=TOKEN),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the ABIS did not start"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.service.close()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    pki.issue(path, "DE", role="node")
    return path


@pytest.fixture
def abis(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "abis")
    yield server
    server.stop()


def make_node(tmp_path: Path, pki_dir: Path, url: str, **endpoint: Any) -> Node:
    policy = CategoryPolicy(
        min_age=None,
        abis=AbisEndpoint(url=url, token=TOKEN, **{"deadline_ms": 2000, **endpoint}),
    )
    config = NodeConfig(
        party="DE",
        data_dir=tmp_path / "de",
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={Category.DNA: policy},
        outbox_retry_seconds=0.05,
    )
    return Node(config)


def profiles(n: int, seed: int = 3) -> list[dict[str, Any]]:
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(n, seed=seed, trace_share=0, family_share=0)
    return [json.loads(profile_of(row, loci, identified=True).to_json()) for row in database.codes]


def record(i: int, profile: dict[str, Any], subject: str = "convicted") -> RecordIn:
    return RecordIn.model_validate(
        {
            "category": "dna",
            "national_id": f"DAD-{i:06d}",
            "sample": {"format": "dna-profile", "content": profile},
            "subject_category": subject,
        }
    )


def drain(node: Node) -> None:
    endpoint = node.config.categories[Category.DNA].abis
    assert endpoint is not None

    async def run() -> None:
        async with httpx.AsyncClient(**client_options(endpoint, timeout=10)) as client:
            for _ in range(200):
                outcome = await deliver_category(node, Category.DNA, endpoint, client)
                if outcome.failed:
                    await asyncio.sleep(0.06)
                elif outcome.sent == 0:
                    return

    asyncio.run(run())


def probe(profile: dict[str, Any]) -> Probe:
    return Probe(format="dna_profile", data=base64.b64encode(json.dumps(profile).encode()))


def test_records_reach_the_abis_once_and_its_answers_equal_the_built_in_matcher(
    tmp_path: Path, pki_dir: Path, abis: Server
) -> None:
    node = make_node(tmp_path, pki_dir, abis.url)
    systems = NationalSystems(node)
    data = profiles(40)
    results = [systems.upsert(record(i, p), SYSTEM) for i, p in enumerate(data)]
    # Sending the same records again stores nothing new and queues nothing new.
    for i, p in enumerate(data[:5]):
        systems.upsert(record(i, p), SYSTEM)
    systems.delete(
        DeletionIn.model_validate(
            {"category": "dna", "national_id": "DAD-000007", "reason": "erasure"}
        ),
        SYSTEM,
    )
    assert backlog(node)["dna"]["pending"] == 41
    drain(node)
    assert backlog(node)["dna"]["pending"] == 0
    held = abis.service.health().records
    assert held == 39
    external = node.matcher(Category.DNA)
    built_in = make_matcher(Category.DNA, node.config.settings())
    everyone = Exposure()
    for p in (data[3], data[7], data[20]):
        theirs = external.search(probe(p), max_candidates=5, exposure=everyone)
        ours = built_in.search(probe(p), max_candidates=5, exposure=everyone)
        assert [(c.reference, c.score, c.distance, c.details) for c in theirs.candidates] == [
            (c.reference, c.score, c.distance, c.details) for c in ours.candidates
        ]
    assert not external.search(probe(data[7]), max_candidates=5, exposure=everyone).candidates
    assert (
        external.search(probe(data[3]), max_candidates=5, exposure=everyone).candidates[0].reference
        == results[3].reference
    )
    # The exposure filter reaches the ABIS: convicted persons are not open to this search.
    victims_only = Exposure(subjects=frozenset({SubjectCategory.VICTIM}))
    assert not external.search(probe(data[3]), max_candidates=5, exposure=victims_only).candidates
    built_in.close()
    node.close()


def test_an_abis_that_is_down_is_an_error_with_its_reason_and_the_breaker_opens(
    tmp_path: Path, pki_dir: Path
) -> None:
    node = make_node(tmp_path, pki_dir, f"http://127.0.0.1:{free_port()}", breaker_failures=2)
    matcher = node.matcher(Category.DNA)
    [profile] = profiles(1)
    for _ in range(2):
        with pytest.raises(MatcherUnavailable, match="could not be reached"):
            matcher.search(probe(profile), max_candidates=5, exposure=Exposure())
    started = time.monotonic()
    with pytest.raises(MatcherUnavailable, match="switched off after 2 failed searches"):
        matcher.search(probe(profile), max_candidates=5, exposure=Exposure())
    assert time.monotonic() - started < 0.1
    node.close()


def test_an_abis_that_does_not_answer_is_a_timeout_within_the_deadline(
    tmp_path: Path, pki_dir: Path
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        node = make_node(tmp_path, pki_dir, url, deadline_ms=300)
        [profile] = profiles(1)
        started = time.monotonic()
        with pytest.raises(MatcherTimeout, match="no answer within 300 ms"):
            node.matcher(Category.DNA).search(probe(profile), max_candidates=5, exposure=Exposure())
        assert time.monotonic() - started < 1.5
        node.close()


def test_inserts_wait_in_order_while_the_abis_is_away_and_arrive_once_it_is_back(
    tmp_path: Path, pki_dir: Path
) -> None:
    port = free_port()
    node = make_node(tmp_path, pki_dir, f"http://127.0.0.1:{port}")
    systems = NationalSystems(node)
    data = profiles(12, seed=5)
    for i, p in enumerate(data):
        systems.upsert(record(i, p), SYSTEM)
    drain(node)  # nobody there: the head is retried, nothing is lost
    lag = backlog(node)["dna"]
    assert lag["pending"] == 12 and lag["attempts"] >= 1 and "ConnectError" in lag["last_error"]
    server = Server.__new__(Server)
    server.port = port
    server.service = AbisService(Category.DNA, tmp_path / "abis-late")
    config = uvicorn.Config(
        create_abis_app(server.service, token=TOKEN), host="127.0.0.1", port=port
    )
    server.server = uvicorn.Server(config)
    server.thread = threading.Thread(target=server.server.run, daemon=True)
    server.thread.start()
    while not server.server.started:
        time.sleep(0.05)
    try:
        time.sleep(0.1)
        drain(node)
        assert backlog(node)["dna"]["pending"] == 0
        assert server.service.health().records == 12
    finally:
        server.stop()
        node.close()


def test_a_wrong_token_is_refused_and_the_schema_names_every_operation(
    abis: Server,
) -> None:
    response = httpx.get(f"{abis.url}/abis/v1/health", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 403 and response.json()["code"] == "not_authorised"
    assert set(json_schemas()) >= {
        "InsertRequest",
        "IdentifyRequest",
        "IdentifyResponse",
        "DeleteRequest",
        "Health",
    }


def test_the_breaker_lets_one_trial_through_after_its_pause() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    breaker.failure("a")
    breaker.before()
    breaker.failure("b")
    with pytest.raises(MatcherUnavailable, match="last: b"):
        breaker.before()
    now[0] = 11.0
    breaker.before()  # the trial
    with pytest.raises(MatcherUnavailable):
        breaker.before()  # only one at a time
    breaker.success()
    breaker.before()
    assert breaker.state == "closed"
