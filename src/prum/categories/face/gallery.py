"""The national face gallery: the face category's enrol / search / delete / describe.

It ties the system of record (gallery/store.py), the FAISS vector index derived from
it (gallery/vector_index.py), the face pipeline and the score calibration together.
The index is a cache of the store: it records how far it has caught up (the last
record id and deletion sequence it holds) and replays the rest on open, so a crash
between a database commit and an index save loses nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection

from prum.categories.face.calibrated import Calibrated, combine
from prum.categories.face.calibration import ImpostorDistribution, similarity
from prum.categories.face.decode import sniff_format
from prum.categories.face.fused import MODEL_SET, model_set_of
from prum.categories.face.fusion import DLIB_DIM, fused_distances, fused_pair_distances
from prum.categories.face.index import UNKNOWN_DOB, VectorIndex
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.reference import reference_for
from prum.categories.face.store import FaceStore, NewRecord
from prum.categories.face.types import FaceBox, QualityReport, Template
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.errors import (
    BadInput,
    InvalidLabelledSet,
    InvalidRecord,
    ModelMismatch,
    NotEnoughPeople,
)

EPOCH = dt.date(1970, 1, 1)

# DESIGN.md section 7: a candidate list never exceeds 100, whatever is configured.
HARD_MAX_CANDIDATES = 100

# Impostor comparisons kept for calibration: 1M pairs resolve false-match rates down
# to about 1e-6 empirically; below that the tail model takes over.
CALIBRATION_PAIRS = 1_000_000
# Templates sampled from a large gallery to draw those pairs from.
CALIBRATION_SAMPLE = 20_000
GALLERY_SOURCE = "gallery sample"


@dataclass(frozen=True)
class FaceCandidate:
    rank: int
    reference: str
    distance: float
    score: float
    false_match_rate: float | None  # None when the gallery cannot be calibrated yet
    false_match_words: str
    subject_category: SubjectCategory
    provenance: str
    synthetic: bool
    quality_overall: float | None


@dataclass(frozen=True)
class FaceSearchResult:
    model_id: str
    gallery_size: int
    index_kind: str
    probe_box: FaceBox | None
    probe_quality: QualityReport | None
    candidates: list[FaceCandidate]
    timings_ms: dict[str, float] = field(default_factory=dict)


def dob_days(date_of_birth: dt.date | None) -> int:
    return UNKNOWN_DOB if date_of_birth is None else (date_of_birth - EPOCH).days


class FaceGallery:
    """One node's face gallery. Thread-safe for concurrent searches."""

    def __init__(self, settings: Settings, pipeline: FacePipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline or FacePipeline(settings.face)
        self.store = FaceStore(settings.resolved_database_url(), country=settings.country)
        self.index_dir = settings.data_dir / "face-index"
        self._write_lock = threading.Lock()
        self._index: VectorIndex | None = None
        self._calibration: Calibrated | None = None
        self._calibration_lock = threading.Lock()

    def close(self) -> None:
        if self._index is not None:
            self.save_index()
        self.store.close()

    # --- the model of this gallery ---------------------------------------------------

    @property
    def model_id(self) -> str | None:
        return self.store.get_meta("model_id")

    def _check_model(self, template: Template, conn: Connection | None = None) -> None:
        """Refuse a template of another model; the first one names the gallery's model
        (on ``conn`` when the caller's transaction is open: the national-systems one)."""
        model_id = self.model_id
        if model_id is None:
            for key, value in (("model_id", template.model_id), ("dim", str(template.dim))):
                if conn is None:
                    self.store.set_meta(key, value)
                else:
                    self.store.set_meta_in(conn, key, value)
        elif model_id != template.model_id:
            raise ModelMismatch(
                f"this gallery holds templates of {model_id}; a template of"
                f" {template.model_id} cannot be compared with them (re-enrol the gallery"
                " with the new model instead of mixing)",
                gallery_model=model_id,
                template_model=template.model_id,
            )

    # --- the vector index, derived from the store -------------------------------------

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            with self._write_lock:
                if self._index is None:
                    self._index = self._open_index()
        return self._index

    @property
    def fused(self) -> bool:
        """Whether the gallery holds "dlib+sface" templates: its index then holds their
        dlib half (128 floats, a shortlist) and a search re-scores the shortlist with the
        fused score from the stored templates."""
        return model_set_of(self.model_id) == MODEL_SET

    def _index_dim(self) -> int:
        return DLIB_DIM if self.fused else int(self.store.get_meta("dim") or 128)

    def _open_index(self) -> VectorIndex:
        dim = self._index_dim()
        index = VectorIndex.open(self.index_dir, dim, self.settings.index)
        if index.meta.get("model_id") not in (None, self.model_id):
            index = VectorIndex(dim, self.settings.index, self.index_dir)  # stale: rebuild
        self._catch_up(index)
        return index

    def _catch_up(self, index: VectorIndex) -> None:
        """Replay records and deletions the saved index has not seen yet."""
        last_id = int(index.meta.get("last_record_id", 0))
        last_seq = int(index.meta.get("last_deletion_seq", 0))
        deletions = self.store.deletions_after(last_seq)
        if deletions:
            index.remove(np.array([rid for _, rid in deletions], dtype=np.int64))
            index.meta["last_deletion_seq"] = deletions[-1][0]
        batch: list[Any] = []
        added = 0
        for row in self.store.iter_templates(after_id=last_id, model_id=self.model_id):
            batch.append(row)
            if len(batch) >= 10_000:
                added += self._add_rows(index, batch, self._index_dim())
                batch = []
        added += self._add_rows(index, batch, self._index_dim())
        index.meta["model_id"] = self.model_id
        if added or deletions:
            if index.needs_rebuild:
                index.rebuild()
            index.save()

    @staticmethod
    def _add_rows(index: VectorIndex, rows: Sequence[Any], dim: int) -> int:
        if not rows:
            return 0
        index.add(
            np.array([r.id for r in rows], dtype=np.int64),
            np.stack([r.vector[:dim] for r in rows]).astype(np.float32),
            np.array([r.category_code for r in rows], dtype=np.uint8),
            np.array([UNKNOWN_DOB if r.dob_days is None else r.dob_days for r in rows], np.int32),
        )
        index.meta["last_record_id"] = int(rows[-1].id)
        return len(rows)

    def save_index(self) -> None:
        """Persist the index (choosing a new kind first if the gallery outgrew it)."""
        with self._write_lock:
            if self._index is not None:
                if self._index.needs_rebuild:
                    self._index.rebuild()
                self._index.save()

    def rebuild_index(self) -> None:
        """Throw the index away and build it again from the system of record."""
        with self._write_lock:
            index = VectorIndex(self._index_dim(), self.settings.index, self.index_dir)
            self._catch_up(index)
            index.rebuild()
            index.save()
            self._index = index

    def model_warning(self) -> str | None:
        """Why this gallery cannot answer with the configured model set, or None."""
        held, made = self.model_id, self.pipeline.model_id
        if held is None or held == made:
            return None
        wanted = self.settings.face.embedder
        return (
            f"the face gallery holds templates of {model_set_of(held) or held}, the face"
            f" settings make {wanted} ones: face searches will fail until"
            f" `prum face reenrol --embedder {wanted}` has run (or set PRUM_FACE__EMBEDDER"
            f" to the gallery's model set)"
        )

    def adopt_model(self, model_id: str, dim: int) -> None:
        """Switch the gallery to another model once every record holds its template
        (face/reenrol.py): the index is rebuilt and the calibration refitted."""
        self.store.set_meta("model_id", model_id)
        self.store.set_meta("dim", str(dim))
        with self._calibration_lock:
            self._calibration = None
        self.rebuild_index()

    # --- enrolment --------------------------------------------------------------------

    def enroll(
        self,
        image: bytes,
        *,
        category: SubjectCategory,
        provenance: str,
        date_of_birth: dt.date | None = None,
        person_key: str | None = None,
        box: FaceBox | None = None,
        source_key: str | None = None,
    ) -> str:
        """Enrol one photo; returns the new record's reference number."""
        face = self.pipeline.extract(image, use="enrol", box=box)
        assert face.template is not None
        record = NewRecord(
            subject_category=category,
            provenance=provenance,
            model_id=face.template.model_id,
            template=face.template.vector,
            date_of_birth=date_of_birth,
            person_key=person_key,
            source_key=source_key,
            image=image,
            image_sha256=hashlib.sha256(image).hexdigest(),
            image_format=sniff_format(image),
            face_box=face.box.as_list(),
            quality_overall=face.quality.overall,
            quality=dict(face.quality.components),
        )
        return self.add_records([record])[0][1]

    def add_records(self, records: Sequence[NewRecord]) -> list[tuple[int, str]]:
        """Store records (one transaction) and add them to the index."""
        if not records:
            return []
        model_ids = {r.model_id for r in records}
        if len(model_ids) != 1:
            raise ModelMismatch(f"one batch mixes templates of {sorted(model_ids)}")
        for r in records:
            if r.date_of_birth is not None and r.date_of_birth > dt.date.today():
                raise InvalidRecord(f"date of birth {r.date_of_birth} is in the future")
        first = records[0]
        self._check_model(Template(first.model_id, np.asarray(first.template, np.float32)))
        index = self.index
        with self._write_lock:
            stored = self.store.insert_many(records)
            # Replaying from the store (not from `records`) keeps the index exactly in
            # step with what was committed, including skipped duplicates.
            self._catch_up_unsaved(index)
        return stored

    def _catch_up_unsaved(self, index: VectorIndex) -> None:
        last_id = int(index.meta.get("last_record_id", 0))
        rows = list(self.store.iter_templates(after_id=last_id, model_id=self.model_id))
        self._add_rows(index, rows, self._index_dim())

    # --- search -----------------------------------------------------------------------

    def search(
        self,
        probe: bytes,
        *,
        max_candidates: int | None = None,
        box: FaceBox | None = None,
        exposure: Exposure | None = None,
        max_distance: float | None = None,
    ) -> FaceSearchResult:
        started = time.perf_counter()
        face = self.pipeline.extract(probe, use="probe", box=box)
        assert face.template is not None
        extracted = time.perf_counter()
        result = self.search_template(
            face.template,
            max_candidates=max_candidates,
            exposure=exposure,
            max_distance=max_distance,
        )
        return FaceSearchResult(
            model_id=result.model_id,
            gallery_size=result.gallery_size,
            index_kind=result.index_kind,
            probe_box=face.box,
            probe_quality=face.quality,
            candidates=result.candidates,
            timings_ms={
                "extract": 1000 * (extracted - started),
                **(face.timings_ms or {}),
                **result.timings_ms,
            },
        )

    def search_template(
        self,
        template: Template,
        *,
        max_candidates: int | None = None,
        exposure: Exposure | None = None,
        max_distance: float | None = None,
        today: dt.date | None = None,
    ) -> FaceSearchResult:
        k = self._candidate_cap(max_candidates)
        model_id = self.model_id
        if model_id is None:
            return FaceSearchResult(template.model_id, 0, "empty", None, None, [])
        self._check_model(template)
        exposure = exposure or Exposure()
        started = time.perf_counter()
        vector = np.asarray(template.vector, dtype=np.float32)
        fused = self.fused
        hits = self.index.search(
            vector[:DLIB_DIM] if fused else vector,
            max(k, self.settings.face.fused_shortlist) if fused else k,
            allowed_categories=_codes(exposure.subjects),
            born_before_days=_born_before_days(exposure, today or dt.date.today()),
            exclude_unknown_dob=not exposure.unknown_age_exposed,
            max_distance=None if fused else max_distance,
        )
        searched = time.perf_counter()
        if fused:
            hits = self._rescore(vector, hits, k, max_distance)
        records = self.store.get_by_ids([rid for rid, _ in hits])
        calibration = self.calibration
        uncalibrated = (
            # Words for the requesting examiner: the administrator's remedy (`prum face
            # calibrate --labelled FOLDER`) is in docs/faces.md, not in an answer.
            "not calibrated: the gallery holds too few people to estimate false-match"
            " rates and its model has no reference figures"
        )
        candidates = []
        for rank, (rid, distance) in enumerate(hits, start=1):
            record = records.get(rid)
            if record is None:  # deleted between the index search and this read
                continue
            candidates.append(
                FaceCandidate(
                    rank=rank,
                    reference=record.reference,
                    distance=float(distance),
                    score=similarity(float(distance)),
                    false_match_rate=(
                        None if calibration is None else calibration.fmr_at(float(distance))
                    ),
                    false_match_words=(
                        uncalibrated if calibration is None else calibration.describe(distance)
                    ),
                    subject_category=record.subject_category,
                    provenance=record.provenance,
                    synthetic=record.synthetic,
                    quality_overall=record.quality_overall,
                )
            )
        return FaceSearchResult(
            model_id=model_id,
            gallery_size=len(self.index),
            index_kind=self.index.kind,
            probe_box=None,
            probe_quality=None,
            candidates=candidates,
            timings_ms={
                "index_search": 1000 * (searched - started),
                "fetch": 1000 * (time.perf_counter() - searched),
            },
        )

    def _rescore(
        self,
        probe: np.ndarray[Any, np.dtype[np.float32]],
        hits: list[tuple[int, float]],
        k: int,
        max_distance: float | None,
    ) -> list[tuple[int, float]]:
        """The shortlist found on dlib's half, ranked by the fused distance."""
        templates = self.store.templates_by_ids([rid for rid, _ in hits])
        ids = [rid for rid, _ in hits if rid in templates]
        if not ids:
            return []
        distances = fused_distances(probe, np.stack([templates[rid] for rid in ids]))
        order = np.argsort(distances, kind="stable")[:k]
        scored = [(ids[i], float(distances[i])) for i in order]
        if max_distance is not None:
            scored = [(rid, d) for rid, d in scored if d <= max_distance]
        return scored

    def _candidate_cap(self, requested: int | None) -> int:
        """The requester's wish, within this node's configured cap."""
        cap = self.settings.face.max_candidates
        if requested is None:
            return cap
        if not 1 <= requested <= HARD_MAX_CANDIDATES:
            raise BadInput(
                f"max_candidates must be between 1 and {HARD_MAX_CANDIDATES}; got {requested}"
            )
        return min(requested, cap)

    # --- deletion ---------------------------------------------------------------------

    def delete(self, reference: str, *, reason: str) -> None:
        """Erase a record from the store and the index (erasure, retention)."""
        self.store.delete(reference, reason)
        self.refresh()

    def refresh(self) -> None:
        """Catch the index up with what the store holds: records and deletions that
        another writer (the national-systems interface, another process) committed."""
        index = self.index
        with self._write_lock:
            deletions = self.store.deletions_after(int(index.meta.get("last_deletion_seq", 0)))
            if deletions:
                index.remove(np.array([rid for _, rid in deletions], dtype=np.int64))
                index.meta["last_deletion_seq"] = deletions[-1][0]
            self._catch_up_unsaved(index)

    # --- calibration ------------------------------------------------------------------

    @property
    def calibration(self) -> Calibrated | None:
        """What the false-match rates come from (face/calibrated.py): the gallery's own
        impostor distribution, the model set's shipped reference, or both; None when the
        gallery holds too few people, none was supplied and the model has no reference.

        Rebuilt from the gallery when it has more than doubled since the last
        gallery-made calibration: rates measured on 60 records say little about 6M.
        """
        with self._calibration_lock:
            if self._calibration is None or self._calibration_stale():
                self._calibration = self._load_or_build_calibration()
            return self._calibration

    def _calibration_stale(self) -> bool:
        size = self.store.get_meta("calibrated_at_size")
        return size is not None and len(self.index) > 2 * int(size)

    def _load_or_build_calibration(self) -> Calibrated | None:
        model_id = self.model_id or self.pipeline.model_id
        data = self.store.latest_calibration(model_id)
        own: ImpostorDistribution | None = None
        if data is not None and not self._calibration_stale():
            own = ImpostorDistribution.from_bytes(data)
        else:
            try:
                own = self._store_calibration(self._gallery_impostors(model_id))
            except (InvalidLabelledSet, NotEnoughPeople):
                own = None
        return self._combine(own, model_id)

    def _combine(self, own: ImpostorDistribution | None, model_id: str) -> Calibrated | None:
        model_set = model_set_of(model_id)
        face = self.settings.face
        return combine(
            own,
            None if model_set is None else reference_for(model_set),
            reference_factor=face.reference_fmr_factor,
            own_min_comparisons=face.own_calibration_min_comparisons,
        )

    def calibrate(self, distribution: ImpostorDistribution | None = None) -> ImpostorDistribution:
        """Keep a new impostor distribution with the gallery (from it, or supplied)."""
        model_id = self.model_id or self.pipeline.model_id
        if distribution is None:
            distribution = self._gallery_impostors(model_id)
        elif distribution.model_id != model_id:
            raise ModelMismatch(
                f"the calibration set was embedded with {distribution.model_id};"
                f" this gallery uses {model_id}"
            )
        with self._calibration_lock:
            self._calibration = self._combine(self._store_calibration(distribution), model_id)
        return distribution

    def _store_calibration(self, distribution: ImpostorDistribution) -> ImpostorDistribution:
        self.store.save_calibration(
            distribution.model_id,
            distribution.source,
            distribution.comparisons,
            distribution.to_bytes(),
        )
        gallery_made = distribution.source.startswith(GALLERY_SOURCE)
        self.store.set_meta("calibrated_at_size", str(len(self.index)) if gallery_made else "")
        return distribution

    def _gallery_impostors(self, model_id: str) -> ImpostorDistribution:
        ids, keys, vectors = self.store.sample_templates(
            CALIBRATION_SAMPLE, seed=0, model_id=model_id
        )
        identities = [key or f"record:{rid}" for rid, key in zip(ids, keys, strict=True)]
        if len(set(identities)) < 2:
            raise NotEnoughPeople(
                "the gallery needs records of at least two people before scores can be"
                " calibrated; enrol more, or calibrate from a labelled set"
            )
        return ImpostorDistribution.from_templates(
            vectors,
            identities,
            max_pairs=CALIBRATION_PAIRS,
            seed=0,
            model_id=model_id,
            source=f"{GALLERY_SOURCE} of {len(ids)} records",
            pair_distance=fused_pair_distances if self.fused else None,
        )

    # --- describe ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        index = self.index
        return {
            "category": "face",
            "model_id": self.model_id,
            "records": len(index),
            "index_kind": index.kind,
            "index_bytes": index.memory_bytes(),
            "max_candidates": self.settings.face.max_candidates,
            "model_set": model_set_of(self.model_id),
            # dlib's 0.6; "dlib+sface" distances are on another scale (docs/calibration.md).
            "decision_distance": None if self.fused else self.settings.face.decision_distance,
        }


def _born_before_days(exposure: Exposure, today: dt.date) -> int | None:
    """The index's age filter: days since 1970 that a date of birth must be below."""
    cutoff = exposure.latest_birth_date(today)
    return None if cutoff is None else (cutoff - EPOCH).days + 1


def _codes(categories: Collection[SubjectCategory]) -> list[int] | None:
    if set(categories) == set(SubjectCategory):
        return None
    return [c.code for c in categories]
