"""The kit's report: a table for the person running it, JSON for the record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prum.conformance.checks import Outcome, Result

STYLE = {Outcome.PASS: "green", Outcome.FAIL: "bold red", Outcome.NOT_APPLICABLE: "yellow"}


def summary(results: list[Result]) -> dict[str, int]:
    counts = {o: sum(r.outcome is o for r in results) for o in Outcome}
    return {
        "checks": len(results),
        "passed": counts[Outcome.PASS],
        "failed": counts[Outcome.FAIL],
        "not_applicable": counts[Outcome.NOT_APPLICABLE],
    }


def to_json(results: list[Result], *, party: str, url: str, started: dt.datetime) -> dict[str, Any]:
    return {
        "kit": "prum conformance",
        "protocol_version": "1",
        "party": party,
        "federation_url": url,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "summary": summary(results),
        "results": [r.to_dict() for r in results],
    }


def print_table(console: Console, results: list[Result], party: str) -> None:
    table = Table(title=f"Conformance of {party} (docs/protocol.md, version 1)")
    table.add_column("check")
    table.add_column("outcome")
    table.add_column("what was seen / why not applicable")
    table.add_column("rule")
    for r in results:
        table.add_row(
            r.id, f"[{STYLE[r.outcome]}]{r.outcome.value}[/]", escape(r.detail), escape(r.rule)
        )
    console.print(table)
    s = summary(results)
    console.print(
        f"{s['checks']} checks: {s['passed']} passed, {s['failed']} failed,"
        f" {s['not_applicable']} not applicable"
    )
