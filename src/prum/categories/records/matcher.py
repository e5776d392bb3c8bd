"""The police-records category behind the common interface (prum.categories).

Enrolment takes one person as JSON (prum.categories.records.person), stores it in clear with
the encodings of its names under the federation key, and adds them to the in-memory
index. A search takes a pseudonymised :class:`prum.federation.messages.RecordsQuery` (made by
the requester with prum.categories.records.encode.make_query) and answers candidates that carry
no clear text: an opaque reference, ``score`` = the match quality (0..1),
``distance`` = 1 - quality, no false-match rate (no calibrated impostor model for
biographical data: the words say so), and :class:`prum.federation.messages.RecordsHit` with
the quality in words and the names of the fields that agreed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from prum.categories.interface import Exposure, MatchResult, SubjectCategory
from prum.categories.records.config import RecordsSettings
from prum.categories.records.encode import Encoding, encode_person
from prum.categories.records.index import Hit, RecordsIndex
from prum.categories.records.keys import FederationKey, load_key_file
from prum.categories.records.person import Person, parse_person
from prum.categories.records.score import quality_words
from prum.categories.records.store import CASE_FIELDS, NewRecord, RecordRow, RecordsStore
from prum.config import Settings
from prum.errors import BadInput, InvalidRecord
from prum.federation.messages import (
    Candidate,
    Category,
    CoreData,
    Probe,
    RecordsField,
    RecordsHit,
    RecordsQuery,
)

_RECORD_FIELDS = {"category", "provenance", "synthetic", "source_key", *CASE_FIELDS}
# Hits looked at per candidate returned, so that exposure rules filtering some out do
# not shorten the list.
_OVERFETCH = 10


class RecordsMatcher:
    """A national police-records index: store (system of record) + pseudonym index."""

    category = Category.RECORDS

    def __init__(
        self,
        settings: Settings,
        records: RecordsSettings | None = None,
        *,
        key: FederationKey | None = None,
    ):
        self.settings = records or RecordsSettings()
        self.key = key or load_key_file(
            self.settings.key_file or settings.records_key or settings.data_dir / "records_key.json"
        )
        self.store = RecordsStore(settings.resolved_database_url(), country=settings.country)
        self._lock = threading.Lock()
        self.index = self.rebuild()

    def rebuild(self) -> RecordsIndex:
        """The index from the store's encodings under the current key."""
        self._deletion_seq = self.store.last_deletion_seq()
        self._last_id = self.store.max_id()
        index = RecordsIndex(self.key.key_id)
        batch: list[tuple[int, list[Encoding]]] = []
        for item in self.store.iter_encodings(self.key.key_id):
            batch.append(item)
            if len(batch) == 10_000:
                index.add_many(batch)
                batch = []
        index.add_many(batch)
        index.compact()
        return index

    # --- CategoryMatcher ------------------------------------------------------------

    def enroll(self, sample: bytes, **record: Any) -> str:
        """Enrol one person (JSON bytes); returns the record's reference number.

        ``record``: ``category`` (a SubjectCategory, default suspect), ``provenance``,
        ``synthetic``, ``source_key``, and the case data released with core data:
        ``offence``, ``case_number``, ``responsible_authority``.
        """
        return self.enroll_many([(parse_person(sample), record)])[0]

    def enroll_many(self, items: Iterable[tuple[Person, dict[str, Any]]]) -> list[str]:
        """Enrol several persons in one transaction (bulk loads); their references."""
        new = [self._new_record(person, record) for person, record in items]
        with self._lock:
            stored = self.store.insert_many(new)
            self.index.add_many(
                [(row.id, record.encodings) for row, record in zip(stored, new, strict=True)
                 if row.new]
            )  # fmt: skip
            self._last_id = max([self._last_id, *(row.id for row in stored)])
        return [row.reference for row in stored]

    def _new_record(self, person: Person, record: dict[str, Any]) -> NewRecord:
        unknown = set(record) - _RECORD_FIELDS
        if unknown:
            raise InvalidRecord(f"unknown police-record field(s): {', '.join(sorted(unknown))}")
        category = record.get("category") or SubjectCategory.SUSPECT
        try:
            category = SubjectCategory(category)
        except ValueError as exc:
            raise InvalidRecord(f"unknown subject category {category!r}") from exc
        case = {f: str(record[f])[:200] for f in CASE_FIELDS if record.get(f)}
        return NewRecord(
            person=person,
            encodings=encode_person(person, self.key),
            subject_category=category,
            provenance=str(record.get("provenance", ""))[:200],
            synthetic=bool(record.get("synthetic", False)),
            source_key=record.get("source_key"),
            case=case,
        )

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        """``search_type`` is not used: a holder has one police-records index."""
        if probe.format != "records_query" or probe.records is None:
            raise BadInput("a police-records search needs a probe of format 'records_query'")
        return self.search_query(probe.records, max_candidates=max_candidates, exposure=exposure)

    def search_query(
        self, query: RecordsQuery, *, max_candidates: int, exposure: Exposure
    ) -> MatchResult:
        encoding = Encoding.from_query(query)
        with self._lock:  # a concurrent enrolment may be compacting the key arrays
            hits = self.index.search(
                encoding, threshold=self.settings.threshold, limit=max_candidates * _OVERFETCH
            )
        rows = self.store.rows([h.record_id for h in hits])
        candidates: list[Candidate] = []
        for hit in hits:
            row = rows.get(hit.record_id)
            if row is None or not exposure.allows(
                row.subject_category, row.date_of_birth, birth_year=row.birth_year
            ):
                continue
            candidates.append(_candidate(len(candidates) + 1, hit, row))
            if len(candidates) == max_candidates:
                break
        return MatchResult(candidates=candidates, gallery_size=len(self.index))

    def delete(self, reference: str, *, reason: str) -> None:
        self.store.delete(reference, reason)
        self.refresh()

    def refresh(self) -> None:
        """Catch up with what another writer (the national-systems interface, another
        process) committed to the store."""
        with self._lock:
            for seq, record_id in self.store.deletions_after(self._deletion_seq):
                self.index.remove(record_id)
                self._deletion_seq = seq
            new = list(self.store.iter_encodings(self.key.key_id, after_id=self._last_id))
            if new:
                self.index.add_many(new)
                self._last_id = max(record_id for record_id, _ in new)

    def ingester(self) -> Any:
        from prum.categories.records.ingest import RecordsIngester

        return RecordsIngester(self)

    def core_data(self, reference: str) -> CoreData:
        """Core data of one of this holder's records, for a human release decision."""
        return self.store.core_data(reference)

    def rotate_key(self, new_key: FederationKey) -> None:
        """Re-encode every person under ``new_key`` from the clear records, switch the
        index to it, and drop the old key's encodings."""
        old = self.key
        batch: list[tuple[int, list[Encoding]]] = []
        with self._lock:
            if new_key.key_id != old.key_id:
                self.store.drop_key(new_key.key_id)  # what an interrupted rotation left
            for record_id, person in self.store.iter_persons():
                batch.append((record_id, encode_person(person, new_key)))
                if len(batch) >= 5_000:
                    self.store.add_encodings(batch)
                    batch = []
            self.store.add_encodings(batch)
            self.key = new_key
            self.index = self.rebuild()
            if old.key_id != new_key.key_id:
                self.store.drop_key(old.key_id)

    def describe(self) -> dict[str, Any]:
        return {
            "category": "records",
            "records": len(self.index),
            "key_id": self.key.key_id,
            "threshold": self.settings.threshold,
            "index_bytes": self.index.nbytes(),
        }

    def close(self) -> None:
        self.store.close()


def _candidate(rank: int, hit: Hit, row: RecordRow) -> Candidate:
    alias: tuple[RecordsField, ...] = ("alias",) if hit.entry > 0 else ()
    matched_on = (*hit.matched_on, *alias)
    words = quality_words(hit.quality, matched_on)
    return Candidate(
        rank=rank,
        reference=row.reference,
        score=hit.quality,
        distance=1.0 - hit.quality,
        false_match_rate=None,
        false_match_words=f"{words}; no calibrated false-match rate for biographical data"[:200],
        provenance=f"{row.subject_category.value}; {row.provenance}"[:200],
        synthetic=row.synthetic,
        details=RecordsHit(quality=hit.quality, quality_words=words, matched_on=list(matched_on)),
    )
