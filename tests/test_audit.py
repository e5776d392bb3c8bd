"""The audit log: a hash chain anyone can verify, on SQLite and on PostgreSQL.

Tampering is done the way an insider would: raw SQL on the tables, behind the API.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

import prum.audit.log as audit_log
from prum.audit.chain import signed_data
from prum.audit.cli import audit_app
from prum.audit.events import AuditEvent, EventKind, format_time, parse_event
from prum.audit.log import GENESIS, AuditLog, ProblemKind, chains
from prum.audit.stats import Statistics
from prum.audit.store import MIGRATIONS
from prum.db import make_engine
from prum.errors import AuditTampered, InvalidAuditEvent, InvalidAuditSetup, StorageError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# --- databases ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit_postgres(postgres_server: str) -> Iterator[str]:
    """One PostgreSQL database for this module (CREATE DATABASE costs ~0.5 s a test)."""
    import psycopg

    admin = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    name = f"prum_test_audit_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both back ends, as in conftest; the PostgreSQL log is emptied for each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    url = str(request.getfixturevalue("audit_postgres"))
    AuditLog(url, party="AT").close()  # migrated (the first time, from nothing)
    reset(url)
    return url


def reset(url: str) -> None:
    """An empty log: what a fresh database holds after migration."""
    sql(url, "DELETE FROM audit_entries")
    sql(url, "DELETE FROM audit_checkpoints")
    sql(url, "DELETE FROM audit_statistics")
    sql(url, "DELETE FROM audit_head WHERE chain <> 'main'")
    sql(url, "UPDATE audit_head SET seq = 0, hash = :g", g=GENESIS)


# --- a tiny Ed25519 implementation of the signer and verifier protocols ---------------


@dataclass
class Ed25519Signer:
    party: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@dataclass
class Ed25519Verifier:
    signers: dict[str, Ed25519Signer]

    def verify(self, data: bytes, signature: bytes, party: str) -> bool:
        signer = self.signers.get(party)
        if signer is None:
            return False
        try:
            signer.key.public_key().verify(signature, data)
        except InvalidSignature:
            return False
        return True


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer("AT")


@pytest.fixture
def verifier(signer: Ed25519Signer) -> Ed25519Verifier:
    return Ed25519Verifier({"AT": signer})


@pytest.fixture
def log(database_url: str, signer: Ed25519Signer) -> Iterator[AuditLog]:
    audit = AuditLog(database_url, party="AT", signer=signer, checkpoint_every=5)
    yield audit
    audit.close()


def event(n: int = 0, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "at": T0 + dt.timedelta(minutes=n),
        "kind": "search_sent",
        "requesting_party": "AT",
        "requested_party": "DE",
        "category": "face",
        "purpose": "investigation",
        "offence": "1500 00",
        "max_penalty_months": 36,
        "case_reference": f"AT/2026/{n:04d}",
        "user": "u-4711",
        "request_number": f"R-{n}",
    }
    values.update(fields)
    return AuditEvent(**values)


def fill(log: AuditLog, count: int) -> None:
    for n in range(count):
        log.append(event(n))


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def problem_of(log: AuditLog, verifier: Ed25519Verifier | None = None) -> tuple[ProblemKind, int]:
    report = log.verify(verifier)
    assert not report.ok and report.problem is not None, "tampering went unnoticed"
    return report.problem.kind, report.problem.seq


# --- appending and verifying -----------------------------------------------------------


def test_entries_are_numbered_without_gaps_and_verify(
    log: AuditLog, verifier: Ed25519Verifier
) -> None:
    seqs = [log.append(event(n)) for n in range(12)]
    assert seqs == list(range(1, 13))
    report = log.verify(verifier)
    assert report.ok and report.problem is None
    assert (report.entries_checked, report.checkpoints_checked) == (12, 2)  # at 5 and 10
    assert report.signatures_checked and report.last_seq == 12


def test_the_chain_is_sha256_of_previous_hash_and_canonical_body(
    log: AuditLog, database_url: str
) -> None:
    fill(log, 3)
    rows = sql(database_url, "SELECT seq, body, prev_hash, hash FROM audit_entries ORDER BY seq")
    prev = GENESIS
    for seq, body, prev_hash, digest in rows:
        assert prev_hash == prev
        assert digest == hashlib.sha256((prev_hash + body).encode()).hexdigest()
        parsed = json.loads(body)
        assert parsed["seq"] == seq and set(parsed) == {"event", "recorded_at", "seq"}
        assert body == json.dumps(parsed, sort_keys=True, separators=(",", ":"))
        prev = digest
    assert log.head() == (3, prev)


def test_checkpoint_signs_the_head_on_demand(log: AuditLog, verifier: Ed25519Verifier) -> None:
    assert log.checkpoint() is None  # empty log: nothing to sign
    fill(log, 3)
    made = log.checkpoint()
    assert made is not None and made.seq == 3 and made.signature is not None
    assert log.checkpoint() == made  # idempotent at the same head
    assert log.verify(verifier).checkpoints_checked == 1


def test_entries_filter_for_the_log_viewer(log: AuditLog) -> None:
    log.append(event(1))
    log.append(event(2, kind="search_answered", outcome="no_hit", requested_party="FR"))
    log.append(event(3, kind="refused", category="dna", reason_code="penalty_below_threshold"))
    assert [e.seq for e in log.entries()] == [3, 2, 1]
    assert [e.seq for e in log.entries(kind="search_answered")] == [2]
    assert [e.seq for e in log.entries(party="FR")] == [2]
    assert [e.seq for e in log.entries(category="dna")] == [3]
    assert [e.seq for e in log.entries(outcome="no_hit")] == [2]
    assert [e.seq for e in log.entries(case_reference="AT/2026/0001")] == [1]
    assert [e.seq for e in log.entries(limit=1, offset=1)] == [2]
    assert log.entries(until=T0) == []
    assert len(log.entries(since=T0)) == 3
    assert log.entries(kind="search_answered")[0].event.outcome == "no_hit"
    with pytest.raises(InvalidAuditSetup):
        log.entries(limit=0)


def test_a_signer_for_another_party_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidAuditSetup, match="signs for DE"):
        AuditLog(f"sqlite:///{tmp_path / 'a.sqlite'}", party="AT", signer=Ed25519Signer("DE"))


# --- appending in batches ----------------------------------------------------------------


def test_a_batch_gets_consecutive_seqs_and_verifies_like_single_appends(
    log: AuditLog, verifier: Ed25519Verifier, database_url: str
) -> None:
    log.append(event(0))
    assert log.append_many([event(n) for n in range(1, 4)]) == [2, 3, 4]
    assert log.append_many([]) == []
    log.append(event(4))
    report = log.verify(verifier)
    assert report.ok and report.entries_checked == 5 and report.last_seq == 5
    rows = sql(database_url, "SELECT body FROM audit_entries ORDER BY seq")
    assert [json.loads(body)["event"]["request_number"] for (body,) in rows] == [
        f"R-{n}" for n in range(5)
    ]


def test_a_batch_across_a_checkpoint_boundary_signs_the_checkpoint_at_its_seq(
    log: AuditLog, verifier: Ed25519Verifier
) -> None:
    fill(log, 3)
    assert log.append_many([event(n) for n in range(3, 14)]) == list(range(4, 15))
    checkpoints = log.checkpoints()
    assert [c.seq for c in checkpoints] == [10, 5]  # checkpoint_every=5
    hashes = {e.seq: e.hash for e in log.entries()}
    assert all(c.hash == hashes[c.seq] for c in checkpoints)
    report = log.verify(verifier)
    assert report.ok and report.checkpoints_checked == 2


@pytest.fixture
def counted(database_url: str) -> Iterator[AuditLog]:
    """A log with its statistics in the same database (as the router keeps them)."""
    stats = Statistics(database_url)
    audit = AuditLog(database_url, party="AT", statistics=stats)
    yield audit
    audit.close()
    stats.close()


def test_an_invalid_event_in_a_batch_writes_nothing(counted: AuditLog) -> None:
    assert counted.statistics is not None
    counted.append(event(0))
    before = (counted.head(), counted.statistics.summary())
    sneaky = AuditEvent.model_construct(at=T0, kind=EventKind.LOGIN, detail="x" * 10_000)
    with pytest.raises(InvalidAuditEvent):
        counted.append_many([event(1), sneaky, event(2)])
    assert (counted.head(), counted.statistics.summary()) == before
    assert [e.seq for e in counted.entries()] == [1]


def test_a_batch_and_its_statistics_commit_together_or_not_at_all(
    counted: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert counted.statistics is not None
    counted.append_many([event(0), event(1)])
    before = (counted.head(), counted.statistics.summary())
    assert before[1]["totals"]["AT"]["face"]["searches"] == 2

    def broken(*_: Any) -> None:
        raise OperationalError("UPDATE audit_statistics", {}, Exception("disk I/O error"))

    monkeypatch.setattr(counted.statistics, "record_in", broken)
    with pytest.raises(StorageError):
        counted.append_many([event(2), event(3)])
    monkeypatch.undo()
    assert (counted.head(), counted.statistics.summary()) == before
    assert counted.verify().ok


def test_concurrent_batches_and_single_appends_keep_a_gapless_chain(
    log: AuditLog, verifier: Ed25519Verifier
) -> None:
    batches: list[list[int]] = []
    singles: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def batcher(w: int) -> None:
        try:
            for b in range(10):
                seqs = log.append_many([event(n, request_number=f"B{w}-{b}-{n}") for n in range(7)])
                with lock:
                    batches.append(seqs)
        except BaseException as exc:  # surfaced below with the thread's failure
            errors.append(exc)

    def single(w: int) -> None:
        try:
            for n in range(30):
                seq = log.append(event(n, request_number=f"S{w}-{n}"))
                with lock:
                    singles.append(seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=batcher, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=single, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(singles + [seq for seqs in batches for seq in seqs]) == list(range(1, 201))
    for seqs in batches:  # a batch is never interleaved with another writer's entries
        assert seqs == list(range(seqs[0], seqs[0] + 7))
    report = log.verify(verifier)
    assert report.ok and report.entries_checked == 200 and report.checkpoints_checked == 40


# --- tampering, one kind at a time -----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("body", None),  # the hashed content itself
        ("case_reference", "AT/2026/9999"),  # a filter copy of a body field
        ("hash", "f" * 64),  # (the property test below edits every column)
    ],
)
def test_editing_any_field_is_reported_as_edited_at_its_seq(
    log: AuditLog, database_url: str, column: str, value: str | None
) -> None:
    fill(log, 9)
    if value is None:
        [(body,)] = sql(database_url, "SELECT body FROM audit_entries WHERE seq = 6")
        value = body.replace("AT/2026/0005", "AT/2026/0006")
        assert value != body
    sql(database_url, f"UPDATE audit_entries SET {column} = :v WHERE seq = 6", v=value)
    assert problem_of(log) == (ProblemKind.EDITED, 6)


def test_deleting_an_entry_in_the_middle_is_reported_as_removed(
    log: AuditLog, database_url: str
) -> None:
    fill(log, 9)
    sql(database_url, "DELETE FROM audit_entries WHERE seq = 4")
    assert problem_of(log) == (ProblemKind.REMOVED, 4)


def test_deleting_the_tail_is_reported_as_truncated(log: AuditLog, database_url: str) -> None:
    fill(log, 12)
    sql(database_url, "DELETE FROM audit_entries WHERE seq >= 11")
    assert problem_of(log) == (ProblemKind.TRUNCATED, 11)


def test_deleting_the_tail_and_rewinding_the_head_is_caught_by_the_checkpoint(
    log: AuditLog, database_url: str
) -> None:
    fill(log, 12)  # automatic checkpoints at 5 and 10
    sql(database_url, "DELETE FROM audit_entries WHERE seq >= 8")
    sql(
        database_url,
        "UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM audit_entries WHERE seq = 7)",
    )
    assert problem_of(log) == (ProblemKind.TRUNCATED, 8)


def test_an_append_after_a_deleted_tail_leaves_a_gap(log: AuditLog, database_url: str) -> None:
    fill(log, 4)
    sql(database_url, "DELETE FROM audit_entries WHERE seq = 4")
    assert log.append(event(99)) == 5  # the head remembers: the gap stays visible
    assert problem_of(log) == (ProblemKind.REMOVED, 4)


def test_swapping_two_entries_is_reported_as_reordered(log: AuditLog, database_url: str) -> None:
    fill(log, 9)
    columns = "recorded_at, kind, requesting_party, requested_party, category, outcome, "
    columns += "case_reference, body, prev_hash, hash"
    rows = {
        r[0]: r[1:]
        for r in sql(database_url, f"SELECT seq, {columns} FROM audit_entries WHERE seq IN (3, 7)")
    }
    names = [c.strip() for c in columns.split(",")]
    for seq, other in ((3, 7), (7, 3)):
        assignments = ", ".join(f"{n} = :{n}" for n in names)
        values = dict(zip(names, rows[other], strict=True))
        sql(database_url, f"UPDATE audit_entries SET {assignments} WHERE seq = {seq}", **values)
    assert problem_of(log) == (ProblemKind.REORDERED, 3)


def test_editing_a_checkpoint_signature_is_reported_as_bad_checkpoint(
    log: AuditLog, database_url: str, verifier: Ed25519Verifier
) -> None:
    fill(log, 12)
    [(signature,)] = sql(database_url, "SELECT signature FROM audit_checkpoints WHERE seq = 10")
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]
    sql(database_url, "UPDATE audit_checkpoints SET signature = :s WHERE seq = 10", s=forged)
    assert log.verify().ok  # without a verifier only hashes are checked ...
    assert problem_of(log, verifier) == (ProblemKind.BAD_CHECKPOINT, 10)  # ... with one, not


def test_editing_a_checkpoint_hash_is_caught_even_without_a_verifier(
    log: AuditLog, database_url: str
) -> None:
    fill(log, 12)
    sql(database_url, "UPDATE audit_checkpoints SET hash = :h WHERE seq = 5", h="0" * 64)
    assert problem_of(log) == (ProblemKind.BAD_CHECKPOINT, 5)


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(
    log: AuditLog, database_url: str
) -> None:
    """An insider edits entry 2 and recomputes every hash after it; the signature holds."""
    fill(log, 7)
    rows = sql(database_url, "SELECT seq, body FROM audit_entries ORDER BY seq")
    prev = GENESIS
    for seq, body in rows:
        if seq == 2:
            body = body.replace("AT/2026/0001", "AT/2026/0002")
        digest = hashlib.sha256((prev + body).encode()).hexdigest()
        sql(
            database_url,
            "UPDATE audit_entries SET body = :b, prev_hash = :p, hash = :h, case_reference = "
            "CASE WHEN seq = 2 THEN 'AT/2026/0002' ELSE case_reference END WHERE seq = :s",
            b=body,
            p=prev,
            h=digest,
            s=seq,
        )
        prev = digest
    assert problem_of(log) == (ProblemKind.BAD_CHECKPOINT, 5)


def test_rewriting_the_last_entry_with_a_fresh_hash_is_reported_as_edited(
    log: AuditLog, database_url: str
) -> None:
    fill(log, 7)
    [(body, prev)] = sql(database_url, "SELECT body, prev_hash FROM audit_entries WHERE seq = 7")
    body = body.replace('"search_sent"', '"login"')
    digest = hashlib.sha256((prev + body).encode()).hexdigest()
    sql(
        database_url,
        "UPDATE audit_entries SET body = :b, kind = 'login', hash = :h WHERE seq = 7",
        b=body,
        h=digest,
    )
    assert problem_of(log) == (ProblemKind.EDITED, 7)


def test_an_unsigned_log_fails_verification_with_a_verifier(
    database_url: str, verifier: Ed25519Verifier
) -> None:
    log = AuditLog(database_url, party="AT", checkpoint_every=2)
    fill(log, 3)
    assert log.verify().ok
    assert problem_of(log, verifier) == (ProblemKind.BAD_CHECKPOINT, 2)


# --- retention -------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """A settable 'now' for the log: clock[0]."""
    now = [T0]
    monkeypatch.setattr(audit_log, "utcnow", lambda: now[0])
    return now


def fill_by_day(log: AuditLog, clock: list[dt.datetime], days: int, per_day: int) -> None:
    for day in range(days):
        clock[0] = T0 + dt.timedelta(days=day)
        for n in range(per_day):
            log.append(event(n, at=clock[0]))


def test_purge_deletes_old_entries_and_stays_verifiable(
    log: AuditLog, clock: list[dt.datetime], verifier: Ed25519Verifier
) -> None:
    fill_by_day(log, clock, days=4, per_day=4)  # entries 1-16; day d holds 4d+1 .. 4d+4
    clock[0] = T0 + dt.timedelta(days=10)
    assert log.purge(T0 + dt.timedelta(days=2), verifier=verifier) == 8
    report = log.verify(verifier)
    assert report.ok, report.problem
    assert report.anchor_seq == 8 and report.last_seq == 17 and report.entries_checked == 9
    [purge_entry] = log.entries(kind="purge")
    assert purge_entry.seq == 17 and "8 entries" in (purge_entry.event.detail or "")
    assert [e.seq for e in log.entries(limit=1000)][-1] == 9
    anchor = log.checkpoints()[-1]
    assert (anchor.kind, anchor.seq, anchor.signature is not None) == ("anchor", 8, True)
    assert log.purge(T0 + dt.timedelta(days=2)) == 0  # nothing left that old
    fill(log, 5)
    assert log.verify(verifier).ok


def test_purge_twice_moves_the_anchor(log: AuditLog, clock: list[dt.datetime]) -> None:
    fill_by_day(log, clock, days=3, per_day=2)
    assert log.purge(T0 + dt.timedelta(days=1)) == 2
    assert log.purge(T0 + dt.timedelta(days=2)) == 2
    report = log.verify()
    assert report.ok and report.anchor_seq == 4  # 1-2 (day 0), then 3-4 (day 1)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE audit_entries SET kind = 'login' WHERE seq = 12", (ProblemKind.EDITED, 12)),
        ("DELETE FROM audit_entries WHERE seq = 9", (ProblemKind.REMOVED, 9)),
        ("DELETE FROM audit_entries WHERE seq >= 15", (ProblemKind.TRUNCATED, 15)),
        ("DELETE FROM audit_entries WHERE seq > 8", (ProblemKind.TRUNCATED, 9)),
        (
            "UPDATE audit_checkpoints SET hash = :zeros WHERE kind = 'anchor'",
            (ProblemKind.BAD_CHECKPOINT, 8),
        ),
        ("DELETE FROM audit_checkpoints WHERE kind = 'anchor'", (ProblemKind.REMOVED, 1)),
    ],
)
def test_tampering_after_a_purge_is_still_detected(
    log: AuditLog,
    clock: list[dt.datetime],
    database_url: str,
    verifier: Ed25519Verifier,
    tamper: str,
    expected: tuple[ProblemKind, int],
) -> None:
    fill_by_day(log, clock, days=4, per_day=4)
    clock[0] = T0 + dt.timedelta(days=10)
    log.purge(T0 + dt.timedelta(days=2))
    log.checkpoint()  # at the purge entry, 17
    params = {"zeros": "0" * 64} if ":zeros" in tamper else {}
    sql(database_url, tamper, **params)
    assert problem_of(log, verifier) == expected


def test_a_tampered_log_is_not_purged(
    log: AuditLog, clock: list[dt.datetime], database_url: str
) -> None:
    fill_by_day(log, clock, days=3, per_day=2)
    sql(database_url, "UPDATE audit_entries SET kind = 'login' WHERE seq = 2")
    with pytest.raises(AuditTampered, match="refusing to purge"):
        log.purge(T0 + dt.timedelta(days=2))
    assert log.head()[0] == 6


# --- concurrency -----------------------------------------------------------------------


def test_concurrent_appends_from_four_threads_keep_a_gapless_chain(
    log: AuditLog, verifier: Ed25519Verifier
) -> None:
    seqs: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for n in range(50):
                seq = log.append(event(n, request_number=f"W{w}-{n}"))
                with lock:
                    seqs.append(seq)
        except BaseException as exc:  # surfaced below with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(seqs) == list(range(1, 201))
    report = log.verify(verifier)
    assert report.ok and report.entries_checked == 200 and report.checkpoints_checked == 40


_CHILD = """
import datetime as dt, pathlib, sys, time
from prum.audit.log import AuditLog, AuditEvent
url, count, name, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3], pathlib.Path(sys.argv[4])
log = AuditLog(url, party="AT", checkpoint_every=7)
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():  # start together, so that the appends overlap
    time.sleep(0.005)
