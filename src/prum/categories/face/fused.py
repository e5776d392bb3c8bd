"""The "dlib+sface" model set: one detector (YuNet) for two embedding models.

YuNet finds the faces and their five landmarks; SFace embeds the 5-point-aligned chip and
its mirror image; dlib embeds the same face, aligned by its own 5-point model inside a
square placed on YuNet's landmarks (face/sface.py ``yunet_square``). When YuNet finds no
face, dlib's HOG detector is tried and the template holds dlib's half only (SFace's half
all zero), whose score then stands alone (face/fusion.py).

Running HOG only as a fallback keeps enrolment fast: HOG costs ~94 ms at 1280 px, YuNet
~5-20 ms at up to 640 px.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prum.categories.face.detect import FaceDetector
from prum.categories.face.embed import DlibEmbedder
from prum.categories.face.fusion import DLIB_DIM, FUSED_DIM, SFACE_DIM
from prum.categories.face.sface import SFaceEmbedder, YunetDetector, yunet_square
from prum.categories.face.types import FaceBox, Pixels, Template

MODEL_SET = "dlib+sface"
# Every template id of this model set starts so (face/gallery.py reads the set from it).
PREFIX = "fused:"


def model_set_of(model_id: str | None) -> str | None:
    """ "dlib+sface", "dlib" or None (another model) from a template's model id."""
    if model_id is None:
        return None
    if model_id.startswith(PREFIX):
        return MODEL_SET
    if model_id.startswith("dlib-resnet-v1@"):
        return "dlib"
    return None


class FusedDetector:
    """YuNet, with dlib's HOG detector as the fallback when YuNet finds nothing."""

    def __init__(self, hog: FaceDetector):
        self.yunet = YunetDetector()
        self.hog = hog

    def detect(self, pixels: Pixels) -> list[FaceBox]:
        """Every face; YuNet's carry their five landmarks in ``points``."""
        faces = self.yunet.detect(pixels)
        if not faces:
            return self.hog.detect(pixels)
        return [
            FaceBox(
                f.box.left,
                f.box.top,
                f.box.right,
                f.box.bottom,
                confidence=f.score,
                points=tuple(float(v) for v in f.points.reshape(-1)),
            )
            for f in faces
        ]


class FusedEmbedder:
    """256 floats: dlib's 128-d descriptor, then SFace's (mirror-averaged) 128-d one."""

    dim = FUSED_DIM
    normalised = False

    def __init__(self) -> None:
        self.dlib = DlibEmbedder()
        self.sface = SFaceEmbedder(mirror=True)
        self.model_id = f"{PREFIX}{self.dlib.model_id}+{self.sface.model_id}"

    @staticmethod
    def aligner_box(box: FaceBox, width: int, height: int) -> FaceBox:
        """The box dlib's 5-point aligner gets: a square on YuNet's landmarks, or HOG's."""
        if box.points is None:
            return box
        return yunet_square(np.asarray(box.points, dtype=np.float32), width, height)

    def embed(self, pixels: Pixels, shape: Any, box: FaceBox | None = None) -> Template:
        dlib_vector = self.dlib.embed(pixels, shape).vector
        sface_vector = np.zeros(SFACE_DIM, dtype=np.float32)
        if box is not None and box.points is not None:
            points = np.asarray(box.points, dtype=np.float32).reshape(5, 2)
            sface_vector = self.sface.embed(pixels, points)
        vector = np.concatenate([dlib_vector[:DLIB_DIM], sface_vector]).astype(np.float32)
        return Template(self.model_id, vector)
