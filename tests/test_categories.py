"""The category registry and the exposure rules every matcher applies."""

from __future__ import annotations

import datetime as dt

from prum.categories.interface import Exposure, SubjectCategory
from prum.federation.messages import Category
from prum.node.categories import REGISTRY

ADULTS = Exposure(subjects=frozenset({SubjectCategory.CONVICTED}), min_age=18)


def years_ago(years: int, days: int = 0) -> dt.date:
    today = dt.date.today()
    return today.replace(year=today.year - years) - dt.timedelta(days=days)


def test_every_category_has_a_matcher() -> None:
    assert set(REGISTRY) == set(Category)


def test_exposure_by_subject_category_and_age() -> None:
    assert ADULTS.allows(SubjectCategory.CONVICTED, years_ago(18))
    assert not ADULTS.allows(SubjectCategory.CONVICTED, years_ago(18, days=-1))
    assert not ADULTS.allows(SubjectCategory.SUSPECT, years_ago(40))


def test_unknown_age_follows_national_law_and_a_birth_year_counts_as_youngest() -> None:
    this_year = dt.date.today().year
    assert ADULTS.allows(SubjectCategory.CONVICTED, None)
    strict = Exposure(ADULTS.subjects, min_age=18, unknown_age_exposed=False)
    assert not strict.allows(SubjectCategory.CONVICTED, None)
    assert strict.allows(SubjectCategory.CONVICTED, None, birth_year=this_year - 19)
    assert not strict.allows(SubjectCategory.CONVICTED, None, birth_year=this_year - 18)
