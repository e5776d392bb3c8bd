"""The gallery's vector index: every kind agrees with brute force, filters are exact,
removals and saves hold, and bad input changes nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prum.categories.face.config import IndexSettings
from prum.categories.face.index import UNKNOWN_DOB, VectorIndex
from prum.errors import BadInput, StorageError

DIM = 128
N = 32_000
TODAY = 20_400  # days since 1970-01-01
ADULT = TODAY - int(18 * 365.25)  # born before this day: 18 or older
# On the synthetic data below photos of one person are about 0.65 apart and different
# people about 1.5: this plays the role of the decision threshold.
MATE_DISTANCE = 1.0

COMPRESSED = "ivf-pq128x4fs"
# Thresholds that put 32k templates in each tier.
TIERS = {
    "flat": IndexSettings(exact_below=100_000),
    "hnsw": IndexSettings(exact_below=1_000, compressed_above=100_000),
    COMPRESSED: IndexSettings(exact_below=1_000, compressed_above=10_000),
}


class Gallery:
    """Clustered synthetic templates: people with three photos each, plus probes."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        spectrum = np.sqrt(np.arange(1, DIM + 1) ** -0.5 * 0.3 / 30)
        people = n // 3 + 1
        mean = rng.normal(0, 0.12, DIM)
        centres = mean + rng.standard_normal((people, DIM)) * spectrum * 2.2
        self.person = np.arange(n) // 3
        noise = rng.standard_normal((n, DIM)) * spectrum * 1.0
        self.vectors = (centres[self.person] + noise).astype(np.float32)
        self.ids = np.arange(1, n + 1, dtype=np.int64) * 7  # not positions
        self.categories = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]).astype(np.uint8)
        self.dob = (TODAY - rng.uniform(10, 80, n) * 365.25).astype(np.int32)
        self.dob[rng.random(n) < 0.05] = UNKNOWN_DOB
        probe_people = rng.choice(people - 1, min(200, people - 1), replace=False)
        self.probe_person = probe_people
        probe_noise = rng.standard_normal((len(probe_people), DIM)) * spectrum * 1.0
        self.probes = (centres[probe_people] + probe_noise).astype(np.float32)

    def person_of(self, record_id: int) -> int:
        return int(self.person[record_id // 7 - 1])


@pytest.fixture(scope="module")
def gallery() -> Gallery:
    return Gallery(N)


@pytest.fixture(scope="module")
def indexes(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory) -> dict[str, VectorIndex]:
    built = {}
    for kind, tier in TIERS.items():
        vi = VectorIndex(DIM, tier, tmp_path_factory.mktemp(kind))
        vi.add(gallery.ids, gallery.vectors, gallery.categories, gallery.dob)
        built[kind] = vi
    return built


def ids_of(results: list[tuple[int, float]]) -> list[int]:
    return [rid for rid, _ in results]


def small_index(tmp_path: Path | None = None, n: int = 2_000) -> tuple[VectorIndex, Gallery]:
    g = Gallery(n, seed=3)
    vi = VectorIndex(DIM, IndexSettings(), tmp_path)
    vi.add(g.ids, g.vectors, g.categories, g.dob)
    return vi, g


# --- each kind against brute force ---------------------------------------------------


@pytest.mark.parametrize("kind", TIERS)
def test_kind_is_chosen_by_gallery_size(indexes: dict[str, VectorIndex], kind: str) -> None:
    assert indexes[kind].kind == kind
    assert len(indexes[kind]) == N


@pytest.mark.parametrize("kind", TIERS)
def test_true_mates_found_as_by_exact_search(
    indexes: dict[str, VectorIndex], gallery: Gallery, kind: str
) -> None:
    vi = indexes[kind]
    pairs = hits = same_top1 = 0
    for probe, person in zip(gallery.probes, gallery.probe_person, strict=True):
        exact = vi.search_exact(probe, 50)
        approx = set(ids_of(vi.search(probe, 50)))
        mates = [rid for rid in ids_of(exact) if gallery.person_of(rid) == person]
        pairs += len(mates)
        hits += sum(rid in approx for rid in mates)
        same_top1 += exact[0][0] in approx
    assert pairs > 0
    assert hits / pairs >= 0.99
    assert same_top1 / len(gallery.probes) >= 0.99


def test_mates_are_the_nearest_on_this_data(
    indexes: dict[str, VectorIndex], gallery: Gallery
) -> None:
    vi = indexes["flat"]
    top = [gallery.person_of(vi.search(p, 1)[0][0]) for p in gallery.probes]
    assert np.mean(np.array(top) == gallery.probe_person) >= 0.95


@pytest.mark.parametrize("kind", TIERS)
def test_distances_are_exact_euclidean_and_ascending(
    indexes: dict[str, VectorIndex], gallery: Gallery, kind: str
) -> None:
    probe = gallery.probes[0]
    results = indexes[kind].search(probe, 20)
    distances = [d for _, d in results]
    assert distances == sorted(distances)
    for rid, distance in results:
        vector = gallery.vectors[rid // 7 - 1].astype(np.float64)
        assert distance == pytest.approx(np.linalg.norm(vector - probe), abs=1e-9)
    exact = dict(indexes[kind].search_exact(probe, 20))
    assert all(exact[rid] == d for rid, d in results if rid in exact)


def test_max_distance_cuts_the_list(indexes: dict[str, VectorIndex], gallery: Gallery) -> None:
    results = indexes["hnsw"].search(gallery.probes[0], 50, max_distance=MATE_DISTANCE)
    assert results and all(d <= MATE_DISTANCE for _, d in results)
    unbounded = indexes["hnsw"].search(gallery.probes[0], 50)
    assert results == [r for r in unbounded if r[1] <= MATE_DISTANCE]


# --- filters ---------------------------------------------------------------------------


def allowed_ids(g: Gallery, categories: set[int] | None, born_before: int | None, known: bool):
    mask = np.ones(len(g.ids), bool)
    if categories is not None:
        mask &= np.isin(g.categories, list(categories))
    if born_before is not None:
        mask &= g.dob < born_before
    if known:
        mask &= g.dob != UNKNOWN_DOB
    return set(g.ids[mask].tolist())


@pytest.mark.parametrize("kind", TIERS)
@pytest.mark.parametrize(
    "rule",
    [
        {"allowed_categories": {0, 1}},  # 70 %: searched inside the ANN structure
        {"allowed_categories": {0, 1, 2}, "born_before_days": ADULT},
        {"allowed_categories": {3}, "born_before_days": ADULT, "exclude_unknown_dob": True},
        {"allowed_categories": {2}, "born_before_days": TODAY - 365 * 75},  # very selective
    ],
    ids=["two-categories", "adults", "one-category-known-adults", "very-selective"],
)
def test_filtered_search_equals_filtered_exact_search(
    indexes: dict[str, VectorIndex], gallery: Gallery, kind: str, rule: dict
) -> None:
    vi = indexes[kind]
    allowed = allowed_ids(
        gallery,
        rule.get("allowed_categories"),
        rule.get("born_before_days"),
        rule.get("exclude_unknown_dob", False),
    )
    near_pairs = near_found = overlap = total = 0
    for probe in gallery.probes[:100]:
        approx = vi.search(probe, 20, **rule)
        exact = vi.search_exact(probe, 20, **rule)
        assert set(ids_of(approx)) <= allowed
        assert set(ids_of(exact)) <= allowed
        assert len(approx) == len(exact) == min(20, len(allowed))
        # The candidates within the decision distance are what an examiner sees.
        near = [r for r in exact if r[1] <= MATE_DISTANCE]
        near_pairs += len(near)
        near_found += sum(r in approx for r in near)
        overlap += len(set(ids_of(approx)) & set(ids_of(exact)))
        total += len(exact)
    assert near_pairs > 0
    assert near_found / near_pairs >= 0.99
    assert overlap / total >= 0.9  # beyond the mates: near-ties among strangers


@pytest.mark.parametrize("kind", TIERS)
def test_very_selective_filter_gives_exactly_the_exact_results(
    indexes: dict[str, VectorIndex], gallery: Gallery, kind: str
) -> None:
    rule = {"allowed_categories": {3}, "born_before_days": TODAY - 365 * 75}
    assert 0 < len(allowed_ids(gallery, {3}, TODAY - 365 * 75, False)) < 0.02 * N
    for probe in gallery.probes[:50]:
        assert indexes[kind].search(probe, 30, **rule) == indexes[kind].search_exact(
            probe, 30, **rule
        )


def test_broad_filter_is_large_enough_to_use_the_ann_path(gallery: Gallery) -> None:
    # Guards the test above: under 20k allowed rows the index scans them exactly.
    assert len(allowed_ids(gallery, {0, 1}, None, False)) > 20_000
    assert len(allowed_ids(gallery, {0, 1, 2}, ADULT, False)) > 20_000


def test_filter_that_allows_nothing_returns_nothing(indexes: dict[str, VectorIndex]) -> None:
    assert indexes["hnsw"].search(np.zeros(DIM), 5, allowed_categories={9}) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(TIERS)),
    categories=st.none() | st.sets(st.integers(0, 4), max_size=4),
    born_before=st.none() | st.integers(TODAY - 365 * 85, TODAY),
    known=st.booleans(),
    k=st.integers(1, 60),
    probe=st.integers(0, 199),
)
def test_filtered_results_are_allowed_and_sorted(
    indexes: dict[str, VectorIndex],
    gallery: Gallery,
    kind: str,
    categories: set[int] | None,
    born_before: int | None,
    known: bool,
    k: int,
    probe: int,
) -> None:
    results = indexes[kind].search(
        gallery.probes[probe],
        k,
        allowed_categories=categories,
        born_before_days=born_before,
        exclude_unknown_dob=known,
    )
    allowed = allowed_ids(gallery, categories, born_before, known)
    assert set(ids_of(results)) <= allowed
    assert len(results) == min(k, len(allowed))
    distances = [d for _, d in results]
    assert distances == sorted(distances)


# --- mutation and persistence ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_gallery() -> Gallery:
    return Gallery(8_000, seed=1)


SMALL_TIERS = {
    "flat": IndexSettings(),
    "hnsw": IndexSettings(exact_below=1_000, compressed_above=100_000),
    COMPRESSED: IndexSettings(exact_below=1_000),
}


@pytest.mark.parametrize("kind", SMALL_TIERS)
def test_removed_records_never_return_even_after_save_and_open(
    small_gallery: Gallery, tmp_path: Path, kind: str
) -> None:
    gallery, tier = small_gallery, SMALL_TIERS[kind]
    vi = VectorIndex(DIM, tier, tmp_path)
    vi.add(gallery.ids, gallery.vectors, gallery.categories, gallery.dob)
    assert vi.kind == kind
    probe = gallery.probes[0]
    nearest = ids_of(vi.search(probe, 5))
    assert vi.remove([nearest[0], nearest[1], 999_999_999]) == 2
    assert vi.remove([nearest[0]]) == 0
    assert not {nearest[0], nearest[1]} & set(ids_of(vi.search(probe, 50)))
    vi.save()
    reopened = VectorIndex.open(tmp_path, DIM, tier)
    assert len(reopened) == len(gallery.ids) - 2
    assert not {nearest[0], nearest[1]} & set(ids_of(reopened.search(probe, 50)))
    assert not {nearest[0], nearest[1]} & set(ids_of(reopened.search_exact(probe, 50)))
    reopened.rebuild()
    assert not {nearest[0], nearest[1]} & set(ids_of(reopened.search(probe, 50)))
    assert len(reopened) == len(gallery.ids) - 2


@pytest.mark.parametrize("kind", TIERS)
def test_save_and_open_give_identical_results(
    indexes: dict[str, VectorIndex], gallery: Gallery, kind: str
) -> None:
    vi = indexes[kind]
    vi.meta.update(last_record_id=int(gallery.ids[-1]), model_id="dlib-resnet-v1")
    vi.save()
    assert vi.directory is not None
    reopened = VectorIndex.open(vi.directory, DIM, TIERS[kind])
    assert reopened.kind == vi.kind
    assert reopened.meta == {"last_record_id": int(gallery.ids[-1]), "model_id": "dlib-resnet-v1"}
    for probe in gallery.probes[:30]:
        assert reopened.search(probe, 50) == vi.search(probe, 50)
        rule = {"allowed_categories": {0, 1}, "born_before_days": ADULT}
        assert reopened.search(probe, 10, **rule) == vi.search(probe, 10, **rule)


def test_a_second_save_replaces_the_first_and_cleans_up(tmp_path: Path) -> None:
    vi, g = small_index(tmp_path)
    vi.save()
    vi.remove(g.ids[:10])
    vi.rebuild()  # compacts into a new vector file
    vi.meta["last_deletion_seq"] = 10
    vi.save()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["attrs-2.npz", "state.json", "vectors-1.f32"]
    reopened = VectorIndex.open(tmp_path, DIM, IndexSettings())
    assert len(reopened) == len(g.ids) - 10
    assert reopened.meta == {"last_deletion_seq": 10}


def test_a_fresh_index_does_not_overwrite_a_saved_one_until_saved(tmp_path: Path) -> None:
    vi, g = small_index(tmp_path)
    vi.save()
    fresh = VectorIndex(DIM, IndexSettings(), tmp_path)
    fresh.add(g.ids[:5], g.vectors[5:10], g.categories[:5], g.dob[:5])
    assert len(VectorIndex.open(tmp_path, DIM, IndexSettings())) == len(g.ids)
    fresh.save()
    assert len(VectorIndex.open(tmp_path, DIM, IndexSettings())) == 5


def test_open_of_an_empty_directory_starts_empty(tmp_path: Path) -> None:
    vi = VectorIndex.open(tmp_path / "new", DIM, IndexSettings())
    assert len(vi) == 0
    assert vi.meta == {}
    assert vi.search(np.zeros(DIM), 5) == []


def test_open_with_another_dimension_is_refused(tmp_path: Path) -> None:
    vi, _ = small_index(tmp_path)
    vi.save()
    with pytest.raises(StorageError):
        VectorIndex.open(tmp_path, 64, IndexSettings())


def test_save_without_directory_is_refused() -> None:
    vi, _ = small_index(None)
    with pytest.raises(StorageError):
        vi.save()


@pytest.mark.parametrize("kind", ["hnsw", COMPRESSED])
def test_templates_added_after_the_build_are_found(small_gallery: Gallery, kind: str) -> None:
    gallery = small_gallery
    vi = VectorIndex(DIM, SMALL_TIERS[kind])
    vi.add(
        gallery.ids[:-100], gallery.vectors[:-100], gallery.categories[:-100], gallery.dob[:-100]
    )
    vi.add(
        gallery.ids[-100:], gallery.vectors[-100:], gallery.categories[-100:], gallery.dob[-100:]
    )
    assert vi.kind == kind
    for i in range(1, 101, 9):
        rid, distance = vi.search(gallery.vectors[-i], 1)[0]
        assert (rid, distance) == (int(gallery.ids[-i]), 0.0)


def test_deferred_rows_are_searched_exactly_until_rebuild(small_gallery: Gallery) -> None:
    gallery = small_gallery
    vi = VectorIndex(DIM, SMALL_TIERS["hnsw"])
    first = slice(0, 6_000)
    vi.add(
        gallery.ids[first], gallery.vectors[first], gallery.categories[first], gallery.dob[first]
    )
    rest = slice(6_000, None)
    vi.add(
        gallery.ids[rest],
        gallery.vectors[rest],
        gallery.categories[rest],
        gallery.dob[rest],
        defer_indexing=True,
    )
    assert vi.needs_rebuild
    target = gallery.vectors[-1]
    assert vi.search(target, 1)[0] == (int(gallery.ids[-1]), 0.0)
    vi.rebuild()
    assert not vi.needs_rebuild
    assert vi.search(target, 1)[0] == (int(gallery.ids[-1]), 0.0)


def test_growing_past_a_tier_keeps_the_kind_until_rebuild() -> None:
    g = Gallery(3_000, seed=5)
    vi = VectorIndex(DIM, IndexSettings(exact_below=2_000))
    vi.add(g.ids[:1_500], g.vectors[:1_500], g.categories[:1_500], g.dob[:1_500])
    vi.add(g.ids[1_500:], g.vectors[1_500:], g.categories[1_500:], g.dob[1_500:])
    assert vi.kind == "flat"
    assert vi.needs_rebuild
    vi.rebuild()
    assert vi.kind == "ivf-pq128x4fs"
    assert not vi.needs_rebuild


def test_a_removed_id_can_be_enrolled_again(tmp_path: Path) -> None:
    vi, g = small_index(tmp_path)
    rid = int(g.ids[10])
    vi.remove([rid])
    vi.add([rid], g.vectors[20:21], [1], [UNKNOWN_DOB])
    assert vi.search(g.vectors[20], 2)[0][1] == 0.0
    assert rid in ids_of(vi.search(g.vectors[20], 2))
    assert vi.remove([rid]) == 1
    assert rid not in ids_of(vi.search_exact(g.vectors[20], 5))


def test_forced_factory_string_chooses_the_kind() -> None:
    g = Gallery(6_000, seed=2)
    vi = VectorIndex(DIM, IndexSettings(factory="IVF64,SQ8"))
    vi.add(g.ids, g.vectors, g.categories, g.dob)
    assert vi.kind == "ivf-sq8"
    rid, distance = vi.search(g.vectors[3], 1)[0]
    assert (rid, distance) == (int(g.ids[3]), 0.0)


def test_rows_too_few_for_a_forced_kind_are_searched_exactly_until_rebuild() -> None:
    g = Gallery(1_000, seed=6)
    vi = VectorIndex(DIM, IndexSettings(factory="IVF256,SQ8"))
    vi.add(g.ids[:50], g.vectors[:50], g.categories[:50], g.dob[:50])  # 50 < 256 lists
    assert vi.needs_rebuild
    assert vi.search(g.vectors[7], 1)[0] == (int(g.ids[7]), 0.0)
    with pytest.raises(StorageError):
        vi.rebuild()
    vi.add(g.ids[50:], g.vectors[50:], g.categories[50:], g.dob[50:])
    assert vi.search(g.vectors[700], 1)[0] == (int(g.ids[700]), 0.0)


def test_compressed_index_takes_less_ram_than_hnsw(indexes: dict[str, VectorIndex]) -> None:
    assert 0 < indexes[COMPRESSED].memory_bytes() < indexes["hnsw"].memory_bytes() / 3


def test_searches_run_while_templates_are_added() -> None:
    g = Gallery(12_000, seed=4)
    vi = VectorIndex(DIM, IndexSettings(exact_below=1_000, compressed_above=100_000))
    vi.add(g.ids[:6_000], g.vectors[:6_000], g.categories[:6_000], g.dob[:6_000])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for probe in g.probes[:100]:
                vi.search(probe, 10, allowed_categories={0, 1})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for lo in range(6_000, 12_000, 500):
        part = slice(lo, lo + 500)
        vi.add(g.ids[part], g.vectors[part], g.categories[part], g.dob[part])
    for t in threads:
        t.join()
    assert not errors
    assert len(vi) == 12_000


# --- bad input -----------------------------------------------------------------------------


def bad_batches(g: Gallery) -> dict[str, tuple]:
    ids, x, cat, dob = g.ids[:3] + 10**9, g.vectors[:3].copy(), g.categories[:3], g.dob[:3]
    nan = x.copy()
    nan[1, 5] = np.nan
    return {
        "wrong-dim": (ids, x[:, :64], cat, dob),
        "nan": (ids, nan, cat, dob),
        "inf": (ids, x * np.inf, cat, dob),
        "duplicate-in-batch": (np.array([ids[0], ids[0], ids[1]]), x, cat, dob),
        "already-present": (g.ids[:3], x, cat, dob),
        "lengths": (ids, x[:2], cat, dob),
        "category-range": (ids, x, np.array([1, 2, 300]), dob),
        "float-ids": (ids.astype(float), x, cat, dob),
        "text": (ids, [["a"] * DIM] * 3, cat, dob),
    }


BAD_CASES = [
    "wrong-dim",
    "nan",
    "inf",
    "duplicate-in-batch",
    "already-present",
    "lengths",
    "category-range",
    "float-ids",
    "text",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path, case: str) -> None:
    vi, g = small_index(tmp_path)
    before = vi.search(g.probes[0], 10)
    with pytest.raises(BadInput):
        vi.add(*bad_batches(g)[case])
    assert len(vi) == len(g.ids)
    assert vi.search(g.probes[0], 10) == before
    assert vi.search_exact(g.probes[0], 10) == before


@pytest.mark.parametrize(
    "query, k",
    [(np.zeros(64), 5), (np.full(DIM, np.nan), 5), (np.zeros(DIM), 0), (np.zeros((2, DIM)), 5)],
    ids=["wrong-dim", "nan", "k-zero", "two-queries"],
)
def test_bad_query_is_refused(query: np.ndarray, k: int) -> None:
    vi, _ = small_index(None, n=300)
    with pytest.raises(BadInput):
        vi.search(query, k)
    with pytest.raises(BadInput):
        vi.search_exact(query, k)


# --- batched exact search and two-level training (bench/gallery_search.py at 30M) ------


@pytest.mark.parametrize(
    "rule",
    [{}, {"allowed_categories": {0, 1}, "born_before_days": ADULT}, {"allowed_categories": {3}}],
    ids=["all", "two-categories-adults", "one-category"],
)
def test_batched_exact_search_equals_one_by_one(
    indexes: dict[str, VectorIndex], gallery: Gallery, rule: dict
) -> None:
    vi = indexes["flat"]
    probes = gallery.probes[:40]
    unfiltered, many = vi.search_exact_many(probes, 15, [{}, rule])
    assert len(many) == len(probes)
    for probe, batched, plain in zip(probes, many, unfiltered, strict=True):
        assert batched == vi.search_exact(probe, 15, **rule)
        assert plain == vi.search_exact(probe, 15)


def test_batched_exact_search_skips_removed_rows(small_gallery: Gallery) -> None:
    vi = VectorIndex(DIM, IndexSettings())
    vi.add(small_gallery.ids, small_gallery.vectors, small_gallery.categories, small_gallery.dob)
    nearest = vi.search_exact(small_gallery.probes[0], 1)[0][0]
    vi.remove([nearest])
    [[found]] = vi.search_exact_many(small_gallery.probes[:1], 10)
    assert nearest not in ids_of(found)
    assert found == vi.search_exact(small_gallery.probes[0], 10)


def test_many_lists_are_trained_by_two_level_k_means(
    monkeypatch: pytest.MonkeyPatch, gallery: Gallery
) -> None:
    import prum.categories.face.index as index_module

    # The path a 30M gallery takes (65536 lists), scaled down to 256 lists.
    monkeypatch.setattr(index_module, "_TWO_LEVEL_ABOVE", 128)
    called = []
    real = index_module._two_level_kmeans

    def spy(xt: np.ndarray, nlist: int) -> tuple:
        called.append(nlist)
        return real(xt, nlist)

    monkeypatch.setattr(index_module, "_two_level_kmeans", spy)
    vi = VectorIndex(DIM, IndexSettings(factory="IVF256_HNSW32,PQ128x4fs", ivf_nprobe=128))
    vi.add(gallery.ids, gallery.vectors, gallery.categories, gallery.dob)
    assert vi.kind == COMPRESSED and called == [256]
    # Adds after the build go through the HNSW quantizer into the same lists.
    extra = gallery.vectors[:5] + 0.001
    new_ids = gallery.ids[-1] + 7 * np.arange(1, 6)
    vi.add(new_ids, extra, [0] * 5, [ADULT - 1] * 5)
    for rid, v in zip(new_ids, extra, strict=True):
        assert vi.search(v, 3)[0][0] == rid
    found = mates = 0
    for probe, person in zip(gallery.probes[:50], gallery.probe_person[:50], strict=True):
        exact = [r for r in vi.search_exact(probe, 10) if gallery.person_of(r[0]) == person]
        approx = set(ids_of(vi.search(probe, 10)))
        mates += len(exact)
        found += sum(rid in approx for rid, _ in exact)
    assert mates > 0 and found / mates >= 0.98


@pytest.mark.parametrize("kind", SMALL_TIERS)
@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"allowed_categories": {0, 1}, "born_before_days": ADULT},
        {"allowed_categories": {3}, "exclude_unknown_dob": True},
    ],
    ids=["all", "two-categories-adults", "small-subset"],
)
def test_cached_filters_follow_inserts_and_deletes(
    monkeypatch: pytest.MonkeyPatch, small_gallery: Gallery, kind: str, rule: dict
) -> None:
    """A search right after each insert or delete sees it, through the patched filter."""
    import prum.categories.face.index as index_module

    # Bitmaps for the broad rules, a row list for the small one (570 rows), as at 30M.
    monkeypatch.setattr(index_module, "_SUBSET_EXACT_ROWS", 600)
    g = small_gallery
    vi = VectorIndex(DIM, SMALL_TIERS[kind])
    vi.add(g.ids[:6000], g.vectors[:6000], g.categories[:6000], g.dob[:6000])
    probe = g.probes[0]
    assert vi.search(probe, 10, **rule) == vi.search_exact(probe, 10, **rule)  # cached
    for i in range(6000, 6040):  # inserts, one at a time, some outside the rule
        vi.add(g.ids[i : i + 1], g.vectors[i : i + 1], g.categories[i : i + 1], g.dob[i : i + 1])
        found = ids_of(vi.search(g.vectors[i], 10, **rule))
        assert (g.ids[i] in found) == (g.ids[i] in allowed_ids(g, **_allowed_args(rule)))
    for _ in range(20):  # deletes of the nearest allowed record
        nearest = vi.search(probe, 1, **rule)[0][0]
        vi.remove([nearest])
        assert nearest not in ids_of(vi.search(probe, 10, **rule))
        assert vi.search(probe, 10, **rule) == vi.search_exact(probe, 10, **rule)
    fresh = VectorIndex(DIM, SMALL_TIERS[kind])
    live = np.isin(g.ids[:6040], [rid for rid, _ in vi.search_exact(probe, 6040)])
    assert live.sum() == len(vi)
    fresh.add(
        g.ids[:6040][live], g.vectors[:6040][live], g.categories[:6040][live], g.dob[:6040][live]
    )
    assert vi.search_exact(probe, 30, **rule) == fresh.search_exact(probe, 30, **rule)


