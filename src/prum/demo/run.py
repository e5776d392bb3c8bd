"""``prum demo``: a live federation on this machine, and one cross-border face search
from the probe photo to the released core data, step by step.

The router and the nodes AT, DE, HU, NL and EUROPOL run as separate processes that
talk HTTPS with client certificates on 127.0.0.1. Each country holds a different
part of the real sample faces; the scripted case: an Austrian officer searches with
a photo of a person whose other photos only Germany holds.
"""

from __future__ import annotations

import base64
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from prum.demo import national, scenarios
from prum.demo.processes import Federation, Layout, lay_out, poll
from prum.demo.samples import SampleSet, sample_faces
from prum.errors import PrumError, Unavailable
from prum.node.core import Node
from prum.node.systems.accounts import add_system
from prum.node.users import Role, add_user

PARTIES = ["AT", "DE", "HU", "NL", "EUROPOL"]
SYSTEM_TOKEN_FILE = "systems.token"
REQUESTER, HOLDER = "AT", "DE"
USERS = {
    "olga": Role.OFFICER,
    "eric": Role.EXAMINER,
    "anna": Role.APPROVER,
    "otto": Role.AUDITOR,
    "ada": Role.ADMIN,
}


def password(party: str) -> str:
    return f"demo-{party.lower()}-password"


def run(
    root: Path,
    *,
    workers: int,
    scale: int = 0,
    console: Console | None = None,
    keep_running: bool = True,
) -> dict[str, Any]:
    """Build, start and exercise the federation; returns what the scenario saw."""
    out = console or Console()
    samples = sample_faces()
    out.rule("[bold]Prüm demo federation")
    out.print(f"sample faces: {len(samples.images)} real photos ({samples.source})")
    if root.exists():
        shutil.rmtree(root)
    layout = lay_out(root, PARTIES, policies=scenarios.policies(PARTIES))
    probe, facts = fill(layout, samples, workers=workers, scale=scale, out=out)
    assert probe is not None
    federation = Federation(layout)
    try:
        out.print("starting the router and 5 nodes as separate processes (mutual TLS) ...")
        federation.start_all()
        cases = {"face": lambda: _scenario(layout, probe, out)}
        cases |= scenarios.cases(facts, lambda p, u: _api(layout, p, u), _check, out)
        result = _run_cases(cases, layout, out)
        _print_urls(layout, out)
        if keep_running:
            out.print("\nthe federation keeps running; Ctrl-C stops every process.")
            _wait_for_interrupt()
        return result
    finally:
        federation.stop()
        out.print("federation stopped.")


def _run_cases(cases: dict[str, scenarios.Case], layout: Layout, out: Console) -> dict[str, Any]:
    """Run every case, even after one failed; ``result["failed"]`` names the failures."""
    result: dict[str, Any] = {"failed": {}}
    for category, case in cases.items():
        try:
            result[category] = case()
        except (PrumError, httpx.HTTPError) as exc:
            reason = exc.message if isinstance(exc, PrumError) else f"{type(exc).__name__}: {exc}"
            result["failed"][category] = reason
            out.print(f"[bold red]the {category} case failed:[/] {reason} (logs in {layout.root})")
    table = Table(title="the five categories")
    table.add_column("category")
    table.add_column("case")
    for category in cases:
        failure = result["failed"].get(category)
        table.add_row(category, f"[red]FAILED: {failure}" if failure else "[green]answered")
    out.print(table)
    return result


def fill(
    layout: Layout,
    samples: SampleSet | None,
    *,
    workers: int,
    out: Console,
    scale: int = 0,
    others: bool = True,
) -> tuple[Path | None, scenarios.Facts]:
    """Fill every node through its national-systems interface (faces when ``samples`` are
    given, the other categories when ``others``) and add the demo users; the face probe
    and what the scripted cases need to know."""
    nodes = {party: Node(layout.config(party)) for party in layout.parties}
    probe, facts = None, scenarios.Facts()
    try:
        out.print("each country's national systems send their records to its node ...")
        if samples is not None:
            probe = national.enrol_faces(
                nodes, samples, requester=REQUESTER, holder=HOLDER, workers=workers, out=out
            )
        if scale:
            national.add_synthetic_faces(nodes, scale)
            out.print(f"  + {scale} synthetic background templates per country")
        if others:
            facts = national.enrol_others(nodes, out)
        for party, node in nodes.items():
            for name, role in USERS.items():
                add_user(node.engine, name, password(node.party), {role})
            # A token for trying the national-systems interface (docs/national-systems.md).
            token = add_system(node.engine, "demo-systems", set(node.config.categories))
            token_file = layout.parties[party].data_dir / SYSTEM_TOKEN_FILE
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
    finally:
        for node in nodes.values():
            node.close()
    return probe, facts


def _api(layout: Layout, party: str, user: str) -> httpx.Client:
    plan = layout.parties[party]
    return httpx.Client(base_url=plan.api_url, auth=(user, password(party)), timeout=60)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = f"({body['code']}) {body['message']}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise Unavailable(f"{response.request.method} {response.request.url.path}: {message}")
    return response.json()


