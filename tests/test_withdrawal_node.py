"""Withdrawal notices at one node, in process (issue 28, point 2; the federation tests are
tests/test_withdrawal.py): an erasure queues one notice per party that received the
reference, in its own transaction; a search answered just as its candidate was erased
withdraws it at once; a receiver takes only notices signed by their holder and meant
for it, and applies each once. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.errors import NotAuthorised
from prum.federation.messages import (
    Candidate,
    Category,
    RecordWithdrawn,
    Withdrawal,
    WithdrawalReason,
)
from prum.federation.security import pki
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.followup import receive
from prum.node.schema import inbox, outbox, references_sent, requests_out, searches
from prum.node.systems.accounts import SystemAccount
from prum.node.systems.contract import DeletionIn, DeletionReason, RecordIn
from prum.node.systems.service import NationalSystems
from prum.node.withdrawal import record_sent

SYSTEM = SystemAccount("dna-db", frozenset(Category))
ROUTER = pki.PeerIdentity("ROUTER", "router", 1, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    pki.issue(path, "ROUTER", role="router")
    for party in ("DE", "AT"):
        pki.issue(path, party, role="node")
    return path


def make_node(party: str, tmp_path: Path, pki_dir: Path, database_url: str) -> Node:
    return Node(
        NodeConfig(
            party=party,
            data_dir=tmp_path / party.lower(),
            database_url=database_url,
            pki_dir=pki_dir,
            router_url="https://localhost:1",
            categories={Category.DNA: CategoryPolicy()},
        )
    )


@pytest.fixture
def node(tmp_path: Path, pki_dir: Path, database_url: str) -> Any:
    node = make_node("DE", tmp_path, pki_dir, database_url)
    yield node
    node.close()


def dna_record(national_id: str, seed: int) -> RecordIn:
    loci = LocusSet("prum")
    row = (
        Generator(AlleleFrequencies.default(), loci)
        .database(1, seed=seed, trace_share=0, family_share=0)
        .codes[0]
    )
    profile = json.loads(profile_of(row, loci, identified=True).to_json())
    return RecordIn.model_validate(
        {
            "category": "dna",
            "national_id": national_id,
            "sample": {"format": "dna-profile", "content": profile},
        }
    )


def sent_as(reference: str) -> Candidate:
    return Candidate(
        rank=1,
        reference=reference,
        score=1.0,
        distance=0.0,
        false_match_rate=None,
        false_match_words="match on all loci",
        provenance="test",
    )


def notices(node: Node) -> list[dict[str, Any]]:
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.destination, outbox.c.envelope)
            .where(outbox.c.kind == "record_withdrawn")
            .order_by(outbox.c.destination)
        ).all()
    return [{"to": to, **envelope["body"]} for to, envelope in rows]


def test_an_erasure_queues_one_notice_per_party_that_received_the_reference(
    node: Node,
) -> None:
    systems = NationalSystems(node)
    kept = systems.upsert(dna_record("DNA-1", seed=1), SYSTEM).reference
    erased = systems.upsert(dna_record("DNA-2", seed=2), SYSTEM).reference
    assert kept and erased
    for party in ("AT", "NL"):
        record_sent(node, party, [sent_as(kept), sent_as(erased)])
    record_sent(node, "AT", [sent_as(erased)])  # sent twice: told once
    assert notices(node) == []

    systems.delete(
        DeletionIn(category=Category.DNA, national_id="DNA-2", reason=DeletionReason.ACQUITTAL),
        SYSTEM,
    )

    queued = notices(node)
    assert [n["to"] for n in queued] == ["AT", "NL"]
    for notice in queued:
        assert notice["holder_party"] == "DE" and notice["requesting_party"] == notice["to"]
        assert notice["withdrawn"] == [
            {"reference": erased, "category": "dna", "reason": "acquittal"}
        ]
    with node.engine.connect() as conn:
        left = conn.execute(select(references_sent.c.reference).distinct()).scalars().all()
    assert left == [kept]  # whom to tell about the other one is still known
    logged = node.audit.entries(kind="record_withdrawn")
    assert sorted(e.event.requesting_party or "" for e in logged) == ["AT", "NL"]


def test_a_replaced_record_is_withdrawn_as_rectified(node: Node) -> None:
    systems = NationalSystems(node)
    old = systems.upsert(dna_record("DNA-1", seed=1), SYSTEM).reference
    assert old is not None
    record_sent(node, "AT", [sent_as(old)])
    new = systems.upsert(dna_record("DNA-1", seed=9), SYSTEM)
    assert new.outcome.value == "replaced"
    [notice] = notices(node)
    assert notice["withdrawn"][0] == {
        "reference": old,
        "category": "dna",
        "reason": "rectification",
    }


def test_a_candidate_erased_while_its_search_ran_is_withdrawn_at_once(node: Node) -> None:
    systems = NationalSystems(node)
    reference = systems.upsert(dna_record("DNA-1", seed=1), SYSTEM).reference
    assert reference is not None
    # The matcher found it; the national system erases it before the answer is recorded.
    systems.delete(
        DeletionIn(category=Category.DNA, national_id="DNA-1", reason=DeletionReason.ERASURE),
        SYSTEM,
    )
    assert notices(node) == []  # nobody had received it yet
    record_sent(node, "AT", [sent_as(reference), sent_as("DE-D-NOT-FROM-A-SYSTEM")])
    [notice] = notices(node)
    assert notice["to"] == "AT"
    assert notice["withdrawn"] == [{"reference": reference, "category": "dna", "reason": "erasure"}]


def _stored_search(node: Node, holder: str, reference: str) -> int:
    candidate = sent_as(reference).model_dump(mode="json")
    candidate["image"] = "aW1hZ2U="
    reply = {"replies": [{"party": holder, "status": "answered", "candidates": [candidate]}]}
    with node.engine.begin() as conn:
        pk = conn.execute(
            insert(searches).values(
                message_id="00000000-0000-4000-8000-000000000001",
                request_number="AT-1",
                user="olga",
                category="dna",
                purpose="investigation",
                offence="0500 00",
                max_penalty_months=120,
                case_reference="AT-1",
                targets=[holder],
                status="answered",
                reply=reply,
                created_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key
        assert pk is not None
        conn.execute(
            insert(requests_out).values(
                message_id="00000000-0000-4000-8000-000000000002",
                search_id=pk[0],
                holder_party=holder,
                reference=reference,
                user="olga",
                facts="facts",
                offence="0500 00",
                status="released",
                reply={"decision": "released", "core_data": {"surnames": ["Brandt"]}},
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return int(pk[0])


def test_a_receiver_applies_its_notice_once_and_only_from_the_holder(
    tmp_path: Path, pki_dir: Path, database_url: str, node: Node
) -> None:
    receiver = make_node("AT", tmp_path, pki_dir, f"sqlite:///{tmp_path / 'at.sqlite'}")
    try:
        search_id = _stored_search(receiver, "DE", "DE-D-1")
        notice = RecordWithdrawn(
            holder_party="DE",
            requesting_party="AT",
            withdrawn=[
                Withdrawal(
                    reference="DE-D-1",
                    category=Category.DNA,
                    reason=WithdrawalReason.COURT_ORDER,
                )
            ],
            withdrawn_at=dt.datetime.now(dt.UTC),
        )
        body = notice.model_dump(mode="json")
        forged = receiver.signer.sign(body).to_json()  # AT signing DE's notice
        with pytest.raises(NotAuthorised):
            receive(receiver, forged, ROUTER)
        elsewhere = node.signer.sign({**body, "requesting_party": "NL"}).to_json()
        with pytest.raises(NotAuthorised):
            receive(receiver, elsewhere, ROUTER)
        raw = node.signer.sign(body).to_json()
        assert receive(receiver, raw, ROUTER) == {"accepted": notice.message_id, "duplicate": False}
        assert receive(receiver, raw, ROUTER) == {"accepted": notice.message_id, "duplicate": True}
        with receiver.engine.connect() as conn:
            reply = conn.execute(
                select(searches.c.reply).where(searches.c.id == search_id)
            ).scalar_one()
            asked = conn.execute(select(requests_out.c.status, requests_out.c.reply)).one()
            accepted = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        [candidate] = reply["replies"][0]["candidates"]
        assert candidate["image"] is None and candidate["withdrawn"]["reason"] == "court_order"
        assert "court order" in candidate["withdrawn"]["words"]
        assert asked.status == "released" and "core_data" not in asked.reply
        assert accepted == 1
        [entry] = receiver.audit.entries(kind="record_withdrawn")
        assert entry.event.requested_party == "DE" and entry.event.reference == ["DE-D-1"]
    finally:
        receiver.close()
