"""``prum audit ...`` and ``prum stats``: verify, read and purge the audit log.

Mounted by prum.cli (``app.add_typer(audit_app, name="audit")`` and
``app.command("stats")(stats)``). Exit codes: 0 success, 1 the log does not verify,
2 an error (bad option, unreachable database).

A database may hold several chains (one per router replica): ``verify`` checks every
chain unless ``--chain`` names one; the other commands work on ``--chain`` (``main``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from prum.audit.chain import CheckpointSigner, CheckpointVerifier, VerificationReport
from prum.audit.events import EventKind, Outcome, format_time
from prum.audit.log import MAIN_CHAIN, AuditLog, chains
from prum.audit.stats import Statistics
from prum.cliargs import fail
from prum.config import Settings
from prum.db import safe_url
from prum.errors import InvalidAuditSetup, PrumError
from prum.federation.messages import Category

audit_app = typer.Typer(
    help="The tamper-evident audit log: verify, show, purge, statistics.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PRUM_AUDIT_URL",
        help="SQLAlchemy URL of the audit log; default SQLite in the node's data folder.",
    ),
]
PartyOpt = Annotated[
    str | None,
    typer.Option(
        "--party", envvar="PRUM_COUNTRY", help="Whose log it is (default: the node's country)."
    ),
]
VerifierOpt = Annotated[
    str | None,
    typer.Option(
        "--verifier",
        envvar="PRUM_AUDIT_VERIFIER",
        help="module:factory returning a CheckpointVerifier; without it, signatures "
        "are not checked (only hashes).",
    ),
]
SignerOpt = Annotated[
    str | None,
    typer.Option(
        "--signer",
        envvar="PRUM_AUDIT_SIGNER",
        help="module:factory returning a CheckpointSigner for checkpoints and anchors.",
    ),
]
ChainOpt = Annotated[
    str,
    typer.Option(
        "--chain", help="Which hash chain of the database (router replicas write one each)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _url(database_url: str | None) -> str:
    if database_url:
        return database_url
    return f"sqlite:///{(Settings().data_dir / 'audit.sqlite').resolve()}"


def _plugin(spec: str | None, *methods: str) -> Any:
    """Instantiate ``module:factory`` (a signer or verifier plug-in) that has ``methods``."""
    if spec is None:
        return None
    module_name, _, name = spec.partition(":")
    try:
        plugin = getattr(importlib.import_module(module_name), name)()
    except Exception as exc:  # any failure to load is the operator's option being wrong
        raise InvalidAuditSetup(f"cannot load {spec!r} (expected module:factory): {exc}") from exc
    # Checked now: a wrong factory would otherwise fail, or pass, deep in the log's code.
    missing = [m for m in methods if not hasattr(plugin, m)]
    if missing:
        raise InvalidAuditSetup(
            f"{spec!r} made a {type(plugin).__name__}, which has no {', '.join(missing)}"
        )
    return plugin


def _open(
    database_url: str | None,
    party: str | None,
    chain: str,
    signer: CheckpointSigner | None = None,
) -> AuditLog:
    url = _url(database_url)
    _require(chain, chains(url), url)
    return AuditLog(url, party=party or Settings().country, chain=chain, signer=signer)


def _require(chain: str, present: list[str], url: str) -> None:
    # Opening a log starts its chain: a mistyped name must not leave an empty one behind.
    if chain not in present:
        raise InvalidAuditSetup(
            f"no chain {chain!r} in the audit database {safe_url(url)} "
            f"(it holds: {', '.join(present) or 'none'})"
        )


def _fail(exc: PrumError) -> typer.Exit:
    return fail(exc)  # one line, like every prum command's errors


def _choice(value: str | None, choices: type[StrEnum], option: str) -> str | None:
    # A mistyped filter would otherwise show an empty log, as if nothing had happened.
    if value is not None and value not in set(choices):
        known = ", ".join(choices)
        raise InvalidAuditSetup(f"{option} {value!r} is unknown; one of {known}")
    return value


def _since(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidAuditSetup(f"{option} {text!r} is not an ISO date or time") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@audit_app.command("verify")
def verify(
    database_url: DatabaseUrl = None,
    party: PartyOpt = None,
    chain: Annotated[
        str | None,
        typer.Option("--chain", help="Only this hash chain (default: every chain)."),
    ] = None,
    verifier: VerifierOpt = None,
    pki_dir: Annotated[
        Path | None,
        typer.Option(
            "--pki-dir",
            envvar="PRUM_PKI_DIR",
            help="Federation PKI folder: check checkpoint signatures against its certificates.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Recompute the hash chains and check the checkpoints; exit 1 if anything changed."""
    reports: list[VerificationReport] = []
    try:
        checker: CheckpointVerifier | None = _plugin(verifier, "verify")
        if checker is None and pki_dir is not None:
            from prum.federation.security.signing import AuditVerifier

            checker = AuditVerifier(pki_dir)
        url = _url(database_url)
        present = chains(url)
        if chain is not None:
            _require(chain, present, url)
        # Migration gives every database "main"; only tampering leaves none to list.
        names = [chain] if chain is not None else present or [MAIN_CHAIN]
        for name in names:
            log = AuditLog(url, party=party or Settings().country, chain=name)
            try:
                reports.append(log.verify(checker))
            finally:
                log.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    failed = [report for report in reports if not report.ok]
    if as_json:
        out = {"ok": not failed, "chains": [report.to_dict() for report in reports]}
        console.print_json(json.dumps(out))
    else:
        for report in reports:
            _print_report(report)
        if len(reports) > 1:
            if failed:
                bad = ", ".join(report.chain for report in failed)
                err.print(f"{len(reports)} chains, {len(failed)} NOT verified: {bad}")
            else:
                console.print(f"{len(reports)} chains, all verified")
    if failed:
        raise typer.Exit(code=1)


