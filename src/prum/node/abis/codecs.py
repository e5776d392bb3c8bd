"""Each biometric category's reference data in the ABIS contract's standard formats:
what the node sends from a record it has just prepared (``to_sample``), and how our own
ABIS turns a received sample back into what the built-in category stores
(``from_sample``). The one place that knows the three categories' prepared records;
the adapter and the server stay generic."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table
from sqlalchemy.engine import Engine

from prum.categories.interface import RecordMeta, SubjectCategory
from prum.errors import InvalidRecord
from prum.federation.messages import Category
from prum.node.abis.contract import (
    DnaSample,
    FaceSample,
    FaceTemplate,
    FingerCard,
    FingerSample,
    Sample,
)


@dataclass(frozen=True)
class Codec:
    # The sample of a record the category's preparer made (the national-systems path).
    to_sample: Callable[[Any], Sample]
    # What the category's ingester writes, from a received sample (our ABIS).
    from_sample: Callable[[Any, Sample, SubjectCategory, str], Any]
    # The category's store of a built-in matcher: its record table and engine.
    store_of: Callable[[Any], tuple[Table, Engine]]


# --- faces --------------------------------------------------------------------------


def _face_to_sample(prepared: Any) -> Sample:
    return FaceSample(
        image=_b64(prepared.image or b""),
        face_box=prepared.face_box,
        template=FaceTemplate(
            model_id=prepared.model_id,
            vector=_b64(np.asarray(prepared.template, "<f4").tobytes()),
        ),
        quality=prepared.quality_overall,
    )


def _face_from_sample(
    matcher: Any, sample: Sample, subject: SubjectCategory, source_key: str
) -> Any:
    from prum.categories.face.decode import sniff_format
    from prum.categories.face.ingest import FacePreparer
    from prum.categories.face.store import NewRecord

    if not isinstance(sample, FaceSample):
        raise InvalidRecord("a face ABIS holds face samples only")
    gallery = matcher.gallery
    model = gallery.model_id
    if sample.template is not None and model in (None, sample.template.model_id):
        vector = np.frombuffer(sample.template.vector, "<f4").astype(np.float32)
        return NewRecord(
            subject_category=subject,
            provenance="",
            model_id=sample.template.model_id,
            template=vector,
            source_key=source_key,
            image=sample.image,
            image_sha256=hashlib.sha256(sample.image).hexdigest(),
            image_format=sniff_format(sample.image),
            face_box=sample.face_box,
            quality_overall=sample.quality,
        )
    # Another model than ours: our own template from the image.
    preparer = FacePreparer(gallery.settings, gallery.pipeline)
    return preparer.prepare(
        sample.image, "image", RecordMeta(source_key=source_key, subject=subject)
    )


def _face_store(matcher: Any) -> tuple[Table, Engine]:
    store = matcher.gallery.store
    return store.record_table, store.engine


# --- fingerprints -------------------------------------------------------------------


def _finger_to_sample(prepared: Any) -> Sample:
    return FingerCard(
        collection=prepared.collection,
        fingers=[
            FingerSample(
                position=f.position,
                image=None if f.image is None else _b64(f.image),
                template=_b64(f.template),
            )
            for f in prepared.fingers
        ],
    )


def _finger_from_sample(
    matcher: Any, sample: Sample, subject: SubjectCategory, source_key: str
) -> Any:
    from prum.categories.finger.ingest import PreparedCard
    from prum.categories.finger.store import NewFinger

    if not isinstance(sample, FingerCard):
        raise InvalidRecord("a fingerprint ABIS holds fingerprint cards only")
    fingers = []
    for finger in sample.fingers:
        if finger.template is None or finger.template_format != "prum-minutiae-1":
            raise InvalidRecord(
                f"finger {finger.position}: this ABIS reads minutiae in the prum-minutiae-1"
                " format only"
            )
        fingers.append(NewFinger(finger.position, finger.template, finger.image))
    meta = RecordMeta(source_key=source_key, subject=subject, collection=sample.collection)
    return PreparedCard(fingers, sample.collection, subject, meta)


def _plain_store(matcher: Any) -> tuple[Table, Engine]:
    return matcher.store.record_table, matcher.store.engine


# --- DNA ----------------------------------------------------------------------------


def _dna_to_sample(prepared: Any) -> Sample:
    return DnaSample(profile=json.loads(prepared.profile_json))


def _dna_from_sample(
    matcher: Any, sample: Sample, subject: SubjectCategory, source_key: str
) -> Any:
    from prum.categories.dna.ingest import DnaPreparer

    if not isinstance(sample, DnaSample):
        raise InvalidRecord("a DNA ABIS holds DNA profiles only")
    preparer = DnaPreparer(dna=matcher.settings)
    raw = json.dumps(sample.profile).encode()
    return preparer.prepare(raw, "dna-profile", RecordMeta(source_key=source_key, subject=subject))


def _b64(data: bytes) -> bytes:
    # The contract's Base64Bytes fields take base64 when built, and hold the raw bytes.
    return base64.b64encode(data)


CODECS: dict[Category, Codec] = {
    Category.FACE: Codec(_face_to_sample, _face_from_sample, _face_store),
    Category.FINGER: Codec(_finger_to_sample, _finger_from_sample, _plain_store),
    Category.DNA: Codec(_dna_to_sample, _dna_from_sample, _plain_store),
}


def codec(category: Category) -> Codec:
    found = CODECS.get(category)
    if found is None:
        raise InvalidRecord(f"the {category.value} category cannot be served by an ABIS")
    return found
