"""Face image quality: components after ISO/IEC 29794-5 and BSI's OFIQ, each 0-100.

:func:`assess_quality` measures one face; :func:`check_quality` refuses it when a
component is below the configured minimum (``FaceSettings.probe_minimums`` or
``enrol_minimums``). Each component is one small function below, named after the
component, whose docstring gives the standard it follows, the units of the raw value
and where its constants come from. Raw values go into ``QualityReport.measures`` so an
examiner sees "52 px between the eyes", not only a score.

Where OFIQ (the open reference implementation of ISO/IEC 29794-5, ``ofiq_config.jaxn``
and ``OFIQlib/modules/measures``) defines a mapping from raw value to score, it is used
as is; where our raw value differs from OFIQ's, the constants are translated and the
translation is stated. OFIQ's "sigmoid" is ``h * (a + s * logistic((x - x0) / w))``.

A component that cannot be measured (no landmarks, mouth not located, pitch from the
5-point fallback) gets :data:`UNMEASURED_SCORE`, ``<name>_measured = 0`` in ``measures``,
and is left out of ``overall``: not knowing is neither good nor bad, and a configured
minimum of at most 50 lets it pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from prum.categories.face.config import QualityMinimums
from prum.categories.face.types import FaceBox, Landmarks, QualityReport
from prum.errors import BadInput, QualityTooLow

__all__ = [
    "COMPONENTS",
    "UNMEASURED_SCORE",
    "assess_quality",
    "check_quality",
]

COMPONENTS = (
    "inter_eye_distance",
    "sharpness",
    "exposure",
    "contrast",
    "yaw",
    "pitch",
    "roll",
    "expression_neutrality",
    "single_face",
)

# Score of a component that could not be measured (see the module docstring).
UNMEASURED_SCORE = 50.0

Measures = dict[str, float]


@dataclass(frozen=True)
class Component:
    score: float
    measures: Measures
    measured: bool = True


def _clip(score: float) -> float:
    return float(min(100.0, max(0.0, score)))


def _logistic(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(x / 2.0))  # = 1 / (1 + exp(-x)), without overflow


def _finite(point: tuple[float, float]) -> bool:
    return math.isfinite(point[0]) and math.isfinite(point[1])


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


# --- the face region ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    """Luminance of the face's bounding rectangle and the mask of the face inside it."""

    luminance: NDArray[np.uint8]  # ITU-R BT.601 luma, 0-255
    mask: NDArray[np.bool_]

    @property
    def values(self) -> NDArray[np.uint8]:
        return self.luminance[self.mask]


# Without a face outline, the central part of the box: dlib's HOG box runs from the
# eyebrows to the chin and its corners hold background, hair and ears.
_BOX_INSET = 0.1


def _face_region(pixels: NDArray[np.uint8], box: FaceBox, landmarks: Landmarks | None) -> _Region:
    """The face inside ``box``: the landmarks' convex hull when the model outlines the
    face (68 points or more), else the box inset by 10 % on each side; clipped to the image.
    """
    height, width = pixels.shape[:2]
    left, top = max(0, int(box.left)), max(0, int(box.top))
    right, bottom = min(width, int(box.right)), min(height, int(box.bottom))
    if right <= left or bottom <= top:
        return _Region(np.zeros((0, 0), np.uint8), np.zeros((0, 0), bool))
    crop = pixels[top:bottom, left:right]
    if crop.ndim == 3:
        luminance = cv2.cvtColor(np.ascontiguousarray(crop[:, :, :3]), cv2.COLOR_RGB2GRAY)
    else:
        luminance = np.ascontiguousarray(crop)
    mask = np.zeros(luminance.shape, np.uint8)
    outline = None
    if landmarks is not None and len(landmarks.points) >= 68:
        points = np.asarray(landmarks.points, dtype=np.float64)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) >= 3:
            outline = cv2.convexHull(np.round(points - (left, top)).astype(np.int32))
    if outline is not None:
        cv2.fillConvexPoly(mask, outline, (1,))
    else:
        dx = round(_BOX_INSET * box.width)
        dy = round(_BOX_INSET * box.height)
        mask[
            max(0, box.top + dy - top) : max(0, box.bottom - dy - top),
            max(0, box.left + dx - left) : max(0, box.right - dx - left),
        ] = 1
    return _Region(np.asarray(luminance, np.uint8), mask.astype(bool))


# --- components ---------------------------------------------------------------------------

# Box width of dlib's HOG detector in inter-eye distances (median over the faces of the
# real photos in ../shared/data/faces, MediaPipe eye centres: 2.4, range 2.1-3.2); used to
# estimate the eye distance when no landmarks were found.
BOX_WIDTH_IN_EYE_DISTANCES = 2.4

