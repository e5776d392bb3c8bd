"""The router's audit trail: metadata events, written in order by one background thread.

An append to the hash-chained log is a database transaction with a synchronous commit
(milliseconds on a disk). The router must not make a requester wait for one commit per
requested party, nor block its event loop on them; so events go into a queue that one
thread writes in arrival order, taking everything queued so far in one transaction
(:meth:`AuditLog.append_many`): the N answers of a search cost one commit, not N, and
the busier the router, the larger the batches. A search is answered only once its
entries are committed (:meth:`AuditTrail.committed`), so no answer a requester got is
missing from the log of a router killed at any moment. The
router does nothing it cannot log: when the log fails, or falls more than ``backlog``
events behind, :meth:`AuditTrail.ready` refuses new work (503) until it has caught up.
On shutdown the queue is written out before the process ends.

Only :class:`prum.audit.events.AuditEvent` fields reach the log: parties, category,
purpose, offence, case reference, message ids, outcomes, counts, durations and
signatures. There is no field a probe, an image or a name would fit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import sys
import threading
import time
from typing import Any

from pydantic import ValidationError

from prum.audit.events import AuditEvent, EventKind
from prum.audit.log import AuditLog
from prum.errors import AuditUnavailable, InvalidAuditEvent, PrumError

# How long the writer waits before retrying an append the database refused.
RETRY_SECONDS = 1.0
# How long shutdown waits for the queue to be written out.
DRAIN_SECONDS = 30.0
# The most events in one transaction: a few tens of ms of SQLite's write lock.
MAX_BATCH = 500
# How long a search may wait for its entries to be committed before the router gives
# up on it (503): the log is failing or far behind.
COMMIT_WAIT_S = 5.0


def audit_event(kind: EventKind, **fields: Any) -> AuditEvent:
    """An event from whatever fields are known; a field the log cannot hold is left out.

    Message fields are bounded differently from log fields (a request number may hold
    a control character, which a log line may not): the entry is still written, without
    that field, and ``detail`` names what was left out.
    """
    fields = {name: value for name, value in fields.items() if value is not None}
    at = dt.datetime.now(dt.UTC)
    while True:
        try:
            return AuditEvent(at=at, kind=kind, **fields)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]} & set(fields)
            if not bad:
                raise InvalidAuditEvent(f"cannot build a {kind.value} audit event") from None
            for name in bad:
                fields.pop(name)
            if "detail" not in bad:
                fields["detail"] = f"not loggable: {', '.join(sorted(bad))}"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # it may have timed out meanwhile
        waiter.set_result(None)


class AuditTrail:
    """Writes events to an :class:`AuditLog` in order, on one background thread."""

    def __init__(self, log: AuditLog, *, backlog: int) -> None:
        self.log = log
        self.backlog = backlog
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue()
        self._pending = 0  # queued or being written: counted down after the commit
        self._recorded = 0  # events queued so far: an event's ticket is this count
        self._done = 0  # events committed (or dropped as unloggable) so far, in order
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="router-audit", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        return self._pending

    @property
    def failure(self) -> str | None:
        """Why the last append failed, while the writer is retrying it; else None."""
        return self._failure

    def ready(self) -> None:
        """Raise AuditUnavailable when new work could not be logged now."""
        if self._failure is not None:
            raise AuditUnavailable(f"the audit log is failing ({self._failure}); try again later")
        pending = self._pending
        if pending >= self.backlog:
            raise AuditUnavailable(
                f"the audit log is {pending} entries behind; try again shortly",
                pending=pending,
            )

    def record(self, event: AuditEvent) -> int:
        """Queue one event; it is committed after every event queued before it.
        Returns its ticket for :meth:`committed`."""
        with self._lock:
            self._pending += 1
            self._recorded += 1
            ticket = self._recorded
            self._queue.put(event)  # under the lock: tickets follow the queue's order
        return ticket

    async def committed(self, ticket: int, timeout: float = COMMIT_WAIT_S) -> None:
        """Return once the event of ``ticket`` (and every one before it) is committed:
        what the router does next is then on record, whatever happens to the process.
        Group commit: searches waiting together share one transaction."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._done >= ticket:
                return
            waiter = loop.create_future()
            self._waiters.append((ticket, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise AuditUnavailable(
                f"the audit log did not record this within {timeout:g} s"
                f" ({self._failure or f'{self._pending} entries behind'}); try again later"
            ) from None

    def join(self) -> None:
        """Wait until every queued event is committed (tests, benchmarks, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        """Write out the queue (up to DRAIN_SECONDS), then stop the writer and the log."""
        self._queue.put(None)
        self._thread.join(DRAIN_SECONDS)
        if self._thread.is_alive():
            print(
                f"router: {self._pending} audit entries were not written at shutdown",
                file=sys.stderr,
            )
        self.log.close()
        if self.log.statistics is not None:
            self.log.statistics.close()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH and batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [event for event in batch if event is not None]
            try:
                if events:
                    self._append(events)
            finally:
                with self._lock:
                    self._pending -= len(events)
                    self._done += len(events)
                    ready = [w for t, w in self._waiters if t <= self._done]
                    self._waiters = [(t, w) for t, w in self._waiters if t > self._done]
                for waiter in ready:
                    waiter.get_loop().call_soon_threadsafe(_wake, waiter)
                for _ in batch:
                    self._queue.task_done()
            if batch[-1] is None:
                return

    def _append(self, events: list[AuditEvent]) -> None:
        while True:
            try:
                self.log.append_many(events)
                self._failure = None
                return
            except InvalidAuditEvent as exc:  # cannot happen for audit_event(); never retry
                if len(events) == 1:
                    print(f"router: audit event dropped: {exc.code}", file=sys.stderr)
                    return
                for event in events:  # write the others, drop only the culprit
                    self._append([event])
                return
            except PrumError as exc:
                self._failure = exc.code
                print(f"router: audit append failed ({exc.code}); retrying", file=sys.stderr)
                time.sleep(RETRY_SECONDS)