def _print_report(report: VerificationReport) -> None:
    if report.ok:
        signatures = "signatures checked"
        if not report.signatures_checked:
            signatures = "signatures NOT checked (no --pki-dir or --verifier)"
        start = "" if report.anchor_seq is None else f" from the anchor at {report.anchor_seq}"
        console.print(
            f"[green]audit log verified[/] (chain {report.chain}): "
            f"{report.entries_checked} entries{start}, "
            f"{report.checkpoints_checked} checkpoint(s), {signatures}"
        )
    else:
        assert report.problem is not None
        problem = report.problem
        err.print(
            f"[bold red]audit log does NOT verify[/] (chain {report.chain}): "
            f"entry {problem.seq}: {problem.kind.value}: {problem.message}"
        )


@audit_app.command("show")
def show(
    database_url: DatabaseUrl = None,
    party: PartyOpt = None,
    chain: ChainOpt = MAIN_CHAIN,
    kind: Annotated[str | None, typer.Option(help="Only this event kind.")] = None,
    of_party: Annotated[
        str | None, typer.Option("--of", help="Requesting or requested party.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="face, dna, finger, ...")] = None,
    outcome: Annotated[str | None, typer.Option(help="answered, no_hit, ...")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case reference.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date/time (UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date/time, exclusive.")] = None,
    limit: Annotated[int, typer.Option(help="Entries per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Entries to skip (newest first).")] = 0,
    as_json: AsJson = False,
) -> None:
    """The most recent entries of one chain, newest first."""
    try:
        log = _open(database_url, party, chain)
        rows = log.entries(
            kind=_choice(kind, EventKind, "--kind"),
            party=of_party,
            category=_choice(category, Category, "--category"),
            outcome=_choice(outcome, Outcome, "--outcome"),
            case_reference=case,
            since=_since(since, "--since"),
            until=_since(until, "--until"),
            limit=limit,
            offset=offset,
        )
        log.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    if as_json:
        out = [
            {"seq": e.seq, "recorded_at": format_time(e.recorded_at), **e.event.canonical()}
            for e in rows
        ]
        console.print_json(json.dumps(out))
        return
    # One line an entry, like a log: eleven columns do not fit a terminal, and a table
    # squeezed to fit cuts the case references and kinds an auditor looks up.
    console.print(f"audit log, chain {chain}: {len(rows)} entries, newest first", markup=False)
    for e in rows:
        ev = e.event
        route = "→".join(p for p in (ev.requesting_party, ev.requested_party) if p)
        words = [
            f"{e.seq:>6}",
            e.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            ev.kind.value,
            route,
            " ".join(x.value for x in (ev.category, ev.purpose) if x is not None),
            "" if ev.outcome is None else ev.outcome.value,
            f"case {ev.case_reference}" if ev.case_reference else "",
            f"user {ev.user}" if ev.user else "",
            "" if ev.duration_ms is None else f"{ev.duration_ms} ms",
        ]
        console.print(
            "  ".join(w for w in words if w), markup=False, highlight=False, soft_wrap=True
        )


@audit_app.command("checkpoint")
def checkpoint(
    database_url: DatabaseUrl = None,
    party: PartyOpt = None,
    chain: ChainOpt = MAIN_CHAIN,
    signer: SignerOpt = None,
) -> None:
    """Sign the current head of one chain now (for example before a backup or at shutdown)."""
    try:
        log = _open(database_url, party, chain, _plugin(signer, "party", "sign"))
        made = log.checkpoint()
        log.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    if made is None:
        console.print("the audit log is empty: nothing to sign")
    else:
        state = "signed" if made.signature is not None else "UNSIGNED (no --signer)"
        console.print(f"checkpoint at entry {made.seq} ({made.hash[:16]}...), {state}")


@audit_app.command("purge")
def purge(
    older_than_days: Annotated[
        int, typer.Option("--older-than-days", min=1, help="Retention period in days.")
    ],
    database_url: DatabaseUrl = None,
    party: PartyOpt = None,
    chain: ChainOpt = MAIN_CHAIN,
    signer: SignerOpt = None,
    verifier: VerifierOpt = None,
) -> None:
    """Delete one chain's entries older than the retention period; leaves a signed anchor."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
    try:
        log = _open(database_url, party, chain, _plugin(signer, "party", "sign"))
        count = log.purge(cutoff, verifier=_plugin(verifier, "verify"))
        log.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    console.print(f"purged {count} entries recorded before {format_time(cutoff)}")


_STATS_COLUMNS = (
    ("searches", "searches"),
    ("missing_person_searches", "missing p."),
    ("hits", "hits"),
    ("no_hits", "no hit"),
    ("candidates", "cand."),
    ("confirmed_matches", "confirmed"),
    ("core_data_requests", "core req."),
    ("core_data_released", "released"),
    ("core_data_refused", "refused"),
    ("searches_received", "received"),
    ("candidates_withheld", "withheld"),
    ("investigative_answers", "investig."),
    ("answers", "answers"),
    ("timeouts", "timeouts"),
    ("unavailable", "unavail."),
    ("records_enrolled", "enrolled"),
    ("records_updated", "updated"),
    ("records_deleted", "deleted"),
)


@audit_app.command("stats")
def stats(
    database_url: DatabaseUrl = None,
    year: Annotated[int | None, typer.Option(help="Only this year.")] = None,
    party: Annotated[str | None, typer.Option("--party", help="Only this party.")] = None,
    as_json: AsJson = False,
) -> None:
    """Statistics without personal data, per party, category, purpose and month."""
    try:
        statistics = Statistics(_url(database_url))
        summary = statistics.summary(year=year, party=party)
        statistics.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(summary))
        return
    cells = [
        (party_code, category, purpose, month, cell)
        for party_code, categories in summary["parties"].items()
        for category, purposes in categories.items()
        for purpose, months in purposes.items()
        for month, cell in months.items()
    ]
    if not cells:
        scope = "" if year is None else f" for {year}"
        scope += "" if party is None else f" of {party}"
        where = safe_url(_url(database_url))
        console.print(f"no statistics recorded{scope} in {where}", markup=False, soft_wrap=True)
        return
    # Only the counters that occur: a router and a node count different things.
    columns = [(k, h) for k, h in _STATS_COLUMNS if any(k in c[-1] for c in cells)]
    timed = any("response_time" in c[-1] for c in cells)
    table = Table(title="statistics" + ("" if year is None else f" {year}"))
    for column in ("party", "category", "purpose", "month"):
        table.add_column(column)
    for _, header in columns:
        table.add_column(header, justify="right")
    if timed:
        for column in ("avail.", "p50 ms", "p95 ms"):
            table.add_column(column, justify="right")
    for *keys, cell in cells:
        row = [*keys, *(str(cell.get(key, "")) for key, _ in columns)]
        if timed:
            rt = cell.get("response_time", {})
            availability = cell.get("availability")
            row += [
                "" if availability is None else f"{availability:.1%}",
                str(rt.get("p50_ms", "")),
                str(rt.get("p95_ms", "")),
            ]
        table.add_row(*row)
    console.print(table)
