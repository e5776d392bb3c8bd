"""``prum abis ...``: run our matcher behind the ABIS contract; see what a node's
outbox still owes its ABIS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from prum.cliargs import fail
from prum.errors import BadInput, PrumError
from prum.federation.messages import Category

abis_app = typer.Typer(
    help="An external matcher (ABIS) behind the JSON contract of docs/abis.md.",
    no_args_is_help=True,
)
console = Console()


@abis_app.command("serve")
def serve(
    category: Annotated[Category, typer.Option(help="The category matched: face, finger or dna.")],
    data_dir: Annotated[
        Path, typer.Option(help="Where the ABIS keeps its store (SQLite by default).")
    ] = Path("var/abis"),
    database_url: Annotated[
        str, typer.Option(help="Its store as a database URL (default: SQLite in data-dir).")
    ] = "",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File holding the bearer token callers must send (env PRUM_ABIS_TOKEN)."),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="HTTPS: this server's certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="HTTPS: its private key.")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="Mutual TLS: the CA whose client certificates are let in.")
    ] = None,
) -> None:
    """Serve one category's built-in matcher behind the ABIS contract, with its own store,
    so a node (ours or another) can use it as that category's external matcher."""
    from prum.federation.transport import serve as serve_app
    from prum.node.abis.server import create_abis_app, server_tls
    from prum.node.abis.service import AbisService

    try:
        token = os.environ.get("PRUM_ABIS_TOKEN") or None
        if token_file is not None:
            try:
                token = token_file.read_text().strip()
            except OSError as exc:
                raise BadInput(f"the token file {token_file} cannot be read ({exc})") from None
        if (tls_cert is None) != (tls_key is None):
            raise BadInput("--tls-cert and --tls-key go together")
        if client_ca is not None and tls_cert is None:
            raise BadInput("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
        tls = None
        if tls_cert is not None and tls_key is not None:
            tls = server_tls(tls_cert, tls_key, client_ca)
        service = AbisService(category, data_dir, database_url)
        service.warm_up()
        app = create_abis_app(service, token=token)
    except PrumError as exc:
        raise fail(exc) from exc
    scheme = "https" if tls else "http"
    console.print(
        f"ABIS ({category.value}): {scheme}://{host}:{port}/abis/v1,"
        f" {service.health().records} records, token {'required' if token else 'none'}"
    )
    serve_app(app, host=host, port=port, ssl_context=tls)


@abis_app.command("status")
def status(
    config: Annotated[Path, typer.Option("--config", "-c", help="Node configuration JSON.")],
) -> None:
    """What the node's outbox still owes each category's ABIS (inserts and deletes
    waiting, the age of the oldest, the last error)."""
    from prum.node.abis.delivery import backlog
    from prum.node.config import NodeConfig
    from prum.node.core import Node

    try:
        node = Node(NodeConfig.load(config))
    except PrumError as exc:
        raise fail(exc) from exc
    try:
        rows = backlog(node)
    finally:
        node.close()
    if not rows:
        console.print("no category of this node uses an external ABIS")
        return
    table = Table(
        "category", "waiting", "oldest (s)", "attempts", "delivered", "refused", "last error"
    )
    for category, row in rows.items():
        table.add_row(
            category,
            str(row["pending"]),
            f"{row['lag_seconds']:.1f}",
            str(row["attempts"]),
            str(row["delivered"]),
            str(row["refused"]),
            row["last_error"] or "",
        )
    console.print(table)
