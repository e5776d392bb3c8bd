"""The national-systems interface's work: records and deletions from a country's systems
of record applied to the node, and what the systems read back to reconcile.

Every record is all or nothing: its category rows, the node's bookkeeping (national id,
core data, change sequence) and its audit entry commit in one database transaction
(the audit log's, :meth:`prum.audit.log.AuditLog.transaction`), each record in its own
savepoint so that one that cannot be stored does not take the others with it. A
process killed mid-batch leaves each record applied or absent; sending the batch again
applies the absent ones and finds the others ``unchanged``.

Work happens in chunks: the lines of a chunk are checked and their samples prepared
(decoded, checked, templates computed: in worker processes for faces and fingerprints
when ``workers`` > 1), then written in one transaction, then each touched category's
index catches up with its store.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.audit.events import AuditEvent, EventKind
from prum.audit.events import Outcome as Logged
from prum.categories.interface import Ingester, RecordMeta
from prum.config import Settings
from prum.errors import (
    BadInput,
    CategoryNotOffered,
    InvalidRecord,
    PrumError,
    StorageError,
    UnknownReference,
)
from prum.federation.messages import Category, ErrorInfo
from prum.node.categories import ANSWERED_AT_ONCE, make_preparer
from prum.node.core import Node, utcnow
from prum.node.schema import core_data, national_records, record_changes
from prum.node.systems.accounts import SystemAccount
from prum.node.systems.contract import (
    CATEGORY_FORMATS,
    BatchResult,
    Change,
    ChangesPage,
    DeletionIn,
    DeletionReason,
    ListedRecord,
    ListingPage,
    Outcome,
    RecordIn,
    RecordResult,
)
from prum.node.withdrawal import queue_withdrawals

# Categories whose samples are costly to prepare (image decoding, detection, templates):
# prepared in worker processes when the interface runs with more than one worker.
HEAVY = frozenset({Category.FACE, Category.FINGER})
# Lines per transaction: large enough that a commit's fsync is shared, small enough that
# a batch shows progress and a crash repeats little. Heavy records: a chunk is about
# two seconds of two workers' work.
CHUNK = 2000
HEAVY_CHUNK = 32
# The account that erases records whose retention date has passed.
RETENTION_SYSTEM = "node.retention"

Line = RecordIn | DeletionIn | PrumError  # a batch line, or why it could not be read


@dataclass
class _Item:
    line: int
    request: RecordIn | DeletionIn
    existing: Any = None  # the node_national_records row, if any
    outcome: Outcome | None = None
    prepared: Any = None
    error: PrumError | None = None
    reference: str | None = None
    content_hash: str = ""  # of a record, computed once (_plan)
    record_hash: str = ""


def source_key(record: RecordIn, record_hash: str | None = None) -> str:
    """The category store's idempotency key of one version of a national record."""
    digest = record_hash or record.record_hash()
    return f"nsi:{record.category.value}:{record.national_id}:{digest[:24]}"


