"""Retention by data class: what a node keeps of its own searches and of what other
parties sent it, and for how long (issue 28; the periods are national configuration,
:class:`prum.node.config.RetentionSettings`).

Classes, each purged in one transaction together with its audit entry (counts and the
class, never what was deleted), so a crash mid-purge leaves each class purged or not:

- ``searches``: the probes this node sent and the candidate lists it received (images,
  scores, references), and the comparison reports written from them (the report's hash
  stays in the audit log, ``report_issued``). The search's metadata stay (who searched,
  when, for which case, each party's status), so the case history and statistics
  remain; a search whose core data are still awaited is kept until the answer comes.
- ``core_data``: core data received after a release; the request stays, marked purged.
- ``verifications``: examiners' decisions on candidates, with their comparison reports.
- ``notifications``: what the workbench told its users (kept as long as searches).
- ``web_sessions``: workbench sessions past their expiry.
- ``audit_log``: the log's own purge (a signed anchor keeps the rest verifiable).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, null, select, update

from prum.audit.events import AuditEvent, EventKind, format_time
from prum.audit.schema import audit_entries
from prum.federation.security.signing import AuditVerifier
from prum.node.core import Node, utcnow
from prum.node.schema import (
    notifications,
    reports,
    requests_out,
    searches,
    verifications,
    web_sessions,
)

CLASSES = ("searches", "core_data", "verifications", "notifications", "web_sessions", "audit_log")
WORDS = {
    "searches": "probes sent and candidate lists received",
    "core_data": "core data received",
    "verifications": "examiners' decisions",
    "notifications": "notifications of workbench users",
    "web_sessions": "expired workbench sessions",
    "audit_log": "audit log entries",
}


@dataclass(frozen=True)
class Held:
    """What a node holds of one class, and when the oldest of it goes."""

    data_class: str
    held: int
    oldest: dt.datetime | None
    period_days: int | None  # None: kept until deleted by hand
    due: int  # how many are past their period now

    @property
    def next_deletion(self) -> dt.datetime | None:
        if self.oldest is None or self.period_days is None:
            return None
        return self.oldest + dt.timedelta(days=self.period_days)


def _cutoff(days: int | None, now: dt.datetime) -> dt.datetime | None:
    return None if days is None else now - dt.timedelta(days=days)


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # the audit log keeps its times as text (UTC)
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    moment: dt.datetime = value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _pending_searches() -> Any:
    """Searches whose core data are still awaited: kept until the answer comes."""
    return select(requests_out.c.search_id).where(requests_out.c.status.in_(["sent", "on_hold"]))


def holdings(node: Node, now: dt.datetime | None = None) -> list[Held]:
    """What the node holds of each class, the oldest item and how many are due."""
    now = now or utcnow()
    periods = node.config.retention
    out = []
    with node.engine.connect() as conn:
        kept = searches.c.probe.is_not(None)
        out.append(_held(conn, "searches", searches.c.created_at, periods.searches_days, now, kept))
        released = (requests_out.c.status == "released") & requests_out.c.reply.is_not(None)
        out.append(
            _held(
                conn, "core_data", requests_out.c.replied_at, periods.core_data_days, now, released
            )
        )
        out.append(
            _held(
                conn, "verifications", verifications.c.decided_at, periods.verifications_days, now
            )
        )
        out.append(
            _held(conn, "notifications", notifications.c.created_at, periods.searches_days, now)
        )
        expired = conn.execute(
            select(func.count()).where(web_sessions.c.expires_at < now)
        ).scalar_one()
        total = conn.execute(select(func.count()).select_from(web_sessions)).scalar_one()
        oldest = conn.execute(select(func.min(web_sessions.c.expires_at))).scalar_one()
        out.append(Held("web_sessions", int(total), _aware(oldest), 0, int(expired)))
    days = periods.audit_log_days
    audit = audit_entries.c
    mine = audit.chain == node.audit.chain
    with node.audit.engine.connect() as conn:
        total = conn.execute(select(func.count()).where(mine)).scalar_one()
        oldest_text = conn.execute(select(func.min(audit.recorded_at)).where(mine)).scalar_one()
        due = 0
        if days is not None:
            cut = format_time(now - dt.timedelta(days=days))
            due = conn.execute(
                select(func.count()).where(mine, audit.recorded_at < cut)
            ).scalar_one()
    out.append(Held("audit_log", int(total), _aware(oldest_text), days, int(due)))
    return out


def _held(
    conn: Connection,
    name: str,
    column: Any,
    days: int | None,
    now: dt.datetime,
    *where: Any,
) -> Held:
    table = column.table
    count = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    oldest = conn.execute(select(func.min(column)).where(*where)).scalar_one()
    cutoff = _cutoff(days, now)
    due = 0
    if cutoff is not None:
        due = conn.execute(
            select(func.count()).select_from(table).where(*where, column < cutoff)
        ).scalar_one()
    return Held(name, int(count), _aware(oldest), days, int(due))


def purge(node: Node, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete what is due in every class; how many of each. Each class is one
    transaction with its audit entry."""
    now = now or utcnow()
    periods = node.config.retention
    done: dict[str, int] = {}
    cutoff = _cutoff(periods.searches_days, now)
    if cutoff is not None:
        done["searches"] = _purge_searches(node, cutoff, now)
        done["notifications"] = _purge_rows(
            node,
            "notifications",
            delete(notifications).where(notifications.c.created_at < cutoff),
        )
    cutoff = _cutoff(periods.core_data_days, now)
    if cutoff is not None:
        done["core_data"] = _purge_core_data(node, cutoff, now)
    cutoff = _cutoff(periods.verifications_days, now)
    if cutoff is not None:
        done["verifications"] = _purge_verifications(node, cutoff)
    done["web_sessions"] = _purge_rows(
        node, "web_sessions", delete(web_sessions).where(web_sessions.c.expires_at < now)
    )
    cutoff = _cutoff(periods.audit_log_days, now)
    if cutoff is not None and _audit_due(node, cutoff):
        # The log purges itself (after verifying the whole chain, so only when something
        # is due): a signed anchor and its own purge entry.
        done["audit_log"] = node.audit.purge(cutoff, verifier=AuditVerifier(node.config.pki_dir))
    return done


