"""A federation in which DE's faces, fingerprints and DNA are matched by `prum abis serve`
processes (issue 26): an Austrian search finds what DE's national systems sent, and the
ABIS's answer equals the built-in matcher's on the same data; an ABIS killed with -9
during a search gives DE's status `error` within the ABIS deadline, never a hang; an
ABIS killed with -9 during a stream of inserts holds every record exactly once when it
is back."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.categories.interface import Exposure
from prum.demo.processes import Federation, free_port, lay_out, poll
from prum.demo.samples import PrintSet, SampleSet
from prum.federation.messages import Category, Probe, Purpose
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.categories import make_matcher
from prum.node.config import LEGACY_FINGER_TYPES, CategoryPolicy
from prum.node.core import Node
from prum.node.users import Role
from systems_federation import (
    SystemsWorld,
    add_people_and_systems,
    afis_card,
    b64,
    check,
    dna_batch,
    people,
    probe_transaction,
)

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

TOKEN = "abis-federation-token"
DEADLINE_MS = 8000
SEARCH = {
    "purpose": "investigation",
    "offence": "0500 00",
    "max_penalty_months": 120,
    "case_reference": "AT-LKA-2026-0978",
    "targets": ["DE"],
    "deadline_ms": 30_000,
}
STREAM = 1500  # DNA records sent while the DNA ABIS is killed


@dataclass
class Abis:
    category: Category
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, PRUM_ABIS_TOKEN=TOKEN)
        command = [sys.executable, "-m", "prum", "abis", "serve", "--category"]
        command += [self.category.value, "--data-dir", str(self.data_dir), "--port"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*command, str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return self.health() is not None
            except httpx.HTTPError:
                return False

        poll(f"ABIS {self.category.value}", ready, timeout=120)

    def health(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/abis/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2
        )
        response.raise_for_status()
        return dict(response.json())

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)
        self.process = None

    def held(self) -> list[str]:
        """The node references the ABIS's own store holds, one row each."""
        with sqlite3.connect(self.data_dir / "gallery.sqlite") as db:
            table = {"dna": "dna_records"}.get(self.category.value)
            assert table is not None
            return [str(r[0]) for r in db.execute(f"SELECT source_key FROM {table}")]


@dataclass
class World(SystemsWorld):
    abis: dict[Category, Abis]
    records: dict[str, str] = field(default_factory=dict)

    def lag(self) -> dict[str, Any]:
        with self.api("DE") as client:
            return dict(check(client.get("/api/abis")))

    def settled(self) -> None:
        poll("ABIS outbox drained", lambda: all(v["pending"] == 0 for v in self.lag().values()))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("abis-federation")
    abis = {
        c: Abis(c, free_port(), root / f"abis-{c.value}", root / f"abis-{c.value}.log")
        for c in (Category.FACE, Category.FINGER, Category.DNA)
    }

    def endpoint(c: Category) -> AbisEndpoint:
        # Small insert requests for DNA, so that the kill lands inside the stream.
        return AbisEndpoint(
            url=abis[c].url,
            token=TOKEN,
            deadline_ms=DEADLINE_MS,
            breaker_reset_seconds=1,
            insert_batch=20 if c is Category.DNA else 100,
        )

    everything = {"purposes": list(Purpose), "min_penalty_months": 0, "min_age": None}
    de = {
        Category.FACE: CategoryPolicy(abis=endpoint(Category.FACE)),
        Category.FINGER: CategoryPolicy(
            **everything,
            search_types=dict(LEGACY_FINGER_TYPES),
            abis=endpoint(Category.FINGER),
        ),
        Category.DNA: CategoryPolicy(**everything, abis=endpoint(Category.DNA)),
    }
    at = {Category.DNA: CategoryPolicy(**everything)}
    layout = lay_out(root, ["AT", "DE"], policies={"AT": at, "DE": de})
    token = add_people_and_systems(layout, {"olga": Role.OFFICER}, set(de))
    for server in abis.values():
        server.start()
    with Federation(layout) as processes:
        processes.start_all()
        for server in abis.values():
            server.wait_ready()
        yield World(layout, processes, token, abis)
        for server in abis.values():
            if server.process is not None:
                server.kill()


def upsert(world: World, record: dict[str, Any]) -> str:
    with world.systems() as client:
        return str(check(client.post("/v1/records", json=record))["reference"])


def search(world: World, **probe: Any) -> dict[str, Any]:
    with world.api("AT") as officer:
        return dict(check(officer.post("/api/searches", json={**SEARCH, **probe})))


def de_reply(result: dict[str, Any]) -> dict[str, Any]:
    [reply] = [r for r in result["replies"] if r["party"] == "DE"]
    return dict(reply)


def same(external: Any, built_in: Any, probe: Probe, **options: Any) -> list[str]:
    """Both matchers' candidates for one probe; they must agree."""
    theirs = external.search(probe, exposure=Exposure(), **options).candidates
    ours = built_in.search(probe, exposure=Exposure(), **options).candidates
    key = [(c.reference, c.rank, c.score, c.distance, c.false_match_rate) for c in theirs]
    assert key == [(c.reference, c.rank, c.score, c.distance, c.false_match_rate) for c in ours]
    assert [c.details for c in theirs] == [c.details for c in ours]
    return [c.reference for c in theirs]


