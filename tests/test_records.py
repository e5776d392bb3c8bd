"""Police records (EPRIS-like): normalisation, federation key, pseudonymised queries,
matching under the corruption model, the matcher behind the category interface,
core data, key rotation, and both storage back ends."""

from __future__ import annotations

import contextlib
import json
import random
import stat
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from prum.categories.interface import Exposure, SubjectCategory
from prum.categories.records.config import RecordsSettings
from prum.categories.records.encode import Encoding, encode_person, make_query
from prum.categories.records.evaluation import evaluate, labelled_queries
from prum.categories.records.index import RecordsIndex
from prum.categories.records.keys import FederationKey, create_key_file, load_key_file, new_key
from prum.categories.records.matcher import RecordsMatcher
from prum.categories.records.normalise import name_skeletons, phonetic, to_latin
from prum.categories.records.person import BirthDate, parse_person, person_from_dict
from prum.categories.records.synthetic import PersonGenerator, corrupt, transliterate
from prum.config import Settings
from prum.errors import (
    BadInput,
    InvalidMessage,
    InvalidPerson,
    InvalidRecordsKey,
    RecordsKeyMismatch,
    UnknownReference,
)
from prum.federation.messages import Category, Probe, RecordsHit, RecordsQuery
from prum.node.categories import make_matcher

EVERYONE = Exposure(subjects=frozenset(SubjectCategory), min_age=None)
KEY = FederationKey("test-1", bytes(range(32)))

IVANOV = {
    "surnames": ["Иванов"],
    "first_names": ["Дмитрий", "Сергеевич"],
    "aliases": ["Dima Petrov"],
    "date_of_birth": "1980-05-17",
    "place_of_birth": "Москва",
    "country_of_birth": "RU",
    "nationalities": ["RU"],
    "gender": "M",
}


def person(**changes: object) -> bytes:
    return json.dumps({**IVANOV, **changes}, ensure_ascii=False).encode()


def query(**changes: object) -> RecordsQuery:
    return make_query(parse_person(person(**changes)), KEY)


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        ["Иванов", "Ivanov", "Iwanow", "Ivanoff", "IVANOV"],
        ["Щербаков", "Shcherbakov", "Szczerbakow", "Schtscherbakow"],
        ["Юлия", "Yuliya", "Julija", "Iouliya", "Yulia"],
        ["Παπαδόπουλος", "Papadopoulos", "PAPADOPOULOS"],
        ["Müller", "Mueller", "Muller", "MÜLLER"],
        ["Ксения", "Xenia", "Ksenia"],
        ["Цветкова", "Tsvetkova", "Tzvetkova"],
    ],
)
def test_transliteration_variants_fold_to_one_skeleton(variants: list[str]) -> None:
    assert len({tuple(name_skeletons(v)) for v in variants}) == 1


def test_case_punctuation_diacritics_and_particles_do_not_matter() -> None:
    assert name_skeletons("  García-LÓPEZ ") == name_skeletons("garcia lopez")
    assert name_skeletons("van der Berg") == name_skeletons("Berg")
    assert to_latin("Łukasz Wąsowski") == "lukasz wasowski"


def test_phonetic_code_is_four_characters_and_ignores_vowels() -> None:
    assert phonetic("ivanov") == "i151"
    assert phonetic("ivanav") == phonetic("ivanov")
    assert phonetic("li") == "l000"


# --- persons ------------------------------------------------------------------------------


def test_partial_dates_of_birth_are_kept_partial() -> None:
    assert BirthDate.parse("1980") == BirthDate(1980)
    assert BirthDate.parse("1980-05") == BirthDate(1980, 5)
    assert BirthDate.parse("1980-05-17").complete() is not None
    assert BirthDate.parse(None).iso() is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"surnames": []}, "surname"),
        ({"date_of_birth": "1980-02-30"}, "day is out of range"),
        ({"date_of_birth": "2999"}, "impossible"),
        ({"date_of_birth": "17.05.1980"}, "YYYY"),
        ({"gender": "male"}, "gender"),
        ({"nationalities": ["Russia"]}, "country code"),
        ({"shoe_size": 44}, "unknown person field"),
    ],
)
def test_bad_persons_are_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidPerson, match=reason):
        parse_person(person(**change))


def test_non_json_person_is_refused() -> None:
    with pytest.raises(InvalidPerson):
        parse_person(b"\xff not json")


