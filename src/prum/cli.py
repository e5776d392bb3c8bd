"""The ``prum`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from prum.audit.cli import audit_app
from prum.audit.cli import stats as audit_stats
from prum.categories.dna.cli import app as dna_app
from prum.categories.face.cli import app as face_app
from prum.categories.finger.cli import app as finger_app
from prum.categories.records.cli import app as records_app
from prum.categories.vehicle.cli import app as vehicle_app
from prum.cliargs import CPUS, PrumGroup, Workers, console
from prum.conformance.cli import conformance_app
from prum.federation.router.cli import router_app
from prum.federation.security.cli import pki_app
from prum.node.abis.cli import abis_app
from prum.node.cli import node_app

app = typer.Typer(
    cls=PrumGroup,  # whatever escapes a command is one line and exit 2, not a traceback
    help="Prüm: federated police data exchange (national node tools).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(face_app, name="face")
app.add_typer(pki_app, name="pki", help="The federation PKI: CA, certificates, revocation.")
app.add_typer(audit_app, name="audit", help="Tamper-evident logs: verify, show, purge.")
app.add_typer(node_app, name="node")
app.add_typer(router_app, name="router")
app.add_typer(vehicle_app, name="vehicle")
app.add_typer(dna_app, name="dna")
app.add_typer(finger_app, name="finger")
app.add_typer(records_app, name="records")
app.add_typer(conformance_app, name="conformance")
app.add_typer(abis_app, name="abis")
app.command("stats", help="Statistics per party, category and purpose (no personal data).")(
    audit_stats
)


@app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    systems: Annotated[
        bool, typer.Option("--systems", help="The national-systems interface's contract instead.")
    ] = False,
    abis: Annotated[
        bool, typer.Option("--abis", help="The contract of an external matcher (ABIS) instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of every wire message (version 1), or with --systems of the
    national-systems interface (docs/national-systems.md), or with --abis of an external
    matcher (docs/abis.md)."""
    if abis:
        from prum.node.abis.contract import json_schemas
    elif systems:
        from prum.node.systems.contract import json_schemas
    else:
        from prum.federation.messages import json_schemas

    text = json.dumps(json_schemas(), indent=2)
    if output is None:
        console.print_json(text)
    else:
        output.write_text(text + "\n")


# --- demo ------------------------------------------------------------------------------


@app.command("demo")
def demo(
    root: Annotated[Path, typer.Option(help="Where the demo federation lives.")] = Path("var/demo"),
    scale: Annotated[
        int, typer.Option(help="Synthetic background templates added per country.")
    ] = 0,
    workers: Workers = CPUS,
    wait: Annotated[
        bool,
        typer.Option(
            help="Keep the federation running after the cases (Ctrl-C stops it); with"
            " --no-wait stop at once, exit 1 if any case failed (for CI)."
        ),
    ] = True,
) -> None:
    """Start a federation (router, AT, DE, HU, NL, Europol) and run one case per
    category end to end, from the probe to the released core data."""
    from prum.demo.run import main

    main(root, workers, scale, keep_running=wait)
