"""Retention by data class (issue 28, point 1): each class purged when its period has
passed (time moved, not waited for), what must stay stays, every purge is an audit entry
and the chain still verifies; `prum node retention` shows what is held and when it goes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner

from prum.cli import app
from prum.federation.messages import Category
from prum.federation.security import pki
from prum.federation.security.signing import AuditVerifier
from prum.node import retention
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node, utcnow
from prum.node.notifications import notify
from prum.node.schema import (
    notifications,
    requests_out,
    searches,
    verifications,
    web_sessions,
)

DAY = dt.timedelta(days=1)
RELEASED = {"decision": "released", "core_data": {"surnames": ["X"]}}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    pki.issue(path, "AT", role="node")
    return path


def make_config(tmp_path: Path, pki_dir: Path, database_url: str = "") -> NodeConfig:
    return NodeConfig(
        party="AT",
        data_dir=tmp_path / "at",
        database_url=database_url,
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={Category.FACE: CategoryPolicy()},
    )


def add_search(node: Node, created: dt.datetime, *, pending: bool = False) -> int:
    reply = {
        "replies": [
            {
                "party": "DE",
                "status": "answered",
                "candidates": [{"reference": "DE-F-1", "image": "aW1n", "score": 0.9}],
            }
        ]
    }
    with node.engine.begin() as conn:
        search_id = conn.execute(
            insert(searches).values(
                message_id=f"m-{created.timestamp()}-{pending}",
                request_number="AT-1",
                user="olga",
                category="face",
                purpose="investigation",
                offence="0800 00",
                max_penalty_months=60,
                case_reference="AT-CASE-1",
                targets=["DE"],
                probe={"image": "cHJvYmU="},
                status="answered",
                reply=reply,
                created_at=created,
                answered_at=created,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            insert(requests_out).values(
                message_id=f"r-{search_id}",
                search_id=search_id,
                holder_party="DE",
                reference="DE-F-1",
                user="olga",
                facts="facts of the case, long enough to be reasoned",
                offence="0800 00",
                status="sent" if pending else "released",
                reply=None
                if pending
                else {"decision": "released", "core_data": {"surnames": ["X"]}},
                created_at=created,
                replied_at=None if pending else created,
            )
        )
        conn.execute(
            insert(verifications).values(
                search_id=search_id,
                party="DE",
                reference="DE-F-1",
                decision="confirmed",
                justification="same person",
                user="eric",
                decided_at=created,
            )
        )
    return int(search_id)


@pytest.fixture
def node(tmp_path: Path, pki_dir: Path, database_url: str) -> Any:
    node = Node(make_config(tmp_path, pki_dir, database_url))
    node.log(kind="login", user="olga")
    yield node
    node.close()


def test_each_class_is_purged_when_its_period_has_passed(node: Node) -> None:
    now = utcnow()
    old = add_search(node, now - 400 * DAY)
    waiting = add_search(node, now - 400 * DAY, pending=True)
    recent = add_search(node, now - 10 * DAY)
    with node.engine.begin() as conn:
        conn.execute(
            insert(web_sessions).values(
                id_hash="a" * 64,
                user="olga",
                csrf_token="t",
                created_at=now - 2 * DAY,
                last_seen_at=now - 2 * DAY,
                expires_at=now - DAY,
            )
        )
    done = retention.purge(node, now)
    assert done["searches"] == 1  # the old one; the one awaiting core data stays
    assert done["core_data"] == 1 and done["verifications"] == 0 and done["web_sessions"] == 1
    with node.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(searches))}
        core = conn.execute(select(requests_out.c.reply).where(requests_out.c.search_id == old))
        core_reply = core.scalar_one()
    assert rows[old].probe is None and rows[old].reply["replies"][0]["candidates"] == []
    assert rows[old].reply["replies"][0]["candidates_purged"] == 1
    assert rows[old].reply["replies"][0]["status"] == "answered"  # the answer's metadata stay
    assert rows[waiting].probe is not None and rows[recent].probe is not None
    assert "core_data" not in core_reply and core_reply["purged_at"]
    purges = node.audit.entries(kind="purge", limit=10)
    assert {e.event.reason_code for e in purges} >= {
        "retention.searches",
        "retention.core_data",
        "retention.web_sessions",
    }
    assert all("DE-F-1" not in (e.event.detail or "") for e in purges)  # counts, not data
    assert node.audit.verify(AuditVerifier(node.config.pki_dir)).ok
    # A second run finds nothing more due.
    again = retention.purge(node, now)
    assert again["searches"] == 0 and again["core_data"] == 0


def test_decisions_and_the_log_go_after_their_longer_periods(node: Node) -> None:
    later = utcnow() + 4 * 365 * DAY  # the clock moved four years on
    add_search(node, utcnow())
    done = retention.purge(node, later)
    assert done["verifications"] == 1
    assert done["audit_log"] >= 1
    with node.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(verifications)).scalar_one() == 0
    report = node.audit.verify(AuditVerifier(node.config.pki_dir))
    assert report.ok, report.problem


def test_holdings_say_what_is_held_and_when_it_goes(node: Node) -> None:
    now = utcnow()
    add_search(node, now - 100 * DAY)
    held = {h.data_class: h for h in retention.holdings(node, now)}
    assert set(held) == set(retention.CLASSES)
    searches_held = held["searches"]
    assert searches_held.held == 1 and searches_held.due == 0
    assert searches_held.next_deletion is not None
    assert abs((searches_held.next_deletion - (now + 80 * DAY)).total_seconds()) < 5
    assert held["audit_log"].held >= 1


def test_retention_command_shows_a_table_and_runs(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir)
    path = tmp_path / "node.json"
    path.write_text(config.model_dump_json())
    node = Node(config)
    add_search(node, utcnow() - 400 * DAY)
    node.close()
    result = CliRunner().invoke(app, ["node", "retention", "--config", str(path), "--run"])
    assert result.exit_code == 0, result.output
    assert "probes sent and candidate lists received" in result.output
    assert "deleted: 1 probes sent and candidate lists received" in " ".join(result.output.split())


def test_a_search_held_at_the_holder_is_kept_and_notifications_go_with_searches(
    node: Node,
) -> None:
    now = utcnow()
    held = add_search(node, now - 400 * DAY, pending=True)
    with node.engine.begin() as conn:
        conn.execute(
            update(requests_out).where(requests_out.c.search_id == held).values(status="on_hold")
        )
        notify(conn, ["olga"], "hold", "DE holds your request", None)
        conn.execute(update(notifications).values(created_at=now - 400 * DAY))
        notify(conn, ["olga"], "released", "Core data arrived", None)
    done = retention.purge(node, now)
    assert done["searches"] == 0  # its core data are still awaited: the holder only paused
    assert done["notifications"] == 1
    with node.engine.connect() as conn:
        left = conn.execute(select(notifications.c.text)).scalars().all()
    assert left == ["Core data arrived"]
