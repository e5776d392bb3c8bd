"""``prum vehicle``: import a register from CSV, generate one, look a vehicle up."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from prum.categories.vehicle.config import VehicleSettings
from prum.categories.vehicle.csvio import import_csv, write_csv
from prum.categories.vehicle.generate import Generator
from prum.categories.vehicle.store import VehicleStore
from prum.cliargs import (
    AsJson,
    Country,
    DatabaseUrl,
    add_delete_command,
    cannot,
    console,
    fail,
    node_settings,
    progress,
)
from prum.errors import InvalidVehicleQuery, PrumError
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
    try:
        with file.open("rb") as f:
            total = sum(1 for _ in f) - 1
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
    except OSError as exc:
        raise cannot(exc, "read", file) from None
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
    try:
        generator = Generator(country)
        with out.open("w", newline="", encoding="utf-8") as f:
            rows = write_csv(
                (r for c in generator.stream(count, seed=seed) for r in c.registrations), f
            )
    except OSError as exc:
        raise cannot(exc, "write", out) from None
    except PrumError as exc:
        raise fail(exc) from None
    console.print(f"wrote {count:,} vehicles ({rows:,} rows) to {out}")


@app.command("query")
def query(
    plate: Annotated[str | None, typer.Option(help="Registration plate (A).")] = None,
    vin: Annotated[str | None, typer.Option(help="VIN (E).")] = None,
    surname: Annotated[str | None, typer.Option(help="Holder surname (C.1.1).")] = None,
    first_names: Annotated[str | None, typer.Option(help="Holder first names (C.1.2).")] = None,
    born: Annotated[str | None, typer.Option(help="Holder date of birth, YYYY-MM-DD.")] = None,
    at: Annotated[str | None, typer.Option(help="As on this date (default today).")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Look a vehicle up in this node's register; prints each vehicle found."""
    from prum.categories.vehicle.matcher import VehicleMatcher

    try:
        q = VehicleQuery(
            plate=plate,
            vin=vin,
            holder_surname=surname,
            holder_first_names=first_names,
            holder_date_of_birth=_date(born, "--born"),
            at=_date(at, "--at"),
        )
    except ValidationError as exc:
        # pydantic's own wording names the model and a URL; the rule's words suffice.
        words = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise fail(InvalidVehicleQuery(words)) from None
    except PrumError as exc:
        raise fail(exc) from None
    try:
        matcher = VehicleMatcher(node_settings(database_url=database_url))
        try:
            result = matcher.query(q, max_candidates=matcher.settings.max_candidates)
        finally:
            matcher.close()
    except PrumError as exc:
        raise fail(exc) from None
    if as_json:
        answer = [c.model_dump(mode="json", exclude_none=True) for c in result.candidates]
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    _print_vehicles(result.candidates)


def _date(text: str | None, option: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidVehicleQuery(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


# Field names with the codes of Directive 1999/37/EC that an officer knows them by.
_LABELS = {
    "registration_country": "registered in",
    "plate": "plate (A)",
    "vin": "VIN (E)",
    "make": "make (D.1)",
    "model": "model (D.3)",
    "vehicle_category": "category (J)",
    "first_registration": "first registered (B)",
    "holder_surname": "holder surname (C.1.1)",
    "holder_first_names": "holder first names (C.1.2)",
    "holder_address": "holder address (C.1.3)",
    "holder_since": "holder since",
    "holder_until": "holder until",
    "owner_name": "owner (C.2.1)",
    "owner_address": "owner address (C.2.3)",
    "signals": "signals",
    "insurer": "insurer",
    "insurance_valid_until": "insured until",
}


def _print_vehicles(candidates: list[Any]) -> None:
    """One card per vehicle: its registration data, field by field, never cut."""
    if not candidates:
        console.print("no vehicle found")
        return
    for c in candidates:
        data = c.details.model_dump(mode="json", exclude_none=True) if c.details else {}
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(no_wrap=True)
        for field, label in _LABELS.items():
            value = data.get(field)
            if value in (None, []):
                continue
            text = ", ".join(v.upper() for v in value) if field == "signals" else str(value)
            table.add_row(label, Text(text))
        synthetic = " [synthetic]" if c.synthetic else ""
        console.print(
            Text(
                f"vehicle {c.rank} of {len(candidates)}: {c.reference} ({c.provenance}{synthetic})"
            )
        )
        console.print(table)
