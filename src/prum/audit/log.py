"""The tamper-evident audit log: a hash chain with signed checkpoints and retention.

Every entry links to its predecessor by hash (format in :mod:`prum.audit.chain`);
every ``checkpoint_every`` entries, and on :meth:`AuditLog.checkpoint`, the party
signs (seq, hash), so deleting the tail or rewriting the whole chain is caught too.
Retention (:meth:`AuditLog.purge`) deletes a prefix and leaves a signed *anchor*
(seq and hash of the last purged entry) from which verification starts.

Logs serve data-protection monitoring only (Reg. 2024/982); they carry metadata,
never payloads (:class:`prum.audit.events.AuditEvent`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

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
from prum.audit.schema import audit_checkpoints, audit_entries, audit_head
from prum.audit.store import open_engine, read_transaction, safe_url, write_transaction
from prum.errors import AuditTampered, InvalidAuditSetup, StorageError

if TYPE_CHECKING:
    from prum.audit.stats import Statistics

__all__ = [
    "GENESIS",
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
]

_PARTY = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")  # a member state, EUROPOL or ROUTER
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


class AuditLog:
    """The audit log of one party (a node or the router) in one database."""

    def __init__(
        self,
        url: str,
        *,
        party: str,
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
        if checkpoint_every < 1:
            raise InvalidAuditSetup("checkpoint_every must be at least 1")
        self.url = url
        self.party = party
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.statistics = statistics
        self.engine = open_engine(url)

    def close(self) -> None:
        self.engine.dispose()

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

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (e.g. at shutdown); None while the log is empty."""
        try:
            with write_transaction(self.engine) as conn:
                seq, digest = self._lock_head(conn)
                if seq == 0:
                    return None
                existing = conn.execute(
                    select(audit_checkpoints).where(
                        audit_checkpoints.c.kind == CHECKPOINT, audit_checkpoints.c.seq == seq
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
                start = conn.execute(
                    select(func.coalesce(func.max(audit_checkpoints.c.seq), 0)).where(
                        audit_checkpoints.c.kind == ANCHOR
                    )
                ).scalar_one()
                first_kept = conn.execute(
                    select(func.min(audit_entries.c.seq)).where(
                        audit_entries.c.seq > start, audit_entries.c.recorded_at >= cutoff
                    )
                ).scalar_one_or_none()
                last = head_seq if first_kept is None else int(first_kept) - 1
                if last <= start:
                    return 0
                last_hash = conn.execute(
                    select(audit_entries.c.hash).where(audit_entries.c.seq == last)
                ).scalar_one()
                count = conn.execute(delete(audit_entries).where(audit_entries.c.seq <= last))
                conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq <= last))
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
            .where(audit_head.c.id == 1)
            .with_for_update()  # PostgreSQL; SQLite holds the write lock since BEGIN
        ).first()
        if head is None:
            raise AuditTampered("the audit head row is missing: the log was tampered with")
        return int(head.seq), str(head.hash)

    def _append(self, conn: Connection, events: Sequence[dict[str, Any]]) -> list[int]:
        """Chain ``events`` (their canonical fields, :meth:`AuditEvent.canonical`) onto the
        head (locked here), signing checkpoints that fall due."""
        head_seq, prev_hash = self._lock_head(conn)
        rows: list[dict[str, Any]] = []
        due: list[tuple[int, str]] = []
        recorded_at = format_time(utcnow())  # one transaction, one time
        for seq, fields in enumerate(events, start=head_seq + 1):
            body = canonical_json({"event": fields, "recorded_at": recorded_at, "seq": seq})
            digest = entry_hash(prev_hash, body)
            rows.append(
                {
                    "seq": seq,
                    "recorded_at": recorded_at,
                    "kind": fields["kind"],
                    "requesting_party": fields.get("requesting_party"),
                    "requested_party": fields.get("requested_party"),
                    "category": fields.get("category"),
                    "outcome": fields.get("outcome"),
                    "case_reference": fields.get("case_reference"),
                    "body": body,
                    "prev_hash": prev_hash,
                    "hash": digest,
                }
            )
            if seq % self.checkpoint_every == 0:
                due.append((seq, digest))
            prev_hash = digest
        conn.execute(insert(audit_entries), rows)
        last = head_seq + len(rows)
        conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=last, hash=prev_hash)
        )
        for seq, digest in due:
            self._sign(conn, CHECKPOINT, seq, digest)
        return [row["seq"] for row in rows]

    def _sign(self, conn: Connection, kind: str, seq: int, digest: str) -> Checkpoint:
        signed_at = utcnow()
        data = signed_data(
            kind=kind, party=self.party, seq=seq, hash=digest, signed_at=format_time(signed_at)
        )
        signature = None if self.signer is None else self.signer.sign(data)
        conn.execute(
            insert(audit_checkpoints).values(
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
        """Recompute the whole chain; with a verifier, check every signature too."""
        try:
            with read_transaction(self.engine) as conn:
                return verify_chain(conn, party=self.party, verifier=verifier)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit log at {safe_url(self.url)}: {exc}") from exc

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, 64 zeros) for an empty log."""
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
        if row is None:
            raise AuditTampered("the audit head row is missing: the log was tampered with")
        return int(row.seq), str(row.hash)

    def checkpoints(self, *, limit: int = 100) -> list[Checkpoint]:
        """The newest checkpoints and anchors, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(audit_checkpoints)
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
        query = select(audit_entries)
        c = audit_entries.c
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
