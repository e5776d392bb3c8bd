"""The vehicle register: enrolment, the three queries, history, signals, CSV, bulk load.

Store and matcher tests run on SQLite and on PostgreSQL (``database_url``).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from prum.categories.interface import Exposure, SubjectCategory
from prum.categories.vehicle.cli import app
from prum.categories.vehicle.csvio import import_csv, write_csv
from prum.categories.vehicle.generate import Generator
from prum.categories.vehicle.matcher import MATCH_WORDS, VehicleMatcher
from prum.categories.vehicle.normalise import plate_key
from prum.categories.vehicle.record import Role, parse_registration
from prum.categories.vehicle.schema import vehicle_deletions, vehicle_parties
from prum.categories.vehicle.vin import validate_vin
from prum.config import Settings
from prum.errors import (
    InvalidPlate,
    InvalidRecord,
    InvalidVehicleImport,
    InvalidVehicleQuery,
    InvalidVin,
    UnknownReference,
)
from prum.federation.messages import Candidate, Category, Probe, VehicleData, VehicleQuery
from prum.node.categories import make_matcher

EXPOSURE = Exposure(subjects=frozenset(SubjectCategory), min_age=None)
TODAY = dt.date.today()

GOLF: dict[str, Any] = {
    "plate": "W-123 AB",
    "vin": "WVWZZZ1KZ6W000001",
    "make": "Volkswagen",
    "model": "Golf",
    "vehicle_category": "M1",
    "first_registration": "2015-03-02",
    "parties": [
        {
            "surname": "Müller",
            "first_names": "Anna Maria",
            "date_of_birth": "1980-04-05",
            "address": "Hauptstraße 1, 1010 Wien",
            "since": "2015-03-02",
            "until": "2020-06-30",
        },
        {
            "surname": "Nowak",
            "first_names": "Paweł",
            "date_of_birth": "1975-11-30",
            "address": "Ringstraße 9, 8010 Graz",
            "since": "2020-06-30",
        },
        {
            "role": "owner",
            "surname": "LeasePlan Österreich",
            "address": "Postfach 1, 1100 Wien",
            "since": "2015-03-02",
            "until": "2020-06-30",
        },
    ],
    "stolen_since": "2023-08-01",
    "insurer": "UNIQA",
    "insurance_valid_until": "2027-01-31",
}


@pytest.fixture
def matcher(database_url: str, tmp_path: Path) -> Iterator[VehicleMatcher]:
    settings = Settings(country="AT", data_dir=tmp_path, database_url=database_url)
    m = VehicleMatcher(settings)
    yield m
    m.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[VehicleMatcher]:
    """SQLite only: for rules that do not depend on the database."""
    m = VehicleMatcher(Settings(country="AT", data_dir=tmp_path))
    yield m
    m.close()


def enrol(matcher: VehicleMatcher, record: dict[str, Any]) -> str:
    return matcher.enroll(json.dumps(record).encode())


def search(matcher: VehicleMatcher, **query: Any) -> list[Candidate]:
    probe = Probe(format="vehicle_query", vehicle=VehicleQuery(**query))
    return matcher.search(probe, max_candidates=10, exposure=EXPOSURE).candidates


def details(candidate: Candidate) -> VehicleData:
    assert isinstance(candidate.details, VehicleData)
    return candidate.details


def test_plate_search_answers_with_the_registration_at_once(matcher: VehicleMatcher) -> None:
    reference = enrol(matcher, GOLF)
    [hit] = search(matcher, plate="w 123-ab")
    assert (hit.rank, hit.reference, hit.score, hit.distance) == (1, reference, 1.0, 0.0)
    assert hit.false_match_rate is None and hit.false_match_words == MATCH_WORDS
    data = details(hit)
    assert (data.registration_country, data.plate, data.vin) == ("AT", "W-123 AB", GOLF["vin"])
    assert (data.make, data.model, data.vehicle_category) == ("Volkswagen", "Golf", "M1")
    assert data.first_registration == dt.date(2015, 3, 2)
    # Today: the second holder, no owner any more, stolen since 2023, insurance.
    assert (data.holder_surname, data.holder_first_names) == ("Nowak", "Paweł")
    assert data.holder_since == dt.date(2020, 6, 30) and data.holder_until is None
    assert data.owner_name is None
    assert data.signals == ["stolen"]
    assert (data.insurer, data.insurance_valid_until) == ("UNIQA", dt.date(2027, 1, 31))


def test_plate_typed_with_cyrillic_lookalikes_finds_the_vehicle(local: VehicleMatcher) -> None:
    enrol(local, {**GOLF, "plate": "CA 1234 BP"})
    assert len(search(local, plate="СА-1234-ВР")) == 1  # Cyrillic С, А, В, Р


def test_vin_search_finds_the_vehicle(matcher: VehicleMatcher) -> None:
    reference = enrol(matcher, GOLF)
    assert [c.reference for c in search(matcher, vin="wvwzzz1kz6w000001")] == [reference]
    assert search(matcher, vin="WVWZZZ1KZ6W000002") == []


def test_query_at_a_date_returns_the_holder_of_that_day(matcher: VehicleMatcher) -> None:
    enrol(matcher, GOLF)
    [hit] = search(matcher, plate="W123AB", at=dt.date(2018, 1, 1))
    data = details(hit)
    assert (data.holder_surname, data.holder_first_names) == ("Müller", "Anna Maria")
    assert (data.holder_since, data.holder_until) == (dt.date(2015, 3, 2), dt.date(2020, 6, 30))
    assert data.owner_name == "LeasePlan Österreich"
    assert data.signals == []  # not yet stolen on that day
    # The day of the change belongs to the new holder ([since, until)).
    [hit] = search(matcher, plate="W123AB", at=dt.date(2020, 6, 30))
    assert details(hit).holder_surname == "Nowak"


def test_vehicle_not_yet_registered_on_the_date_is_not_returned(
    matcher: VehicleMatcher,
) -> None:
    enrol(matcher, GOLF)
    assert search(matcher, plate="W123AB", at=dt.date(2014, 1, 1)) == []


def test_holder_search_folds_diacritics_and_respects_the_period(
    matcher: VehicleMatcher,
) -> None:
    reference = enrol(matcher, GOLF)
    born = dt.date(1980, 4, 5)
    old = search(
        matcher, holder_surname="MULLER", holder_date_of_birth=born, at=dt.date(2016, 5, 1)
    )
    assert [c.reference for c in old] == [reference]
    assert details(old[0]).holder_surname == "Müller"
    # She no longer holds it today.
    assert search(matcher, holder_surname="Muller", holder_date_of_birth=born) == []
    now = search(matcher, holder_surname="nowak", holder_first_names="Pawel")
    assert [c.reference for c in now] == [reference]
    assert search(matcher, holder_surname="Nowak", holder_first_names="Piotr") == []


def test_owner_is_found_by_a_holder_search_too(matcher: VehicleMatcher) -> None:
    owner = {
        "role": "owner",
        "surname": "Huber",
        "first_names": "Eva",
        "date_of_birth": "1950-01-01",
        "since": "2015-03-02",
    }
    reference = enrol(matcher, {**GOLF, "parties": [*GOLF["parties"][:2], owner]})
    [hit] = search(matcher, holder_surname="Huber", holder_first_names="Eva")
    assert hit.reference == reference
    assert (details(hit).owner_name, details(hit).holder_surname) == ("Huber Eva", "Nowak")


def test_holder_search_by_surname_alone_is_refused(local: VehicleMatcher) -> None:
    with pytest.raises(InvalidVehicleQuery, match="first names or the date of birth"):
        search(local, holder_surname="Müller")


def test_signals_appear_from_their_date(matcher: VehicleMatcher) -> None:
    enrol(
        matcher,
        {
            **GOLF,
            "stolen_since": None,
            "exported_on": "2024-02-01",
            "parties": [{**GOLF["parties"][1], "until": "2024-02-01"}],
        },
    )
    assert details(search(matcher, vin=GOLF["vin"], at=dt.date(2024, 1, 31))[0]).signals == []
    [hit] = search(matcher, vin=GOLF["vin"])
    assert details(hit).signals == ["exported"]
    assert details(hit).holder_surname is None  # nobody holds an exported vehicle


def test_enrolment_with_a_bad_vin_or_plate_is_refused_and_stores_nothing(
    local: VehicleMatcher,
) -> None:
    with pytest.raises(InvalidVin, match="'O' at position 4"):
        enrol(local, {**GOLF, "vin": "WVWOZZ1KZ6W000001"})
    with pytest.raises(InvalidPlate):
        enrol(local, {**GOLF, "plate": "--"})
    with pytest.raises(InvalidVin, match="first registered on 2015-03-02"):
        enrol(local, {**GOLF, "vin": "118091234"})
    assert local.store.count() == 0


def test_pre_1981_chassis_number_is_stored_and_found(local: VehicleMatcher) -> None:
    old = {**GOLF, "vin": "118 091 2345", "first_registration": "1972-05-01"}
    old["parties"] = [{**GOLF["parties"][1], "since": "1972-05-01"}]
    reference = enrol(local, old)
    assert [c.reference for c in search(local, vin="1180912345")] == [reference]


def test_overlapping_holders_are_refused(local: VehicleMatcher) -> None:
    parties = [dict(p) for p in GOLF["parties"]]
    parties[1]["since"] = "2019-01-01"
    with pytest.raises(InvalidRecord, match="periods overlap"):
        enrol(local, {**GOLF, "parties": parties})


def test_unknown_field_is_refused_naming_it(local: VehicleMatcher) -> None:
    with pytest.raises(InvalidRecord, match="colour"):
        enrol(local, {**GOLF, "colour": "red"})


def test_source_key_is_not_stored_twice(local: VehicleMatcher) -> None:
    first = local.enroll(json.dumps(GOLF).encode(), source_key="AT-REG-1")
    again = local.enroll(json.dumps(GOLF).encode(), source_key="AT-REG-1")
    assert first == again and local.store.count() == 1


def test_delete_erases_the_registration_and_logs_it(matcher: VehicleMatcher) -> None:
    reference = enrol(matcher, GOLF)
    matcher.delete(reference, reason="court order")
    assert search(matcher, vin=GOLF["vin"]) == []
    with matcher.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(vehicle_parties)).scalar_one() == 0
        logged = conn.execute(select(vehicle_deletions.c.reference)).scalars().all()
    assert logged == [reference]
    with pytest.raises(UnknownReference):
        matcher.delete(reference, reason="again")
    assert matcher.describe()["records"] == 0


def test_wrong_probe_format_is_refused(local: VehicleMatcher) -> None:
    probe = Probe(format="image", data=base64.b64encode(b"\xff\xd8 a JPEG"))
    with pytest.raises(InvalidVehicleQuery):
        local.search(probe, max_candidates=10, exposure=EXPOSURE)


def test_registry_offers_the_vehicle_category(tmp_path: Path) -> None:
    m = make_matcher(Category.VEHICLE, Settings(country="DE", data_dir=tmp_path))
    try:
        assert m.describe()["category"] == "vehicle"
    finally:
        m.close()


# --- generator -----------------------------------------------------------------------


def test_generator_is_deterministic_and_its_records_are_valid() -> None:
    generator = Generator("BG", today=dt.date(2026, 1, 1))
    a = generator.registrations(300, seed=5)
    b = generator.registrations(300, seed=5)
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]
    assert a != generator.registrations(300, seed=6)
    for r in a:
        parse_registration(r.model_dump(mode="json"), rule="always")  # check digits too
        assert validate_vin(r.vin, rule="always") == r.vin
        assert plate_key(r.plate).isascii()
    assert len({r.vin for r in a}) == 300
    holders = [sum(p.role == Role.HOLDER for p in r.parties) for r in a]
    assert min(holders) == 1 and max(holders) >= 2
    assert any(r.destroyed_on or r.exported_on for r in a)
    assert any(p.role == Role.OWNER for r in a for p in r.parties)


# --- CSV import ----------------------------------------------------------------------


def _csv(n: int, seed: int = 3) -> str:
    out = io.StringIO()
    write_csv(Generator("DE").registrations(n, seed=seed), out)
    return out.getvalue()


def test_csv_round_trip_imports_every_vehicle_with_its_history(matcher: VehicleMatcher) -> None:
    text = _csv(120)
    progress: list[int] = []
    report = import_csv(matcher.store, io.StringIO(text), progress=progress.append)
    assert report.records == 120 and report.rows == len(text.splitlines()) - 1
    assert progress[-1] == report.rows
    for r in Generator("DE").registrations(120, seed=3)[:20]:
        hits = search(matcher, vin=r.vin)
        assert [details(h).plate for h in hits] == [r.plate]
        last = max((p for p in r.parties if p.role == Role.HOLDER), key=lambda p: p.since)
        assert details(hits[0]).holder_surname == (last.surname if last.until is None else None)


def test_csv_with_bad_lines_names_each_and_stores_nothing(matcher: VehicleMatcher) -> None:
    rows = list(csv.reader(io.StringIO(_csv(30))))
    vin_col, since_col = rows[0].index("vin"), rows[0].index("holder_since")
    rows[5][vin_col] = "WVWZZZ1KZ6W00000I"  # line 6
    rows[9][since_col] = "31.12.2020"  # line 10
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    with pytest.raises(InvalidVehicleImport, match="nothing imported") as err:
        import_csv(matcher.store, io.StringIO(out.getvalue()))
    found = {(e["line"], e["field"]) for e in err.value.details["errors"]}
    assert (10, "holder_since") in found
    # The VIN is the vehicle's: named on the first line of that vehicle.
    assert any(line <= 6 and field == "vin" for line, field in found)
    assert matcher.store.count() == 0


def test_csv_with_certificate_codes_as_headers(local: VehicleMatcher) -> None:
    header = "record,A,E,D.1,D.3,J,B,C.1.1,C.1.2,C.1.3,holder_since,holder_until\n"
    first = "R1,W-1 A,WVWZZZ1KZ6W000001,VW,Golf,M1,2015-03-02,Huber,Eva,Wien,2015-03-02,"
    second = "R1,,,,,,,Bauer,Karl,Graz,2019-01-01,\n"
    # Without an end to the first holder's period the two overlap.
    with pytest.raises(InvalidVehicleImport, match=r"line 2.*periods overlap"):
        import_csv(local.store, io.StringIO(header + first + "\n" + second))
    text = header + first + "2019-01-01\n" + second
    assert import_csv(local.store, io.StringIO(text)).records == 1
    [hit] = search(local, plate="W1A")
    assert (details(hit).holder_surname, details(hit).make) == ("Bauer", "VW")
    with pytest.raises(InvalidVehicleImport, match="already stored"):
        import_csv(local.store, io.StringIO(text))


def test_csv_with_scattered_rows_of_one_vehicle_is_refused(local: VehicleMatcher) -> None:
    text = (
        "record,plate,vin,holder_surname,holder_since\n"
        "R1,W-1 A,WVWZZZ1KZ6W000001,Huber,2015-03-02\n"
        "R2,W-2 A,WVWZZZ1KZ6W000002,Bauer,2015-03-02\n"
        "R1,W-1 A,WVWZZZ1KZ6W000001,Gruber,2018-03-02\n"
    )
    with pytest.raises(InvalidVehicleImport, match="line 4, field record"):
        import_csv(local.store, io.StringIO(text))
    assert local.store.count() == 0


def test_csv_with_an_unknown_column_is_refused() -> None:
    with pytest.raises(InvalidVehicleImport, match="unknown column 'colour'"):
        import_csv(None, io.StringIO("record,plate,colour\n"))  # type: ignore[arg-type]


# --- bulk load -----------------------------------------------------------------------


def test_bulk_load_rebuilds_the_indexes_and_lookups_work(matcher: VehicleMatcher) -> None:
    generator = Generator("FR")
    chunks = [generator.chunk(500, np.random.default_rng([1, i])) for i in range(3)]
    rows = [
        c.bulk_rows(first_id=1 + 500 * i, country="AT", enrolled_at="2026-01-01 00:00:00")
        for i, c in enumerate(chunks)
    ]
    seen: list[int] = []
    matcher.store.bulk_load(rows, progress=seen.append)
    assert seen == [500, 1000, 1500] and matcher.store.count() == 1500
    sample = chunks[2].registrations[7]
    [hit] = search(matcher, plate=sample.plate.replace("-", " ").lower())
    assert details(hit).vin == sample.vin
    assert enrol(matcher, GOLF)  # ids and unique indexes still work after the load
    assert search(matcher, vin=GOLF["vin"])


# --- CLI -----------------------------------------------------------------------------


def test_cli_generates_imports_and_queries(tmp_path: Path) -> None:
    runner = CliRunner()
    csv_file, url = tmp_path / "reg.csv", f"sqlite:///{tmp_path / 'node.sqlite'}"
    assert runner.invoke(app, ["generate", str(csv_file), "--count", "50"]).exit_code == 0
    result = runner.invoke(app, ["import", str(csv_file), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "imported 50 vehicles" in result.output
    vin = csv_file.read_text().splitlines()[1].split(",")[2]
    result = runner.invoke(app, ["query", "--vin", vin, "--database-url", url])
    assert result.exit_code == 0 and vin in result.output
    again = runner.invoke(app, ["import", str(csv_file), "--database-url", url])
    assert again.exit_code == 2 and "already stored" in again.output


def test_vehicle_tables_share_the_node_database_with_their_own_version_table(
    tmp_path: Path,
) -> None:
    from sqlalchemy import inspect

    from prum.categories.dna.store import DnaStore
    from prum.categories.vehicle.store import VehicleStore

    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    dna, vehicles = DnaStore(url), VehicleStore(url)
    try:
        tables = set(inspect(vehicles.engine).get_table_names())
        assert {"alembic_version_vehicle", "alembic_version_dna", "vehicle_records"} <= tables
        VehicleStore(url).close()  # opening again runs no migration twice
    finally:
        dna.close()
        vehicles.close()
