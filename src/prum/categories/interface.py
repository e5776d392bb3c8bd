"""The one interface every data category implements (DESIGN.md section 3).

The node, the router and the workbench handle all categories alike through it; a
vendor matcher (a commercial ABIS) can replace a built-in one in the node's registry
(prum.node.categories). This module imports no category: each category's package
imports it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prum.federation.messages import Candidate, Category, CoreData, Probe

if TYPE_CHECKING:
    from sqlalchemy import Connection


class SubjectCategory(StrEnum):
    """Data-subject category of a record; national law decides which are exposed.

    The order is the stable numeric code used by the vector index's filters: append
    new categories at the end, never reorder.
    """

    SUSPECT = "suspect"
    CONVICTED = "convicted"
    UNIDENTIFIED_SUSPECT = "unidentified_suspect"  # a trace: face of an unknown offender
    MISSING_PERSON = "missing_person"
    UNIDENTIFIED_REMAINS = "unidentified_remains"
    VICTIM = "victim"
    WITNESS = "witness"

    @property
    def code(self) -> int:
        return list(SubjectCategory).index(self)


@dataclass(frozen=True)
class Exposure:
    """What national law lets this node return (DESIGN.md section 7).

    ``subjects``: data-subject categories that may appear in a candidate list;
    ``min_age``: records of people younger than this (at search time) are withheld;
    ``unknown_age_exposed``: whether a record without a date of birth may be returned.
    The default exposes everything (a national search of one's own data).
    """

    subjects: frozenset[SubjectCategory] = frozenset(SubjectCategory)
    min_age: int | None = None
    unknown_age_exposed: bool = True

    def latest_birth_date(self, today: dt.date) -> dt.date | None:
        """The last date of birth of someone old enough today; None without an age limit."""
        if self.min_age is None:
            return None
        try:
            return today.replace(year=today.year - self.min_age)
        except ValueError:  # 29 February
            return today.replace(year=today.year - self.min_age, day=28)

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
    # The probe's overall quality (0-100) where the matcher measures one (faces): a poor
    # probe is held to a stricter release threshold (prum.node.release).
    probe_quality: float | None = None
    # Milliseconds per stage where the matcher measures them (faces: decode, detect,
    # embed, index search, candidate images): the node's timing log, nothing else.
    timings_ms: dict[str, float] | None = None


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


@dataclass(frozen=True)
class RecordMeta:
    """What the national-systems interface says of a record besides its sample.

    ``source_key`` is derived from the national system's own identifier and the
    record's content, so the same version of a record is never stored twice.
    ``subject`` None lets the category choose (a DNA trace: unidentified suspect).
    """

    source_key: str
    subject: SubjectCategory | None = None
    provenance: str = ""
    date_of_birth: dt.date | None = None
    synthetic: bool = False
    # Fingerprints: "tenprint" or "latent" and, for a single image, its position.
    collection: str | None = None
    position: int | None = None
    # The national system's key of the person (faces: photos of one person share it).
    person_key: str | None = None


class Preparer(Protocol):
    """Turns a national system's sample into what a category stores: parsing,
    validation and feature extraction, with no write. Built from the node's Settings,
    so it can run in a worker process; what it returns is picklable."""

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> Any:
        """The prepared record; raises a BadInput (PrumError) when the sample cannot be
        stored, naming what is wrong."""
        ...


class Ingester(Protocol):
    """How records enter a category through the node's national-systems interface
    (prum.node.systems): prepared outside any transaction, then written on the
    caller's connection so that the category's rows, the node's bookkeeping and the
    audit entries commit together, then the matcher's index catches up."""

    def preparer(self) -> Preparer: ...

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        """Store prepared records on ``conn`` (no commit); their references, in order."""
        ...

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        """Erase a record and log the erasure on ``conn`` (no commit)."""
        ...

    def refresh(self) -> None:
        """After a commit: bring the matcher's index up to what the store holds."""
        ...
