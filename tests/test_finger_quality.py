"""Fingerprint quality: NFIQ 2 on real prints, degraded prints score lower, minimums."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from prum.categories.finger.images import decode_image
from prum.categories.finger.quality import (
    FingerQuality,
    QualityPolicy,
    check_quality,
    contrast,
    finger_quality,
    foreground_share,
)
from prum.categories.finger.types import FingerImage
from prum.errors import InvalidFingerData, QualityTooLow


def finger(pixels: np.ndarray, ppi: int = 500) -> FingerImage:
    return FingerImage(position=2, impression="plain", ppi=ppi, pixels=pixels)


def ridges(width: int = 256, height: int = 320) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.clip(128 + 100 * np.sin(2 * np.pi * (x + 0.3 * y) / 9.0), 0, 255).astype(np.uint8)


BLANK = np.full((320, 256), 200, dtype=np.uint8)


# --- without the development data ------------------------------------------------


def test_blank_image_scores_zero_and_says_why() -> None:
    quality = finger_quality(finger(BLANK))
    assert quality.score == 0
    assert quality.components["contrast"] == 0.0
    assert quality.components["foreground"] == 0.0
    assert "NFIQ 2 could not compute" in quality.reason


def test_blank_image_is_refused_naming_score_and_minimum() -> None:
    with pytest.raises(QualityTooLow) as info:
        check_quality(finger(BLANK), "search")
    assert info.value.details["score"] == 0
    assert info.value.details["minimum"] == QualityPolicy().search_minimum
    assert "NFIQ 2 quality 0 is below the minimum 10 for search" in info.value.message
    assert "finger 2" in info.value.message


def test_contrast_and_foreground_separate_ridges_from_flat_grey() -> None:
    assert contrast(ridges()) > 0.9
    assert foreground_share(ridges()) == 1.0
    faint = (ridges() // 16 + 120).astype(np.uint8)
    assert contrast(faint) < 0.2
    assert foreground_share(BLANK) == 0.0


def test_foreground_counts_only_blocks_with_ridges() -> None:
    half = BLANK.copy()
    half[:, :128] = ridges()[:, :128]
    assert foreground_share(half) == pytest.approx(0.5)


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(InvalidFingerData):
        check_quality(finger(BLANK), "archive")  # type: ignore[arg-type]


# --- real prints -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_print(shared_data: Path) -> np.ndarray:
    return decode_image((shared_data / "fingerprints/fvc_db4_b/105_2.tif").read_bytes()).pixels


@pytest.fixture(scope="module")
def real_quality(real_print: np.ndarray) -> FingerQuality:
    return finger_quality(finger(real_print))


@pytest.mark.realdata
def test_real_print_gets_an_nfiq2_score_with_components(real_quality: FingerQuality) -> None:
    assert 20 <= real_quality.score <= 100
    for name in ("orientation_certainty", "local_clarity", "ridge_frequency", "minutiae_count"):
        assert name in real_quality.components
    assert real_quality.components["minutiae_count"] > 10
    assert len(real_quality.nfiq2_features) > 50
    assert real_quality.reason == ""


@pytest.mark.realdata
def test_real_prints_spread_over_the_scale(shared_data: Path) -> None:
    folder = shared_data / "fingerprints/fvc_db4_b"
    scores = [
        finger_quality(finger(decode_image((folder / name).read_bytes()).pixels)).score
        for name in ("101_1.tif", "103_4.tif", "108_3.tif")
    ]
    assert all(0 <= score <= 100 for score in scores)
    assert len(set(scores)) > 1


@pytest.mark.realdata
@pytest.mark.parametrize(
    "degrade",
    [
        pytest.param(lambda p: cv2.GaussianBlur(p, (0, 0), 3), id="blurred"),
        pytest.param(lambda p: (p // 10 + 115).astype(np.uint8), id="faded"),
        pytest.param(lambda p: np.full_like(p, 200), id="blank"),
    ],
)
def test_degraded_real_print_scores_lower(
    real_print: np.ndarray, real_quality: FingerQuality, degrade: object
) -> None:
    worse = finger_quality(finger(degrade(real_print)))  # type: ignore[operator]
    assert worse.score < real_quality.score
    assert worse.score < QualityPolicy().enrol_minimum


@pytest.mark.realdata
def test_blurred_real_print_is_refused_for_enrolment(real_print: np.ndarray) -> None:
    with pytest.raises(QualityTooLow) as info:
        check_quality(finger(cv2.GaussianBlur(real_print, (0, 0), 3)), "enrol")
    assert info.value.details["minimum"] == 20
    assert info.value.details["purpose"] == "enrol"


@pytest.mark.realdata
def test_minimum_is_configurable(real_print: np.ndarray, real_quality: FingerQuality) -> None:
    score = real_quality.score
    accepted = check_quality(finger(real_print), "enrol", QualityPolicy(enrol_minimum=score))
    assert accepted.score == score
    with pytest.raises(QualityTooLow) as info:
        check_quality(finger(real_print), "enrol", QualityPolicy(enrol_minimum=score + 1))
    assert f"NFIQ 2 quality {score} is below the minimum {score + 1}" in info.value.message


@pytest.mark.realdata
def test_a_1000_ppi_scan_is_measured_at_500(
    real_print: np.ndarray, real_quality: FingerQuality
) -> None:
    doubled = cv2.resize(real_print, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    measured = finger_quality(finger(doubled, ppi=1000))
    assert abs(measured.score - real_quality.score) <= 10
