"""``prum conformance``: make a test PKI, list the checks, run them against a node."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from prum.cliargs import fail
from prum.errors import BadInput, PrumError

conformance_app = typer.Typer(
    help="Check a node (ours or anyone's) against the wire contract of docs/protocol.md.",
    no_args_is_help=True,
)
console = Console(width=200)

PkiDir = Annotated[Path, typer.Option("--pki", help="The test PKI folder (prum conformance pki).")]


@conformance_app.command("pki")
def make_pki(
    party: Annotated[str, typer.Argument(help="The tested party's code (DE, EUROPOL, ...).")],
    directory: PkiDir = Path("var/conformance-pki"),
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Host names of the tested node (SANs).")
    ] = None,
    router_host: Annotated[
        list[str] | None,
        typer.Option("--router-host", help="Host names the kit's delivery endpoint answers on."),
    ] = None,
) -> None:
    """Create a test CA, the kit's certificates (ROUTER and requesting parties) and the
    tested party's certificate to hand to the vendor with ca.pem and crl.pem."""
    from prum.conformance.wire import make_test_pki
    from prum.federation.security import pki

    try:
        cert = make_test_pki(directory, party, host or [], router_host or list(pki.DEFAULT_HOSTS))
    except PrumError as exc:
        raise fail(exc) from None
    console.print(
        f"test PKI in {directory}; give the vendor {directory / pki.CA_CERT},"
        f" {directory / pki.CRL}, {cert} and {pki.key_path(directory, party)}"
    )


@conformance_app.command("list")
def list_checks() -> None:
    """Every check: its id, the rule it cites and why it matters."""
    from prum.conformance import access, envelope, search, step2  # noqa: F401 - registers
    from prum.conformance.checks import REGISTRY

    for item in REGISTRY:
        console.print(f"{item.id}  [dim]{escape(item.rule)}[/]\n    {escape(item.rationale)}")
    console.print(f"{len(REGISTRY)} checks")


@conformance_app.command("run")
def run(
    declaration: Annotated[
        Path, typer.Option("--declaration", help="What the node offers (docs/conformance.md).")
    ],
    pki_dir: PkiDir = Path("var/conformance-pki"),
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="host:port of the kit's /v1/deliver (the node's router URL) for step-2 answers.",
        ),
    ] = None,
    await_decisions: Annotated[
        float | None,
        typer.Option(
            "--await-decisions",
            help="Seconds to wait while the node's approver acts on the kit's requests"
            " (needs --listen); without it those checks are not applicable.",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report here.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only checks with this id or prefix.")
    ] = None,
) -> None:
    """Run the checks; exit 1 if any failed."""
    from prum.conformance.checks import Context, Outcome
    from prum.conformance.declaration import load_declaration
    from prum.conformance.report import print_table, to_json
    from prum.conformance.runner import run_checks
    from prum.conformance.wire import RouterListener, Wire, listen_address

    started = dt.datetime.now(dt.UTC)
    listener = None
    try:
        if await_decisions is not None and listen is None:
            raise BadInput("--await-decisions needs --listen: the node's answers arrive there")
        declared = load_declaration(declaration)
        wire = Wire(pki_dir, declared.party, declared.federation_url)
        if listen is not None:
            host, port = listen_address(listen)
            listener = RouterListener(host, port, pki_dir, declared.party)
            listener.start()
        context = Context(wire, declared, listener, await_decisions)
        results = run_checks(context, set(only) if only else None)
    except PrumError as exc:
        raise fail(exc) from None
    finally:
        if listener is not None:
            listener.stop()
    print_table(console, results, declared.party)
    if report is not None:
        data = to_json(results, party=declared.party, url=declared.federation_url, started=started)
        report.write_text(json.dumps(data, indent=2) + "\n")
    wire.close()
    if any(r.outcome is Outcome.FAIL for r in results):
        raise typer.Exit(1)