# (pixels between the eye centres, score), interpolated linearly. Anchors:
# - 18 px -> 10: about the least any recogniser can use (~20 px); the probe minimum of 10
#   in prum.config refuses faces below it;
# - 60 px -> 60: ISO/IEC 19794-5 "token" face image minimum;
# - 90 px -> 90: ICAO 9303 / ISO/IEC 19794-5 recommendation for enrolment;
# - 120 px -> 100: well above the ICAO figure; more adds nothing to a recogniser that
#   works on chips with ~52 px between the eyes.
# OFIQ's InterEyeDistance sigmoid (x0 = 70, w = 20) scores 18 px only 7, 60 px 38 and
# 90 px 73; ours is more generous so that small probe faces keep a usable score
# (30 px -> 24: the modest enrolment minimum of 25 is about 31 px).
INTER_EYE_ANCHORS = ((0.0, 0.0), (18.0, 10.0), (60.0, 60.0), (90.0, 90.0), (120.0, 100.0))


def inter_eye_distance(box: FaceBox, landmarks: Landmarks | None) -> Component:
    """Face size as the distance between the eye centres, in image pixels.

    ISO/IEC 29794-5 "inter-eye distance" (OFIQ ``InterEyeDistance``); eye centres are the
    landmarker's (midpoints of the eye corners). Without eyes, estimated from the box
    width (:data:`BOX_WIDTH_IN_EYE_DISTANCES`) and flagged ``inter_eye_from_box = 1``.
    Mapping: :data:`INTER_EYE_ANCHORS`.
    """
    from_box = landmarks is None or not (
        _finite(landmarks.left_eye) and _finite(landmarks.right_eye)
    )
    if landmarks is None or from_box:
        pixels = max(0.0, box.width / BOX_WIDTH_IN_EYE_DISTANCES)
    else:
        pixels = _distance(landmarks.left_eye, landmarks.right_eye)
    xs, ys = zip(*INTER_EYE_ANCHORS, strict=True)
    score = float(np.interp(pixels, xs, ys))
    return Component(_clip(score), {"inter_eye_px": pixels, "inter_eye_from_box": float(from_box)})


# Sharpness is measured with the face resampled to this many pixels between the eyes:
# the scale at which dlib's ResNet embedder sees it (its 150x150 aligned chip has ~52 px
# between the eye centres), so the value does not depend on the photo's resolution and
# a small face, enlarged to that scale, is as blurred as the embedder will see it.
REFERENCE_EYE_DISTANCE = 52.0
# Resampled face never larger than this (guards against a bogus tiny eye distance).
_MAX_SHARPNESS_SIDE = 512
# Variance of the Laplacian at the reference scale (luma levels squared, log10): the
# score rises linearly in log10 from SHARPNESS_LOG10_BLURRED (-> 0) to
# SHARPNESS_LOG10_SHARP (-> 100). Calibrated on the real photos of ../shared/data/faces
# (61 portraits, two group photos): in focus they give 10^2.1 to 10^3.2 (median 10^2.6,
# hence 100 from there); a Gaussian blur of sigma 2 px at the reference scale (a face
# no recogniser matches well) brings them to 10^0.8-10^1.4. A sharp face shrunk to 20 px
# between the eyes gives about 10^1.6 (score ~45): the enlargement blurs it as it will
# blur it for the embedder.
SHARPNESS_LOG10_BLURRED = 0.8
SHARPNESS_LOG10_SHARP = 2.6