def _audit_due(node: Node, cutoff: dt.datetime) -> bool:
    audit = audit_entries.c
    with node.audit.engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(audit.recorded_at)).where(audit.chain == node.audit.chain)
        ).scalar_one()
    return oldest is not None and str(oldest) < format_time(cutoff)


def _log(node: Node, conn: Connection, data_class: str, count: int) -> None:
    if count:
        node.audit.append_in(
            conn,
            [
                AuditEvent(
                    at=utcnow(),
                    kind=EventKind.PURGE,
                    requested_party=node.party,
                    reason_code=f"retention.{data_class}",
                    detail=f"retention: {count} {WORDS[data_class]} deleted",
                )
            ],
        )


def _purge_rows(node: Node, data_class: str, statement: Any) -> int:
    with node.audit.transaction() as conn:
        count = int(conn.execute(statement).rowcount or 0)
        _log(node, conn, data_class, count)
    return count


def _purge_searches(node: Node, cutoff: dt.datetime, now: dt.datetime) -> int:
    """Probes and candidate lists go; each party's status and count stay."""
    with node.audit.transaction() as conn:
        rows = conn.execute(
            select(searches.c.id, searches.c.reply).where(
                searches.c.created_at < cutoff,
                searches.c.probe.is_not(None),
                searches.c.id.not_in(_pending_searches()),
            )
        ).all()
        for row in rows:
            conn.execute(
                update(searches)
                .where(searches.c.id == row.id)
                .values(probe=null(), reply=_stripped(row.reply, now))
            )
            # A report shows the probe and the candidate: it goes with them.
            conn.execute(delete(reports).where(reports.c.search_id == row.id))
        _log(node, conn, "searches", len(rows))
    return len(rows)


def _purge_verifications(node: Node, cutoff: dt.datetime) -> int:
    """Examiners' decisions, and the reports written of them, in one transaction."""
    with node.audit.transaction() as conn:
        old = select(verifications.c.id).where(verifications.c.decided_at < cutoff)
        conn.execute(delete(reports).where(reports.c.verification_id.in_(old)))
        count = int(
            conn.execute(delete(verifications).where(verifications.c.decided_at < cutoff)).rowcount
            or 0
        )
        _log(node, conn, "verifications", count)
    return count


def _stripped(reply: Any, now: dt.datetime) -> dict[str, Any]:
    replies = []
    for answer in (reply or {}).get("replies", []):
        kept = {k: v for k, v in answer.items() if k != "candidates"}
        kept["candidates"] = []
        kept["candidates_purged"] = len(answer.get("candidates") or [])
        replies.append(kept)
    return {**(reply or {}), "replies": replies, "purged_at": now.isoformat()}


def _purge_core_data(node: Node, cutoff: dt.datetime, now: dt.datetime) -> int:
    with node.audit.transaction() as conn:
        rows = conn.execute(
            select(requests_out.c.id, requests_out.c.reply).where(
                requests_out.c.status == "released",
                requests_out.c.replied_at < cutoff,
                requests_out.c.reply.is_not(None),
            )
        ).all()
        purged = 0
        for row in rows:
            reply = dict(row.reply or {})
            if "core_data" not in reply:
                continue
            reply.pop("core_data")
            reply["purged_at"] = now.isoformat()
            conn.execute(
                update(requests_out).where(requests_out.c.id == row.id).values(reply=reply)
            )
            purged += 1
        _log(node, conn, "core_data", purged)
    return purged
