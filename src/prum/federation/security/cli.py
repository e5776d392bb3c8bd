"""``prum pki``: create the federation CA, issue and revoke party certificates."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from prum.cliargs import AsJson, fail
from prum.errors import BadInput, PrumError
from prum.federation.security import pki

pki_app = typer.Typer(
    help="The federation PKI: CA, party certificates, revocation (demos, tests, small "
    "deployments).",
    no_args_is_help=True,
)

console = Console()


class RoleChoice(StrEnum):
    NODE = "node"
    ROUTER = "router"


PkiDir = Annotated[
    Path,
    typer.Option("--dir", envvar="PRUM_PKI_DIR", help="PKI folder (env PRUM_PKI_DIR)."),
]
DEFAULT_DIR = Path("var/pki")


def _fail(exc: PrumError) -> typer.Exit:
    return fail(exc)  # one line, like every prum command's errors


@pki_app.command("init")
def init(
    directory: PkiDir = DEFAULT_DIR,
    name: Annotated[str, typer.Option(help="CA common name.")] = "Prüm federation CA",
    days: Annotated[int, typer.Option(help="CA validity in days.")] = 3650,
) -> None:
    """Create the federation CA and an empty revocation list."""
    try:
        path = pki.init_ca(directory, name=name, days=days)
    except OSError as exc:
        raise _fail(BadInput(f"cannot create the CA in {directory}: {exc.strerror}")) from None
    except PrumError as exc:
        raise _fail(exc) from None
    console.print(f"federation CA written to {path} (key {directory / pki.CA_KEY}, mode 0600)")


@pki_app.command("records-key")
def records_key(
    directory: PkiDir = DEFAULT_DIR,
    key_id: Annotated[str, typer.Option(help="The key's id (travels with each query).")] = "k1",
) -> None:
    """Create the federation's police-records key (records.key): copy it to every party
    that takes part in police records, over a secure channel, never through the router."""
    from prum.categories.records.keys import create_key_file

    path = directory / "records.key"
    try:
        create_key_file(path, key_id)
    except PrumError as exc:
        raise _fail(exc) from None
    console.print(f"records key {key_id!r} written to {path} (mode 0600)")


@pki_app.command("issue")
def issue(
    party: Annotated[str, typer.Argument(help="Party code: AT, DE ..., EUROPOL or ROUTER.")],
    role: Annotated[RoleChoice, typer.Option(help="node, or router for ROUTER.")],
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Host name or IP the party serves on (repeatable)."),
    ] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
    directory: PkiDir = DEFAULT_DIR,
) -> None:
    """Issue a certificate and key for a party (replacing its current files)."""
    try:
        issued = pki.issue(
            directory,
            party,
            role=role.value,
            hosts=host if host else pki.DEFAULT_HOSTS,
            days=days,
        )
    except PrumError as exc:
        raise _fail(exc) from None
    console.print(
        f"{party}: certificate {issued.cert_path}, key {issued.key_path} (mode 0600), "
        f"serial {pki.format_serial(issued.serial)}"
    )


@pki_app.command("revoke")
def revoke(
    party_or_serial: Annotated[
        str, typer.Argument(help="A party code (all its certificates) or a hex serial.")
    ],
    directory: PkiDir = DEFAULT_DIR,
) -> None:
    """Revoke certificates and rewrite crl.pem; restart services to reload it."""
    try:
        serials = pki.revoke(directory, party_or_serial)
    except PrumError as exc:
        raise _fail(exc) from None
    if not serials:
        console.print("already revoked; nothing changed")
    for serial in serials:
        console.print(f"revoked {pki.format_serial(serial)}")
    if serials:
        console.print(
            f"copy {directory / pki.CRL} to every party and restart its services: TLS "
            "contexts and verifiers read the CRL when they start"
        )


@pki_app.command("list")
def list_(directory: PkiDir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Every issued certificate, its expiry and whether it is revoked."""
    try:
        records = pki.list_certs(directory)
    except PrumError as exc:
        raise _fail(exc) from None
    now = dt.datetime.now(dt.UTC)
    if as_json:
        listing = [
            {
                "party": r.party,
                "role": r.role,
                "serial": pki.format_serial(r.serial),
                "hosts": list(r.hosts),
                "not_before": r.not_before.isoformat(),
                "not_after": r.not_after.isoformat(),
                "revoked": r.revoked,
                "valid_now": not r.revoked and r.not_before <= now <= r.not_after,
                "path": str(r.path),
            }
            for r in records
        ]
        typer.echo(json.dumps(listing, indent=2))
        return
    table = Table(title=f"certificates issued from {directory}")
    for column in ("party", "role", "serial", "hosts", "expires (UTC)", "revoked", "state"):
        # A serial is typed back into `prum pki revoke`: folded when long, never cut.
        table.add_column(column, overflow="fold" if column == "serial" else "ellipsis")
    for record in records:
        if record.revoked:
            state = "[red]revoked[/]"
        elif record.not_after < now:
            state = "[yellow]expired[/]"
        elif record.not_before > now:
            state = "not yet valid"
        else:
            state = "[green]valid[/]"
        table.add_row(
            record.party,
            record.role,
            pki.format_serial(record.serial),
            ", ".join(record.hosts),
            record.not_after.strftime("%Y-%m-%d %H:%M"),
            "yes" if record.revoked else "no",
            state,
        )
    console.print(table)
