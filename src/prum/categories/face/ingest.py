"""Facial images from a national face database, through the node's national-systems
interface (prum.node.systems): decoded, quality-checked and embedded by the face
pipeline (in worker processes for batches), written on the interface's transaction,
then added to the vector index."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from prum.categories.face.decode import sniff_format
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.store import NewRecord
from prum.categories.face.type10 import read_face_transaction
from prum.categories.face.types import Template
from prum.categories.interface import RecordMeta, SubjectCategory
from prum.config import Settings
from prum.errors import InvalidRecord, ModelMismatch

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from prum.categories.face.gallery import FaceGallery

FORMATS = ("image", "ansi-nist")


class FacePreparer:
    def __init__(self, settings: Settings, pipeline: FacePipeline | None = None):
        self.settings = settings.face
        self.pipeline = pipeline or FacePipeline(settings.face)

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> NewRecord:
        if sample_format not in FORMATS:
            raise InvalidRecord(
                f"a face record's sample is one of {', '.join(FORMATS)}, not {sample_format!r}"
            )
        provenance = meta.provenance
        if sample_format == "ansi-nist":
            # A mugshot transaction: its best frontal image is the record (POS, then
            # SAP); the transaction control number joins the provenance.
            tx = read_face_transaction(
                sample,
                self.settings.type10_profile,
                use="enrol",
                max_pixels=self.settings.max_pixels,
                min_enrol_sap=self.settings.type10_min_enrol_sap,
            )
            if not tx.frontal:
                raise InvalidRecord("the transaction holds no frontal facial image to enrol")
            sample = tx.best.data
            provenance = f"{provenance} (TCN {tx.control_number})".strip()
        # A portrait collection: a second face in the background is a bystander.
        face = self.pipeline.extract(sample, use="enrol", principal=True)
        assert face.template is not None
        return NewRecord(
            subject_category=meta.subject or SubjectCategory.SUSPECT,
            provenance=provenance[:200],
            model_id=face.template.model_id,
            template=face.template.vector,
            date_of_birth=meta.date_of_birth,
            person_key=meta.person_key,
            synthetic=meta.synthetic,
            source_key=meta.source_key,
            image=sample,
            image_sha256=hashlib.sha256(sample).hexdigest(),
            image_format=sniff_format(sample),
            face_box=face.box.as_list(),
            quality_overall=face.quality.overall,
            quality=dict(face.quality.components),
        )


class FaceIngester:
    def __init__(self, gallery: FaceGallery):
        self.gallery = gallery

    def preparer(self) -> FacePreparer:
        return FacePreparer(self.gallery.settings, self.gallery.pipeline)

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        records = [item for item in prepared if isinstance(item, NewRecord)]
        if len(records) != len(prepared):
            raise InvalidRecord("the face gallery stores prepared face records only")
        if not records:
            return []
        models = {r.model_id for r in records}
        if len(models) != 1:
            raise ModelMismatch(f"one batch mixes templates of {sorted(models)}")
        first = records[0]
        template = Template(first.model_id, np.asarray(first.template, np.float32))
        self.gallery._check_model(template, conn)
        return [reference for _, reference in self.gallery.store.insert_many_in(conn, records)]

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.gallery.store.delete_in(conn, reference, reason)

    def refresh(self) -> None:
        self.gallery.refresh()
