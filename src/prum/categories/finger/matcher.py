"""The fingerprint category behind the common interface (prum.categories.CategoryMatcher).

A sample is an ANSI/NIST-ITL transaction (a tenprint card or a latent) or a single
finger image. Minutiae come from NIST MINDTCT (prum.categories.finger.minutiae); fingers are
compared with Minutia Cylinder-Code (prum.categories.finger.match) and searched through the
cylinder index (prum.categories.finger.index). A record is one enrolled sample under one opaque
reference, in one of two collections: ``tenprint`` or ``latent`` (unsolved latents).
The Prüm search types choose the collection searched: TP/TP and LT/TP search the
tenprints, TP/UL and LT/UL the unsolved latents.

Each :class:`prum.federation.messages.Candidate` carries ``score`` (the MCC LSS-R score, 0..1),
``distance`` = 1 - score, the false-match rate of that score (from a calibration file
of impostor scores, or the gallery's own impostor pairs; None with the reason when
neither exists) and a :class:`prum.federation.messages.FingerHit` naming the finger that matched.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from typing import Any

import numpy as np

from prum.categories.finger.config import FingerSettings
from prum.categories.finger.evaluation import Calibration
from prum.categories.finger.index import FingerIndex, IndexParams, Label, Scope
from prum.categories.finger.match import (
    Comparison,
    MccParams,
    compare,
    cylinders,
)
from prum.categories.finger.minutiae import MindtctExtractor, Template
from prum.categories.finger.samples import ProbeFinger, SampleReader
from prum.categories.finger.store import (
    LATENT,
    TENPRINT,
    FingerRecord,
    FingerStore,
    NewFinger,
    StoredFinger,
)
from prum.categories.interface import Exposure, MatchResult, SubjectCategory
from prum.config import Settings
from prum.errors import (
    InvalidCalibration,
    InvalidRecord,
    InvalidSearchType,
    StorageError,
)
from prum.federation.messages import Candidate, Category, FingerHit, Probe

SEARCH_TYPES = ("TP/TP", "TP/UL", "LT/TP", "LT/UL")

# Impostor pairs drawn from the gallery for its own calibration, and the fewest
# enrolled fingers that gives enough distinct pairs.
GALLERY_CALIBRATION_PAIRS = 1_000
GALLERY_CALIBRATION_MIN_FINGERS = 50


def _is_card(fingers: list[ProbeFinger]) -> bool:
    """Fingers of two or more known positions (1-10): a card, whose scores are fused."""
    return len({f.position for f in fingers if 1 <= f.position <= 10}) >= 2


def _one_per_position(fingers: list[ProbeFinger]) -> list[ProbeFinger]:
    """A card's rolled and plain impressions of one finger: the one with most minutiae."""
    best: dict[int, ProbeFinger] = {}
    others: list[ProbeFinger] = []
    for finger in fingers:
        if not 1 <= finger.position <= 10:
            others.append(finger)
        elif finger.position not in best or len(finger.template) > len(
            best[finger.position].template
        ):
            best[finger.position] = finger
    return [*best.values(), *others]


def _fused(per_finger: dict[int, tuple[Comparison, int]], fingers: int) -> float:
    """The sum rule: the mean score over the probe's fingers (0 for one not found)."""
    return sum(c.score for c, _ in per_finger.values()) / max(1, fingers)


def parse_search_type(search_type: str) -> tuple[bool, bool]:
    """(probe is a latent, target is the unsolved latents) of a Prüm search type."""
    if search_type not in SEARCH_TYPES:
        raise InvalidSearchType(
            f"unknown fingerprint search type {search_type!r}; one of {', '.join(SEARCH_TYPES)}"
        )
    probe, target = search_type.split("/")
    return probe == "LT", target == "UL"