class NationalSystems:
    """The interface of one node (one per process; thread-safe)."""

    def __init__(self, node: Node, *, workers: int = 1):
        self.node = node
        self.workers = max(1, workers)
        self._write = threading.Lock()
        self._pool: Executor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # --- writing ----------------------------------------------------------------------

    def upsert(self, record: RecordIn, system: SystemAccount) -> RecordResult:
        """One record; a refusal raises its error (nothing changed)."""
        result = next(self.apply([record], system))
        if result.outcome is Outcome.REFUSED:
            raise self._last_error
        return result

    def delete(self, deletion: DeletionIn, system: SystemAccount) -> RecordResult:
        result = next(self.apply([deletion], system))
        if result.outcome is Outcome.REFUSED:
            raise self._last_error
        return result

    def apply_batch(
        self,
        lines: Iterable[Line],
        system: SystemAccount,
        *,
        on_result: Callable[[RecordResult], None] | None = None,
    ) -> BatchResult:
        results: list[RecordResult] = []
        counts: dict[str, int] = {o.value: 0 for o in Outcome}
        for result in self.apply(lines, system):
            results.append(result)
            counts[result.outcome.value] += 1
            if on_result is not None:
                on_result(result)
        return BatchResult(counts=counts, results=results)

    def apply(self, lines: Iterable[Line], system: SystemAccount) -> Iterator[RecordResult]:
        """Each line's result, in order, as its chunk commits."""
        chunk: list[_Item | RecordResult] = []
        keys: set[tuple[Category, str]] = set()
        heavy = 0
        for number, line in enumerate(lines, start=1):
            if isinstance(line, PrumError):
                chunk.append(_refused(number, None, line))
                continue
            key = (line.category, line.national_id)
            if key in keys:  # the same record twice: the first must commit first
                yield from self._run(chunk, system)
                chunk, keys, heavy = [], set(), 0
            keys.add(key)
            chunk.append(_Item(number, line))
            heavy += line.category in HEAVY and isinstance(line, RecordIn)
            if len(chunk) >= CHUNK or heavy >= HEAVY_CHUNK:
                yield from self._run(chunk, system)
                chunk, keys, heavy = [], set(), 0
        yield from self._run(chunk, system)

    def _run(self, chunk: list[_Item | RecordResult], system: SystemAccount) -> list[RecordResult]:
        items = [i for i in chunk if isinstance(i, _Item)]
        self._plan(items, system)
        self._prepare([i for i in items if i.outcome in (Outcome.CREATED, Outcome.REPLACED)])
        todo = [i for i in items if i.error is None]
        if todo:
            # Open the matchers first: opening a store migrates it on its own connection,
            # which would wait for the write lock the transaction below holds.
            for category in {i.request.category for i in todo}:
                self._ingester(category)
            try:
                self._commit(todo, system)
            except StorageError as exc:
                for item in todo:
                    item.error = exc
        results = []
        for entry in chunk:
            if isinstance(entry, RecordResult):
                results.append(entry)
                continue
            if entry.error is not None:
                self._last_error = entry.error
                results.append(_refused(entry.line, entry.request, entry.error))
            else:
                assert entry.outcome is not None
                results.append(
                    RecordResult(
                        line=entry.line,
                        category=entry.request.category,
                        national_id=entry.request.national_id,
                        outcome=entry.outcome,
                        reference=entry.reference,
                    )
                )
        return results

    def _plan(self, items: list[_Item], system: SystemAccount) -> None:
        """What each line will do, from what the node holds now."""
        existing = self._existing([(i.request.category, i.request.national_id) for i in items])
        for item in items:
            request = item.request
            try:
                self._check(request, system)
            except PrumError as exc:
                item.error = exc
                continue
            item.existing = existing.get((request.category, request.national_id))
            if isinstance(request, DeletionIn):
                if item.existing is None:
                    item.error = UnknownReference(
                        f"no {request.category.value} record has the national id"
                        f" {request.national_id!r} at this node; nothing was deleted"
                    )
                else:
                    item.outcome = Outcome.DELETED
                continue
            item.content_hash, item.record_hash = request.content_hash(), request.record_hash()
            if item.existing is None:
                item.outcome = Outcome.CREATED
            elif item.existing.content_hash == item.content_hash:
                item.outcome = Outcome.UNCHANGED
                item.reference = item.existing.reference
            elif item.existing.record_hash == item.record_hash:
                item.outcome = Outcome.UPDATED
                item.reference = item.existing.reference
            else:
                item.outcome = Outcome.REPLACED

    def _check(self, request: RecordIn | DeletionIn, system: SystemAccount) -> None:
        category = request.category
        if category not in self.node.config.categories:
            raise CategoryNotOffered(
                f"{self.node.party} does not hold {category.value} records (not configured)"
            )
        system.require(category)
        if isinstance(request, DeletionIn):
            return
        if request.sample.format not in CATEGORY_FORMATS[category]:
            allowed = ", ".join(sorted(f.value for f in CATEGORY_FORMATS[category]))
            raise InvalidRecord(
                f"a {category.value} record's sample is one of {allowed},"
                f" not {request.sample.format.value}"
            )
        if request.core_data is not None and category in ANSWERED_AT_ONCE:
            raise InvalidRecord(
                f"{category.value} records carry no core data: the answer is the data itself"
            )
        if request.date_of_birth is not None and request.date_of_birth > dt.date.today():
            raise InvalidRecord(f"date of birth {request.date_of_birth} is in the future")

    def _prepare(self, items: list[_Item]) -> None:
        """Decode, check and compute each sample (no writes)."""
        parallel = [i for i in items if i.request.category in HEAVY] if self.workers > 1 else []
        if len(parallel) > 1:
            pool = self._worker_pool()
            jobs = [_job(i.request, i.record_hash) for i in parallel]  # type: ignore[arg-type]
            for item, (ok, value) in zip(parallel, pool.map(_prepare_job, jobs), strict=True):
                if ok:
                    item.prepared = value
                else:
                    item.error = value
        else:
            parallel = []
        for item in items:
            if item in parallel:
                continue
            record = item.request
            assert isinstance(record, RecordIn)
            try:
                preparer = self._ingester(record.category).preparer()
                item.prepared = preparer.prepare(
                    _raw(record), record.sample.format.value, _meta(record, item.record_hash)
                )
            except PrumError as exc:
                item.error = exc

    def _commit(self, items: list[_Item], system: SystemAccount) -> None:
        """Write the chunk in one transaction: all its records at once (a few statements
        for the chunk), or, when one of them cannot be stored, each in its own savepoint
        so that only that one is refused."""
        todo = [i for i in items if i.outcome is not Outcome.UNCHANGED]
        if not todo:
            return
        with self._write:
            try:
                with self.node.audit.transaction() as conn:
                    try:
                        with conn.begin_nested():
                            events = self._write_many(conn, todo, system)
                    except (PrumError, IntegrityError):
                        events = []
                        for item in todo:
                            try:
                                with conn.begin_nested():
                                    events += self._write_many(conn, [item], system)
                            except (PrumError, IntegrityError) as exc:
                                item.error = _conflict(exc)
                    self.node.audit.append_in(conn, events)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", exc)).splitlines()[0][:160]
                raise StorageError(
                    f"the node's database cannot be written ({reason}); nothing of this"
                    " chunk was stored: send it again"
                ) from None
            for category in {i.request.category for i in todo if i.error is None}:
                self._ingester(category).refresh()

    def _write_many(
        self, conn: Connection, items: list[_Item], system: SystemAccount
    ) -> list[AuditEvent]:
        """Category rows, national records, core data, changes; their audit events."""
        now = utcnow()
        by_category: dict[Category, list[_Item]] = {}
        for item in items:
            by_category.setdefault(item.request.category, []).append(item)
        for category, group in by_category.items():
            ingester = self._ingester(category)
            new = [i for i in group if i.outcome in (Outcome.CREATED, Outcome.REPLACED)]
            references = ingester.write(conn, [i.prepared for i in new])
            for item, reference in zip(new, references, strict=True):
                item.reference = reference
            for item in group:
                if item.outcome is Outcome.REPLACED:
                    ingester.erase(conn, item.existing.reference, DeletionReason.RECTIFICATION)
                elif item.outcome is Outcome.DELETED:
                    assert isinstance(item.request, DeletionIn)
                    ingester.erase(conn, item.existing.reference, item.request.reason.value)
                if item.outcome in (Outcome.UPDATED, Outcome.DELETED):
                    item.reference = item.existing.reference
            held = [i.request.national_id for i in group if i.existing is not None]
            for part in _parts(held):
                conn.execute(
                    delete(national_records).where(
                        national_records.c.category == category.value,
                        national_records.c.national_id.in_(part),
                    )
                )
        stale = [i.reference or "" for i in items] + [
            i.existing.reference for i in items if i.existing is not None
        ]
        for part in _parts(sorted({r for r in stale if r})):
            conn.execute(delete(core_data).where(core_data.c.reference.in_(part)))
        upserts = [(i, i.request) for i in items if isinstance(i.request, RecordIn)]
        hashes = {id(i): i.content_hash for i, _ in upserts}
        changes = [
            {
                "category": i.request.category.value,
                "national_id": i.request.national_id,
                "operation": i.outcome.value if i.outcome else "",
                "reference": i.reference,
                "content_hash": hashes.get(id(i)),
                "system": system.name,
                "reason": i.request.reason.value if isinstance(i.request, DeletionIn) else None,
                "at": now,
            }
            for i in items
        ]
        returning = insert(record_changes).returning(
            record_changes.c.seq, sort_by_parameter_order=True
        )
        seqs = conn.execute(returning, changes).scalars().all()
        seq_of = dict(zip((id(i) for i in items), seqs, strict=True))
        if upserts:
            rows = [
                {
                    "category": record.category.value,
                    "national_id": record.national_id,
                    "reference": i.reference,
                    "content_hash": hashes[id(i)],
                    "record_hash": i.record_hash,
                    "origin_country": record.origin_country,
                    "retention_until": record.retention_until,
                    "system": system.name,
                    "seq": seq_of[id(i)],
                    "updated_at": now,
                }
                for i, record in upserts
            ]
            conn.execute(insert(national_records), rows)
        cores = [
            {
                "reference": i.reference,
                "data": record.core_data.model_dump(mode="json", exclude_none=True),
            }
            for i, record in upserts
            if record.core_data is not None
        ]
        if cores:
            conn.execute(insert(core_data), cores)
        # References erased here that went abroad as candidates: their holders' notices
        # leave through the outbox, committed with the erasure (prum.node.withdrawal).
        erased = [
            (
                i.existing.reference,
                i.request.category,
                i.request.reason.value
                if isinstance(i.request, DeletionIn)
                else DeletionReason.RECTIFICATION.value,
            )
            for i in items
            if i.outcome in (Outcome.DELETED, Outcome.REPLACED)
        ]
        notices = queue_withdrawals(self.node, conn, erased)
        return [self._event_of(i, system) for i in items] + notices

    def _event_of(self, item: _Item, system: SystemAccount) -> AuditEvent:
        request = item.request
        assert item.reference is not None and item.outcome is not None
        if isinstance(request, DeletionIn):
            return self._event(
                EventKind.RECORD_DELETED, request, item.reference, system, request.reason.value
            )
        kind = EventKind.RECORD_ENROLLED if item.existing is None else EventKind.RECORD_UPDATED
        return self._event(kind, request, item.reference, system, item.outcome.value)

    def _event(
        self,
        kind: EventKind,
        request: RecordIn | DeletionIn,
        reference: str,
        system: SystemAccount,
        reason: str,
    ) -> AuditEvent:
        return AuditEvent(
            at=utcnow(),
            kind=kind,
            requested_party=self.node.party,
            category=request.category,
            user=system.name,
            reference=[reference],
            national_id=request.national_id,
            outcome=Logged.OK,
            reason_code=reason,
        )

    # --- retention ----------------------------------------------------------------------

    def expire(self, today: dt.date | None = None) -> int:
        """Erase every record whose retention date has passed; how many."""
        today = today or dt.date.today()
        with self.node.engine.connect() as conn:
            due = conn.execute(
                select(national_records.c.category, national_records.c.national_id).where(
                    national_records.c.retention_until < today
                )
            ).all()
        if not due:
            return 0
        account = SystemAccount(RETENTION_SYSTEM, frozenset(Category))
        lines = [
            DeletionIn(
                category=Category(category),
                national_id=national_id,
                reason=DeletionReason.RETENTION_EXPIRED,
            )
            for category, national_id in due
            if Category(category) in self.node.config.categories
        ]
        return sum(r.outcome is Outcome.DELETED for r in self.apply(lines, account))

    # --- reading back -------------------------------------------------------------------

    def changes(
        self, *, after: int = 0, limit: int = 1000, categories: Iterable[Category] | None = None
    ) -> ChangesPage:
        """The change sequence after ``after`` (of ``categories`` only, when given: a
        system reads back the categories it may write, no others)."""
        query = select(record_changes).where(record_changes.c.seq > after)
        if categories is not None:
            query = query.where(record_changes.c.category.in_([c.value for c in categories]))
        with self.node.engine.connect() as conn:
            rows = conn.execute(query.order_by(record_changes.c.seq).limit(limit)).all()
            last = conn.execute(select(func.coalesce(func.max(record_changes.c.seq), 0)))
            newest = int(last.scalar_one())
        changes = [
            Change(
                seq=int(r.seq),
                category=Category(r.category),
                national_id=r.national_id,
                operation=r.operation,
                reference=r.reference,
                content_hash=r.content_hash,
                at=_aware(r.at),
            )
            for r in rows
        ]
        return ChangesPage(
            changes=changes, last_seq=changes[-1].seq if changes else max(0, min(after, newest))
        )

    def listing(self, category: Category, *, after: str = "", limit: int = 1000) -> ListingPage:
        with self.node.engine.connect() as conn:
            rows = conn.execute(
                select(national_records)
                .where(
                    national_records.c.category == category.value,
                    national_records.c.national_id > after,
                )
                .order_by(national_records.c.national_id)
                .limit(limit + 1)
            ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return ListingPage(
            category=category,
            records=[
                ListedRecord(
                    national_id=r.national_id,
                    reference=r.reference,
                    content_hash=r.content_hash,
                    updated_at=_aware(r.updated_at),
                    retention_until=r.retention_until,
                )
                for r in rows
            ],
            next_after=rows[-1].national_id if more else None,
        )

    def origins(self, references: Sequence[str]) -> dict[str, str]:
        """The country of origin of records that have one (Art 48 third-country data)."""
        if not references:
            return {}
        with self.node.engine.connect() as conn:
            rows = conn.execute(
                select(national_records.c.reference, national_records.c.origin_country).where(
                    national_records.c.reference.in_(list(references)),
                    national_records.c.origin_country.is_not(None),
                )
            ).all()
        return {str(ref): str(origin) for ref, origin in rows}

    # --- helpers ------------------------------------------------------------------------

    def _ingester(self, category: Category) -> Ingester:
        matcher: Any = self.node.matcher(category)
        ingester: Ingester = matcher.ingester()
        return ingester

    def _existing(self, keys: list[tuple[Category, str]]) -> dict[tuple[Category, str], Any]:
        found: dict[tuple[Category, str], Any] = {}
        by_category: dict[Category, list[str]] = {}
        for category, national_id in keys:
            by_category.setdefault(category, []).append(national_id)
        with self.node.engine.connect() as conn:
            for category, ids in by_category.items():
                rows = conn.execute(
                    select(national_records).where(
                        national_records.c.category == category.value,
                        national_records.c.national_id.in_(ids),
                    )
                ).all()
                found.update({(category, r.national_id): r for r in rows})
        return found

    def _worker_pool(self) -> Executor:
        if self._pool is None:
            settings = self.node.config.settings()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(settings.model_dump_json(),),
            )
        return self._pool

    _last_error: PrumError = BadInput("no record was refused")


