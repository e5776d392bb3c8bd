"""``prum dna``: import profiles (JSON, CSV, ANSI/NIST-ITL Type-18), export reference data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prum.categories.dna.nist import FORMATS, dump_reference, iter_reference_data, safe_load
from prum.cliargs import (
    Country,
    DatabaseUrl,
    DataDir,
    add_delete_command,
    cannot,
    console,
    fail,
    node_settings,
    progress,
)
from prum.errors import BadInput, PrumError
from prum.federation.messages import Category

app = typer.Typer(
    help="DNA profiles: import (JSON, CSV, ANSI/NIST-ITL Type-18), export of reference data.",
    no_args_is_help=True,
)
add_delete_command(app, Category.DNA)


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON, CSV or ANSI/NIST-ITL file.")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    country: Country = None,
    provenance: Annotated[str, typer.Option(help="Where the profiles come from.")] = "",
) -> None:
    """Import profiles: every one is validated first, and if any fails nothing is stored.

    A profile that carries a reference (an export of another node) is not stored twice
    when the file is imported again.
    """
    from prum.categories.dna.matcher import DnaMatcher

    settings = node_settings(data_dir, database_url, country)
    try:
        matcher = DnaMatcher(settings)
        try:
            items = safe_load(file.read_bytes(), loci=matcher.loci, rules=matcher.rules)
            console.print(f"{len(items):,} profiles valid; storing")
            with progress() as bar:
                task = bar.add_task("importing", total=len(items))
                for item in items:
                    matcher.enroll(
                        item.profile.to_json(),
                        provenance=provenance or f"import {file.name}",
                        source_key=f"dna-import:{item.reference}" if item.reference else None,
                    )
                    bar.advance(task)
        finally:
            matcher.close()
    except OSError as exc:
        raise cannot(exc, "read", file) from None
    except PrumError as exc:
        raise fail(exc) from None
    console.print(f"imported {len(items):,} DNA profiles")


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(dir_okay=False, help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "json",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    country: Country = None,
) -> None:
    """Export reference data: reference number, identified flag and profile; no core data."""
    from prum.categories.dna.loci import LocusSet
    from prum.categories.dna.store import DnaStore

    if fmt not in FORMATS:
        raise fail(BadInput(f"--format is one of {', '.join(FORMATS)}, not {fmt!r}"))
    settings = node_settings(data_dir, database_url, country)
    try:
        from prum.categories.dna.config import DnaSettings

        loci = LocusSet(DnaSettings().locus_set)
        store = DnaStore(settings.resolved_database_url(), country=settings.country)
        try:
            items = list(iter_reference_data(store, loci=loci))
        finally:
            store.close()
        data = dump_reference(items, fmt, originating_agency=settings.country)
        out.write_bytes(data)
    except OSError as exc:
        raise cannot(exc, "write", out) from None
    except PrumError as exc:
        raise fail(exc) from None
    console.print(f"exported {len(items):,} DNA profiles ({fmt}) to {out}")
