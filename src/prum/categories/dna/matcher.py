"""The DNA category behind the common interface (prum.categories.CategoryMatcher).

A search answers with the hits of the Prüm rules (prum.categories.dna.match), full matches first.
Each :class:`prum.federation.messages.Candidate` carries only what an Art 9 answer may carry plus
the examiner's figures: the opaque reference, whether the matching profile is of a
person or a trace (in ``provenance``), ``score`` = the share of the loci present in
both profiles that match, ``distance`` = the number of differing alleles (0 or 1),
``false_match_rate`` = the random match probability of the matching loci, and
``false_match_words`` saying which kind of hit it is in words, and ``details`` (a
:class:`prum.federation.messages.DnaHit`: the kind of hit, the matching, compared and differing
loci, the random match probability and the matching profile as stored). There is no
image. :meth:`DnaMatcher.search_batch` answers a batch of profiles at once with the
bulk comparison engine (prum.categories.dna.bulk).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.bulk import BulkComparison, Progress
from prum.categories.dna.config import DnaSettings
from prum.categories.dna.formats import parse_profile
from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.index import DnaIndex, Hit
from prum.categories.dna.loci import LocusSet
from prum.categories.dna.match import Comparison, Kind, MatchRules, compare, rmp_words
from prum.categories.dna.profile import Profile, Rules, parse_json
from prum.categories.dna.store import DnaRecord, DnaStore
from prum.categories.interface import Exposure, MatchResult, SubjectCategory
from prum.config import Settings
from prum.errors import InvalidDnaProfile, InvalidRecord, StorageError
from prum.federation.messages import Candidate, Category, DnaHit, Probe

# Stored profiles were checked when enrolled; reloading them must not fail when the
# minimums are raised later (they then simply stop matching).
_NO_MINIMUM = Rules(min_loci=0, min_ess7_person=0)


class DnaMatcher:
    """A national DNA database: store (system of record) + genotype index."""

    category = Category.DNA

    def __init__(self, settings: Settings, dna: DnaSettings | None = None):
        self.settings = dna or DnaSettings()
        self.loci = LocusSet(self.settings.locus_set)
        self.rules = Rules(self.settings.min_loci, self.settings.min_ess7_person)
        self.match_rules = MatchRules(self.settings.min_loci, self.settings.theta)
        self.frequencies = (
            AlleleFrequencies.from_file(self.settings.frequencies)
            if self.settings.frequencies
            else AlleleFrequencies.default()
        )
        self.store = DnaStore(settings.resolved_database_url(), country=settings.country)
        self.index_dir = settings.data_dir / "dna_index"
        self._lock = threading.Lock()
        self._unsaved = 0
        self._deletion_seq = 0
        self._bulk: BulkComparison | None = None
        self.index = self._open_index()

    # --- the index, derived from the store ------------------------------------------

    def _row(self, profile_json: str) -> NDArray[np.uint16]:
        return parse_json(profile_json, loci=self.loci, rules=_NO_MINIMUM).codes(self.loci)

    def _open_index(self) -> DnaIndex:
        meta: dict[str, Any] = {}
        index: DnaIndex | None = None
        if (self.index_dir / "meta.json").is_file():
            try:
                index, meta = DnaIndex.load(self.index_dir)
            except (OSError, ValueError, KeyError, StorageError):
                index = None  # unreadable: rebuilt below from the store
            if meta.get("locus_set") != self.loci.name:
                index = None
        if index is None:
            return self.rebuild()
        self._deletion_seq = int(meta.get("deletion_seq", 0))
        self._catch_up(index)
        return index

    def _catch_up(self, index: DnaIndex) -> int:
        """Apply the deletions and records the store holds beyond the index; how many."""
        changes = 0
        for seq, record_id in self.store.deletions_after(self._deletion_seq):
            index.remove(record_id)
            self._deletion_seq = seq
            changes += 1
        for record_id, profile in self.store.iter_profiles(after_id=index.last_id):
            index.add(record_id, self._row(profile))
            changes += 1
        return changes

    def refresh(self) -> None:
        """Catch up with what another writer (the national-systems interface, another
        process) committed to the store."""
        with self._lock:
            self._unsaved += self._catch_up(self.index)
            if self._unsaved >= self.settings.save_every:
                self._save()

    def ingester(self) -> Any:
        from prum.categories.dna.ingest import DnaIngester

        return DnaIngester(self)

    def rebuild(self) -> DnaIndex:
        """Build the index from the store and save it."""
        seq = self.store.last_deletion_seq()
        ids: list[int] = []
        rows: list[NDArray[np.uint16]] = []
        for record_id, profile in self.store.iter_profiles():
            ids.append(record_id)
            rows.append(self._row(profile))
        codes = np.stack(rows) if rows else np.zeros((0, len(self.loci), 2), np.uint16)
        index = DnaIndex.build(codes, np.array(ids, dtype=np.int64))
        self.index = index
        self._deletion_seq = seq
        self._save()
        return index

    def _save(self) -> None:
        # The deletions applied to this index, not the store's newest: another writer's
        # deletion not yet caught up must be replayed after a restart.
        self.index.save(self.index_dir, deletion_seq=self._deletion_seq, locus_set=self.loci.name)
        self._unsaved = 0

    # --- CategoryMatcher ------------------------------------------------------------

    def enroll(self, sample: bytes, **record: Any) -> str:
        """Enrol a profile (JSON or CSV bytes); returns its reference number.

        ``record``: ``category`` (a SubjectCategory; default suspect for a person, an
        unidentified suspect for a trace), ``provenance``, ``date_of_birth``,
        ``synthetic``, ``source_key``.
        """
        profile = parse_profile(sample, loci=self.loci, rules=self.rules)
        category = record.pop("category", None) or (
            SubjectCategory.SUSPECT if profile.identified else SubjectCategory.UNIDENTIFIED_SUSPECT
        )
        unknown = set(record) - {"provenance", "date_of_birth", "synthetic", "source_key"}
        if unknown:
            raise InvalidRecord(f"unknown DNA record field(s): {', '.join(sorted(unknown))}")
        try:
            category = SubjectCategory(category)
        except ValueError as exc:
            raise InvalidRecord(f"unknown subject category {category!r}") from exc
        born = record.get("date_of_birth")
        if born is not None and (not isinstance(born, dt.date) or born > dt.date.today()):
            raise InvalidRecord(f"date of birth {born!r} is not a past date")
        with self._lock:
            record_id, reference = self.store.insert(
                profile.to_json().decode(),
                identified=profile.identified,
                subject_category=category,
                provenance=str(record.get("provenance", ""))[:200],
                date_of_birth=born,
                synthetic=bool(record.get("synthetic", False)),
                source_key=record.get("source_key"),
            )
            if record_id > self.index.last_id:
                self.index.add(record_id, profile.codes(self.loci))
                self._unsaved += 1
                if self._unsaved >= self.settings.save_every:
                    self._save()
        return reference

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        profile = self._parse_probe(probe)
        return self.search_profile(profile, max_candidates=max_candidates, exposure=exposure)

    def _parse_probe(self, probe: Probe) -> Profile:
        if probe.format != "dna_profile":
            raise InvalidDnaProfile("a DNA search needs a probe of format 'dna_profile' (JSON)")
        return parse_json(probe.data, loci=self.loci, rules=self.rules)

    def search_profile(
        self, profile: Profile, *, max_candidates: int, exposure: Exposure
    ) -> MatchResult:
        probe = profile.codes(self.loci)
        hits = self.index.search(probe, self.match_rules.min_loci)
        return self._answer(probe, hits, max_candidates, exposure)

    def search_batch(
        self,
        profiles: Sequence[Profile | Probe],
        *,
        max_candidates: int,
        exposure: Exposure,
        progress: Progress | None = None,
    ) -> list[MatchResult]:
        """One answer per profile (or ``dna_profile`` probe), as :meth:`search` gives
        them, computed by the bulk comparison engine (prum.categories.dna.bulk) for the whole batch
        at once. An invalid probe refuses the whole batch (InvalidDnaProfile)."""
        if not profiles:
            return []
        parsed = [p if isinstance(p, Profile) else self._parse_probe(p) for p in profiles]
        probes = np.stack([p.codes(self.loci) for p in parsed])
        if self._bulk is None or self._bulk.index is not self.index:
            # Kept between batches: it holds the index side's sorted join keys.
            self._bulk = BulkComparison(self.index, self.match_rules.min_loci)
        positions = np.arange(len(profiles), dtype=np.int64)
        found: list[list[Hit]] = [[] for _ in profiles]
        for h in self._bulk.compare(positions, probes, progress=progress):
            found[h.probe].append(Hit(h.row, h.id, h.kind, h.matching))
        return [
            self._answer(probe, hits, max_candidates, exposure)
            for probe, hits in zip(probes, found, strict=True)
        ]

    def _answer(
        self,
        probe: NDArray[np.uint16],
        hits: list[Hit],
        max_candidates: int,
        exposure: Exposure,
    ) -> MatchResult:
        records = self.store.records([h.id for h in hits])
        found: list[tuple[Comparison, DnaRecord]] = []
        for hit in hits:
            rec = records.get(hit.id)
            if rec is None or not exposure.allows(rec.subject_category, rec.date_of_birth):
                continue
            comparison = compare(
                probe, self._hit_row(hit, rec), self.loci, self.match_rules, self.frequencies
            )
            found.append((comparison, rec))
        found.sort(
            key=lambda f: (
                f[0].kind != Kind.MATCH,
                -len(f[0].matching_loci),
                f[0].random_match_probability,
            )
        )
        candidates = [
            _candidate(rank, comparison, rec)
            for rank, (comparison, rec) in enumerate(found[:max_candidates], start=1)
        ]
        return MatchResult(candidates=candidates, gallery_size=len(self.index))

    def _hit_row(self, hit: Hit, record: DnaRecord) -> NDArray[np.uint16]:
        if hit.row >= 0:
            return np.asarray(self.index.codes[hit.row])
        return self._row(record.profile)

    def delete(self, reference: str, *, reason: str) -> None:
        self.store.delete(reference, reason)
        self.refresh()

    def describe(self) -> dict[str, Any]:
        return {
            "category": "dna",
            "records": len(self.index),
            "locus_set": self.loci.name,
            "loci": list(self.loci.loci),
            "min_loci": self.match_rules.min_loci,
            "min_ess7_person": self.rules.min_ess7_person,
            "theta": self.match_rules.theta,
            "frequencies": self.frequencies.source,
            "index_bytes": self.index.nbytes(),
        }

    def close(self) -> None:
        with self._lock:
            if self._unsaved:
                self._save()
        self.store.close()


def _candidate(rank: int, comparison: Comparison, record: DnaRecord) -> Candidate:
    matching = len(comparison.matching_loci)
    if comparison.kind == Kind.MATCH:
        what = f"match at {matching} loci"
    else:
        m = comparison.mismatches[0]
        what = (
            f"near match at {matching} loci, one allele differs at {m.locus}"
            f" ({m.probe} / {m.candidate})"
        )
    words = f"{what}; {rmp_words(comparison.random_match_probability)}"
    kind = "identified person" if record.identified else "unidentified trace"
    details = DnaHit(
        match="match" if comparison.kind == Kind.MATCH else "near_match",
        identified=record.identified,
        matching_loci=list(comparison.matching_loci),
        compared_loci=list(comparison.compared_loci),
        mismatched_loci=[m.locus for m in comparison.mismatches],
        random_match_probability=comparison.random_match_probability,
        # The stored (normalised) profile: locus -> allele texts, "*" a wildcard.
        profile=json.loads(record.profile)["loci"],
    )
    return Candidate(
        rank=rank,
        reference=record.reference,
        score=matching / max(1, len(comparison.compared_loci)),
        distance=float(len(comparison.mismatches)),
        false_match_rate=comparison.random_match_probability,
        false_match_words=words[:200],
        provenance=f"{kind}; {record.provenance}"[:200],
        synthetic=record.synthetic,
        details=details,
    )
