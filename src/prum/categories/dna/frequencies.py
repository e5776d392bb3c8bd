"""Allele frequencies: the European table shipped with the package, or an operator's file.

File format (``data/europe_allele_frequencies.txt``, norSTR project, MIT):
a locus name line, then ``allele<TAB>frequency`` lines, a blank line between loci.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.loci import canonical_locus
from prum.categories.dna.profile import WILDCARD, allele_code
from prum.errors import InvalidDnaProfile, InvalidDnaSettings

# The norSTR European table (MIT licence, src/prum/categories/dna/data/LICENSE-norSTR.md), shipped
# inside the package so that every machine generates and weighs profiles alike.
PACKAGED_TABLE = Path(__file__).with_name("data") / "europe_allele_frequencies.txt"


class AlleleFrequencies:
    """Allele frequencies per locus, keyed by allele code (see prum.categories.dna.profile)."""

    def __init__(self, table: dict[str, dict[int, float]], source: str, floor: float = 0.001):
        self.table = table
        self.source = source
        # Alleles missing from the table get this frequency (the norSTR table's own
        # floor; NRC II 4.10 suggests 5/2N for a database of N people).
        self.floor = floor

    @classmethod
    def from_text(cls, text: str, source: str) -> AlleleFrequencies:
        raw: dict[str, dict[str, float]] = {}
        for block in text.replace("\r\n", "\n").strip().split("\n\n"):
            lines = [ln for ln in block.strip().splitlines() if ln.strip()]
            if not lines:
                continue
            name = canonical_locus(lines[0].strip()) or lines[0].strip()
            alleles: dict[str, float] = {}
            for line in lines[1:]:
                parts = line.split()
                try:
                    alleles[parts[0]] = float(parts[1])
                except (IndexError, ValueError) as exc:
                    raise InvalidDnaSettings(f"{source}: bad line {line!r} at {name}") from exc
            raw[name] = alleles
        return cls.from_mapping(raw, source)

    @classmethod
    def from_mapping(cls, raw: dict[str, dict[str, float]], source: str) -> AlleleFrequencies:
        table: dict[str, dict[int, float]] = {}
        for name, alleles in raw.items():
            coded: dict[int, float] = {}
            for allele, freq in alleles.items():
                try:
                    code, _ = allele_code(allele, name)
                except InvalidDnaProfile as exc:
                    raise InvalidDnaSettings(f"{source}: {exc.message}") from exc
                if code == WILDCARD or not 0 < freq <= 1:
                    raise InvalidDnaSettings(f"{source}: allele {allele!r} of {name} is unusable")
                coded[code] = coded.get(code, 0.0) + freq
            total = sum(coded.values())
            table[name] = {c: f / total for c, f in coded.items()}
        return cls(table, source)

    @classmethod
    def from_file(cls, path: Path) -> AlleleFrequencies:
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidDnaSettings(f"cannot read allele frequencies {path}: {exc}") from exc
        return cls.from_text(text, str(path))

    @classmethod
    def default(cls) -> AlleleFrequencies:
        """The European table shipped with the package (norSTR, 611 lines, 50 loci)."""
        return cls.from_file(PACKAGED_TABLE)

    def loci(self) -> list[str]:
        return list(self.table)

    def frequency(self, locus: str, code: int) -> float | None:
        """None when the locus is not in the table at all."""
        alleles = self.table.get(locus)
        if alleles is None:
            return None
        return alleles.get(code, self.floor)

    def distribution(self, locus: str) -> tuple[NDArray[np.uint16], NDArray[np.float64]]:
        alleles = self.table[locus]
        codes = np.array(sorted(alleles), dtype=np.uint16)
        probs = np.array([alleles[int(c)] for c in codes], dtype=np.float64)
        return codes, probs / probs.sum()
