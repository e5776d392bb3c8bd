"""A national node's rules and step-2 workflow, called in-process (the HTTP and
multi-process paths are in test_federation.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from prum.categories.face.store import NewRecord
from prum.categories.interface import SubjectCategory
from prum.errors import (
    BadInput,
    NotAuthorised,
    NotVerified,
    PrumError,
    Replay,
    RoleRequired,
    SeparationOfDuties,
    WrongState,
)
from prum.federation.messages import (
    Category,
    CoreDataReply,
    CoreDataRequest,
    CountryReply,
    Decision,
    HoldReason,
    Probe,
    Purpose,
    RefusalReason,
    SearchRequest,
)
from prum.federation.security import pki
from prum.federation.security.signing import Signer
from prum.federation.transport import status_for
from prum.node import followup
from prum.node.config import CategoryPolicy, NodeConfig, ReleaseThreshold, SearchTypePolicy
from prum.node.core import Node
from prum.node.exchange import answer_search, check_probe, own_certificate_problem
from prum.node.schema import core_data, outbox, requests_in, searches
from prum.node.users import Role, User

ROUTER = pki.PeerIdentity("ROUTER", "router", 1, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
APPROVER = User("anna", frozenset({Role.APPROVER}))
EXAMINER = User("eric", frozenset({Role.EXAMINER}))
OFFICER = User("olga", frozenset({Role.OFFICER}))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    for party in ("ROUTER", "AT", "DE"):
        pki.issue(path, party, role="router" if party == "ROUTER" else "node")
    return path


def make_node(tmp_path: Path, pki_dir: Path, party: str = "DE", **policy: Any) -> Node:
    config = NodeConfig(
        party=party,
        data_dir=tmp_path / party.lower(),
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={Category.FACE: CategoryPolicy(**policy)},
    )
    return Node(config)


def search_envelope(pki_dir: Path, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "request_number": "AT-1",
        "requesting_party": "AT",
        "requesting_user": "olga",
        "category": "face",
        "purpose": "investigation",
        "offence": "0800 00",
        "max_penalty_months": 60,
        "case_reference": "AT/2026/123",
        "probe": {"data": base64.b64encode(b"not looked at").decode()},
    }
    body.update(fields)
    request = SearchRequest.model_validate(body)
    return Signer(pki_dir, "AT").sign(request.model_dump(mode="json")).to_json()


def reply_of(envelope: Any) -> CountryReply:
    return CountryReply.model_validate(envelope.body)


@pytest.mark.parametrize(
    ("policy", "fields", "code"),
    [
        ({"min_penalty_months": 12}, {"max_penalty_months": 6}, "penalty_below_threshold"),
        ({}, {"purpose": "missing_person"}, "purpose_not_allowed"),
        ({}, {"category": "dna"}, "category_not_offered"),
    ],
)
def test_policy_refusals_are_explicit_signed_and_logged(
    tmp_path: Path, pki_dir: Path, policy: dict[str, Any], fields: dict[str, Any], code: str
) -> None:
    node = make_node(tmp_path, pki_dir, **policy)
    reply = reply_of(answer_search(node, search_envelope(pki_dir, **fields), ROUTER))
    assert reply.status == "refused"
    assert reply.error is not None and reply.error.code == code
    [entry] = node.audit.entries(kind="search_received")
    assert entry.event.outcome == "refused"
    assert entry.event.reason_code == code


def test_missing_person_search_allowed_where_national_law_says_so(
    tmp_path: Path, pki_dir: Path
) -> None:
    node = make_node(tmp_path, pki_dir, purposes=[Purpose.INVESTIGATION, Purpose.MISSING_PERSON])
    envelope = search_envelope(pki_dir, purpose="missing_person")
    reply = reply_of(answer_search(node, envelope, ROUTER))
    # Allowed by policy: it reaches the matcher, which finds no face in these bytes.
    assert reply.status == "error"
    assert reply.error is not None and reply.error.code == "unreadable_image"


def test_daily_capacity_is_enforced_per_requesting_party(tmp_path: Path, pki_dir: Path) -> None:
    node = make_node(tmp_path, pki_dir, daily_capacity=2)
    statuses = [
        reply_of(answer_search(node, search_envelope(pki_dir), ROUTER)).status for _ in range(3)
    ]
    assert statuses[:2] == ["error", "error"]  # counted, then the probe is unreadable
    assert statuses[2] == "refused"


def test_each_search_type_has_its_own_capacity_and_unknown_types_are_refused(
    tmp_path: Path, pki_dir: Path
) -> None:
    types = {
        "TP/TP": SearchTypePolicy(daily_capacity=1, max_candidates=1),
        "LT/TP": SearchTypePolicy(daily_capacity=2, max_candidates=10),
    }
    node = make_node(tmp_path, pki_dir, search_types=types)

    def status(search_type: str | None) -> tuple[str, str | None]:
        reply = reply_of(
            answer_search(node, search_envelope(pki_dir, search_type=search_type), ROUTER)
        )
        return reply.status, reply.error.code if reply.error else None

    assert status("TP/TP") == ("error", "unreadable_image")  # counted, then unreadable
    assert status("TP/TP") == ("refused", "capacity_exhausted")
    assert status("LT/TP") == ("error", "unreadable_image")  # its own count
    assert status("LT/UL") == ("refused", "search_type_not_offered")
    assert status(None) == ("refused", "search_type_not_offered")


def test_a_batch_is_refused_by_a_matcher_that_answers_one_at_a_time(
    tmp_path: Path, pki_dir: Path
) -> None:
    node = make_node(tmp_path, pki_dir)
    batch = [{"reference": "R1", "probe": {"data": base64.b64encode(b"x").decode()}}]
    envelope = search_envelope(pki_dir, mode="initial_bulk", probe=None, batch=batch, offence=None)
    reply = reply_of(answer_search(node, envelope, ROUTER))
    assert reply.status == "refused"
    assert reply.error is not None and reply.error.code == "batch_not_supported"


def test_search_must_come_through_the_router_signed_by_its_requester(
    tmp_path: Path, pki_dir: Path
) -> None:
    node = make_node(tmp_path, pki_dir)
    direct = pki.PeerIdentity("AT", "node", 2, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(NotAuthorised, match="through the router"):
        answer_search(node, search_envelope(pki_dir), direct)
    forged = search_envelope(pki_dir, requesting_party="DE")  # signed by AT, claims DE
    with pytest.raises(NotAuthorised, match="signed by AT"):
        answer_search(node, forged, ROUTER)


def test_replayed_search_is_refused(tmp_path: Path, pki_dir: Path) -> None:
    node = make_node(tmp_path, pki_dir)
    envelope = search_envelope(pki_dir)
    answer_search(node, envelope, ROUTER)
    with pytest.raises(Replay):
        answer_search(node, envelope, ROUTER)


@pytest.mark.realdata
def test_answer_carries_candidates_within_exposure_rules(
    tmp_path: Path, pki_dir: Path, embedded: list[Any]
) -> None:
    # No release threshold: this is about exposure and the cap (test_release_threshold.py
    # has the default threshold on the same photos).
    node = make_node(tmp_path, pki_dir, max_candidates=3, release=ReleaseThreshold())
    gallery = node.matcher(Category.FACE).gallery  # type: ignore[attr-defined]
    probe, *rest = embedded
    gallery.add_records(
        [
            NewRecord(
                subject_category=SubjectCategory.VICTIM if n % 2 else SubjectCategory.CONVICTED,
                provenance="test",
                model_id=r.model_id,
                template=r.vector,
                person_key=r.item.identity,
                image=r.image,
            )
            for n, r in enumerate(rest[:12])
        ]
    )
    exposable = len(rest[:12][::2])  # the convicted ones; victims are never exposed
    envelope = search_envelope(
        pki_dir, probe={"data": base64.b64encode(probe.image).decode()}, max_candidates=50
    )
    reply = reply_of(answer_search(node, envelope, ROUTER))
    assert reply.status == "answered"
    # The national cap (3) beats the requester's 50, whatever the size of the sample set.
    assert len(reply.candidates) == min(3, exposable)
    assert all(c.image for c in reply.candidates)
    exposed = {gallery.store.get(c.reference).subject_category for c in reply.candidates}
    assert exposed == {SubjectCategory.CONVICTED}


# --- step 2 ---------------------------------------------------------------------------------


def requester_with_answer(
    tmp_path: Path, pki_dir: Path, category: str = "face"
) -> tuple[Node, int]:
    """AT with a stored search whose answer has one DE candidate."""
    node = make_node(tmp_path, pki_dir, party="AT")
    from sqlalchemy import insert

    reply = {
        "replies": [
            {
                "party": "DE",
                "status": "answered",
                "candidates": [{"reference": "DE-F-0001", "rank": 1}],
            }
        ]
    }
    with node.engine.begin() as conn:
        pk = conn.execute(
            insert(searches).values(
                message_id="5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e6f",
                request_number="AT-1",
                user="olga",
                category=category,
                purpose="investigation",
                offence="0800 00",
                max_penalty_months=60,
                case_reference="AT/2026/123",
                targets=["all"],
                status="answered",
                reply=reply,
                created_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key
    assert pk is not None
    return node, int(pk[0])


def confirm(node: Node, sid: int) -> int:
    return followup.verify_candidate(
        node,
        EXAMINER,
        sid,
        party="DE",
        reference="DE-F-0001",
        decision=Decision.CONFIRMED,
        justification="Same scar above the left eyebrow, same ears.",
    )


def request_core(node: Node, sid: int) -> int:
    return followup.request_core_data(
        node, OFFICER, sid, party="DE", reference="DE-F-0001", facts=FACTS
    )


FACTS = "Armed robbery of a jewellery shop in Vienna on 3 November; CCTV still of the suspect."


def test_core_data_refused_until_match_confirmed(tmp_path: Path, pki_dir: Path) -> None:
    node, sid = requester_with_answer(tmp_path, pki_dir)
    with pytest.raises(NotVerified, match="not verified"):
        followup.request_core_data(
            node, OFFICER, sid, party="DE", reference="DE-F-0001", facts=FACTS
        )
    followup.verify_candidate(
        node,
        EXAMINER,
        sid,
        party="DE",
        reference="DE-F-0001",
        decision=Decision.INCONCLUSIVE,
        justification="Resolution too low to compare ears.",
    )
    with pytest.raises(NotVerified, match="inconclusive"):
        followup.request_core_data(
            node, OFFICER, sid, party="DE", reference="DE-F-0001", facts=FACTS
        )
    confirm(node, sid)
    request_core(node, sid)
    with node.engine.connect() as conn:
        [queued] = conn.execute(outbox.select()).all()
    assert queued.destination == "DE" and queued.kind == "core_data_request"
    body = CoreDataRequest.model_validate(queued.envelope["body"])
    assert body.verified_by == "eric" and body.facts == FACTS
    with pytest.raises(WrongState):
        followup.request_core_data(
            node, OFFICER, sid, party="DE", reference="DE-F-0001", facts=FACTS
        )


def test_vehicle_answers_have_nothing_to_verify(tmp_path: Path, pki_dir: Path) -> None:
    node, sid = requester_with_answer(tmp_path, pki_dir, category="vehicle")
    with pytest.raises(WrongState, match="at once"):
        confirm(node, sid)


def test_only_examiners_verify(tmp_path: Path, pki_dir: Path) -> None:
    node, sid = requester_with_answer(tmp_path, pki_dir)
    with pytest.raises(RoleRequired):
        followup.verify_candidate(
            node,
            OFFICER,
            sid,
            party="DE",
            reference="DE-F-0001",
            decision=Decision.CONFIRMED,
            justification="I think it is him, really.",
        )
    with pytest.raises(BadInput):
        followup.verify_candidate(
            node,
            EXAMINER,
            sid,
            party="DE",
            reference="DE-F-0001",
            decision=Decision.CONFIRMED,
            justification="yes",
        )


def test_a_missing_person_match_gets_core_data_without_an_offence(
    tmp_path: Path, pki_dir: Path
) -> None:
    requester, sid = requester_with_answer(tmp_path, pki_dir)
    with requester.engine.begin() as conn:
        conn.execute(
            searches.update()
            .where(searches.c.id == sid)
            .values(purpose="missing_person", offence="", max_penalty_months=0)
        )
    confirm(requester, sid)
    request_core(requester, sid)
    with requester.engine.connect() as conn:
        [queued] = conn.execute(outbox.select()).all()
    body = queued.envelope["body"]
    assert body["purpose"] == "missing_person" and body["offence"] is None
    assert body["max_penalty_months"] is None
    # The holder takes the same envelope, and shows the purpose to its approver.
    de = holder(tmp_path, pki_dir)
    assert followup.receive(de, json.dumps(queued.envelope).encode(), ROUTER)["duplicate"] is False
    followup.decide(de, APPROVER, 1, action="release")


def test_a_criminal_core_data_request_reads_as_before(tmp_path: Path, pki_dir: Path) -> None:
    requester, sid = requester_with_answer(tmp_path, pki_dir)
    confirm(requester, sid)
    request_core(requester, sid)
    with requester.engine.connect() as conn:
        [queued] = conn.execute(outbox.select()).all()
    body = queued.envelope["body"]
    assert "purpose" not in body and body["offence"] == "0800 00"
    assert body["max_penalty_months"] == 60


def incoming_request(pki_dir: Path, *, requester: str = "AT", verified_by: str = "eric") -> bytes:
    request = CoreDataRequest(
        requesting_party=requester,
        holder_party="DE",
        reference="DE-F-0001",
        category=Category.FACE,
        search_message_id="5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e6f",
        requesting_user="olga",
        verified_by=verified_by,
        facts=FACTS,
        offence="0800 00",
        max_penalty_months=60,
        case_reference="AT/2026/123",
    )
    return Signer(pki_dir, requester).sign(request.model_dump(mode="json")).to_json()


def holder(tmp_path: Path, pki_dir: Path) -> Node:
    node = make_node(tmp_path, pki_dir, party="DE")
    with node.engine.begin() as conn:
        conn.execute(
            core_data.insert().values(
                reference="DE-F-0001",
                data={"surnames": ["Muster"], "first_names": ["Max"], "nationalities": ["DE"]},
            )
        )
    return node


def test_redelivered_request_is_accepted_once(tmp_path: Path, pki_dir: Path) -> None:
    node = holder(tmp_path, pki_dir)
    envelope = incoming_request(pki_dir)
    assert followup.receive(node, envelope, ROUTER)["duplicate"] is False
    assert followup.receive(node, envelope, ROUTER)["duplicate"] is True
    with node.engine.connect() as conn:
        assert len(conn.execute(requests_in.select()).all()) == 1


def test_release_queues_signed_core_data_for_the_requester(tmp_path: Path, pki_dir: Path) -> None:
    node = holder(tmp_path, pki_dir)
    followup.receive(node, incoming_request(pki_dir), ROUTER)
    with pytest.raises(RoleRequired):
        followup.decide(node, OFFICER, 1, action="release")
    followup.decide(node, APPROVER, 1, action="release")
    with node.engine.connect() as conn:
        [queued] = conn.execute(outbox.select()).all()
    reply = CoreDataReply.model_validate(queued.envelope["body"])
    assert queued.destination == "AT" and reply.decision == "released"
    assert reply.core_data is not None and reply.core_data.surnames == ["Muster"]
    with pytest.raises(WrongState, match="already decided"):
        followup.decide(node, APPROVER, 1, action="refuse", reason=RefusalReason.DISPROPORTIONATE)


def test_refusal_needs_a_reason(tmp_path: Path, pki_dir: Path) -> None:
    node = holder(tmp_path, pki_dir)
    followup.receive(node, incoming_request(pki_dir), ROUTER)
    with pytest.raises(BadInput, match="reason"):
        followup.decide(node, APPROVER, 1, action="refuse")
    with pytest.raises(BadInput, match="explanation"):
        followup.decide(node, APPROVER, 1, action="refuse", reason=RefusalReason.NATIONAL_LAW_BAR)
    with pytest.raises(BadInput, match="a hold, not a refusal"):
        followup.decide(
            node,
            APPROVER,
            1,
            action="refuse",
            reason=RefusalReason.JUDICIAL_AUTHORISATION_PENDING,
            explanation="The judge has not ruled yet.",
        )
    assert followup.decide(
        node,
        APPROVER,
        1,
        action="refuse",
        reason=RefusalReason.NATIONAL_LAW_BAR,
        explanation="Our law bars release of juvenile records.",
    )
    with node.engine.connect() as conn:
        [queued] = conn.execute(outbox.select()).all()
    reply = CoreDataReply.model_validate(queued.envelope["body"])
    assert reply.explanation == "Our law bars release of juvenile records."


def test_verifier_cannot_release(tmp_path: Path, pki_dir: Path) -> None:
    node = holder(tmp_path, pki_dir)
    # A DE search of DE data: the examiner who confirmed is also an approver.
    pki_signed = incoming_request(pki_dir, requester="DE", verified_by="anna")
    pki_signed_body = json.loads(pki_signed)["body"]
    pki_signed_body["holder_party"] = "DE"
    envelope = Signer(pki_dir, "DE").sign(pki_signed_body).to_json()
    followup.receive(node, envelope, ROUTER)
    with pytest.raises(SeparationOfDuties, match="anna verified this match"):
        followup.decide(node, APPROVER, 1, action="release")


def test_judicial_hold_pauses_the_48_hour_clock(tmp_path: Path, pki_dir: Path) -> None:
    node = holder(tmp_path, pki_dir)
    followup.receive(node, incoming_request(pki_dir), ROUTER)

    def row() -> Any:
        with node.engine.connect() as conn:
            return conn.execute(requests_in.select()).first()

    received = row().received_at.replace(tzinfo=dt.UTC)
    assert followup.deadline_of(node, row()) == received + dt.timedelta(hours=48)
    with pytest.raises(BadInput, match="names its reason"):
        followup.decide(node, APPROVER, 1, action="hold")
    judge = HoldReason.JUDICIAL_AUTHORISATION
    followup.decide(node, APPROVER, 1, action="hold", hold_reason=judge)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)
    assert followup.deadline_of(node, row(), later) > received + dt.timedelta(hours=52)
    with pytest.raises(WrongState):
        followup.decide(node, APPROVER, 1, action="hold", hold_reason=judge)
    followup.decide(node, APPROVER, 1, action="resume")
    assert row().paused_seconds >= 0
    assert followup.decide(node, APPROVER, 1, action="release")["status"] == "released"


def test_reply_from_the_wrong_party_is_refused(tmp_path: Path, pki_dir: Path) -> None:
    node, _ = requester_with_answer(tmp_path, pki_dir)
    reply = CoreDataReply(
        in_reply_to="5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e6f",
        requesting_party="AT",
        holder_party="DE",
        reference="DE-F-0001",
        decision="refused",
        reason=RefusalReason.DISPROPORTIONATE,
    )
    # Signed by AT itself, claiming to be DE's decision.
    envelope = Signer(pki_dir, "AT").sign(reply.model_dump(mode="json")).to_json()
    with pytest.raises(NotAuthorised):
        followup.receive(node, envelope, ROUTER)


def test_a_message_held_back_for_hours_is_signed_again_with_the_same_id(
    tmp_path: Path, pki_dir: Path
) -> None:
    node, sid = requester_with_answer(tmp_path, pki_dir)
    confirm(node, sid)
    request_core(node, sid)
    with node.engine.begin() as conn:
        row = conn.execute(outbox.select()).first()
        assert row is not None
        assert followup._fresh(node, row) == row.envelope  # young: sent as it is
        body = dict(row.envelope["body"], issued_at="2026-01-01T00:00:00Z")
        old = Signer(pki_dir, "AT").sign(body).to_dict()
        conn.execute(outbox.update().values(envelope=old))
        row = conn.execute(outbox.select()).first()
    fresh = followup._fresh(node, row)
    assert fresh["body"]["message_id"] == old["body"]["message_id"]
    assert fresh["body"]["issued_at"] != old["body"]["issued_at"]
    verified = node.verifier.verify(fresh, expected_signer="AT")
    assert verified.body["facts"] == FACTS


@pytest.mark.parametrize(
    ("category", "kind", "data"),
    [
        (Category.DNA, "dna_profile", b'{"D3S1358": [15, 16, 17]}'),
        (Category.DNA, "dna_profile", b"not a profile"),
        (Category.FINGER, "ansi_nist", b"1.001:999\x1d1.002:0502"),
        (Category.FINGER, "image", b"\x89PNG\r\n\x1a\n garbage"),
    ],
)
def test_a_probe_that_cannot_work_is_refused_before_it_travels(
    tmp_path: Path, pki_dir: Path, category: Category, kind: Any, data: bytes
) -> None:
    """The national API refuses it as the workbench does: nothing signed, nothing stored."""
    node = make_node(tmp_path, pki_dir, party="AT")
    probe = Probe(format=kind, data=base64.b64encode(data))
    with pytest.raises(PrumError) as refused:
        check_probe(node, category, probe)
    assert refused.value.message and 400 <= status_for(refused.value) < 500


def test_a_node_says_when_its_own_certificate_is_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router refuses a revoked node in the TLS handshake, which the node sees only as
    a closed connection: its message names the cause."""
    from prum.federation.security import signing

    monkeypatch.setattr(signing, "CRL_RECHECK_SECONDS", 0.0)
    own = tmp_path / "pki"
    pki.init_ca(own)
    pki.issue(own, "AT", role="node")
    node = make_node(tmp_path, own, party="AT")
    assert own_certificate_problem(node) == ""
    pki.revoke(own, "AT")
    assert "certificate" in own_certificate_problem(node)
    assert "is revoked" in own_certificate_problem(node)
    assert "prum pki issue AT" in own_certificate_problem(node)


