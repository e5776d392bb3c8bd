"""A person's biographical data as a police record holds it (clear text, national only).

Accepted as JSON (one object)::

    {"surnames": ["Иванов"], "first_names": ["Дмитрий", "Сергеевич"],
     "aliases": ["Dima Ivanoff", {"surnames": ["Petrov"], "first_names": ["Ivan"]}],
     "date_of_birth": "1980-05-17",          # or "1980-05", "1980", or null
     "place_of_birth": "Sofia", "country_of_birth": "BG",
     "nationalities": ["BG"], "gender": "M"}  # F, M, X or U

Names may be a list or one string; an alias given as a string is "Surnames, First
names" with a comma, otherwise its last word is the surname.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from prum.errors import InvalidPerson

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")
_COUNTRY = re.compile(r"^[A-Z]{2,3}$")
GENDERS = ("F", "M", "X", "U")
MAX_TEXT = 200


@dataclass(frozen=True)
class BirthDate:
    """A date of birth, possibly partial (year only, or year and month)."""

    year: int | None = None
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if self.day is not None and self.month is None:
            raise InvalidPerson("a date of birth with a day needs a month")
        if self.month is not None and self.year is None:
            raise InvalidPerson("a date of birth with a month needs a year")
        if self.year is not None and not 1850 <= self.year <= dt.date.today().year:
            raise InvalidPerson(f"year of birth {self.year} is impossible")
        if self.month is not None and not 1 <= self.month <= 12:
            raise InvalidPerson(f"month of birth {self.month} is impossible")
        if self.year is not None and self.month is not None and self.day is not None:
            try:
                born = dt.date(self.year, self.month, self.day)
            except ValueError as exc:
                raise InvalidPerson(f"date of birth: {exc}") from exc
            if born > dt.date.today():
                raise InvalidPerson(f"date of birth {born} is in the future")

    @classmethod
    def parse(cls, value: object) -> BirthDate:
        if value is None or value == "":
            return cls()
        if isinstance(value, dt.date):
            return cls(value.year, value.month, value.day)
        if not isinstance(value, str) or not (m := _DATE.match(value.strip())):
            raise InvalidPerson(f"date of birth {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        return cls(*(int(g) if g else None for g in m.groups()))

    def complete(self) -> dt.date | None:
        if self.year is None or self.month is None or self.day is None:
            return None
        return dt.date(self.year, self.month, self.day)

    def iso(self) -> str | None:
        if self.year is None:
            return None
        parts = [f"{self.year:04d}"]
        if self.month is not None:
            parts.append(f"{self.month:02d}")
            if self.day is not None:
                parts.append(f"{self.day:02d}")
        return "-".join(parts)


@dataclass(frozen=True)
class Name:
    """One name of a person: surnames and first names (each possibly several words)."""

    surnames: tuple[str, ...]
    first_names: tuple[str, ...] = ()

    def display(self) -> str:
        return f"{' '.join(self.surnames)}, {' '.join(self.first_names)}".strip(", ")


@dataclass(frozen=True)
class Person:
    name: Name
    aliases: tuple[Name, ...] = ()
    born: BirthDate = field(default_factory=BirthDate)
    place_of_birth: str | None = None
    country_of_birth: str | None = None
    nationalities: tuple[str, ...] = ()
    gender: str | None = None

    def names(self) -> tuple[Name, ...]:
        """The name and then every alias."""
        return (self.name, *self.aliases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "surnames": list(self.name.surnames),
            "first_names": list(self.name.first_names),
            "aliases": [
                {"surnames": list(a.surnames), "first_names": list(a.first_names)}
                for a in self.aliases
            ],
            "date_of_birth": self.born.iso(),
            "place_of_birth": self.place_of_birth,
            "country_of_birth": self.country_of_birth,
            "nationalities": list(self.nationalities),
            "gender": self.gender,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode()


def _texts(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise InvalidPerson(f"{what} must be a string or a list of strings")
    out = tuple(v.strip() for v in items if v.strip())
    if any(len(v) > MAX_TEXT for v in out):
        raise InvalidPerson(f"{what}: a name longer than {MAX_TEXT} characters")
    return out


def _alias(value: object) -> Name:
    if isinstance(value, dict):
        unknown = set(value) - {"surnames", "first_names"}
        if unknown:
            raise InvalidPerson(f"unknown alias field(s): {', '.join(sorted(unknown))}")
        name = Name(
            _texts(value.get("surnames"), "alias surnames"),
            _texts(value.get("first_names"), "alias first names"),
        )
    elif isinstance(value, str):
        if "," in value:
            surnames, first = value.split(",", 1)
            name = Name(_texts(surnames, "alias"), _texts(first.split(), "alias"))
        else:
            words = value.split()
            name = Name(tuple(words[-1:]), tuple(words[:-1]))
    else:
        raise InvalidPerson("an alias is a string or an object with surnames and first_names")
    if not name.surnames and not name.first_names:
        raise InvalidPerson("an alias has no name")
    return name


def _country(value: object, what: str) -> str:
    if not isinstance(value, str) or not _COUNTRY.match(value.strip().upper()):
        raise InvalidPerson(f"{what} {value!r} is not an ISO 3166 country code")
    return value.strip().upper()


def person_from_dict(data: object) -> Person:
    """Validate one person (see the module docstring); raises InvalidPerson."""
    if not isinstance(data, dict):
        raise InvalidPerson("a person is a JSON object")
    known = {
        "surnames",
        "first_names",
        "aliases",
        "date_of_birth",
        "place_of_birth",
        "country_of_birth",
        "nationalities",
        "gender",
    }
    unknown = set(data) - known
    if unknown:
        raise InvalidPerson(f"unknown person field(s): {', '.join(sorted(unknown))}")
    name = Name(
        _texts(data.get("surnames"), "surnames"), _texts(data.get("first_names"), "first names")
    )
    if not name.surnames:
        raise InvalidPerson("a person needs at least one surname")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or len(aliases) > 20:
        raise InvalidPerson("aliases must be a list of at most 20 names")
    place = data.get("place_of_birth")
    if place is not None and (not isinstance(place, str) or len(place) > MAX_TEXT):
        raise InvalidPerson("place of birth must be a short string")
    gender = data.get("gender")
    if gender is not None and gender not in GENDERS:
        raise InvalidPerson(f"gender {gender!r} is not one of {', '.join(GENDERS)}")
    cob = data.get("country_of_birth")
    nationalities = data.get("nationalities") or []
    if not isinstance(nationalities, list) or len(nationalities) > 4:
        raise InvalidPerson("nationalities must be a list of at most 4 country codes")
    return Person(
        name=name,
        aliases=tuple(_alias(a) for a in aliases),
        born=BirthDate.parse(data.get("date_of_birth")),
        place_of_birth=place.strip() or None if isinstance(place, str) else None,
        country_of_birth=None if cob in (None, "") else _country(cob, "country of birth"),
        nationalities=tuple(_country(n, "nationality") for n in nationalities),
        gender=gender,
    )


def parse_person(raw: bytes | str) -> Person:
    """A person from JSON bytes; raises InvalidPerson with the reason."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPerson(f"the person is not JSON: {exc}") from exc
    return person_from_dict(data)
