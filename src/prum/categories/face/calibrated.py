"""The false-match rate a candidate's statement shows: the node's own impostors, the
shipped reference, or both, and always which.

- The node's own impostor distribution (face/gallery.py draws it from its own records, or
  an operator supplies one from a labelled set) speaks alone once it rests on at least
  ``own_min_comparisons`` comparisons: enough to observe rates down to about 1e-5.
- Below that, or when the node has none, the shipped reference of the model set (LFW
  fitting people, face/reference.py) is used, multiplied by ``reference_factor`` because
  calibration does not travel between photo collections; when the node has some impostors
  of its own, the higher of the two rates is shown: never a lower rate than the evidence
  supports.
"""

from __future__ import annotations

from dataclasses import dataclass

from prum.categories.face.calibration import ImpostorDistribution, about_words


@dataclass(frozen=True)
class Calibrated:
    own: ImpostorDistribution | None
    reference: ImpostorDistribution | None
    reference_factor: float
    own_min_comparisons: int

    @property
    def own_suffices(self) -> bool:
        return self.own is not None and self.own.comparisons >= self.own_min_comparisons

    @property
    def source(self) -> str:
        """One line naming what the rates come from."""
        own = self.own
        if self.own_suffices and own is not None:
            return f"this node's impostors ({own.source}, {own.comparisons:,} comparisons)"
        ref = self.reference
        assert ref is not None  # combine() returns None when neither exists
        text = (
            f"reference impostor distribution ({ref.source}, {ref.comparisons:,} comparisons)"
            f" x {self.reference_factor:g} for photos unlike the reference's; not checked on"
            " this node's photos"
        )
        if own is not None:
            text += f", whose own {own.comparisons:,} comparisons are too few to stand alone"
        return text

    def fmr_at(self, distance: float) -> float:
        own = self.own
        if self.own_suffices and own is not None:
            return own.fmr_at(distance)
        ref = self.reference
        assert ref is not None
        rate = min(1.0, self.reference_factor * ref.fmr_at(distance))
        return max(rate, own.fmr_at(distance)) if own is not None else rate

    def describe(self, distance: float) -> str:
        own = self.own
        if self.own_suffices and own is not None:
            return f"{own.describe(distance)}; from {self.source}"
        return f"{about_words(self.fmr_at(distance))} impostors score this high; from {self.source}"


def combine(
    own: ImpostorDistribution | None,
    reference: ImpostorDistribution | None,
    *,
    reference_factor: float,
    own_min_comparisons: int,
) -> Calibrated | None:
    """The calibration a gallery states with, or None when it has nothing to go on."""
    if reference is None and own is None:
        return None
    if reference is None:
        # No reference for this model (an operator's ONNX model): own figures only.
        return Calibrated(own, None, reference_factor, 0)
    return Calibrated(own, reference, reference_factor, own_min_comparisons)
