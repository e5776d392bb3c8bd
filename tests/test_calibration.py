"""Score calibration: false-match rates from an impostor distance distribution."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prum.categories.face.calibration import (
    EXACT_KNOTS,
    MIN_OBSERVED,
    ImpostorDistribution,
    lower_bound,
    similarity,
    upper_bound,
)
from prum.errors import BadInput, InvalidCalibration, InvalidLabelledSet, ModelMismatch


def uniform_grid(n: int = 1000) -> ImpostorDistribution:
    """Impostor distances 1/n, 2/n, ..., 1."""
    return ImpostorDistribution.from_distances(np.arange(1, n + 1) / n, "grid", "m1")


def test_fmr_is_the_empirical_fraction_where_enough_impostors_fall() -> None:
    d = uniform_grid()
    assert d.fmr_at(0.5) == pytest.approx(0.5)
    assert d.fmr_at(0.0505) == pytest.approx(50 / 1000)
    assert d.fmr_at(5.0) == 1.0


def test_tail_model_stays_within_what_the_sample_shows() -> None:
    # A normal fitted to a uniform sample overstates its lower tail; the data cap it.
    d = uniform_grid()
    for x in (0.0015, 0.0035, 0.0085):
        k = d.observed_at(x)
        assert lower_bound(k, 1000) <= d.fmr_at(x) <= upper_bound(k, 1000)


def test_fmr_below_the_sample_follows_the_fitted_normal_tail() -> None:
    rng = np.random.default_rng(1)
    d = ImpostorDistribution.from_distances(rng.normal(1.0, 0.1, 200_000), "normal", "m1")
    for x in (0.55, 0.5):  # 4.5 and 5 standard deviations below the mean
        truth = NormalDist(1.0, 0.1).cdf(x)
        assert truth / 2 < d.fmr_at(x) < truth * 2
    assert d.observed_at(0.5) == 0


def test_tail_model_joins_the_empirical_rate_at_the_anchor() -> None:
    d = ImpostorDistribution.from_distances(np.random.default_rng(2).normal(1, 0.1, 5000), "n", "m")
    anchor = d.tail.anchor_distance
    assert d.fmr_at(anchor) == pytest.approx(MIN_OBSERVED / 5000)
    assert d.fmr_at(anchor - 1e-9) == pytest.approx(d.fmr_at(anchor), rel=1e-4)


def test_fmr_at_many_equals_fmr_at_one_by_one() -> None:
    d = ImpostorDistribution.from_distances(np.random.default_rng(3).normal(1, 0.1, 3000), "n", "m")
    queries = np.array([[0.2, 0.6], [0.75, 1.3]])
    many = d.fmr_at_many(queries)
    assert many.shape == (2, 2)
    assert many.ravel().tolist() == pytest.approx([d.fmr_at(q) for q in queries.ravel()])


@settings(max_examples=40, deadline=None)
@given(
    sample=st.lists(st.floats(0.0, 3.0), min_size=50, max_size=300),
    queries=st.lists(st.floats(-1.0, 4.0), min_size=2, max_size=20),
)
def test_fmr_is_a_probability_non_decreasing_in_distance(
    sample: list[float], queries: list[float]
) -> None:
    d = ImpostorDistribution.from_distances(sample, "h", "m")
    q = np.sort(np.array(queries))
    fmr = d.fmr_at_many(q)
    assert np.all((fmr >= 0) & (fmr <= 1))
    assert np.all(np.diff(fmr) >= 0)


@pytest.mark.parametrize("rate", [1e-2, 1e-3, 1e-4, 1e-5])
def test_distance_at_a_rate_is_the_largest_distance_that_keeps_it(rate: float) -> None:
    d = ImpostorDistribution.from_distances(
        np.random.default_rng(5).normal(1, 0.1, 50_000), "n", "m"
    )
    at = d.distance_at(rate)
    assert d.fmr_at(at) <= rate < d.fmr_at(at + 1e-6)
    with pytest.raises(ValueError):
        d.distance_at(0.0)


def test_upper_bound_with_no_impostor_that_close_is_about_three_over_n() -> None:
    d = uniform_grid()
    assert d.observed_at(0.0005) == 0
    assert d.fmr_upper_at(0.0005) == pytest.approx(3 / 1000, rel=0.01)


def test_upper_bound_is_clopper_pearson_then_wilson() -> None:
    # Reference values: the beta quantile of the one-sided Clopper-Pearson interval.
    assert upper_bound(5, 1000) == pytest.approx(0.0104840769, rel=1e-6)
    assert upper_bound(0, 1000) == pytest.approx(0.0029912495, rel=1e-6)
    assert upper_bound(200, 10_000) == pytest.approx(0.0224593530, rel=0.01)
    assert lower_bound(5, 1000) == pytest.approx(0.0019721531, rel=1e-6)
    assert lower_bound(0, 1000) == 0.0


def test_describe_gives_a_rate_with_its_evidence() -> None:
    d = uniform_grid(100_000)  # distances 0.00001 ... 1.0
    words = d.describe(0.000255)
    assert words.startswith("about 1 in 4,000 impostors score this high")
    assert "25 of 100,000 impostor comparisons did" in words


def test_describe_says_fewer_than_when_no_impostor_scored_that_high() -> None:
    words = uniform_grid().describe(0.0)
    assert words.startswith("fewer than 1 in 330 impostors score this high")
    assert "none of 1,000 impostor comparisons did" in words
    assert "tail model" in words


def test_describe_names_the_tail_model_when_few_impostors_scored_that_high() -> None:
    words = uniform_grid().describe(0.0035)
    assert "by the tail model" in words
    assert "3 of 1,000 impostor comparisons did; at most 1 in 130" in words


def test_round_trip_through_bytes_keeps_every_answer() -> None:
    d = ImpostorDistribution.from_distances(np.random.default_rng(4).normal(1, 0.1, 2000), "s", "m")
    back = ImpostorDistribution.from_bytes(d.to_bytes())
    q = np.linspace(0, 2, 101)
    assert np.array_equal(back.fmr_at_many(q), d.fmr_at_many(q))
    assert back.metadata() == d.metadata()


def test_large_samples_are_stored_compactly_and_stay_exact_in_the_tail() -> None:
    distances = np.random.default_rng(5).normal(1, 0.1, 3 * EXACT_KNOTS)
    d = ImpostorDistribution.from_distances(distances, "big", "m")
    data = d.to_bytes()
    assert len(data) < 12 * 2 * EXACT_KNOTS
    back = ImpostorDistribution.from_bytes(data)
    s = np.sort(distances.astype(np.float32))
    tail_query, bulk_query = float(s[1000]), 1.05
    assert back.observed_at(tail_query) == 1001
    assert back.fmr_at(bulk_query) == pytest.approx(np.mean(s <= bulk_query), abs=1e-4)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b"",
        lambda b: b"not a calibration at all, but long enough",
        lambda b: b[:-10],
        lambda b: b[:30] + bytes([b[30] ^ 0xFF]) + b[31:],
        lambda b: b[:8] + b"\x09\x00" + b[10:],  # unknown version
    ],
)
def test_corrupt_bytes_are_refused(mangle: Callable[[bytes], bytes]) -> None:
    data = uniform_grid().to_bytes()
    with pytest.raises(InvalidCalibration):
        ImpostorDistribution.from_bytes(mangle(data))


def test_from_templates_never_pairs_the_same_identity() -> None:
    # Templates of one person are identical, of different people at least 1 apart.
    rng = np.random.default_rng(6)
    people = np.eye(30) * 10 + rng.normal(0, 0.01, (30, 30))
    identities = [f"p{i % 30}" for i in range(300)]
    vectors = people[[i % 30 for i in range(300)]]
    for max_pairs in (500, 100_000):  # sampled, and all pairs enumerated
        d = ImpostorDistribution.from_templates(
            vectors, identities, max_pairs=max_pairs, model_id="m", source="t"
        )
        assert d.observed_at(13.0) == 0  # every impostor pair is about 14.1 apart
        assert d.fmr_at(1.0) < 1e-12
    assert d.comparisons == 300 * 299 // 2 - 30 * (10 * 9 // 2)


def test_from_templates_samples_distinct_pairs_reproducibly() -> None:
    x = np.random.default_rng(7).normal(size=(2000, 8)).astype(np.float32)
    a = ImpostorDistribution.from_templates(
        x, None, max_pairs=5000, seed=3, model_id="m", source="s"
    )
    b = ImpostorDistribution.from_templates(
        x, None, max_pairs=5000, seed=3, model_id="m", source="s"
    )
    assert a.comparisons == 5000
    assert np.array_equal(
        a.fmr_at_many(np.linspace(0, 8, 50)), b.fmr_at_many(np.linspace(0, 8, 50))
    )


def test_without_identities_every_record_is_its_own_person() -> None:
    x = np.random.default_rng(8).normal(size=(40, 4))
    d = ImpostorDistribution.from_templates(x, None, model_id="m", source="s")
    assert d.comparisons == 40 * 39 // 2


@pytest.mark.parametrize(
    ("vectors", "identities"),
    [
        (np.zeros((20, 4)), ["same"] * 20),  # one identity: no impostor pair
        (np.zeros((20, 4)), ["a", "b"]),  # lengths differ
        (np.full((20, 4), np.nan), [str(i) for i in range(20)]),
        (np.zeros(20), [str(i) for i in range(20)]),  # not (n, dim)
    ],
)
def test_unusable_labelled_sets_are_refused(vectors: np.ndarray, identities: list[str]) -> None:
    with pytest.raises(InvalidLabelledSet):
        ImpostorDistribution.from_templates(vectors, identities, model_id="m", source="s")


def test_too_few_or_non_finite_distances_are_refused() -> None:
    with pytest.raises(InvalidLabelledSet):
        ImpostorDistribution.from_distances([0.5] * 10, "s", "m")
    with pytest.raises(InvalidLabelledSet):
        ImpostorDistribution.from_distances([0.5] * 99 + [float("nan")], "s", "m")


def test_a_non_finite_query_distance_is_bad_input() -> None:
    with pytest.raises(BadInput):
        uniform_grid().fmr_at(float("nan"))


def test_a_calibration_refuses_another_models_distances() -> None:
    d = uniform_grid()
    d.require_model("m1")
    with pytest.raises(ModelMismatch):
        d.require_model("arcface")


def test_similarity_is_monotone_and_within_zero_and_one() -> None:
    assert similarity(0.0) == 1.0
    assert similarity(0.6) == pytest.approx(0.7)
    assert similarity(5.0) == 0.0
    scores = [similarity(x) for x in np.linspace(0, 3, 31)]
    assert all(a >= b for a, b in itertools.pairwise(scores))
