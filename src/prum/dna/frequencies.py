"""Allele frequencies: the shared European table, or a small built-in one.

File format (``../shared/data/dna/europe_allele_frequencies.txt``, norSTR project, MIT):
a locus name line, then ``allele<TAB>frequency`` lines, a blank line between loci.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from prum.dna.loci import canonical_locus
from prum.dna.profile import WILDCARD, allele_code
from prum.errors import InvalidDnaProfile, InvalidDnaSettings

# The most frequent alleles of the ESS-12 loci in the norSTR European table (MIT
# licence), so that tests and demos run on a machine without ../shared/data.
# Same format as the file; each locus is renormalised on loading.
BUILTIN = """
D1S1656
11 0.095
12 0.116
13 0.07
14 0.085
15 0.14
15.3 0.074
16 0.102
17.3 0.13

D2S441
10 0.183
11 0.324
11.3 0.067
12 0.027
13 0.029
14 0.326
15 0.035
16 0.008

D3S1358
13 0.002
14 0.129
15 0.267
16 0.231
17 0.201
18 0.155
19 0.012
20 0.003

FGA
19 0.059
20 0.15
21 0.158
22 0.194
23 0.177
24 0.134
25 0.074
26 0.02

D8S1179
8 0.019
10 0.105
11 0.093
12 0.135
13 0.32
14 0.193
15 0.086
16 0.02

D10S1248
11 0.004
12 0.032
13 0.293
14 0.288
15 0.204
16 0.134
17 0.04
18 0.005

TH01
5 0.003
6 0.205
7 0.19
8 0.097
9 0.177
9.3 0.313
10 0.015

vWA
13 0.003
14 0.128
15 0.092
16 0.218
17 0.266
18 0.193
19 0.079
20 0.02

D12S391
15 0.041
17 0.095
18 0.183
19 0.138
20 0.114
21 0.105
22 0.107
23 0.094

D18S51
12 0.139
13 0.129
14 0.178
15 0.153
16 0.13
17 0.105
18 0.067
19 0.044

D21S11
27 0.032
28 0.155
29 0.21
30 0.262
31 0.073
31.2 0.085
32.2 0.091
33.2 0.032

D22S1045
10 0.002
11 0.11
12 0.005
14 0.038
15 0.363
16 0.376
17 0.096
18 0.007
"""

SHARED_FILE = Path("dna") / "europe_allele_frequencies.txt"


def shared_frequency_file() -> Path | None:
    """The European table in ``../shared/data`` (or $PRUM_SHARED_DATA), if present."""
    candidates = []
    if env := os.environ.get("PRUM_SHARED_DATA"):
        candidates.append(Path(env))
    here = Path(__file__).resolve()
    candidates += [p.parent / "shared" / "data" for p in here.parents[:5]]
    candidates.append(Path.cwd().parent / "shared" / "data")
    for base in candidates:
        if (base / SHARED_FILE).is_file():
            return base / SHARED_FILE
    return None


class AlleleFrequencies:
    """Allele frequencies per locus, keyed by allele code (see prum.dna.profile)."""

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
    def builtin(cls) -> AlleleFrequencies:
        return cls.from_text(BUILTIN, "built-in ESS-12 table (norSTR, MIT)")

    @classmethod
    def default(cls) -> AlleleFrequencies:
        """The shared European table when present, else the built-in one."""
        path = shared_frequency_file()
        return cls.from_file(path) if path else cls.builtin()

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
