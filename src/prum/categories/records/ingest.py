"""Persons from a national police-records system, through the node's national-systems
interface (prum.node.systems): read and pseudonymised under the federation key here,
written on the interface's transaction, then added to the pseudonym index. The core
data released in step 2 come with the upsert and live in the node, like every other
category's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prum.categories.interface import RecordMeta, SubjectCategory
from prum.categories.records.config import RecordsSettings
from prum.categories.records.encode import encode_person
from prum.categories.records.keys import FederationKey, load_key_file
from prum.categories.records.person import parse_person
from prum.categories.records.store import NewRecord
from prum.config import Settings
from prum.errors import InvalidRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from prum.categories.records.matcher import RecordsMatcher

FORMATS = ("police-record",)


class RecordsPreparer:
    def __init__(self, settings: Settings | None = None, key: FederationKey | None = None):
        if key is None:
            assert settings is not None, "a records preparer needs the node's settings or a key"
            configured = RecordsSettings().key_file or settings.records_key
            key = load_key_file(configured or settings.data_dir / "records_key.json")
        self.key = key

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> NewRecord:
        if sample_format not in FORMATS:
            raise InvalidRecord(
                f"a police record's sample is one of {', '.join(FORMATS)}, not {sample_format!r}"
            )
        person = parse_person(sample)
        return NewRecord(
            person=person,
            encodings=encode_person(person, self.key),
            subject_category=meta.subject or SubjectCategory.SUSPECT,
            provenance=meta.provenance[:200],
            synthetic=meta.synthetic,
            source_key=meta.source_key,
            case={},
        )


class RecordsIngester:
    def __init__(self, matcher: RecordsMatcher):
        self.matcher = matcher

    def preparer(self) -> RecordsPreparer:
        return RecordsPreparer(key=self.matcher.key)

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        records = [item for item in prepared if isinstance(item, NewRecord)]
        assert len(records) == len(prepared), "the records store takes prepared persons"
        return [row.reference for row in self.matcher.store.insert_many_in(conn, records)]

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.matcher.store.delete_in(conn, reference, reason)

    def refresh(self) -> None:
        self.matcher.refresh()
