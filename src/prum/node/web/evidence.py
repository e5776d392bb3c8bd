"""What an examiner verifies on the comparison pages, shaped from a stored search: one
strength statement per candidate, the candidates in order (numbered per comparison,
with previous and next), which profile a DNA hit is for, and the minutiae pairs of a
fingerprint hit. Plain functions, no HTTP (node/web/search_pages.py calls them).

The strength statement follows the verbal scales of forensic reporting (ENFSI
Guideline for Evaluative Reporting, 2015: words tied to orders of magnitude, the basis
stated beside them) applied to the one figure a holder sends, the calibrated
false-match rate: how often a stranger's sample scores as high as this candidate.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from prum.categories.face.calibration import about_words

# Verbal bands by the false-match rate, strongest first: (upper rate, band). One order
# of magnitude or more between bands, as on ENFSI's scale; a rate above the last bound
# (more than 1 in 100 strangers score this high) supports nothing.
BANDS = (
    (1e-6, "very strong"),
    (1e-4, "strong"),
    (1e-3, "moderate"),
    (1e-2, "weak"),
)
NO_SUPPORT = "no support"
# A candidate whose rate is above this is no candidate: shown apart, below the
# threshold, never in the list an examiner works through.
CANDIDATE_MAX_RATE = BANDS[-1][0]
SCALE = (
    "verbal scale: very strong at most 1 in 1,000,000 strangers score this high; strong"
    " at most 1 in 10,000; moderate at most 1 in 1,000; weak at most 1 in 100; above"
    " that no support"
)


@dataclass(frozen=True)
class Strength:
    """The one strength statement of a candidate: a band, its figure, and the basis."""

    band: str  # very strong | strong | moderate | weak | no support | not calibrated
    figure: str  # "about 1 in 75,000 strangers score this high" ("" when uncalibrated)
    basis: str  # which impostor distribution, how many comparisons (small print)
    candidate: bool  # False: below the threshold, not shown as a candidate

    @property
    def css(self) -> str:
        return self.band.replace(" ", "-")

    @property
    def headline(self) -> str:
        if not self.figure:
            return "strength not calibrated"
        if self.band == NO_SUPPORT:
            return f"{NO_SUPPORT}: {self.figure}"
        return f"{self.band} support: {self.figure}"


def band_of(rate: float) -> str:
    for bound, band in BANDS:
        if rate <= bound:
            return band
    return NO_SUPPORT


def strength(candidate: dict[str, Any]) -> Strength | None:
    """The statement of a face or fingerprint candidate (None for other categories:
    DNA states a random match probability, police records a quality, vehicles none).

    The figure is the holder's calibrated rate, worded once; the holder's words give
    only the basis, so two figures that disagree never stand side by side. A rate that
    is only an upper bound (no impostor of n scored this high) is worded as one.
    """
    details = candidate.get("details") or {}
    if details.get("kind") in ("dna", "records", "vehicle"):
        return None
    words = str(candidate.get("false_match_words") or "")
    rate = candidate.get("false_match_rate")
    if rate is None:
        return Strength("not calibrated", "", words, candidate=True)
    rate = float(rate)
    head, _, basis = words.partition("; from ")
    # A fingerprint calibration with no impostor as high gives 1/n, a bound.
    if "no impostor" in head and rate > 0:
        figure = f"fewer than 1 in {round(1 / rate):,} strangers score this high"
    else:
        figure = f"{about_words(rate)} strangers score this high"
    band = band_of(rate)
    return Strength(
        band=band,
        figure=figure,
        basis=(basis or head).strip(),
        candidate=rate <= CANDIDATE_MAX_RATE,
    )


# --- candidates in order ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A candidate of a search in the order the pages list them."""

    party: str
    reference: str
    number: int  # 1.. per country's answer: hits of a comparison are numbered through
    of: int
    candidate: bool  # False: below the threshold


def entries(search: dict[str, Any]) -> list[Entry]:
    """Every candidate of a search, countries in the reply's order, each numbered."""
    out: list[Entry] = []
    for answer in (search.get("reply") or {}).get("replies", []):
        listed = answer.get("candidates") or []
        for number, c in enumerate(listed, start=1):
            s = strength(c)
            out.append(
                Entry(
                    party=str(answer["party"]),
                    reference=str(c["reference"]),
                    number=number,
                    of=len(listed),
                    candidate=s is None or s.candidate,
                )
            )
    return out


Numbered = list[tuple[int, dict[str, Any], Strength | None]]


def split_candidates(listed: list[dict[str, Any]]) -> tuple[Numbered, Numbered]:
    """A country's answer as the results page lists it: (number, candidate, strength) of
    the candidates, then of the entries below the threshold; numbered through."""
    shown: Numbered = []
    below: Numbered = []
    for number, c in enumerate(listed, start=1):
        s = strength(c)
        (below if s is not None and not s.candidate else shown).append((number, c, s))
    return shown, below


def neighbours(search: dict[str, Any], party: str, reference: str) -> dict[str, Any]:
    """This candidate's number and the previous and next candidate (None at the ends);
    entries below the threshold are passed over unless the page shows one of them."""
    listed = entries(search)
    here = next((e for e in listed if (e.party, e.reference) == (party, reference)), None)
    walk = [e for e in listed if e.candidate == (here.candidate if here else True)]
    index = walk.index(here) if here in walk else -1
    return {
        "here": here,
        "previous": walk[index - 1] if index > 0 else None,
        "next": walk[index + 1] if 0 <= index < len(walk) - 1 else None,
        "position": index + 1,
        "count": len(walk),
    }


# --- DNA: which profile a hit is for --------------------------------------------------------


def _loci(stored: Any) -> dict[str, list[str]]:
    if not isinstance(stored, dict) or stored.get("format") != "dna_profile":
        return {}
    try:
        loci = json.loads(base64.b64decode(stored.get("data") or ""))["loci"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return {}
    return {str(k): [str(a) for a in v] for k, v in loci.items()} if isinstance(loci, dict) else {}


def dna_probe(search: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """The profile a DNA hit was found with: the probe of a one-off search, or in a bulk
    or continuous comparison this node's own profile named by its reference (stored
    with the hits, prum.node.comparisons)."""
    probe = search.get("probe") or {}
    own = candidate.get("probe_reference")
    if own:
        stored = (probe.get("profiles") or {}).get(own)
        return {
            "label": f"Own profile {own}",
            "reference": own,
            "loci": _loci(stored),
            "missing": stored is None,
        }
    return {"label": "Probe", "reference": None, "loci": _loci(probe), "missing": False}


def differing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The loci of a near match where an allele differs, for the headline."""
    return [r for r in rows if r["state"] == "mismatch"]


# --- fingerprints: the paired minutiae --------------------------------------------------------


def minutiae_pairs(candidate: dict[str, Any]) -> list[list[float]]:
    """[probe x, probe y, candidate x, candidate y] per pair, as fractions of each
    image's width and height (what the holder's matcher paired)."""
    details = candidate.get("details") or {}
    pairs = details.get("minutiae_pairs") or []
    return [
        [float(v) for v in p]
        for p in pairs
        if isinstance(p, list | tuple) and len(p) == 4 and all(0 <= float(v) <= 1 for v in p)
    ]