_FIELDS = ["surnames", "first_names", "aliases", "date_of_birth", "place_of_birth",
           "country_of_birth", "nationalities", "gender"]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=20,
)


@hypothesis.settings(max_examples=300, deadline=None)
@given(_JSON)
def test_arbitrary_json_persons_never_escape_the_error_tree(data: object) -> None:
    with contextlib.suppress(InvalidPerson):  # anything else escaping is a bug
        make_query(person_from_dict(data), KEY)


def test_alias_strings_take_the_comma_or_the_last_word_as_surname() -> None:
    p = person_from_dict({**IVANOV, "aliases": ["Petrov, Ivan Ilyich", "Dima Petrov"]})
    assert p.aliases[0].surnames == ("Petrov",) and p.aliases[0].first_names == ("Ivan", "Ilyich")
    assert p.aliases[1].surnames == ("Petrov",) and p.aliases[1].first_names == ("Dima",)


# --- the federation key -------------------------------------------------------------------


def test_key_file_round_trip_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "records.key"
    key = create_key_file(path, "2026-1")
    assert load_key_file(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.secret.hex() not in repr(key)
    with pytest.raises(InvalidRecordsKey, match="never overwritten"):
        create_key_file(path, "2026-2")


@pytest.mark.parametrize(
    "content", ["", "{}", '{"key_id": "a", "secret": "zz"}', '{"key_id": "a", "secret": "00"}']
)
def test_malformed_key_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(InvalidRecordsKey):
        load_key_file(path)
    with pytest.raises(InvalidRecordsKey, match="does not exist"):
        load_key_file(tmp_path / "absent.json")


# --- the query carries no clear text ------------------------------------------------------


def test_query_carries_no_clear_text_and_depends_on_the_key() -> None:
    q = query()
    wire = Probe(format="records_query", records=q).model_dump_json().lower()
    for clear in ["иванов", "ivanov", "ivan", "dmitri", "1980", "moskva", "москва", "petrov"]:
        assert clear not in wire
    other = make_query(parse_person(person()), new_key("other"))
    assert not set(q.blocking_keys) & set(other.blocking_keys)
    assert q.name_filter != other.name_filter


def test_query_survives_the_wire_and_hit_fields_are_a_closed_list() -> None:
    q = query()
    assert RecordsQuery.model_validate_json(q.model_dump_json()) == q
    with pytest.raises(ValidationError):
        RecordsHit(quality=0.9, quality_words="x", matched_on=["Ivanov"])  # type: ignore[list-item]


def test_a_query_with_a_foreign_filter_size_is_refused() -> None:
    q = query().model_copy(update={"name_filter": bytes(64)})
    with pytest.raises(InvalidMessage, match="64 bytes"):
        Encoding.from_query(q)


def test_encoding_round_trips_through_store_json() -> None:
    for encoding in encode_person(parse_person(person()), KEY):
        assert Encoding.from_json(encoding.to_json()) == encoding


# --- matching -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowd() -> RecordsIndex:
    """Ivanov (record 1) among 2,000 synthetic people."""
    index = RecordsIndex(KEY.key_id)
    index.add(1, encode_person(parse_person(person()), KEY))
    people = PersonGenerator(seed=3).people(2000)
    for i, p in enumerate(people, start=2):
        index.add(i, encode_person(p, KEY))
    index.compact()
    return index


def _top(index: RecordsIndex, q: RecordsQuery, threshold: float = 0.6) -> list[int]:
    return [h.record_id for h in index.search(Encoding.from_query(q), threshold=threshold, limit=5)]


@pytest.mark.parametrize(
    ("what", "changes"),
    [
        ("latin, german scheme", {"surnames": ["Iwanow"], "first_names": ["Dmitrij"]}),
        ("french scheme", {"surnames": ["Ivanoff"], "first_names": ["Dmitri", "Sergueievitch"]}),
        ("swapped order", {"surnames": ["Dmitry"], "first_names": ["Ivanov"]}),
        ("missing middle name", {"first_names": ["Dmitriy"]}),
        ("typo", {"surnames": ["Ivonov"]}),
        ("partial date", {"date_of_birth": "1980"}),
        ("year off by one", {"date_of_birth": "1981-05-17"}),
        ("alias", {"surnames": ["Petrov"], "first_names": ["Dima"]}),
        ("upper case, no attributes", {"surnames": ["IVANOV"], "place_of_birth": None,
                                       "country_of_birth": None, "nationalities": []}),
    ],
)  # fmt: skip
def test_variants_of_a_stored_person_find_him(
    crowd: RecordsIndex, what: str, changes: dict[str, object]
) -> None:
    index = crowd
    assert _top(index, query(**changes))[:1] == [1], what


def test_a_day_month_swap_is_reported_as_such(crowd: RecordsIndex) -> None:
    index = crowd
    stored = {**IVANOV, "date_of_birth": "1980-05-09"}
    index.add(99_999, encode_person(person_from_dict(stored), KEY))
    q = make_query(person_from_dict({**stored, "date_of_birth": "1980-09-05"}), KEY)
    hit = next(h for h in index.search(Encoding.from_query(q), threshold=0, limit=5)
               if h.record_id == 99_999)  # fmt: skip
    assert "day_and_month_swapped" in hit.matched_on and "day_and_month" not in hit.matched_on
    index.remove(99_999)


@pytest.mark.parametrize(
    ("what", "changes"),
    [
        ("another first name", {"first_names": ["Nikolai"], "aliases": []}),
        ("another date", {"date_of_birth": "1962-11-03", "place_of_birth": None}),
        ("another person", {"surnames": ["Schmidt"], "first_names": ["Anna"], "gender": "F"}),
    ],
)
def test_other_people_are_not_found(
    crowd: RecordsIndex, what: str, changes: dict[str, object]
) -> None:
    index = crowd
    assert 1 not in _top(index, query(**changes)), what


def test_key_mismatch_is_refused(crowd: RecordsIndex) -> None:
    index = crowd
    foreign = make_query(parse_person(person()), new_key("foreign"))
    with pytest.raises(RecordsKeyMismatch):
        index.search(Encoding.from_query(foreign), threshold=0.5, limit=5)


def test_blocking_finds_what_scoring_every_record_finds(
    crowd: RecordsIndex,
) -> None:
    index = crowd
    rng = random.Random(4)
    for p in PersonGenerator(seed=3).people(40):
        e = Encoding.from_query(make_query(corrupt(p, rng).person, KEY))
        fast = index.search(e, threshold=0.6, limit=100)
        naive = index.search_all(e, threshold=0.6, limit=100)
        assert naive and fast == naive


def test_index_finds_sorted_fresh_and_pending_keys_alike_and_forgets_the_deleted() -> None:
    people = PersonGenerator(seed=8).people(60)
    index = RecordsIndex(KEY.key_id)
    index.add_many([(i, encode_person(p, KEY)) for i, p in enumerate(people[:25], start=1)])
    index.compact()  # sorted arrays
    for i, p in enumerate(people[25:40], start=26):
        index.add(i, encode_person(p, KEY))  # the dictionary of single enrolments
    index.add_many([(i, encode_person(p, KEY)) for i, p in enumerate(people[40:], start=41)])
    assert index.pending and index.fresh
    for i in (3, 30, 50):
        q = Encoding.from_query(make_query(people[i - 1], KEY))
        assert index.search(q, threshold=0.9, limit=3)[0].record_id == i
        index.remove(i)
        assert i not in [h.record_id for h in index.search(q, threshold=0.0, limit=50)]
    index.compact()
    assert not index.pending and not index.fresh
    q = Encoding.from_query(make_query(people[44], KEY))
    assert index.search(q, threshold=0.9, limit=3)[0].record_id == 45
    assert len(index) == 57


def test_precision_and_recall_on_a_small_labelled_set() -> None:
    people = PersonGenerator(seed=12).people(3000)
    index = RecordsIndex(KEY.key_id)
    for i, p in enumerate(people, start=1):
        index.add(i, encode_person(p, KEY))
    index.compact()
    queries = labelled_queries(people, mated=300, unmated=150, seed=13)
    result = evaluate(index, KEY, queries, [RecordsSettings().threshold])[0]
    assert result.recall >= 0.93
    assert result.precision >= 0.97


# --- synthetic people and the corruption model --------------------------------------------


def test_generator_is_deterministic_and_covers_the_scripts() -> None:
    a, b = PersonGenerator(seed=5).people(400), PersonGenerator(seed=5).people(400)
    assert a == b
    scripts = "".join(p.name.surnames[0] for p in a)
    assert any("\u0400" <= c <= "\u04ff" for c in scripts)  # Cyrillic
    assert any("\u0370" <= c <= "\u03ff" for c in scripts)  # Greek
    assert any(c in "äöüéèçłśžřőăş" for c in scripts.lower())  # Latin diacritics


def test_corruptions_are_labelled_and_applied() -> None:
    rng = random.Random(1)
    seen: set[str] = set()
    for p in PersonGenerator(seed=6).people(300):
        v = corrupt(p, rng)
        assert 1 <= len(v.corruptions) <= 2
        seen.update(v.corruptions)
        if v.corruptions == ("year_off_by_one",):
            assert v.person.born.year is not None and p.born.year is not None
            assert abs(v.person.born.year - p.born.year) == 1
    assert {"transliteration", "typo", "swapped_order", "partial_date"} <= seen


def test_transliteration_schemes_differ() -> None:
    spellings = {transliterate("Щербаков", s) for s in ("english", "german", "polish")}
    assert spellings == {"Shcherbakov", "Schtscherbakow", "Szczerbakow"}


# --- the matcher behind the category interface --------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    create_key_file(tmp_path / "records_key.json", "fed-2026")
    return Settings(data_dir=tmp_path, country="AT")


def _probe(q: RecordsQuery) -> Probe:
    return Probe(format="records_query", records=q)


def test_matcher_through_the_category_interface(settings: Settings) -> None:
    matcher = make_matcher(Category.RECORDS, settings)
    assert isinstance(matcher, RecordsMatcher)
    key = matcher.key
    try:
        ref = matcher.enroll(
            person(), provenance="BKA", category=SubjectCategory.CONVICTED, offence="fraud"
        )
        other = matcher.enroll(person(first_names=["Nikolai"], aliases=[], date_of_birth="1970"))
        assert ref.startswith("AT-R-") and len(ref) == 5 + 24
        q = make_query(parse_person(person(surnames=["Iwanow"], first_names=["Dmitrij"])), key)
        result = matcher.search(_probe(q), max_candidates=10, exposure=EVERYONE)
        assert result.gallery_size == 2
        assert [c.reference for c in result.candidates] == [ref]
        best = result.candidates[0]
        assert best.details is not None and best.details.kind == "records"
        assert isinstance(best.details, RecordsHit)
        assert best.score == best.details.quality and best.distance == pytest.approx(1 - best.score)
        assert best.false_match_rate is None and best.image is None
        assert {"day_and_month", "year_of_birth", "gender"} <= set(best.details.matched_on)
        assert best.provenance == "convicted; BKA"
        assert "ivanov" not in best.model_dump_json().lower()
        suspects_only = Exposure(subjects=frozenset({SubjectCategory.SUSPECT}), min_age=None)
        assert matcher.search(_probe(q), max_candidates=10, exposure=suspects_only).candidates == []
        matcher.delete(ref, reason="erasure")
        with pytest.raises(UnknownReference):
            matcher.delete(ref, reason="again")
        assert matcher.search(_probe(q), max_candidates=10, exposure=EVERYONE).candidates == []
        assert matcher.describe()["records"] == 1
    finally:
        matcher.close()
    reopened = make_matcher(Category.RECORDS, settings)  # the index is rebuilt from the store
    try:
        q = make_query(parse_person(person(first_names=["Nikolai"], date_of_birth="1970")), key)
        found = reopened.search(_probe(q), max_candidates=10, exposure=EVERYONE)
        assert [c.reference for c in found.candidates] == [other]
    finally:
        reopened.close()


def test_core_data_comes_from_the_clear_record(settings: Settings) -> None:
    matcher = RecordsMatcher(settings)
    try:
        ref = matcher.enroll(
            person(), offence="armed robbery", case_number="K-77", responsible_authority="MVD"
        )
        core = matcher.core_data(ref)
        assert core.surnames == ["Иванов"] and core.first_names == ["Дмитрий", "Сергеевич"]
        assert core.aliases == ["Petrov, Dima"]
        assert core.date_of_birth is not None and core.date_of_birth.isoformat() == "1980-05-17"
        assert core.place_of_birth == "Москва" and core.nationalities == ["RU"]
        assert core.gender == "M" and core.offence == "armed robbery"
        assert core.case_number == "K-77" and core.responsible_authority == "MVD"
        partial = matcher.enroll(person(date_of_birth="1980-05"))
        assert matcher.core_data(partial).date_of_birth is None
        with pytest.raises(UnknownReference):
            matcher.core_data("AT-R-000000000000000000000000")
    finally:
        matcher.close()


def test_minimum_age_uses_the_youngest_possible_age(settings: Settings) -> None:
    matcher = RecordsMatcher(settings)
    try:
        matcher.enroll(person(date_of_birth="2015"))
        adults = Exposure(subjects=frozenset(SubjectCategory), min_age=18)
        q = make_query(parse_person(person(date_of_birth="2015")), matcher.key)
        assert matcher.search(_probe(q), max_candidates=5, exposure=adults).candidates == []
        assert len(matcher.search(_probe(q), max_candidates=5, exposure=EVERYONE).candidates) == 1
    finally:
        matcher.close()


def test_matcher_refuses_wrong_probes_records_and_missing_keys(
    settings: Settings, tmp_path: Path
) -> None:
    matcher = RecordsMatcher(settings)
    try:
        with pytest.raises(BadInput):
            matcher.search(Probe(data=b"aGVsbG8="), max_candidates=5, exposure=EVERYONE)
        with pytest.raises(InvalidPerson):
            matcher.enroll(b'{"first_names": ["Anna"]}')
        with pytest.raises(BadInput, match="unknown police-record field"):
            matcher.enroll(person(), colour="blue")
        foreign = make_query(parse_person(person()), new_key("foreign"))
        with pytest.raises(RecordsKeyMismatch):
            matcher.search(_probe(foreign), max_candidates=5, exposure=EVERYONE)
        assert matcher.describe()["records"] == 0
    finally:
        matcher.close()
    with pytest.raises(InvalidRecordsKey):
        RecordsMatcher(Settings(data_dir=tmp_path / "elsewhere"))


def test_a_known_source_key_is_not_enrolled_twice(settings: Settings) -> None:
    matcher = RecordsMatcher(settings)
    try:
        first = matcher.enroll(person(), source_key="register/17")
        assert matcher.enroll(person(), source_key="register/17") == first
        assert matcher.describe()["records"] == 1
    finally:
        matcher.close()


def test_key_rotation_reencodes_from_the_clear_records(settings: Settings) -> None:
    matcher = RecordsMatcher(settings)
    try:
        ref = matcher.enroll(person())
        old = matcher.key
        fresh = new_key("fed-2027")
        matcher.rotate_key(fresh)
        assert matcher.store.key_ids() == {"fed-2027": 2}  # the name and the alias
        with pytest.raises(RecordsKeyMismatch):
            matcher.search(_probe(make_query(parse_person(person()), old)), max_candidates=5,
                           exposure=EVERYONE)  # fmt: skip
        q = make_query(parse_person(person()), fresh)
        found = matcher.search(_probe(q), max_candidates=5, exposure=EVERYONE)
        assert [c.reference for c in found.candidates] == [ref]
    finally:
        matcher.close()


def test_records_tables_have_their_own_alembic_chain(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from prum.categories.dna.store import DnaStore
    from prum.categories.records.store import RecordsStore

    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    dna, records = DnaStore(url), RecordsStore(url)
    RecordsStore(url).close()  # migrating again changes nothing
    tables = set(inspect(records.engine).get_table_names())
    assert {"alembic_version_dna", "alembic_version_records", "records_persons"} <= tables
    assert {"records_encodings", "records_deletions", "dna_records"} <= tables
    dna.close()
    records.close()


@pytest.mark.postgres
def test_matcher_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    create_key_file(tmp_path / "records_key.json", "fed-pg")
    settings = Settings(data_dir=tmp_path, country="DE", database_url=postgres_url)
    matcher = RecordsMatcher(settings)
    try:
        ref = matcher.enroll(person(), case_number="PG-1")
        q = make_query(parse_person(person(first_names=["Dmitri"])), matcher.key)
        found = matcher.search(_probe(q), max_candidates=5, exposure=EVERYONE)
        assert [c.reference for c in found.candidates] == [ref]
        assert matcher.core_data(ref).case_number == "PG-1"
        matcher.delete(ref, reason="erasure")
        assert matcher.search(_probe(q), max_candidates=5, exposure=EVERYONE).candidates == []
    finally:
        matcher.close()
    reopened = RecordsMatcher(settings)
    try:
        assert reopened.describe()["records"] == 0
    finally:
        reopened.close()
