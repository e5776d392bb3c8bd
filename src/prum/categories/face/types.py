"""Plain data passed between the stages of the face pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# RGB image, (height, width, 3), uint8.
Pixels = NDArray[np.uint8]


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixels of the decoded (orientation-corrected) image."""

    left: int
    top: int
    right: int
    bottom: int
    confidence: float = 0.0
    # Five landmarks (x, y interleaved: eyes, nose tip, mouth corners in image order)
    # when the detector gives them (YuNet); they place the face for SFace.
    points: tuple[float, ...] | None = field(default=None, compare=False, repr=False, kw_only=True)

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]

    def iou(self, other: FaceBox) -> float:
        ix = max(0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Landmarks:
    """Facial landmarks of one face, in image pixels.

    ``points`` is an (N, 2) float array in the landmarker's own numbering;
    the named points are what the quality measures need, whatever the model.
    """

    model: str
    points: NDArray[np.float64]
    left_eye: tuple[float, float]  # subject's left eye (image right side)
    right_eye: tuple[float, float]
    nose_tip: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]
    upper_lip: tuple[float, float]  # inner upper lip, centre
    lower_lip: tuple[float, float]  # inner lower lip, centre
    # Head pose in degrees when the landmarker can estimate it (3-D models).
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None


@dataclass(frozen=True)
class QualityReport:
    """Quality components, each 0-100 (higher is better), after ISO/IEC 29794-5 / OFIQ.

    ``measures`` keeps the raw values behind the scores (pixels, degrees, ratios) so
    an examiner sees "inter-eye distance 34 px" and not only a score.
    """

    components: dict[str, float]
    overall: float
    measures: dict[str, float] = field(default_factory=dict)

    def failures(self, minimums: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Components below their minimum, as ``{name: (score, minimum)}``."""
        scores = dict(self.components, overall=self.overall)
        return {
            name: (scores[name], minimum)
            for name, minimum in minimums.items()
            if name in scores and scores[name] < minimum
        }


@dataclass(frozen=True)
class Template:
    """A face embedding with the id of the model that made it."""

    model_id: str
    vector: NDArray[np.float32]  # float32, shape (dim,)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])


@dataclass(frozen=True)
class AnalysedFace:
    box: FaceBox
    landmarks: Landmarks | None
    quality: QualityReport
    template: Template | None = None  # filled when the face is embedded
    # Milliseconds per stage of the extraction that made it (decode, detect, ...): the
    # node's timing log (prum.node.exchange), never compared.
    timings_ms: dict[str, float] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DecodedImage:
    """RGB pixels (H, W, 3, uint8) with the format the bytes were in."""

    pixels: Pixels
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])
