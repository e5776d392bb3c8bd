"""Fingers out of a sample: an ANSI/NIST-ITL transaction (a tenprint card or a latent)
or a single finger image, each finger's minutiae extracted by MINDTCT. Used by the
matcher for probes and enrolments and by the national-systems interface's workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from prum.categories.finger.minutiae import MindtctExtractor, Template, rows
from prum.errors import BadInput, InvalidFingerData, NoMinutiaeFound


@dataclass(frozen=True)
class ProbeFinger:
    position: int
    template: Template
    image: bytes | None  # PNG of the image as received


class SampleReader:
    """Reads samples into fingers; refuses a finger too poor to compare."""

    def __init__(self, extractor: MindtctExtractor, min_minutiae: int):
        self.extractor = extractor
        self.min_minutiae = min_minutiae

    def fingers(self, data: bytes, fmt: str, position: int = 0) -> tuple[list[ProbeFinger], bool]:
        """The fingers of a sample and whether it is a latent.

        An ANSI/NIST-ITL transaction gives one finger per image record (its Type-9
        minutiae when it has no image); an image is one finger at ``position``.
        """
        if fmt == "ansi_nist" or data[:6] == b"1.001:":
            return self._transaction_fingers(data)
        if fmt != "image":
            raise BadInput(f"a fingerprint sample is 'ansi_nist' or 'image', not {fmt!r}")
        from prum.categories.finger.images import decode_image

        decoded = decode_image(data)
        return [self._image_finger(position, decoded.pixels, decoded.ppi or 500)], False

    def _image_finger(self, position: int, pixels: np.ndarray[Any, Any], ppi: int) -> ProbeFinger:
        template = self.extractor.extract(pixels, ppi)
        ok, png = cv2.imencode(".png", pixels)
        return ProbeFinger(position, template, png.tobytes() if ok else None)

    def _transaction_fingers(self, data: bytes) -> tuple[list[ProbeFinger], bool]:
        from prum.categories.finger.nist import read_transaction

        tx = read_transaction(data)
        seen: set[tuple[int, str]] = set()
        for image in tx.images:
            key = (image.position, image.impression)
            if 1 <= image.position <= 10 and image.impression != "latent" and key in seen:
                raise InvalidFingerData(
                    f"finger position {image.position} has two {image.impression} impressions"
                    " in one transaction; a card holds one of each finger",
                    position=image.position,
                )
            seen.add(key)
        found: list[ProbeFinger] = []
        for image in tx.images:
            if image.impression == "palm":
                continue  # palm searches are not offered by this matcher
            found.append(self._image_finger(image.position, image.pixels, image.ppi))
        if not found:
            for position, points in tx.minutiae.items():
                table = [
                    (m.x, m.y, m.angle, int(m.kind == "bifurcation"), m.quality) for m in points
                ]
                if table:
                    t = rows(table)
                    width = int(t[:, 0].max()) + 1
                    height = int(t[:, 1].max()) + 1
                    found.append(ProbeFinger(position, Template(t, width, height), None))
        if not found:
            raise NoMinutiaeFound("the transaction holds no finger image and no minutiae")
        latent = tx.latent or any(i.impression == "latent" for i in tx.images)
        return found, latent

    def usable(self, fingers: list[ProbeFinger]) -> list[ProbeFinger]:
        usable = [f for f in fingers if len(f.template) >= self.min_minutiae]
        if not usable:
            best = max((len(f.template) for f in fingers), default=0)
            raise NoMinutiaeFound(
                f"no finger has {self.min_minutiae} minutiae or more (best: {best});"
                " the sample cannot be compared reliably",
                found=best,
            )
        return usable
