"""CSV import (and export) of registrations: all or nothing, errors by line and field.

One row per holder period. Rows of one vehicle share its ``record`` key (the national
register's own number, kept as the source key so a vehicle is never stored twice) and
follow each other; the vehicle's fields come from its first row and later rows leave
them empty or repeat them. Columns may be named by their Directive 1999/37/EC code
(``A``, ``E``, ``D.1``, ``C.1.1`` ...) or by name (``plate``, ``vin`` ...); dates are
``YYYY-MM-DD``. See docs/vehicles.md for the full list.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prum.categories.vehicle.record import Registration, Role, parse_registration
from prum.categories.vehicle.store import VehicleStore
from prum.categories.vehicle.vin import CheckDigitRule
from prum.errors import BadInput, InvalidVehicleImport

# Column name -> accepted headers (name first, then the certificate code).
COLUMNS: dict[str, tuple[str, ...]] = {
    "record": ("record",),
    "plate": ("plate", "A"),
    "vin": ("vin", "E"),
    "make": ("make", "D.1"),
    "model": ("model", "D.3"),
    "vehicle_category": ("vehicle_category", "J"),
    "first_registration": ("first_registration", "B"),
    "holder_surname": ("holder_surname", "C.1.1"),
    "holder_first_names": ("holder_first_names", "C.1.2"),
    "holder_address": ("holder_address", "C.1.3"),
    "holder_date_of_birth": ("holder_date_of_birth",),
    "holder_since": ("holder_since",),
    "holder_until": ("holder_until",),
    "owner_name": ("owner_name", "C.2.1"),
    "owner_first_names": ("owner_first_names", "C.2.2"),
    "owner_address": ("owner_address", "C.2.3"),
    "owner_since": ("owner_since",),
    "owner_until": ("owner_until",),
    "stolen_since": ("stolen_since",),
    "exported_on": ("exported_on",),
    "destroyed_on": ("destroyed_on",),
    "insurer": ("insurer",),
    "insurance_valid_until": ("insurance_valid_until",),
}
REQUIRED = ("record", "plate", "vin", "holder_surname", "holder_since")
VEHICLE_FIELDS = (
    "plate",
    "vin",
    "make",
    "model",
    "vehicle_category",
    "first_registration",
    "stolen_since",
    "exported_on",
    "destroyed_on",
    "insurer",
    "insurance_valid_until",
)
DATES = {
    "first_registration",
    "holder_date_of_birth",
    "holder_since",
    "holder_until",
    "owner_since",
    "owner_until",
    "stolen_since",
    "exported_on",
    "destroyed_on",
    "insurance_valid_until",
}
MAX_ERRORS = 50


@dataclass
class ImportReport:
    records: int = 0
    rows: int = 0


@dataclass
class _Group:
    key: str
    first_line: int
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class _Errors:
    def __init__(self, headers: dict[str, str]):
        self.headers = headers
        self.items: list[dict[str, Any]] = []

    def add(self, line: int, name: str | None, message: str) -> None:
        if len(self.items) < MAX_ERRORS:
            column = self.headers.get(name or "", name)
            self.items.append({"line": line, "field": column, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)


def _header_map(header: list[str]) -> dict[str, int]:
    lookup = {alias.lower(): name for name, aliases in COLUMNS.items() for alias in aliases}
    found: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = lookup.get(raw.strip().lower())
        if name is None:
            raise InvalidVehicleImport(
                f"line 1: unknown column {raw!r}; the columns are listed in docs/vehicles.md",
                errors=[{"line": 1, "field": raw, "message": "unknown column"}],
            )
        if name in found:
            raise InvalidVehicleImport(
                f"line 1: column {raw!r} is given twice",
                errors=[{"line": 1, "field": raw, "message": "column given twice"}],
            )
        found[name] = i
    missing = [COLUMNS[c][-1] for c in REQUIRED if c not in found]
    if missing:
        raise InvalidVehicleImport(
            f"line 1: missing column(s) {', '.join(missing)}",
            errors=[{"line": 1, "field": m, "message": "missing column"} for m in missing],
        )
    return found


def _groups(
    reader: Iterator[list[str]],
    columns: dict[str, int],
    errors: _Errors,
    line_of: Callable[[], int],
) -> Iterator[_Group]:
    seen: dict[str, int] = {}
    group: _Group | None = None
    width = max(columns.values()) + 1
    for raw in reader:
        line = line_of()
        if not any(cell.strip() for cell in raw):
            continue
        if len(raw) < width:
            errors.add(line, None, f"the row has {len(raw)} fields, the header {width}")
            continue
        row = {name: raw[i].strip() for name, i in columns.items()}
        key = row["record"]
        if not key:
            errors.add(line, "record", "empty record key")
            continue
        if group is not None and key == group.key:
            group.rows.append((line, row))
            continue
        if key in seen:
            errors.add(
                line,
                "record",
                f"record {key!r} started on line {seen[key]}; the rows of one vehicle"
                " must follow each other",
            )
            continue
        if group is not None:
            yield group
        seen[key] = line
        group = _Group(key, line, [(line, row)])
    if group is not None:
        yield group


def _date(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _registration(group: _Group, errors: _Errors, rule: CheckDigitRule) -> Registration | None:
    first_line, first = group.rows[0]
    before = len(errors.items)
    for line, row in group.rows:
        for name in DATES:
            if row.get(name):
                try:
                    dt.date.fromisoformat(row[name])
                except ValueError:
                    errors.add(line, name, f"{row[name]!r} is not a date (YYYY-MM-DD)")
        if line != first_line:
            for name in VEHICLE_FIELDS:
                if row.get(name) and row[name] != first.get(name, ""):
                    errors.add(
                        line,
                        name,
                        f"{row[name]!r} differs from {first.get(name, '')!r} on line"
                        f" {first_line} (the same vehicle)",
                    )
    if len(errors.items) > before:
        return None
    parties: list[dict[str, Any]] = []
    party_lines: list[int] = []
    for line, row in group.rows:
        parties.append(
            {
                "role": Role.HOLDER,
                "surname": row["holder_surname"],
                "first_names": row.get("holder_first_names") or None,
                "date_of_birth": _date(row.get("holder_date_of_birth", "")),
                "address": row.get("holder_address") or None,
                "since": _date(row["holder_since"]),
                "until": _date(row.get("holder_until", "")),
            }
        )
        party_lines.append(line)
        if row.get("owner_name"):
            owner = {
                "role": Role.OWNER,
                "surname": row["owner_name"],
                "first_names": row.get("owner_first_names") or None,
                "address": row.get("owner_address") or None,
                # Without a date of its own, the owner is the owner since the vehicle's
                # first registration (or its first holder).
                "since": _date(row.get("owner_since", ""))
                or _date(first.get("first_registration", ""))
                or _date(first["holder_since"]),
                "until": _date(row.get("owner_until", "")),
            }
            if owner not in parties:  # the same owner repeated on each holder row
                parties.append(owner)
                party_lines.append(line)
    data: dict[str, Any] = {
        name: (_date(first[name]) if name in DATES else first[name])
        for name in VEHICLE_FIELDS
        if first.get(name)
    }
    data.update(parties=parties, source_key=group.key, provenance="CSV import")
    try:
        return parse_registration(data, rule=rule)
    except BadInput as exc:
        where = str(exc.details.get("field", ""))
        line = first_line
        parts = where.split(".")
        if parts[0] == "parties" and len(parts) > 1 and parts[1].isdigit():
            line = party_lines[int(parts[1])]
            where = f"{parties[int(parts[1])]['role'].value}_{parts[-1]}"
        elif "vin" in exc.details:
            where = "vin"
        elif "plate" in exc.details:
            where = "plate"
        errors.add(line, where or None, exc.message)
        return None


def import_csv(
    store: VehicleStore,
    source: Path | IO[str],
    *,
    rule: CheckDigitRule = "north_america",
    batch: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV file in one transaction; :class:`InvalidVehicleImport` (with every
    bad line and field, up to 50, in ``details["errors"]``) stores nothing."""
    handle = source.open(newline="", encoding="utf-8-sig") if isinstance(source, Path) else source
    try:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidVehicleImport("the CSV file is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidVehicleImport(f"line 1: not a readable CSV header: {exc}") from exc
        columns = _header_map(header)
        errors = _Errors({name: header[i].strip() for name, i in columns.items()})
        report = ImportReport()
        with store.writer() as writer:
            pending: list[tuple[_Group, Registration]] = []

            def flush() -> None:
                known = writer.known_source_keys([g.key for g, _ in pending])
                for g, _ in pending:
                    if g.key in known:
                        errors.add(g.first_line, "record", f"record {g.key!r} is already stored")
                if not errors:
                    writer.add_many([r for _, r in pending])
                pending.clear()

            try:
                for group in _groups(reader, columns, errors, lambda: reader.line_num):
                    registration = _registration(group, errors, rule)
                    report.rows += len(group.rows)
                    if registration is not None:
                        report.records += 1
                        pending.append((group, registration))
                    if len(pending) >= batch:
                        flush()
                    if progress is not None:
                        progress(report.rows)
                    if len(errors.items) >= MAX_ERRORS:
                        break
                if pending:
                    flush()
            except (csv.Error, UnicodeDecodeError) as exc:
                errors.add(reader.line_num, None, f"unreadable CSV: {exc}")
            if errors:
                first = errors.items[0]
                raise InvalidVehicleImport(
                    f"{len(errors.items)}{'+' if len(errors.items) >= MAX_ERRORS else ''}"
                    f" error(s), nothing imported; first: line {first['line']}"
                    + (f", field {first['field']}" if first["field"] else "")
                    + f": {first['message']}",
                    errors=errors.items,
                )
        return report
    finally:
        if isinstance(source, Path):
            handle.close()


def write_csv(registrations: Iterable[Registration], out: IO[str]) -> int:
    """Write registrations in the import format (header by name); returns rows written."""
    names = list(COLUMNS)
    writer = csv.writer(out)
    writer.writerow(names)
    rows = 0
    for number, r in enumerate(registrations, start=1):
        key = r.source_key or f"R{number:09d}"
        owner = next((p for p in r.parties if p.role == Role.OWNER), None)
        vehicle: dict[str, Any] = {name: getattr(r, name) for name in VEHICLE_FIELDS}
        for p in (p for p in r.parties if p.role == Role.HOLDER):
            row: dict[str, Any] = {
                "record": key,
                **vehicle,
                "holder_surname": p.surname,
                "holder_first_names": p.first_names,
                "holder_address": p.address,
                "holder_date_of_birth": p.date_of_birth,
                "holder_since": p.since,
                "holder_until": p.until,
            }
            if owner is not None:
                row.update(
                    owner_name=owner.surname,
                    owner_first_names=owner.first_names,
                    owner_address=owner.address,
                    owner_since=owner.since,
                    owner_until=owner.until,
                )
            writer.writerow(["" if row.get(n) is None else str(row[n]) for n in names])
            rows += 1
    return rows
