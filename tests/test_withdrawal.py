"""Erasure that reaches every copy (issue 28): over a real router and three nodes, DE's
national system erases or rectifies a record that AT and NL had received as a
candidate (AT also its released core data); a signed withdrawal notice reaches each of
them through the router, which removes the candidate's image and details and the core
data, marks them withdrawn with the reason, and logs it; exactly once, also with AT
down during the erasure, and with DE killed (-9) after the erasure committed but before
its outbox sent anything. The receiver AT runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text

from conftest import new_postgres_database
from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.demo.processes import Federation, Layout, lay_out, poll
from prum.demo.samples import SampleSet
from prum.demo.scenarios import release_core_data
from prum.federation.messages import Category, Purpose
from prum.node.config import CategoryPolicy
from prum.node.core import Node
from prum.node.systems.accounts import add_system
from prum.node.users import Role, add_user

pytestmark = [pytest.mark.slow]

PASSWORD = "withdrawal-test-password"
PARTIES = ("AT", "DE", "NL")
CORE = {
    "surnames": ["Brandt"],
    "first_names": ["Jonas"],
    "date_of_birth": "1987-05-14",
    "case_number": "DE-2023-118",
    "responsible_authority": "LKA Berlin",
}
POLICIES = {
    Category.FACE: CategoryPolicy(),
    Category.DNA: CategoryPolicy(purposes=list(Purpose), min_penalty_months=0, min_age=None),
}
SEARCH = {
    "purpose": "investigation",
    "offence": "0500 00",
    "max_penalty_months": 120,
    "case_reference": "LKA-2026-0977",
    "targets": ["DE"],
    "deadline_ms": 60_000,
}
LOCI = LocusSet("prum")
GENERATOR = Generator(AlleleFrequencies.default(), LOCI)


@dataclass
class World:
    layout: Layout
    processes: Federation
    token: str
    urls: dict[str, str]  # each node's database

    def api(self, party: str, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.layout.parties[party].api_url, auth=(user, PASSWORD), timeout=120
        )

    def systems(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.layout.parties["DE"].systems_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=300,
        )

    def db(self, party: str) -> Engine:
        return create_engine(self.urls[party])

    def scalar(self, party: str, sql: str, **params: Any) -> Any:
        engine = self.db(party)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar_one()
        finally:
            engine.dispose()


def check(response: httpx.Response) -> Any:
    assert response.status_code < 400, f"{response.request.url}: {response.text}"
    return response.json()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"withdrawal-{request.param}")
    layout = lay_out(root, list(PARTIES), policies={p: dict(POLICIES) for p in PARTIES})
    if request.param == "postgres":  # the receiver AT on PostgreSQL
        plan = layout.parties["AT"]
        config = layout.config("AT").model_copy(
            update={"database_url": new_postgres_database(request, "prum_withdrawal")}
        )
        plan.config_path.write_text(config.model_dump_json(indent=2))
    token, urls = "", {}
    for party in PARTIES:
        node = Node(layout.config(party))
        for name, role in (("olga", Role.OFFICER), ("eric", Role.EXAMINER)):
            add_user(node.engine, name, PASSWORD, {role})
        add_user(node.engine, "anna", PASSWORD, {Role.APPROVER})
        if party == "DE":
            token = add_system(node.engine, "de-systems", set(POLICIES))
        urls[party] = node.url
        node.close()
    with Federation(layout) as processes:
        processes.start_all()
        yield World(layout, processes, token, urls)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- helpers ---------------------------------------------------------------------------


def dna_record(world: World, national_id: str, seed: int) -> tuple[str, dict[str, Any]]:
    """DE's DNA database sends a person's profile; the reference and a trace probe."""
    row = GENERATOR.database(1, seed=seed, trace_share=0, family_share=0).codes[0]
    with world.systems() as client:
        stored = check(
            client.post(
                "/v1/records",
                json={
                    "category": "dna",
                    "national_id": national_id,
                    "sample": {
                        "format": "dna-profile",
                        "content": profile_of(row, LOCI, identified=True).to_dict(),
                    },
                    "core_data": CORE,
                },
            )
        )
    trace = profile_of(
        GENERATOR.trace(row, np.random.default_rng(seed), keep=10), LOCI, identified=False
    ).to_json()
    return stored["reference"], {"format": "dna_profile", "data": b64(trace)}


def search(world: World, party: str, **probe: Any) -> dict[str, Any]:
    with world.api(party, "olga") as officer:
        return dict(check(officer.post("/api/searches", json={**SEARCH, **probe})))


def candidate(world: World, party: str, search_id: int, reference: str) -> dict[str, Any]:
    with world.api(party, "olga") as officer:
        found = check(officer.get(f"/api/searches/{search_id}"))
    [reply] = [r for r in found["replies"] if r["party"] == "DE"]
    [hit] = [c for c in reply["candidates"] if c["reference"] == reference]
    return dict(hit)


def confirm_and_release(world: World, search_id: int, reference: str) -> dict[str, Any]:
    with world.api("AT", "eric") as examiner:
        check(
            examiner.post(
                f"/api/searches/{search_id}/verifications",
                json={
                    "party": "DE",
                    "reference": reference,
                    "decision": "confirmed",
                    "justification": "The examiner compared both samples and they agree.",
                },
            )
        )
    return release_core_data(
        world.api,
        check,
        search_id=search_id,
        holder="DE",
        reference=reference,
        facts_text="Burglary of a house in Linz on 1 December 2026; the sample is the trace.",
    )


def withdrawn(world: World, party: str, search_id: int, reference: str) -> dict[str, Any]:
    """The candidate once its withdrawal arrived (waits for it)."""
    return dict(
        poll(
            f"the withdrawal of {reference} at {party}",
            lambda: (hit := candidate(world, party, search_id, reference)).get("withdrawn") and hit,
            timeout=90,
        )
    )


def received_notices(world: World, party: str, reference: str) -> int:
    """Withdrawal notices ``party`` accepted for ``reference`` (its audit entries)."""
    return int(
        world.scalar(
            party,
            "SELECT count(*) FROM audit_entries WHERE kind = 'record_withdrawn' AND body LIKE :ref",
            ref=f"%{reference}%",
        )
    )


def delete(world: World, national_id: str, reason: str = "erasure") -> None:
    with world.systems() as client:
        deleted = check(client.delete(f"/v1/records/dna/{national_id}", params={"reason": reason}))
    assert deleted["outcome"] == "deleted"


def workbench_page(world: World, party: str, path: str) -> str:
    with httpx.Client(base_url=world.layout.parties[party].api_url, timeout=60) as client:
        page = client.get("/workbench/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        client.post(
            "/workbench/login",
            data={"username": "eric", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        response = client.get(f"/workbench{path}")
        assert response.status_code == 200, response.text[:300]
        return response.text


# --- the tests -------------------------------------------------------------------------


def test_an_erased_record_is_withdrawn_at_both_receivers_with_its_core_data(
    world: World,
) -> None:
    reference, probe = dna_record(world, "DAD-W-1", seed=101)
    at = search(world, "AT", category="dna", probe=probe)
    nl = search(world, "NL", category="dna", probe=probe)
    for party, found in (("AT", at), ("NL", nl)):
        assert candidate(world, party, found["id"], reference)["details"]["profile"]
    core = confirm_and_release(world, at["id"], reference)
    assert core["surnames"] == ["Brandt"]

    delete(world, "DAD-W-1", "erasure")

    for party, found in (("AT", at), ("NL", nl)):
        hit = withdrawn(world, party, found["id"], reference)
        assert hit["image"] is None and hit["details"] is None  # the profile is gone
        assert hit["withdrawn"]["reason"] == "erasure"
        assert received_notices(world, party, reference) == 1
    with world.api("AT", "olga") as officer:
        [asked] = [
            r for r in check(officer.get("/api/core-data-requests")) if r["reference"] == reference
        ]
        assert asked["status"] == "released"  # what happened stays
        assert "core_data" not in asked["reply"] and asked["reply"]["withdrawn"]["words"]
        # No core data can be asked for a withdrawn candidate.
        again = officer.post(
            "/api/core-data-requests",
            json={
                "search_id": at["id"],
                "party": "DE",
                "reference": reference,
                "facts": "A second request for the same record after its erasure.",
            },
        )
        assert again.status_code >= 400 and again.json()["code"] == "wrong_state"
    # Nothing of the released core data is left at AT.
    kept = world.scalar(
        "AT",
        "SELECT count(*) FROM node_core_requests_out WHERE CAST(reply AS TEXT) LIKE '%Brandt%'",
    )
    assert kept == 0
    page = workbench_page(world, "AT", f"/searches/{at['id']}")
    assert "Withdrawn by DE" in page and "erased by the holder as the law requires" in page
    compare = workbench_page(world, "AT", f"/searches/{at['id']}/candidates/DE/{reference}")
    assert "DE withdrew this candidate" in compare
    # DE told each receiver once, and forgot whom it had told.
    sent = world.scalar(
        "DE",
        "SELECT count(*) FROM node_outbox WHERE kind = 'record_withdrawn'"
        " AND delivered_at IS NOT NULL AND CAST(envelope AS TEXT) LIKE :ref",
        ref=f"%{reference}%",
    )
    assert sent == 2
    assert (
        world.scalar(
            "DE", "SELECT count(*) FROM node_references_sent WHERE reference = :r", r=reference
        )
        == 0
    )


@pytest.mark.realdata
def test_an_erased_face_leaves_no_photo_at_either_receiver(
    world: World, samples: SampleSet
) -> None:
    by_person: dict[str, list[Any]] = {}
    for path, identity in samples.images:
        by_person.setdefault(identity, []).append(path)
    photos = max(by_person.values(), key=len)
    with world.systems() as client:
        stored = check(
            client.post(
                "/v1/records",
                json={
                    "category": "face",
                    "national_id": "BKA-FACE-W",
                    "sample": {"format": "image", "data": b64(photos[0].read_bytes())},
                    "subject_category": "convicted",
                    "core_data": CORE,
                },
            )
        )
    reference = stored["reference"]
    probe = b64(photos[1].read_bytes())
    found = {party: search(world, party, category="face", image=probe) for party in ("AT", "NL")}
    images = {}
    for party, result in found.items():
        images[party] = candidate(world, party, result["id"], reference)["image"]
        assert images[party]
    with world.systems() as client:
        check(client.delete("/v1/records/face/BKA-FACE-W", params={"reason": "court_order"}))
    for party, result in found.items():
        hit = withdrawn(world, party, result["id"], reference)
        assert hit["image"] is None and hit["withdrawn"]["reason"] == "court_order"
        # Not a byte of the photo is left in what the node stored of the search.
        left = world.scalar(
            party,
            "SELECT count(*) FROM node_searches WHERE CAST(reply AS TEXT) LIKE :image",
            image=f"%{images[party][100:160]}%",
        )
        assert left == 0
    page = workbench_page(world, "NL", f"/searches/{found['NL']['id']}")
    assert "deleted by the holder on a court order" in page
    assert f"candidates/DE/{reference}/image" not in page  # no photo shown


def test_a_rectified_record_is_withdrawn_as_rectified(world: World) -> None:
    reference, probe = dna_record(world, "DAD-W-2", seed=202)
    at = search(world, "AT", category="dna", probe=probe)
    other = GENERATOR.database(1, seed=203, trace_share=0, family_share=0).codes[0]
    with world.systems() as client:  # the record was someone else's profile
        new = check(
            client.post(
                "/v1/records",
                json={
                    "category": "dna",
                    "national_id": "DAD-W-2",
                    "sample": {
                        "format": "dna-profile",
                        "content": profile_of(other, LOCI, identified=True).to_dict(),
                    },
                    "core_data": CORE,
                },
            )
        )
    assert new["outcome"] == "replaced"
    hit = withdrawn(world, "AT", at["id"], reference)
    assert hit["withdrawn"]["reason"] == "rectification"
    assert "rectified by the holder" in hit["withdrawn"]["words"]


def test_a_redelivered_notice_changes_nothing(world: World) -> None:
    reference, probe = dna_record(world, "DAD-W-3", seed=303)
    at = search(world, "AT", category="dna", probe=probe)
    delete(world, "DAD-W-3")
    first = withdrawn(world, "AT", at["id"], reference)
    # DE's outbox forgets that AT acknowledged: it sends the notice again.
    engine = world.db("DE")
    with engine.begin() as conn:
        again = conn.execute(
            text(
                "UPDATE node_outbox SET delivered_at = NULL WHERE kind = 'record_withdrawn'"
                " AND destination = 'AT' AND CAST(envelope AS TEXT) LIKE :ref"
            ),
            {"ref": f"%{reference}%"},
        ).rowcount
    assert again == 1
    poll(
        "the second delivery",
        lambda: (
            world.scalar(
                "DE",
                "SELECT count(*) FROM node_outbox WHERE delivered_at IS NOT NULL"
                " AND CAST(envelope AS TEXT) LIKE :ref",
                ref=f"%{reference}%",
            )
            == 1
            or None
        ),
        timeout=60,
    )
    engine.dispose()
    assert received_notices(world, "AT", reference) == 1
    assert candidate(world, "AT", at["id"], reference)["withdrawn"] == first["withdrawn"]


def test_a_receiver_down_during_the_erasure_gets_the_notice_when_back(world: World) -> None:
    reference, probe = dna_record(world, "DAD-W-4", seed=404)
    at = search(world, "AT", category="dna", probe=probe)
    nl = search(world, "NL", category="dna", probe=probe)
    world.processes.kill("AT")
    try:
        delete(world, "DAD-W-4")
        withdrawn(world, "NL", nl["id"], reference)
        # DE keeps trying AT.
        poll(
            "DE's retries to AT",
            lambda: (
                world.scalar(
                    "DE",
                    "SELECT max(attempts) FROM node_outbox WHERE destination = 'AT'"
                    " AND delivered_at IS NULL AND kind = 'record_withdrawn'",
                )
                or None
            ),
            timeout=60,
        )
    finally:
        world.processes.restart("AT")
    hit = withdrawn(world, "AT", at["id"], reference)
    assert hit["details"] is None
    assert received_notices(world, "AT", reference) == 1


def test_kill_9_of_the_holder_before_its_outbox_sent_loses_no_notice(world: World) -> None:
    reference, probe = dna_record(world, "DAD-W-5", seed=505)
    at = search(world, "AT", category="dna", probe=probe)
    nl = search(world, "NL", category="dna", probe=probe)
    world.processes.kill("ROUTER")  # nothing can leave DE
    try:
        delete(world, "DAD-W-5")
        queued = world.scalar(
            "DE",
            "SELECT count(*) FROM node_outbox WHERE kind = 'record_withdrawn'"
            " AND delivered_at IS NULL AND CAST(envelope AS TEXT) LIKE :ref",
            ref=f"%{reference}%",
        )
        assert queued == 2  # committed with the erasure, one per receiver
        world.processes.kill("DE")  # kill -9
    finally:
        world.processes.restart("ROUTER")
        world.processes.restart("DE")
    for party, found in (("AT", at), ("NL", nl)):
        withdrawn(world, party, found["id"], reference)
        assert received_notices(world, party, reference) == 1
    time.sleep(1.5)  # a late duplicate would show now
    for party in ("AT", "NL"):
        assert received_notices(world, party, reference) == 1
