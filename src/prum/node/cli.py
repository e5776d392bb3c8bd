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
    from prum.federation.security.pki import server_context
    from prum.federation.transport import Listener, serve_many
    from prum.node.api import create_federation_app, create_national_app
    from prum.node.core import Node

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
    except PrumError as exc:
        raise _fail(exc) from exc
    console.print(
        f"node {cfg.party}: federation https://{cfg.federation_host}:{cfg.federation_port},"
        f" national http://{cfg.api_host}:{cfg.api_port}"
    )
    serve_many(national, federation)
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
