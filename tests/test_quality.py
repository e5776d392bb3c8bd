"""Face quality components and the landmarks behind them.

Real-photo tests use ../shared/data/faces and skip without it; the synthetic ones (the
5-point fallback, check_quality, the property test) run everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from PIL import Image, ImageOps

from prum.categories.face.config import FaceSettings, QualityMinimums
from prum.categories.face.landmarks import (
    Dlib68Landmarker,
    MediaPipeLandmarker,
    landmarks_from_five_point,
    make_landmarker,
)
from prum.categories.face.quality import COMPONENTS, UNMEASURED_SCORE, assess_quality, check_quality
from prum.categories.face.types import FaceBox, Landmarks, QualityReport
from prum.errors import InvalidModel, QualityTooLow

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FACES = DATA / "faces" / "images"

Pixels = NDArray[np.uint8]


# --- fixtures -----------------------------------------------------------------------------


def _faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.skip(f"real face photos absent ({FACES} not found)")
    return FACES


def _load(name: str, max_side: int = 800) -> Pixels:
    with Image.open(_faces_dir() / name) as image:
        pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    scale = max_side / max(pixels.shape[:2])
    if scale < 1:
        pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels)


def _detect(pixels: Pixels) -> list[FaceBox]:
    """Face boxes from dlib's HOG detector (the project's detector is another module)."""
    import dlib

    found = dlib.get_frontal_face_detector()(pixels, 1)
    return sorted(
        (FaceBox(r.left(), r.top(), r.right(), r.bottom()) for r in found),
        key=lambda b: -b.width,
    )


@pytest.fixture(scope="module")
def landmarker() -> MediaPipeLandmarker:
    return MediaPipeLandmarker()


@dataclass(frozen=True)
class Face:
    pixels: Pixels
    box: FaceBox
    landmarks: Landmarks


def _face(name: str, landmarker: MediaPipeLandmarker) -> Face:
    pixels = _load(name)
    box = _detect(pixels)[0]
    landmarks = landmarker.locate(pixels, box)
    assert landmarks is not None, f"no landmarks in {name}"
    return Face(pixels, box, landmarks)


@pytest.fixture(scope="module")
def portrait(landmarker: MediaPipeLandmarker) -> Face:
    """A frontal, sharp, evenly lit portrait (img20.jpg)."""
    return _face("img20.jpg", landmarker)


def _quality(face: Face, pixels: Pixels | None = None) -> QualityReport:
    return assess_quality(face.pixels if pixels is None else pixels, face.box, face.landmarks, 1)


def _mirror(box: FaceBox, width: int) -> FaceBox:
    return FaceBox(width - box.right, box.top, width - box.left, box.bottom)


# --- real photos -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_frontal_sharp_photo_scores_high_on_every_component(portrait: Face) -> None:
    report = _quality(portrait)
    assert set(report.components) == set(COMPONENTS)
    low = {name: score for name, score in report.components.items() if score < 85}
    assert not low, f"low components on a good portrait: {low}"
    assert report.overall >= 90
    assert report.measures["expression_measured"] == 1.0
    assert report.measures["yaw_measured"] == 1.0


@pytest.mark.realdata
def test_blurring_lowers_sharpness_monotonically(portrait: Face) -> None:
    reports = [
        _quality(portrait, cv2.GaussianBlur(portrait.pixels, (0, 0), sigma) if sigma else None)
        for sigma in (0, 1, 2, 3, 5, 8)
    ]
    variances = [r.measures["laplacian_variance"] for r in reports]
    scores = [r.components["sharpness"] for r in reports]
    assert variances == sorted(variances, reverse=True) and len(set(variances)) == len(variances)
    assert scores == sorted(scores, reverse=True)
    assert scores[0] >= 90 and scores[-1] <= 20


@pytest.mark.realdata
def test_darkening_lowers_exposure(portrait: Face) -> None:
    dark = (portrait.pixels * 0.15).astype(np.uint8)
    before, after = _quality(portrait), _quality(portrait, dark)
    assert after.components["exposure"] < before.components["exposure"] - 40
    assert after.measures["luminance_mean"] < 40


@pytest.mark.realdata
def test_overbrightening_lowers_exposure(portrait: Face) -> None:
    bright = np.clip(portrait.pixels.astype(np.float32) * 1.8 + 40, 0, 255).astype(np.uint8)
    before, after = _quality(portrait), _quality(portrait, bright)
    assert after.components["exposure"] < before.components["exposure"] - 40
    assert after.measures["bright_fraction"] > 0.1


@pytest.mark.realdata
def test_flattening_contrast_lowers_contrast(portrait: Face) -> None:
    pixels = portrait.pixels.astype(np.float32)
    flat = (pixels.mean() + (pixels - pixels.mean()) * 0.15).astype(np.uint8)
    before, after = _quality(portrait), _quality(portrait, flat)
    assert after.components["contrast"] < before.components["contrast"] - 20
    # exposure stays about the same: the mean luminance did not move much
    assert after.components["exposure"] > 50


@pytest.mark.realdata
def test_downscaling_lowers_inter_eye_distance(
    portrait: Face, landmarker: MediaPipeLandmarker
) -> None:
    factor = 0.25
    small = cv2.resize(portrait.pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    box = FaceBox(*(round(v * factor) for v in portrait.box.as_list()))
    landmarks = landmarker.locate(small, box)
    before = _quality(portrait)
    after = assess_quality(small, box, landmarks, 1)
    assert after.components["inter_eye_distance"] < before.components["inter_eye_distance"] - 40
    ratio = after.measures["inter_eye_px"] / before.measures["inter_eye_px"]
    assert ratio == pytest.approx(factor, rel=0.1)


@pytest.mark.realdata
def test_mirrored_image_gives_opposite_yaw(landmarker: MediaPipeLandmarker) -> None:
    face = _face("img12.jpg", landmarker)  # head turned by roughly 9 degrees
    mirrored = np.ascontiguousarray(face.pixels[:, ::-1])
    box = _mirror(face.box, face.pixels.shape[1])
    flipped = landmarker.locate(mirrored, box)
    assert flipped is not None and flipped.yaw is not None and face.landmarks.yaw is not None
    assert abs(face.landmarks.yaw) > 4
    assert math.copysign(1, flipped.yaw) == -math.copysign(1, face.landmarks.yaw)
    assert abs(flipped.yaw + face.landmarks.yaw) < 3
    original, reflected = _quality(face), assess_quality(mirrored, box, flipped, 1)
    assert reflected.components["yaw"] == pytest.approx(original.components["yaw"], abs=3)


@pytest.mark.realdata
def test_rotating_the_image_by_20_degrees_shows_roll_of_20(
    portrait: Face, landmarker: MediaPipeLandmarker
) -> None:
    box = portrait.box
    centre = ((box.left + box.right) / 2, (box.top + box.bottom) / 2)
    rotated = np.asarray(
        Image.fromarray(portrait.pixels).rotate(20, resample=Image.BICUBIC, center=centre)
    )
    landmarks = landmarker.locate(rotated, box)
    assert landmarks is not None and landmarks.roll is not None
    assert portrait.landmarks.roll is not None
    # counter-clockwise on screen: the eye line rises to the right, roll goes negative
    assert landmarks.roll - portrait.landmarks.roll == pytest.approx(-20, abs=3)
    report = assess_quality(rotated, box, landmarks, 1)
    assert report.measures["roll_deg"] == pytest.approx(landmarks.roll)
    assert report.components["roll"] < _quality(portrait).components["roll"] - 8


@pytest.mark.realdata
def test_group_photo_lowers_single_face(portrait: Face, landmarker: MediaPipeLandmarker) -> None:
    pixels = _load("selfie-many-people.jpg")
    boxes = _detect(pixels)
    assert len(boxes) >= 3
    for box in boxes:
        report = assess_quality(pixels, box, landmarker.locate(pixels, box), len(boxes))
        assert report.components["single_face"] < 50
        assert report.measures["faces_in_image"] == len(boxes)
    assert _quality(portrait).components["single_face"] == 100


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["selfie-many-people.jpg", "couple.jpg"])
def test_landmarks_describe_the_chosen_face_in_a_group_photo(
    name: str, landmarker: MediaPipeLandmarker
) -> None:
    pixels = _load(name)
    boxes = _detect(pixels)
    assert len(boxes) >= 2
    found = 0
    for box in boxes:
        landmarks = landmarker.locate(pixels, box)
        if landmarks is None:
            continue  # a face cut by the image edge may have none; never a neighbour's
        found += 1
        for x, y in (landmarks.left_eye, landmarks.right_eye, landmarks.nose_tip):
            assert box.left <= x <= box.right and box.top <= y <= box.bottom
        assert landmarks.left_eye[0] > landmarks.right_eye[0]  # subject's left: image right
    assert found >= 2


@pytest.mark.realdata
def test_landmarkers_agree_on_pose_signs(landmarker: MediaPipeLandmarker) -> None:
    import dlib
    import face_recognition_models

    face = _face("img12.jpg", landmarker)
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    box = face.box
    shape = predictor(face.pixels, dlib.rectangle(box.left, box.top, box.right, box.bottom))
    five = landmarks_from_five_point(shape)
    dlib68 = Dlib68Landmarker().locate(face.pixels, box)
    assert dlib68 is not None
    for other in (five, dlib68):
        assert other.yaw is not None and face.landmarks.yaw is not None
        assert math.copysign(1, other.yaw) == math.copysign(1, face.landmarks.yaw)
        assert other.roll == pytest.approx(face.landmarks.roll, abs=3)
        assert other.left_eye == pytest.approx(face.landmarks.left_eye, abs=0.1 * box.width)


# --- synthetic -----------------------------------------------------------------------------


def _five_points(roll_deg: float = 0.0, nose_shift: float = 0.0) -> NDArray[np.float64]:
    """dlib 5-point order: left eye outer/inner (image right), right eye outer/inner, nose."""
    points = np.array(
        [[140, 100], [115, 100], [60, 100], [85, 100], [100 + nose_shift, 140]], dtype=np.float64
    )
    angle = math.radians(roll_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - 100) @ rotation.T + 100


def test_five_point_fallback_gives_roll_and_yaw_but_no_mouth() -> None:
    level = landmarks_from_five_point(_five_points())
    assert level.roll == pytest.approx(0) and level.yaw == pytest.approx(0)
    assert level.pitch is None
    assert level.roll is not None
    tilted = landmarks_from_five_point(_five_points(roll_deg=20))
    assert tilted.roll == pytest.approx(20)
    turned = landmarks_from_five_point(_five_points(nose_shift=10))
    assert turned.yaw is not None and turned.yaw > 10  # nose to the image's right
    assert math.isnan(turned.mouth_left[0])


def test_quality_marks_what_the_five_point_fallback_cannot_measure() -> None:
    pixels = np.full((200, 200, 3), 128, np.uint8)
    landmarks = landmarks_from_five_point(_five_points(roll_deg=10))
    report = assess_quality(pixels, FaceBox(40, 60, 160, 180), landmarks, 1)
    assert report.measures["expression_measured"] == 0.0
    assert report.measures["pitch_measured"] == 0.0
    assert report.components["expression_neutrality"] == UNMEASURED_SCORE
    assert report.components["pitch"] == UNMEASURED_SCORE
    assert report.measures["roll_deg"] == pytest.approx(10)
    assert report.measures["inter_eye_px"] == pytest.approx(55)
    assert report.measures["inter_eye_from_box"] == 0.0


def test_without_landmarks_pose_is_unmeasured_and_eye_distance_estimated() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    report = assess_quality(pixels, FaceBox(10, 10, 106, 106), None, 1)
    for name in ("yaw", "pitch", "roll", "expression_neutrality"):
        assert report.components[name] == UNMEASURED_SCORE
    assert report.measures["yaw_measured"] == 0.0
    assert report.measures["inter_eye_from_box"] == 1.0
    assert report.measures["inter_eye_px"] == pytest.approx(96 / 2.4)


def _report(**scores: float) -> QualityReport:
    components = dict.fromkeys(COMPONENTS, 90.0) | scores
    measures = {"inter_eye_px": 14.0, "inter_eye_from_box": 0.0, "laplacian_variance": 3.0}
    return QualityReport(components=components, overall=80.0, measures=measures)


def test_check_quality_names_the_failing_component() -> None:
    minimums = FaceSettings().probe_minimums
    with pytest.raises(QualityTooLow) as raised:
        check_quality(_report(inter_eye_distance=8.0), minimums, use="probe")
    message = raised.value.message
    assert message.startswith("probe refused: inter_eye_distance 8 < 10")
    assert "2 short" in message and "14 px between the eyes" in message
    assert "sharpness" not in message
    [failure] = raised.value.details["failures"]
    assert failure["component"] == "inter_eye_distance"
    assert (failure["score"], failure["minimum"], failure["shortfall"]) == (8.0, 10.0, 2.0)
    assert raised.value.details["use"] == "probe"


def test_check_quality_lists_every_failure_and_keeps_close_scores_apart() -> None:
    minimums = QualityMinimums(sharpness=5, overall=85)
    with pytest.raises(QualityTooLow) as raised:
        check_quality(_report(sharpness=4.96), minimums, use="enrolment")
    message = raised.value.message
    assert message.startswith("enrolment refused: ")
    assert "sharpness 4.96 < 5" in message and "overall 80 < 85" in message
    names = [f["component"] for f in raised.value.details["failures"]]
    assert names == ["overall", "sharpness"]


def test_check_quality_passes_a_good_report() -> None:
    check_quality(_report(), FaceSettings().enrol_minimums, use="enrolment")


def test_landmarkers_find_nothing_for_a_box_off_the_image() -> None:
    pixels = np.zeros((50, 60, 3), np.uint8)
    box = FaceBox(-100, -100, -50, -50)
    assert MediaPipeLandmarker().locate(pixels, box) is None
    assert Dlib68Landmarker().locate(pixels, box) is None


def test_make_landmarker_knows_the_configured_names() -> None:
    assert isinstance(make_landmarker("mediapipe"), MediaPipeLandmarker)
    assert isinstance(make_landmarker("dlib68"), Dlib68Landmarker)
    with pytest.raises(InvalidModel, match="unknown landmarker 'openface'"):
        make_landmarker("openface")


@st.composite
def _image_and_box(draw: st.DrawFn) -> tuple[Pixels, FaceBox]:
    height = draw(st.integers(1, 40))
    width = draw(st.integers(1, 40))
    channels = draw(st.sampled_from([None, 3, 4]))
    shape = (height, width) if channels is None else (height, width, channels)
    pixels = draw(arrays(np.uint8, shape))
    coordinate = st.integers(-20, 60)
    left, top, right, bottom = (draw(coordinate) for _ in range(4))
    return pixels, FaceBox(left, top, right, bottom)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=_image_and_box(), faces=st.integers(0, 6))
def test_every_component_stays_within_0_and_100(sample: tuple[Pixels, FaceBox], faces: int) -> None:
    pixels, box = sample
    report = assess_quality(pixels, box, None, faces)
    assert set(report.components) == set(COMPONENTS)
    for name, score in report.components.items():
        assert 0 <= score <= 100, name
    assert 0 <= report.overall <= 100
    assert all(math.isfinite(v) for v in report.measures.values())


def test_landmarks_at_the_image_edge_do_not_break_quality() -> None:
    pixels = np.zeros((30, 30, 3), np.uint8)
    landmarks = replace(
        landmarks_from_five_point(_five_points()),
        points=np.full((68, 2), -5.0, np.float32),  # an outline entirely off the image
    )
    report = assess_quality(pixels, FaceBox(-10, -10, 5, 5), landmarks, 2)
    assert all(0 <= s <= 100 for s in report.components.values())
