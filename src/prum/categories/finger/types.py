"""Values shared by the fingerprint package: images, minutiae, transactions.

Codes follow ANSI/NIST-ITL 1-2011 (Update 2015): finger positions (Table 8), palm
codes (Table 10) and impression types (Table 7), reduced to the four kinds of
impression the Prüm exchange distinguishes.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from prum.errors import InvalidFingerData

#: Finger positions: 0 unknown, 1-10 rolled fingers (right thumb .. left little),
#: 11-15 plain thumbs and four-finger slaps, 19 EJI, 20-36 palm regions.
FINGER_POSITIONS = frozenset({*range(0, 16), 19, *range(20, 37)})
IMPRESSIONS = ("rolled", "plain", "latent", "palm")
MINUTIA_KINDS = ("ending", "bifurcation", "other")

#: Scanning resolutions outside this range are not fingerprint images (Appendix F of
#: the FBI EBTS asks 500 or 1000 ppi; latents are sometimes scanned at 1000-2000).
MIN_PPI = 100
MAX_PPI = 4000

Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class FingerImage:
    """One grayscale friction-ridge image and where in the transaction it came from.

    ``pixels`` is an (H, W) ``uint8`` array, 0 black (ridge) to 255 white; ``ppi`` its
    scanning resolution in pixels per inch; ``source_record`` the IDC of the record it
    was read from (``None`` for an image not read from a transaction).
    """

    position: int
    impression: str
    ppi: int
    pixels: Pixels
    source_record: int | None = None

    def __post_init__(self) -> None:
        if self.position not in FINGER_POSITIONS:
            raise InvalidFingerData(
                f"finger position {self.position} is not an ANSI/NIST-ITL position code",
                field="position",
                value=self.position,
            )
        if self.impression not in IMPRESSIONS:
            raise InvalidFingerData(
                f"impression {self.impression!r} is not one of {', '.join(IMPRESSIONS)}",
                field="impression",
                value=self.impression,
            )
        if not MIN_PPI <= self.ppi <= MAX_PPI:
            raise InvalidFingerData(
                f"resolution {self.ppi} ppi is outside {MIN_PPI}-{MAX_PPI}",
                field="ppi",
                value=self.ppi,
            )
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise InvalidFingerData("pixels must be a 2-D uint8 array (grayscale)", field="pixels")

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FingerImage):
            return NotImplemented
        return (
            self.position == other.position
            and self.impression == other.impression
            and self.ppi == other.ppi
            and self.source_record == other.source_record
            and np.array_equal(self.pixels, other.pixels)
        )

    __hash__ = None  # type: ignore[assignment]  # holds a mutable array


@dataclass(frozen=True)
class Minutia:
    """One ridge ending or bifurcation.

    ``x`` and ``y`` are in pixels from the top-left corner of the image, ``angle`` in
    radians in [0, 2*pi) counter-clockwise from the x axis pointing along the ridge
    (the ANSI/NIST-ITL Type-9 convention), ``quality`` in 0..1 (1 best).
    """

    x: float
    y: float
    angle: float
    kind: str
    quality: float = 1.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.angle, self.quality)
        if not all(math.isfinite(v) for v in values) or self.x < 0 or self.y < 0:
            raise InvalidFingerData(
                "minutia coordinates and angle must be finite, coordinates >= 0",
                field="minutia",
            )
        if not 0.0 <= self.quality <= 1.0:
            raise InvalidFingerData(
                f"minutia quality {self.quality} is outside 0..1", field="quality"
            )
        if self.kind not in MINUTIA_KINDS:
            raise InvalidFingerData(
                f"minutia kind {self.kind!r} is not one of {', '.join(MINUTIA_KINDS)}",
                field="kind",
            )


@dataclass(frozen=True)
class Transaction:
    """One ANSI/NIST-ITL transaction, reduced to what the Prüm exchange uses.

    ``tot`` is the type of transaction (Type-1 field 1.004, e.g. ``CAR``, ``TPIS``,
    ``LFS``); the agencies are the ORI fields of Type-1 (1.008 originating, 1.007
    destination); ``control_number`` the TCN (1.009); ``text`` the Type-2 fields keyed
    by their tag (``"2.018"``); ``minutiae`` the Type-9 minutiae by finger position;
    ``latent`` whether the transaction carries a latent (Type-13) rather than tenprints.
    """

    tot: str
    originating_agency: str
    destination_agency: str
    control_number: str
    date: datetime.date
    text: dict[str, str] = field(default_factory=dict)
    images: list[FingerImage] = field(default_factory=list)
    minutiae: dict[int, list[Minutia]] = field(default_factory=dict)
    latent: bool = False
