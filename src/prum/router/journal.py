"""The router's audit trail: metadata events, written in order by one background thread.

An append to the hash-chained log is a database transaction with a synchronous commit
(milliseconds on a disk). The router must not make a requester wait for one commit per
requested party, nor block its event loop on them; so events go into a queue that one
thread writes in arrival order. The router does nothing it cannot log: when the log
fails, or falls more than ``backlog`` events behind, :meth:`AuditTrail.ready` refuses
new work (503) until it has caught up. On shutdown the queue is written out before the
process ends.

Only :class:`prum.audit.events.AuditEvent` fields reach the log: parties, category,
purpose, offence, case reference, message ids, outcomes, counts, durations and
signatures. There is no field a probe, an image or a name would fit.
"""

from __future__ import annotations

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


class AuditTrail:
    """Writes events to an :class:`AuditLog` in order, on one background thread."""

    def __init__(self, log: AuditLog, *, backlog: int) -> None:
        self.log = log
        self.backlog = backlog
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="router-audit", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        return self._queue.qsize()

    @property
    def failure(self) -> str | None:
        """Why the last append failed, while the writer is retrying it; else None."""
        return self._failure

    def ready(self) -> None:
        """Raise AuditUnavailable when new work could not be logged now."""
        if self._failure is not None:
            raise AuditUnavailable(f"the audit log is failing ({self._failure}); try again later")
        if self._queue.qsize() >= self.backlog:
            raise AuditUnavailable(
                f"the audit log is {self._queue.qsize()} entries behind; try again shortly",
                pending=self._queue.qsize(),
            )

    def record(self, event: AuditEvent) -> None:
        """Queue one event; it is committed after every event queued before it."""
        self._queue.put(event)

    def join(self) -> None:
        """Wait until every queued event is committed (tests, benchmarks, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        """Write out the queue (up to DRAIN_SECONDS), then stop the writer and the log."""
        self._queue.put(None)
        self._thread.join(DRAIN_SECONDS)
        if self._thread.is_alive():
            print(
                f"router: {self._queue.qsize()} audit entries were not written at shutdown",
                file=sys.stderr,
            )
        self.log.close()
        if self.log.statistics is not None:
            self.log.statistics.close()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._append(event)
            finally:
                self._queue.task_done()

    def _append(self, event: AuditEvent) -> None:
        while True:
            try:
                self.log.append(event)
                self._failure = None
                return
            except InvalidAuditEvent as exc:  # cannot happen for audit_event(); never retry
                print(f"router: audit event dropped: {exc.code}", file=sys.stderr)
                return
            except PrumError as exc:
                self._failure = exc.code
                print(f"router: audit append failed ({exc.code}); retrying", file=sys.stderr)
                time.sleep(RETRY_SECONDS)
