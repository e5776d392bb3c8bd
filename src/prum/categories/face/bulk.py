"""Bulk work on many photos: enrolment into a gallery, templates for an evaluation.

Photos are streamed (a window of work in flight, never the whole set in memory) to
worker processes started with ``spawn``: each builds its own dlib and MediaPipe
models, which are neither thread- nor fork-safe. The parent is the only writer of the
gallery and commits in small transactions keyed by each photo's source, so a run
killed at any point resumes where it stopped, losing and duplicating nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.categories.face.config import FaceSettings
from prum.categories.face.decode import sniff_format
from prum.categories.face.pipeline import FacePipeline, Use
from prum.categories.face.store import NewRecord
from prum.categories.face.types import FaceBox
from prum.categories.interface import SubjectCategory
from prum.errors import InvalidRecord, PrumError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".jp2"}
COMMIT_EVERY = 16


@dataclass(frozen=True)
class PhotoItem:
    """One photo to process, with what the manifest says about it."""

    path: Path
    source_key: str
    identity: str | None = None
    group: str | None = None
    category: SubjectCategory = SubjectCategory.SUSPECT
    date_of_birth: dt.date | None = None
    provenance: str = ""
    box: FaceBox | None = None
    # An image already taken out of a container (a Type-10 record of a transaction):
    # used instead of reading ``path``. A container that could not be read at all
    # travels as a refusal (code, message), so one bad file never stops a run.
    data: bytes | None = field(default=None, repr=False)
    refusal: tuple[str, str] | None = None


@dataclass(frozen=True)
class PhotoResult:
    item: PhotoItem
    model_id: str | None = None
    vector: NDArray[np.float32] | None = None
    box: list[int] | None = None
    quality_overall: float | None = None
    quality: dict[str, float] | None = None
    image: bytes | None = None
    error_code: str | None = None
    error: str | None = None


# --- reading sources ------------------------------------------------------------------


def folder_items(
    folder: Path, *, category: SubjectCategory, provenance: str
) -> Iterator[PhotoItem]:
    """Every image under ``folder`` (sorted, so a resumed run sees the same order)."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield PhotoItem(
                path=path,
                source_key=str(path.relative_to(folder)),
                category=category,
                provenance=provenance,
            )


def manifest_items(
    manifest: Path, *, category: SubjectCategory, provenance: str
) -> Iterator[PhotoItem]:
    """Rows of a CSV manifest: ``file`` (required), and optionally ``identity``,
    ``group``, ``category``, ``date_of_birth`` (YYYY-MM-DD), ``provenance``, ``box``
    (left,top,right,bottom). Paths are relative to the manifest's folder, or to its
    ``images/`` subfolder when not found there.
    """
    base = manifest.parent
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "file" not in reader.fieldnames:
                raise InvalidRecord(f"{manifest}: a manifest needs a 'file' column")
            for line, row in enumerate(reader, start=2):
                yield _manifest_row(base, manifest, line, row, category, provenance)
    except (UnicodeDecodeError, csv.Error) as exc:
        # A photo or a transaction given where a manifest was expected lands here.
        raise InvalidRecord(
            f"{manifest} is not a CSV manifest (UTF-8 text with a 'file' column): {exc}"
        ) from exc


def _manifest_row(
    base: Path,
    manifest: Path,
    line: int,
    row: dict[str, str],
    category: SubjectCategory,
    provenance: str,
) -> PhotoItem:
    where = f"{manifest.name} line {line}"
    name = (row.get("file") or "").strip()
    if not name:
        raise InvalidRecord(f"{where}: the 'file' column is empty")
    path = base / name
    if not path.exists() and (base / "images" / name).exists():
        path = base / "images" / name
    try:
        cat = SubjectCategory(row["category"]) if row.get("category") else category
    except ValueError:
        allowed = ", ".join(c.value for c in SubjectCategory)
        raise InvalidRecord(
            f"{where}: unknown category {row['category']!r} (use {allowed})"
        ) from None
    dob = None
    if row.get("date_of_birth"):
        try:
            dob = dt.date.fromisoformat(row["date_of_birth"])
        except ValueError:
            raise InvalidRecord(f"{where}: date_of_birth must be YYYY-MM-DD") from None
    return PhotoItem(
        path=path,
        source_key=name,
        identity=row.get("identity") or None,
        group=row.get("group") or None,
        category=cat,
        date_of_birth=dob,
        provenance=row.get("provenance") or provenance,
        box=parse_box(row["box"]) if row.get("box") else None,
    )


def parse_box(text: str) -> FaceBox:
    try:
        left, top, right, bottom = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise InvalidRecord(f"a box is 'left,top,right,bottom' in pixels; got {text!r}") from None
    if right <= left or bottom <= top:
        raise InvalidRecord(f"the box {text!r} is empty")
    return FaceBox(left, top, right, bottom)


