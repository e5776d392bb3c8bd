"""``prum node ...``: run a national node and manage its users."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from prum.errors import PrumError
from prum.node.config import NodeConfig

node_app = typer.Typer(help="A national node: serve it, manage its users.", no_args_is_help=True)
console = Console(stderr=True)

ConfigFile = Annotated[Path, typer.Option("--config", "-c", help="Node configuration JSON.")]


def _fail(exc: PrumError) -> typer.Exit:
    console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
    return typer.Exit(code=2)


@node_app.command("serve")
def serve(config: ConfigFile) -> None:
    """Serve the router-facing API (mutual TLS) and the national API."""
    from prum.federation.messages import Category
    from prum.federation.security.pki import server_context, token_server_context
    from prum.federation.transport import Listener, serve_many
    from prum.node.api import create_federation_app, create_national_app
    from prum.node.core import Node
    from prum.node.systems.api import create_systems_app
    from prum.node.systems.service import NationalSystems

    try:
        cfg = NodeConfig.load(config)
        node = Node(cfg)
        node.warm_up()
        tls = server_context(cfg.pki_dir, cfg.party)
        node.verifier.follow(tls)  # a party revoked mid-run cannot connect again
        federation = Listener(
            create_federation_app(node), cfg.federation_host, cfg.federation_port, tls
        )
        national = Listener(create_national_app(node), cfg.api_host, cfg.api_port)
        systems = NationalSystems(node, workers=cfg.systems_workers)
        machines = Listener(
            create_systems_app(node, systems),
            cfg.systems_host,
            cfg.systems_port,
            token_server_context(cfg.pki_dir, cfg.party) if cfg.systems_tls else None,
        )
    except PrumError as exc:
        raise _fail(exc) from exc
    face = node.matcher(Category.FACE) if Category.FACE in cfg.categories else None
    warning = getattr(getattr(face, "gallery", None), "model_warning", lambda: None)()
    if warning:
        console.print(f"[bold yellow]warning[/]: {warning}")
    console.print(
        f"node {cfg.party}: federation https://{cfg.federation_host}:{cfg.federation_port},"
        f" national http://{cfg.api_host}:{cfg.api_port},"
        f" national systems {'https' if cfg.systems_tls else 'http'}://"
        f"{cfg.systems_host}:{cfg.systems_port}"
    )
    serve_many(national, federation, machines)
    node.close()


@node_app.command("user-add")
def user_add(
    config: ConfigFile,
    name: Annotated[str, typer.Argument(help="User name (pseudonymous id in logs).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="officer, examiner, ...")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Add a national user with one or more roles."""
    from prum.node.core import Node
    from prum.node.users import Role, add_user

    try:
        node = Node(NodeConfig.load(config))
        roles = {Role(r) for r in role}
        add_user(node.engine, name, password, roles)
    except ValueError as exc:
        raise _fail(PrumError(f"unknown role: {exc}")) from exc
    except PrumError as exc:
        raise _fail(exc) from exc
    console.print(f"added {name} with roles {', '.join(sorted(role))}")


@node_app.command("system-add")
def system_add(
    config: ConfigFile,
    name: Annotated[str, typer.Argument(help="The system's name, e.g. afis or dna-db.")],
    category: Annotated[
        list[str], typer.Option("--category", "-k", help="A category it may write (repeat).")
    ],
) -> None:
    """Create a national system's account; prints its token once (keep it secret)."""
    from prum.federation.messages import Category
    from prum.node.core import Node
    from prum.node.systems.accounts import add_system

    try:
        categories = {Category(c) for c in category}
    except ValueError:
        allowed = ", ".join(c.value for c in Category)
        raise _fail(PrumError(f"unknown category in {category}: use {allowed}")) from None
    try:
        node = Node(NodeConfig.load(config))
        token = add_system(node.engine, name, categories)
        node.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    console.print(
        f"system {name} may write {', '.join(sorted(c.value for c in categories))} records."
        " Its token (shown once; give it to the system over a secure channel):"
    )
    typer.echo(token)


@node_app.command("system-revoke")
def system_revoke(
    config: ConfigFile,
    name: Annotated[str, typer.Argument(help="The system's name.")],
) -> None:
    """Revoke a national system's token at once."""
    from prum.node.core import Node
    from prum.node.systems.accounts import revoke_system

    try:
        node = Node(NodeConfig.load(config))
        revoke_system(node.engine, name)
        node.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    console.print(f"system {name}'s token is revoked")


@node_app.command("import")
def import_records(
    config: ConfigFile,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="NDJSON files: one record or deletion a line (docs/national-systems.md)."
        ),
    ],
    system: Annotated[
        str, typer.Option(help="Who sends the records, as the audit log names it.")
    ] = "import-cli",
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every line's result as JSON.")
    ] = False,
) -> None:
    """Apply records and deletions from national-system exports, as the national-systems
    interface does: each line applied or refused on its own, the same line again
    unchanged, so a run stopped at any point is completed by running it again. A sample
    may name a file beside the NDJSON file ({"format": "image", "file": "p1.jpg"})."""
    from prum.node.systems.importer import run_import

    try:
        code = run_import(config, files, system=system, workers=workers, as_json=as_json)
    except PrumError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code=code)


@node_app.command("retention")
def retention_cmd(
    config: ConfigFile,
    run: Annotated[bool, typer.Option("--run", help="Delete what is due now.")] = False,
) -> None:
    """What the node holds of each data class, when it goes, and (--run) delete what is
    due now (the running node does this by itself every check period)."""
    from rich.table import Table

    from prum.node import retention
    from prum.node.core import Node

    try:
        node = Node(NodeConfig.load(config))
        try:
            purged = retention.purge(node) if run else {}
            held = retention.holdings(node)
        finally:
            node.close()
    except PrumError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"what {node.party} holds")
    for column in ("data", "held", "oldest", "kept for", "next deletion", "due now"):
        table.add_column(column, justify="right" if column in ("held", "due now") else "left")
    for item in held:
        period = "until deleted" if item.period_days is None else f"{item.period_days} days"
        if item.data_class == "web_sessions":
            period = "until expiry"
        nxt = item.next_deletion
        table.add_row(
            retention.WORDS[item.data_class],
            f"{item.held:,}",
            item.oldest.strftime("%Y-%m-%d %H:%M UTC") if item.oldest else "-",
            period,
            nxt.strftime("%Y-%m-%d") if nxt else "-",
            f"{item.due:,}",
        )
    Console().print(table)
    if run:
        done = ", ".join(f"{n:,} {retention.WORDS[k]}" for k, n in purged.items() if n)
        console.print(f"deleted: {done or 'nothing was due'}")
