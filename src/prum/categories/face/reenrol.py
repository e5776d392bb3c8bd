"""Upgrade a gallery to another model set (``prum face reenrol``), resumably.

Templates of two models cannot be compared, so a gallery never mixes them in a search:
every record is embedded again from the photo the store keeps, in batches, each batch one
transaction that replaces the batch's templates. Until the last record is done the
gallery keeps answering with its old model (its index and calibration skip the upgraded
rows); a crash loses at most the current batch, and a rerun starts where it stopped
(records already holding the new model's template are not touched). When every record is
done, the gallery switches: its model id, the index (rebuilt from the new templates) and
its calibration (the next search fits a new one, with the new model's reference meanwhile).

A record whose photo is not kept, or in which the new model finds no face, blocks the
switch: the command lists them, and the operator deletes them or enrols a new photo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from prum.categories.face.bulk import PhotoItem, extract_all
from prum.categories.face.gallery import FaceGallery
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.types import FaceBox
from prum.categories.interface import SubjectCategory

# Records re-embedded per transaction: a crash repeats at most this many.
BATCH = 256


@dataclass
class ReenrolReport:
    model_id: str
    upgraded: int = 0
    already: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # id, code, message
    switched: bool = False


def reenrol(
    gallery: FaceGallery,
    embedder: str,
    *,
    workers: int = 1,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReenrolReport:
    """Embed every record of ``gallery`` again with the model set ``embedder``."""
    face = gallery.settings.face.model_copy(update={"embedder": embedder})
    pipeline = FacePipeline(face)
    target = pipeline.model_id
    store = gallery.store
    done, total = store.count_model(target)
    report = ReenrolReport(target, already=done)
    if on_total:
        on_total(total)
    if on_progress and done:
        on_progress(done)
    after = 0
    while rows := store.records_to_reenrol(target, after_id=after, batch=BATCH):
        after = rows[-1][0]
        upgraded: list[tuple[int, NDArray[np.float32]]] = []
        for result in extract_all(_items(rows), face, use="enrol", workers=workers, check=False):
            rid = int(result.item.source_key)
            if result.error_code is not None or result.vector is None:
                report.failed.append((rid, result.error_code or "", result.error or ""))
            else:
                upgraded.append((rid, result.vector))
        store.replace_templates(target, upgraded)
        report.upgraded += len(upgraded)
        if on_progress:
            on_progress(len(rows))
    if not report.failed and store.count_model(target)[0] == total:
        gallery.adopt_model(target, pipeline.embedder.dim)
        report.switched = True
    return report


def _items(rows: list[tuple[int, bytes | None, list[int] | None]]) -> Iterator[PhotoItem]:
    for rid, image, box in rows:
        refusal = None if image is not None else ("no_image", "the store keeps no photo")
        yield PhotoItem(
            path=Path(f"record-{rid}"),
            source_key=str(rid),
            identity=None,
            category=SubjectCategory.SUSPECT,  # unused: only the template is kept
            # The face chosen at enrolment: the new detector's box that overlaps it.
            box=None if not box else FaceBox(*box),
            data=image or b"",
            refusal=refusal,
        )
