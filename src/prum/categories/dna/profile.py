"""DNA profiles: parsing (JSON, CSV), allele coding and the 2008/616 Annex checks.

Council Decision 2008/616/JHA, Annex chapter 1 (kept by Reg. 2024/982):

- a profile is searchable with at least 6 fully designated loci, amelogenin not
  counted; a person's (identified) reference profile needs at least 6 of the 7
  original ESS loci;
- single-source only. We call a profile a *mixture* when more than two designated
  (numeric) alleles are reported at two or more loci; one such locus alone is kept
  (a tri-allelic pattern): its first allele stays and the rest become one wildcard;
- non-numeric values (except at amelogenin) and the values 0, 1 and 99 become a
  wildcard, which matches any allele.

An allele is coded as a small integer (``code``): 0 absent, 1 wildcard, 2 X, 3 Y, and a
repeat number ``v`` (1 < v < 99, at most one decimal, e.g. the microvariant 9.3) as
``round(10 * v)``. A numeric value outside that range is not a repeat count at all
and is refused as impossible, rather than silently turned into a wildcard. A single
allele reported at a locus is read as a homozygote, as laboratories report them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.loci import AMELOGENIN, ESS_7, LocusSet, canonical_locus
from prum.errors import InvalidDnaProfile

ABSENT = 0
WILDCARD = 1
X, Y = 2, 3
FIRST_NUMERIC = 4  # codes from here on are repeat numbers x 10

# Limits against garbage input; generous for any real profile.
MAX_INPUT_BYTES = 64 * 1024
MAX_LOCI = 64
MAX_VALUES_PER_LOCUS = 8
MAX_VALUE_CHARS = 16

_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")

Genotype = tuple[int, int]


@dataclass(frozen=True)
class Rules:
    """The validation thresholds (2008/616 Annex, chapter 1; configurable for Prüm II)."""

    min_loci: int = 6  # fully designated loci for a searchable profile
    min_ess7_person: int = 6  # of the 7 original ESS loci for an identified profile


@dataclass(frozen=True)
class Profile:
    """A validated single-source profile; genotypes are sorted allele-code pairs."""

    genotypes: dict[str, Genotype]
    identified: bool
    amelogenin: tuple[str, ...] | None = None
    # What was converted, for the examiner ("vWA: 'OL' -> wildcard").
    conversions: tuple[str, ...] = field(default=())

    def fully_designated(self) -> list[str]:
        return [n for n, g in self.genotypes.items() if g[0] >= FIRST_NUMERIC]

    def codes(self, loci: LocusSet) -> NDArray[np.uint16]:
        """The (L, 2) code matrix row of this profile in the locus set's order."""
        row = np.zeros((len(loci), 2), dtype=np.uint16)
        for name, g in self.genotypes.items():
            row[loci.position[name]] = g
        return row

    def to_dict(self) -> dict[str, Any]:
        loci: dict[str, list[str]] = {
            n: [allele_text(a) for a in g] for n, g in self.genotypes.items()
        }
        if self.amelogenin:
            loci[AMELOGENIN] = list(self.amelogenin)
        return {"identified": self.identified, "loci": loci}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def allele_text(code: int) -> str:
    """The written form of an allele code: "9.3", "12", "*" for a wildcard."""
    if code == WILDCARD:
        return "*"
    if code == X:
        return "X"
    if code == Y:
        return "Y"
    whole, tenth = divmod(int(code), 10)
    return f"{whole}.{tenth}" if tenth else str(whole)


