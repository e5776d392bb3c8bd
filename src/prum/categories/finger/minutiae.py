"""Minutiae: the template of one finger, and their extraction from an image.

A template is an array of rows (x, y, angle, kind, quality): x and y in pixels with y
pointing down (image rows), ``angle`` in radians counter-clockwise from the x axis as
the eye sees the image (so a ridge running up and to the right has angle pi/4), kind
0 for a ridge ending and 1 for a bifurcation, quality in 0..1. Extraction is NIST's
MINDTCT (NBIS, through ``nbis-py``), the reference extractor of the ANSI/NIST-ITL
Type-9 world; docs/fingerprints.md says why it was kept over the others.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from prum.errors import NoMinutiaeFound, UnreadableImage

KIND_ENDING = 0
KIND_BIFURCATION = 1

Rows = NDArray[np.float32]


@dataclass(frozen=True)
class Template:
    """The minutiae of one finger image and the frame they were measured in."""

    minutiae: Rows  # (n, 5): x, y, angle (rad), kind, quality
    width: int
    height: int
    ppi: int = 500
    extractor: str = "nbis-mindtct"

    def __len__(self) -> int:
        return int(self.minutiae.shape[0])

    def to_bytes(self) -> bytes:
        """A compact, versioned serialisation (the stored template)."""
        header = np.array([1, self.width, self.height, self.ppi, len(self)], dtype="<i4")
        return header.tobytes() + np.ascontiguousarray(self.minutiae, dtype="<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Template:
        header = np.frombuffer(data[:20], dtype="<i4")
        if header.shape != (5,) or int(header[0]) != 1:
            raise ValueError("not a version-1 finger template")
        n = int(header[4])
        rows = np.frombuffer(data[20:], dtype="<f4")
        if rows.size != n * 5:
            raise ValueError("finger template truncated")
        return cls(
            minutiae=rows.reshape(n, 5).astype(np.float32),
            width=int(header[1]),
            height=int(header[2]),
            ppi=int(header[3]),
        )


def rows(
    minutiae: list[tuple[float, float, float, int, float]] | NDArray[np.floating[Any]],
) -> Rows:
    """Minutiae rows as a float32 (n, 5) array, whatever the input shape of an empty set."""
    arr = np.asarray(minutiae, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 5), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError("minutiae rows are (x, y, angle, kind, quality)")
    return arr


class MindtctExtractor:
    """NIST MINDTCT through nbis-py (the NBIS 5.0 library, statically linked).

    The NBIS object is not documented as thread-safe, so calls are serialised.
    """

    name = "nbis-mindtct"

    def __init__(self, min_quality: float = 0.0) -> None:
        import nbis

        # min_quality 0: keep every minutia; the matcher weighs them, and a latent may
        # have few good ones.
        self._nbis = nbis.new_nbis_extractor(
            nbis.NbisExtractorSettings(
                min_quality=min_quality,
                get_center=False,
                check_fingerprint=False,
                compute_nfiq2=False,
                ppi=None,
            )
        )
        self._lock = threading.Lock()

    def extract(self, pixels: NDArray[np.uint8], ppi: int = 500) -> Template:
        """Minutiae of a grey-scale image (rows top to bottom, dark ridges)."""
        if pixels.ndim != 2 or min(pixels.shape) < 32:
            raise UnreadableImage("a fingerprint image is a grey-scale image of 32 x 32 or more")
        image = _to_500ppi(pixels, ppi)
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise UnreadableImage("the fingerprint image could not be re-encoded")
        with self._lock:
            try:
                found = self._nbis.extract_minutiae(png.tobytes()).get()
            except Exception as exc:  # nbis raises its own NbisError / InternalError
                raise UnreadableImage(f"MINDTCT could not read the image: {exc}") from exc
        table = [
            (
                m.x(),
                m.y(),
                # NBIS reports degrees counter-clockwise with y up, as ISO 19794-2 does.
                np.deg2rad(m.angle()),
                KIND_BIFURCATION if "BIFURCATION" in str(m.kind()).upper() else KIND_ENDING,
                m.reliability(),
            )
            for m in found
        ]
        if not table:
            raise NoMinutiaeFound("no minutiae were found in the fingerprint image")
        # Coordinates are those of the 500 ppi image, whatever the source resolution.
        return Template(rows(table), width=image.shape[1], height=image.shape[0])


def _to_500ppi(pixels: NDArray[np.uint8], ppi: int) -> NDArray[np.uint8]:
    """MINDTCT's parameters are tuned for 500 ppi: other resolutions are resampled."""
    if abs(ppi - 500) < 10:
        return np.ascontiguousarray(pixels, dtype=np.uint8)
    factor = 500.0 / ppi
    size = (max(32, round(pixels.shape[1] * factor)), max(32, round(pixels.shape[0] * factor)))
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
