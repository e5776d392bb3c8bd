"""Realistic generated DNA databases: population profiles drawn from allele frequencies,
with families (parents, children, siblings) and duplicate traces injected.

Everything works on the code matrix of prum.categories.dna.profile (``(N, L, 2)`` uint16, each
locus sorted), so ten million profiles are generated in chunks with numpy. Two kits are
mixed: ESS-12 only, and an extended kit with every locus of the frequency table that
the locus set holds (about 23 with the European table, like current 24-locus kits).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.loci import ESS_12, LocusSet
from prum.categories.dna.profile import FIRST_NUMERIC, WILDCARD, Profile


@dataclass(frozen=True)
class Injected:
    """A generated relation: ``row`` was derived from ``source`` as ``how`` says."""

    row: int
    source: int
    how: str  # "child", "sibling", "trace"


@dataclass
class Database:
    codes: NDArray[np.uint16]
    identified: NDArray[np.bool_]
    injected: list[Injected] = field(default_factory=list)


class Generator:
    """Draws profiles over the loci that both the locus set and the table know."""

    def __init__(
        self,
        frequencies: AlleleFrequencies,
        loci: LocusSet,
        *,
        extended_share: float = 0.4,  # share of profiles typed with the extended kit
    ):
        self.loci = loci
        self.frequencies = frequencies
        self.extended_share = extended_share
        self.generated = [i for i, n in enumerate(loci.loci) if n in frequencies.table]
        self.ess = [i for i in self.generated if loci.loci[i] in ESS_12]
        self._dist = {i: frequencies.distribution(loci.loci[i]) for i in self.generated}

    def population(self, n: int, rng: np.random.Generator) -> NDArray[np.uint16]:
        """``n`` unrelated profiles."""
        codes = np.zeros((n, len(self.loci), 2), dtype=np.uint16)
        extended = rng.random(n) < self.extended_share
        for i in self.generated:
            alleles, probs = self._dist[i]
            drawn = np.sort(alleles[rng.choice(len(alleles), size=(n, 2), p=probs)], axis=1)
            if i not in self.ess:
                drawn[~extended] = 0
            codes[:, i] = drawn
        return codes

    def child(
        self, mother: NDArray[np.uint16], father: NDArray[np.uint16], rng: np.random.Generator
    ) -> NDArray[np.uint16]:
        """One allele from each parent (Mendel), at the loci both parents were typed."""
        pick_m = rng.integers(0, 2, len(self.loci))
        pick_f = rng.integers(0, 2, len(self.loci))
        row = np.stack(
            [mother[np.arange(len(self.loci)), pick_m], father[np.arange(len(self.loci)), pick_f]],
            axis=1,
        )
        row[(mother[:, 0] == 0) | (father[:, 0] == 0)] = 0
        return np.sort(row, axis=1).astype(np.uint16)

    def trace(
        self, source: NDArray[np.uint16], rng: np.random.Generator, *, keep: int = 8
    ) -> NDArray[np.uint16]:
        """A partial crime-scene copy: ``keep`` loci, maybe a dropout and a wildcard."""
        row = source.copy()
        typed = np.flatnonzero(row[:, 0] != 0)
        lost = rng.permutation(typed)[: max(0, len(typed) - keep)]
        row[lost] = 0
        typed = np.flatnonzero(row[:, 0] != 0)
        het = [i for i in typed if row[i, 0] != row[i, 1]]
        if het and rng.random() < 0.3:
            i = int(rng.choice(het))  # allele dropout: a heterozygote reads as homozygote
            row[i] = row[i, int(rng.integers(0, 2))]
        if rng.random() < 0.3:
            i = int(rng.choice(typed))  # an unreadable allele, reported as "OL"
            row[i, int(rng.integers(0, 2))] = WILDCARD
        return np.sort(row, axis=1)

    def database(
        self,
        n: int,
        *,
        seed: int = 0,
        family_share: float = 0.01,
        trace_share: float = 0.01,
    ) -> Database:
        """``n`` profiles: population, then families and traces replacing some rows."""
        rng = np.random.default_rng(seed)
        codes = self.population(n, rng)
        identified = np.ones(n, dtype=bool)
        injected: list[Injected] = []
        for _ in range(int(n * family_share / 4)):
            mother, father, a, b = (int(r) for r in rng.choice(n, 4, replace=False))
            codes[a] = self.child(codes[mother], codes[father], rng)
            codes[b] = self.child(codes[mother], codes[father], rng)
            injected += [Injected(a, mother, "child"), Injected(b, father, "child")]
            injected.append(Injected(b, a, "sibling"))
        for _ in range(int(n * trace_share)):
            source, row = (int(r) for r in rng.choice(n, 2, replace=False))
            codes[row] = self.trace(codes[source], rng, keep=int(rng.integers(7, 13)))
            identified[row] = False
            injected.append(Injected(row, source, "trace"))
        return Database(codes, identified, injected)

    def stream(
        self, n: int, *, seed: int = 0, chunk: int = 1_000_000
    ) -> Iterator[NDArray[np.uint16]]:
        """Unrelated profiles in chunks (for databases larger than memory wants)."""
        rng = np.random.default_rng(seed)
        for start in range(0, n, chunk):
            yield self.population(min(chunk, n - start), rng)


def profile_of(row: NDArray[np.uint16], loci: LocusSet, *, identified: bool) -> Profile:
    """The :class:`Profile` of a code row (no validation: generated rows are valid)."""
    genotypes = {
        loci.loci[i]: (int(row[i, 0]), int(row[i, 1])) for i in np.flatnonzero(row[:, 0] != 0)
    }
    return Profile(genotypes, identified)


def fully_designated(row: NDArray[np.uint16]) -> int:
    return int((row[:, 0] >= FIRST_NUMERIC).sum())