def allele_code(value: str, locus: str) -> tuple[int, str | None]:
    """Code of one reported value and, if it was converted, a note saying so."""
    text = value.strip()
    if not _NUMERIC.match(text):
        # 2008/616 Annex 1.1: non-numeric values become a wildcard.
        return WILDCARD, f"{locus}: {text!r} -> wildcard (not numeric)"
    number = Decimal(text)
    if number in (0, 1, 99):
        # Annex 1.1: 0, 1 and 99 are placeholders some laboratories use; wildcard.
        return WILDCARD, f"{locus}: {text} -> wildcard (placeholder value)"
    tenths = number * 10
    if not (1 < number < 99) or tenths != tenths.to_integral_value():
        raise InvalidDnaProfile(
            f"allele {text} at {locus} is impossible: an STR allele is a repeat count"
            " between 1 and 99 with at most one decimal (e.g. 9.3)",
            locus=locus,
            allele=text,
        )
    return int(tenths), None


def _values(raw: Any, locus: str) -> list[str]:
    """The reported values of one locus as strings, from JSON or CSV shapes."""
    if isinstance(raw, str):
        items: list[Any] = [v for v in re.split(r"[,/;\s]+", raw) if v]
    elif isinstance(raw, list):
        items = raw
    else:
        raise InvalidDnaProfile(
            f"the alleles of {locus} must be a list or a string like '15,16'", locus=locus
        )
    if len(items) > MAX_VALUES_PER_LOCUS:
        raise InvalidDnaProfile(f"{locus} has more than {MAX_VALUES_PER_LOCUS} values", locus=locus)
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise InvalidDnaProfile(
                f"an allele of {locus} is neither text nor a number", locus=locus
            )
        if isinstance(item, float):
            try:
                text = format(Decimal(repr(item)), "f")
            except InvalidOperation:  # nan, inf
                text = repr(item)
        else:
            text = str(item).strip()
        if len(text) > MAX_VALUE_CHARS:
            raise InvalidDnaProfile(
                f"an allele of {locus} is longer than {MAX_VALUE_CHARS} characters", locus=locus
            )
        if text:
            out.append(text)
    return out


def build_profile(
    entries: Iterable[tuple[str, Any]],
    *,
    identified: bool,
    loci: LocusSet,
    rules: Rules = Rules(),
) -> Profile:
    """Turn (locus name, reported values) pairs into a validated :class:`Profile`."""
    genotypes: dict[str, Genotype] = {}
    amelogenin: tuple[str, ...] | None = None
    conversions: list[str] = []
    seen: set[str] = set()
    over_two: list[str] = []
    count = 0
    for raw_name, raw_values in entries:
        count += 1
        if count > MAX_LOCI:
            raise InvalidDnaProfile(f"a profile has at most {MAX_LOCI} loci")
        name = canonical_locus(str(raw_name))
        if name is None:
            raise InvalidDnaProfile(
                f"{str(raw_name)[:40]!r} is not a known STR locus", locus=str(raw_name)[:40]
            )
        if name not in loci:
            raise InvalidDnaProfile(
                f"{name} is not in the configured locus set {loci.name!r}", locus=name
            )
        if name in seen:
            raise InvalidDnaProfile(f"{name} is given twice", locus=name)
        seen.add(name)
        values = _values(raw_values, name)
        if not values:
            continue  # an empty cell: the locus was not typed
        if name == AMELOGENIN:
            amelogenin = _amelogenin(values)
            continue
        coded: list[int] = []
        for v in values:
            code, note = allele_code(v, name)
            coded.append(code)
            if note:
                conversions.append(note)
        coded = list(dict.fromkeys(coded))  # "15,15,16" reports two alleles, not three
        if len(coded) > 2:
            if sum(c >= FIRST_NUMERIC for c in coded) > 2:
                over_two.append(name)
            # Annex 1.1: with three alleles the first is kept, the rest become a wildcard.
            conversions.append(f"{name}: {len(coded)} alleles -> first kept, rest wildcard")
            coded = [coded[0], WILDCARD]
        elif len(coded) == 1:
            coded = [coded[0], coded[0]]  # one reported allele: a homozygote
        a, b = sorted(coded)
        genotypes[name] = (a, b)
    if len(over_two) >= 2:
        raise InvalidDnaProfile(
            f"a mixture: more than two alleles at {', '.join(over_two)}; only single-source"
            " profiles may be exchanged",
            locus=over_two,
        )
    profile = Profile(genotypes, identified, amelogenin, tuple(conversions))
    check_profile(profile, rules)
    return profile


