"""Statistics without personal data, per party, category, purpose and month.

Reg. 2024/982 asks for yearly statistics per country and category: searches,
matches, confirmed matches, core-data exchanges, missing-person searches,
availability and response times. They are counters in their own table, kept apart
from the log so that purging logs (retention) never erases them, and incremented in
the same transaction as the log entry when both live in one database.

Which party a counter belongs to (R = requesting party, D = requested party):

==========================  ===============  ====  =====================================
event kind                  outcome          to    counters
==========================  ===============  ====  =====================================
search_sent                 any              R     searches (+ missing_person_searches)
search_received             any              D     searches_received; R when the entry
                                                   names no D (the router's entries);
                                                   candidates_withheld (+= withheld_count),
                                                   investigative_answers
search_answered             hit / answered   R     hits, candidates (+= candidate_count)
search_answered             no_hit           R     no_hits
search_answered             any              D     answers; timeouts, unavailable,
                                                   errors, refusals by outcome;
                                                   response time (duration_ms)
refused                     any              R     refused
candidate_verified          confirmed ...    R     confirmed_matches, rejected_candidates,
                                                   inconclusive_candidates; minus one of
                                                   the previous_outcome's counter, if any
verdict_changed             confirmed ...    R     as candidate_verified, and
                                                   verdicts_changed
core_data_cancelled         any              R     core_data_cancelled (requester's entry
                                                   only: the holder's names no user)
core_data_held              any              D     core_data_held (the hold set, not lifted)
core_data_requested         any              R     core_data_requests
core_data_decided           released/refused D     core_data_released / core_data_refused
core_data_delivered         any              R     core_data_delivered
vehicle_query               any              R     vehicle_queries (+ hits)
record_enrolled             any              D     records_enrolled
record_updated              any              D     records_updated
record_deleted              any              D     records_deleted
==========================  ===============  ====  =====================================

"answered" with a positive ``candidate_count`` counts as a hit; with zero as no hit.
A revised verdict moves its candidate from one count to another in the month of the
revision, so a month's figure can be negative while the year's totals hold.
Response times are kept as count, sum and a fixed histogram, from which p50 and p95
are estimated by linear interpolation inside the bucket (resolution: the bucket).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from prum.audit.events import AuditEvent, EventKind, Outcome
from prum.audit.schema import audit_statistics
from prum.audit.store import insert_many, open_engine, write_transaction
from prum.errors import InvalidAuditSetup, StorageError
from prum.federation.messages import Purpose

NONE = "none"  # a dimension the event does not carry
# Upper bounds (ms) of the response-time histogram: from a local hit (~100 ms) to the
# router's longest deadline class; the last bucket is open ("inf").
BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
RESPONSE_COUNT = "response_count"
RESPONSE_SUM = "response_ms_sum"
_BUCKET_NAMES = (*(f"response_le_{b}" for b in BUCKETS_MS), "response_le_inf")
_KEY = ("month", "party", "category", "purpose", "counter")  # the table's primary key


# Adds to a counter, creating it at 0 first: valid on SQLite (3.24+) and PostgreSQL.
_INSERT = f"INSERT INTO audit_statistics ({', '.join(_KEY)}, value)"
_TYPES = ("text", "text", "text", "text", "text", "bigint")
_ADD = (
    f" ON CONFLICT ({', '.join(_KEY)})"
    " DO UPDATE SET value = audit_statistics.value + excluded.value"
)

_DECISIONS = {
    Outcome.CONFIRMED: "confirmed_matches",
    Outcome.REJECTED: "rejected_candidates",
    Outcome.INCONCLUSIVE: "inconclusive_candidates",
}
_FAILURES = {
    Outcome.TIMEOUT: "timeouts",
    Outcome.UNAVAILABLE: "unavailable",
    Outcome.ERROR: "errors",
    Outcome.REFUSED: "refusals",
}
_RELEASES = {Outcome.RELEASED: "core_data_released", Outcome.REFUSED: "core_data_refused"}
# A national system's writes, counted for the holding party (requested_party).
_RECORDS = {
    EventKind.RECORD_ENROLLED: "records_enrolled",
    EventKind.RECORD_UPDATED: "records_updated",
    EventKind.RECORD_DELETED: "records_deleted",
}
_SIMPLE = {
    EventKind.REFUSED: "refused",
    EventKind.CORE_DATA_REQUESTED: "core_data_requests",
    EventKind.CORE_DATA_DELIVERED: "core_data_delivered",
    EventKind.VEHICLE_QUERY: "vehicle_queries",
}


def counters_for(event: AuditEvent) -> list[tuple[str | None, str, int]]:
    """(party, counter, increment) for one event, following the table above."""
    req, resp = event.requesting_party, event.requested_party
    out: list[tuple[str | None, str, int]] = []
    kind, outcome = event.kind, event.outcome
    if kind == EventKind.SEARCH_SENT:
        out.append((req, "searches", 1))
        if event.purpose == Purpose.MISSING_PERSON:
            out.append((req, "missing_person_searches", 1))
    elif kind == EventKind.SEARCH_RECEIVED:
        out.append((resp or req, "searches_received", 1))
        if event.withheld_count:
            out.append((resp or req, "candidates_withheld", event.withheld_count))
        if event.investigative:
            out.append((resp or req, "investigative_answers", 1))
    elif kind == EventKind.SEARCH_ANSWERED:
        out.append((resp, "answers", 1))
        candidates = event.candidate_count or 0
        if outcome == Outcome.HIT or (outcome == Outcome.ANSWERED and candidates > 0):
            out += [(req, "hits", 1), (req, "candidates", candidates)]
        elif outcome in (Outcome.NO_HIT, Outcome.ANSWERED):
            out.append((req, "no_hits", 1))
        elif outcome in _FAILURES:
            out.append((resp, _FAILURES[outcome], 1))
        if event.duration_ms is not None and outcome not in (Outcome.TIMEOUT, Outcome.UNAVAILABLE):
            out += [(resp, name, n) for name, n in _response_time(event.duration_ms)]
    elif kind in (EventKind.CANDIDATE_VERIFIED, EventKind.VERDICT_CHANGED):
        if outcome in _DECISIONS:
            out.append((req, _DECISIONS[outcome], 1))
        if event.previous_outcome in _DECISIONS:
            out.append((req, _DECISIONS[event.previous_outcome], -1))
        if kind == EventKind.VERDICT_CHANGED:
            out.append((req, "verdicts_changed", 1))
    elif kind == EventKind.CORE_DATA_CANCELLED and event.user is not None:
        out.append((req, "core_data_cancelled", 1))
    elif kind == EventKind.CORE_DATA_HELD and event.reason_code is not None:
        out.append((resp, "core_data_held", 1))
    elif kind == EventKind.CORE_DATA_DECIDED and outcome in _RELEASES:
        out.append((resp, _RELEASES[outcome], 1))
    elif kind in _RECORDS:
        out.append((resp or req, _RECORDS[kind], 1))
    elif kind in _SIMPLE:
        out.append((req, _SIMPLE[kind], 1))
        if kind == EventKind.VEHICLE_QUERY and outcome == Outcome.HIT:
            out.append((req, "hits", 1))
    return out


def _response_time(ms: int) -> list[tuple[str, int]]:
    bucket = next((i for i, bound in enumerate(BUCKETS_MS) if ms <= bound), len(BUCKETS_MS))
    return [(RESPONSE_COUNT, 1), (RESPONSE_SUM, ms), (_BUCKET_NAMES[bucket], 1)]


def estimate_percentile(histogram: list[int], q: float) -> float | None:
    """The q-quantile (0 < q < 1) from bucket counts, interpolated inside its bucket."""
    total = sum(histogram)
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for count, upper in zip(histogram, (*BUCKETS_MS, None), strict=True):
        if count and seen + count >= rank:
            if upper is None:
                return lower  # open bucket: all we know is "at least"
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = float(upper) if upper is not None else lower
    return lower


class Statistics:
    """Counters in ``audit_statistics``; safe under concurrent writers (upserts)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = open_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def record(self, *events: AuditEvent) -> None:
        """Count events in one transaction."""
        try:
            with write_transaction(self.engine) as conn:
                self.record_in(conn, *events)
        except SQLAlchemyError as exc:
            raise StorageError(f"the statistics database refused the update: {exc}") from exc

    def record_in(self, conn: Connection, *events: AuditEvent) -> None:
        """Count events inside the caller's transaction (the log's append)."""
        increments: dict[tuple[str, str, str, str, str], int] = defaultdict(int)
        for event in events:
            month = event.at.strftime("%Y-%m")
            category = NONE if event.category is None else event.category.value
            purpose = NONE if event.purpose is None else event.purpose.value
            for party, counter, amount in counters_for(event):
                increments[(month, party or NONE, category, purpose, counter)] += amount
        if not increments:
            return
        rows = [(*key, amount) for key, amount in sorted(increments.items())]  # one lock order
        insert_many(conn, _INSERT, _TYPES, rows, _ADD)

    def summary(self, year: int | None = None, party: str | None = None) -> dict[str, Any]:
        """Counters nested party -> category -> purpose -> month, and yearly totals.

        JSON-able; carries counts only. Response times appear as ``response_time``:
        ``{"count", "mean_ms", "p50_ms", "p95_ms"}``; searches answered with a
        response as ``availability`` (share of answers that were not timeouts or
        unavailable).
        """
        query = select(audit_statistics)
        if year is not None:
            if not 1970 <= year <= 9999:
                raise InvalidAuditSetup(f"{year} is not a year")
            query = query.where(audit_statistics.c.month.like(f"{year:04d}-%"))
        if party is not None:
            query = query.where(audit_statistics.c.party == party)
        query = query.order_by(
            audit_statistics.c.party,
            audit_statistics.c.category,
            audit_statistics.c.purpose,
            audit_statistics.c.month,
        )
        nested: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        try:
            with self.engine.connect() as conn:
                for row in conn.execute(query):
                    by_month = nested.setdefault(row.party, {}).setdefault(row.category, {})
                    cell = by_month.setdefault(row.purpose, {}).setdefault(row.month, {})
                    cell[row.counter] = int(row.value)
                    total = totals.setdefault(row.party, {}).setdefault(row.category, {})
                    total[row.counter] = total.get(row.counter, 0) + int(row.value)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the statistics: {exc}") from exc
        for categories in nested.values():
            for purposes in categories.values():
                for months in purposes.values():
                    for cell in months.values():
                        _finish(cell)
        for categories in totals.values():
            for cell in categories.values():
                _finish(cell)
        return {"year": year, "party": party, "parties": nested, "totals": totals}


def _finish(cell: dict[str, Any]) -> None:
    """Replace raw histogram counters by response_time; add availability."""
    histogram = [int(cell.pop(name, 0)) for name in _BUCKET_NAMES]
    count = int(cell.pop(RESPONSE_COUNT, 0))
    total_ms = int(cell.pop(RESPONSE_SUM, 0))
    if count:
        p50, p95 = estimate_percentile(histogram, 0.5), estimate_percentile(histogram, 0.95)
        cell["response_time"] = {
            "count": count,
            "mean_ms": round(total_ms / count, 1),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1),
        }
    answers = int(cell.get("answers", 0))
    if answers:
        missing = int(cell.get("timeouts", 0)) + int(cell.get("unavailable", 0))
        cell["availability"] = round((answers - missing) / answers, 4)
