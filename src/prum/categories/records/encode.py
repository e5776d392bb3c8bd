"""Pseudonymisation of a person: keyed blocking keys, a name Bloom filter, keyed dates.

The same function encodes the holder's index entries and the requester's query, so
both sides agree on every pseudonym:

- **Blocking keys**: HMAC-SHA256 (64 bits kept) of combinations of a Soundex-like
  code of each surname / first-name skeleton (prum.categories.records.normalise) with the year
  of birth, with each other, and with the unordered (day, month) pair. A person gets
  several, so one corrupted field (a typo in the surname, a wrong year) leaves the
  others to find him (the multi-pass blocking of Christen, *Data Matching*, 2012).
- **Name filter**: a cryptographic long-term key (CLK, Schnell, Bachteler and Reiher,
  BMC Med. Inf. Decis. Mak. 9:41, 2009): the padded bigrams of every name skeleton
  hashed into one Bloom filter of 1,024 bits with 15 keyed positions per bigram
  (double hashing, Kirsch and Mitzenmacher 2006). Similar names give filters with a
  high Dice coefficient, whatever their order.
- **Date and attributes**: keyed pseudonyms of year, month, day (month and day in one
  domain, so a swap is visible as such), gender, nationalities, country and place of
  birth.

A query additionally carries the blocking keys of the swapped name order, and the
pseudonyms of the neighbouring years.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from prum.categories.records.keys import FederationKey
from prum.categories.records.normalise import name_skeletons, phonetic, place_token
from prum.categories.records.person import Name, Person
from prum.errors import InvalidMessage, InvalidPerson
from prum.federation.messages import RecordsQuery

# Schnell et al. (2009) used 1,000 bits; 1,024 = 16 machine words. 15 positions per
# bigram fill about a third of the filter for a three-word name: enough to separate
# names, not so much that unrelated names overlap by chance.
FILTER_BITS = 1024
FILTER_WORDS = FILTER_BITS // 64
HASHES_PER_BIGRAM = 15
_ALPHABET = "_abcdefghijklmnopqrstuvwxyz"
MAX_QUERY_KEYS = 64  # prum.federation.messages.RecordsQuery.blocking_keys
# How many surname and first-name words make blocking keys (middle names beyond are
# in the name filter only).
_BLOCK_SURNAMES = 3
_BLOCK_FIRST = 2


@dataclass(frozen=True)
class Encoding:
    """The pseudonymised form of one name of a person (the query, or an index entry)."""

    key_id: str
    blocking: tuple[str, ...]
    name_filter: bytes
    year: str | None = None
    year_near: tuple[str, ...] = ()
    month: str | None = None
    day: str | None = None
    gender: str | None = None
    nationalities: tuple[str, ...] = ()
    country_of_birth: str | None = None
    place_of_birth: str | None = None

    def to_query(self) -> RecordsQuery:
        return RecordsQuery(
            key_id=self.key_id,
            blocking_keys=list(self.blocking),
            name_filter=base64.b64encode(self.name_filter),
            birth_year=self.year,
            birth_year_near=list(self.year_near),
            birth_month=self.month,
            birth_day=self.day,
            gender=self.gender,
            nationalities=list(self.nationalities),
            country_of_birth=self.country_of_birth,
            place_of_birth=self.place_of_birth,
        )

    def to_json(self) -> str:
        """Compact JSON for the store (the index reloads it at start)."""
        data = {
            "key_id": self.key_id,
            "blocking": list(self.blocking),
            "name_filter": base64.b64encode(self.name_filter).decode(),
            "year": self.year,
            "month": self.month,
            "day": self.day,
            "gender": self.gender,
            "nationalities": list(self.nationalities),
            "country_of_birth": self.country_of_birth,
            "place_of_birth": self.place_of_birth,
        }
        return json.dumps({k: v for k, v in data.items() if v not in (None, [])})

    @classmethod
    def from_json(cls, text: str) -> Encoding:
        data = json.loads(text)
        return cls(
            key_id=data["key_id"],
            blocking=tuple(data["blocking"]),
            name_filter=base64.b64decode(data["name_filter"]),
            year=data.get("year"),
            month=data.get("month"),
            day=data.get("day"),
            gender=data.get("gender"),
            nationalities=tuple(data.get("nationalities", ())),
            country_of_birth=data.get("country_of_birth"),
            place_of_birth=data.get("place_of_birth"),
        )

    @classmethod
    def from_query(cls, query: RecordsQuery) -> Encoding:
        """The holder's view of a query; refuses a filter of another size."""
        if len(query.name_filter) != FILTER_BITS // 8:
            raise InvalidMessage(
                f"the records query's name filter has {len(query.name_filter)} bytes;"
                f" this federation uses {FILTER_BITS // 8}"
            )
        return cls(
            key_id=query.key_id,
            blocking=tuple(query.blocking_keys),
            name_filter=bytes(query.name_filter),
            year=query.birth_year,
            year_near=tuple(query.birth_year_near),
            month=query.birth_month,
            day=query.birth_day,
            gender=query.gender,
            nationalities=tuple(query.nationalities),
            country_of_birth=query.country_of_birth,
            place_of_birth=query.place_of_birth,
        )


