"""The national face gallery end to end on real photos: enrol, search, filter, delete."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prum.categories.face.bulk import PhotoItem, PhotoResult, enrol_photos
from prum.categories.face.calibration import MIN_IMPOSTORS
from prum.categories.face.gallery import FaceGallery
from prum.categories.face.store import NewRecord
from prum.categories.face.types import FaceBox, Template
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.demo.samples import SampleSet
from prum.errors import (
    BadFaceBox,
    BadInput,
    ImageTooLarge,
    ImageTooSmall,
    NoFaceFound,
    SeveralFaces,
    UnknownReference,
    UnreadableImage,
)

pytestmark = pytest.mark.realdata


def held_out(embedded: list[PhotoResult]) -> tuple[PhotoResult, list[PhotoResult]]:
    """One photo of a person with several photos as the probe; the rest as the gallery."""
    counts: dict[str | None, int] = {}
    for r in embedded:
        counts[r.item.identity] = counts.get(r.item.identity, 0) + 1
    probe = next(r for r in embedded if counts[r.item.identity] >= 2)
    return probe, [r for r in embedded if r is not probe]


def as_record(r: PhotoResult, **kw: object) -> NewRecord:
    assert r.vector is not None and r.model_id is not None
    fields: dict[str, object] = {
        "subject_category": SubjectCategory.CONVICTED,
        "provenance": "test: real sample photo",
        "model_id": r.model_id,
        "template": r.vector,
        "person_key": r.item.identity,
        "source_key": r.item.source_key,
        "image": r.image,
    }
    fields.update(kw)
    return NewRecord(**fields)  # type: ignore[arg-type]


def make_gallery(tmp_path: Path, url: str | None = None, **face: object) -> FaceGallery:
    settings = Settings(data_dir=tmp_path / "node", database_url=url or "", country="AT")
    if face:
        settings = settings.model_copy(update={"face": settings.face.model_copy(update=face)})
    return FaceGallery(settings)


def source_of(gallery: FaceGallery, reference: str) -> str | None:
    return gallery.store.source_key(reference)


def test_held_out_photo_finds_its_mate_first(
    tmp_path: Path, database_url: str, embedded: list[PhotoResult]
) -> None:
    probe, rest = held_out(embedded)
    gallery = make_gallery(tmp_path, database_url)
    gallery.add_records([as_record(r) for r in rest])
    assert probe.vector is not None and probe.model_id is not None
    result = gallery.search_template(Template(probe.model_id, probe.vector))
    top = result.candidates[0]
    mates = {r.item.source_key for r in rest if r.item.identity == probe.item.identity}
    assert source_of(gallery, top.reference) in mates
    assert top.distance < 0.6


def test_candidates_are_ranked_capped_and_calibrated(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    probe, rest = held_out(embedded)
    gallery = make_gallery(tmp_path, max_candidates=5)
    gallery.add_records([as_record(r) for r in rest])
    assert probe.vector is not None and probe.model_id is not None
    template = Template(probe.model_id, probe.vector)
    candidates = gallery.search_template(template).candidates
    assert len(candidates) == min(5, len(rest))
    assert [c.rank for c in candidates] == list(range(1, len(candidates) + 1))
    distances = [c.distance for c in candidates]
    assert distances == sorted(distances)
    # A gallery this small has far too few impostor pairs of its own to state low rates
    # (own_calibration_min_comparisons): the shipped reference of its model set speaks,
    # combined with its own pairs when it has MIN_IMPOSTORS of them, and the words say so.
    people = [r.item.identity for r in rest]
    impostor_pairs = sum(a != b for i, a in enumerate(people) for b in people[i + 1 :])
    rates = [c.false_match_rate for c in candidates]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rates)
    assert rates == sorted(rates)  # type: ignore[type-var]
    assert all("impostors score this high" in c.false_match_words for c in candidates)
    assert all("not checked on this node's photos" in c.false_match_words for c in candidates)
    if impostor_pairs >= MIN_IMPOSTORS:
        assert all("whose own" in c.false_match_words for c in candidates)
    # The requester may ask for fewer than the national cap, never more.
    assert len(gallery.search_template(template, max_candidates=2).candidates) == 2
    assert len(gallery.search_template(template, max_candidates=50).candidates) == len(candidates)
    with pytest.raises(BadInput, match="between 1 and 100"):
        gallery.search_template(template, max_candidates=101)


def test_exposure_filters_withhold_categories_and_minors(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    probe, rest = held_out(embedded)
    gallery = make_gallery(tmp_path, max_candidates=100)
    today = dt.date(2026, 11, 26)
    records = []
    for n, r in enumerate(rest):
        category = SubjectCategory.VICTIM if n % 3 == 0 else SubjectCategory.CONVICTED
        dob = dt.date(2012, 1, 1) if n % 3 == 1 else dt.date(1980, 1, 1)
        records.append(as_record(r, subject_category=category, date_of_birth=dob))
    gallery.add_records(records)
    assert probe.vector is not None and probe.model_id is not None
    template = Template(probe.model_id, probe.vector)
    no_victims = Exposure(subjects=frozenset({SubjectCategory.CONVICTED}))
    found = gallery.search_template(template, exposure=no_victims, max_candidates=100)
    assert found.candidates
    assert {c.subject_category for c in found.candidates} == {SubjectCategory.CONVICTED}
    adults = Exposure(min_age=18)
    found = gallery.search_template(template, exposure=adults, max_candidates=100, today=today)
    minors = {r.item.source_key for n, r in enumerate(rest) if n % 3 == 1}
    assert found.candidates
    assert not {source_of(gallery, c.reference) for c in found.candidates} & minors
    # Nothing allowed is lost to filtering: everyone else is still returned.
    assert len(found.candidates) == len(rest) - len(minors)


def test_deleted_record_never_returns_even_after_reopening(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    probe, rest = held_out(embedded)
    gallery = make_gallery(tmp_path)
    gallery.add_records([as_record(r) for r in rest])
    assert probe.vector is not None and probe.model_id is not None
    template = Template(probe.model_id, probe.vector)
    top = gallery.search_template(template).candidates[0]
    gallery.delete(top.reference, reason="erasure request")
    assert top.reference not in {c.reference for c in gallery.search_template(template).candidates}
    gallery.close()
    reopened = make_gallery(tmp_path)
    assert top.reference not in {c.reference for c in reopened.search_template(template).candidates}
    with pytest.raises(UnknownReference):
        reopened.delete(top.reference, reason="again")


def test_index_catches_up_with_records_committed_before_a_crash(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    _, rest = held_out(embedded)
    gallery = make_gallery(tmp_path)
    gallery.add_records([as_record(r) for r in rest[:5]])
    gallery.close()
    # Committed to the store, but the process "died" before the index saw them.
    gallery.store.insert_many([as_record(r) for r in rest[5:]])
    reopened = make_gallery(tmp_path)
    assert len(reopened.index) == len(rest)
    reopened.rebuild_index()
    assert len(reopened.index) == len(rest)


def test_enrolment_and_search_from_photos(tmp_path: Path, samples: SampleSet) -> None:
    gallery = make_gallery(tmp_path)
    (probe_path, identity), *others = samples.images
    mates = [p for p, i in others if i == identity][:2]
    strangers = [p for p, i in others if i != identity][:2]
    refs = {}
    for path in mates + strangers:
        refs[
            gallery.enroll(
                path.read_bytes(),
                category=SubjectCategory.SUSPECT,
                provenance="test",
                source_key=path.name,
            )
        ] = path
    result = gallery.search(probe_path.read_bytes())
    assert result.probe_quality is not None and result.probe_box is not None
    assert refs[result.candidates[0].reference] in mates
    stored = gallery.store.image(result.candidates[0].reference)
    assert stored is not None and stored[0] == refs[result.candidates[0].reference].read_bytes()


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("zero bytes", UnreadableImage),
        ("truncated jpeg", UnreadableImage),
        ("not an image", UnreadableImage),
        ("1x1", ImageTooSmall),
        ("100 megapixels", ImageTooLarge),
        ("no face", NoFaceFound),
    ],
)
def test_bad_photos_are_refused_and_nothing_is_stored(
    tmp_path: Path, samples: SampleSet, name: str, error: type[Exception]
) -> None:
    real = samples.images[0][0].read_bytes()
    bad = {
        "zero bytes": b"",
        "truncated jpeg": real[: len(real) // 3],
        "not an image": b"GIF89a? no: plain text",
        "1x1": jpeg(Image.new("RGB", (1, 1))),
        "100 megapixels": _png(Image.new("L", (10_000, 10_000))),
        "no face": jpeg(Image.fromarray(_noise(480, 640))),
    }[name]
    gallery = make_gallery(tmp_path)
    with pytest.raises(error):
        gallery.enroll(bad, category=SubjectCategory.SUSPECT, provenance="test")
    with pytest.raises(error):
        gallery.search(bad)
    assert gallery.store.count() == 0


def test_group_photo_needs_a_chosen_face(tmp_path: Path, samples: SampleSet) -> None:
    group = samples.group_photos[0].read_bytes()
    gallery = make_gallery(tmp_path)
    with pytest.raises(SeveralFaces) as refused:
        gallery.enroll(group, category=SubjectCategory.SUSPECT, provenance="test")
    boxes = refused.value.details["boxes"]
    assert len(boxes) >= 2
    with pytest.raises(BadFaceBox):
        gallery.enroll(
            group, category=SubjectCategory.SUSPECT, provenance="t", box=FaceBox(0, 0, 5, 5)
        )
    assert gallery.store.count() == 0
    reference = gallery.enroll(
        group, category=SubjectCategory.SUSPECT, provenance="test", box=FaceBox(*boxes[0])
    )
    assert gallery.store.get(reference).face_box is not None


def test_bulk_enrolment_is_idempotent(tmp_path: Path, samples: SampleSet) -> None:
    gallery = make_gallery(tmp_path)
    items = [PhotoItem(path=p, source_key=p.name, identity=i) for p, i in samples.images[:6]]
    first = enrol_photos(gallery, items, workers=1)
    second = enrol_photos(gallery, items, workers=1)
    assert first.enrolled + first.refused_total == len(items)
    assert second.enrolled == 0
    assert second.already_present == first.enrolled
    assert gallery.store.count() == first.enrolled == len(gallery.index)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _noise(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def test_synthetic_background_is_flagged_and_imageless(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    from prum.categories.face.synthetic import SYNTHETIC_PROVENANCE, add_synthetic

    probe, rest = held_out(embedded)
    gallery = make_gallery(tmp_path, max_candidates=100)
    gallery.add_records([as_record(r) for r in rest])
    assert add_synthetic(gallery, 3_000, seed=7) == 3_000
    assert len(gallery.index) == len(rest) + 3_000
    assert probe.vector is not None and probe.model_id is not None
    found = gallery.search_template(Template(probe.model_id, probe.vector), max_candidates=100)
    synthetic = [c for c in found.candidates if c.synthetic]
    assert synthetic, "synthetic templates centred on the gallery compete with real ones"
    assert all(c.provenance == SYNTHETIC_PROVENANCE for c in synthetic)
    assert all(gallery.store.image(c.reference) is None for c in synthetic)
    # The real mate still comes first.
    mates = {r.item.source_key for r in rest if r.item.identity == probe.item.identity}
    assert source_of(gallery, found.candidates[0].reference) in mates


def test_synthetic_templates_never_calibrate_the_gallery(
    tmp_path: Path, embedded: list[PhotoResult]
) -> None:
    """Filler says nothing about how real faces differ: the gallery's own impostor
    distribution is drawn from its real records only."""
    from prum.categories.face.synthetic import add_synthetic

    _, rest = held_out(embedded)
    gallery = make_gallery(tmp_path)
    gallery.add_records([as_record(r) for r in rest])
    add_synthetic(gallery, 2_000, seed=3)
    ids, _, _ = gallery.store.sample_templates(5_000, model_id=gallery.model_id)
    assert len(ids) == len(rest)  # every real record, not one of the 2,000 synthetic
    everything, _, _ = gallery.store.sample_templates(
        5_000, model_id=gallery.model_id, real_only=False
    )
    assert len(everything) == len(rest) + 2_000
    calibrated = gallery.calibrate()
    assert f"of {len(rest)} records" in calibrated.source
