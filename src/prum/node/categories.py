"""The categories this node runs: the registry that wires the five built-in matchers.

A deployment replaces a built-in matcher (with a vendor ABIS, in-process or over
HTTP) by registering another factory here; nothing else names a category's class.
Matchers are imported when first made, so a node loads only what it offers.
"""

from __future__ import annotations

from collections.abc import Callable

from prum.categories.interface import CategoryMatcher, Preparer
from prum.config import Settings
from prum.errors import CategoryNotOffered
from prum.federation.messages import Category
from prum.node.abis.endpoint import AbisEndpoint


def _face_matcher(settings: Settings) -> CategoryMatcher:
    from prum.categories.face.matcher import FaceMatcher

    return FaceMatcher(settings)


def _dna_matcher(settings: Settings) -> CategoryMatcher:
    from prum.categories.dna.matcher import DnaMatcher

    return DnaMatcher(settings)


def _vehicle_matcher(settings: Settings) -> CategoryMatcher:
    from prum.categories.vehicle.matcher import VehicleMatcher

    return VehicleMatcher(settings)


def _records_matcher(settings: Settings) -> CategoryMatcher:
    from prum.categories.records.matcher import RecordsMatcher

    return RecordsMatcher(settings)


def _finger_matcher(settings: Settings) -> CategoryMatcher:
    from prum.categories.finger.matcher import FingerMatcher

    return FingerMatcher(settings)


# Categories whose answer is the data itself (EUCARIS): no verification, no step 2.
ANSWERED_AT_ONCE: frozenset[Category] = frozenset({Category.VEHICLE})

REGISTRY: dict[Category, Callable[[Settings], CategoryMatcher]] = {
    Category.FACE: _face_matcher,
    Category.DNA: _dna_matcher,
    Category.FINGER: _finger_matcher,
    Category.VEHICLE: _vehicle_matcher,
    Category.RECORDS: _records_matcher,
}


def make_matcher(
    category: Category, settings: Settings, abis: AbisEndpoint | None = None
) -> CategoryMatcher:
    """The category's matcher; with ``abis``, one whose searches an external ABIS
    answers over HTTP, the built-in matcher kept underneath as the system of record
    (prum.node.abis.adapter)."""
    factory = REGISTRY.get(category)
    if factory is None:
        raise CategoryNotOffered(f"no matcher is installed for the {category.value} category")
    if abis is not None:
        from prum.node.abis.adapter import make_external

        return make_external(category, factory(settings), abis)
    return factory(settings)


def make_preparer(category: Category, settings: Settings) -> Preparer:
    """A category's sample preparer on its own (for the national-systems interface's
    worker processes, which hold no matcher)."""
    if category is Category.FACE:
        from prum.categories.face.ingest import FacePreparer

        return FacePreparer(settings)
    if category is Category.FINGER:
        from prum.categories.finger.ingest import FingerPreparer

        return FingerPreparer(settings)
    if category is Category.DNA:
        from prum.categories.dna.ingest import DnaPreparer

        return DnaPreparer(settings)
    if category is Category.VEHICLE:
        from prum.categories.vehicle.ingest import VehiclePreparer

        return VehiclePreparer(settings)
    if category is Category.RECORDS:
        from prum.categories.records.ingest import RecordsPreparer

        return RecordsPreparer(settings)
    raise CategoryNotOffered(f"no preparer is installed for the {category.value} category")