@functools.lru_cache(maxsize=8)
def bigram_masks(key: FederationKey) -> NDArray[np.uint64]:
    """For every bigram of ``_ALPHABET``, its keyed Bloom-filter bits (27 * 27 x 16 words)."""
    n = len(_ALPHABET)
    masks = np.zeros((n * n, FILTER_WORDS), dtype=np.uint64)
    for i, a in enumerate(_ALPHABET):
        for j, b in enumerate(_ALPHABET):
            digest = key.mac("clk", a + b)
            h1 = int.from_bytes(digest[:8], "big")
            h2 = int.from_bytes(digest[8:16], "big") | 1
            for k in range(HASHES_PER_BIGRAM):
                bit = (h1 + k * h2) % FILTER_BITS
                masks[i * n + j, bit // 64] |= np.uint64(1 << (bit % 64))
    return masks


_LETTER_CODE = {c: i for i, c in enumerate(_ALPHABET)}


def name_filter(tokens: list[str], key: FederationKey) -> bytes:
    """The CLK of name skeletons: padded bigrams ("_i", "iv", ..., "v_") of each word."""
    n = len(_ALPHABET)
    rows = [
        _LETTER_CODE[a] * n + _LETTER_CODE[b]
        for token in tokens
        for a, b in itertools.pairwise(f"_{token}_")
    ]
    if not rows:
        return bytes(FILTER_WORDS * 8)
    merged: NDArray[np.uint64] = np.bitwise_or.reduce(bigram_masks(key)[rows], axis=0)
    return merged.tobytes()


def _codes(names: list[str], limit: int) -> list[str]:
    codes: list[str] = []
    for token in names:
        code = phonetic(token)
        if code not in codes:
            codes.append(code)
    return codes[:limit]


def _blocking(
    surnames: list[str], first: list[str], person: Person, key: FederationKey
) -> list[str]:
    s_codes = _codes(surnames, _BLOCK_SURNAMES)
    f_codes = _codes(first, _BLOCK_FIRST)
    year = person.born.year
    month, day = person.born.month, person.born.day
    plain: list[tuple[str, str]] = []
    if year is not None:
        plain += [("sy", f"{s}|{year}") for s in s_codes]
        plain += [("fy", f"{f}|{year}") for f in f_codes]
    plain += [("sf", f"{s}|{f}") for s in s_codes for f in f_codes]
    if month is not None and day is not None:
        dm = f"{min(month, day)}|{max(month, day)}"  # unordered: survives a day/month swap
        plain += [("sd", f"{s}|{dm}") for s in s_codes[:1]]
        plain += [("fd", f"{f}|{dm}") for f in f_codes[:1]]
    return [key.pseudonym(domain, value) for domain, value in plain]


def _bare(surnames: list[str], key: FederationKey) -> list[str]:
    """Keys of the surname codes alone: every index entry has them, a query uses them
    only when it has nothing else (no first name, no date); their blocks are large."""
    return [key.pseudonym("s", s) for s in _codes(surnames, _BLOCK_SURNAMES)]


def _skeletons(words: tuple[str, ...]) -> list[str]:
    return [s for w in words for s in name_skeletons(w)]


def _optional(key: FederationKey, domain: str, value: object) -> str | None:
    return None if value is None or value == "" else key.pseudonym(domain, str(value))


def encode_name(name: Name, person: Person, key: FederationKey) -> Encoding:
    """One index entry: the pseudonyms of one name (the name or an alias) of a person."""
    surnames, first = _skeletons(name.surnames), _skeletons(name.first_names)
    if not surnames and not first:
        raise InvalidPerson(f"the name {name.display()!r} has no letters to compare")
    born = person.born
    place = place_token(person.place_of_birth) if person.place_of_birth else ""
    return Encoding(
        key_id=key.key_id,
        blocking=tuple(
            dict.fromkeys(_blocking(surnames, first, person, key) + _bare(surnames, key))
        ),
        name_filter=name_filter(surnames + first, key),
        year=_optional(key, "year", born.year),
        month=_optional(key, "daymonth", born.month),
        day=_optional(key, "daymonth", born.day),
        gender=None if person.gender == "U" else _optional(key, "gender", person.gender),
        nationalities=tuple(key.pseudonym("nationality", n) for n in person.nationalities),
        country_of_birth=_optional(key, "country", person.country_of_birth),
        place_of_birth=_optional(key, "place", place),
    )


def encode_person(person: Person, key: FederationKey) -> list[Encoding]:
    """The index entries of a person: one per name (the name, then each alias)."""
    return [encode_name(name, person, key) for name in person.names()]


def make_query(person: Person, key: FederationKey) -> RecordsQuery:
    """The requesting node's pseudonymised query (no clear text) for a person.

    Its blocking keys are those of the name as given and of the swapped order
    (first names as surnames), so a register that files the names the other way
    round still finds the person.
    """
    surnames, first = _skeletons(person.name.surnames), _skeletons(person.name.first_names)
    keys = _blocking(surnames, first, person, key)
    if first:
        keys += _blocking(first, surnames, person, key)
    if not keys:
        keys = _bare(surnames, key)
    if not keys:
        raise InvalidPerson("a query needs a surname, or a first name with a date of birth")
    base = encode_name(person.name, person, key)
    year = person.born.year
    near = (
        () if year is None else tuple(key.pseudonym("year", str(y)) for y in (year - 1, year + 1))
    )
    return Encoding(
        key_id=base.key_id,
        blocking=tuple(dict.fromkeys(keys))[:MAX_QUERY_KEYS],
        name_filter=base.name_filter,
        year=base.year,
        year_near=near,
        month=base.month,
        day=base.day,
        gender=base.gender,
        nationalities=base.nationalities[:4],
        country_of_birth=base.country_of_birth,
        place_of_birth=base.place_of_birth,
    ).to_query()
