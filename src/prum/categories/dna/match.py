"""The Prüm matching rules (2008/616 Annex, chapter 1, 1.2) and the random match probability.

Per locus present in both profiles (amelogenin is never compared), the number of
differing alleles ``d`` is the smaller of the two pairings' counts, where an allele
differs when the values are unequal and neither is a wildcard (a wildcard matches
anything). Then, over all loci present in both:

- **match**: ``sum(d) == 0``;
- **near match**: ``sum(d) == 1`` (exactly one allele differs, at one locus);

and in both cases at least ``min_loci`` (default 6) loci must be *matching*: fully
designated (no wildcard) in both profiles and identical. The locus with the differing
allele of a near match is not a matching locus; loci with a wildcard agree but do not
count towards the minimum.

The whole rule set is computed on arrays of allele codes (:func:`classify`), so the
same function verifies an index's candidates and runs the naive scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.loci import LocusSet
from prum.categories.dna.profile import FIRST_NUMERIC, WILDCARD, allele_text


class Kind(IntEnum):
    NONE = 0
    MATCH = 1
    NEAR_MATCH = 2


@dataclass(frozen=True)
class MatchRules:
    min_loci: int = 6  # matching fully designated loci; 2008/616 Annex 1.2 (configurable)
    theta: float = 0.01  # co-ancestry correction of homozygotes, NRC II recommendation 4.10


def locus_differences(
    probe: NDArray[np.uint16], rows: NDArray[np.uint16]
) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    """Differing alleles per locus ``(C, L)`` (0 where not present in both) and the
    matching-locus mask (fully designated in both and identical)."""
    # ``probe`` is one row ``(L, 2)`` or one row per compared row ``(C, L, 2)``.
    a1, a2 = probe[..., 0].astype(np.int32), probe[..., 1].astype(np.int32)
    b1, b2 = rows[..., 0].astype(np.int32), rows[..., 1].astype(np.int32)

    def differs(x: NDArray[np.int32], y: NDArray[np.int32]) -> NDArray[np.int8]:
        out: NDArray[np.int8] = ((x != y) & (x != WILDCARD) & (y != WILDCARD)).astype(np.int8)
        return out

    straight = differs(a1, b1) + differs(a2, b2)
    crossed = differs(a1, b2) + differs(a2, b1)
    both = (a1 != 0) & (b1 != 0)
    d = np.where(both, np.minimum(straight, crossed), 0).astype(np.int8)
    # Codes are sorted, so the smaller one is a wildcard if any is.
    full = (a1 >= FIRST_NUMERIC) & (b1 >= FIRST_NUMERIC)
    return d, full & (d == 0)


def classify(
    probe: NDArray[np.uint16], rows: NDArray[np.uint16], min_loci: int
) -> tuple[NDArray[np.int8], NDArray[np.int32]]:
    """Kind of each row (:class:`Kind` values) and its number of matching loci."""
    d, matching = locus_differences(probe, rows)
    diffs = d.sum(axis=1, dtype=np.int32)
    count = matching.sum(axis=1, dtype=np.int32)
    enough = count >= min_loci
    kind = np.where(
        enough & (diffs == 0),
        Kind.MATCH,
        np.where(enough & (diffs == 1), Kind.NEAR_MATCH, Kind.NONE),
    )
    return kind.astype(np.int8), count


@dataclass(frozen=True)
class Mismatch:
    locus: str
    probe: str  # "15,16"
    candidate: str


@dataclass(frozen=True)
class Comparison:
    kind: Kind
    matching_loci: tuple[str, ...]
    compared_loci: tuple[str, ...]  # present in both profiles
    mismatches: tuple[Mismatch, ...]
    random_match_probability: float


def _genotype_text(g: NDArray[np.uint16]) -> str:
    return ",".join(allele_text(int(a)) for a in g)


def compare(
    probe: NDArray[np.uint16],
    row: NDArray[np.uint16],
    loci: LocusSet,
    rules: MatchRules,
    frequencies: AlleleFrequencies,
) -> Comparison:
    """The full account of one comparison, for a hit shown to an examiner."""
    d, matching = locus_differences(probe, row[None])
    d, matching = d[0], matching[0]
    kind, _ = classify(probe, row[None], rules.min_loci)
    both = (probe[:, 0] != 0) & (row[:, 0] != 0)
    names = loci.loci
    return Comparison(
        kind=Kind(int(kind[0])),
        matching_loci=tuple(names[i] for i in np.flatnonzero(matching)),
        compared_loci=tuple(names[i] for i in np.flatnonzero(both)),
        mismatches=tuple(
            Mismatch(names[i], _genotype_text(probe[i]), _genotype_text(row[i]))
            for i in np.flatnonzero(d)
        ),
        random_match_probability=random_match_probability(
            [(names[i], int(row[i, 0]), int(row[i, 1])) for i in np.flatnonzero(matching)],
            frequencies,
            theta=rules.theta,
        ),
    )


def random_match_probability(
    genotypes: list[tuple[str, int, int]], frequencies: AlleleFrequencies, *, theta: float
) -> float:
    """Product over the matching loci of the genotype frequency (product rule).

    Heterozygote ``2pq``; homozygote ``p^2 + p(1-p)theta`` (NRC II, 1996, formula 4.10a,
    for population substructure). Loci absent from the frequency table contribute 1,
    which can only overstate the probability (the cautious direction); alleles missing
    from the table get the table's floor frequency.
    """
    rmp = 1.0
    for locus, a, b in genotypes:
        p = frequencies.frequency(locus, a)
        q = frequencies.frequency(locus, b)
        if p is None or q is None:
            continue
        rmp *= p * p + p * (1 - p) * theta if a == b else 2 * p * q
    return min(rmp, 1.0)


def rmp_words(rmp: float) -> str:
    """ "random match probability about 1 in 3 billion"."""
    if rmp <= 0:
        return "random match probability below any computable value"
    odds = 1 / rmp
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if odds >= size:
            value = odds / size
            if value >= 1000:
                return f"random match probability about 1 in 10^{int(np.floor(np.log10(odds)))}"
            return f"random match probability about 1 in {float(f'{value:.2g}'):g} {word}"
    return f"random match probability about 1 in {float(f'{odds:.2g}'):g}"