def _scenario(layout: Layout, probe: Path, out: Console) -> dict[str, Any]:
    step = iter(range(1, 20))
    out.rule(f"[bold]{REQUESTER} searches the federation with a face photo")
    with _api(layout, REQUESTER, "olga") as officer:
        search = _check(
            officer.post(
                "/api/searches",
                json={
                    "category": "face",
                    "purpose": "investigation",
                    "offence": "1500 00",
                    "max_penalty_months": 96,
                    "case_reference": "AT-LKA-2026-0412",
                    "image": base64.b64encode(probe.read_bytes()).decode(),
                    "max_candidates": 5,
                    # Generous: on a busy 2-core machine one face search takes seconds.
                    "deadline_ms": 30_000,
                },
            )
        )
    out.print(
        f"{next(step)}. officer olga ({REQUESTER}) sent {probe.name} to all parties offering faces"
        f" (case AT-LKA-2026-0412, theft, up to 8 years); search #{search['id']}"
    )
    table = Table(title="answers per party")
    for col in ("party", "status", "gallery", "candidates", "best score", "false-match rate"):
        table.add_column(col)
    for reply in search["replies"]:
        best = reply["candidates"][0] if reply["candidates"] else None
        table.add_row(
            reply["party"],
            reply["status"],
            str(reply.get("gallery_size") or "-"),
            str(len(reply["candidates"])),
            f"{best['score']:.3f}" if best else "-",
            best["false_match_words"].split(" (")[0] if best else "-",
        )
    out.print(table)
    holder_reply = next(r for r in search["replies"] if r["party"] == HOLDER)
    if not holder_reply["candidates"]:
        raise Unavailable(
            f"{HOLDER} answered {holder_reply['status']} without candidates"
            f" ({holder_reply.get('error') or 'no error given'}); see its log in {layout.root}"
        )
    top = holder_reply["candidates"][0]
    out.print(
        f"{next(step)}. examiner eric ({REQUESTER}) compares the probe with {HOLDER}'s"
        f" candidate 1 ({top['reference']}) side by side and confirms the match"
    )
    with _api(layout, REQUESTER, "eric") as examiner:
        _check(
            examiner.post(
                f"/api/searches/{search['id']}/verifications",
                json={
                    "party": HOLDER,
                    "reference": top["reference"],
                    "decision": "confirmed",
                    "justification": "Same face shape, ears and eyebrow scar; score and"
                    " false-match rate support it.",
                },
            )
        )
    with _api(layout, REQUESTER, "olga") as officer:
        _check(
            officer.post(
                "/api/core-data-requests",
                json={
                    "search_id": search["id"],
                    "party": HOLDER,
                    "reference": top["reference"],
                    "facts": "Theft of a car from a dealer in Graz on 2 October 2026; the"
                    " probe is a CCTV still of the thief.",
                },
            )
        )
    out.print(
        f"{next(step)}. officer olga requests core data from {HOLDER}, with the facts and"
        " the offence category (queued in the outbox, delivered through the router)"
    )
    with _api(layout, HOLDER, "anna") as approver:
        inbox = poll(
            f"the request in {HOLDER}'s inbox",
            lambda: [r for r in _check(approver.get("/api/inbox")) if r["status"] == "pending"],
        )
        request = inbox[0]
        hours = request["seconds_left"] / 3600
        out.print(
            f"{next(step)}. the request is in {HOLDER}'s inbox (from {request['requesting_party']},"
            f" {hours:.1f} h left of the 48-hour deadline)"
        )
        _check(approver.post(f"/api/inbox/{request['id']}/decision", json={"action": "release"}))
    out.print(f"{next(step)}. approver anna ({HOLDER}) judges it proportionate and releases")
    with _api(layout, REQUESTER, "olga") as officer:
        answered = poll(
            f"the core data at {REQUESTER}",
            lambda: [
                r
                for r in _check(officer.get("/api/core-data-requests"))
                if r["status"] == "released"
            ],
        )
    core = answered[0]["reply"]["core_data"]
    out.print(f"{next(step)}. the core data arrived at {REQUESTER} through the router:")
    for key in ("surnames", "first_names", "date_of_birth", "nationalities", "case_number"):
        out.print(f"     {key}: {core.get(key)}")
    verdicts = {}
    for party in (REQUESTER, HOLDER):
        with _api(layout, party, "otto") as auditor:
            verdicts[party] = _check(auditor.get("/api/audit/verify"))
        report = verdicts[party]
        out.print(
            f"{next(step)}. {party}'s audit log: {report['entries_checked']} entries,"
            f" hash chain {'intact' if report['ok'] else 'BROKEN'}"
        )
    return {"search": search, "core_data": core, "audit": verdicts}


def _print_urls(layout: Layout, out: Console) -> None:
    out.rule("[bold]the federation")
    out.print(f"router      {layout.router_url}  (mutual TLS; PKI in {layout.pki_dir})")
    for party, plan in layout.parties.items():
        out.print(
            f"{party:8s}    workbench {plan.api_url}/workbench/  (users {'/'.join(USERS)},"
            f" password {password(party)}); national API {plan.api_url};"
            f" federation {plan.federation_url}; national systems {plan.systems_url}"
            f" (token in {plan.data_dir / SYSTEM_TOKEN_FILE})"
        )


def _wait_for_interrupt() -> None:
    stop = False

    def handler(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop:
        time.sleep(0.5)


def main(root: Path, workers: int, scale: int, *, keep_running: bool = True) -> None:
    """The CLI's entry: exit status 1 when a case failed, 2 when the demo could not run."""
    try:
        result = run(root, workers=workers, scale=scale, keep_running=keep_running)
    except PrumError as exc:
        Console(stderr=True).print(f"[bold red]demo failed[/] ({exc.code}): {exc.message}")
        raise SystemExit(2) from exc
    if result["failed"]:
        Console(stderr=True).print(
            f"[bold red]demo: {len(result['failed'])} case(s) failed:[/]"
            f" {', '.join(result['failed'])}"
        )
        raise SystemExit(1)
