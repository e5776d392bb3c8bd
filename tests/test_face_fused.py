"""The "dlib+sface" model set: SFace and YuNet from the pinned wheel, the principal face of a
portrait, the fused score, its shipped calibration, and upgrading a gallery to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prum.categories.face import sface
from prum.categories.face.bulk import PhotoItem, enrol_photos
from prum.categories.face.calibrated import combine
from prum.categories.face.calibration import ImpostorDistribution
from prum.categories.face.config import FaceSettings
from prum.categories.face.fused import MODEL_SET, model_set_of
from prum.categories.face.fusion import (
    DLIB_DIM,
    FUSED_DIM,
    fused_distances,
    fused_z,
    shipped_figures,
    z_to_distance,
)
from prum.categories.face.gallery import FaceGallery
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.principal import principal_index
from prum.categories.face.reenrol import reenrol
from prum.categories.face.reference import reference_for
from prum.categories.face.types import FaceBox, Template
from prum.categories.interface import SubjectCategory
from prum.config import Settings
from prum.demo.samples import SampleSet
from prum.errors import InvalidModel, ModelMismatch, SeveralFaces


@pytest.fixture(scope="module")
def fused_pipeline() -> FacePipeline:
    return FacePipeline(FaceSettings(embedder=MODEL_SET))


# --- models from the wheel ---------------------------------------------------------------


def test_a_model_file_with_another_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sface.SHA256, sface.SFACE_FILE, "0" * 64)
    with pytest.raises(InvalidModel, match="SHA-256"):
        sface.model_path(sface.SFACE_FILE)


def test_folded_sface_gives_the_quantized_model_s_output() -> None:
    import onnx
    import onnxruntime

    model = onnx.load(str(sface.model_path(sface.SFACE_FILE)))
    used = {x for node in model.graph.node for x in node.input}
    inits = {i.name for i in model.graph.initializer}
    real = [i for i in model.graph.input if i.name in used and i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(real)
    quantized = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    folded = sface.SFaceEmbedder(mirror=False)
    assert not any(n.op_type == "DequantizeLinear" for n in folded_graph_nodes())
    chip = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    x = chip.astype(np.float32).transpose(2, 0, 1)[None]
    expected = np.asarray(quantized.run(None, {"data": x})[0]).reshape(-1)
    expected /= np.linalg.norm(expected)
    assert np.max(np.abs(folded.embed_chip(chip) - expected)) < 1e-5


def folded_graph_nodes() -> list[object]:
    import onnx

    model = sface.fold_quantized(onnx.load(str(sface.model_path(sface.SFACE_FILE))))
    return list(model.graph.node)


# --- the principal face ------------------------------------------------------------------


def test_principal_face_is_the_central_one_not_the_largest() -> None:
    subject = FaceBox(270, 180, 370, 300)  # centre of a 640x480 portrait
    bystander = FaceBox(0, 0, 140, 160)  # larger, in a corner
    assert principal_index([bystander, subject], 640, 480) == 1


def test_principal_face_weighs_the_detector_score() -> None:
    face = FaceBox(270, 150, 370, 270)
    neck = FaceBox(240, 200, 400, 400)  # a false box, larger and as central
    assert principal_index([neck, face], 640, 480, scores=[0.62, 0.95]) == 1


@pytest.mark.realdata
def test_group_photo_in_bulk_gets_its_principal_face(
    fused_pipeline: FacePipeline, samples: SampleSet
) -> None:
    group = samples.group_photos[0].read_bytes()
    with pytest.raises(SeveralFaces):
        fused_pipeline.extract(group, use="probe", check=False)
    face = fused_pipeline.extract(group, use="probe", check=False, principal=True)
    assert face.template is not None and face.template.dim == FUSED_DIM


# --- the fused score ---------------------------------------------------------------------


def test_fused_score_falls_back_to_dlib_alone_where_sface_found_no_face() -> None:
    f = shipped_figures()
    alone = fused_z(np.array([0.4]), np.array([np.nan]), f)
    expected = (-0.4 - f.dlib_mean) / f.dlib_std
    assert alone[0] == pytest.approx(expected)
    probe = np.zeros(FUSED_DIM, np.float32)
    probe[:DLIB_DIM] = 0.1
    gallery = np.zeros((1, FUSED_DIM), np.float32)
    gallery[0, :DLIB_DIM] = 0.1
    gallery[0, DLIB_DIM] = 1.0  # an SFace half on one side only
    assert fused_distances(probe, gallery, f)[0] == pytest.approx(
        z_to_distance(fused_z(np.array([0.0]), np.array([np.nan]), f))[0]
    )


def test_distance_map_is_monotone_and_within_0_and_2() -> None:
    z = np.linspace(-20, 40, 500)
    d = z_to_distance(z)
    assert np.all(np.diff(d) < 0) and d.min() > 0 and d.max() < 2


@pytest.mark.realdata
def test_fused_templates_put_a_mate_before_strangers(
    fused_pipeline: FacePipeline, samples: SampleSet
) -> None:
    by_person: dict[str, list[Path]] = {}
    for path, identity in samples.images:
        by_person.setdefault(identity, []).append(path)
    people = [p for p in by_person.values() if len(p) >= 2][:3]
    assert len(people) >= 2, "the sample set has two people with two photos"
    vectors, owners = [], []
    for n, paths in enumerate(people):
        for path in paths[:2]:
            face = fused_pipeline.extract(path.read_bytes(), use="probe", check=False)
            assert face.template is not None
            assert model_set_of(face.template.model_id) == MODEL_SET
            vectors.append(face.template.vector)
            owners.append(n)
    distances = fused_distances(vectors[0], np.stack(vectors[1:]))
    assert owners[1 + int(np.argmin(distances))] == owners[0]


# --- calibration ---------------------------------------------------------------------------


def test_shipped_reference_belongs_to_each_model_set_and_says_where_it_comes_from() -> None:
    for model_set in ("dlib", MODEL_SET):
        ref = reference_for(model_set)
        assert ref is not None and ref.model_id == model_set
        assert "LFW" in ref.source and ref.comparisons >= 1_000_000


def test_a_node_without_enough_own_impostors_never_shows_less_than_the_reference() -> None:
    ref = reference_for(MODEL_SET)
    assert ref is not None
    rng = np.random.default_rng(1)
    # A node whose few impostors all score far apart: its own figures alone would say
    # "almost never"; the statement must not go below the reference.
    own = ImpostorDistribution.from_distances(
        rng.uniform(1.5, 1.9, 5000), source="gallery sample of 100 records", model_id="x"
    )
    calibrated = combine(own, ref, reference_factor=3.0, own_min_comparisons=1_000_000)
    assert calibrated is not None
    d = 0.3
    assert calibrated.fmr_at(d) >= 3.0 * ref.fmr_at(d) * 0.999
    assert calibrated.fmr_at(d) >= own.fmr_at(d)
    words = calibrated.describe(d)
    assert "reference" in words and "not checked on this node's photos" in words
    enough = combine(own, ref, reference_factor=3.0, own_min_comparisons=1000)
    assert enough is not None and enough.fmr_at(d) == own.fmr_at(d)
    assert "this node's impostors" in enough.describe(d)


# --- galleries -----------------------------------------------------------------------------


def _settings(tmp_path: Path, embedder: str) -> Settings:
    settings = Settings(data_dir=tmp_path / "node", database_url="", country="AT")
    return settings.model_copy(
        update={"face": settings.face.model_copy(update={"embedder": embedder})}
    )


def _items(samples: SampleSet) -> list[PhotoItem]:
    return [
        PhotoItem(path=p, source_key=p.name, identity=i, category=SubjectCategory.CONVICTED)
        for p, i in samples.images
    ]


@pytest.mark.realdata
def test_dlib_gallery_is_upgraded_to_the_fused_set_resumably(
    tmp_path: Path, samples: SampleSet
) -> None:
    gallery = FaceGallery(_settings(tmp_path, "dlib"))
    # A dozen photos of several people: enough for a calibration of its own, quick.
    enrolled = enrol_photos(gallery, _items(samples)[:12], workers=1)
    assert enrolled.enrolled >= 4
    old_model = gallery.model_id
    assert model_set_of(old_model) == "dlib"
    assert gallery.model_warning() is None
    seen: list[int] = []
    report = reenrol(gallery, MODEL_SET, workers=1, on_progress=seen.append)
    assert report.switched and not report.failed
    assert report.upgraded == enrolled.enrolled and sum(seen) == enrolled.enrolled
    assert model_set_of(gallery.model_id) == MODEL_SET
    # This gallery's own settings still say dlib: a node serving it is told how to agree.
    warning = gallery.model_warning()
    assert warning is not None and "holds templates of dlib+sface" in warning
    assert "prum face reenrol --embedder dlib" in warning
    # A rerun finds nothing left to do.
    again = reenrol(gallery, MODEL_SET, workers=1)
    assert again.upgraded == 0 and again.already == enrolled.enrolled and again.switched
    # Searching with a fused probe: the probe's own photo comes first, with a rate that
    # names where it comes from; a dlib template is refused.
    path, _ = samples.images[0]
    fused_face = gallery.settings.face.model_copy(update={"embedder": MODEL_SET})
    fused = FacePipeline(fused_face).extract(path.read_bytes(), use="probe")
    assert fused.template is not None
    found = gallery.search_template(fused.template).candidates
    assert found and found[0].distance < 0.2
    assert found[0].false_match_rate is not None
    assert "from" in found[0].false_match_words
    dlib_template = Template(old_model or "", np.zeros(128, np.float32))
    with pytest.raises(ModelMismatch):
        gallery.search_template(dlib_template)
    gallery.close()