class FingerMatcher:
    """A national fingerprint database: store (system of record) + cylinder index."""

    category = Category.FINGER

    def __init__(self, settings: Settings, finger: FingerSettings | None = None):
        self.settings = finger or FingerSettings()
        self.mcc = MccParams()
        self.index_params = IndexParams(
            nprobe=self.settings.nprobe,
            neighbours=self.settings.neighbours,
            shortlist=self.settings.shortlist,
            cards=self.settings.fusion_cards,
        )
        self.extractor = MindtctExtractor()
        self.reader = SampleReader(self.extractor, self.settings.min_minutiae)
        self.store = FingerStore(settings.resolved_database_url(), country=settings.country)
        self.index_dir = settings.data_dir / "finger_index"
        self._lock = threading.Lock()
        self._unsaved = 0
        self._deletion_seq = 0
        self._calibration: Calibration | None = None
        self._calibrated_at = 0
        if self.settings.calibration is not None:
            try:
                text = self.settings.calibration.read_text()
            except OSError as exc:
                raise InvalidCalibration(f"cannot read {self.settings.calibration}: {exc}") from exc
            self._calibration = Calibration.from_json(text)
        self.index = self._open_index()

    # --- the index, derived from the store ------------------------------------------

    def _open_index(self) -> FingerIndex:
        index: FingerIndex | None = None
        meta: dict[str, Any] = {}
        if (self.index_dir / "meta.json").is_file():
            try:
                index, meta = FingerIndex.load(self.index_dir, self.mcc, self.index_params)
            except (OSError, ValueError, KeyError, StorageError):
                index = None  # unreadable: rebuilt below from the store
        if index is None:
            return self.rebuild()
        self._deletion_seq = int(meta.get("deletion_seq", 0))
        self._catch_up(index)
        return index

    def _catch_up(self, index: FingerIndex) -> int:
        """Apply the deletions and fingers the store holds beyond the index; how many."""
        changes = 0
        for seq, record_id in self.store.deletions_after(self._deletion_seq):
            index.remove_record(record_id)
            self._deletion_seq = seq
            changes += 1
        for finger in self.store.iter_fingers(after_id=index.last_id):
            self._add_stored(index, finger)
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
        from prum.categories.finger.ingest import FingerIngester

        return FingerIngester(self)

    def _add(
        self,
        index: FingerIndex,
        template_id: int,
        record_id: int,
        position: int,
        collection: str,
        template: Template,
    ) -> None:
        label = Label(record=record_id, position=position, latent=collection == LATENT)
        index.add(template_id, cylinders(template, self.mcc), label)

    def _add_stored(self, index: FingerIndex, finger: StoredFinger) -> None:
        template = _stored_template(finger.id, finger.template)
        self._add(index, finger.id, finger.record_id, finger.position, finger.collection, template)

    def rebuild(self) -> FingerIndex:
        """Build the index from the store and save it."""
        seq = self.store.last_deletion_seq()
        index = FingerIndex(self.mcc, self.index_params)
        with index.bulk():
            for finger in self.store.iter_fingers():
                self._add_stored(index, finger)
        self.index = index
        self._deletion_seq = seq
        self._save()
        return index

    def _save(self) -> None:
        # The deletions applied to this index, not the store's newest: another writer's
        # deletion not yet caught up must be replayed after a restart.
        self.index.save(self.index_dir, deletion_seq=self._deletion_seq)
        self._unsaved = 0

    # --- samples -------------------------------------------------------------------------

    def fingers(self, data: bytes, fmt: str, position: int = 0) -> tuple[list[ProbeFinger], bool]:
        """The fingers of a sample and whether it is a latent (see SampleReader)."""
        return self.reader.fingers(data, fmt, position)

    def _usable(self, fingers: list[ProbeFinger]) -> list[ProbeFinger]:
        return self.reader.usable(fingers)

    # --- CategoryMatcher ------------------------------------------------------------

    def enroll(self, sample: bytes, **record: Any) -> str:
        """Enrol a transaction or an image; returns its reference number.

        ``record``: ``collection`` ("tenprint" or "latent"; default: latent when the
        transaction carries a latent), ``position`` (of a single image), ``category``
        (a SubjectCategory; default suspect, unidentified suspect for a latent),
        ``provenance``, ``date_of_birth``, ``synthetic``, ``source_key``.
        """
        fmt = str(record.pop("format", "ansi_nist" if sample[:6] == b"1.001:" else "image"))
        position = int(record.pop("position", 0))
        fingers, latent = self.fingers(sample, fmt, position)
        collection = str(record.pop("collection", None) or (LATENT if latent else TENPRINT))
        if collection not in (TENPRINT, LATENT):
            raise InvalidRecord(f"collection is 'tenprint' or 'latent', not {collection!r}")
        category = record.pop("category", None) or (
            SubjectCategory.UNIDENTIFIED_SUSPECT
            if collection == LATENT
            else SubjectCategory.SUSPECT
        )
        unknown = set(record) - {"provenance", "date_of_birth", "synthetic", "source_key"}
        if unknown:
            raise InvalidRecord(
                f"unknown fingerprint record field(s): {', '.join(sorted(unknown))}"
            )
        try:
            category = SubjectCategory(category)
        except ValueError as exc:
            raise InvalidRecord(f"unknown subject category {category!r}") from exc
        born = record.get("date_of_birth")
        if born is not None and (not isinstance(born, dt.date) or born > dt.date.today()):
            raise InvalidRecord(f"date of birth {born!r} is not a past date")
        usable = self._usable(fingers)
        with self._lock:
            record_id, reference, ids = self.store.insert(
                [NewFinger(f.position, f.template.to_bytes(), f.image) for f in usable],
                collection=collection,
                subject_category=category,
                provenance=str(record.get("provenance", ""))[:200],
                date_of_birth=born,
                synthetic=bool(record.get("synthetic", False)),
                source_key=record.get("source_key"),
            )
            for template_id, finger in zip(ids, usable, strict=False):
                self._add(
                    self.index, template_id, record_id, finger.position, collection, finger.template
                )
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
        """A search of one Prüm type; without one, LT/TP for a latent probe, else TP/TP."""
        if search_type is not None:
            parse_search_type(search_type)
        fingers, latent = self.fingers(probe.data, probe.format)
        chosen = search_type or ("LT/TP" if latent else "TP/TP")
        return self._search(fingers, chosen, max_candidates=max_candidates, exposure=exposure)

    def search_typed(
        self, probe: Probe, search_type: str, *, max_candidates: int, exposure: Exposure
    ) -> MatchResult:
        """A search of one Prüm type: its second half chooses the collection searched."""
        return self.search(
            probe, max_candidates=max_candidates, exposure=exposure, search_type=search_type
        )

    def _search(
        self,
        fingers: list[ProbeFinger],
        search_type: str,
        *,
        max_candidates: int,
        exposure: Exposure,
    ) -> MatchResult:
        _, target_latent = parse_search_type(search_type)
        usable = self._usable(fingers)
        if search_type == "TP/TP":
            usable = _one_per_position(usable)
        shortlist = max(self.settings.shortlist, 3 * max_candidates)
        probes = [cylinders(f.template, self.mcc) for f in usable]

        # A card searched against cards (TP/TP, fingers of two or more known positions):
        # one candidate per person from the fingers' scores fused by their mean (the sum
        # rule); otherwise each finger searches alone and a record's best finger is its
        # score. Per record, per probe finger: its best comparison (and enrolled finger).
        found: dict[int, dict[int, tuple[Comparison, int]]] = {}
        fuse = search_type == "TP/TP" and _is_card(usable)
        if fuse:
            # FAISS indexes are not safe to search while another thread adds to them.
            with self._lock:
                cards = self.index.search_cards(
                    [(f.position, p) for f, p in zip(usable, probes, strict=True)],
                    max_candidates=shortlist,
                    latent=target_latent,
                    cards=max(self.settings.fusion_cards, 3 * max_candidates),
                )
            for card in cards:
                found[card.record] = {i: (c, f) for i, (f, c) in card.fingers.items()}
        else:
            for i, (finger, probe_cyl) in enumerate(zip(usable, probes, strict=True)):
                with self._lock:
                    hits = self.index.search(
                        probe_cyl,
                        max_candidates=shortlist,
                        allowed=Scope(finger.position, target_latent),
                        shortlist=shortlist,
                    )
                    owners = {h.finger: self.index.label(h.finger).record for h in hits}
                for hit in hits:
                    per_finger = found.setdefault(owners[hit.finger], {})
                    known = per_finger.get(i)
                    if known is None or hit.comparison.score > known[0].score:
                        per_finger[i] = (hit.comparison, hit.finger)
        scored = {
            record: _fused(per_finger, len(usable))
            if fuse
            else max((c.score for c, _ in per_finger.values()), default=0.0)
            for record, per_finger in found.items()
        }
        records = self.store.records(list(found))
        ranked = sorted((r for r in found if r in records), key=lambda r: -scored[r])
        exposed = [
            r
            for r in ranked
            if exposure.allows(records[r].subject_category, records[r].date_of_birth)
        ][:max_candidates]
        with self._lock:
            calibration = self._current_calibration()
        candidates = [
            self._candidate(
                rank,
                scored[record],
                found[record],
                records[record],
                search_type,
                calibration,
                fused_over=len(usable) if fuse else None,
                probe=usable[0].template if len(usable) == 1 else None,
            )
            for rank, record in enumerate(exposed, start=1)
        ]
        target = LATENT if target_latent else TENPRINT
        return MatchResult(candidates=candidates, gallery_size=self.store.collection_size(target))

    def _candidate(
        self,
        rank: int,
        score: float,
        per_finger: dict[int, tuple[Comparison, int]],
        record: FingerRecord,
        search_type: str,
        calibration: Calibration | None,
        *,
        fused_over: int | None,
        probe: Template | None = None,
    ) -> Candidate:
        # The finger that matched best is shown for verification, and the false-match
        # rate is that of its score: the calibration is of single-finger comparisons.
        comparison, template_id = max(per_finger.values(), key=lambda x: x[0].score)
        if calibration is None:
            rate: float | None = None
            words = (
                f"not calibrated: no calibration file and fewer than"
                f" {GALLERY_CALIBRATION_MIN_FINGERS} enrolled fingers to estimate it from"
            )
        else:
            rate, words = calibration.false_match_rate(comparison.score)
            if fused_over is not None:
                words = f"best single finger: {words}"
        image = self.store.image(template_id)
        position = self.store.position(template_id)
        return Candidate(
            rank=rank,
            reference=record.reference,
            score=min(1.0, max(0.0, score)),
            distance=1.0 - min(1.0, max(0.0, score)),
            false_match_rate=rate,
            false_match_words=words[:200],
            provenance=f"{record.collection}; {record.provenance}"[:200],
            synthetic=record.synthetic,
            image=None if image is None else base64.b64encode(image),
            details=FingerHit(
                search_type=search_type,
                finger_position=position if 0 <= position <= 40 else None,
                matched_minutiae=comparison.pairs,
                fingers_compared=fused_over,
                fingers_scored=None
                if fused_over is None
                else sum(1 for c, _ in per_finger.values() if c.score > 0),
                minutiae_pairs=_chart(comparison, probe, self.store.frame(template_id)),
            ),
        )

    def _current_calibration(self) -> Calibration | None:
        """The configured calibration, else impostor pairs of the gallery itself.

        Two fingers of different records are almost always different fingers (the same
        finger enrolled twice is rare), so their scores estimate the impostor
        distribution of this gallery. Recomputed when the gallery has doubled.
        """
        if self.settings.calibration is not None:
            return self._calibration
        fingers = self.index.fingers()
        n = len(fingers)
        if n < GALLERY_CALIBRATION_MIN_FINGERS:
            return None
        if self._calibration is not None and n < 2 * self._calibrated_at:
            return self._calibration
        rng = np.random.default_rng(n)
        scores: list[float] = []
        tries = 0
        while len(scores) < GALLERY_CALIBRATION_PAIRS and tries < 4 * GALLERY_CALIBRATION_PAIRS:
            tries += 1
            a, b = (int(fingers[i]) for i in rng.choice(n, size=2, replace=False))
            if self.index.label(a).record == self.index.label(b).record:
                continue
            scores.append(
                compare(self.index.cylinders_of(a), self.index.cylinders_of(b), self.mcc).score
            )
        if len(scores) < 100:
            return None
        self._calibration = Calibration.from_scores(
            scores, f"gallery impostor pairs, {len(scores):,}"
        )
        self._calibrated_at = n
        return self._calibration

    def delete(self, reference: str, *, reason: str) -> None:
        self.store.delete(reference, reason)
        self.refresh()

    def describe(self) -> dict[str, Any]:
        return {
            "category": "finger",
            "records": self.store.count(),
            "fingers": len(self.index),
            "cylinders": self.index.cylinders,
            "extractor": self.extractor.name,
            "matcher": f"MCC{self.mcc.ns}b LSS-R (Cappelli et al. 2010)",
            "index": f"{self.index.kind} (exact below {self.index_params.exact_below:,}"
            f" cylinders), nprobe {self.index_params.nprobe}",
            "shortlist": self.index_params.shortlist,
            "search_types": list(SEARCH_TYPES),
            "calibration": str(self.settings.calibration or "gallery impostor pairs"),
            "index_bytes": self.index.nbytes(),
        }

    def close(self) -> None:
        with self._lock:
            if self._unsaved:
                self._save()
        self.store.close()


def _stored_template(template_id: int, data: bytes) -> Template:
    try:
        return Template.from_bytes(data)
    except ValueError as exc:
        raise StorageError(f"finger template {template_id} in the store is corrupt: {exc}") from exc


def _chart(
    comparison: Comparison, probe: Template | None, frame: tuple[int, int] | None
) -> list[list[float]] | None:
    """The comparison's minutia pairs as fractions of each template's frame (the same
    fractions of the image as shown, whatever its resolution), or None when unknown."""
    if probe is None or frame is None or not comparison.paired:
        return None

    def part(value: float, size: int) -> float:
        return round(min(1.0, max(0.0, value / max(1, size))), 4)

    return [
        [part(px, probe.width), part(py, probe.height), part(cx, frame[0]), part(cy, frame[1])]
        for px, py, cx, cy in comparison.paired[:100]
    ]
