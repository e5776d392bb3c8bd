"""The national-systems interface in-process: upserts, idempotency, replacement,
deletion, batches, reconciliation, audit entries (the HTTP face and the federation
end to end are in test_national_systems_api.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prum.audit.events import EventKind
from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.categories.records.keys import create_key_file
from prum.categories.records.synthetic import PersonGenerator
from prum.categories.vehicle.generate import Generator as VehicleGenerator
from prum.errors import (
    CategoryNotOffered,
    InvalidRecord,
    NoCredentials,
    RoleRequired,
    UnknownReference,
)
from prum.federation.messages import Category
from prum.federation.security import pki
from prum.federation.security.signing import AuditVerifier
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.schema import core_data
from prum.node.systems.accounts import SystemAccount, add_system, authenticate_system
from prum.node.systems.contract import DeletionIn, Outcome, RecordIn
from prum.node.systems.service import NationalSystems

CORE = {
    "surnames": ["Brandt"],
    "first_names": ["Jonas"],
    "date_of_birth": "1987-05-14",
    "nationalities": ["DE"],
    "offence": "burglary",
    "case_number": "DE-2023-118",
    "responsible_authority": "LKA Berlin",
}
SYSTEM = SystemAccount("dna-db", frozenset(Category))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    for party in ("ROUTER", "DE"):
        pki.issue(path, party, role="router" if party == "ROUTER" else "node")
    create_key_file(path / "records.key", "k1")
    return path


@pytest.fixture
def node(tmp_path: Path, pki_dir: Path, database_url: str) -> Any:
    config = NodeConfig(
        party="DE",
        data_dir=tmp_path / "de",
        database_url=database_url,
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={
            c: CategoryPolicy() for c in (Category.DNA, Category.VEHICLE, Category.RECORDS)
        },
    )
    node = Node(config)
    yield node
    node.close()


def dna_profiles(n: int, seed: int = 1) -> list[dict[str, Any]]:
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(n, seed=seed, trace_share=0, family_share=0)
    return [json.loads(profile_of(row, loci, identified=True).to_json()) for row in database.codes]


def dna_record(national_id: str, profile: dict[str, Any], **extra: Any) -> RecordIn:
    return RecordIn.model_validate(
        {
            "category": "dna",
            "national_id": national_id,
            "sample": {"format": "dna-profile", "content": profile},
            "core_data": CORE,
            **extra,
        }
    )


def test_upsert_stores_the_record_with_its_core_data_and_says_so(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    result = systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    assert result.outcome is Outcome.CREATED and result.reference
    assert node.matcher(Category.DNA).describe()["records"] == 1
    with node.engine.connect() as conn:
        stored = conn.execute(
            core_data.select().where(core_data.c.reference == result.reference)
        ).one()
    assert stored.data["case_number"] == "DE-2023-118"


def test_the_same_record_twice_changes_nothing(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    first = systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    again = systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    assert again.outcome is Outcome.UNCHANGED and again.reference == first.reference
    assert node.matcher(Category.DNA).describe()["records"] == 1
    assert len(systems.changes().changes) == 1


def test_changed_core_data_keeps_the_reference(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    first = systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    changed = dna_record("DNA-1", profile, core_data={**CORE, "case_number": "DE-2024-9"})
    result = systems.upsert(changed, SYSTEM)
    assert result.outcome is Outcome.UPDATED and result.reference == first.reference
    with node.engine.connect() as conn:
        data = conn.execute(core_data.select()).one().data
    assert data["case_number"] == "DE-2024-9"


def test_a_changed_profile_replaces_the_old_version(node: Node) -> None:
    systems = NationalSystems(node)
    old_profile, new_profile = dna_profiles(2)
    first = systems.upsert(dna_record("DNA-1", old_profile), SYSTEM)
    result = systems.upsert(dna_record("DNA-1", new_profile), SYSTEM)
    assert result.outcome is Outcome.REPLACED and result.reference != first.reference
    matcher: Any = node.matcher(Category.DNA)
    assert matcher.describe()["records"] == 1
    with node.engine.connect() as conn:
        held = [r.reference for r in conn.execute(core_data.select())]
    assert held == [result.reference]


def test_delete_erases_record_and_core_data_and_is_in_the_audit_chain(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    created = systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    deleted = systems.delete(
        DeletionIn(category=Category.DNA, national_id="DNA-1", reason="erasure"), SYSTEM
    )
    assert deleted.outcome is Outcome.DELETED and deleted.reference == created.reference
    assert node.matcher(Category.DNA).describe()["records"] == 0
    with node.engine.connect() as conn:
        assert conn.execute(core_data.select()).all() == []
    kinds = [e.event.kind for e in node.audit.entries(limit=10)]
    assert EventKind.RECORD_DELETED in kinds and EventKind.RECORD_ENROLLED in kinds
    deletion = next(iter(node.audit.entries(kind="record_deleted", limit=1))).event
    assert deletion.national_id == "DNA-1" and deletion.reference == [created.reference]
    assert deletion.user == "dna-db" and deletion.reason_code == "erasure"
    assert node.audit.verify(AuditVerifier(node.config.pki_dir)).ok
    summary = node.statistics.summary()
    assert "records_deleted" in json.dumps(summary)


def test_deleting_an_unknown_identifier_is_refused_and_changes_nothing(node: Node) -> None:
    systems = NationalSystems(node)
    with pytest.raises(UnknownReference, match="DNA-404"):
        systems.delete(
            DeletionIn(category=Category.DNA, national_id="DNA-404", reason="erasure"), SYSTEM
        )
    assert systems.changes().changes == []


def test_a_batch_applies_good_lines_and_refuses_bad_ones_each_alone(node: Node) -> None:
    systems = NationalSystems(node)
    profiles = dna_profiles(3)
    bad = dna_record("DNA-X", {"loci": {"vWA": ["foo", "bar"]}})
    lines = [dna_record(f"DNA-{i}", p) for i, p in enumerate(profiles)]
    result = systems.apply_batch([lines[0], bad, lines[1], lines[2]], SYSTEM)
    assert result.counts["created"] == 3 and result.counts["refused"] == 1
    refused = result.results[1]
    assert refused.line == 2 and refused.error is not None and refused.national_id == "DNA-X"
    assert node.matcher(Category.DNA).describe()["records"] == 3
    again = systems.apply_batch(lines, SYSTEM)
    assert again.counts["unchanged"] == 3


def test_reconciliation_lists_identifiers_with_hashes_in_pages(node: Node) -> None:
    systems = NationalSystems(node)
    records = [dna_record(f"DNA-{i:02d}", p) for i, p in enumerate(dna_profiles(5))]
    systems.apply_batch(records, SYSTEM)
    first = systems.listing(Category.DNA, limit=3)
    assert [r.national_id for r in first.records] == ["DNA-00", "DNA-01", "DNA-02"]
    assert first.next_after == "DNA-02"
    rest = systems.listing(Category.DNA, after=first.next_after, limit=3)
    assert [r.national_id for r in rest.records] == ["DNA-03", "DNA-04"]
    assert rest.next_after is None
    assert first.records[0].content_hash == records[0].content_hash()
    page = systems.changes(after=2, limit=2)
    assert [c.seq for c in page.changes] == [3, 4] and page.last_seq == 4


def test_vehicles_and_police_records_enter_the_same_way(node: Node) -> None:
    systems = NationalSystems(node)
    registration = VehicleGenerator("DE").registrations(1, seed=3)[0]
    vehicle = RecordIn.model_validate(
        {
            "category": "vehicle",
            "national_id": "KBA-1",
            "sample": {
                "format": "vehicle-registration",
                "content": registration.model_dump(mode="json", exclude_none=True),
            },
        }
    )
    person = PersonGenerator(seed=5).people(1)[0]
    record = RecordIn.model_validate(
        {
            "category": "records",
            "national_id": "INPOL-1",
            "sample": {"format": "police-record", "content": person.to_dict()},
            "core_data": CORE,
        }
    )
    result = systems.apply_batch([vehicle, record], SYSTEM)
    assert result.counts["created"] == 2, result.results
    assert node.matcher(Category.VEHICLE).describe()["records"] == 1
    assert node.matcher(Category.RECORDS).describe()["records"] == 1
    with pytest.raises(InvalidRecord, match="no core data"):
        systems.upsert(vehicle.model_copy(update={"core_data": CORE}), SYSTEM)


def test_a_system_writes_only_its_categories_and_only_what_the_node_offers(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    vehicles_only = SystemAccount("kba", frozenset({Category.VEHICLE}))
    with pytest.raises(RoleRequired):
        systems.upsert(dna_record("DNA-1", profile), vehicles_only)
    face = RecordIn.model_validate(
        {
            "category": "face",
            "national_id": "F-1",
            "sample": {"format": "image", "data": base64.b64encode(b"x").decode()},
        }
    )
    with pytest.raises(CategoryNotOffered):
        systems.upsert(face, SYSTEM)


def test_tokens_authenticate_a_system_and_nothing_else(node: Node) -> None:
    token = add_system(node.engine, "afis", {Category.FINGER})
    account = authenticate_system(node.engine, token)
    assert account.name == "afis" and account.categories == {Category.FINGER}
    with pytest.raises(NoCredentials):
        authenticate_system(node.engine, token[:-2] + "xx")
    with pytest.raises(NoCredentials):
        authenticate_system(node.engine, "demo-de-password")


def test_retention_dates_erase_records_when_they_pass(node: Node) -> None:
    systems = NationalSystems(node)
    profiles = dna_profiles(2)
    systems.upsert(dna_record("DNA-old", profiles[0], retention_until="2020-01-01"), SYSTEM)
    systems.upsert(dna_record("DNA-new", profiles[1], retention_until="2999-01-01"), SYSTEM)
    assert systems.expire() == 1
    assert [r.national_id for r in systems.listing(Category.DNA).records] == ["DNA-new"]
    assert np.isclose(node.matcher(Category.DNA).describe()["records"], 1)


@pytest.fixture
def every_category(tmp_path: Path, pki_dir: Path) -> Any:
    config = NodeConfig(
        party="DE",
        data_dir=tmp_path / "de-all",
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={c: CategoryPolicy() for c in Category},
    )
    node = Node(config)
    yield node
    node.close()


TRUNCATED_JPEG = b"\xff\xd8\xff" + b"x" * 64
BAD_LINES = {
    "a corrupt image": {
        "category": "face",
        "national_id": "F-1",
        "sample": {
            "format": "image",
            "data": base64.b64encode(b"\xff\xd8\xff" + b"x" * 64).decode(),
        },
    },
    "an image that is no image": {
        "category": "face",
        "national_id": "F-2",
        "sample": {"format": "image", "data": base64.b64encode(b"GIF89a not really").decode()},
    },
    "a transaction that lies about its length": {
        "category": "finger",
        "national_id": "AFIS-1",
        "sample": {
            "format": "ansi-nist",
            "data": base64.b64encode(b"1.001:9999\x1d1.002:0502\x1c").decode(),
        },
    },
    "a face sent as a DNA profile": {
        "category": "face",
        "national_id": "F-3",
        "sample": {"format": "dna-profile", "content": {"loci": {}}},
    },
    "a single finger image without its position": {
        "category": "finger",
        "national_id": "AFIS-2",
        "sample": {"format": "image", "data": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()},
    },
    "core data for a vehicle": {
        "category": "vehicle",
        "national_id": "KBA-9",
        "sample": {"format": "vehicle-registration", "content": {"plate": "B-AB 123"}},
        "core_data": {"surnames": ["X"]},
    },
}
INVALID_LINES = {
    "an unknown category": {"category": "iris", "national_id": "I-1", "sample": {}},
    "core data of the wrong shape": {
        "category": "dna",
        "national_id": "DNA-1",
        "sample": {"format": "dna-profile", "content": {}},
        "core_data": {"surnames": "Brandt", "gender": "male"},
    },
    "a national id with a slash": {
        "category": "dna",
        "national_id": "DNA/1",
        "sample": {"format": "dna-profile", "content": {}},
    },
    "a sample in both forms": {
        "category": "face",
        "national_id": "F-4",
        "sample": {"format": "image", "data": "eA==", "content": {}},
    },
    "an unknown field": {"category": "dna", "national_id": "D-2", "sample": {}, "name": "X"},
}


@pytest.mark.parametrize("what", sorted(BAD_LINES))
def test_bad_records_are_refused_with_a_clear_error_and_change_nothing(
    every_category: Node, what: str
) -> None:
    from prum.errors import PrumError

    systems = NationalSystems(every_category)
    record = RecordIn.model_validate(BAD_LINES[what])
    with pytest.raises(PrumError) as caught:
        systems.upsert(record, SYSTEM)
    assert caught.value.code != "prum_error" and len(caught.value.message) > 10
    assert systems.changes().changes == []
    assert systems.listing(record.category).records == []


def test_lines_that_are_not_records_are_refused_each_alone() -> None:
    from prum.node.systems.batch import parse_lines

    text = "\n".join(json.dumps(line) for line in INVALID_LINES.values()) + "\nnot json\n"
    parsed = parse_lines(text.encode(), {}.__getitem__)
    assert len(parsed) == len(INVALID_LINES) + 1
    for line in parsed:
        assert isinstance(line, InvalidRecord), line
        assert line.message.startswith("line ")


def test_a_system_reads_back_only_the_categories_it_may_write(node: Node) -> None:
    systems = NationalSystems(node)
    [profile] = dna_profiles(1)
    systems.upsert(dna_record("DNA-1", profile), SYSTEM)
    registration = VehicleGenerator("DE").registrations(1, seed=4)[0]
    vehicle = RecordIn.model_validate(
        {
            "category": "vehicle",
            "national_id": "KBA-1",
            "sample": {
                "format": "vehicle-registration",
                "content": registration.model_dump(mode="json", exclude_none=True),
            },
        }
    )
    systems.upsert(vehicle, SYSTEM)
    seen = systems.changes(categories={Category.VEHICLE}).changes
    assert [c.national_id for c in seen] == ["KBA-1"]
    assert len(systems.changes().changes) == 2