def _parts(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``values`` in slices small enough for one IN list."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _conflict(exc: PrumError | IntegrityError) -> PrumError:
    if isinstance(exc, PrumError):
        return exc
    return InvalidRecord(f"the record conflicts with a stored one: {exc.orig}")


def _raw(record: RecordIn) -> bytes:
    try:
        return record.sample.raw()
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None


def _meta(record: RecordIn, record_hash: str | None = None) -> RecordMeta:
    return RecordMeta(
        source_key=source_key(record, record_hash),
        subject=record.subject_category,
        provenance=record.provenance,
        date_of_birth=record.date_of_birth,
        synthetic=record.synthetic,
        collection=record.sample.collection,
        position=record.sample.position,
        person_key=record.person_key,
    )


def _refused(line: int, request: RecordIn | DeletionIn | None, error: PrumError) -> RecordResult:
    return RecordResult(
        line=line,
        category=request.category if request else None,
        national_id=request.national_id if request else None,
        outcome=Outcome.REFUSED,
        error=ErrorInfo(code=error.code, message=error.message[:2000], details={}),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- worker processes (faces and fingerprints) ----------------------------------------

_worker_settings: Settings | None = None
_worker_preparers: dict[Category, Any] = {}


def _init_worker(settings_json: str) -> None:
    global _worker_settings
    # One model instance per process, one thread each (dlib is not thread-safe).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_settings = Settings.model_validate_json(settings_json)


def _job(
    record: RecordIn, record_hash: str | None = None
) -> tuple[Category, bytes | PrumError, str, RecordMeta]:
    try:
        raw: bytes | PrumError = _raw(record)
    except PrumError as exc:
        raw = exc
    return record.category, raw, record.sample.format.value, _meta(record, record_hash)


def _prepare_job(job: tuple[Category, bytes | PrumError, str, RecordMeta]) -> tuple[bool, Any]:
    category, raw, fmt, meta = job
    if isinstance(raw, PrumError):
        return False, raw
    assert _worker_settings is not None, "worker not initialised"
    try:
        if category not in _worker_preparers:
            _worker_preparers[category] = make_preparer(category, _worker_settings)
        return True, _worker_preparers[category].prepare(raw, fmt, meta)
    except PrumError as exc:
        return False, exc
