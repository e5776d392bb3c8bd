"""Fingerprints from a national AFIS, through the node's national-systems interface
(prum.node.systems): an ANSI/NIST-ITL transaction (a tenprint card or a latent) or a
single finger image, its minutiae extracted here (in worker processes for batches),
written on the interface's transaction, then added to the cylinder index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prum.categories.finger.config import FingerSettings
from prum.categories.finger.minutiae import MindtctExtractor
from prum.categories.finger.samples import SampleReader
from prum.categories.finger.store import COLLECTIONS, LATENT, TENPRINT, NewFinger
from prum.categories.interface import RecordMeta, SubjectCategory
from prum.config import Settings
from prum.errors import InvalidRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from prum.categories.finger.matcher import FingerMatcher

FORMATS = ("ansi-nist", "image")


@dataclass(frozen=True)
class PreparedCard:
    fingers: list[NewFinger]
    collection: str
    subject: SubjectCategory
    meta: RecordMeta


class FingerPreparer:
    def __init__(self, settings: Settings | None = None, reader: SampleReader | None = None):
        if reader is None:
            reader = SampleReader(MindtctExtractor(), FingerSettings().min_minutiae)
        self.reader = reader

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> PreparedCard:
        if sample_format not in FORMATS:
            raise InvalidRecord(
                f"a fingerprint record's sample is one of {', '.join(FORMATS)},"
                f" not {sample_format!r}"
            )
        fmt = "ansi_nist" if sample_format == "ansi-nist" else "image"
        if fmt == "image" and not 1 <= (meta.position or 0) <= 10:
            raise InvalidRecord("a single finger image needs its finger position (1-10)")
        fingers, latent = self.reader.fingers(sample, fmt, meta.position or 0)
        collection = meta.collection or (LATENT if latent else TENPRINT)
        if collection not in COLLECTIONS:
            raise InvalidRecord(f"collection is 'tenprint' or 'latent', not {collection!r}")
        subject = meta.subject or (
            SubjectCategory.UNIDENTIFIED_SUSPECT
            if collection == LATENT
            else SubjectCategory.SUSPECT
        )
        usable = self.reader.usable(fingers)
        stored = [NewFinger(f.position, f.template.to_bytes(), f.image) for f in usable]
        return PreparedCard(stored, collection, subject, meta)


class FingerIngester:
    def __init__(self, matcher: FingerMatcher):
        self.matcher = matcher

    def preparer(self) -> FingerPreparer:
        return FingerPreparer(reader=self.matcher.reader)

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        references = []
        for item in prepared:
            assert isinstance(item, PreparedCard)
            _, reference, _ = self.matcher.store.insert_in(
                conn,
                item.fingers,
                collection=item.collection,
                subject_category=item.subject,
                provenance=item.meta.provenance[:200],
                date_of_birth=item.meta.date_of_birth,
                synthetic=item.meta.synthetic,
                source_key=item.meta.source_key,
            )
            references.append(reference)
        return references

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.matcher.store.delete_in(conn, reference, reason)

    def refresh(self) -> None:
        self.matcher.refresh()
