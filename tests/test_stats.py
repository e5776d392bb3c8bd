"""Statistics without personal data, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from prum.audit.events import AuditEvent
from prum.audit.log import AuditLog
from prum.audit.stats import BUCKETS_MS, Statistics, counters_for, estimate_percentile
from prum.errors import InvalidAuditSetup

JAN = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
FEB = dt.datetime(2026, 2, 3, 9, 30, tzinfo=dt.UTC)

# Values that identify a person or a case: none may reach the statistics.
PERSONAL = {
    "case_reference": "AT/2026/SECRET-CASE",
    "user": "officer-4711",
    "message_id": "0f0e0d0c-0b0a-4000-8000-000000000001",
    "request_number": "REQ-SECRET-1",
    "reference": ["DE-F-00DEADBEEF00"],
    "signature": "c2lnbmF0dXJlLW9mLXRoZS1tZXNzYWdl",
    "detail": "a detail nobody should count",
}


def event(kind: str, at: dt.datetime = JAN, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "at": at,
        "kind": kind,
        "requesting_party": "AT",
        "requested_party": "DE",
        "category": "face",
        "purpose": "investigation",
        **PERSONAL,
    }
    values.update(fields)
    return AuditEvent(**values)


def a_month_of_exchanges() -> list[AuditEvent]:
    return [
        event("search_sent"),
        event("search_sent", purpose="missing_person"),
        event("search_answered", outcome="answered", candidate_count=3, duration_ms=400),
        event("search_answered", outcome="no_hit", duration_ms=1200),
        event("search_answered", outcome="timeout", requested_party="FR"),
        event("candidate_verified", outcome="confirmed"),
        event("candidate_verified", outcome="rejected"),
        event("core_data_requested"),
        event("core_data_decided", outcome="released"),
        event("core_data_decided", outcome="refused", reason_code="disproportionate"),
        event("search_sent", at=FEB, category="dna"),
        event("login", outcome="ok"),  # counted nowhere
    ]


# --- the mapping from events to counters -----------------------------------------------


def test_a_search_counts_for_the_requesting_party() -> None:
    assert counters_for(event("search_sent")) == [("AT", "searches", 1)]
    assert counters_for(event("search_sent", purpose="missing_person")) == [
        ("AT", "searches", 1),
        ("AT", "missing_person_searches", 1),
    ]


def test_an_answer_counts_hits_for_the_requester_and_timing_for_the_answerer() -> None:
    counts = counters_for(
        event("search_answered", outcome="answered", candidate_count=4, duration_ms=300)
    )
    assert ("AT", "hits", 1) in counts and ("AT", "candidates", 4) in counts
    assert ("DE", "answers", 1) in counts and ("DE", "response_count", 1) in counts
    assert ("DE", "response_le_500", 1) in counts
    empty = counters_for(event("search_answered", outcome="answered", candidate_count=0))
    assert ("AT", "no_hits", 1) in empty


def test_a_timeout_counts_against_the_requested_partys_availability() -> None:
    counts = counters_for(event("search_answered", outcome="timeout", duration_ms=10_000))
    assert counts == [("DE", "answers", 1), ("DE", "timeouts", 1)]  # no response time


def test_a_received_search_counts_for_the_receiver_or_at_the_router_the_requester() -> None:
    assert counters_for(event("search_received")) == [("DE", "searches_received", 1)]
    # The router's entry names no requested party: it was received from AT.
    router_entry = event("search_received", requested_party=None)
    assert counters_for(router_entry) == [("AT", "searches_received", 1)]


def test_release_decisions_count_for_the_holder() -> None:
    assert counters_for(event("core_data_decided", outcome="released")) == [
        ("DE", "core_data_released", 1)
    ]
    assert counters_for(event("core_data_decided", outcome="refused")) == [
        ("DE", "core_data_refused", 1)
    ]
    assert counters_for(event("login")) == []


def test_percentiles_are_estimated_inside_the_bucket() -> None:
    histogram = [0] * (len(BUCKETS_MS) + 1)
    histogram[2] = 10  # ten responses in (250, 500] ms
    assert estimate_percentile(histogram, 0.5) == pytest.approx(375.0)
    assert estimate_percentile([0] * len(histogram), 0.5) is None
    histogram[-1] = 90  # beyond the last bound: only "at least" is known
    assert estimate_percentile(histogram, 0.95) == BUCKETS_MS[-1]


# --- counters in the database ----------------------------------------------------------


@pytest.fixture
def stats(database_url: str) -> Statistics:
    return Statistics(database_url)


def test_summary_is_nested_by_party_category_purpose_and_month(stats: Statistics) -> None:
    for e in a_month_of_exchanges():
        stats.record(e)
    summary = stats.summary()
    json.dumps(summary)  # JSON-able as it is
    at = summary["parties"]["AT"]
    assert at["face"]["investigation"]["2026-01"] == {
        "searches": 1,
        "hits": 1,
        "candidates": 3,
        "no_hits": 1,
        "confirmed_matches": 1,
        "rejected_candidates": 1,
        "core_data_requests": 1,
    }
    assert at["face"]["missing_person"]["2026-01"] == {
        "searches": 1,
        "missing_person_searches": 1,
    }
    assert at["dna"]["investigation"]["2026-02"] == {"searches": 1}
    de = summary["parties"]["DE"]["face"]["investigation"]["2026-01"]
    assert de["answers"] == 2 and de["availability"] == 1.0
    assert (de["core_data_released"], de["core_data_refused"]) == (1, 1)
    assert de["response_time"]["count"] == 2 and de["response_time"]["mean_ms"] == 800.0
    fr = summary["parties"]["FR"]["face"]["investigation"]["2026-01"]
    assert fr == {"answers": 1, "timeouts": 1, "availability": 0.0}
    assert summary["totals"]["AT"]["face"]["searches"] == 2


def test_summary_filters_by_year_and_party(stats: Statistics) -> None:
    stats.record(event("search_sent"))
    stats.record(event("search_sent", at=dt.datetime(2025, 12, 31, 23, 59, tzinfo=dt.UTC)))
    stats.record(event("search_sent", requesting_party="DE"))
    assert set(stats.summary(year=2025)["parties"]) == {"AT"}
    assert stats.summary(year=2026, party="AT")["totals"] == {"AT": {"face": {"searches": 1}}}
    with pytest.raises(InvalidAuditSetup):
        stats.summary(year=12)


def test_the_summary_carries_no_personal_data(stats: Statistics) -> None:
    for e in a_month_of_exchanges():
        stats.record(e)
    text = json.dumps(stats.summary())
    for value in PERSONAL.values():
        for part in value if isinstance(value, list) else [value]:
            assert part not in text
    for name in PERSONAL:
        assert f'"{name}"' not in text


def test_concurrent_increments_are_not_lost(stats: Statistics) -> None:
    def worker() -> None:
        for _ in range(25):
            stats.record(event("search_sent"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.summary()["totals"]["AT"]["face"]["searches"] == 100


def test_the_log_counts_as_it_appends_and_purging_keeps_the_counts(database_url: str) -> None:
    stats = Statistics(database_url)
    log = AuditLog(database_url, party="AT", statistics=stats)
    for e in a_month_of_exchanges():
        log.append(e)
    before = stats.summary()
    assert before["totals"]["AT"]["face"]["searches"] == 2
    assert log.purge(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == 12
    assert stats.summary() == before  # retention erases logs, never statistics
    assert log.verify().ok


def test_a_batch_counts_as_its_events_appended_one_by_one(
    database_url: str, tmp_path: Path
) -> None:
    one_by_one = Statistics(f"sqlite:///{tmp_path / 'single.sqlite'}")
    for e in a_month_of_exchanges():
        one_by_one.record(e)
    stats = Statistics(database_url)
    log = AuditLog(database_url, party="AT", statistics=stats)
    log.append_many(a_month_of_exchanges())
    assert stats.summary() == one_by_one.summary()


def test_statistics_may_live_in_another_database(tmp_path: Path) -> None:
    stats = Statistics(f"sqlite:///{tmp_path / 'stats.sqlite'}")
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}", party="AT", statistics=stats)
    log.append(event("search_sent"))
    log.append_many([event("search_sent"), event("search_sent", category="dna")])
    totals = stats.summary()["totals"]["AT"]
    assert (totals["face"]["searches"], totals["dna"]["searches"]) == (2, 1)