def _allowed_args(rule: dict) -> dict:
    return {
        "categories": rule.get("allowed_categories"),
        "born_before": rule.get("born_before_days"),
        "known": rule.get("exclude_unknown_dob", False),
    }


def test_above_large_above_the_lists_are_many_and_searched_exhaustively(
    monkeypatch: pytest.MonkeyPatch, gallery: Gallery
) -> None:
    import prum.categories.face.index as index_module

    # The 30M tier (65536 lists) scaled down: 256 lists above 20k templates.
    monkeypatch.setattr(index_module, "_LARGE_NLIST", 256)
    monkeypatch.setattr(index_module, "_TWO_LEVEL_ABOVE", 128)
    settings = IndexSettings(exact_below=1_000, large_above=20_000, ivf_large_nprobe=128)
    g = gallery
    vi = VectorIndex(DIM, settings)
    vi.add(g.ids[:10_000], g.vectors[:10_000], g.categories[:10_000], g.dob[:10_000])
    assert vi.factory == "IVF128,PQ128x4fs" and not vi.needs_rebuild
    vi.add(g.ids[10_000:], g.vectors[10_000:], g.categories[10_000:], g.dob[10_000:])
    assert vi.needs_rebuild  # past large_above with the small tier's lists
    vi.rebuild()
    assert vi.factory == "IVF256,PQ128x4fs" and not vi.needs_rebuild
    found = mates = 0
    for probe, person in zip(g.probes[:50], g.probe_person[:50], strict=True):
        exact = [r for r in vi.search_exact(probe, 10) if g.person_of(r[0]) == person]
        approx = set(ids_of(vi.search(probe, 10, allowed_categories={0, 1, 2})))
        exact = [r for r in exact if g.categories[r[0] // 7 - 1] in (0, 1, 2)]
        mates += len(exact)
        found += sum(rid in approx for rid, _ in exact)
    assert mates > 0 and found / mates >= 0.98
    # Inserts while serving: each is found by a search for it right after.
    new_ids = g.ids[-1] + 7 * np.arange(1, 101)
    rng = np.random.default_rng(5)
    for rid, probe in zip(new_ids, g.probes[:100], strict=True):
        v = probe + rng.normal(0, 0.01, DIM).astype(np.float32)
        vi.add([rid], v[None], [1], [ADULT - 400])
        assert rid in ids_of(vi.search(v, 50, allowed_categories={0, 1}, born_before_days=ADULT))


def test_rows_read_one_by_one_equal_the_mapped_rows(tmp_path: Path) -> None:
    """Re-ranking reads rows with pread; they must be the rows the mapping holds,
    including rows written through the mapping and not yet flushed."""
    from prum.categories.face.index import _Rows

    rng = np.random.default_rng(3)
    rows = _Rows(DIM, tmp_path / "vectors-0.f32")
    first = rng.normal(size=(3000, DIM)).astype(np.float32)
    rows.append(first)
    rows.flush()
    later = rng.normal(size=(1500, DIM)).astype(np.float32)
    rows.append(later)  # grows the file and re-maps it; not flushed
    positions = np.sort(rng.choice(4500, size=300, replace=False)).astype(np.int64)
    assert np.array_equal(rows.take(positions), np.vstack([first, later])[positions])
    reopened = _Rows(DIM, tmp_path / "vectors-0.f32", 4500)
    assert np.array_equal(reopened.take(positions), rows.take(positions))
    assert np.array_equal(rows.take(positions[:0]), np.empty((0, DIM), np.float32))
