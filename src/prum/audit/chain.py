"""The hash chain and its verification, in the form a third party can re-implement.

One database may hold several independent chains, each named by its ``chain`` column
(``^[a-z0-9][a-z0-9_-]{0,31}$``; ``main`` unless the writer chose a name, as router
replicas do). Each chain is verified on its own, from its own rows only; nothing
below links one chain to another.

Entry ``n`` of a chain stores ``body`` (canonical JSON ``{"event", "recorded_at",
"seq"}``: sorted keys, no whitespace, UTF-8), ``prev_hash`` (the hash of entry
``n-1`` of the same chain; 64 zeros before entry 1) and

    hash = SHA-256(prev_hash || body)

with ``prev_hash`` as its 64 lowercase hex characters and ``body`` in UTF-8, so
``printf '%s%s' "$prev" "$body" | sha256sum`` recomputes it. A checkpoint or a
retention anchor signs the canonical JSON ``{"hash", "kind", "party", "seq",
"signed_at"}`` for chain ``main`` and ``{"chain", "hash", "kind", "party", "seq",
"signed_at"}`` for any other chain: the signer vouches that entry ``seq`` of that
chain of its log had that hash. The name binds a checkpoint to its chain, so one
cannot be copied to another chain whose entry at ``seq`` happens to hash alike; it
is left out for ``main`` so that the bytes signed before chains existed still verify.
"Kind" keeps a checkpoint from being replayed as an anchor, which would let someone
cut off the start of the log without a purge.

:func:`verify_chain` walks one chain's entries and checkpoints in seq order with two
streaming cursors (never all rows in memory) and stops at the first problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection, Row, select

from prum.audit.events import canonical_json
from prum.audit.schema import MAIN_CHAIN, audit_checkpoints, audit_entries, audit_head

GENESIS = "0" * 64
CHECKPOINT = "checkpoint"
ANCHOR = "anchor"
# Columns copied from the body for the viewer's filters; they must agree with it.
_COPIES = ("kind", "requesting_party", "requested_party", "category", "outcome", "case_reference")
_BATCH = 1000


class CheckpointSigner(Protocol):
    """Signs checkpoints and anchors with the key of ``party``."""

    @property
    def party(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class CheckpointVerifier(Protocol):
    """Checks a signature against the public key of ``party``."""

    def verify(self, data: bytes, signature: bytes, party: str) -> bool: ...


def entry_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def signed_data(*, chain: str, kind: str, party: str, seq: int, hash: str, signed_at: str) -> bytes:
    record: dict[str, Any] = {
        "hash": hash,
        "kind": kind,
        "party": party,
        "seq": seq,
        "signed_at": signed_at,
    }
    if chain != MAIN_CHAIN:  # "main" signs the bytes it signed before there were chains
        record["chain"] = chain
    return canonical_json(record).encode("utf-8")


class ProblemKind(StrEnum):
    EDITED = "edited"  # an entry's content no longer matches its hash, or its copies
    REMOVED = "removed"  # a gap in seq
    REORDERED = "reordered"  # an entry is not where it was written, or links elsewhere
    BAD_CHECKPOINT = "bad_checkpoint"  # bad or missing signature, or hash differs
    TRUNCATED = "truncated"  # a checkpoint or anchor vouches for entries that are gone


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerificationReport:
    chain: str
    ok: bool
    entries_checked: int
    checkpoints_checked: int
    signatures_checked: bool  # False when verify() was given no verifier
    anchor_seq: int | None  # where verification started (after a purge)
    last_seq: int | None
    problem: Problem | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_chain(
    conn: Connection, *, party: str, chain: str, verifier: CheckpointVerifier | None
) -> VerificationReport:
    """Recompute ``chain`` from its newest anchor (or genesis) to its last entry."""
    return _Walk(conn, party, chain, verifier).run()


class _Walk:
    def __init__(
        self, conn: Connection, party: str, chain: str, verifier: CheckpointVerifier | None
    ):
        self.conn = conn
        self.party = party
        self.chain = chain
        self.verifier = verifier
        self.entries = 0
        self.checkpoints = 0
        self.anchor_seq: int | None = None
        self.last_seq: int | None = None

    def report(self, problem: Problem | None = None) -> VerificationReport:
        return VerificationReport(
            chain=self.chain,
            ok=problem is None,
            entries_checked=self.entries,
            checkpoints_checked=self.checkpoints,
            signatures_checked=self.verifier is not None,
            anchor_seq=self.anchor_seq,
            last_seq=self.last_seq,
            problem=problem,
        )

    def run(self) -> VerificationReport:
        anchor = self.conn.execute(
            select(audit_checkpoints)
            .where(audit_checkpoints.c.chain == self.chain, audit_checkpoints.c.kind == ANCHOR)
            .order_by(audit_checkpoints.c.seq.desc(), audit_checkpoints.c.id.desc())
            .limit(1)
        ).first()
        start, expected_prev = 0, GENESIS
        if anchor is not None:
            self.anchor_seq = start = int(anchor.seq)
            expected_prev = str(anchor.hash)
            problem = self.check_signature(anchor)
            if problem is not None:
                return self.report(problem)
            self.checkpoints += 1

        checkpoints = self.stream_checkpoints(start)
        pending = next(checkpoints, None)
        expected = start + 1
        for row in self.stream_entries(start):
            seq = int(row.seq)
            if seq != expected:
                missing = (
                    f"entry {expected} was"
                    if seq == expected + 1
                    else f"entries {expected} to {seq - 1} were"
                )
                return self.report(Problem(expected, ProblemKind.REMOVED, f"{missing} removed"))
            problem = self.check_entry(row, expected_prev)
            if problem is not None:
                return self.report(problem)
            while pending is not None and int(pending.seq) <= seq:
                problem = self.check_checkpoint(pending, str(row.hash))
                if problem is not None:
                    return self.report(problem)
                self.checkpoints += 1
                pending = next(checkpoints, None)
            self.entries += 1
            self.last_seq = seq
            expected_prev = str(row.hash)
            expected = seq + 1

        last = expected - 1
        head = self.conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.chain == self.chain)
        ).first()
        if head is not None and int(head.seq) > last:
            # Same snapshot as the entries: the head and the entry are written together.
            return self.report(
                Problem(
                    last + 1,
                    ProblemKind.TRUNCATED,
                    f"the log was written up to entry {int(head.seq)}, but ends at entry {last}",
                )
            )
        if head is not None and int(head.seq) == last > start and head.hash != expected_prev:
            return self.report(
                Problem(
                    last,
                    ProblemKind.EDITED,
                    f"entry {last} was rewritten: its hash is not the one it was written with",
                )
            )
        if pending is not None:
            return self.report(
                Problem(
                    last + 1,
                    ProblemKind.TRUNCATED,
                    f"a checkpoint vouches for entry {int(pending.seq)}, "
                    f"but the log ends at entry {last}: entries from {last + 1} were removed",
                )
            )
        if anchor is not None and last == start:
            # purge() appends its own entry after the anchor; without it, the tail is gone.
            return self.report(
                Problem(
                    last + 1,
                    ProblemKind.TRUNCATED,
                    f"no entry follows the retention anchor at {start}: the tail was removed",
                )
            )
        return self.report()

    def stream_entries(self, after: int) -> Iterator[Row[Any]]:
        query = select(audit_entries).where(
            audit_entries.c.chain == self.chain, audit_entries.c.seq > after
        )
        result = self.conn.execution_options(yield_per=_BATCH).execute(
            query.order_by(audit_entries.c.seq)
        )
        yield from result

    def stream_checkpoints(self, after: int) -> Iterator[Row[Any]]:
        query = select(audit_checkpoints).where(
            audit_checkpoints.c.chain == self.chain,
            audit_checkpoints.c.kind == CHECKPOINT,
            audit_checkpoints.c.seq > after,
        )
        result = self.conn.execution_options(yield_per=_BATCH).execute(
            query.order_by(audit_checkpoints.c.seq, audit_checkpoints.c.id)
        )
        yield from result

    def check_entry(self, row: Row[Any], expected_prev: str) -> Problem | None:
        seq = int(row.seq)
        if entry_hash(str(row.prev_hash), str(row.body)) != row.hash:
            return Problem(seq, ProblemKind.EDITED, f"entry {seq} was edited: hash mismatch")
        try:
            body = json.loads(row.body)
            claimed, event, recorded_at = int(body["seq"]), body["event"], body["recorded_at"]
        except (ValueError, KeyError, TypeError):
            return Problem(seq, ProblemKind.EDITED, f"entry {seq} was edited: unreadable body")
        if claimed != seq:
            return Problem(
                seq,
                ProblemKind.REORDERED,
                f"entry {seq} holds the content written as entry {claimed}",
            )
        if row.prev_hash != expected_prev and seq - 1 == self.anchor_seq:
            return Problem(
                seq - 1,
                ProblemKind.BAD_CHECKPOINT,
                f"the retention anchor at entry {seq - 1} does not match entry {seq}",
            )
        if row.prev_hash != expected_prev:
            return Problem(
                seq,
                ProblemKind.REORDERED,
                f"entry {seq} does not follow entry {seq - 1}: its predecessor was "
                "replaced, or the entries were rearranged",
            )
        copies = {name: row._mapping[name] for name in _COPIES}
        written = {name: event.get(name) if isinstance(event, dict) else None for name in _COPIES}
        if copies != written or row.recorded_at != recorded_at:
            changed = sorted(n for n in _COPIES if copies[n] != written[n])
            if row.recorded_at != recorded_at:
                changed.append("recorded_at")
            return Problem(
                seq, ProblemKind.EDITED, f"entry {seq} was edited: {', '.join(changed)} changed"
            )
        return None

    def check_checkpoint(self, cp: Row[Any], entry_hash_: str) -> Problem | None:
        seq = int(cp.seq)
        if cp.hash != entry_hash_:
            return Problem(
                seq,
                ProblemKind.BAD_CHECKPOINT,
                f"the checkpoint at entry {seq} vouches for another hash than the entry's",
            )
        return self.check_signature(cp)

    def check_signature(self, cp: Row[Any]) -> Problem | None:
        seq, what = int(cp.seq), "anchor" if cp.kind == ANCHOR else "checkpoint"
        if cp.party != self.party:
            return Problem(
                seq,
                ProblemKind.BAD_CHECKPOINT,
                f"the {what} at entry {seq} names {cp.party}, but this log belongs to {self.party}",
            )
        if self.verifier is None:
            return None
        if cp.signature is None:
            return Problem(seq, ProblemKind.BAD_CHECKPOINT, f"the {what} at {seq} is unsigned")
        data = signed_data(
            chain=self.chain,
            kind=str(cp.kind),
            party=str(cp.party),
            seq=seq,
            hash=str(cp.hash),
            signed_at=str(cp.signed_at),
        )
        try:
            signature = base64.b64decode(str(cp.signature), validate=True)
            valid = self.verifier.verify(data, signature, str(cp.party))
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            return Problem(
                seq, ProblemKind.BAD_CHECKPOINT, f"the {what} at entry {seq} has a bad signature"
            )
        return None
