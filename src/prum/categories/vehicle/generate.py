"""Realistic synthetic registrations for tests, benchmarks and the demo.

Deterministic for a seed. Plates follow real national layouts (German, French, Dutch,
Italian, Polish, Austrian, and Bulgarian with its Cyrillic letters); VINs carry a real
world manufacturer identifier, the model-year letter of the first registration and a
valid check digit (49 CFR 565.15) so they pass under every rule; holders change over
the years (one holder at a time), some vehicles are owned by a leasing company (C.2),
and a few are stolen, exported or destroyed. Everything is marked synthetic.
"""

from __future__ import annotations

import datetime as dt
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from prum.categories.vehicle.normalise import name_key, plate_key
from prum.categories.vehicle.record import Party, Registration, Role
from prum.categories.vehicle.vin import TRANSLITERATION, WEIGHTS

# (WMI, make, models, category J): WMIs as assigned by SAE / ISO 3780.
MAKES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("WVW", "Volkswagen", ("Golf", "Polo", "Passat", "T-Roc", "ID.3"), "M1"),
    ("WV1", "Volkswagen", ("Transporter", "Caddy", "Crafter"), "N1"),
    ("WBA", "BMW", ("320d", "520d", "X3", "118i", "i4"), "M1"),
    ("WDD", "Mercedes-Benz", ("C 200", "E 220 d", "A 180", "GLC 300"), "M1"),
    ("VF1", "Renault", ("Clio", "Mégane", "Captur", "Zoe"), "M1"),
    ("VF3", "Peugeot", ("208", "308", "3008", "Partner"), "M1"),
    ("ZFA", "Fiat", ("Panda", "500", "Tipo", "Ducato"), "M1"),
    ("TMB", "Škoda", ("Octavia", "Fabia", "Superb", "Kodiaq"), "M1"),
    ("YV1", "Volvo", ("XC60", "V60", "XC40"), "M1"),
    ("WF0", "Ford", ("Focus", "Fiesta", "Kuga", "Transit"), "M1"),
    ("W0L", "Opel", ("Corsa", "Astra", "Mokka"), "M1"),
    ("VSS", "SEAT", ("Ibiza", "Leon", "Arona"), "M1"),
    ("JTD", "Toyota", ("Yaris", "Corolla", "RAV4"), "M1"),
    ("KMH", "Hyundai", ("i20", "i30", "Tucson"), "M1"),
    ("5YJ", "Tesla", ("Model 3", "Model Y"), "M1"),
    ("1FA", "Ford", ("Mustang",), "M1"),
    ("ZDM", "Ducati", ("Monster", "Multistrada"), "L3e"),
)

