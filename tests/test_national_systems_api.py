"""The national-systems interface end to end: DE's national systems send faces, DNA
profiles and tenprints with their core data over HTTP to DE's node; an Austrian search
through the router finds them, an examiner confirms, DE's approver releases the core
data that came with the record; a deletion makes the record unfindable and is in the
audit chain; a rectification changes what a search finds; a node killed with -9 in the
middle of a batch loses and duplicates nothing once the batch is sent again. DE's node
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from conftest import new_postgres_database
from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.demo.processes import Federation, lay_out
from prum.demo.samples import PrintSet, SampleSet
from prum.demo.scenarios import release_core_data
from prum.federation.messages import Category, Purpose
from prum.node.config import LEGACY_FINGER_TYPES, CategoryPolicy
from prum.node.core import Node
from prum.node.systems.accounts import add_system
from prum.node.users import Role
from systems_federation import (
    PASSWORD,
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

CORE = {
    "surnames": ["Brandt"],
    "first_names": ["Jonas"],
    "date_of_birth": "1987-05-14",
    "nationalities": ["DE"],
    "gender": "M",
    "offence": "burglary",
    "case_number": "DE-2023-118",
    "responsible_authority": "LKA Berlin",
}
USERS = {"olga": Role.OFFICER, "eric": Role.EXAMINER, "anna": Role.APPROVER}
POLICIES = {
    Category.FACE: CategoryPolicy(),
    Category.DNA: CategoryPolicy(purposes=list(Purpose), min_penalty_months=0, min_age=None),
    Category.FINGER: CategoryPolicy(
        purposes=list(Purpose),
        min_penalty_months=0,
        min_age=None,
        search_types=dict(LEGACY_FINGER_TYPES),
    ),
}
# A batch several chunks long (prum.node.systems.service.CHUNK), so a kill lands inside it.
LINES = 6000
SEARCH = {
    "purpose": "investigation",
    "offence": "0500 00",
    "max_penalty_months": 120,
    "case_reference": "AT-LKA-2026-0977",
    "targets": ["DE"],
    "deadline_ms": 60_000,
}


@dataclass
class World(SystemsWorld):
    database_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"systems-{request.param}")
    layout = lay_out(root, ["AT", "DE"], policies={"AT": dict(POLICIES), "DE": dict(POLICIES)})
    if request.param == "postgres":
        database_url = new_postgres_database(request, "prum_systems")
        plan = layout.parties["DE"]
        config = layout.config("DE").model_copy(update={"database_url": database_url})
        plan.config_path.write_text(config.model_dump_json(indent=2))
    token = add_people_and_systems(layout, USERS, set(POLICIES))
    database_url = layout.config("DE").database()
    with Federation(layout) as processes:
        processes.start_all()
        yield World(layout, processes, token, database_url)


def upsert(world: World, record: dict[str, Any]) -> dict[str, Any]:
    with world.systems() as client:
        return dict(check(client.post("/v1/records", json=record)))


def search(world: World, **probe: Any) -> dict[str, Any]:
    with world.api("AT", "olga") as officer:
        return dict(check(officer.post("/api/searches", json={**SEARCH, **probe})))


def de_candidates(result: dict[str, Any]) -> list[dict[str, Any]]:
    [reply] = [r for r in result["replies"] if r["party"] == "DE"]
    assert reply["status"] in ("answered", "no_hit"), reply
    return list(reply["candidates"])


def confirm_and_release(world: World, result: dict[str, Any], reference: str) -> dict[str, Any]:
    with world.api("AT", "eric") as examiner:
        check(
            examiner.post(
                f"/api/searches/{result['id']}/verifications",
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
        search_id=result["id"],
        holder="DE",
        reference=reference,
        facts_text="Burglary of a house in Linz on 1 December 2026; the sample is the trace.",
    )


# --- faces --------------------------------------------------------------------------


def two_people(samples: SampleSet) -> tuple[list[Path], list[Path]]:
    first, second, *_ = people(samples)
    return first, second


def test_a_face_sent_by_the_national_system_is_found_confirmed_and_released(
    world: World, samples: SampleSet
) -> None:
    person, _ = two_people(samples)
    stored = upsert(
        world,
        {
            "category": "face",
            "national_id": "BKA-FACE-1",
            "sample": {"format": "image", "data": b64(person[0].read_bytes())},
            "subject_category": "convicted",
            "core_data": CORE,
        },
    )
    assert stored["outcome"] == "created"
    result = search(world, category="face", image=b64(person[1].read_bytes()))
    candidates = de_candidates(result)
    assert candidates and candidates[0]["reference"] == stored["reference"]
    core = confirm_and_release(world, result, stored["reference"])
    assert core["surnames"] == ["Brandt"] and core["case_number"] == "DE-2023-118"


def test_a_rectified_face_changes_what_a_search_finds(world: World, samples: SampleSet) -> None:
    first, second = two_people(samples)
    old = upsert(
        world,
        {
            "category": "face",
            "national_id": "BKA-FACE-2",
            "sample": {"format": "image", "data": b64(second[0].read_bytes())},
            "core_data": CORE,
        },
    )
    assert (
        de_candidates(search(world, category="face", image=b64(second[1].read_bytes())))[0][
            "reference"
        ]
        == old["reference"]
    )
    # The record was the wrong photo: the national system sends the right one.
    new = upsert(
        world,
        {
            "category": "face",
            "national_id": "BKA-FACE-2",
            "sample": {"format": "image", "data": b64(first[-1].read_bytes())},
            "core_data": CORE,
        },
    )
    assert new["outcome"] == "replaced" and new["reference"] != old["reference"]
    found = {
        c["reference"]
        for c in de_candidates(search(world, category="face", image=b64(second[1].read_bytes())))
    }
    assert old["reference"] not in found


# --- DNA ----------------------------------------------------------------------------


def test_a_dna_profile_is_found_released_then_deleted_and_unfindable(world: World) -> None:
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(1, seed=11, trace_share=0, family_share=0)
    row = database.codes[0]
    stored = upsert(
        world,
        {
            "category": "dna",
            "national_id": "DAD-000777",
            "sample": {
                "format": "dna-profile",
                "content": profile_of(row, loci, identified=True).to_dict(),
            },
            "core_data": CORE,
        },
    )
    trace = profile_of(
        generator.trace(row, np.random.default_rng(3), keep=10), loci, identified=False
    ).to_json()
    probe = {"format": "dna_profile", "data": b64(trace)}
    result = search(world, category="dna", probe=probe)
    assert de_candidates(result)[0]["reference"] == stored["reference"]
    core = confirm_and_release(world, result, stored["reference"])
    assert core["responsible_authority"] == "LKA Berlin"

    with world.systems() as client:
        deleted = check(client.delete("/v1/records/dna/DAD-000777", params={"reason": "erasure"}))
        assert deleted["outcome"] == "deleted"
        again = client.delete("/v1/records/dna/DAD-000777", params={"reason": "erasure"})
        assert again.status_code == 404 and again.json()["code"] == "unknown_reference"
    assert de_candidates(search(world, category="dna", probe=probe)) == []
    engine = create_engine(world.database_url)
    with engine.connect() as conn:
        logged = conn.execute(
            text(
                "SELECT count(*) FROM audit_entries WHERE kind = 'record_deleted'"
                " AND body LIKE '%DAD-000777%'"
            )
        ).scalar_one()
    engine.dispose()
    assert logged == 1
    with world.api("DE", "anna") as someone:
        assert someone.get("/api/health").status_code == 200


# --- fingerprints -------------------------------------------------------------------


def test_a_tenprint_from_the_afis_is_found_and_released(world: World, prints: PrintSet) -> None:
    card = afis_card(prints)
    stored = upsert(
        world,
        {"category": "finger", "national_id": "AFIS-CARD-1", "sample": card, "core_data": CORE},
    )
    probe = {"format": "ansi_nist", "data": b64(probe_transaction(prints, "AT-1"))}
    result = search(world, category="finger", probe=probe, search_type="TP/TP")
    assert de_candidates(result)[0]["reference"] == stored["reference"]
    core = confirm_and_release(world, result, stored["reference"])
    assert core["first_names"] == ["Jonas"]


# --- people and systems are kept apart ----------------------------------------------


def test_people_and_systems_cannot_use_each_others_doors(world: World) -> None:
    plan = world.layout.parties["DE"]
    officer = httpx.get(f"{plan.systems_url}/v1/changes", auth=("olga", PASSWORD))
    assert officer.status_code == 401
    token = {"Authorization": f"Bearer {world.token}"}
    assert httpx.get(f"{plan.api_url}/api/searches", headers=token).status_code in (401, 403)
    with world.systems() as client:
        page = check(client.get("/v1/changes", params={"after": 0}))
        assert page["changes"] and page["last_seq"] >= page["changes"][-1]["seq"]


# --- kill -9 in the middle of a batch -----------------------------------------------


def test_kill_9_mid_batch_loses_and_duplicates_nothing_once_sent_again(world: World) -> None:
    lines = dna_batch(LINES, 29, "BATCH", core_data=CORE)
    headers = {"Content-Type": "application/x-ndjson"}

    answered: list[httpx.Response] = []

    def send() -> None:
        try:
            with world.systems() as client:
                answered.append(client.post("/v1/batches", content=lines, headers=headers))
        except httpx.HTTPError:
            pass  # the node died under it: expected

    sender = threading.Thread(target=send)
    sender.start()
    engine = create_engine(world.database_url)
    deadline = time.monotonic() + 120
    with engine.connect() as conn:  # kill once some but not all lines are stored
        while time.monotonic() < deadline:
            done = conn.execute(
                text("SELECT count(*) FROM node_national_records WHERE national_id LIKE 'BATCH-%'")
            ).scalar_one()
            conn.rollback()
            if done >= 500:
                break
            time.sleep(0.05)
    world.processes.kill("DE")
    sender.join(timeout=60)
    with engine.connect() as conn:
        applied = conn.execute(
            text("SELECT count(*) FROM node_national_records WHERE national_id LIKE 'BATCH-%'")
        ).scalar_one()
    assert 0 < applied < LINES, f"the kill missed the batch: {[r.text[:300] for r in answered]}"
    world.processes.restart("DE")
    with world.systems() as client:
        result = check(client.post("/v1/batches", content=lines, headers=headers))
    assert result["counts"]["refused"] == 0
    assert result["counts"]["unchanged"] == applied
    assert result["counts"]["created"] == LINES - applied
    with engine.connect() as conn:
        mapped = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT reference) FROM node_national_records"
                " WHERE national_id LIKE 'BATCH-%'"
            )
        ).one()
        stored = conn.execute(
            text("SELECT count(*) FROM dna_records WHERE source_key LIKE 'nsi:dna:BATCH-%'")
        ).scalar_one()
        cores = conn.execute(
            text(
                "SELECT count(*) FROM node_core_data WHERE reference IN"
                " (SELECT reference FROM node_national_records WHERE national_id LIKE 'BATCH-%')"
            )
        ).scalar_one()
    engine.dispose()
    assert tuple(mapped) == (LINES, LINES)  # nothing lost
    assert stored == LINES  # nothing duplicated
    assert cores == LINES


def test_the_interface_serves_https_when_configured(tmp_path: Path) -> None:
    layout = lay_out(tmp_path, ["DE"], policies={"DE": {Category.DNA: POLICIES[Category.DNA]}})
    plan = layout.parties["DE"]
    config = layout.config("DE").model_copy(update={"systems_tls": True})
    plan.config_path.write_text(config.model_dump_json(indent=2))
    node = Node(config)
    token = add_system(node.engine, "dna-db", {Category.DNA})
    node.close()
    with Federation(layout) as processes:
        processes.start("DE")
        processes.wait_ready(["DE"])
        url = f"https://localhost:{plan.systems_port}"
        with httpx.Client(verify=str(layout.pki_dir / "ca.pem"), timeout=30) as client:
            page = client.get(f"{url}/v1/changes", headers={"Authorization": f"Bearer {token}"})
            assert page.status_code == 200 and page.json()["changes"] == []
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
            httpx.get(f"http://127.0.0.1:{plan.systems_port}/v1/health", timeout=10)
