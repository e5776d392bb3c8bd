"""The face category behind the common interface: a FaceGallery answering searches."""

from __future__ import annotations

import base64
import time
from typing import Any

from prum.categories.face.gallery import FaceGallery
from prum.categories.face.type10 import probe_image
from prum.categories.face.types import FaceBox
from prum.categories.interface import Exposure, MatchResult
from prum.config import Settings
from prum.errors import BadInput
from prum.federation.messages import Candidate, Category, Probe


class FaceMatcher:
    """The face category: a FaceGallery behind the common interface."""

    category = Category.FACE

    def __init__(self, settings: Settings):
        self.gallery = FaceGallery(settings)

    def enroll(self, sample: bytes, **record: Any) -> str:
        return self.gallery.enroll(sample, **record)

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        if probe.format not in ("image", "ansi_nist"):
            raise BadInput(
                "a face search needs an image probe (JPEG, PNG, ...) or an ANSI/NIST-ITL"
                " transaction with a Type-10 facial image"
            )
        sample = probe.data
        if probe.format == "ansi_nist":  # Type-10: the best frontal image, node's profile
            sample, _ = probe_image(probe.data, self.gallery.settings.face)
        box = FaceBox(*probe.face_box) if probe.face_box else None
        result = self.gallery.search(
            sample,
            box=box,
            max_candidates=max_candidates,
            exposure=exposure,
        )
        searched = time.perf_counter()
        candidates = []
        for c in result.candidates:
            image = self.gallery.store.image(c.reference)
            candidates.append(
                Candidate(
                    rank=c.rank,
                    reference=c.reference,
                    score=c.score,
                    distance=c.distance,
                    false_match_rate=c.false_match_rate,
                    false_match_words=c.false_match_words,
                    provenance=c.provenance,
                    synthetic=c.synthetic,
                    quality=c.quality_overall,
                    image=None if image is None else base64.b64encode(image[0]),
                )
            )
        quality = None if result.probe_quality is None else result.probe_quality.overall
        timings = {**result.timings_ms, "images": 1000 * (time.perf_counter() - searched)}
        return MatchResult(
            candidates=candidates,
            gallery_size=result.gallery_size,
            probe_quality=quality,
            timings_ms=timings,
        )

    def delete(self, reference: str, *, reason: str) -> None:
        self.gallery.delete(reference, reason=reason)

    def ingester(self) -> Any:
        from prum.categories.face.ingest import FaceIngester

        return FaceIngester(self.gallery)

    def describe(self) -> dict[str, Any]:
        return self.gallery.describe()

    def warm_up(self) -> None:
        """Load the models, the index and the calibration before the first search."""
        self.gallery.pipeline.warm_up()
        if self.gallery.model_id is not None:
            self.gallery.index  # noqa: B018 - opens (and catches up) the index
            self.gallery.calibration  # noqa: B018 - loads or fits the false-match rates

    def close(self) -> None:
        self.gallery.close()
