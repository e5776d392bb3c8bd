"""Face detection with dlib: HOG by default, the CNN (MMOD) detector as an option.

dlib detector objects are not thread-safe, and a process forked after the CNN
detector ran can hang: each worker process builds its own detector (see
face/bulk.py, which starts workers with ``spawn``) and callers serialise access.
"""

from __future__ import annotations

from typing import Any

import dlib
import face_recognition_models
import numpy as np

from prum.categories.face.types import FaceBox, Pixels
from prum.errors import InvalidModel


class FaceDetector:
    """Finds every face in an RGB image and returns boxes in its pixel coordinates."""

    def __init__(self, kind: str = "hog", *, upsample_below: int = 1200, max_side: int = 1600):
        if kind not in ("hog", "cnn"):
            raise InvalidModel(f"unknown face detector {kind!r}; use 'hog' or 'cnn'")
        self.kind = kind
        self.upsample_below = upsample_below
        self.max_side = max_side
        self._detector: Any = (
            dlib.get_frontal_face_detector()
            if kind == "hog"
            else dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detection_model_location()
            )
        )

    def detect(self, pixels: Pixels) -> list[FaceBox]:
        """All faces, largest first.

        Large photos are reduced to ``max_side`` for detection (HOG time grows with
        pixels; 25 ms at 640 px, 94 ms at 1280 px here). Only when that finds nothing
        in a photo smaller than ``upsample_below`` is it searched again upsampled once
        (four times the pixels, ~0.5 s at 1 MP), so faces down to ~40 px are still
        found without slowing down every ordinary portrait.
        """
        height, width = pixels.shape[:2]
        scale = 1.0
        work = pixels
        if max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            work = _resize(pixels, scale)
        found = self._run(work, 0)
        if not found and max(work.shape[:2]) < self.upsample_below:
            found = self._run(work, 1)
        boxes: list[FaceBox] = []
        for rect, score in found:
            box = FaceBox(
                left=max(0, round(rect.left() / scale)),
                top=max(0, round(rect.top() / scale)),
                right=min(width, round((rect.right() + 1) / scale)),
                bottom=min(height, round((rect.bottom() + 1) / scale)),
                confidence=score,
            )
            if box.width > 0 and box.height > 0:
                boxes.append(box)
        boxes.sort(key=lambda b: b.width * b.height, reverse=True)
        return boxes

    def _run(self, work: Pixels, upsample: int) -> list[tuple[Any, float]]:
        if self.kind == "hog":
            rects, scores, _ = self._detector.run(work, upsample, 0.0)
            return [(r, float(s)) for r, s in zip(rects, scores, strict=True)]
        return [(d.rect, float(d.confidence)) for d in self._detector(work, upsample)]


def _resize(pixels: Pixels, scale: float) -> Pixels:
    from PIL import Image

    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
