"""``prum vehicle``: import a register from CSV, generate one, look a vehicle up."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from prum.categories.vehicle.config import VehicleSettings
from prum.categories.vehicle.csvio import import_csv, write_csv
from prum.categories.vehicle.generate import Generator
from prum.categories.vehicle.store import VehicleStore
from prum.cliargs import (
    Country,
    DatabaseUrl,
    add_delete_command,
    console,
    err,
    fail,
    node_settings,
    progress,
)
from prum.errors import PrumError
from prum.federation.messages import Category, VehicleQuery

app = typer.Typer(
    help="Vehicle registration data (EUCARIS): CSV import, synthetic registers, lookups.",
    no_args_is_help=True,
)
add_delete_command(app, Category.VEHICLE)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    database_url: DatabaseUrl = None,
    country: Country = None,
) -> None:
    """Import registrations from CSV in one transaction: all lines, or none."""
    settings = node_settings(database_url=database_url, country=country)
    vehicle = VehicleSettings()
    with file.open("rb") as f:
        total = sum(1 for _ in f) - 1
    try:
        store = VehicleStore(settings.resolved_database_url(), country=settings.country)
        try:
            with progress() as bar:
                task = bar.add_task("importing", total=max(total, 0))
                report = import_csv(
                    store,
                    file,
                    rule=vehicle.check_digit,
                    batch=vehicle.import_batch,
                    progress=lambda rows: bar.update(task, completed=rows),
                )
        finally:
            store.close()
    except PrumError as exc:
        raise fail(exc) from None
    console.print(f"imported {report.records:,} vehicles ({report.rows:,} holder rows)")


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Argument(dir_okay=False, help="CSV file to write.")],
    count: Annotated[int, typer.Option(min=1, help="Vehicles.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same registrations.")] = 1,
    country: Annotated[str, typer.Option(help="Plate layout and names.")] = "DE",
) -> None:
    """Write synthetic registrations in the import format."""
    generator = Generator(country)
    with out.open("w", newline="", encoding="utf-8") as f:
        rows = write_csv(
            (r for c in generator.stream(count, seed=seed) for r in c.registrations), f
        )
    console.print(f"wrote {count:,} vehicles ({rows:,} rows) to {out}")


@app.command("query")
def query(
    plate: Annotated[str | None, typer.Option(help="Registration plate (A).")] = None,
    vin: Annotated[str | None, typer.Option(help="VIN (E).")] = None,
    surname: Annotated[str | None, typer.Option(help="Holder surname (C.1.1).")] = None,
    first_names: Annotated[str | None, typer.Option(help="Holder first names (C.1.2).")] = None,
    born: Annotated[str | None, typer.Option(help="Holder date of birth, YYYY-MM-DD.")] = None,
    at: Annotated[str | None, typer.Option(help="As on this date (default today).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Look a vehicle up in this node's register; prints the answer as JSON."""
    from prum.categories.vehicle.matcher import VehicleMatcher

    try:
        q = VehicleQuery(
            plate=plate,
            vin=vin,
            holder_surname=surname,
            holder_first_names=first_names,
            holder_date_of_birth=dt.date.fromisoformat(born) if born else None,
            at=dt.date.fromisoformat(at) if at else None,
        )
    except ValueError as exc:
        err.print(f"[bold red]error[/] (bad_input): {exc}")
        raise typer.Exit(code=2) from None
    try:
        matcher = VehicleMatcher(node_settings(database_url=database_url))
        try:
            result = matcher.query(q, max_candidates=matcher.settings.max_candidates)
        finally:
            matcher.close()
    except PrumError as exc:
        raise fail(exc) from None
    answer = [c.model_dump(mode="json", exclude_none=True) for c in result.candidates]
    console.print_json(json.dumps(answer, ensure_ascii=False))
