"""How well an index entry agrees with a query: field weights summed, then a quality.

After Fellegi and Sunter (JASA 64:1183, 1969): each field adds its agreement weight
(about log2 of m/u, m the chance that a true match agrees on it, u the chance that a
random pair does) or its disagreement weight, and nothing when either side lacks it.
Names are compared by the Dice coefficient of their Bloom filters (Schnell et al.
2009), averaged with the overlap coefficient so a missing middle name costs little;
the similarity maps linearly to a weight. The sum becomes a quality in 0..1 through a
logistic curve. The weights are rounded from the u-values of the synthetic population
(prum.categories.records.synthetic: 60 birth years, 12 months, about 40 birthplaces per country)
and the m-values of its corruption model; bench/records.py measures what they give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from prum.federation.messages import RecordsField as MatchedOn

# Name similarity s in 0..1 -> weight NAME_SLOPE * (s - NAME_PIVOT), clipped: genuine
# pairs of the corruption model mostly score above 0.8, namesakes' relatives and
# people sharing only a surname below 0.7.
DICE_SHARE = 0.7  # the rest is the overlap coefficient (a missing middle name costs little)
NAME_PIVOT = 0.8
NAME_SLOPE = 30.0
NAME_MIN, NAME_MAX = -9.0, 6.0
NAME_SAME = 0.9  # reported as "names" at or above, "names_similar" from NAME_PIVOT
# Year: u = 1/60, m about 0.9 (the model shifts the year of 1 query in 20).
YEAR_AGREE, YEAR_NEAR, YEAR_DISAGREE = 5.0, 1.0, -4.0
# Day and month: u = 1/365 for both; a swap is rare by chance (about 1/365 too)
# but common in registers, so it keeps most of the weight.
DM_AGREE, DM_SWAPPED, DM_ONE, DM_NONE = 7.0, 5.0, -4.0, -8.0
MONTH_AGREE, MONTH_DISAGREE = 2.0, -2.0  # one side knows only year and month
GENDER_AGREE, GENDER_DISAGREE = 0.5, -5.0
NATIONALITY_AGREE, NATIONALITY_DISAGREE = 0.5, -1.0
COUNTRY_AGREE, COUNTRY_DISAGREE = 0.5, -2.0
# u is about 1/40 within a country, but place names are often spelt differently.
PLACE_AGREE, PLACE_DISAGREE = 3.0, -0.5
# Quality = logistic((weight - MIDPOINT) / SCALE): 0.5 at a total weight of 10,
# e.g. same name and year, or same name and day-month with an off-by-one year.
QUALITY_MIDPOINT = 10.0
QUALITY_SCALE = 3.0

_YEAR, _MONTH, _DAY, _GENDER, _COUNTRY, _PLACE = range(6)
_NATIONALITIES = slice(6, 10)


@dataclass(frozen=True)
class Scores:
    name: NDArray[np.float64]
    weight: NDArray[np.float64]
    quality: NDArray[np.float64]
    flags: dict[MatchedOn, NDArray[np.bool_]]

    def matched_on(self, i: int) -> tuple[MatchedOn, ...]:
        return tuple(field for field, agree in self.flags.items() if agree[i])


def _field(
    stored: NDArray[np.uint64], wanted: int, agree: float, disagree: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    if wanted == 0:
        return np.zeros(len(stored)), np.zeros(len(stored), dtype=bool)
    known = stored != 0
    same = known & (stored == np.uint64(wanted))
    return np.where(same, agree, np.where(known, disagree, 0.0)), same


def score(
    *,
    common: NDArray[np.int32],
    bits: NDArray[np.int32],
    query_bits: int,
    attributes: NDArray[np.uint64],
    query: NDArray[np.uint64],
    query_near_years: NDArray[np.uint64],
) -> Scores:
    """Scores of n entries against one query (``attributes``: n x 10 pseudonyms)."""
    common_f = common.astype(np.float64)
    dice = 2.0 * common_f / np.maximum(bits + query_bits, 1)
    overlap = common_f / np.maximum(np.minimum(bits, query_bits), 1)
    name = DICE_SHARE * dice + (1.0 - DICE_SHARE) * overlap
    weight = np.clip(NAME_SLOPE * (name - NAME_PIVOT), NAME_MIN, NAME_MAX)
    flags: dict[MatchedOn, NDArray[np.bool_]] = {
        "names": name >= NAME_SAME,
        "names_similar": (name >= NAME_PIVOT) & (name < NAME_SAME),
    }

    year = attributes[:, _YEAR]
    q_year = int(query[_YEAR])
    year_w, flags["year_of_birth"] = _field(year, q_year, YEAR_AGREE, YEAR_DISAGREE)
    near = (year != 0) & np.isin(year, query_near_years) & (q_year != 0)
    weight += np.where(near, YEAR_NEAR, year_w)
    flags["year_of_birth_near"] = near

    month, day = attributes[:, _MONTH], attributes[:, _DAY]
    q_month, q_day = query[_MONTH], query[_DAY]
    both = (month != 0) & (day != 0) & bool(q_month != 0 and q_day != 0)
    same_month, same_day = month == q_month, day == q_day
    exact = both & same_month & same_day
    swapped = both & ~exact & (month == q_day) & (day == q_month)
    one = both & ~exact & ~swapped & (same_month | same_day)
    weight += np.where(exact, DM_AGREE, np.where(swapped, DM_SWAPPED, np.where(one, DM_ONE, 0.0)))
    weight += np.where(both & ~exact & ~swapped & ~one, DM_NONE, 0.0)
    months_only = ~both & (month != 0) & bool(q_month != 0)
    weight += np.where(months_only, np.where(same_month, MONTH_AGREE, MONTH_DISAGREE), 0.0)
    flags["day_and_month"] = exact
    flags["day_and_month_swapped"] = swapped
    flags["month_of_birth"] = months_only & same_month

    for column, field, agree, disagree in (
        (_GENDER, "gender", GENDER_AGREE, GENDER_DISAGREE),
        (_COUNTRY, "country_of_birth", COUNTRY_AGREE, COUNTRY_DISAGREE),
        (_PLACE, "place_of_birth", PLACE_AGREE, PLACE_DISAGREE),
    ):
        w, same = _field(attributes[:, column], int(query[column]), agree, disagree)
        weight += w
        flags[field] = same  # type: ignore[index]

    stored_nat = attributes[:, _NATIONALITIES]
    wanted_nat = query[_NATIONALITIES]
    wanted_nat = wanted_nat[wanted_nat != 0]
    if len(wanted_nat):
        known = (stored_nat != 0).any(axis=1)
        shared = np.isin(stored_nat, wanted_nat).any(axis=1)
        weight += np.where(shared, NATIONALITY_AGREE, np.where(known, NATIONALITY_DISAGREE, 0.0))
        flags["nationality"] = shared
    else:
        flags["nationality"] = np.zeros(len(weight), dtype=bool)

    quality = 1.0 / (1.0 + np.exp(-(weight - QUALITY_MIDPOINT) / QUALITY_SCALE))
    return Scores(name=name, weight=weight, quality=quality, flags=flags)


def quality_words(quality: float, matched_on: tuple[str, ...]) -> str:
    """The quality of a hit in words, for the requesting officer."""
    if quality >= 0.95:
        level = "very strong match"
    elif quality >= 0.8:
        level = "strong match"
    elif quality >= 0.5:
        level = "possible match"
    else:
        level = "weak match"
    agreed = ", ".join(f.replace("_", " ") for f in matched_on) or "nothing in full"
    return f"{level} (quality {quality:.2f}); agrees on: {agreed}"[:200]