def sharpness(region: _Region, eye_distance: float) -> Component:
    """Focus as the variance of the Laplacian of the face's luma at a fixed scale.

    The variance-of-Laplacian focus measure (Pech-Pacheco et al., "Diatom autofocusing in
    brightfield microscopy: a comparative study", ICPR 2000); ISO/IEC 29794-5's sharpness
    (OFIQ ``Sharpness``) is a classifier over gradient features of this kind, which needs
    a trained model we do not ship. Computed with the face resampled to
    :data:`REFERENCE_EYE_DISTANCE` px between the eyes (OpenCV's 3x3 Laplacian, inside
    the face mask). Units: luma levels squared. Mapping: linear in log10 between
    :data:`SHARPNESS_LOG10_BLURRED` and :data:`SHARPNESS_LOG10_SHARP`.
    """
    if region.mask.sum() == 0 or eye_distance <= 0:
        return Component(0.0, {"laplacian_variance": 0.0})
    height, width = region.luminance.shape
    scale = min(REFERENCE_EYE_DISTANCE / eye_distance, _MAX_SHARPNESS_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    luma = cv2.resize(region.luminance, size, interpolation=interpolation).astype(np.float32)
    mask = cv2.resize(region.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    laplacian = cv2.Laplacian(luma, cv2.CV_32F)
    values = laplacian[mask.astype(bool)]
    variance = float(values.var()) if values.size else 0.0
    log10 = math.log10(max(variance, 1e-6))
    span = SHARPNESS_LOG10_SHARP - SHARPNESS_LOG10_BLURRED
    score = 100.0 * (log10 - SHARPNESS_LOG10_BLURRED) / span
    return Component(_clip(score), {"laplacian_variance": variance, "sharpness_scale": scale})


# ISO/IEC 29794-5 / OFIQ luma ranges, inclusive: under-exposed 0-25, over-exposed 247-255.
DARK_LUMA = 25
BRIGHT_LUMA = 247


def exposure(region: _Region) -> Component:
    """Exposure of the face: the worst of mean luminance, under- and over-exposure.

    From the luma (ITU-R BT.601) histogram of the face region, with OFIQ's mappings:

    - ``LuminanceMean``: mean m in [0, 1], 100 * L((m - 0.2) / 0.05) * (1 - L((m - 0.8) /
      0.05)), L the logistic function: 100 for mid-grey faces, 50 at m = 0.2 or 0.8;
    - ``UnderExposurePrevention``: fraction d of pixels in 0-25, sigmoid h = 120,
      a = 0.832, s = -1, x0 = 0.92, w = 0.05 (tolerant until most of the face is black);
    - ``OverExposurePrevention``: fraction b of pixels in 247-255, 1 / (b + 0.01) capped at
      100 (strict: 1 % clipped skin scores 50, 9 % scores 10).
    """
    values = region.values
    if values.size == 0:
        return Component(0.0, {"luminance_mean": 0.0, "dark_fraction": 0.0})
    mean = float(values.mean()) / 255.0
    dark = float(np.count_nonzero(values <= DARK_LUMA)) / values.size
    bright = float(np.count_nonzero(values >= BRIGHT_LUMA)) / values.size
    by_mean = 100.0 * _logistic((mean - 0.2) / 0.05) * (1.0 - _logistic((mean - 0.8) / 0.05))
    by_dark = 120.0 * (0.832 - _logistic((dark - 0.92) / 0.05))
    by_bright = 1.0 / (bright + 0.01)
    measures = {
        "luminance_mean": mean * 255.0,
        "dark_fraction": dark,
        "bright_fraction": bright,
    }
    return Component(_clip(min(by_mean, by_dark, by_bright)), measures)


def contrast(region: _Region) -> Component:
    """Contrast as the dynamic range of the face: entropy of its luma histogram, in bits.

    OFIQ ``DynamicRange`` (ISO/IEC 29794-5): Shannon entropy of the 256-bin luma
    histogram of the face region, score 12.5 per bit (8 bits, every grey level equally
    used, is 100; the real photos give 6.7-7.8 bits; a flat, washed-out face far fewer).
    """
    values = region.values
    if values.size == 0:
        return Component(0.0, {"luminance_entropy_bits": 0.0})
    counts = np.bincount(values, minlength=256).astype(np.float64)
    p = counts[counts > 0] / values.size
    entropy = float(-(p * np.log2(p)).sum())
    measures = {"luminance_entropy_bits": entropy, "luminance_std": float(values.std())}
    return Component(_clip(12.5 * entropy), measures)


def _pose_component(name: str, angle: float | None) -> Component:
    """OFIQ ``HeadPose`` mapping: 100 * cos^2(angle), 0 beyond 90 degrees.

    (ISO/IEC 29794-5 head pose; ICAO 9303 / ISO/IEC 19794-5 ask for a frontal pose
    within about 5 degrees of yaw and pitch and 8 of roll, which score 98-99.)
    """
    if angle is None or not math.isfinite(angle):
        return Component(UNMEASURED_SCORE, {f"{name}_measured": 0.0}, measured=False)
    score = 100.0 * math.cos(math.radians(min(abs(angle), 90.0))) ** 2
    return Component(_clip(score), {f"{name}_deg": angle, f"{name}_measured": 1.0})


def yaw(landmarks: Landmarks | None) -> Component:
    """Head turned left/right, in degrees (> 0: nose to the image's right), see
    :func:`_pose_component` for the standard and mapping (60 degrees scores 25)."""
    return _pose_component("yaw", landmarks.yaw if landmarks else None)


def pitch(landmarks: Landmarks | None) -> Component:
    """Head tilted up/down, in degrees (> 0: looking up), mapping of :func:`_pose_component`."""
    return _pose_component("pitch", landmarks.pitch if landmarks else None)


def roll(landmarks: Landmarks | None) -> Component:
    """Head leaning sideways, in degrees (> 0: clockwise in the image), mapping of
    :func:`_pose_component` (roll matters least: the aligner rotates it away)."""
    return _pose_component("roll", landmarks.roll if landmarks else None)


# OFIQ MouthClosed: opening / T, T = eye midpoint to chin, inverse sigmoid x0 = 0.2,
# w = 0.06. Our ratio is opening / mouth width; in MediaPipe's canonical face T is 2.45
# mouth widths (12.03 / 4.91 cm), hence x0 = 0.49 and w = 0.147 mouth widths.
MOUTH_OPEN_X0 = 0.49
MOUTH_OPEN_W = 0.147


def expression_neutrality(landmarks: Landmarks | None) -> Component:
    """Mouth closed: inner-lip gap relative to mouth width (ratio, 0 = lips touching).

    ISO/IEC 19794-5 / ICAO 9303 ask for a neutral expression with the mouth closed; OFIQ
    ``MouthClosed`` measures the inner-mouth opening. Mapping: OFIQ's inverse sigmoid in
    our units (:data:`MOUTH_OPEN_X0`, :data:`MOUTH_OPEN_W`), rescaled so a closed mouth
    scores 100: a toothy smile (0.1-0.2) scores about 90-97, a mouth open half as high as
    it is wide 50. A smile with closed lips is not seen by this measure.
    """
    if landmarks is None or not all(
        _finite(p)
        for p in (
            landmarks.upper_lip,
            landmarks.lower_lip,
            landmarks.mouth_left,
            landmarks.mouth_right,
        )
    ):
        return Component(UNMEASURED_SCORE, {"expression_measured": 0.0}, measured=False)
    width = _distance(landmarks.mouth_left, landmarks.mouth_right)
    if width <= 0:
        return Component(UNMEASURED_SCORE, {"expression_measured": 0.0}, measured=False)
    ratio = _distance(landmarks.upper_lip, landmarks.lower_lip) / width
    closed = 1.0 - _logistic(-MOUTH_OPEN_X0 / MOUTH_OPEN_W)
    score = 100.0 * (1.0 - _logistic((ratio - MOUTH_OPEN_X0) / MOUTH_OPEN_W)) / closed
    return Component(_clip(score), {"mouth_opening_ratio": ratio, "expression_measured": 1.0})


def single_face(faces_in_image: int) -> Component:
    """One face in the image: 100 / number of faces detected (one or none: 100).

    ISO/IEC 29794-5 "single face present". OFIQ scores 100 * (1 - sqrt(a2 / a1)) from the
    two largest face areas, i.e. 0 for two faces of equal size; with only the count
    known, and the examiner having chosen the face, we use the gentler 100 / n (two faces
    50, four 25). A count of 0 means the box was given by hand: nothing contradicts it.
    """
    count = max(1, faces_in_image)
    return Component(100.0 / count, {"faces_in_image": float(faces_in_image)})


# Weights of the overall score: resolution, focus and yaw limit a recogniser most; roll
# least (the 5-point aligner rotates it away); a second face only matters when nobody
# chose the box. Our judgement, not a standard's: OFIQ's unified score is a neural
# network, not a combination of the components.
OVERALL_WEIGHTS = {
    "inter_eye_distance": 1.0,
    "sharpness": 1.0,
    "yaw": 1.0,
    "exposure": 0.5,
    "contrast": 0.5,
    "pitch": 0.5,
    "expression_neutrality": 0.5,
    "roll": 0.25,
    "single_face": 0.25,
}


def overall(components: dict[str, Component]) -> float:
    """Weighted harmonic mean of the measured components (:data:`OVERALL_WEIGHTS`).

    A harmonic mean is dominated by its smallest terms: all components at 90 give 90;
    one at 10 and the rest at 100 give 38 (weight 1) to 55 (weight 0.5); any at 0 gives
    0. Unmeasured components are left out.
    """
    weighted = [
        (OVERALL_WEIGHTS[name], c.score)
        for name, c in components.items()
        if c.measured and name in OVERALL_WEIGHTS
    ]
    if not weighted:
        return 0.0
    if any(score <= 0 for _, score in weighted):
        return 0.0
    total = sum(w for w, _ in weighted)
    return _clip(total / sum(w / score for w, score in weighted))


# --- the report -----------------------------------------------------------------------------


def _as_image(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise BadInput(
            f"pixels must be a uint8 image (H, W) or (H, W, 3), not {array.dtype} {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] not in (3, 4):
        raise BadInput(f"pixels must have 3 (RGB) or 4 (RGBA) channels, not {array.shape[2]}")
    return array


def assess_quality(
    pixels: NDArray[np.uint8],
    box: FaceBox,
    landmarks: Landmarks | None,
    faces_in_image: int,
) -> QualityReport:
    """Quality of the face in ``box`` (RGB uint8 ``pixels`` of the whole image).

    ``landmarks`` from :mod:`prum.categories.face.landmarks` (None when none were found: pose and
    expression are then unmeasured, the eye distance estimated from the box);
    ``faces_in_image`` is how many faces the detector found in the whole image.
    """
    image = _as_image(pixels)
    region = _face_region(image, box, landmarks)
    eyes = inter_eye_distance(box, landmarks)
    components = {
        "inter_eye_distance": eyes,
        "sharpness": sharpness(region, eyes.measures["inter_eye_px"]),
        "exposure": exposure(region),
        "contrast": contrast(region),
        "yaw": yaw(landmarks),
        "pitch": pitch(landmarks),
        "roll": roll(landmarks),
        "expression_neutrality": expression_neutrality(landmarks),
        "single_face": single_face(faces_in_image),
    }
    measures: Measures = {"face_region_px": float(region.mask.sum())}
    for component in components.values():
        measures.update(component.measures)
    return QualityReport(
        components={name: round(c.score, 1) for name, c in components.items()},
        overall=round(overall(components), 1),
        measures={name: float(value) for name, value in measures.items()},
    )


def _reason(name: str, m: Measures) -> str:
    """Why a component scored low, in the examiner's words, from the raw measures."""

    if name == "inter_eye_distance":
        how = " (estimated from the face box)" if m.get("inter_eye_from_box") else ""
        return f"face too small: {m.get('inter_eye_px', 0):.0f} px between the eyes{how}"
    if name == "sharpness":
        return (
            f"blurred: Laplacian variance {m.get('laplacian_variance', 0):.0f}, "
            "in-focus photos give about 100-1500"
        )
    if name == "exposure":
        return (
            f"badly exposed: mean luminance {m.get('luminance_mean', 0):.0f}/255, "
            f"{m.get('dark_fraction', 0):.0%} black, {m.get('bright_fraction', 0):.0%} burnt out"
        )
    if name == "contrast":
        return (
            f"flat: luminance spread over {m.get('luminance_entropy_bits', 0):.1f} bits, "
            "good photos 6.7-7.8"
        )
    if name in ("yaw", "pitch", "roll") and f"{name}_deg" in m:
        what = {"yaw": "turned", "pitch": "tilted up/down", "roll": "leaning"}[name]
        return f"head {what} {m[f'{name}_deg']:+.0f} degrees"
    if name == "expression_neutrality" and "mouth_opening_ratio" in m:
        return f"mouth open: {m['mouth_opening_ratio']:.2f} of its width"
    if name == "single_face":
        return f"{m.get('faces_in_image', 0):.0f} faces in the image"
    if name == "overall":
        return "several components are poor"
    return f"not measured, neutral score {UNMEASURED_SCORE:g}"


def _number(value: float, other: float) -> str:
    """``value`` with as few decimals as keep it distinct from ``other`` (9.6 vs 10)."""
    for digits in (0, 1, 2):
        if round(value, digits) != round(other, digits):
            return f"{value:.{digits}f}"
    return f"{value:.3f}"


def check_quality(report: QualityReport, minimums: QualityMinimums, *, use: str) -> None:
    """Raise :class:`~prum.errors.QualityTooLow` if any score is below its minimum.

    ``use`` names what the face is for ("probe", "enrolment"); it starts the message:
    ``probe refused: inter_eye_distance 8 < 10, 2 short (face too small: 14 px between
    the eyes)``. ``details["failures"]`` lists each failure as a dict with component,
    score, minimum, shortfall and reason.
    """
    failures = report.failures(minimums.model_dump())
    if not failures:
        return
    rows = []
    parts = []
    for name, (score, minimum) in failures.items():
        reason = _reason(name, report.measures)
        shortfall = minimum - score
        rows.append(
            {
                "component": name,
                "score": score,
                "minimum": minimum,
                "shortfall": round(shortfall, 2),
                "reason": reason,
            }
        )
        parts.append(
            f"{name} {_number(score, minimum)} < {minimum:g}, "
            f"{_number(shortfall, 0)} short ({reason})"
        )
    raise QualityTooLow(f"{use} refused: " + "; ".join(parts), use=use, failures=rows)
