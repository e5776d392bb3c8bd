"""DNA profiles in ANSI/NIST-ITL Type-18 records; import and export of reference data."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from prum.categories.dna.formats import parse_profile
from prum.categories.dna.loci import LocusSet
from prum.categories.dna.nist import (
    ReferenceData,
    dump_reference,
    export_reference,
    load_reference,
    read_profiles,
    read_transactions,
    write_transaction,
)
from prum.categories.dna.profile import WILDCARD, Profile, parse_json
from prum.config import Settings
from prum.errors import (
    InvalidDnaProfile,
    MalformedNistRecord,
    PrumError,
    UnknownRecordType,
)
from prum.federation.messages import Category
from prum.node.categories import make_matcher

LOCI = LocusSet("prum")

PERSON = {
    "D3S1358": ["15", "16"],
    "vWA": ["17", "17"],
    "D8S1179": ["13", "14"],
    "D21S11": ["29", "30.2"],
    "D18S51": ["14", "15"],
    "TH01": ["9.3", "9.3"],
    "FGA": ["22", "24"],
    "D1S1656": ["15", "17.3"],
    "D12S391": ["18", "20"],
    "Amelogenin": ["X", "Y"],
}
# A partial stain: a wildcard at TH01 ("OL"), a microvariant, no amelogenin.
TRACE = {
    "D3S1358": ["15", "16"],
    "vWA": ["17", "18"],
    "D8S1179": ["13", "14"],
    "D21S11": ["29", "30.2"],
    "D18S51": ["14", "15"],
    "TH01": ["9.3", "OL"],
    "FGA": ["22", "24"],
}


def profile(loci: dict[str, list[str]], identified: bool) -> Profile:
    return parse_json(json.dumps({"identified": identified, "loci": loci}), loci=LOCI)


def same(a: Profile, b: Profile) -> bool:
    return (a.genotypes, a.identified, a.amelogenin) == (b.genotypes, b.identified, b.amelogenin)


def test_json_to_type18_and_back_gives_the_same_profile() -> None:
    person = profile(PERSON, True)
    data = write_transaction([ReferenceData(None, person)])
    assert data.startswith(b"1.001:") and b"18.016:" in data
    (read,) = read_profiles(data, loci=LOCI)
    assert same(read, person)
    # parse_profile (and so DnaMatcher.enroll) recognises a transaction.
    assert same(parse_profile(data, loci=LOCI), person)


def test_a_transaction_with_a_trace_and_a_person() -> None:
    person, trace = profile(PERSON, True), profile(TRACE, False)
    data = write_transaction([ReferenceData("AT-D-1", trace), ReferenceData("AT-D-2", person)])
    read = read_transactions(data, loci=LOCI)
    assert [r.reference for r in read] == ["AT-D-1", "AT-D-2"]
    assert [r.profile.identified for r in read] == [False, True]
    assert same(read[0].profile, trace) and same(read[1].profile, person)
    # Wildcards and microvariants survive.
    assert read[0].profile.genotypes["TH01"] == (WILDCARD, 93)
    assert read[0].profile.genotypes["D21S11"] == (290, 302)
    assert read[1].profile.genotypes["D1S1656"] == (150, 173)
    with pytest.raises(InvalidDnaProfile, match="holds 2 DNA profiles"):
        parse_profile(data, loci=LOCI)


def _with_len(tag: str, body: str) -> bytes:
    """A record whose LEN field tells its true length in bytes."""
    length = len(tag) + len(body)
    while len(f"{tag}{length}{body}".encode()) != length:
        length = len(f"{tag}{length}{body}".encode())
    return f"{tag}{length}{body}".encode()


def _type18(str_field: str, sdi: str = "1", idc: int = 1) -> bytes:
    """A hand-built Type-18 record (LEN computed) with the given 18.016 text."""
    body = f"\x1d18.002:{idc}\x1d18.004:XX\x1d18.006:{sdi}\x1d18.016:{str_field}\x1c"
    return _with_len("18.001:", body)


def _transaction(*records: bytes, types: tuple[int, ...] | None = None) -> bytes:
    types = types or tuple(18 for _ in records)
    cnt = "\x1e".join([f"1\x1f{len(records)}", *(f"{t}\x1f{i}" for i, t in enumerate(types, 1))])
    body = f"\x1d1.002:0502\x1d1.003:{cnt}\x1d1.004:DNA\x1d1.005:20260101\x1c"
    return _with_len("1.001:", body) + b"".join(records)


def _str(loci: dict[str, list[str]]) -> str:
    return "\x1e".join("\x1f".join(["0", name, *values]) for name, values in loci.items())


def test_hand_built_record_with_locus_names_as_laboratories_write_them() -> None:
    loci = {"D3S1358": ["15", "16"], "VWA": ["17"], "THO1": ["9.3", "9.3"]}
    loci |= {"D8S1179": ["13", "14"], "D21S11": ["29", "30"], "D18S51": ["14", "15"]}
    loci |= {"FGA": ["22", "24"], "AMEL": ["X"]}
    str_field = _str(loci) + "\x1e2\x1fDYS391\x1f10"  # a Y-STR: noted, ignored
    (read,) = read_profiles(_transaction(_type18(str_field, sdi="0")), loci=LOCI)
    assert read.identified is False
    assert read.genotypes["vWA"] == (170, 170) and read.genotypes["TH01"] == (93, 93)
    assert read.amelogenin == ("X",)
    assert any("DYS391" in c for c in read.conversions)


def test_a_mixture_in_a_type18_record_is_refused_naming_the_loci() -> None:
    loci = {n: list(v) for n, v in PERSON.items()}
    loci["D3S1358"] = ["15", "16", "17"]
    loci["FGA"] = ["22", "23", "24"]
    with pytest.raises(InvalidDnaProfile) as caught:
        read_profiles(_transaction(_type18(_str(loci))), loci=LOCI)
    assert "D3S1358" in caught.value.message and "FGA" in caught.value.message
    assert "record 2 (Type-18)" in caught.value.message
    assert caught.value.details["field"] == "18.016"


def test_annex_rules_apply_to_type18_records() -> None:
    few = {n: v for n, v in list(PERSON.items())[:4]}
    with pytest.raises(InvalidDnaProfile, match="fully designated"):
        read_profiles(_transaction(_type18(_str(few))), loci=LOCI)
    with pytest.raises(InvalidDnaProfile, match="D3S1358"):
        read_profiles(_transaction(_type18(_str({**PERSON, "D3S1358": ["150"]}))), loci=LOCI)
    with pytest.raises(MalformedNistRecord, match=r"18\.006"):
        read_profiles(_transaction(_type18(_str(PERSON), sdi="maybe")), loci=LOCI)


def test_lying_lengths_and_unknown_record_types_are_refused() -> None:
    good = write_transaction([ReferenceData(None, profile(PERSON, True))])
    assert read_profiles(good, loci=LOCI)
    start = good.index(b"18.001:") + len(b"18.001:")
    end = good.index(b"\x1d", start)
    length = int(good[start:end])
    for lie in (length - 5, length + 5, length * 10):
        bad = good[:start] + str(lie).encode() + good[end:]
        with pytest.raises(MalformedNistRecord, match=r"18\.001|Type-18|LEN|length"):
            read_profiles(bad, loci=LOCI)
    with pytest.raises(MalformedNistRecord, match=r"truncated|ends|remain"):
        read_profiles(good[:-10], loci=LOCI)
    with pytest.raises(MalformedNistRecord, match="follow the last record"):
        read_profiles(good + b"garbage", loci=LOCI)
    record = _type18(_str(PERSON)).replace(b"18.", b"14.")
    with pytest.raises(UnknownRecordType):
        read_profiles(_transaction(record, types=(14,)), loci=LOCI)


@pytest.mark.parametrize("fmt", ["json", "csv", "ansi_nist"])
def test_reference_data_round_trips(fmt: str) -> None:
    items = [
        ReferenceData(f"AT-D-{n:04d}", profile(PERSON if n % 2 else TRACE, bool(n % 2)))
        for n in range(150)  # more than one transaction of 99 records
    ]
    back = load_reference(dump_reference(items, fmt), loci=LOCI)
    assert [b.reference for b in back] == [i.reference for i in items]
    assert all(same(a.profile, b.profile) for a, b in zip(items, back, strict=True))


def test_export_of_a_matcher_holds_no_core_data(tmp_path: Path) -> None:
    matcher = make_matcher(Category.DNA, Settings(data_dir=tmp_path, country="AT"))
    try:
        ref_person = matcher.enroll(profile(PERSON, True).to_json(), provenance="case 17/4411")
        ref_trace = matcher.enroll(write_transaction([ReferenceData(None, profile(TRACE, False))]))
        for fmt in ("json", "csv", "ansi_nist"):
            data = export_reference(matcher, fmt)
            assert b"case 17/4411" not in data
            back = {r.reference: r.profile for r in load_reference(data, loci=LOCI)}
            assert set(back) == {ref_person, ref_trace}
            assert same(back[ref_person], profile(PERSON, True))
            assert same(back[ref_trace], profile(TRACE, False))
    finally:
        matcher.close()


GOOD = write_transaction(
    [ReferenceData("AT-D-1", profile(TRACE, False)), ReferenceData("AT-D-2", profile(PERSON, True))]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_prum_errors(data: bytes) -> None:
    for blob in (data, b"1.001:" + data):
        with contextlib.suppress(PrumError):
            load_reference(blob, loci=LOCI)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_transactions_raise_only_prum_errors(data: st.DataObject) -> None:
    blob = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            blob[position] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del blob[position]
        else:
            blob.insert(position, data.draw(st.sampled_from([0x1C, 0x1D, 0x1E, 0x1F, 0x3A, 0x31])))
    with contextlib.suppress(PrumError):
        read_transactions(bytes(blob), loci=LOCI)


def _stored(data_dir: Path) -> int:
    from prum.categories.dna.store import DnaStore

    store = DnaStore(Settings(data_dir=data_dir).resolved_database_url())
    try:
        return store.count()
    finally:
        store.close()


def test_cli_import_and_export_on_sqlite(tmp_path: Path) -> None:
    from prum.cli import app

    runner = CliRunner()
    node = ["--data-dir", str(tmp_path / "node"), "--country", "AT"]
    (tmp_path / "node").mkdir()
    items = [
        ReferenceData("DE-D-1", profile(PERSON, True)),
        ReferenceData("DE-D-2", profile(TRACE, False)),
    ]
    source = tmp_path / "in.nist"
    source.write_bytes(dump_reference(items, "ansi_nist"))
    result = runner.invoke(app, ["dna", "import", str(source), *node])
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.output
    again = runner.invoke(app, ["dna", "import", str(source), *node])  # not stored twice
    assert again.exit_code == 0, again.output
    assert _stored(tmp_path / "node") == 2

    # All or nothing: one bad profile, nothing stored, the error names it and the locus.
    bad = json.loads(dump_reference(items, "json"))
    bad.append({"reference": "DE-D-3", "identified": True, "loci": {"D3S1358": ["150"]}})
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    refused = runner.invoke(app, ["dna", "import", str(bad_file), *node])
    assert refused.exit_code == 2
    assert "profile 3" in refused.output and "D3S1358" in refused.output
    assert _stored(tmp_path / "node") == 2

    for fmt in ("json", "csv", "ansi_nist"):
        out = tmp_path / f"out.{fmt}"
        exported = runner.invoke(app, ["dna", "export", str(out), "--format", fmt, *node])
        assert exported.exit_code == 0, exported.output
        back = load_reference(out.read_bytes(), loci=LOCI)
        assert len(back) == 2
        assert sorted(b.profile.identified for b in back) == [False, True]
        by_kind = {b.profile.identified: b.profile for b in back}
        assert same(by_kind[True], items[0].profile) and same(by_kind[False], items[1].profile)
