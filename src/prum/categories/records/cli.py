"""``prum records``: import persons (JSON Lines), generate a synthetic register, search
the pseudonymised index, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from prum.categories.interface import Exposure
from prum.cliargs import (
    AsJson,
    DatabaseUrl,
    DataDir,
    add_delete_command,
    cannot,
    console,
    fail,
    node_settings,
    print_candidates,
)
from prum.errors import InvalidRecord, PrumError
from prum.federation.messages import Category

app = typer.Typer(
    help="Police records (persons with a case): import, synthetic registers, search, delete.",
    no_args_is_help=True,
)
add_delete_command(app, Category.RECORDS)


def _matcher(data_dir: Path | None, database_url: str | None) -> Any:
    from prum.categories.records.matcher import RecordsMatcher

    return RecordsMatcher(node_settings(data_dir, database_url))


def _read_lines(file: Path) -> list[tuple[Any, dict[str, Any]]]:
    """Every line checked: a person object, with the record's fields under "record"."""
    from prum.categories.records.person import person_from_dict

    items, errors = [], []
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise InvalidRecord("a line is a JSON object")
                record = data.pop("record", {})
                if not isinstance(record, dict):
                    raise InvalidRecord('"record" is a JSON object')
                items.append((person_from_dict(data), record))
            except json.JSONDecodeError as exc:
                errors.append({"line": number, "message": f"not JSON: {exc.msg}"})
            except PrumError as exc:
                errors.append({"line": number, "message": exc.message})
    if errors:
        raise InvalidRecord(f"{len(errors)} line(s) of {file} refused", errors=errors)
    return items


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines, a person a line.")
    ],
    provenance: Annotated[str, typer.Option(help="Where the records come from.")] = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import persons in one transaction: all lines, or none.

    A line is a person (surnames, first_names, aliases, date_of_birth, place_of_birth,
    country_of_birth, nationalities, gender) with an optional "record" object: category,
    offence, case_number, responsible_authority, synthetic, source_key.
    """
    try:
        items = _read_lines(file)
        for _, record in items:
            record.setdefault("provenance", provenance or f"import {file.name}")
        matcher = _matcher(data_dir, database_url)
        try:
            references = matcher.enroll_many(items)
        finally:
            matcher.close()
    except UnicodeDecodeError:
        raise fail(InvalidRecord(f"{file} is not UTF-8 text")) from None
    except OSError as exc:
        raise cannot(exc, "read", file) from None
    except PrumError as exc:
        raise fail(exc) from None
    console.print(f"imported {len(references):,} police records")


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Argument(dir_okay=False, help="JSON Lines file to write.")],
    count: Annotated[int, typer.Option(min=1, help="Persons.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same persons.")] = 1,
) -> None:
    """Write synthetic persons (flagged synthetic) in the import format."""
    from prum.categories.records.synthetic import PersonGenerator

    try:
        with out.open("w", encoding="utf-8") as f:
            for person in PersonGenerator(seed=seed).people(count):
                line = {**person.to_dict(), "record": {"synthetic": True}}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise cannot(exc, "write", out) from None
    console.print(f"wrote {count:,} synthetic persons to {out}")


@app.command("search")
def search(
    person: Annotated[
        str, typer.Argument(help='The person searched for, as JSON: {"surnames": [...], ...}.')
    ],
    max_candidates: Annotated[int, typer.Option(min=1, max=100, help="Candidates.")] = 10,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Search this node's index with the query another node would send (pseudonymised
    with the federation key); prints the candidates, which fields agreed, never a name."""
    from prum.categories.records.encode import make_query
    from prum.categories.records.person import parse_person

    try:
        matcher = _matcher(data_dir, database_url)
        try:
            result = matcher.search_query(
                make_query(parse_person(person), matcher.key),
                max_candidates=max_candidates,
                exposure=Exposure(),  # everything: a national search
            )
        finally:
            matcher.close()
    except PrumError as exc:
        raise fail(exc) from None
    print_candidates(result, as_json=as_json)
