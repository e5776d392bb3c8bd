"""decode -> detect -> landmarks -> quality -> align -> embed, for one image.

A :class:`FacePipeline` owns one instance of every model. dlib and MediaPipe objects
are not thread-safe, so calls are serialised with a lock; parallelism comes from
several processes, each with its own pipeline (face/bulk.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from prum.categories.face.config import FaceSettings
from prum.categories.face.decode import decode_image
from prum.categories.face.detect import FaceDetector
from prum.categories.face.embed import Aligner, Embedder, make_embedder
from prum.categories.face.fused import MODEL_SET, FusedDetector, FusedEmbedder
from prum.categories.face.landmarks import Landmarker, landmarks_from_five_point, make_landmarker
from prum.categories.face.principal import principal_index
from prum.categories.face.quality import assess_quality, check_quality
from prum.categories.face.types import AnalysedFace, DecodedImage, FaceBox
from prum.errors import BadFaceBox, NoFaceFound, SeveralFaces

Use = Literal["probe", "enrol"]

# A chosen box must overlap a detected face this much to count as that face.
MIN_BOX_IOU = 0.3


@dataclass(frozen=True)
class ImageAnalysis:
    image: DecodedImage
    faces: list[AnalysedFace]


class FacePipeline:
    def __init__(self, settings: FaceSettings | None = None):
        self.settings = settings or FaceSettings()
        self._lock = threading.Lock()

    # Models load on first use: the CLI's --help and the router never pay for them.
    @property
    def fused(self) -> bool:
        """Whether this pipeline makes "dlib+sface" templates (face/fused.py)."""
        return self.settings.embedder == MODEL_SET

    @cached_property
    def detector(self) -> FaceDetector | FusedDetector:
        s = self.settings
        hog = FaceDetector(s.detector, upsample_below=s.upsample_below, max_side=s.detect_max_side)
        return FusedDetector(hog) if self.fused else hog

    @cached_property
    def aligner(self) -> Aligner:
        return Aligner()

    @cached_property
    def landmarker(self) -> Landmarker:
        return make_landmarker(self.settings.landmarker)

    @cached_property
    def embedder(self) -> Embedder | FusedEmbedder:
        return FusedEmbedder() if self.fused else make_embedder(self.settings.embedder)

    def warm_up(self) -> None:
        """Load every model now (a node does this at start, so that its first search
        is not the one that pays seconds of model loading against a deadline)."""
        for model in ("detector", "aligner", "landmarker", "embedder"):
            getattr(self, model)
        first_run = getattr(self.landmarker, "warm_up", None)  # MediaPipe builds its graph
        if first_run is not None:
            first_run()

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def analyse(self, data: bytes) -> ImageAnalysis:
        """Every face in the image with its box, landmarks and quality (no templates)."""
        with self._lock:
            image = decode_image(data, max_pixels=self.settings.max_pixels)
            boxes = self.detector.detect(image.pixels)
            faces = [self._assess(image, box, len(boxes)) for box in boxes]
        return ImageAnalysis(image, faces)

    def extract(
        self,
        data: bytes,
        *,
        use: Use,
        box: FaceBox | None = None,
        check: bool = True,
        principal: bool = False,
        embed: bool = True,
    ) -> AnalysedFace:
        """The template of one face, checked against the quality minimums for ``use``
        (``embed=False``: the check alone, no template, as a requesting node needs).

        With several faces, the caller must choose one by ``box``; the error lists
        the boxes found so a user interface can offer them. ``principal`` takes the
        principal face instead (face/principal.py): for portrait collections enrolled
        or evaluated in bulk, where a second face is a bystander, not a question.
        """
        with self._lock:
            started = time.perf_counter()
            image = decode_image(data, max_pixels=self.settings.max_pixels)
            decoded = time.perf_counter()
            boxes = self.detector.detect(image.pixels)
            detected = time.perf_counter()
            if not boxes:
                raise NoFaceFound(
                    "no face was found in the image; use a photo where the face is"
                    " visible, at least about 40 pixels wide"
                )
            chosen = self._choose(boxes, box, principal=principal, size=image.pixels.shape[:2])
            face = self._assess(image, chosen, len(boxes))
            if check:
                minimums = (
                    self.settings.probe_minimums if use == "probe" else self.settings.enrol_minimums
                )
                check_quality(face.quality, minimums, use=use)
            assessed = time.perf_counter()
            timings = {
                "decode": 1000 * (decoded - started),
                "detect": 1000 * (detected - decoded),
                "quality": 1000 * (assessed - detected),  # landmarks and quality
            }
            if not embed:
                return replace(face, timings_ms=timings)
            shape = self.aligner.shape(image.pixels, self._aligner_box(image, chosen))
            embedder = self.embedder
            if isinstance(embedder, FusedEmbedder):
                template = embedder.embed(image.pixels, shape, box=chosen)
            else:
                template = embedder.embed(image.pixels, shape)
            timings["embed"] = 1000 * (time.perf_counter() - assessed)  # align and embed
            return replace(face, template=template, timings_ms=timings)

    def _aligner_box(self, image: DecodedImage, box: FaceBox) -> FaceBox:
        if not self.fused:
            return box
        return FusedEmbedder.aligner_box(box, image.width, int(image.pixels.shape[0]))

    @staticmethod
    def _choose(
        boxes: list[FaceBox],
        box: FaceBox | None,
        *,
        principal: bool = False,
        size: tuple[int, ...] = (0, 0),
    ) -> FaceBox:
        if box is None:
            if len(boxes) > 1 and principal:
                height, width = size[0], size[1]
                # YuNet's scores are probabilities; HOG's are not (principal.py).
                scores = (
                    [b.confidence for b in boxes]
                    if all(b.points is not None for b in boxes)
                    else None
                )
                return boxes[principal_index(boxes, width, height, scores)]
            if len(boxes) > 1:
                raise SeveralFaces(
                    f"{len(boxes)} faces were found; choose one by its box",
                    boxes=[b.as_list() for b in boxes],
                )
            return boxes[0]
        best = max(boxes, key=box.iou)
        if box.iou(best) < MIN_BOX_IOU:
            raise BadFaceBox(
                f"the chosen box {box.as_list()} does not cover a detected face",
                boxes=[b.as_list() for b in boxes],
            )
        return best

    def _assess(self, image: DecodedImage, box: FaceBox, faces_in_image: int) -> AnalysedFace:
        landmarks = self.landmarker.locate(image.pixels, box)
        if landmarks is None:
            shape = self.aligner.shape(image.pixels, self._aligner_box(image, box))
            landmarks = landmarks_from_five_point(Aligner.points(shape))
        quality = assess_quality(image.pixels, box, landmarks, faces_in_image)
        return AnalysedFace(box=box, landmarks=landmarks, quality=quality)
