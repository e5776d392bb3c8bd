"""The tamper-evident audit log: a hash chain with signed checkpoints and retention.

Every entry links to its predecessor by hash (format in :mod:`prum.audit.chain`);
every ``checkpoint_every`` entries, and on :meth:`AuditLog.checkpoint`, the party
signs (seq, hash), so deleting the tail or rewriting the whole chain is caught too.
Retention (:meth:`AuditLog.purge`) deletes a prefix and leaves a signed *anchor*
(seq and hash of the last purged entry) from which verification starts.

One database may hold several chains (:func:`chains`): an :class:`AuditLog` writes,
reads, purges and verifies only its own, so router replicas share one PostgreSQL
store without sharing a lock.

Logs serve data-protection monitoring only (Reg. 2024/982); they carry metadata,
never payloads (:class:`prum.audit.events.AuditEvent`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, exists, func, insert, or_, select, union, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.audit.chain import (
    ANCHOR,
    CHECKPOINT,
    GENESIS,
    CheckpointSigner,
    CheckpointVerifier,
    Problem,
    ProblemKind,
    VerificationReport,
    entry_hash,
    signed_data,
    verify_chain,
)
from prum.audit.events import (
    AuditEvent,
    EventKind,
    canonical_json,
    format_time,
    parse_event,
    parse_time,
)
from prum.audit.schema import MAIN_CHAIN, audit_checkpoints, audit_entries, audit_head
from prum.audit.store import (
    insert_many,
    open_engine,
    read_transaction,
    write_transaction,
)
from prum.db import safe_url
from prum.errors import AuditTampered, InvalidAuditSetup, StorageError

if TYPE_CHECKING:
    from prum.audit.stats import Statistics

__all__ = [
    "GENESIS",
    "MAIN_CHAIN",
    "AuditEvent",
    "AuditLog",
    "Checkpoint",
    "CheckpointSigner",
    "CheckpointVerifier",
    "EventKind",
    "LogEntry",
    "Problem",
    "ProblemKind",
    "VerificationReport",
    "chains",
]

# The body fields copied into columns for the viewer's filters (chain.py checks them).
_ENTRY_COPIES = ("requesting_party", "requested_party", "category", "outcome", "case_reference")
_INSERT_ENTRIES = (
    f"INSERT INTO audit_entries (chain, seq, recorded_at, kind, {', '.join(_ENTRY_COPIES)},"
    " body, prev_hash, hash)"
)
_ENTRY_TYPES = (
    "text",
    "bigint",
    "text",
    "text",
    *["text"] * len(_ENTRY_COPIES),
    "text",
    "text",
    "text",
)
_PARTY = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}\Z")  # a member state, EUROPOL or ROUTER
# Fits audit_*.chain (32 characters) and is safe to print, and to use in a file name.
# \Z, not $: "r1\n" must not pass.
_CHAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
MAX_PAGE = 1000


@dataclass(frozen=True)
class LogEntry:
    seq: int
    recorded_at: dt.datetime
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    kind: str  # "checkpoint" or "anchor"
    seq: int
    hash: str
    signed_at: dt.datetime
    party: str
    signature: bytes | None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def chains(url: str) -> list[str]:
    """The names of the chains in the audit database at ``url``, sorted.

    Read from the entries and checkpoints as well as the heads, so that a chain whose
    head row was deleted is still listed, and verified. A chain that was never written
    (the ``main`` head every database starts with, in a router's store of replicas) is
    left out, unless no chain was written at all.
    """
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.execute(
                union(
                    select(audit_head.c.chain).where(audit_head.c.seq > 0),
                    select(audit_entries.c.chain),
                    select(audit_checkpoints.c.chain),
                )
            ).scalars()
            return sorted(str(name) for name in names) or [MAIN_CHAIN]
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the audit log at {safe_url(url)}: {exc}") from exc
    finally:
        engine.dispose()


class AuditLog:
    """One hash chain (``chain``) of the audit log of one party (a node or the router)."""

    def __init__(
        self,
        url: str,
        *,
        party: str,
        chain: str = MAIN_CHAIN,
        signer: CheckpointSigner | None = None,
        checkpoint_every: int = 100,
        statistics: Statistics | None = None,
    ):
        if not _PARTY.match(party):
            raise InvalidAuditSetup(f"{party!r} is not a party code (e.g. AT, EUROPOL, ROUTER)")
        if signer is not None and signer.party != party:
            raise InvalidAuditSetup(
                f"the checkpoint signer signs for {signer.party}, but this log belongs to {party}"
            )
        if not _CHAIN.match(chain):
            raise InvalidAuditSetup(
                f"{chain!r} is not a chain name: 1 to 32 of a-z, 0-9, '_' and '-', "
                "starting with a letter or digit"
            )
        if checkpoint_every < 1:
            raise InvalidAuditSetup("checkpoint_every must be at least 1")
        self.url = url
        self.party = party
        self.chain = chain
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.statistics = statistics
        self.engine = open_engine(url)
        try:
            self._start_chain()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def _start_chain(self) -> None:
        """Give a new chain its head row (seq 0, genesis hash); nothing for one that exists.

        A chain that has entries or checkpoints but no head lost its head to tampering:
        it is not restarted at seq 0, so its appends keep refusing (:meth:`_lock_head`).
        """
        tables = (audit_head, audit_entries, audit_checkpoints)
        known = select(or_(*(exists().where(t.c.chain == self.chain) for t in tables)))
        try:
            with write_transaction(self.engine) as conn:
                if not conn.execute(known).scalar_one():
                    conn.execute(insert(audit_head).values(chain=self.chain, seq=0, hash=GENESIS))
        except IntegrityError:
            pass  # another process started the same chain at the same moment: it exists
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot start the audit chain {self.chain!r} at {safe_url(self.url)}: {exc}"
            ) from exc

    # --- writing --------------------------------------------------------------------

    def append(self, event: AuditEvent) -> int:
        """Append one event in one transaction; returns its seq (1, 2, 3 ... no gaps)."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append events, in order, in one transaction; returns their (consecutive) seqs.

        The same chain as appending them one by one, checkpoints included, for one
        commit: what a busy writer (the router, 1 + N entries per search) can afford.
        All or nothing: one event that cannot be logged refuses the whole batch.
        """
        # Re-validate what is hashed: model_construct() or a model_copy(update=...) must
        # not bypass the limits. One serialisation serves the check and the hash.
        fields = [event.canonical() for event in events]
        checked = [parse_event(item) for item in fields]
        if not checked:
            return []
        shared = self.statistics is not None and self.statistics.url == self.url
        try:
            with write_transaction(self.engine) as conn:
                seqs = self._append(conn, fields)
                if shared:
                    assert self.statistics is not None
                    self.statistics.record_in(conn, *checked)
        except SQLAlchemyError as exc:
            raise StorageError(f"the audit database refused the append: {exc}") from exc
        if self.statistics is not None and not shared:
            self.statistics.record(*checked)
        return seqs

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction on the log's database, for a caller whose own writes (in
        the same database) must commit together with their entries (:meth:`append_in`);
        on SQLite it holds the write lock from the start."""
        return write_transaction(self.engine)

    def append_in(self, conn: Connection, events: Sequence[AuditEvent]) -> list[int]:
        """:meth:`append_many` inside the caller's :meth:`transaction`: the entries commit
        or roll back with the caller's writes. Statistics must live in the same database."""
        fields = [event.canonical() for event in events]
        checked = [parse_event(item) for item in fields]
        if not checked:
            return []
        if self.statistics is not None and self.statistics.url != self.url:
            raise InvalidAuditSetup("append_in needs the statistics in the log's database")
        seqs = self._append(conn, fields)
        if self.statistics is not None:
            self.statistics.record_in(conn, *checked)
        return seqs

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (e.g. at shutdown); None while the log is empty."""
        try:
            with write_transaction(self.engine) as conn:
                seq, digest = self._lock_head(conn)
                if seq == 0:
                    return None
                existing = conn.execute(
                    select(audit_checkpoints).where(
                        audit_checkpoints.c.chain == self.chain,
                        audit_checkpoints.c.kind == CHECKPOINT,
                        audit_checkpoints.c.seq == seq,
                    )
                ).first()
                if existing is not None and existing.hash == digest:
                    return _checkpoint(existing)
                return self._sign(conn, CHECKPOINT, seq, digest)
        except SQLAlchemyError as exc:
            raise StorageError(f"the audit database refused the checkpoint: {exc}") from exc

    def purge(self, older_than: dt.datetime, *, verifier: CheckpointVerifier | None = None) -> int:
        """Delete the entries recorded before ``older_than``; returns how many.

        Deletes a prefix of the chain (up to the first entry recorded at or after the
        cut-off, so clock skew never deletes a newer entry), leaves a signed anchor at
        the last deleted entry and appends a ``purge`` entry. Refuses to purge a log
        that does not verify: that would destroy the evidence.
        """
        cutoff = format_time(older_than)
        report = self.verify(verifier)
        if not report.ok:
            assert report.problem is not None
            raise AuditTampered(
                f"refusing to purge a log that does not verify: {report.problem.message}",
                seq=report.problem.seq,
                kind=report.problem.kind.value,
            )
        try:
            with write_transaction(self.engine) as conn:
                head_seq, _ = self._lock_head(conn)
                # Read under the lock: another purge may have run since verify().
                entries, checkpoints = audit_entries.c, audit_checkpoints.c
                mine, my_checkpoints = entries.chain == self.chain, checkpoints.chain == self.chain
                start = conn.execute(
                    select(func.coalesce(func.max(checkpoints.seq), 0)).where(
                        my_checkpoints, checkpoints.kind == ANCHOR
                    )
                ).scalar_one()
                first_kept = conn.execute(
                    select(func.min(entries.seq)).where(
                        mine, entries.seq > start, entries.recorded_at >= cutoff
                    )
                ).scalar_one_or_none()
                last = head_seq if first_kept is None else int(first_kept) - 1
                if last <= start:
                    return 0
                last_hash = conn.execute(
                    select(entries.hash).where(mine, entries.seq == last)
                ).scalar_one()
                count = conn.execute(delete(audit_entries).where(mine, entries.seq <= last))
                conn.execute(
                    delete(audit_checkpoints).where(my_checkpoints, checkpoints.seq <= last)
                )
                self._sign(conn, ANCHOR, last, str(last_hash))
                purged = int(count.rowcount)
                self._append(
                    conn,
                    [
                        AuditEvent(
                            at=utcnow(),
                            kind=EventKind.PURGE,
                            detail=f"retention: {purged} entries recorded before {cutoff} "
                            f"deleted, through entry {last}",
                        ).canonical()
                    ],
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"the audit database refused the purge: {exc}") from exc
        return purged

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.chain == self.chain)
            # PostgreSQL: this chain's row only, so other chains append meanwhile.
            # SQLite holds the database write lock since BEGIN IMMEDIATE.
            .with_for_update()
        ).first()
        if head is None:
            raise AuditTampered(
                f"the head row of audit chain {self.chain!r} is missing: the log was tampered with"
            )
        return int(head.seq), str(head.hash)

    def _append(self, conn: Connection, events: Sequence[dict[str, Any]]) -> list[int]:
        """Chain ``events`` (their canonical fields, :meth:`AuditEvent.canonical`) onto the
        head (locked here), signing checkpoints that fall due."""
        head_seq, prev_hash = self._lock_head(conn)
        rows: list[tuple[Any, ...]] = []
        due: list[tuple[int, str]] = []
        recorded_at = format_time(utcnow())  # one transaction, one time
        for seq, fields in enumerate(events, start=head_seq + 1):
            body = canonical_json({"event": fields, "recorded_at": recorded_at, "seq": seq})
            digest = entry_hash(prev_hash, body)
            rows.append(
                (
                    self.chain,
                    seq,
                    recorded_at,
                    fields["kind"],
                    *(fields.get(name) for name in _ENTRY_COPIES),
                    body,
                    prev_hash,
                    digest,
                )
            )
            if seq % self.checkpoint_every == 0:
                due.append((seq, digest))
            prev_hash = digest
        insert_many(conn, _INSERT_ENTRIES, _ENTRY_TYPES, rows)
        last = head_seq + len(rows)
        conn.execute(
            update(audit_head)
            .where(audit_head.c.chain == self.chain)
            .values(seq=last, hash=prev_hash)
        )
        for seq, digest in due:
            self._sign(conn, CHECKPOINT, seq, digest)
        return list(range(head_seq + 1, last + 1))

    def _sign(self, conn: Connection, kind: str, seq: int, digest: str) -> Checkpoint:
        signed_at = utcnow()
        data = signed_data(
            chain=self.chain,
            kind=kind,
            party=self.party,
            seq=seq,
            hash=digest,
            signed_at=format_time(signed_at),
        )
        signature = None if self.signer is None else self.signer.sign(data)
        conn.execute(
            insert(audit_checkpoints).values(
                chain=self.chain,
                kind=kind,
                seq=seq,
                hash=digest,
                signed_at=format_time(signed_at),
                party=self.party,
                signature=None if signature is None else base64.b64encode(signature).decode(),
            )
        )
        return Checkpoint(kind, seq, digest, signed_at, self.party, signature)

    # --- reading --------------------------------------------------------------------

    def verify(self, verifier: CheckpointVerifier | None = None) -> VerificationReport:
        """Recompute this whole chain; with a verifier, check every signature too."""
        try:
            with read_transaction(self.engine) as conn:
                return verify_chain(conn, party=self.party, chain=self.chain, verifier=verifier)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit log at {safe_url(self.url)}: {exc}") from exc

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, 64 zeros) for an empty log."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.chain == self.chain)
            ).first()
        if row is None:
            raise AuditTampered(
                f"the head row of audit chain {self.chain!r} is missing: the log was tampered with"
            )
        return int(row.seq), str(row.hash)

    def checkpoints(self, *, limit: int = 100) -> list[Checkpoint]:
        """The newest checkpoints and anchors, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(audit_checkpoints)
                .where(audit_checkpoints.c.chain == self.chain)
                .order_by(audit_checkpoints.c.seq.desc(), audit_checkpoints.c.id.desc())
                .limit(_page(limit))
            )
            return [_checkpoint(r) for r in rows]

    def entries(
        self,
        *,
        kind: str | None = None,
        party: str | None = None,
        category: str | None = None,
        outcome: str | None = None,
        case_reference: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[LogEntry]:
        """Entries for the log viewer, newest first.

        ``party`` matches the requesting or the requested party; ``since`` and
        ``until`` bound the recording time (``until`` exclusive).
        """
        if offset < 0:
            raise InvalidAuditSetup("offset must not be negative")
        c = audit_entries.c
        query = select(audit_entries).where(c.chain == self.chain)
        for column, value in (
            (c.kind, kind),
            (c.category, category),
            (c.outcome, outcome),
            (c.case_reference, case_reference),
        ):
            if value is not None:
                query = query.where(column == value)
        if party is not None:
            query = query.where(or_(c.requesting_party == party, c.requested_party == party))
        if since is not None:
            query = query.where(c.recorded_at >= format_time(since))
        if until is not None:
            query = query.where(c.recorded_at < format_time(until))
        query = query.order_by(c.seq.desc()).limit(_page(limit)).offset(offset)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidAuditSetup(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def _entry(row: Row[Any]) -> LogEntry:
    seq = int(row.seq)
    try:
        body = json.loads(row.body)
        event = parse_event(body["event"])
        recorded_at = parse_time(str(body["recorded_at"]))
    except Exception as exc:  # any unreadable body is evidence of tampering
        raise AuditTampered(f"audit entry {seq} cannot be read: it was edited", seq=seq) from exc
    return LogEntry(seq, recorded_at, event, str(row.prev_hash), str(row.hash))


def _checkpoint(row: Row[Any]) -> Checkpoint:
    signature = None if row.signature is None else base64.b64decode(str(row.signature))
    return Checkpoint(
        kind=str(row.kind),
        seq=int(row.seq),
        hash=str(row.hash),
        signed_at=parse_time(str(row.signed_at)),
        party=str(row.party),
        signature=signature,
    )
