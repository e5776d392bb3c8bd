"""STR loci and the locus sets a profile may be compared on (2008/616 Annex, chapter 1).

The European Standard Set (ESS) was 7 loci until 2009 and has 12 since; Interpol's set
has 24 (amelogenin included). Prüm II leaves the locus list to implementing acts, so the
set is configuration (:class:`prum.categories.dna.config.DnaSettings`); the default, ``prum``, is
the union of the Interpol 24 and the ESS 12.
"""

from __future__ import annotations

from prum.errors import InvalidDnaSettings

AMELOGENIN = "Amelogenin"

ESS_7: tuple[str, ...] = ("D3S1358", "vWA", "D8S1179", "D21S11", "D18S51", "TH01", "FGA")
ESS_12: tuple[str, ...] = (*ESS_7, "D1S1656", "D2S441", "D10S1248", "D12S391", "D22S1045")
# The Interpol list as MISSION.md gives it (24 names, amelogenin included).
INTERPOL_24: tuple[str, ...] = (
    "vWA", "TH01", "D21S11", "FGA", "D8S1179", "D3S1358", "D18S51", AMELOGENIN,
    "TPOX", "CSF1PO", "D13S317", "D7S820", "D5S818", "D16S539", "D2S1338", "D19S433",
    "Penta D", "Penta E", "FES", "F13A1", "F13B", "SE33", "CD4", "GABA",
)  # fmt: skip

LOCUS_SETS: dict[str, tuple[str, ...]] = {
    "ess7": (*ESS_7, AMELOGENIN),
    "ess12": (*ESS_12, AMELOGENIN),
    "interpol24": INTERPOL_24,
    "prum": (*INTERPOL_24, *[n for n in ESS_12 if n not in INTERPOL_24]),
}


def _fold(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


# Laboratories write "VWA", "vWA", "Penta_D", "PENTAD", "THO1" (letter O): one spelling.
_CANONICAL: dict[str, str] = {_fold(n): n for names in LOCUS_SETS.values() for n in names}
_CANONICAL[_fold("THO1")] = "TH01"
_CANONICAL[_fold("AMEL")] = AMELOGENIN


def canonical_locus(name: str) -> str | None:
    """The standard spelling of a locus name, or None if it is not a known STR locus."""
    return _CANONICAL.get(_fold(name))


class LocusSet:
    """The loci a node stores and compares, in a fixed order (the index's columns).

    ``loci`` excludes amelogenin: it is recorded but never compared nor counted
    (2008/616 Annex, chapter 1, 1.1).
    """

    def __init__(self, name: str):
        if name not in LOCUS_SETS:
            known = ", ".join(LOCUS_SETS)
            raise InvalidDnaSettings(f"unknown locus set {name!r}; known: {known}")
        self.name = name
        self.loci: tuple[str, ...] = tuple(n for n in LOCUS_SETS[name] if n != AMELOGENIN)
        self.position: dict[str, int] = {n: i for i, n in enumerate(self.loci)}

    def __len__(self) -> int:
        return len(self.loci)

    def __contains__(self, locus: object) -> bool:
        return locus == AMELOGENIN or locus in self.position

    def __repr__(self) -> str:
        return f"LocusSet({self.name!r}, {len(self.loci)} loci + amelogenin)"