def test_the_abis_finds_what_the_national_systems_sent_as_the_built_in_matcher_does(
    world: World, samples: SampleSet, prints: PrintSet
) -> None:
    three = people(samples)[:3]
    faces = [
        upsert(
            world,
            {
                "category": "face",
                "national_id": f"BKA-FACE-{i}",
                "sample": {"format": "image", "data": b64(photos[0].read_bytes())},
                "subject_category": "convicted",
            },
        )
        for i, photos in enumerate(three)
    ]
    sample = afis_card(prints)
    card = upsert(world, {"category": "finger", "national_id": "AFIS-CARD-1", "sample": sample})
    world.settled()
    assert world.abis[Category.FACE].health()["records"] == 3
    face_probe = three[0][1].read_bytes()
    reply = de_reply(search(world, category="face", image=b64(face_probe)))
    assert reply["status"] == "answered", reply.get("error")
    assert reply["candidates"][0]["reference"] == faces[0]
    finger_probe = probe_transaction(prints, "AT-1")
    reply = de_reply(
        search(
            world,
            category="finger",
            probe={"format": "ansi_nist", "data": b64(finger_probe)},
            search_type="TP/TP",
        )
    )
    assert reply["status"] == "answered" and reply["candidates"][0]["reference"] == card
    # The same data, the same probes, the built-in matchers of DE's own store.
    node = Node(world.layout.config("DE"))
    try:
        settings = node.config.settings()
        for category, probe, options in (
            (Category.FACE, Probe(format="image", data=b64(face_probe)), {}),
            (
                Category.FINGER,
                Probe(format="ansi_nist", data=b64(finger_probe)),
                {"search_type": "TP/TP"},
            ),
        ):
            built_in = make_matcher(category, settings)
            try:
                found = same(node.matcher(category), built_in, probe, max_candidates=10, **options)
                assert found
            finally:
                built_in.close()
    finally:
        node.close()


def test_an_abis_killed_during_a_search_is_des_error_within_the_deadline(
    world: World, prints: PrintSet
) -> None:
    probe = {"format": "ansi_nist", "data": b64(probe_transaction(prints, "AT-2"))}
    abis = world.abis[Category.FINGER]
    abis.signal(signal.SIGSTOP)  # the search reaches it and waits ...
    results: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: results.append(
            search(world, category="finger", probe=probe, search_type="TP/TP")
        )
    )
    started = time.monotonic()
    thread.start()
    time.sleep(1.0)
    abis.kill()  # ... and the ABIS dies under it
    thread.join(timeout=60)
    elapsed = time.monotonic() - started
    reply = de_reply(results[0])
    assert reply["status"] == "error", (reply["status"], reply.get("error"))
    assert reply["error"]["code"] == "matcher_unavailable"
    assert "ABIS" in reply["error"]["message"]
    assert elapsed < DEADLINE_MS / 1000 + 5
    # Back: after the breaker's pause, searches are answered again.
    abis.start()
    abis.wait_ready()
    time.sleep(1.2)
    reply = de_reply(search(world, category="finger", probe=probe, search_type="TP/TP"))
    assert reply["status"] == "answered", reply.get("error")


def test_an_abis_that_stops_answering_is_des_error_naming_the_timeout(world: World) -> None:
    loci = LocusSet("prum")
    row = Generator(AlleleFrequencies.default(), loci).database(1, seed=41).codes[0]
    profile = profile_of(row, loci, identified=True).to_json()
    abis = world.abis[Category.DNA]
    abis.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = search(
            world, category="dna", probe={"format": "dna_profile", "data": b64(profile)}
        )
        reply = de_reply(result)
        assert reply["status"] == "error", (reply["status"], reply.get("error"))
        assert reply["error"]["code"] == "matcher_timeout"
        assert "no answer within" in reply["error"]["message"]
        assert time.monotonic() - started < DEADLINE_MS / 1000 + 5
    finally:
        abis.signal(signal.SIGCONT)
    time.sleep(1.2)  # the breaker's pause


def test_an_abis_killed_during_a_stream_of_inserts_holds_each_record_once(world: World) -> None:
    lines = dna_batch(STREAM, 43, "STREAM")
    abis = world.abis[Category.DNA]
    before = abis.health()["records"]
    with world.systems() as client:
        result = check(
            client.post(
                "/v1/batches", content=lines, headers={"Content-Type": "application/x-ndjson"}
            )
        )
    assert result["counts"].get("created") == STREAM, result["counts"]
    poll("the ABIS part-way", lambda: abis.health()["records"] > before + 100, every=0.02)
    abis.kill()
    assert world.lag()["dna"]["pending"] > 0
    abis.start()
    abis.wait_ready()
    world.settled()
    held = abis.held()
    assert len(held) == len(set(held)), "a record is held twice"
    node = Node(world.layout.config("DE"))
    try:
        table, engine = node.matcher(Category.DNA).codec.store_of(  # type: ignore[attr-defined]
            node.matcher(Category.DNA).inner  # type: ignore[attr-defined]
        )
        with engine.connect() as conn:
            from sqlalchemy import select

            ours = {str(r) for r in conn.execute(select(table.c.reference)).scalars()}
    finally:
        node.close()
    assert set(held) == ours, "the ABIS and the node's store differ"
