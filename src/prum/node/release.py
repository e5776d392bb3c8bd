"""The release threshold: which of the national matcher's candidates may leave the node.

A holder sends abroad only candidates at least as strong as its configured threshold
(``CategoryPolicy.release``): a score, a calibrated false-match rate, or both. The
others stay at home; the reply says how many were withheld, never which. A probe the
quality check rates poor is held to the stricter of the two thresholds, so a bad photo
brings fewer, stronger candidates, never a longer list of weak ones. The national
"investigative" setting lets the top candidates leave whatever their strength; it is
off by default and every search answered so is counted in the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from prum.categories.interface import MatchResult
from prum.federation.messages import Candidate
from prum.node.config import ReleaseThreshold


@dataclass(frozen=True)
class Released:
    """What leaves the node, and what the reply and the log say about the rest."""

    candidates: list[Candidate]
    withheld: int
    investigative: bool
    poor_probe: bool


def _stricter(first: float | None, second: float | None, *, higher: bool) -> float | None:
    values = [v for v in (first, second) if v is not None]
    if not values:
        return None
    return max(values) if higher else min(values)


def release(threshold: ReleaseThreshold, result: MatchResult) -> Released:
    """The candidates of ``result`` that may be sent under ``threshold``."""
    quality, below = result.probe_quality, threshold.poor_probe_below
    poor = below is not None and quality is not None and quality < below
    if threshold.investigative:
        return Released(result.candidates, 0, investigative=True, poor_probe=poor)
    min_score, max_fmr = threshold.min_score, threshold.max_false_match_rate
    if poor:
        min_score = _stricter(min_score, threshold.poor_probe_min_score, higher=True)
        max_fmr = _stricter(max_fmr, threshold.poor_probe_max_false_match_rate, higher=False)
    strangers = threshold.max_expected_strangers
    if strangers is not None:
        scaled = min(1.0, strangers / max(1, result.gallery_size))
        max_fmr = _stricter(max_fmr, scaled, higher=False)

    def strong_enough(candidate: Candidate) -> bool:
        if min_score is not None and candidate.score < min_score:
            return False
        if max_fmr is not None:
            # A rate that cannot be estimated cannot show the candidate is strong enough.
            rate = candidate.false_match_rate
            return rate is not None and rate <= max_fmr
        return True

    kept = [c for c in result.candidates if strong_enough(c)]
    return Released(kept, len(result.candidates) - len(kept), investigative=False, poor_probe=poor)
