"""Fingerprint image quality: NFIQ 2 score (0-100) with its components, and minimums.

The score is NIST's NFIQ 2 (ISO/IEC 29794-4:2024 reference implementation), computed
by ``nbis-py`` on a 500 ppi image: a random forest over features of orientation
certainty, local clarity, ridge frequency, orientation flow, ridge-valley uniformity
and minutiae found by FingerJet. Higher is better; NIST reads below ~20 as poor.

NFIQ 2 gives up on images without ridge structure (blank, heavily blurred): its
feature computation fails. Such an image gets score 0 (NFIQ 2's own convention for
"no quality could be measured") and the two simple measures below still explain why.
They are computed for every image:

- ``contrast``: the standard deviation of grey levels over the foreground, scaled so
  that 64 grey levels (a well-inked print) reads 1.0;
- ``foreground``: the share of 16 x 16 blocks whose grey-level deviation exceeds 8,
  the block size and the variance test of NBIS mindtct's segmentation.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image

from prum.categories.finger.images import TARGET_PPI, resample_to
from prum.categories.finger.types import FingerImage, Pixels
from prum.errors import InvalidFingerData, QualityTooLow

#: Starting points, to be set from the node's own data. On the FVC DB4_B development
#: prints (80 images) NFIQ 2 ranges 3-64, median 42; 10% score under 18. Enrolment at
#: 20 keeps out roughly the worst tenth; a search probe at 10 is only refused when
#: nearly no ridge detail is left (latents are often poor and still worth a search).
DEFAULT_ENROL_MINIMUM = 20
DEFAULT_SEARCH_MINIMUM = 10

_BLOCK = 16
_BLOCK_STD_MIN = 8.0
_GOOD_CONTRAST_STD = 64.0

# NFIQ 2 feature names (nbis-py) for the components we show an examiner.
_NFIQ2_COMPONENTS = {
    "orientation_certainty": "OCL_Bin10_Mean",
    "local_clarity": "LCS_Bin10_Mean",
    "ridge_frequency": "FDA_Bin10_Mean",
    "orientation_flow": "OF_Bin10_Mean",
    "ridge_valley_uniformity": "RVUP_Bin10_Mean",
    "minutiae_count": "FingerJetFX_MinutiaeCount",
    "mean_grey": "Mu",
}


@dataclass(frozen=True)
class FingerQuality:
    """The NFIQ 2 score (0-100) and the values that explain it."""

    score: int
    components: dict[str, float]
    nfiq2_features: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value:.2f}" for name, value in self.components.items())
        return f"NFIQ 2 {self.score}" + (f" ({self.reason})" if self.reason else "") + f"; {parts}"


@dataclass(frozen=True)
class QualityPolicy:
    """Minimum NFIQ 2 scores for enrolment and for search probes."""

    enrol_minimum: int = DEFAULT_ENROL_MINIMUM
    search_minimum: int = DEFAULT_SEARCH_MINIMUM


def finger_quality(image: FingerImage) -> FingerQuality:
    """Measure one finger image (resampled to 500 ppi first, as NFIQ 2 requires)."""
    pixels = resample_to(image.pixels, image.ppi)
    components = {"contrast": contrast(pixels), "foreground": foreground_share(pixels)}
    features = _nfiq2(pixels)
    if features is None:
        return FingerQuality(
            score=0,
            components=components,
            reason="NFIQ 2 could not compute its features: no usable ridge structure",
        )
    score, values = features
    for name, feature in _NFIQ2_COMPONENTS.items():
        if feature in values:
            components[name] = values[feature]
    return FingerQuality(score=score, components=components, nfiq2_features=values)


def check_quality(
    image: FingerImage,
    purpose: Literal["enrol", "search"],
    policy: QualityPolicy | None = None,
) -> FingerQuality:
    """Measure and refuse below the minimum for ``purpose`` ("enrol" or "search").

    Raises QualityTooLow naming the score, the minimum and the finger position.
    """
    policy = policy or QualityPolicy()
    if purpose == "enrol":
        minimum = policy.enrol_minimum
    elif purpose == "search":
        minimum = policy.search_minimum
    else:
        raise InvalidFingerData(f"purpose must be 'enrol' or 'search', not {purpose!r}")
    quality = finger_quality(image)
    if quality.score < minimum:
        raise QualityTooLow(
            f"finger {image.position}: NFIQ 2 quality {quality.score} is below the"
            f" minimum {minimum} for {purpose}"
            + (f" ({quality.reason})" if quality.reason else ""),
            component="nfiq2",
            score=quality.score,
            minimum=minimum,
            position=image.position,
            purpose=purpose,
        )
    return quality


def contrast(pixels: Pixels) -> float:
    """Grey-level standard deviation over the foreground blocks, 1.0 at 64 levels."""
    blocks = _blocks(pixels)
    stds = blocks.std(axis=(1, 2))
    selected = blocks[stds > _BLOCK_STD_MIN] if np.any(stds > _BLOCK_STD_MIN) else blocks
    return float(min(1.0, selected.std() / _GOOD_CONTRAST_STD))


def foreground_share(pixels: Pixels) -> float:
    """Share of 16 x 16 blocks with ridge-like variation (NBIS mindtct's test)."""
    stds = _blocks(pixels).std(axis=(1, 2))
    return float(np.mean(stds > _BLOCK_STD_MIN)) if stds.size else 0.0


def _blocks(pixels: Pixels) -> np.ndarray[Any, np.dtype[np.float64]]:
    height = pixels.shape[0] // _BLOCK * _BLOCK
    width = pixels.shape[1] // _BLOCK * _BLOCK
    cropped = pixels[:height, :width].astype(np.float64)
    grid = cropped.reshape(height // _BLOCK, _BLOCK, width // _BLOCK, _BLOCK)
    return grid.swapaxes(1, 2).reshape(-1, _BLOCK, _BLOCK)


# --- NFIQ 2 through nbis-py ------------------------------------------------------------

# The extractor loads NFIQ 2's random-forest model (about 3 s): one per process. Calls
# are serialised because nbis-py does not document that the handle is thread-safe.
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import nbis

    settings = nbis.NbisExtractorSettings(
        min_quality=0.0,
        get_center=False,
        check_fingerprint=False,
        compute_nfiq2=True,
        ppi=float(TARGET_PPI),
    )
    return nbis.new_nbis_extractor(settings)


def _nfiq2(pixels: Pixels) -> tuple[int, dict[str, float]] | None:
    """(score, features), or None when NFIQ 2 cannot compute features."""
    import nbis

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    try:
        with _LOCK:
            result = _extractor().extract_minutiae(buffer.getvalue()).quality()
    except nbis.NbisError:
        return None
    features = {value.name: float(value.value) for value in result.features}
    return int(result.score), features
