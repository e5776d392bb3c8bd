"""The DNA category: parsing and the Annex checks, the Prüm match rules (against a
deliberately simple oracle), the genotype index, the random match probability and the
matcher behind the common category interface."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prum.categories.dna.frequencies import PACKAGED_TABLE, AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.index import DnaIndex, naive_search, plan
from prum.categories.dna.loci import ESS_7, ESS_12, LocusSet, canonical_locus
from prum.categories.dna.match import Kind, MatchRules, compare, random_match_probability, rmp_words
from prum.categories.dna.profile import WILDCARD, Rules, build_profile, parse_csv, parse_json
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.errors import InvalidDnaProfile, UnknownReference
from prum.federation.messages import Category, Probe
from prum.node.categories import make_matcher

LOCI = LocusSet("prum")
NO_MINIMUM = Rules(min_loci=0, min_ess7_person=0)
EVERYONE = Exposure(subjects=frozenset(SubjectCategory), min_age=None)

PERSON = {
    "D3S1358": ["15", "16"],
    "vWA": ["17", "17"],
    "D8S1179": ["13", "14"],
    "D21S11": ["29", "30"],
    "D18S51": ["14", "15"],
    "TH01": ["9.3", "9.3"],
    "FGA": ["22", "24"],
    "D1S1656": ["15", "17.3"],
    "D2S441": ["11", "14"],
    "D10S1248": ["13", "15"],
    "D12S391": ["18", "20"],
    "D22S1045": ["15", "16"],
    "Amelogenin": ["X", "Y"],
}


def profile_json(loci: dict[str, object], identified: bool = True) -> bytes:
    return json.dumps({"identified": identified, "loci": loci}).encode()


def refusal(data: dict[str, object], identified: bool = True) -> InvalidDnaProfile:
    with pytest.raises(InvalidDnaProfile) as caught:
        parse_json(profile_json(data, identified), loci=LOCI)
    return caught.value


# --- parsing and the Annex checks ---------------------------------------------------


def test_person_profile_parses_with_microvariants_homozygotes_and_amelogenin() -> None:
    profile = parse_json(profile_json(PERSON), loci=LOCI)
    assert profile.identified
    assert len(profile.fully_designated()) == 12  # amelogenin not counted
    assert profile.genotypes["TH01"] == (93, 93)
    assert profile.amelogenin == ("X", "Y")
    assert parse_json(profile.to_json(), loci=LOCI) == profile


def test_csv_and_json_give_the_same_profile() -> None:
    lines = ["locus,allele1,allele2", "identified,yes"]
    lines += [f"{name},{','.join(values)}" for name, values in PERSON.items()]
    from_csv = parse_csv("\n".join(lines).encode(), loci=LOCI)
    assert from_csv == parse_json(profile_json(PERSON), loci=LOCI)


def test_locus_names_are_normalised() -> None:
    assert canonical_locus("VWA") == "vWA"
    assert canonical_locus("penta_d") == "Penta D"
    assert canonical_locus("THO1") == "TH01"
    assert canonical_locus("D99S999") is None


def test_non_numeric_and_placeholder_values_become_wildcards() -> None:
    data = {**PERSON, "vWA": ["OL", "17"], "FGA": ["0", "22"], "D18S51": ["99", "1"]}
    profile = parse_json(profile_json(data, identified=False), loci=LOCI)
    assert profile.genotypes["vWA"] == (WILDCARD, 170)
    assert profile.genotypes["FGA"] == (WILDCARD, 220)
    assert profile.genotypes["D18S51"] == (WILDCARD, WILDCARD)
    assert "vWA" not in profile.fully_designated()
    assert any("vWA" in note for note in profile.conversions)


def test_three_alleles_at_one_locus_keep_the_first_and_a_wildcard() -> None:
    profile = parse_json(profile_json({**PERSON, "D2S441": ["14", "10", "11"]}), loci=LOCI)
    assert profile.genotypes["D2S441"] == (WILDCARD, 140)


def test_a_repeated_allele_is_not_a_third_allele() -> None:
    profile = parse_json(profile_json({**PERSON, "D2S441": ["14", "14", "10"]}), loci=LOCI)
    assert profile.genotypes["D2S441"] == (100, 140)


def test_more_than_two_alleles_at_two_loci_is_a_mixture_naming_both() -> None:
    error = refusal({**PERSON, "D2S441": ["10", "11", "14"], "FGA": ["20", "22", "24"]})
    assert "mixture" in error.message
    assert set(error.details["locus"]) == {"FGA", "D2S441"}
    assert "FGA" in error.message and "D2S441" in error.message


def test_impossible_allele_is_refused_naming_the_locus() -> None:
    for value in ("123", "12.34", "-3", "0.5"):
        error = refusal({**PERSON, "D8S1179": [value, "13"]})
        assert error.details["locus"] == "D8S1179"
        assert "D8S1179" in error.message


def test_unknown_locus_duplicate_and_bad_amelogenin_are_refused_by_name() -> None:
    assert refusal({**PERSON, "D99S1": ["1", "2"]}).details["locus"] == "D99S1"
    assert refusal({**PERSON, "Amelogenin": ["X", "Z"]}).details["locus"] == "Amelogenin"
    lines = "D3S1358,15,16\nd3s1358,15,16\n" + "\n".join(
        f"{k},{','.join(v)}" for k, v in PERSON.items()
    )
    with pytest.raises(InvalidDnaProfile) as caught:
        parse_csv(lines, loci=LOCI)
    assert caught.value.details["locus"] == "D3S1358"


def test_locus_outside_the_configured_set_is_refused() -> None:
    with pytest.raises(InvalidDnaProfile) as caught:
        parse_json(profile_json({**PERSON, "TPOX": ["8", "9"]}), loci=LocusSet("ess12"))
    assert caught.value.details["locus"] == "TPOX"


def test_fewer_than_six_fully_designated_loci_is_refused_naming_the_partial_ones() -> None:
    data = {n: PERSON[n] for n in ESS_7[:5]} | {"TH01": ["OL", "7"], "Amelogenin": ["X"]}
    error = refusal(data, identified=False)
    assert "only 5 fully designated loci" in error.message
    assert error.details["locus"] == ["TH01"]


def test_a_person_needs_six_of_the_seven_original_ess_loci() -> None:
    data = {n: v for n, v in PERSON.items() if n not in ("vWA", "FGA")}
    error = refusal(data, identified=True)
    assert error.details["locus"] == ["vWA", "FGA"]
    # the same loci are enough for a trace
    assert not parse_json(profile_json(data, identified=False), loci=LOCI).identified


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_text_never_escapes_the_error_tree(data: str | bytes) -> None:
    for parse in (parse_json, parse_csv):
        with contextlib.suppress(InvalidDnaProfile):
            parse(data, loci=LOCI)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_alleles = st.one_of(
    st.sampled_from(["9.3", "10", "0", "1", "99", "OL", "X", "Y", "", "12.34", "-1", "1e3"]),
    st.integers(-5, 120),
    st.floats(allow_nan=True, allow_infinity=True),
    _json_values,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*LOCI.loci, "Amelogenin", "vwa", "XYZ"]),
        st.lists(_alleles, max_size=5) | st.text(max_size=12) | _json_values,
        max_size=16,
    ),
    _json_values,
)
def test_arbitrary_json_profiles_never_escape_the_error_tree(
    loci: object, identified: object
) -> None:
    doc = json.dumps({"identified": identified, "loci": loci}, allow_nan=True)
    try:
        profile = parse_json(doc, loci=LOCI)
    except InvalidDnaProfile:
        return
    assert len(profile.fully_designated()) >= 6
    assert parse_json(profile.to_json(), loci=LOCI).genotypes == profile.genotypes


# --- the oracle: the rules written as plainly as possible ---------------------------


def oracle(
    probe: dict[str, tuple[str, str]], other: dict[str, tuple[str, str]], min_loci: int
) -> str | None:
    """2008/616 Annex 1.2 read literally, on allele strings ("*" is a wildcard)."""

    def same(x: str, y: str) -> bool:
        return x == "*" or y == "*" or float(x) == float(y)

    differing = 0
    matching = 0
    for locus in probe:
        if locus not in other:
            continue
        p, o = probe[locus], other[locus]
        straight = (not same(p[0], o[0])) + (not same(p[1], o[1]))
        crossed = (not same(p[0], o[1])) + (not same(p[1], o[0]))
        d = min(straight, crossed)
        differing += d
        if d == 0 and "*" not in p and "*" not in o:
            matching += 1
    if matching < min_loci:
        return None
    return {0: "match", 1: "near_match"}.get(differing)


ORACLE_LOCI = [
    "D3S1358",
    "vWA",
    "D8S1179",
    "D21S11",
    "D18S51",
    "TH01",
    "FGA",
    "D1S1656",
    "D2S441",
    "D10S1248",
]
ALPHABET = ["9.3", "10", "11", "12"]  # small: many coincidences, microvariants, homozygotes


def random_profile(rnd: random.Random) -> dict[str, tuple[str, str]]:
    return {locus: (rnd.choice(ALPHABET), rnd.choice(ALPHABET)) for locus in ORACLE_LOCI}


def mutate(profile: dict[str, tuple[str, str]], rnd: random.Random) -> dict[str, tuple[str, str]]:
    out = dict(profile)
    for _ in range(rnd.choice([0, 0, 1, 1, 2, 3])):
        locus = rnd.choice(ORACLE_LOCI)
        kind = rnd.random()
        if kind < 0.25:
            out.pop(locus, None)  # locus missing
        elif kind < 0.55 and locus in out:
            a, b = out[locus]
            out[locus] = (rnd.choice(ALPHABET), b)  # one allele changes (or not)
        elif kind < 0.75 and locus in out:
            a, b = out[locus]
            out[locus] = ("*", b) if rnd.random() < 0.8 else ("*", "*")  # wildcard
        elif locus in out:
            a, _ = out[locus]
            out[locus] = (a, a)  # dropout: reads as a homozygote
    return out


def to_row(profile: dict[str, tuple[str, str]]) -> np.ndarray:
    built = build_profile(
        [(locus, list(values)) for locus, values in profile.items()],
        identified=False,
        loci=LOCI,
        rules=NO_MINIMUM,
    )
    return built.codes(LOCI)


@pytest.mark.parametrize(("min_loci", "min_kit_rows"), [(6, 1000), (4, 1000), (6, 1), (4, 1)])
def test_index_agrees_with_the_oracle_on_generated_cases(min_loci: int, min_kit_rows: int) -> None:
    rnd = random.Random(min_loci)
    seeds = [random_profile(rnd) for _ in range(12)]
    gallery = [
        mutate(rnd.choice(seeds), rnd) if rnd.random() < 0.8 else random_profile(rnd)
        for _ in range(1500)
    ]
    probes = [mutate(rnd.choice(seeds), rnd) for _ in range(8)]
    codes = np.stack([to_row(p) for p in gallery])
    # min_kit_rows 1: every set of loci is a kit (kits, locus pairs); 1000: none is.
    index = DnaIndex.build(codes, min_kit_rows=min_kit_rows)
    assert (len(index.kit_masks) > 10) == (min_kit_rows == 1)
    assert index.mixed_pairs or min_kit_rows == 1  # all mixed: pair keys of few loci
    seen = {"match": 0, "near_match": 0, None: 0}
    for probe in probes:
        row = to_row(probe)
        hits = {
            h.row: ("match" if h.kind == Kind.MATCH else "near_match")
            for h in index.search(row, min_loci)
        }
        for i, other in enumerate(gallery):
            expected = oracle(probe, other, min_loci)
            seen[expected] += 1
            assert hits.get(i) == expected, (probe, other)
        assert sorted(hits) == sorted(naive_search(codes, row, min_loci).tolist())
    assert sum(seen.values()) >= 12_000
    assert seen["match"] > 200 and seen["near_match"] > 200


# --- rules, examples ------------------------------------------------------------------


def _pair(probe: dict[str, object], other: dict[str, object]) -> Kind:
    p = parse_json(profile_json(probe, False), loci=LOCI).codes(LOCI)
    o = parse_json(profile_json(other, False), loci=LOCI).codes(LOCI)
    return compare(p, o, LOCI, MatchRules(), AlleleFrequencies.default()).kind


def test_identical_profiles_match_and_one_allele_off_is_a_near_match() -> None:
    assert _pair(PERSON, PERSON) == Kind.MATCH
    assert _pair(PERSON, {**PERSON, "vWA": ["16", "17"]}) == Kind.NEAR_MATCH
    assert _pair(PERSON, {**PERSON, "vWA": ["16", "18"]}) == Kind.NONE
    assert _pair(PERSON, {**PERSON, "vWA": ["16", "17"], "FGA": ["22", "25"]}) == Kind.NONE


def test_wildcards_match_anything_but_do_not_count() -> None:
    assert _pair(PERSON, {**PERSON, "vWA": ["OL", "17"]}) == Kind.MATCH
    six = {n: PERSON[n] for n in list(PERSON)[:6]}
    seven = {**six, "FGA": ["OL", "OL"]}
    assert _pair(seven, six | {"FGA": ["19", "20"]}) == Kind.MATCH
    five_and_wild = {**six, "TH01": ["OL", "9.3"]}
    with pytest.raises(InvalidDnaProfile):
        _pair(five_and_wild, six)  # only 5 fully designated: not searchable


def test_too_few_common_loci_is_no_match() -> None:
    a = {n: PERSON[n] for n in list(PERSON)[:8]}
    b = {n: PERSON[n] for n in list(PERSON)[4:12]}  # 4 loci in common
    assert _pair(a, b) == Kind.NONE


def test_random_match_probability_is_the_product_of_genotype_frequencies() -> None:
    table = AlleleFrequencies.default()
    p15, p16 = table.frequency("D3S1358", 150), table.frequency("D3S1358", 160)
    p93 = table.frequency("TH01", 93)
    assert p15 and p16 and p93
    rmp = random_match_probability([("D3S1358", 150, 160), ("TH01", 93, 93)], table, theta=0.01)
    assert rmp == pytest.approx(2 * p15 * p16 * (p93**2 + p93 * (1 - p93) * 0.01))
    assert random_match_probability([("FES", 110, 110)], table, theta=0.01) == 1.0  # not in table
    assert rmp_words(1 / 3.2e9) == "random match probability about 1 in 3.2 billion"


def test_full_ess12_profile_has_a_tiny_random_match_probability() -> None:
    p = parse_json(profile_json(PERSON), loci=LOCI).codes(LOCI)
    result = compare(p, p, LOCI, MatchRules(), AlleleFrequencies.default())
    assert len(result.matching_loci) == 12 and result.mismatches == ()
    assert 1e-20 < result.random_match_probability < 1e-10


# --- index, generator ---------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> tuple[Generator, np.ndarray]:
    generator = Generator(AlleleFrequencies.default(), LOCI)
    return generator, generator.database(20_000, seed=3, trace_share=0.005).codes


def test_kit_index_equals_the_naive_scan_on_a_generated_database(
    generated: tuple[Generator, np.ndarray],
) -> None:
    generator, codes = generated
    index = DnaIndex.build(codes, min_kit_rows=500)
    assert index.kit_rows[0] > 0 and index.kit_rows[1] > 10_000  # a kit and a mixed part
    rng = np.random.default_rng(4)
    found = 0
    for i in range(60):
        source = codes[int(rng.integers(len(codes)))]
        probe = source if i % 3 else generator.trace(source, rng, keep=int(rng.integers(6, 13)))
        got = sorted(h.row for h in index.search(probe, 6))
        assert got == sorted(naive_search(codes, probe, 6).tolist())
        found += len(got)
    assert found >= 40


def test_plan_counts_the_rarest_lists_and_demands_what_a_hit_must_share() -> None:
    lengths = np.array([10, 20, 5000, 9000, 9000], dtype=np.int64)
    j, t = plan(lengths, 4, 10_000)  # a hit is in 4 of 5: in 1 of the 2 shortest
    assert (j, t) == (j, j - 1) and j <= 3
    assert plan(np.array([0, 0, 9000], dtype=np.int64), 3, 10_000) == (1, 1)


def test_traces_of_stored_profiles_find_their_source(
    generated: tuple[Generator, np.ndarray],
) -> None:
    generator, codes = generated
    index = DnaIndex.build(codes)
    rng = np.random.default_rng(9)
    for source in rng.choice(len(codes), 30, replace=False):
        trace = generator.trace(codes[source], rng, keep=10)
        assert int(source) in {h.row for h in index.search(trace, 6)}


def test_children_share_an_allele_with_each_parent_at_every_locus(
    generated: tuple[Generator, np.ndarray],
) -> None:
    generator, codes = generated
    rng = np.random.default_rng(1)
    child = generator.child(codes[0], codes[1], rng)
    for i in np.flatnonzero(child[:, 0]):
        assert set(child[i]) & set(codes[0, i]) and set(child[i]) & set(codes[1, i])


def test_index_persists_deletes_and_takes_additions(
    tmp_path: Path, generated: tuple[Generator, np.ndarray]
) -> None:
    _generator, codes = generated
    index = DnaIndex.build(codes[:1000])
    probe = codes[10]
    index.add(5000, codes[10])  # a duplicate enrolled later: in the delta
    assert {h.id for h in index.search(probe, 6)} >= {11, 5000}
    assert index.remove(11)
    index.save(tmp_path / "ix", deletion_seq=1)
    loaded, meta = DnaIndex.load(tmp_path / "ix")
    assert meta == {"deletion_seq": 1}
    assert {h.id for h in loaded.search(probe, 6)} == {h.id for h in index.search(probe, 6)}
    assert 11 not in {h.id for h in loaded.search(probe, 6)}
    assert len(loaded) == 1000


# --- the matcher behind the category interface -----------------------------------------


def _probe(data: dict[str, object], identified: bool = False) -> Probe:
    return Probe(format="dna_profile", data=base64.b64encode(profile_json(data, identified)))


def test_matcher_through_the_category_interface(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, country="AT")
    matcher = make_matcher(Category.DNA, settings)
    try:
        ref = matcher.enroll(
            profile_json(PERSON), provenance="lab 7", category=SubjectCategory.CONVICTED
        )
        near = matcher.enroll(profile_json({**PERSON, "vWA": ["16", "17"]}), provenance="lab 8")
        matcher.enroll(
            profile_json({**PERSON, "vWA": ["14", "15"], "FGA": ["19", "20"]}), provenance="x"
        )
        assert ref.startswith("AT-D-") and len(ref) == 5 + 24
        result = matcher.search(_probe(PERSON), max_candidates=10, exposure=EVERYONE)
        assert result.gallery_size == 3
        assert [c.reference for c in result.candidates] == [ref, near]
        best, second = result.candidates
        assert best.score == 1.0 and best.distance == 0 and best.image is None
        assert best.false_match_rate is not None and best.false_match_rate < 1e-10
        assert best.false_match_words.startswith("match at 12 loci; random match probability")
        assert (
            second.distance == 1
            and "one allele differs at vWA (17,17 / 16,17)" in second.false_match_words
        )
        assert best.provenance == "identified person; lab 7"
        assert best.details is not None and best.details.kind == "dna"
        assert best.details.match == "match" and best.details.identified
        assert len(best.details.matching_loci) == 12 and best.details.mismatched_loci == []
        assert best.details.random_match_probability == best.false_match_rate
        assert best.details.profile["TH01"] == ["9.3"] * 2
        assert best.details.profile["Amelogenin"] == ["X", "Y"]
        assert second.details is not None and second.details.match == "near_match"
        assert second.details.mismatched_loci == ["vWA"]
        assert second.details.profile["vWA"] == ["16", "17"]  # the stored profile, not ours
        assert "vWA" not in second.details.matching_loci
        convicted_only = Exposure(subjects=frozenset({SubjectCategory.CONVICTED}), min_age=None)
        only = matcher.search(_probe(PERSON), max_candidates=10, exposure=convicted_only)
        assert [c.reference for c in only.candidates] == [ref]
        matcher.delete(ref, reason="erasure")
        with pytest.raises(UnknownReference):
            matcher.delete(ref, reason="again")
        assert matcher.describe()["records"] == 2
    finally:
        matcher.close()
    reopened = make_matcher(Category.DNA, settings)  # the index is reloaded, not rebuilt
    try:
        result = reopened.search(_probe(PERSON), max_candidates=10, exposure=EVERYONE)
        assert [c.reference for c in result.candidates] == [near]
    finally:
        reopened.close()


def test_matcher_catches_up_with_the_store_after_a_lost_index(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, country="AT")
    matcher = make_matcher(Category.DNA, settings)
    ref = matcher.enroll(profile_json(PERSON), provenance="lab")
    matcher.store.close()  # a crash: the index was never saved
    reopened = make_matcher(Category.DNA, settings)
    try:
        result = reopened.search(_probe(PERSON), max_candidates=5, exposure=EVERYONE)
        assert [c.reference for c in result.candidates] == [ref]
    finally:
        reopened.close()


def test_matcher_refuses_wrong_probes_and_bad_records(tmp_path: Path) -> None:
    matcher = make_matcher(Category.DNA, Settings(data_dir=tmp_path))
    try:
        with pytest.raises(InvalidDnaProfile):
            matcher.search(
                Probe(data=base64.b64encode(b"\xff\xd8")), max_candidates=5, exposure=EVERYONE
            )
        with pytest.raises(InvalidDnaProfile):
            matcher.search(_probe({"vWA": ["1", "2"]}), max_candidates=5, exposure=EVERYONE)
        future = dt.date.today() + dt.timedelta(days=2)
        with pytest.raises(Exception, match="date of birth"):
            matcher.enroll(profile_json(PERSON), provenance="x", date_of_birth=future)
        assert matcher.describe()["records"] == 0
    finally:
        matcher.close()


# --- the real allele-frequency table -----------------------------------------------------


def test_the_packaged_european_table_holds_the_ess12_loci() -> None:
    table = AlleleFrequencies.default()
    assert table.source == str(PACKAGED_TABLE)
    assert set(ESS_12) <= set(table.loci())
    for locus in ESS_12:
        assert sum(table.table[locus].values()) == pytest.approx(1.0)
    generator = Generator(table, LOCI)
    assert len(generator.generated) >= 20
    row = generator.population(1, np.random.default_rng(0))[0]
    assert len(profile_of(row, LOCI, identified=True).fully_designated()) >= 12


# --- storage: own Alembic chain beside the face gallery, SQLite and PostgreSQL --------


def test_dna_tables_have_their_own_alembic_chain_beside_the_face_gallery(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from prum.categories.dna.store import DnaStore
    from prum.categories.face.store import FaceStore

    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    face, dna = FaceStore(url), DnaStore(url)
    DnaStore(url).close()  # migrating again changes nothing
    tables = set(inspect(dna.engine).get_table_names())
    assert {"alembic_version", "alembic_version_dna", "dna_records", "face_records"} <= tables
    face.close()
    dna.close()


@pytest.mark.postgres
def test_matcher_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(data_dir=tmp_path, country="DE", database_url=postgres_url)
    matcher = make_matcher(Category.DNA, settings)
    try:
        ref = matcher.enroll(profile_json(PERSON), provenance="lab")
        result = matcher.search(_probe(PERSON), max_candidates=5, exposure=EVERYONE)
        assert [c.reference for c in result.candidates] == [ref]
        matcher.delete(ref, reason="erasure")
        assert matcher.search(_probe(PERSON), max_candidates=5, exposure=EVERYONE).candidates == []
    finally:
        matcher.close()