def _amelogenin(values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > 2 or any(v.upper() not in ("X", "Y") for v in values):
        raise InvalidDnaProfile(
            f"amelogenin takes one or two values X or Y, not {', '.join(values)}",
            locus=AMELOGENIN,
        )
    return tuple(sorted(v.upper() for v in values))


def check_profile(profile: Profile, rules: Rules) -> None:
    """The Annex minimums: searchable loci; the ESS core of a person's profile."""
    full = profile.fully_designated()
    if len(full) < rules.min_loci:
        partial = [n for n in profile.genotypes if n not in full]
        hint = f"; not fully designated: {', '.join(partial)}" if partial else ""
        raise InvalidDnaProfile(
            f"only {len(full)} fully designated loci ({', '.join(full) or 'none'});"
            f" at least {rules.min_loci} are needed, amelogenin not counted{hint}",
            locus=partial,
        )
    if profile.identified:
        missing = [n for n in ESS_7 if n not in full]
        if len(ESS_7) - len(missing) < rules.min_ess7_person:
            raise InvalidDnaProfile(
                f"a person's profile needs at least {rules.min_ess7_person} of the 7 original"
                f" ESS loci fully designated; missing: {', '.join(missing)}",
                locus=missing,
            )


def as_text(data: bytes | str) -> str:
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidDnaProfile(f"a profile is at most {MAX_INPUT_BYTES} bytes")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDnaProfile("a profile must be UTF-8 text") from exc


def parse_json(data: bytes | str, *, loci: LocusSet, rules: Rules = Rules()) -> Profile:
    """``{"identified": true, "loci": {"D3S1358": ["15", "16"], "TH01": "9.3,9.3"}}``."""
    try:
        doc = json.loads(as_text(data))
    except (ValueError, RecursionError) as exc:
        raise InvalidDnaProfile(f"a profile is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(doc, dict):
        raise InvalidDnaProfile("a profile is a JSON object with 'identified' and 'loci'")
    extra = set(doc) - {"identified", "loci"}
    if extra:
        raise InvalidDnaProfile(f"unknown field(s) {', '.join(sorted(map(str, extra)))[:200]}")
    identified = doc.get("identified")
    if not isinstance(identified, bool):
        raise InvalidDnaProfile("'identified' must be true (a person) or false (a trace)")
    entries = doc.get("loci")
    if not isinstance(entries, Mapping):
        raise InvalidDnaProfile("'loci' must be an object of locus name -> alleles")
    return build_profile(entries.items(), identified=identified, loci=loci, rules=rules)


_TRUE = {"true", "yes", "1", "identified", "person"}
_FALSE = {"false", "no", "0", "unidentified", "trace"}


def parse_csv(
    data: bytes | str, *, loci: LocusSet, identified: bool = False, rules: Rules = Rules()
) -> Profile:
    """One locus a row: ``locus,allele1,allele2``; optional header ``locus,...`` and an
    ``identified,yes|no`` row (which overrides the argument)."""
    rows: list[tuple[str, list[str]]] = []
    try:
        reader = csv.reader(io.StringIO(as_text(data), newline=""))
        for number, row in enumerate(reader, start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            head = cells[0]
            if number == 1 and head.lower() == "locus":
                continue
            if head.lower() == "identified":
                flag = cells[1].lower() if len(cells) > 1 else ""
                if flag not in _TRUE | _FALSE:
                    raise InvalidDnaProfile("the 'identified' row says yes or no")
                identified = flag in _TRUE
                continue
            rows.append((head, [c for c in cells[1:] if c]))
    except csv.Error as exc:
        raise InvalidDnaProfile(f"a profile is not readable CSV: {exc}") from exc
    return build_profile(rows, identified=identified, loci=loci, rules=rules)
