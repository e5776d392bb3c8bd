"""What the workbench pages show, shaped from the node's records: plain functions,
no HTTP. The probe preview and the comparison overlays run the node's face pipeline
for display only (boxes, landmarks, quality); matching stays in node/exchange.py.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from PIL import Image

from prum.errors import BadInput, PrumError, QualityTooLow
from prum.face.quality import check_quality
from prum.face.types import AnalysedFace
from prum.offences import OFFENCES

# Counters of the statistics (prum.audit.stats) drawn per month, in this order.
MONTHLY = (
    ("searches", "searches sent"),
    ("hits", "answers with candidates"),
    ("confirmed_matches", "matches confirmed"),
    ("core_data_requests", "core-data requests"),
    ("core_data_released", "core data released"),
    ("core_data_delivered", "core data received"),
)
ANSWER_STATUSES = ("answers", "refusals", "timeouts", "unavailable", "errors")
# Margin around a face when cropping it for the side-by-side view (share of the box).
CROP_MARGIN = 0.6


def offence_name(code: str | None) -> str:
    if not code:
        return ""
    return f"{code} {OFFENCES.get(code, '(unknown category)')}"


def aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def duration_words(seconds: float) -> str:
    """'31 h 12 min left' / '2 h 5 min overdue'."""
    left = seconds >= 0
    minutes = int(abs(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return f"{text} left" if left else f"{text} overdue"


# --- faces ----------------------------------------------------------------------------


def face_summary(face: AnalysedFace, minimums: Any) -> dict[str, Any]:
    """One detected face for the probe preview: box, quality, refusal reason if any."""
    refused = None
    try:
        check_quality(face.quality, minimums, use="probe")
    except QualityTooLow as exc:
        refused = exc.message
    return {
        "box": face.box.as_list(),
        "overall": round(face.quality.overall),
        "components": {k: round(v) for k, v in face.quality.components.items()},
        "measures": {k: round(v, 1) for k, v in face.quality.measures.items()},
        "refused": refused,
    }


def probe_preview(pipeline: Any, data: bytes) -> dict[str, Any]:
    """Every face of an uploaded probe with its quality, or the reason none can be used."""
    try:
        analysis = pipeline.analyse(data)
    except PrumError as exc:
        return {"error": exc.message, "code": exc.code, "faces": []}
    faces = [face_summary(f, pipeline.settings.probe_minimums) for f in analysis.faces]
    out: dict[str, Any] = {
        "width": analysis.image.width,
        "height": analysis.image.height,
        "faces": faces,
        "error": None,
        "code": None,
    }
    if not faces:
        out["error"] = (
            "no face was found in the image; use a photo where the face is visible,"
            " at least about 40 pixels wide"
        )
        out["code"] = "no_face_found"
    elif all(f["refused"] for f in faces):
        out["error"] = "no face in this image is good enough to search with"
        out["code"] = "quality_too_low"
    return out


@dataclass(frozen=True)
class FaceView:
    """A face cropped for the comparison, with its landmarks in the crop's pixels."""

    jpeg: bytes
    width: int
    height: int
    landmarks: list[tuple[float, float]]
    box: list[int] | None


def face_view(pipeline: Any, data: bytes, box: list[int] | None = None) -> FaceView:
    """Crop the face (the chosen box, else the largest) with a margin; landmarks in it."""
    analysis = pipeline.analyse(data)
    faces = list(analysis.faces)
    if not faces:
        raise BadInput("no face was found in this image")
    chosen = faces[0]
    if box is not None:
        from prum.face.types import FaceBox

        wanted = FaceBox(*box)
        chosen = max(faces, key=lambda f: wanted.iou(f.box))
    b = chosen.box
    mx, my = int(b.width * CROP_MARGIN), int(b.height * CROP_MARGIN)
    left, top = max(0, b.left - mx), max(0, b.top - my)
    right = min(analysis.image.width, b.right + mx)
    bottom = min(analysis.image.height, b.bottom + my)
    image = Image.fromarray(analysis.image.pixels).crop((left, top, right, bottom))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    points: list[tuple[float, float]] = []
    if chosen.landmarks is not None:
        points = [
            (round(float(x) - left, 1), round(float(y) - top, 1))
            for x, y in chosen.landmarks.points
        ]
    return FaceView(
        jpeg=buffer.getvalue(),
        width=right - left,
        height=bottom - top,
        landmarks=points,
        box=[b.left - left, b.top - top, b.right - left, b.bottom - top],
    )


# --- statistics -------------------------------------------------------------------------


def chart_data(summary: dict[str, Any], own_party: str) -> dict[str, Any]:
    """Series for the statistics page: this node's counters per month, and per requested
    country the answers by status and response times per month."""
    monthly: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    answers: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    response: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for party, categories in summary.get("parties", {}).items():
        if party == "none":
            continue
        for purposes in categories.values():
            for months in purposes.values():
                for month, cell in months.items():
                    if party == own_party:
                        for counter, _ in MONTHLY:
                            monthly[month][counter] += int(cell.get(counter, 0))
                    for status in ANSWER_STATUSES:
                        answers[party][status] += int(cell.get(status, 0))
                    timing = cell.get("response_time")
                    if timing:
                        # Weighted by count: the mean over every answer of that month.
                        response[party][month].extend([timing["mean_ms"]] * int(timing["count"]))
    months = sorted(monthly)
    return {
        "months": months,
        "monthly": [
            {"counter": counter, "label": label, "values": [monthly[m][counter] for m in months]}
            for counter, label in MONTHLY
        ],
        "answers": {
            party: dict(counts) for party, counts in sorted(answers.items()) if any(counts.values())
        },
        "response": {
            party: {m: round(sum(v) / len(v), 1) for m, v in sorted(series.items())}
            for party, series in sorted(response.items())
        },
    }
