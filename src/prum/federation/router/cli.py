"""``prum router``: run the central router, check its directory file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from prum.cliargs import AsJson, fail
from prum.db import safe_url
from prum.errors import BadInput, PrumError
from prum.federation.router.directory import load_directory
from prum.federation.router.settings import RouterSettings

router_app = typer.Typer(
    help="The central router: fans searches out to the nodes; stores no payload.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

console = Console()
err = Console(stderr=True)


def _fail(exc: PrumError) -> typer.Exit:
    return fail(exc)  # one line, like every prum command's errors


@router_app.command("serve")
def serve(
    pki_dir: Annotated[
        Path | None, typer.Option("--pki-dir", help="PKI folder with ROUTER.pem/.key.")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--directory", help="Federation directory (JSON).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Folder of the metadata log.")
    ] = None,
    audit_url: Annotated[
        str | None, typer.Option("--audit-url", help="SQLAlchemy URL of the audit log.")
    ] = None,
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, typer.Option("--port")] = None,
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            min=1,
            max=256,
            help="Router processes sharing the address (one per core). Each writes its own"
            " audit chain (r1, r2 ...); give them one PostgreSQL --audit-url.",
        ),
    ] = 1,
) -> None:
    """Serve the router API over mutual TLS (settings from PRUM_ROUTER_* and options)."""
    given = {
        "pki_dir": pki_dir,
        "directory_file": directory,
        "data_dir": data_dir,
        "audit_url": audit_url,
        "host": host,
        "port": port,
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        settings = RouterSettings(**overrides)
    except ValidationError as exc:
        raise _fail(BadInput(f"invalid router settings: {exc.errors()[0]['msg']}")) from None
    if replicas > 1:
        from prum.federation.router.replicas import supervise

        err.print(
            f"router: {replicas} replicas on https://{settings.host}:{settings.port}"
            f" (audit {safe_url(settings.audit_database_url())})"
        )
        raise typer.Exit(code=supervise(settings, replicas))
    _serve_one(settings)


def _serve_one(settings: RouterSettings) -> None:
    from prum.federation.router.api import create_app
    from prum.federation.security.pki import ROUTER, server_context
    from prum.federation.transport import serve as serve_app

    try:
        tls = server_context(settings.pki_dir, ROUTER)
        app = create_app(settings)
        app.service.verifier.follow(tls)  # a party revoked mid-run cannot connect again
    except PrumError as exc:
        raise _fail(exc) from None
    parties = len(app.service.directory.parties)
    err.print(
        f"router {settings.replica} on https://{settings.host}:{settings.port} ({parties} parties)"
    )
    serve_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=tls,
        reuse_port=settings.reuse_port,
    )


@router_app.command("check-directory")
def check_directory(
    path: Annotated[Path, typer.Argument(help="Federation directory (JSON).")],
    as_json: AsJson = False,
) -> None:
    """Read a directory file and show what each party offers and may search."""
    try:
        directory = load_directory(path)
    except PrumError as exc:
        raise _fail(exc) from None
    if as_json:  # the directory as the router understood it, defaults filled in
        typer.echo(directory.model_dump_json(indent=2))
        return
    # A URL is copied into configuration: folded when long, never cut.
    table = Table("party", Column("url", overflow="fold"), "offers", "accepts", "may search")
    for party, entry in sorted(directory.parties.items()):
        scope = (
            "everything"
            if entry.may_search is None
            else "; ".join(
                f"{c.value}: {', '.join(p.value for p in ps)}" for c, ps in entry.may_search.items()
            )
        )
        table.add_row(
            party,
            entry.url,
            ", ".join(c.value for c in entry.offers) or "-",
            ", ".join(p.value for p in entry.accepts) or "-",
            scope,
        )
    console.print(table)


if __name__ == "__main__":
    router_app()