# --- the worker side --------------------------------------------------------------------

_worker_pipeline: FacePipeline | None = None


def _init_worker(settings_json: str) -> None:
    global _worker_pipeline
    # One model instance per process, one thread each: two processes on two cores
    # beat two threads fighting over one dlib object.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_pipeline = FacePipeline(FaceSettings.model_validate_json(settings_json))


def process_photo(
    item: PhotoItem, pipeline: FacePipeline, use: Use, *, check: bool = True
) -> PhotoResult:
    if item.refusal is not None:
        return PhotoResult(item, error_code=item.refusal[0], error=item.refusal[1])
    try:
        data = item.path.read_bytes() if item.data is None else item.data
    except OSError as exc:
        return PhotoResult(item, error_code="unreadable_file", error=str(exc))
    try:
        # A photo of a bulk run is a portrait of a collection: a second face is a
        # bystander, so the principal face is taken (face/principal.py), not refused.
        face = pipeline.extract(data, use=use, box=item.box, check=check, principal=True)
    except PrumError as exc:
        return PhotoResult(item, error_code=exc.code, error=exc.message)
    assert face.template is not None
    return PhotoResult(
        item,
        model_id=face.template.model_id,
        vector=face.template.vector,
        box=face.box.as_list(),
        quality_overall=face.quality.overall,
        quality=dict(face.quality.components),
        image=data,
    )


def _work(args: tuple[PhotoItem, Use, bool]) -> PhotoResult:
    assert _worker_pipeline is not None, "worker not initialised"
    item, use, check = args
    return process_photo(item, _worker_pipeline, use, check=check)


def extract_all(
    items: Iterable[PhotoItem],
    settings: FaceSettings,
    *,
    use: Use,
    workers: int,
    check: bool = True,
    window: int = 64,
) -> Iterator[PhotoResult]:
    """Templates for ``items``, in completion order, on ``workers`` processes.

    ``workers == 1`` runs in this process (no start-up cost for small jobs).
    """
    if workers <= 1:
        pipeline = FacePipeline(settings)
        for item in items:
            yield process_photo(item, pipeline, use, check=check)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(settings.model_dump_json(),),
    ) as pool:
        pending: set[Future[PhotoResult]] = set()
        iterator = iter(items)
        for item in islice(iterator, window):
            pending.add(pool.submit(_work, (item, use, check)))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
            for item in islice(iterator, len(done)):
                pending.add(pool.submit(_work, (item, use, check)))


# --- enrolment --------------------------------------------------------------------------


@dataclass
class EnrolmentReport:
    enrolled: int = 0
    already_present: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # key, code, message

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


def enrol_photos(
    gallery: Any,
    items: Iterable[PhotoItem],
    *,
    workers: int,
    on_progress: Callable[[int], None] | None = None,
    batch: int = 1024,
) -> EnrolmentReport:
    """Enrol ``items`` into ``gallery`` (a FaceGallery), resumably.

    Items whose source key is already stored are skipped before any work is done.
    """
    report = EnrolmentReport()
    pending: list[NewRecord] = []

    def commit() -> None:
        if pending:
            gallery.add_records(pending)
            report.enrolled += len(pending)
            pending.clear()

    def todo() -> Iterator[PhotoItem]:
        iterator = iter(items)
        while chunk := list(islice(iterator, batch)):
            present = gallery.store.existing_source_keys([i.source_key for i in chunk])
            for item in chunk:
                if item.source_key in present:
                    report.already_present += 1
                    if on_progress:
                        on_progress(1)
                else:
                    yield item

    for result in extract_all(todo(), gallery.settings.face, use="enrol", workers=workers):
        if result.error_code is not None:
            report.refused[result.error_code] += 1
            report.refusals.append((result.item.source_key, result.error_code, result.error or ""))
        else:
            assert result.vector is not None and result.model_id is not None
            item = result.item
            pending.append(
                NewRecord(
                    subject_category=item.category,
                    provenance=item.provenance,
                    model_id=result.model_id,
                    template=result.vector,
                    date_of_birth=item.date_of_birth,
                    person_key=item.identity,
                    source_key=item.source_key,
                    image=result.image,
                    image_sha256=hashlib.sha256(result.image or b"").hexdigest(),
                    image_format=sniff_format(result.image or b""),
                    face_box=result.box,
                    quality_overall=result.quality_overall,
                    quality=result.quality,
                )
            )
            if len(pending) >= COMMIT_EVERY:
                commit()
        if on_progress:
            on_progress(1)
    commit()
    gallery.save_index()
    return report