def test_capacity_cannot_be_oversold_by_concurrent_searches(
    tmp_path: Path, pki_dir: Path, database_url: str
) -> None:
    """50 searches at once against a capacity of 10: exactly 10 reserve a slot."""
    import threading

    from prum.errors import CapacityExhausted
    from prum.node.exchange import reserve_capacity

    config = NodeConfig(
        party="DE",
        data_dir=tmp_path / "de",
        database_url=database_url,
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={Category.FACE: CategoryPolicy()},
    )
    node = Node(config)
    request = SearchRequest.model_validate(
        {
            "request_number": "AT-1",
            "requesting_party": "AT",
            "requesting_user": "olga",
            "category": "face",
            "purpose": "investigation",
            "offence": "0800 00",
            "max_penalty_months": 60,
            "case_reference": "AT-CASE-1",
            "probe": {"format": "image", "data": base64.b64encode(b"x").decode()},
        }
    )
    start = threading.Barrier(50)
    outcomes: list[str] = []

    def search() -> None:
        start.wait()
        try:
            reserve_capacity(node, request, key="face", daily=10)
            outcomes.append("answered")
        except CapacityExhausted:
            outcomes.append("refused")

    threads = [threading.Thread(target=search) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    node.close()
    assert outcomes.count("answered") == 10 and outcomes.count("refused") == 40
