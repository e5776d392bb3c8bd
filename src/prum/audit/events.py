"""What an audit entry may say: metadata of an exchange, never its payload.

Reg. 2024/982 lists what the logs of every request and answer carry: the parties,
times, request and answer numbers, reference numbers, type of data, outcome, and (in
the national log only) who searched. :class:`AuditEvent` is exactly that list. There is
no free-form payload: every string is short and most have a strict pattern, so nothing
that could be an image, a DNA profile or a name fits (``extra="forbid"``).

The canonical JSON of this module is what the hash chain hashes: UTF-8, keys sorted,
no insignificant whitespace, absent fields omitted, times in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Anyone can recompute it with any JSON library.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
)

from prum.errors import InvalidAuditEvent
from prum.federation.messages import Category, OffenceCode, Party, Pseudonym, Purpose

# One printable line: no control characters, so an entry cannot smuggle a file.
_LINE = r"^[^\x00-\x1f\x7f]*$"
_Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
_Number = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_LINE)]
_Reference = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=_LINE)]
# A message signature (base64): ECDSA P-384 is ~140 characters, RSA-4096 684.
_Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/=_-]{16,1024}$")]
_ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
_Detail = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_LINE)]
_NationalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_LINE)]
_CaseReference = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_LINE)]


class EventKind(StrEnum):
    """What happened. Append new kinds at the end; statistics map some of them."""

    SEARCH_SENT = "search_sent"  # a search left for one requested party
    SEARCH_RECEIVED = "search_received"  # a search arrived from a requesting party
    SEARCH_ANSWERED = "search_answered"  # one requested party's answer (or its absence)
    REFUSED = "refused"  # refused before sending or on arrival (policy, bad input)
    CANDIDATE_VERIFIED = "candidate_verified"  # human decision on one candidate
    CORE_DATA_REQUESTED = "core_data_requested"
    CORE_DATA_DECIDED = "core_data_decided"  # the holder's release decision
    CORE_DATA_DELIVERED = "core_data_delivered"
    VEHICLE_QUERY = "vehicle_query"
    LOGIN = "login"
    LOGOUT = "logout"
    CONFIG_CHANGED = "config_changed"
    RECORD_ENROLLED = "record_enrolled"
    RECORD_DELETED = "record_deleted"
    LOG_VIEWED = "log_viewed"  # a supervisor read the log (who watches the watchers)
    PURGE = "purge"  # retention: entries deleted (written by AuditLog.purge)
    RECORD_UPDATED = "record_updated"  # a national system changed a record (new version)
    # A holder's erased or rectified record withdrawn from a party it had sent it to: at
    # the holder (notice queued), the router (forwarded) and the receiver (copies removed).
    RECORD_WITHDRAWN = "record_withdrawn"
    # An examiner asks to change a verdict on which core data were requested; it takes
    # effect (verdict_changed) only when a second examiner countersigns it.
    VERDICT_CHANGE_PROPOSED = "verdict_change_proposed"
    VERDICT_CHANGED = "verdict_changed"  # outcome: the new verdict; previous_outcome: the old
    # A holder held a core-data request back or took it up again (holder and requester).
    CORE_DATA_HELD = "core_data_held"
    # A requester withdrew its core-data request (requester and holder).
    CORE_DATA_CANCELLED = "core_data_cancelled"
    # The comparison report (PDF) of a decision was downloaded; detail: its SHA-256.
    REPORT_ISSUED = "report_issued"


class Outcome(StrEnum):
    """How it ended: reply statuses, human decisions and release decisions."""

    ANSWERED = "answered"
    NO_HIT = "no_hit"
    HIT = "hit"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"
    ERROR = "error"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"
    RELEASED = "released"
    DELIVERED = "delivered"
    OK = "ok"
    FAILED = "failed"


class AuditEvent(BaseModel):
    """One loggable fact. Only ``at`` and ``kind`` are required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: AwareDatetime
    kind: EventKind
    requesting_party: Party | None = None
    requested_party: Party | None = None
    category: Category | None = None
    purpose: Purpose | None = None
    offence: OffenceCode | None = None
    max_penalty_months: Annotated[int, Field(ge=0, le=1200)] | None = None
    case_reference: _CaseReference | None = None
    user: Pseudonym | None = None  # pseudonymous national user id
    message_id: _Token | None = None
    request_number: _Number | None = None
    reference: Annotated[list[_Reference], Field(max_length=100)] | None = None
    outcome: Outcome | None = None
    reason_code: _ReasonCode | None = None
    candidate_count: Annotated[int, Field(ge=0, le=1000)] | None = None
    # Candidates found but kept at home, below the release threshold (how many only).
    withheld_count: Annotated[int, Field(ge=0, le=100_000)] | None = None
    # Answered under the national "investigative" setting (top candidates, any strength).
    investigative: bool | None = None
    duration_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    signature: _Signature | None = None  # of the exchanged message: non-repudiation
    detail: _Detail | None = None
    # The national system's own identifier of a record it wrote (a record number, never
    # a name: docs/national-systems.md).
    national_id: _NationalId | None = None
    # The verdict a human decision replaced (candidate_verified, verdict_changed): the
    # statistics move the candidate from the old count to the new.
    previous_outcome: Outcome | None = None

    @field_validator("at")
    @classmethod
    def _to_utc(cls, value: dt.datetime) -> dt.datetime:
        return value.astimezone(dt.UTC)

    @field_serializer("at")
    def _iso(self, value: dt.datetime) -> str:
        return format_time(value)

    def canonical(self) -> dict[str, Any]:
        """The JSON-able form that is hashed: absent fields omitted."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_event(data: Mapping[str, Any]) -> AuditEvent:
    """Validate untrusted input into an event; :class:`InvalidAuditEvent` if it is not one."""
    try:
        return AuditEvent.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidAuditEvent(f"not a loggable audit event: {problems}") from exc


def format_time(value: dt.datetime) -> str:
    """UTC, fixed width, microseconds: sorts as text in the same order as in time."""
    if value.tzinfo is None:
        raise InvalidAuditEvent("an audit time must carry a time zone (UTC)")
    v = value.astimezone(dt.UTC)  # strftime's format string costs 4 us per call; this 1
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    )


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
