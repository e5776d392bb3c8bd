"""DNA profiles in ANSI/NIST-ITL Type-18 records; import and export of reference data.

Reading reuses the strict record and field parser of :mod:`prum.categories.finger.nist` (every
length, the CNT field and the IDCs are checked); each Type-18 record becomes a
:class:`Profile` through :func:`prum.categories.dna.profile.build_profile`, so every 2008/616
Annex rule applies, and an error names the record (and the locus when there is one).
Writing uses ``nistitl``, which computes the LEN fields and CNT.

The layout read and written is documented in docs/dna.md, section "ANSI/NIST-ITL
Type-18". Reference data (Art 2-3 of 2008/615: the opaque reference number, whether
the profile is of an identified person, and the profile) is exported as JSON, CSV or
ANSI/NIST-ITL; core data is never read for an export.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import nistitl

from prum.categories.ansi_nist import Record, content_list, read_tagged
from prum.categories.dna.loci import AMELOGENIN, LocusSet
from prum.categories.dna.profile import (
    Profile,
    Rules,
    allele_text,
    build_profile,
    parse_csv,
    parse_json,
)
from prum.errors import (
    InvalidDnaProfile,
    MalformedNistRecord,
    PrumError,
    UnknownRecordType,
)

#: Record types a DNA transaction may hold after Type-1 (Type-2 is read and ignored).
DNA_TYPES = frozenset({2, 18})
#: Type-18 records per transaction we write (IDC is two digits in tagged records).
RECORDS_PER_TRANSACTION = 99
#: A reference-data file (many transactions or many JSON/CSV profiles).
MAX_FILE_BYTES = 512 * 1024 * 1024

SDI, STR, REF = 6, 16, 200  # 18.006, 18.016, 18.200 (user-defined: our reference)
_AUTOSOMAL = "0"
_IDENTIFIED = {"1", "identified", "person", "reference"}
_UNIDENTIFIED = {"0", "unidentified", "trace", "stain", "crime scene", "unknown"}

DEFAULT_RULES = Rules()

Format = Literal["json", "csv", "ansi_nist"]
FORMATS: tuple[str, ...] = ("json", "csv", "ansi_nist")


@dataclass(frozen=True)
class ReferenceData:
    """One profile as exchanged: opaque reference (None if the file gave none)."""

    reference: str | None
    profile: Profile


# --- reading -------------------------------------------------------------------------


def read_transactions(
    data: bytes, *, loci: LocusSet, rules: Rules = DEFAULT_RULES
) -> list[ReferenceData]:
    """Every Type-18 profile of one or more concatenated ANSI/NIST-ITL transactions.

    Raises MalformedNistRecord, UnknownRecordType or InvalidDnaProfile, nothing else.
    """
    if not data:
        raise MalformedNistRecord("the transaction is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise MalformedNistRecord(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    found: list[ReferenceData] = []
    offset = 0
    number = 0
    while offset < len(data):
        number += 1
        if not data.startswith(b"1.001:", offset):
            raise MalformedNistRecord(
                f"transaction {number} (byte {offset}): not an ANSI/NIST-ITL transaction;"
                " it must start with field 1.001 (LEN)",
                transaction=number,
            )
        records, offset = _read_one(data, offset, number)
        for record in records:
            if record.type == 18:
                found.append(_reference_data(record, number, loci, rules))
    return found


def read_profiles(data: bytes, *, loci: LocusSet, rules: Rules = DEFAULT_RULES) -> list[Profile]:
    """The profiles of the Type-18 records of an ANSI/NIST-ITL transaction."""
    return [r.profile for r in read_transactions(data, loci=loci, rules=rules)]


def _read_one(data: bytes, offset: int, number: int) -> tuple[list[Record], int]:
    try:
        header, offset = read_tagged(data, offset, expected_type=1, index=1)
        listed = content_list(header)
    except MalformedNistRecord as exc:
        raise _in_transaction(exc, number) from exc
    records = [header]
    for index, (record_type, idc) in enumerate(listed, start=2):
        if offset >= len(data):
            raise MalformedNistRecord(
                f"transaction {number}: field 1.003 (CNT) lists {len(listed)} records after"
                f" Type-1, but the file ends after {index - 2}: truncated, or CNT is wrong",
                transaction=number,
                record=1,
                field="1.003",
            )
        if record_type not in DNA_TYPES:
            raise UnknownRecordType(
                f"transaction {number}, record {index} is Type-{record_type}; a DNA"
                " transaction holds Types 1, 2 and 18",
                transaction=number,
                record=index,
                type=record_type,
            )
        try:
            record, offset = read_tagged(data, offset, expected_type=record_type, index=index)
            found = record.integer(2, high=255)
            if found != idc:
                raise record.error(2, f"IDC is {found}, but field 1.003 (CNT) lists IDC {idc}")
        except MalformedNistRecord as exc:
            raise _in_transaction(exc, number) from exc
        records.append(record)
    if offset < len(data) and not data.startswith(b"1.001:", offset):
        raise MalformedNistRecord(
            f"transaction {number}: {len(data) - offset} bytes follow the last record that"
            " field 1.003 (CNT) lists: CNT is wrong or a length field lies",
            transaction=number,
            record=len(records),
            field="1.003",
        )
    return records, offset


def _in_transaction(exc: MalformedNistRecord, number: int) -> MalformedNistRecord:
    return MalformedNistRecord(
        f"transaction {number}, {exc.message}",
        transaction=number,
        **{k: v for k, v in exc.details.items() if k != "transaction"},
    )


def _items(record: Record, tag: int) -> list[list[str]]:
    """The subfields of a field, each a list of information items (ASCII text)."""
    raw = record.text(tag, "latin-1")
    if not raw.isascii():
        raise record.error(tag, "the field is not ASCII text")
    return [sub.split("\x1f") for sub in raw.split("\x1e")]


def _reference_data(record: Record, number: int, loci: LocusSet, rules: Rules) -> ReferenceData:
    where = f"transaction {number}, {record.name()}"
    donor = _items(record, SDI)[0][0].strip().lower()
    if donor in _IDENTIFIED:
        identified = True
    elif donor in _UNIDENTIFIED:
        identified = False
    else:
        raise record.error(
            SDI, f"donor {donor[:20]!r} is neither 1 (identified person) nor 0 (unidentified)"
        )
    entries: list[tuple[str, list[str]]] = []
    ignored: list[str] = []
    for position, items in enumerate(_items(record, STR), start=1):
        if len(items) < 3:
            raise record.error(
                STR, f"subfield {position} is not 'type␟locus␟allele1[␟allele2[␟allele3]]'"
            )
        kind, locus = items[0].strip(), items[1].strip()
        if kind != _AUTOSOMAL:
            # X- and Y-STRs are not compared under the Annex; noted, not refused.
            ignored.append(f"{locus[:40]}: STR type {kind[:4]} (not autosomal) -> ignored")
            continue
        entries.append((locus, [a.strip() for a in items[2:5] if a.strip()]))
    try:
        profile = build_profile(entries, identified=identified, loci=loci, rules=rules)
    except InvalidDnaProfile as exc:
        raise InvalidDnaProfile(
            f"{where} field 18.016: {exc.message}",
            **{**exc.details, "transaction": number, "record": record.index, "field": "18.016"},
        ) from exc
    if ignored:
        profile = dataclasses.replace(profile, conversions=(*profile.conversions, *ignored))
    reference: str | None = None
    if REF in record.fields:
        reference = record.text(REF, "latin-1").strip()
        if not reference or len(reference) > 40 or not reference.isascii():
            raise record.error(REF, "the reference is empty, longer than 40 or not ASCII")
    return ReferenceData(reference, profile)


# --- writing -------------------------------------------------------------------------


def _str_subfields(profile: Profile) -> list[list[str]]:
    rows: list[list[str]] = [
        [_AUTOSOMAL, name, allele_text(a), allele_text(b)]
        for name, (a, b) in profile.genotypes.items()
    ]
    if profile.amelogenin:
        values = list(profile.amelogenin)
        rows.append([_AUTOSOMAL, AMELOGENIN, values[0], values[-1]])
    return rows


def write_transaction(
    items: list[ReferenceData],
    *,
    originating_agency: str = "PRUM",
    destination_agency: str = "PRUM",
    control_number: str = "PRUM-DNA",
    date: datetime.date | None = None,
) -> bytes:
    """One transaction: Type-1 and one Type-18 record per profile (at most 99)."""
    if len(items) > RECORDS_PER_TRANSACTION:
        raise InvalidDnaProfile(
            f"{len(items)} profiles; a transaction holds at most {RECORDS_PER_TRANSACTION}"
        )
    message = nistitl.Message()
    header = message[0]
    header.TOT = "DNA"
    header.DAI = destination_agency
    header.ORI = originating_agency
    header.TCN = control_number
    header.VER = "0502"
    header.DAT = (date or datetime.date.today()).strftime("%Y%m%d")
    for idc, item in enumerate(items, start=1):
        record = nistitl.AsciiRecord(18)
        record.IDC = idc
        record += nistitl.Field(18, 4, originating_agency)
        record += nistitl.Field(18, SDI, "1" if item.profile.identified else "0")
        record += nistitl.Field(18, STR, _str_subfields(item.profile))
        if item.reference is not None:
            record += nistitl.Field(18, REF, item.reference)
        message += record
    try:
        result: bytes = message.NIST
    except (nistitl.NistException, UnicodeEncodeError, ValueError) as exc:
        raise InvalidDnaProfile(f"the transaction cannot be written: {exc}") from exc
    return result


def write_transactions(items: list[ReferenceData], **header: Any) -> bytes:
    """Concatenated transactions of at most 99 Type-18 records each."""
    chunks = [
        items[i : i + RECORDS_PER_TRANSACTION]
        for i in range(0, len(items), RECORDS_PER_TRANSACTION)
    ]
    return b"".join(write_transaction(chunk, **header) for chunk in chunks or [[]])


# --- reference data: export and import ------------------------------------------------

_CSV_HEADER = ["reference", "identified", "locus", "allele1", "allele2"]


def iter_reference_data(
    source: Any, *, loci: LocusSet, batch: int = 1000
) -> Iterator[ReferenceData]:
    """The stored profiles of a DnaMatcher or DnaStore with their references, id order.

    Only the reference, the identified flag and the profile are read.
    """
    from prum.categories.dna.store import DnaStore

    store: DnaStore = source if isinstance(source, DnaStore) else source.store
    no_minimum = Rules(min_loci=0, min_ess7_person=0)
    pending: list[tuple[int, str]] = []

    def flush() -> Iterator[ReferenceData]:
        records = store.records([i for i, _ in pending])
        for record_id, profile_json in pending:
            record = records.get(record_id)
            if record is not None:
                profile = parse_json(profile_json, loci=loci, rules=no_minimum)
                yield ReferenceData(record.reference, dataclasses.replace(profile, conversions=()))
        pending.clear()

    for item in store.iter_profiles(batch=batch):
        pending.append(item)
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


def export_reference(
    source: Any, fmt: str = "json", *, loci: LocusSet | None = None, **header: Any
) -> bytes:
    """Reference data of a DnaMatcher or DnaStore as JSON, CSV or ANSI/NIST-ITL bytes."""
    if loci is None:
        loci = getattr(source, "loci", None) or LocusSet("prum")
    return dump_reference(list(iter_reference_data(source, loci=loci)), fmt, **header)


def dump_reference(items: list[ReferenceData], fmt: str = "json", **header: Any) -> bytes:
    """Serialise reference data in one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(
            [{"reference": i.reference, **i.profile.to_dict()} for i in items],
            separators=(",", ":"),
        ).encode()
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_CSV_HEADER)
        for number, item in enumerate(items, start=1):
            if not item.reference:
                raise InvalidDnaProfile(f"profile {number} has no reference: CSV needs one")
            flag = "yes" if item.profile.identified else "no"
            for locus, values in item.profile.to_dict()["loci"].items():
                writer.writerow([item.reference, flag, locus, *values])
        return out.getvalue().encode()
    if fmt == "ansi_nist":
        return write_transactions(items, **header)
    raise InvalidDnaProfile(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")


def load_reference(
    data: bytes, *, loci: LocusSet, rules: Rules = DEFAULT_RULES
) -> list[ReferenceData]:
    """Profiles from a file: ANSI/NIST-ITL, a JSON export (array), one JSON profile, a CSV
    export (header ``reference,identified,locus,...``) or one CSV profile.

    All are validated before any is returned; errors name the entry and the locus.
    Raises only errors of the prum tree.
    """
    if data.startswith(b"1.001:"):
        return read_transactions(data, loci=loci, rules=rules)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidDnaProfile(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDnaProfile("the file is neither ANSI/NIST-ITL nor UTF-8 text") from exc
    head = text.lstrip()
    if head.startswith("["):
        return _load_json_list(head, loci, rules)
    if head.startswith("{"):
        return [ReferenceData(None, parse_json(text, loci=loci, rules=rules))]
    first = head.split("\n", 1)[0].replace(" ", "").lower()
    if first.startswith("reference,identified,locus"):
        return _load_csv_export(head, loci, rules)
    return [ReferenceData(None, parse_csv(text, loci=loci, rules=rules))]


def _reference_of(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 40 or not value.isascii():
        raise InvalidDnaProfile(f"{where}: the reference is not text of 1-40 ASCII characters")
    return value.strip()


def _load_json_list(text: str, loci: LocusSet, rules: Rules) -> list[ReferenceData]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidDnaProfile(f"the file is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(doc, list):
        raise InvalidDnaProfile("a reference-data file is a JSON array of profiles")
    out: list[ReferenceData] = []
    for number, entry in enumerate(doc, start=1):
        where = f"profile {number}"
        if not isinstance(entry, dict):
            raise InvalidDnaProfile(f"{where} is not a JSON object", entry=number)
        reference = _reference_of(entry.get("reference"), where)
        body = {k: v for k, v in entry.items() if k != "reference"}
        out.append(
            ReferenceData(
                reference,
                _named(where, number, functools.partial(_json_profile, body, loci, rules)),
            )
        )
    return out


def _json_profile(body: dict[str, Any], loci: LocusSet, rules: Rules) -> Profile:
    return parse_json(json.dumps(body), loci=loci, rules=rules)


def _named(where: str, number: int, parse: Callable[[], Profile]) -> Profile:
    try:
        return parse()
    except InvalidDnaProfile as exc:
        raise InvalidDnaProfile(
            f"{where}: {exc.message}", **{**exc.details, "entry": number}
        ) from exc


def _load_csv_export(text: str, loci: LocusSet, rules: Rules) -> list[ReferenceData]:
    groups: dict[str, tuple[bool, list[tuple[str, list[str]]], int]] = {}
    try:
        for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            cells = [c.strip() for c in row]
            if line == 1 or not any(cells):
                continue
            if len(cells) < 3 or not cells[0]:
                raise InvalidDnaProfile(
                    f"line {line}: expected reference,identified,locus,alleles...", line=line
                )
            flag = cells[1].lower()
            if flag not in ("yes", "no", "true", "false", "1", "0"):
                raise InvalidDnaProfile(f"line {line}: identified is yes or no", line=line)
            identified = flag in ("yes", "true", "1")
            known = groups.setdefault(cells[0], (identified, [], line))
            if known[0] != identified:
                raise InvalidDnaProfile(
                    f"line {line}: {cells[0][:40]} is both identified and not", line=line
                )
            known[1].append((cells[2], [c for c in cells[3:] if c]))
    except csv.Error as exc:
        raise InvalidDnaProfile(f"the file is not readable CSV: {exc}") from exc
    out: list[ReferenceData] = []
    for reference, (identified, entries, line) in groups.items():
        where = f"profile {reference[:40]} (from line {line})"
        ref = _reference_of(reference, where)
        out.append(
            ReferenceData(
                ref,
                _named(
                    where,
                    line,
                    functools.partial(
                        build_profile, entries, identified=identified, loci=loci, rules=rules
                    ),
                ),
            )
        )
    return out


def safe_load(data: bytes, *, loci: LocusSet, rules: Rules = DEFAULT_RULES) -> list[ReferenceData]:
    """:func:`load_reference`, with any stray error mapped into the prum tree."""
    try:
        return load_reference(data, loci=loci, rules=rules)
    except PrumError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
        raise MalformedNistRecord(f"the file cannot be read: {exc}") from exc
