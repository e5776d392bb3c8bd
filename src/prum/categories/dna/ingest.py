"""DNA profiles from a national DNA database, through the node's national-systems
interface (prum.node.systems): checked against the 2008/616 Annex rules here, written
on the interface's transaction, then added to the genotype index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prum.categories.dna.config import DnaSettings
from prum.categories.dna.formats import parse_profile
from prum.categories.dna.loci import LocusSet
from prum.categories.dna.profile import Rules
from prum.categories.dna.store import NewProfile
from prum.categories.interface import RecordMeta, SubjectCategory
from prum.config import Settings
from prum.errors import InvalidRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from prum.categories.dna.matcher import DnaMatcher

# JSON (one profile), CSV or ANSI/NIST-ITL Type-18: what `prum dna import` reads.
FORMATS = ("dna-profile", "ansi-nist", "csv")


@dataclass(frozen=True)
class PreparedProfile:
    profile_json: str  # normalised
    identified: bool
    subject: SubjectCategory
    meta: RecordMeta


class DnaPreparer:
    def __init__(self, settings: Settings | None = None, dna: DnaSettings | None = None):
        dna = dna or DnaSettings()
        self.loci = LocusSet(dna.locus_set)
        self.rules = Rules(dna.min_loci, dna.min_ess7_person)

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> PreparedProfile:
        if sample_format not in FORMATS:
            raise InvalidRecord(
                f"a DNA record's sample is one of {', '.join(FORMATS)}, not {sample_format!r}"
            )
        profile = parse_profile(sample, loci=self.loci, rules=self.rules)
        subject = meta.subject or (
            SubjectCategory.SUSPECT if profile.identified else SubjectCategory.UNIDENTIFIED_SUSPECT
        )
        return PreparedProfile(profile.to_json().decode(), profile.identified, subject, meta)


class DnaIngester:
    def __init__(self, matcher: DnaMatcher):
        self.matcher = matcher

    def preparer(self) -> DnaPreparer:
        return DnaPreparer(dna=self.matcher.settings)

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        rows = []
        for item in prepared:
            assert isinstance(item, PreparedProfile)
            rows.append(
                NewProfile(
                    item.profile_json,
                    identified=item.identified,
                    subject_category=item.subject,
                    provenance=item.meta.provenance[:200],
                    date_of_birth=item.meta.date_of_birth,
                    synthetic=item.meta.synthetic,
                    source_key=item.meta.source_key,
                )
            )
        return self.matcher.store.insert_many_in(conn, rows)

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.matcher.store.delete_in(conn, reference, reason)

    def refresh(self) -> None:
        self.matcher.refresh()
