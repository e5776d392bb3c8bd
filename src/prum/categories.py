"""The one interface every data category implements, and the registry of them.

The node, the router and the workbench handle all categories alike through this
protocol; a vendor matcher (a commercial ABIS) can replace a built-in one by
registering another factory. No ``if category == "face"`` outside this module.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from prum.config import Settings
from prum.errors import BadInput, CategoryNotOffered
from prum.gallery.schema import SubjectCategory
from prum.messages import Candidate, Category, CoreData, Probe


@dataclass(frozen=True)
class Exposure:
    """What national law lets this node return (DESIGN.md section 7)."""

    subjects: frozenset[SubjectCategory]
    min_age: int | None
    unknown_age_exposed: bool = True

    def allows(
        self,
        subject: SubjectCategory,
        date_of_birth: dt.date | None,
        *,
        birth_year: int | None = None,
    ) -> bool:
        """Whether a record of this subject category and birth date may be returned.

        With only a ``birth_year``, the youngest the person can be is used.
        """
        if subject not in self.subjects:
            return False
        if self.min_age is None:
            return True
        today = dt.date.today()
        if date_of_birth is not None:
            born = date_of_birth
            age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        elif birth_year is not None:
            age = today.year - birth_year - 1
        else:
            return self.unknown_age_exposed
        return age >= self.min_age


@dataclass(frozen=True)
class MatchResult:
    candidates: list[Candidate]
    gallery_size: int


class CategoryMatcher(Protocol):
    """A national matcher of one category behind the four operations of DESIGN.md."""

    category: Category

    def enroll(self, sample: bytes, **record: Any) -> str:
        """Enrol one sample; returns its opaque reference number."""
        ...

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        """Candidates for human verification, best first, within the exposure rules.

        ``search_type`` names the collection searched where a category has several
        (fingerprints: TP/TP searches tenprints, TP/UL unsolved latents ...).
        """
        ...

    def delete(self, reference: str, *, reason: str) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchMatcher(Protocol):
    """A matcher that also answers batched comparisons (DNA bulk and continuous)."""

    def search_batch(
        self, probes: list[Probe], *, max_candidates: int, exposure: Exposure
    ) -> list[MatchResult]:
        """One result per probe, in order; a probe that cannot be read raises."""
        ...


@runtime_checkable
class CoreDataSource(Protocol):
    """A matcher whose store keeps the core data of its records itself (police
    records); the others' core data sit in the node's ``node_core_data`` table."""

    def core_data(self, reference: str) -> CoreData:
        """The Art 47 core data of a record; raises UnknownReference."""
        ...


class FaceMatcher:
    """The face category: a FaceGallery behind the common interface."""

    category = Category.FACE

    def __init__(self, settings: Settings):
        from prum.face.gallery import FaceGallery

        self.gallery = FaceGallery(settings)

    def enroll(self, sample: bytes, **record: Any) -> str:
        return self.gallery.enroll(sample, **record)

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        from prum.face import gallery as face
        from prum.face.types import FaceBox

        if probe.format != "image":
            raise BadInput("a face search needs an image probe (JPEG, PNG, ...)")
        box = FaceBox(*probe.face_box) if probe.face_box else None
        result = self.gallery.search(
            probe.data,
            box=box,
            max_candidates=max_candidates,
            exposure=face.Exposure(
                categories=exposure.subjects,
                min_age=exposure.min_age,
                unknown_age_exposed=exposure.unknown_age_exposed,
            ),
        )
        candidates = []
        for c in result.candidates:
            image = self.gallery.store.image(c.reference)
            candidates.append(
                Candidate(
                    rank=c.rank,
                    reference=c.reference,
                    score=c.score,
                    distance=c.distance,
                    false_match_rate=c.false_match_rate,
                    false_match_words=c.false_match_words,
                    provenance=c.provenance,
                    synthetic=c.synthetic,
                    quality=c.quality_overall,
                    image=None if image is None else base64.b64encode(image[0]),
                )
            )
        return MatchResult(candidates=candidates, gallery_size=result.gallery_size)

    def delete(self, reference: str, *, reason: str) -> None:
        self.gallery.delete(reference, reason=reason)

    def describe(self) -> dict[str, Any]:
        return self.gallery.describe()

    def warm_up(self) -> None:
        self.gallery.pipeline.warm_up()

    def close(self) -> None:
        self.gallery.close()


def _dna_matcher(settings: Settings) -> CategoryMatcher:
    from prum.dna.matcher import DnaMatcher  # imports this module: load on first use

    return DnaMatcher(settings)


def _vehicle_matcher(settings: Settings) -> CategoryMatcher:
    from prum.vehicle.matcher import VehicleMatcher  # imports this module: load on first use

    return VehicleMatcher(settings)


def _records_matcher(settings: Settings) -> CategoryMatcher:
    from prum.records.matcher import RecordsMatcher  # imports this module: load on first use

    return RecordsMatcher(settings)


def _finger_matcher(settings: Settings) -> CategoryMatcher:
    from prum.finger.matcher import FingerMatcher  # imports this module: load on first use

    return FingerMatcher(settings)


# Categories whose answer is the data itself (EUCARIS): no verification, no step 2.
ANSWERED_AT_ONCE: frozenset[Category] = frozenset({Category.VEHICLE})

REGISTRY: dict[Category, Callable[[Settings], CategoryMatcher]] = {
    Category.FACE: FaceMatcher,
    Category.DNA: _dna_matcher,
    Category.FINGER: _finger_matcher,
    Category.VEHICLE: _vehicle_matcher,
    Category.RECORDS: _records_matcher,
}


def make_matcher(category: Category, settings: Settings) -> CategoryMatcher:
    factory = REGISTRY.get(category)
    if factory is None:
        raise CategoryNotOffered(f"no matcher is installed for the {category.value} category")
    return factory(settings)