for n in range(count):
    log.append(AuditEvent(at=dt.datetime.now(dt.UTC), kind="login", user=f"p{name}-{n}"))
"""


def test_concurrent_appends_from_two_processes_keep_a_gapless_chain(
    database_url: str, tmp_path: Path
) -> None:
    AuditLog(database_url, party="AT").close()  # migrate once, as a node's start-up does
    args = [database_url, "40"]
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, *args, str(p), str(tmp_path)])
        for p in range(2)
    ]
    for _ in range(2000):
        if all((tmp_path / f"ready-{p}").exists() for p in range(2)):
            break
        time.sleep(0.01)
    (tmp_path / "go").touch()
    assert [c.wait(timeout=120) for c in children] == [0, 0]
    log = AuditLog(database_url, party="AT")
    report = log.verify()
    assert report.ok and report.entries_checked == 80, report.problem
    users = {e.event.user for e in log.entries(limit=100)}
    assert len(users) == 80


# --- several chains in one database (router replicas) ------------------------------------


@pytest.fixture
def open_chain(database_url: str, signer: Ed25519Signer) -> Iterator[Callable[[str], AuditLog]]:
    """Opens chains of one database as replicas do: each its own AuditLog."""
    opened: list[AuditLog] = []

    def open_(chain: str) -> AuditLog:
        log = AuditLog(database_url, party="AT", chain=chain, signer=signer, checkpoint_every=5)
        opened.append(log)
        return log

    yield open_
    for log in opened:
        log.close()


def test_two_chains_in_one_database_interleave_and_each_verifies(
    open_chain: Callable[[str], AuditLog], database_url: str, verifier: Ed25519Verifier
) -> None:
    a, b = open_chain("main"), open_chain("r2")
    for n in range(6):  # appends alternate between the chains
        assert a.append(event(n)) == n + 1
        batch = [event(n, request_number=f"B-{n}-{k}") for k in range(2)]
        assert b.append_many(batch) == [2 * n + 1, 2 * n + 2]
    ra, rb = a.verify(verifier), b.verify(verifier)
    assert (ra.ok, ra.chain, ra.entries_checked, ra.checkpoints_checked) == (True, "main", 6, 1)
    assert (rb.ok, rb.chain, rb.entries_checked, rb.checkpoints_checked) == (True, "r2", 12, 2)
    assert a.head()[0] == 6 and b.head()[0] == 12
    assert [c.seq for c in a.checkpoints()] == [5] and [c.seq for c in b.checkpoints()] == [10, 5]
    assert {e.event.request_number for e in a.entries()} == {f"R-{n}" for n in range(6)}
    assert all((e.event.request_number or "").startswith("B-") for e in b.entries())
    assert chains(database_url) == ["main", "r2"]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE audit_entries SET outcome = 'hit' WHERE chain = 'r2' AND seq = 3", 3),
        ("DELETE FROM audit_entries WHERE chain = 'r2' AND seq = 3", 3),
        ("DELETE FROM audit_entries WHERE chain = 'r2' AND seq = 7", 7),
    ],
)
def test_tampering_with_one_chain_is_reported_in_it_and_not_in_the_other(
    open_chain: Callable[[str], AuditLog],
    database_url: str,
    verifier: Ed25519Verifier,
    tamper: str,
    expected: int,
) -> None:
    a, b = open_chain("r1"), open_chain("r2")
    for n in range(7):  # the same seqs in both chains
        a.append(event(n))
        b.append(event(n))
    sql(database_url, tamper)
    assert problem_of(b, verifier)[1] == expected
    assert a.verify(verifier).ok


@pytest.mark.parametrize(("source", "target"), [("main", "r2"), ("r1", "main")])
def test_a_checkpoint_copied_to_another_chain_is_refused_as_a_bad_checkpoint(
    open_chain: Callable[[str], AuditLog],
    database_url: str,
    verifier: Ed25519Verifier,
    clock: list[dt.datetime],
    source: str,
    target: str,
) -> None:
    logs = {name: open_chain(name) for name in (source, target)}
    for log in logs.values():  # the same events at the same time: the same hashes
        fill(log, 6)
    rows = "SELECT hash, signed_at, signature FROM audit_checkpoints WHERE chain = :c AND seq = 5"
    [(hash_s, at_s, signature_s)] = sql(database_url, rows, c=source)
    [(hash_t, at_t, signature_t)] = sql(database_url, rows, c=target)
    # Only the chain's name tells the two checkpoints apart, and it is signed.
    assert (hash_s, at_s) == (hash_t, at_t) and signature_s != signature_t
    sql(database_url, "DELETE FROM audit_checkpoints WHERE chain = :c AND seq = 5", c=target)
    sql(
        database_url,
        "INSERT INTO audit_checkpoints (chain, kind, seq, hash, signed_at, party, signature) "
        "SELECT :t, kind, seq, hash, signed_at, party, signature FROM audit_checkpoints "
        "WHERE chain = :s AND seq = 5",
        s=source,
        t=target,
    )
    assert problem_of(logs[target], verifier) == (ProblemKind.BAD_CHECKPOINT, 5)
    assert logs[source].verify(verifier).ok


def test_the_main_chain_signs_the_bytes_of_a_single_chain_log_and_others_add_their_name() -> None:
    fields: dict[str, Any] = {
        "kind": "checkpoint",
        "party": "AT",
        "seq": 5,
        "hash": "ab" * 32,
        "signed_at": "2026-01-01T00:00:00.000000Z",
    }
    single = (
        f'{{"hash":"{"ab" * 32}","kind":"checkpoint","party":"AT","seq":5,'
        '"signed_at":"2026-01-01T00:00:00.000000Z"}'
    )
    assert signed_data(chain="main", **fields) == single.encode()
    assert signed_data(chain="r1", **fields) == ('{"chain":"r1",' + single[1:]).encode()


def test_purging_one_chain_leaves_the_other_untouched(
    open_chain: Callable[[str], AuditLog], clock: list[dt.datetime], verifier: Ed25519Verifier
) -> None:
    a, b = open_chain("r1"), open_chain("r2")
    fill_by_day(a, clock, days=4, per_day=2)  # entries 1-8, checkpoint at 5
    fill_by_day(b, clock, days=4, per_day=2)
    clock[0] = T0 + dt.timedelta(days=10)
    assert a.purge(T0 + dt.timedelta(days=3), verifier=verifier) == 6
    report = b.verify(verifier)
    assert report.ok and report.anchor_seq is None
    assert (report.entries_checked, report.checkpoints_checked) == (8, 1)
    assert a.verify(verifier).anchor_seq == 6


@pytest.mark.parametrize("name", ["", "Main", "r 1", "-r1", "_r1", "r1\n", "r/1", "ä", "r" * 33])
def test_a_chain_name_outside_the_pattern_is_refused_before_the_database_is_opened(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "a.sqlite"
    with pytest.raises(InvalidAuditSetup, match="not a chain name"):
        AuditLog(f"sqlite:///{path}", party="AT", chain=name)
    assert not path.exists()


def test_chain_names_are_lowercase_letters_digits_dashes_and_underscores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    assert chains(url) == ["main"]  # a fresh log: the one chain it would write
    for name in ("r1", "0", "eu-west_2", "r" * 32):
        log = AuditLog(url, party="AT", chain=name)
        log.append(event(1))
        log.close()
    # Chains that were written; "main", never written here, is not listed.
    assert chains(url) == sorted(["r1", "0", "eu-west_2", "r" * 32])


def test_a_chain_started_by_another_process_at_the_same_moment_is_opened(
    database_url: str,
) -> None:
    AuditLog(database_url, party="AT").close()  # migrated, as at a replica's start
    other = create_engine(database_url)
    opened: list[AuditLog] = []
    try:
        with other.connect() as conn:
            conn.execute(
                text("INSERT INTO audit_head (chain, seq, hash) VALUES ('r8', 0, :g)"),
                {"g": GENESIS},
            )  # not committed yet: the opener below cannot see it, and collides with it
            opener = threading.Thread(
                target=lambda: opened.append(AuditLog(database_url, party="AT", chain="r8"))
            )
            opener.start()
            if database_url.startswith("postgresql"):
                for _ in range(1000):  # until the opener's INSERT waits for ours
                    waiting = conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
                    if waiting.scalar_one():
                        break
                    time.sleep(0.01)
            else:
                time.sleep(0.3)  # SQLite: the opener waits for the write lock
            conn.commit()
            opener.join(timeout=60)
        [log] = opened
        assert log.append(event(1)) == 1 and log.verify().ok
        assert sql(database_url, "SELECT count(*) FROM audit_head WHERE chain = 'r8'") == [(1,)]
    finally:
        for log in opened:
            log.close()
        other.dispose()


def test_a_chain_whose_head_row_was_deleted_is_not_restarted(
    open_chain: Callable[[str], AuditLog], database_url: str
) -> None:
    fill(open_chain("r1"), 3)
    sql(database_url, "DELETE FROM audit_head WHERE chain = 'r1'")
    again = open_chain("r1")
    with pytest.raises(AuditTampered, match="head row"):
        again.append(event(9))
    assert chains(database_url) == ["r1"]  # still listed, so still verified


def test_appends_to_one_chain_do_not_wait_for_another_chains_lock_on_postgres(
    audit_postgres: str,
) -> None:
    url = audit_postgres
    AuditLog(url, party="AT").close()
    reset(url)
    r1, r2 = AuditLog(url, party="AT", chain="r1"), AuditLog(url, party="AT", chain="r2")
    done: list[str] = []
    other = create_engine(url)
    try:
        with other.connect() as conn:
            conn.execute(text("SELECT seq FROM audit_head WHERE chain = 'r1' FOR UPDATE"))
            free = threading.Thread(target=lambda: done.append(f"r2:{r2.append(event(1))}"))
            free.start()
            free.join(timeout=10)
            assert done == ["r2:1"]  # while r1's head row was locked
            held = threading.Thread(target=lambda: done.append(f"r1:{r1.append(event(2))}"))
            held.start()
            held.join(timeout=0.5)
            assert held.is_alive()  # r1 waits for its own head row
            conn.rollback()
        held.join(timeout=10)
        assert done == ["r2:1", "r1:1"]
    finally:
        r1.close()
        r2.close()
        other.dispose()


# --- migrating a single-chain log --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that no migration has touched, on either back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def migrate(url: str, revision: str) -> None:
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def write_a0001_log(url: str, signer: Ed25519Signer, *, anchor: int, checkpoint: int) -> None:
    """Entries 1-8 chained and signed by hand after chain.py's spec, as a0001 stored them:
    a retention anchor at ``anchor`` (the entries up to it purged) and a checkpoint."""
    prev, recorded_at = GENESIS, format_time(T0)

    def sign(kind: str, seq: int, digest: str) -> None:
        signed_at = format_time(T0 + dt.timedelta(hours=seq))
        data = json.dumps(
            {"hash": digest, "kind": kind, "party": "AT", "seq": seq, "signed_at": signed_at},
            sort_keys=True,
            separators=(",", ":"),
        )
        signature = base64.b64encode(signer.sign(data.encode())).decode()
        sql(
            url,
            "INSERT INTO audit_checkpoints (kind, seq, hash, signed_at, party, signature) "
            "VALUES (:kind, :seq, :hash, :at, 'AT', :sig)",
            kind=kind,
            seq=seq,
            hash=digest,
            at=signed_at,
            sig=signature,
        )

    for seq in range(1, 9):
        fields = event(seq).canonical()
        body = json.dumps(
            {"event": fields, "recorded_at": recorded_at, "seq": seq},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        digest = hashlib.sha256((prev + body).encode()).hexdigest()
        if seq > anchor:
            sql(
                url,
                "INSERT INTO audit_entries (seq, recorded_at, kind, requesting_party,"
                " requested_party, category, outcome, case_reference, body, prev_hash, hash)"
                " VALUES (:seq, :at, :kind, :rp, :dp, :cat, :out, :case, :body, :prev, :hash)",
                seq=seq,
                at=recorded_at,
                kind=fields["kind"],
                rp=fields.get("requesting_party"),
                dp=fields.get("requested_party"),
                cat=fields.get("category"),
                out=fields.get("outcome"),
                case=fields.get("case_reference"),
                body=body,
                prev=prev,
                hash=digest,
            )
        if seq in (anchor, checkpoint):
            sign("anchor" if seq == anchor else "checkpoint", seq, digest)
        prev = digest
    sql(url, "UPDATE audit_head SET seq = 8, hash = :h WHERE id = 1", h=prev)


def test_a_single_chain_log_of_a0001_migrates_to_chain_main_and_its_signatures_verify(
    empty_url: str, signer: Ed25519Signer, verifier: Ed25519Verifier
) -> None:
    migrate(empty_url, "a0001")
    write_a0001_log(empty_url, signer, anchor=3, checkpoint=5)
    log = AuditLog(empty_url, party="AT", signer=signer, checkpoint_every=5)  # to a0002
    try:
        assert chains(empty_url) == ["main"]
        report = log.verify(verifier)
        assert report.ok, report.problem
        assert (report.anchor_seq, report.entries_checked, report.checkpoints_checked) == (3, 5, 2)
        assert log.append_many([event(n) for n in range(9, 11)]) == [9, 10]
        report = log.verify(verifier)
        assert report.ok and report.checkpoints_checked == 3  # the new one at 10
    finally:
        log.close()


# --- what may be logged ----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "Jane Doe"},  # no such field
        {"image": "iVBORw0KGgo="},
        {"detail": "x" * 201},  # oversize
        {"detail": "line one\nline two"},  # not one line
        {"case_reference": "c" * 201},
        {"user": "Jane Doe"},  # a pseudonym is a token, not a name
        {"reference": ["R"] * 101},
        {"requesting_party": "Austria"},
        {"offence": "not an ECRIS code"},
        {"at": "2026-01-01T00:00:00"},  # no time zone
        {"kind": "anything_goes"},
        {"signature": "not base64 at all!"},
    ],
)
def test_events_with_forbidden_fields_or_oversize_strings_are_refused(
    bad: dict[str, Any],
) -> None:
    data = {"at": T0.isoformat(), "kind": "search_sent", **bad}
    with pytest.raises(InvalidAuditEvent):
        parse_event(data)
    with pytest.raises(ValidationError):
        AuditEvent(**data)


def test_append_revalidates_events_built_without_validation(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.sqlite'}", party="AT")
    sneaky = AuditEvent.model_construct(at=T0, kind=EventKind.LOGIN, detail="x" * 10_000)
    with pytest.raises(InvalidAuditEvent):
        log.append(sneaky)
    assert log.head()[0] == 0


def test_times_are_stored_in_utc(log: AuditLog) -> None:
    vienna = dt.timezone(dt.timedelta(hours=1))
    log.append(event(at=dt.datetime(2026, 3, 1, 12, 0, tzinfo=vienna)))
    [entry] = log.entries()
    assert entry.event.at == dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.UTC)
    assert entry.event.at.tzinfo == dt.UTC


# --- property: verify() passes, and pinpoints any single edit ---------------------------

_events = st.builds(
    AuditEvent,
    at=st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    kind=st.sampled_from(list(EventKind)),
    requesting_party=st.none() | st.sampled_from(["AT", "DE", "EUROPOL"]),
    case_reference=st.none()
    | st.text(
        st.characters(min_codepoint=32, exclude_characters="\x7f", codec="utf-8"),
        min_size=1,
        max_size=40,
    ),
    detail=st.none()
    | st.text(
        st.characters(min_codepoint=32, exclude_characters="\x7f", codec="utf-8"),
        min_size=1,
        max_size=60,
    ),
    candidate_count=st.none() | st.integers(0, 100),
    reference=st.none() | st.lists(st.sampled_from(["AT-F-0A1B", "DE-F-77", "FR-9"])),
)
_EDITS = ("body", "kind", "requesting_party", "recorded_at", "hash", "prev_hash")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(_events, min_size=1, max_size=15),
    pick=st.integers(min_value=0),
    edit=st.sampled_from(_EDITS),
)
def test_any_single_edit_is_reported_at_exactly_its_seq(
    log: AuditLog,
    database_url: str,
    verifier: Ed25519Verifier,
    events: list[AuditEvent],
    pick: int,
    edit: str,
) -> None:
    reset(database_url)  # one database, emptied for each example
    for e in events:
        log.append(e)
    assert log.verify(verifier).ok

    seq = pick % len(events) + 1
    [(body, kind, party)] = sql(
        database_url,
        "SELECT body, kind, requesting_party FROM audit_entries WHERE seq = :s",
        s=seq,
    )
    parsed = json.loads(body)
    parsed["event"]["detail"] = "edited" if parsed["event"].get("detail") != "edited" else "x"
    value = {
        "body": json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        "kind": "login" if kind != "login" else "logout",
        "requesting_party": "FR" if party != "FR" else "IT",
        "recorded_at": "1999-01-01T00:00:00.000000Z",
        "hash": "a" * 64,
        "prev_hash": "b" * 64,
    }[edit]
    sql(database_url, f"UPDATE audit_entries SET {edit} = :v WHERE seq = :s", v=value, s=seq)
    assert problem_of(log, verifier) == (ProblemKind.EDITED, seq)


# --- the command line ------------------------------------------------------------------


def test_cli_verify_exits_0_when_untouched_and_1_naming_the_edited_entry(
    tmp_path: Path, signer: Ed25519Signer
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    log = AuditLog(url, party="AT", signer=signer, checkpoint_every=5)
    fill(log, 6)
    runner = CliRunner()
    ok = runner.invoke(audit_app, ["verify", "--database-url", url, "--party", "AT"])
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output and "6 entries" in ok.output

    shown = runner.invoke(audit_app, ["show", "--database-url", url, "--party", "AT", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)[0]["seq"] == 6

    sql(url, "UPDATE audit_entries SET outcome = 'hit' WHERE seq = 4")
    bad = runner.invoke(audit_app, ["verify", "--database-url", url, "--party", "AT"])
    assert bad.exit_code == 1
    assert "entry 4" in bad.output and "edited" in bad.output


def test_cli_purge_and_stats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    log = AuditLog(url, party="AT")
    fill(log, 3)
    runner = CliRunner()
    purged = runner.invoke(
        audit_app, ["purge", "--older-than-days", "1", "--database-url", url, "--party", "AT"]
    )
    assert purged.exit_code == 0 and "purged 0 entries" in purged.output
    stats = runner.invoke(audit_app, ["stats", "--database-url", url, "--json"])
    assert stats.exit_code == 0 and json.loads(stats.output)["parties"] == {}
    missing = runner.invoke(audit_app, ["verify", "--database-url", url, "--verifier", "nope:x"])
    assert missing.exit_code == 2 and "invalid_audit_setup" in missing.output


def test_cli_verify_checks_every_chain_and_names_the_one_that_fails(
    database_url: str, signer: Ed25519Signer
) -> None:
    for name in ("main", "r1"):
        log = AuditLog(database_url, party="AT", chain=name, signer=signer, checkpoint_every=5)
        fill(log, 3 if name == "main" else 4)
        log.close()
    runner = CliRunner()
    verify = ["verify", "--database-url", database_url, "--party", "AT"]
    ok = runner.invoke(audit_app, verify)
    assert ok.exit_code == 0, ok.output
    assert "(chain main): 3 entries" in ok.output and "(chain r1): 4 entries" in ok.output
    assert "2 chains, all verified" in ok.output
    listed = runner.invoke(audit_app, [*verify, "--json"])
    assert listed.exit_code == 0, listed.output
    out = json.loads(listed.output)
    assert out["ok"] and [(c["chain"], c["ok"]) for c in out["chains"]] == [
        ("main", True),
        ("r1", True),
    ]
    shown = runner.invoke(
        audit_app, ["show", "--database-url", database_url, "--party", "AT", "--chain", "r1"]
    )
    assert shown.exit_code == 0 and "4 entries" in shown.output

    sql(database_url, "UPDATE audit_entries SET outcome = 'hit' WHERE chain = 'r1' AND seq = 2")
    bad = runner.invoke(audit_app, verify)
    assert bad.exit_code == 1
    assert "(chain main): 3 entries" in bad.output
    assert "(chain r1): entry 2: edited" in bad.output and "NOT verified: r1" in bad.output
    only_main = runner.invoke(audit_app, [*verify, "--chain", "main", "--json"])
    assert only_main.exit_code == 0
    assert [c["chain"] for c in json.loads(only_main.output)["chains"]] == ["main"]
    unknown = runner.invoke(audit_app, [*verify, "--chain", "r9"])
    assert unknown.exit_code == 2 and "no chain 'r9'" in unknown.output
    assert chains(database_url) == ["main", "r1"]  # asking for r9 did not start it
