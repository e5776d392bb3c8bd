"""ANSI/NIST-ITL transactions: the record layer that the fingerprint reader (Types 4,
9, 13, 14, 15) and the DNA reader (Type-18) share: tagged fields, the LEN field of
each record, and the content list (CNT, field 1.003) of the Type-1 header.

Strict, because a transaction from another country is untrusted input: every length
and count is checked before it is used, and a record that lies gets a
:class:`MalformedNistRecord` naming the record and the field. References: ANSI/NIST-ITL
1-2011 Update 2015 (NIST SP 500-290e3), section 7 (data conventions) and 8.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from prum.errors import MalformedNistRecord

FS, GS, RS, US = b"\x1c", b"\x1d", b"\x1e", b"\x1f"
#: INT-I limits a transaction to far fewer; IDC is two digits (0-99) in tagged records.
MAX_RECORDS = 200
_LEN_TAG = re.compile(rb"(\d{1,3})\.0{0,2}1:(\S{0,20}?)[\x1d\x1c]")
_TAG = re.compile(rb"(\d{1,3})\.(\d{1,4}):")


@dataclass
class Record:
    """One record as read: type, index in the file (1 = Type-1), fields and image."""

    type: int
    index: int
    fields: dict[int, bytes]
    data: bytes | None = None

    def name(self, tag: int | None = None) -> str:
        where = f"record {self.index} (Type-{self.type})"
        return where if tag is None else f"{where} field {self.type}.{tag:03d}"

    def error(self, tag: int | None, message: str) -> MalformedNistRecord:
        field = None if tag is None else f"{self.type}.{tag:03d}"
        return MalformedNistRecord(
            f"{self.name(tag)}: {message}", record=self.index, type=self.type, field=field
        )

    def text(self, tag: int, encoding: str = "latin-1", *, required: bool = True) -> str:
        raw = self.fields.get(tag)
        if raw is None:
            if required:
                raise self.error(tag, "the field is missing")
            return ""
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise self.error(tag, f"the text is not valid {encoding}") from exc

    def integer(self, tag: int, *, low: int = 0, high: int = 10**9) -> int:
        value = self.text(tag).strip()
        first = value.split("\x1e")[0].split("\x1f")[0].strip()
        if not first.isdigit() or not first.isascii():
            raise self.error(tag, f"{value[:20]!r} is not a number")
        number = int(first)
        if not low <= number <= high:
            raise self.error(tag, f"{number} is outside {low}-{high}")
        return number


def read_tagged(
    data: bytes,
    offset: int,
    *,
    expected_type: int,
    index: int,
    image_types: frozenset[int] = frozenset(),
) -> tuple[Record, int]:
    """One tagged-field record starting at ``offset``; returns it and the next offset.

    In a record of ``image_types`` field 999 is the image: binary, up to the record's end.
    """
    where = f"record {index} (Type-{expected_type})"
    match = _LEN_TAG.match(data, offset)
    if match is None:
        raise MalformedNistRecord(
            f"{where}: does not start with its LEN field {expected_type}.001",
            record=index,
            type=expected_type,
            field=f"{expected_type}.001",
        )
    found_type = int(match.group(1))
    if found_type != expected_type:
        raise MalformedNistRecord(
            f"{where}: field 1.003 (CNT) says Type-{expected_type}, but the record is"
            f" Type-{found_type}",
            record=index,
            type=found_type,
            field="1.003",
        )
    raw_length = match.group(2)
    if not raw_length.isdigit():
        raise MalformedNistRecord(
            f"{where} field {expected_type}.001 (LEN): {raw_length[:20]!r} is not a number",
            record=index,
            type=expected_type,
            field=f"{expected_type}.001",
        )
    length = int(raw_length)
    remaining = len(data) - offset
    if length > remaining or length < match.end() - offset:
        raise MalformedNistRecord(
            f"{where} field {expected_type}.001 (LEN): says {length} bytes, but"
            f" {remaining} remain in the file: the length lies or the file is truncated",
            record=index,
            type=expected_type,
            field=f"{expected_type}.001",
        )
    end = offset + length
    if data[end - 1 : end] != FS:
        raise MalformedNistRecord(
            f"{where} field {expected_type}.001 (LEN): the record does not end with the"
            f" file separator at byte {length}: the length is wrong",
            record=index,
            type=expected_type,
            field=f"{expected_type}.001",
        )
    record = Record(type=expected_type, index=index, fields={})
    for tag, start, stop in _fields(data, offset, end, record, image_types):
        if tag in record.fields:
            raise record.error(tag, "the field appears twice")
        if tag == 999 and expected_type in image_types:
            record.data = data[start:stop]
        else:
            record.fields[tag] = data[start:stop]
    if record.fields.get(1, b"").strip() != raw_length:
        raise record.error(1, "the LEN field is not the record's first field")
    return record, end


def _fields(
    data: bytes, offset: int, end: int, record: Record, image_types: frozenset[int]
) -> Iterator[tuple[int, int, int]]:
    """(tag, value start, value stop) of each field of the record in data[offset:end]."""
    pos = offset
    last = end - 1  # the file separator
    while pos < last:
        match = _TAG.match(data, pos)
        if match is None or match.end() > last:
            raise record.error(
                None, f"byte {pos - offset}: expected a field tag like '{record.type}.NNN:'"
            )
        if int(match.group(1)) != record.type:
            raise record.error(
                None,
                f"byte {pos - offset}: field {match.group(1).decode()}.{match.group(2).decode()}"
                " belongs to another record type: a length field lies",
            )
        tag = int(match.group(2))
        start = match.end()
        if tag == 999 and record.type in image_types:
            yield tag, start, last
            return
        stop = data.find(GS, start, last)
        stop = last if stop < 0 else stop
        separator = data.find(FS, start, stop)
        if separator >= 0:
            raise record.error(
                tag, "a file separator appears inside the record: a length field lies"
            )
        yield tag, start, stop
        pos = stop + 1


def content_list(header: Record) -> list[tuple[int, int]]:
    """Field 1.003 (CNT): the (type, IDC) of every record after Type-1, in file order."""
    raw = header.text(3)
    subfields = [item.split("\x1f") for item in raw.split("\x1e")]
    pairs: list[tuple[int, int]] = []
    for number, items in enumerate(subfields, start=1):
        if len(items) != 2 or not all(i.isdigit() and i.isascii() for i in items):
            raise header.error(
                3, f"subfield {number} ({'/'.join(items)[:20]!r}) is not two numbers"
            )
        pairs.append((int(items[0]), int(items[1])))
    first_type, count = pairs[0]
    if first_type != 1:
        raise header.error(3, f"the first subfield names Type-{first_type}, not Type-1")
    if count != len(pairs) - 1:
        raise header.error(
            3, f"the first subfield counts {count} records, but {len(pairs) - 1} are listed"
        )
    if count > MAX_RECORDS:
        raise header.error(3, f"{count} records; the limit is {MAX_RECORDS}")
    return pairs[1:]