# Model-year codes (position 10): 1980-2000 letters, 2001-2009 digits, 2010-2030 letters.
_YEAR_LETTERS = "ABCDEFGHJKLMNPRSTVWXY"
YEAR_CODES = {
    **{1980 + i: c for i, c in enumerate(_YEAR_LETTERS)},
    **{2001 + i: str(i + 1) for i in range(9)},
    **{2010 + i: c for i, c in enumerate(_YEAR_LETTERS)},
}
_VIN_CHARS = np.frombuffer(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", dtype=np.uint8)
_VALUE = np.zeros(128, dtype=np.int64)
for _c, _v in TRANSLITERATION.items():
    _VALUE[ord(_c)] = _v
_WEIGHTS = np.array(WEIGHTS, dtype=np.int64)

_L = string.ascii_uppercase
_LETTERS_NO_IOQ = "ABCDEFGHJKLMNPRSTUVWXYZ"
# Bulgarian plates use the twelve Cyrillic letters that look Latin.
_BG_LETTERS = "АВЕКМНОРСТУХ"

PLATE_FORMATS = ("DE", "FR", "NL", "IT", "PL", "AT", "BG")
_DE_DISTRICTS = ("B", "M", "HH", "K", "F", "S", "D", "HB", "MÜ", "TÖL", "LÖ", "DÜW", "N", "KA")
_AT_DISTRICTS = ("W", "G", "L", "S", "I", "K", "BN", "MD", "VB")
_PL_DISTRICTS = ("WA", "KR", "PO", "GD", "WR", "LU", "SZ", "EL")
_BG_DISTRICTS = ("СА", "СВ", "РВ", "ВН", "РА", "В", "Е", "ТХ")

SURNAMES = {
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Schröder", "Groß", "Köhler"),
    "FR": ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Rousseau"),
    "NL": ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser"),
    "IT": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo"),
    "PL": ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Łukaszewicz"),
    "AT": ("Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Mayr"),
    "BG": ("Иванов", "Георгиев", "Димитров", "Петрова", "Николова", "Стоянов"),
}
FIRST_NAMES = {
    "DE": ("Anna", "Jürgen", "Lena", "Lukas", "Sören", "Marie Luise", "Jörg"),
    "FR": ("Camille", "Hélène", "Jean-Pierre", "Léa", "François", "Chloé"),
    "NL": ("Daan", "Sanne", "Bram", "Femke", "Joost", "Anouk"),
    "IT": ("Giulia", "Marco", "Francesca", "Luca", "Niccolò", "Chiara"),
    "PL": ("Zofia", "Jakub", "Małgorzata", "Łukasz", "Agnieszka", "Paweł"),
    "AT": ("Johanna", "Florian", "Theresa", "Maximilian", "Katharina", "Lukas"),
    "BG": ("Мария", "Георги", "Иван", "Елена", "Димитър", "Петя"),
}
STREETS = {
    "DE": ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schulstraße"),
    "FR": ("rue de la Paix", "avenue Victor Hugo", "rue des Écoles"),
    "NL": ("Kerkstraat", "Dorpsstraat", "Molenweg"),
    "IT": ("via Roma", "via Garibaldi", "corso Vittorio Emanuele"),
    "PL": ("ul. Długa", "ul. Kościuszki", "ul. Mickiewicza"),
    "AT": ("Hauptplatz", "Ringstraße", "Kirchengasse"),
    "BG": ("ул. Витоша", "бул. България", "ул. Раковски"),
}
CITIES = {
    "DE": ("Berlin", "München", "Köln", "Düsseldorf"),
    "FR": ("Paris", "Lyon", "Besançon", "Nîmes"),
    "NL": ("Amsterdam", "Utrecht", "'s-Hertogenbosch"),
    "IT": ("Roma", "Milano", "Forlì"),
    "PL": ("Warszawa", "Kraków", "Łódź"),
    "AT": ("Wien", "Graz", "Linz"),
    "BG": ("София", "Пловдив", "Варна"),
}
LESSORS = ("LeasePlan Deutschland GmbH", "ALD Automotive SAS", "Arval BV", "Athlon Car Lease")
INSURERS = ("Allianz", "AXA", "Generali", "UNIQA", "PZU", "Achmea", "HUK-Coburg", "ДЗИ")

EPOCH = dt.date(1995, 1, 1)


def vins(codes: np.ndarray[Any, np.dtype[np.uint8]]) -> list[str]:
    """Set position 9 of each row of 17 ASCII codes to its check digit; the VIN strings."""
    total = (_VALUE[codes] * _WEIGHTS).sum(axis=1) % 11
    codes[:, 8] = np.where(total == 10, ord("X"), total + ord("0"))
    return [bytes(row).decode() for row in codes]


# Dates are day numbers in the bulk path: ISO text and date objects come from tables.
_DAY0 = dt.date(1900, 1, 1).toordinal()
_DATES = [dt.date.fromordinal(_DAY0 + i) for i in range(200 * 366)]
_ISO = [d.isoformat() for d in _DATES]
_NONE = -1
PROVENANCE = "synthetic registration"

# A generated vehicle: (plate, vin, make, model, J, first, stolen, exported, destroyed,
# insurer, insured until) with days as numbers (-1: none) ...
Vehicle = tuple[str, str, str, str, str, int, int, int, int, str | None, int]
# ... and its parties: (role, surname, first names, born, address, since, until).
PartyTuple = tuple[str, str, str | None, int, str | None, int, int]


def _iso(day: int) -> str | None:
    return None if day == _NONE else _ISO[day]


def _date(day: int) -> dt.date | None:
    return None if day == _NONE else _DATES[day]


@dataclass(frozen=True)
class Chunk:
    """Generated registrations, as plain tuples (fast to bulk-load) or checked models."""

    vehicles: list[Vehicle]
    parties: list[list[PartyTuple]]

    def __len__(self) -> int:
        return len(self.vehicles)

    @property
    def registrations(self) -> list[Registration]:
        return [
            Registration(
                plate=v[0],
                vin=v[1],
                make=v[2],
                model=v[3],
                vehicle_category=v[4],
                first_registration=_date(v[5]),
                stolen_since=_date(v[6]),
                exported_on=_date(v[7]),
                destroyed_on=_date(v[8]),
                insurer=v[9],
                insurance_valid_until=_date(v[10]),
                parties=[
                    Party(
                        role=Role(p[0]),
                        surname=p[1],
                        first_names=p[2],
                        date_of_birth=_date(p[3]),
                        address=p[4],
                        since=_DATES[p[5]],
                        until=_date(p[6]),
                    )
                    for p in parties
                ],
                provenance=PROVENANCE,
                synthetic=True,
            )
            for v, parties in zip(self.vehicles, self.parties, strict=True)
        ]

    def bulk_rows(
        self, *, first_id: int, country: str, enrolled_at: str
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Tuples for :meth:`VehicleStore.bulk_load` (ids from ``first_id``)."""
        # Opaque references: random, not derived from the seed.
        hexes = os.urandom(12 * len(self.vehicles)).hex().upper()
        keys: dict[str, str] = {}

        def key(name: str | None) -> str:
            folded = keys.get(name or "")
            if folded is None:
                folded = keys[name or ""] = name_key(name or "")
            return folded

        vehicles: list[tuple[Any, ...]] = []
        party_rows: list[tuple[Any, ...]] = []
        for i, (v, parties) in enumerate(zip(self.vehicles, self.parties, strict=True)):
            vid = first_id + i
            vehicles.append(
                (
                    vid,
                    f"{country}-V-{hexes[24 * i : 24 * i + 24]}",
                    v[0],
                    plate_key(v[0]),
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    _ISO[v[5]],
                    _iso(v[6]),
                    _iso(v[7]),
                    _iso(v[8]),
                    v[9],
                    _iso(v[10]),
                    PROVENANCE,
                    True,
                    enrolled_at,
                )
            )
            for p in parties:
                party_rows.append(
                    (
                        vid,
                        p[0],
                        p[1],
                        p[2],
                        _iso(p[3]),
                        p[4],
                        _ISO[p[5]],
                        _iso(p[6]),
                        key(p[1]),
                        key(p[2]),
                    )
                )
        return vehicles, party_rows


class Generator:
    """Registrations of one country (``country`` picks the plate layout and names)."""

    def __init__(self, country: str = "DE", *, today: dt.date | None = None):
        self.country = country if country in PLATE_FORMATS else "DE"
        self.today = (today or dt.date.today()).toordinal() - _DAY0
        self.epoch = EPOCH.toordinal() - _DAY0
        c = self.country
        self._surnames, self._first_names = SURNAMES[c], FIRST_NAMES[c]
        self._streets, self._cities = STREETS[c], CITIES[c]

    def _plate(self, u: Iterator[float]) -> str:
        def one(chars: str | tuple[str, ...]) -> str:
            return chars[int(next(u) * len(chars))]

        def pick(chars: str, n: int) -> str:
            return "".join(one(chars) for _ in range(n))

        def digits(n: int) -> str:
            return str(int(next(u) * 10**n)).zfill(n)

        c = self.country
        if c == "DE":
            letters = pick(_L, 1 if next(u) < 0.3 else 2)
            return f"{one(_DE_DISTRICTS)}-{letters} {1 + int(next(u) * 9999)}"
        if c == "FR":
            return f"{pick(_LETTERS_NO_IOQ, 2)}-{digits(3)}-{pick(_LETTERS_NO_IOQ, 2)}"
        if c == "NL":
            return f"{digits(2)}-{pick('BDFGHJKLNPRSTVXZ', 3)}-{digits(1)}"
        if c == "IT":
            return f"{pick(_LETTERS_NO_IOQ, 2)} {digits(3)}{pick(_LETTERS_NO_IOQ, 2)}"
        if c == "PL":
            return f"{one(_PL_DISTRICTS)} {digits(5)}"
        if c == "AT":
            return f"{one(_AT_DISTRICTS)}-{1 + int(next(u) * 99998)}{one('ABCDEFGHKLMNPRSTUVWXYZ')}"
        return f"{one(_BG_DISTRICTS)} {digits(4)} {pick(_BG_LETTERS, 2)}"

    def _person(self, u: Iterator[float], since: int) -> PartyTuple:
        surname = self._surnames[int(next(u) * len(self._surnames))]
        first = self._first_names[int(next(u) * len(self._first_names))]
        # Holders are 18 to 85 when they take the vehicle.
        born = since - 18 * 365 - int(next(u) * 67 * 365)
        street = self._streets[int(next(u) * len(self._streets))]
        city = self._cities[int(next(u) * len(self._cities))]
        number, postcode = 1 + int(next(u) * 199), 1000 + int(next(u) * 98999)
        return (
            "holder",
            surname,
            first,
            born,
            f"{street} {number}, {postcode} {city}",
            since,
            _NONE,
        )

    def chunk(self, n: int, rng: np.random.Generator) -> Chunk:
        """``n`` registrations; every random number comes from ``rng``, in bulk."""
        codes = _VIN_CHARS[rng.integers(0, len(_VIN_CHARS), size=(n, 17))]
        codes[:, 11:] = rng.integers(ord("0"), ord("9") + 1, size=(n, 6))
        makes = rng.integers(0, len(MAKES), n)
        firsts = self.epoch + rng.integers(0, self.today - self.epoch, n)
        for i, m in enumerate(MAKES):
            codes[makes == i, :3] = np.frombuffer(m[0].encode(), dtype=np.uint8)
        years = np.array([_DATES[int(d)].year for d in firsts])
        for year, code in YEAR_CODES.items():
            codes[years == year, 9] = ord(code)
        numbers = vins(codes)
        uniform = rng.random((n, 64)).tolist()
        vehicles: list[Vehicle] = []
        parties: list[list[PartyTuple]] = []
        for i in range(n):
            _, make, models, category = MAKES[int(makes[i])]
            vehicle, held = self._registration(iter(uniform[i]), int(firsts[i]))
            vehicles.append(
                (
                    vehicle[0],
                    numbers[i],
                    make,
                    models[int(vehicle[1] * len(models))],
                    category,
                    *vehicle[2:],
                )
            )
            parties.append(held)
        return Chunk(vehicles, parties)

    def _registration(
        self, u: Iterator[float], first: int
    ) -> tuple[tuple[Any, ...], list[PartyTuple]]:
        today = self.today

        def day(start: int, end: int) -> int:
            return start + int(next(u) * max(1, end - start))

        # Signals (rates chosen to give a few in every thousand): destroyed, exported
        # and stolen vehicles end their last holder's period on that day.
        end = destroyed = exported = stolen = _NONE
        signal = next(u)
        if signal < 0.03:
            destroyed = end = day(first + 1, today)
        elif signal < 0.05:
            exported = end = day(first + 1, today)
        if next(u) < 0.005:
            stolen = day(first, today if end == _NONE else end)
        horizon = today if end == _NONE else end
        held: list[PartyTuple] = []
        since = first
        holders = 1 + int(next(u) * 3)
        for k in range(holders):
            held.append(self._person(u, since))
            # Holders keep a car about five years on average.
            change = since + 1 + int(next(u) * 3650)
            if k == holders - 1 or change >= horizon:
                break
            held[-1] = (*held[-1][:6], change)
            since = change
        if end != _NONE and held[-1][6] == _NONE:
            held[-1] = (*held[-1][:6], max(end, held[-1][5] + 1))
        if next(u) < 0.1:
            lessor = LESSORS[int(next(u) * len(LESSORS))]
            held.append(("owner", lessor, None, _NONE, f"{lessor}, Postfach 1", first, _NONE))
        insured = next(u) < 0.9 and end == _NONE
        insurer = INSURERS[int(next(u) * len(INSURERS))] if insured else None
        insured_until = today + 1 + int(next(u) * 364) if insured else _NONE
        plate = self._plate(u)
        return (plate, next(u), first, stolen, exported, destroyed, insurer, insured_until), held

    def stream(self, n: int, *, seed: int, chunk: int = 10_000) -> Iterator[Chunk]:
        """``n`` registrations in chunks; the same seed gives the same registrations."""
        rng = np.random.default_rng(seed)
        done = 0
        while done < n:
            size = min(chunk, n - done)
            yield self.chunk(size, rng)
            done += size

    def registrations(self, n: int, *, seed: int) -> list[Registration]:
        return [r for c in self.stream(n, seed=seed) for r in c.registrations]
