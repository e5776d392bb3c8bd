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

from prum.categories.face.quality import check_quality
from prum.categories.face.types import AnalysedFace
from prum.errors import BadInput, PrumError, QualityTooLow
from prum.federation.offences import OFFENCES

# Counters of the statistics (prum.audit.stats) drawn per month, in this order.
MONTHLY = (
    ("searches", "searches sent"),
    ("hits", "answers with candidates"),
    ("confirmed_matches", "matches confirmed"),
    ("core_data_requests", "core-data requests"),
    ("core_data_released", "core data released"),
    ("core_data_delivered", "core data received"),
    ("candidates_withheld", "candidates withheld (below the release threshold)"),
    ("investigative_answers", "searches answered under the investigative setting"),
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
    """Every face of an uploaded probe with its quality, or the reason none can be used.
    A Type-10 transaction shows its best frontal image (``image``: a data URL)."""
    import base64

    from prum.categories.face.type10 import is_transaction, probe_image

    shown: dict[str, Any] = {}
    try:
        if is_transaction(data):
            data, tx = probe_image(data, pipeline.settings)
            best = tx.best
            shown = {
                "image": f"data:{image_type(data)};base64,{base64.b64encode(data).decode()}",
                "transaction": f"{tx.control_number}, record 10.{best.idc:03d}"
                f" (POS {best.pose or 'F'}, SAP {best.sap})",
            }
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
        **shown,
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


def face_quality(pipeline: Any, data: bytes) -> dict[str, float] | None:
    """Quality components of the one face in ``data`` (None unless exactly one)."""
    try:
        faces = pipeline.analyse(data).faces
    except PrumError:
        return None
    if len(faces) != 1:
        return None
    return dict(faces[0].quality.components, overall=faces[0].quality.overall)


@dataclass(frozen=True)
class FaceView:
    """A face cropped for the comparison, with its landmarks in the crop's pixels."""

    jpeg: bytes
    width: int
    height: int
    landmarks: list[tuple[float, float]]
    box: list[int] | None
    # The subject's right and left eye centres, for aligning an overlay of two faces.
    eyes: list[tuple[float, float]] | None = None


def face_view(pipeline: Any, data: bytes, box: list[int] | None = None) -> FaceView:
    """Crop the face (the chosen box, else the largest) with a margin; landmarks in it."""
    analysis = pipeline.analyse(data)
    faces = list(analysis.faces)
    if not faces:
        raise BadInput("no face was found in this image")
    chosen = faces[0]
    if box is not None:
        from prum.categories.face.types import FaceBox

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
    eyes = None
    if chosen.landmarks is not None:
        points = [
            (round(float(x) - left, 1), round(float(y) - top, 1))
            for x, y in chosen.landmarks.points
        ]
        eyes = [
            (round(x - left, 1), round(y - top, 1))
            for x, y in (chosen.landmarks.right_eye, chosen.landmarks.left_eye)
        ]
    return FaceView(
        jpeg=buffer.getvalue(),
        width=right - left,
        height=bottom - top,
        landmarks=points,
        box=[b.left - left, b.top - top, b.right - left, b.bottom - top],
        eyes=eyes,
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


# --- what the other categories add to a candidate ----------------------------------------

# Directive 1999/37/EC codes of the registration certificate, in the order shown.
VEHICLE_FIELDS = (
    ("A", "registration number", "plate"),
    ("E", "vehicle identification number", "vin"),
    ("D.1", "make", "make"),
    ("D.3", "commercial description (model)", "model"),
    ("J", "vehicle category", "vehicle_category"),
    ("B", "date of first registration", "first_registration"),
    ("C.1.1", "holder: surname or business name", "holder_surname"),
    ("C.1.2", "holder: other names or initials", "holder_first_names"),
    ("C.1.3", "holder: address", "holder_address"),
    ("", "holder since", "holder_since"),
    ("", "holder until", "holder_until"),
    ("C.2.1", "owner: surname or business name", "owner_name"),
    ("C.2.3", "owner: address", "owner_address"),
    ("", "insurer", "insurer"),
    ("", "insurance valid until", "insurance_valid_until"),
)
VEHICLE_SIGNALS = {
    "stolen": "reported stolen",
    "exported": "exported (deregistered here)",
    "destroyed": "destroyed (end of life)",
}
# What a police-records hit agreed on (prum.federation.messages.RecordsField), in words.
RECORDS_FIELDS = {
    "names": "names agree",
    "names_similar": "names similar (spelling or transliteration)",
    "alias": "an alias agrees",
    "year_of_birth": "year of birth",
    "year_of_birth_near": "year of birth one year off",
    "day_and_month": "day and month of birth",
    "day_and_month_swapped": "day and month of birth, swapped",
    "month_of_birth": "month of birth",
    "gender": "gender",
    "nationality": "a nationality",
    "country_of_birth": "country of birth",
    "place_of_birth": "place of birth",
}
FINGER_SEARCH_TYPES = {
    "TP/TP": "ten-print against ten-prints",
    "TP/UL": "ten-print against unsolved latents",
    "LT/TP": "latent against ten-prints",
    "LT/UL": "latent against unsolved latents",
}
# ANSI/NIST-ITL finger positions (Table 8 of the standard).
FINGER_POSITIONS = {
    0: "unknown finger",
    1: "right thumb",
    2: "right index finger",
    3: "right middle finger",
    4: "right ring finger",
    5: "right little finger",
    6: "left thumb",
    7: "left index finger",
    8: "left middle finger",
    9: "left ring finger",
    10: "left little finger",
    11: "plain right thumb",
    12: "plain left thumb",
    13: "plain right four fingers",
    14: "plain left four fingers",
    15: "plain thumbs",
}


def rmp_words(rmp: float) -> str:
    """The random match probability in words ("about 1 in 3 billion")."""
    from prum.categories.dna.match import rmp_words as words

    return words(rmp)


def finger_position(position: int | None) -> str:
    if position is None:
        return "not given"
    return FINGER_POSITIONS.get(position, f"position {position}")


def probe_profile(probe: dict[str, Any] | None) -> dict[str, list[str]]:
    """The DNA profile searched with (locus -> alleles), as the node stored it."""
    import base64
    import binascii
    import json

    if not probe or probe.get("format") != "dna_profile" or not probe.get("data"):
        return {}
    try:
        loci = json.loads(base64.b64decode(probe["data"]))["loci"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return {}
    return {str(k): [str(a) for a in v] for k, v in loci.items()} if isinstance(loci, dict) else {}


def dna_rows(probe: dict[str, list[str]], hit: dict[str, Any]) -> list[dict[str, Any]]:
    """The probe's and the candidate's alleles locus by locus: the probe's loci first,
    in its order, then those only the candidate has; each with its state."""
    held: dict[str, list[str]] = hit.get("profile") or {}
    matching = set(hit.get("matching_loci") or [])
    mismatched = set(hit.get("mismatched_loci") or [])
    compared = set(hit.get("compared_loci") or [])
    rows = []
    for locus in [*probe, *[name for name in held if name not in probe]]:
        if locus in mismatched:
            state = "mismatch"
        elif locus in matching:
            state = "match"
        elif locus in compared:
            state = "compared"
        else:
            state = "not compared"
        rows.append(
            {
                "locus": locus,
                "probe": probe.get(locus),
                "candidate": held.get(locus),
                "state": state,
            }
        )
    return rows


def vehicle_rows(data: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(code, field, value) of the registration data present."""
    return [
        (code, label, data[key])
        for code, label, key in VEHICLE_FIELDS
        if data.get(key) not in (None, "")
    ]


def records_fields(matched: list[str]) -> list[tuple[str, bool]]:
    """Every field a police-records hit may agree on, and whether this one did."""
    return [(words, key in matched) for key, words in RECORDS_FIELDS.items()]


def image_type(data: bytes) -> str:
    """The media type of a stored image by its first bytes: PNG, else JPEG (as before)."""
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


def finger_png(data: bytes, fmt: str) -> bytes:
    """A fingerprint probe for display: the first finger image of an ANSI/NIST-ITL
    transaction, or the image (WSQ, TIFF ... decoded), as PNG."""
    if fmt == "ansi_nist":
        from prum.categories.finger.nist import read_transaction

        images = read_transaction(data).images
        if not images:
            raise BadInput("the transaction holds no finger image (minutiae only)")
        pixels = images[0].pixels
    else:
        from prum.categories.finger.images import decode_image

        pixels = decode_image(data).pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
