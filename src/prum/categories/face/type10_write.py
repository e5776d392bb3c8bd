"""Write facial images as a Type-10 transaction (Type-1, Type-2, Type-10 records) that
the ``int-i`` reader of :mod:`prum.categories.face.type10` accepts: a candidate for an
examiner to download, or a collection exported for a test. ``nistitl`` computes the LEN
fields and CNT; the fields written are listed in docs/faces.md.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nistitl
from PIL import Image

from prum.categories.face import type10_images as images
from prum.categories.face.decode import decode_image
from prum.categories.face.type10 import HEX4, INTI_POS, QUALITY_PRODUCTS, QUALITY_VENDOR, SAP_CODES
from prum.categories.face.types import Pixels
from prum.errors import NotAllowedByProfile


@dataclass(frozen=True)
class FaceToWrite:
    """One image for a Type-10 record: the photo bytes and what the record says."""

    image: bytes
    pose: str = "F"
    sap: int = 0  # 0: unknown acquisition profile (we never claim a level we did not check)
    quality: Mapping[str, float] = field(default_factory=dict)
    capture_date: datetime.date | None = None


def write_face_transaction(
    faces: Sequence[FaceToWrite],
    *,
    control_number: str,
    originating_agency: str = "PRUM",
    destination_agency: str = "PRUM",
    date: datetime.date | None = None,
    tot: str = "FACE",
    compression: str = "auto",
    reference_control: str | None = None,
    quality_vendor: str = QUALITY_VENDOR,
    max_pixels: int = 40_000_000,
) -> bytes:
    """A transaction (Type-1, Type-2, one Type-10 record per face) that the ``int-i``
    reader accepts. ``compression``: ``JPEGB`` (JPEG as sent, or re-encoded), ``JPEGL``
    (lossless), or ``auto`` (a JPEG as it is, anything else lossless).
    Raises NotAllowedByProfile or the decode errors of the images.
    """
    if not faces or len(faces) > 99:
        raise NotAllowedByProfile(f"{len(faces)} faces; a transaction holds 1-99 Type-10 records")
    if compression not in ("auto", "JPEGB", "JPEGL"):
        raise NotAllowedByProfile(f"compression {compression!r} is not auto, JPEGB or JPEGL")
    today = date or datetime.date.today()
    message = nistitl.Message()
    header = message[0]
    for alias, value in (
        ("TOT", tot),
        ("DAI", destination_agency),
        ("ORI", originating_agency),
        ("TCN", control_number),
    ):
        setattr(header, alias, _text(value, alias))
    header.VER = "0502"
    header.DAT = today.strftime("%Y%m%d")
    if reference_control:
        header.TCR = _text(reference_control, "TCR")
    text_record = nistitl.AsciiRecord(2)
    text_record.IDC = 0
    message += text_record
    for idc, face in enumerate(faces, start=1):
        message += _face_record(
            face, idc, today, originating_agency, compression, quality_vendor, max_pixels
        )
    try:
        result: bytes = message.NIST
    except (nistitl.NistException, UnicodeEncodeError, ValueError) as exc:
        raise NotAllowedByProfile(f"the transaction cannot be written: {exc}") from exc
    return result


def _text(value: str, name: str) -> str:
    if not value.strip() or not value.isascii() or any(c in value for c in "\x1c\x1d\x1e\x1f"):
        raise NotAllowedByProfile(f"{name} {value[:40]!r} must be non-empty printable ASCII")
    return value


def _face_record(
    face: FaceToWrite,
    idc: int,
    today: datetime.date,
    agency: str,
    compression: str,
    vendor: str,
    max_pixels: int,
) -> nistitl.AsciiRecord:
    if face.pose not in INTI_POS:
        raise NotAllowedByProfile(f"pose {face.pose!r} is not F, L, R or A", field="10.020")
    if face.sap not in SAP_CODES:
        raise NotAllowedByProfile(f"SAP {face.sap} is not a code of the table", field="10.013")
    if not HEX4.fullmatch(vendor):
        raise NotAllowedByProfile(f"quality vendor {vendor!r} is not four hex digits")
    width, height, found = images.header_size(face.image)
    decoded = decode_image(face.image, max_pixels=max_pixels)
    grey = bool((decoded.pixels[..., 0] == decoded.pixels[..., 1]).all()) and bool(
        (decoded.pixels[..., 1] == decoded.pixels[..., 2]).all()
    )
    use_jpeg = compression == "JPEGB" or (compression == "auto" and found == "JPEG")
    if use_jpeg and found == "JPEG":
        payload, cga, csp = face.image, "JPEGB", "GRAY" if grey else "YCC"
    elif use_jpeg:
        payload, cga, csp = _jpeg(decoded.pixels), "JPEGB", "GRAY" if grey else "YCC"
        height, width = decoded.pixels.shape[:2]
    else:
        pixels = decoded.pixels[..., 0] if grey else decoded.pixels
        payload, cga, csp = images.encode_lossless_jpeg(pixels), "JPEGL", "GRAY" if grey else "SRGB"
        height, width = decoded.pixels.shape[:2]
    record = nistitl.AsciiRecord(10)
    record.IDC = idc
    for tag, value in (
        (3, "FACE"),
        (4, agency),
        (5, (face.capture_date or today).strftime("%Y%m%d")),
        (6, str(width)),
        (7, str(height)),
        (8, "0"),  # no scale: THPS/TVPS give the pixel aspect ratio, 1:1
        (9, "1"),
        (10, "1"),
        (11, cga),
        (12, csp),
        (13, str(face.sap)),
        (20, face.pose),
    ):
        record += nistitl.Field(10, tag, value)
    scores = [
        [str(max(0, min(100, round(face.quality[name])))), vendor, str(product)]
        for name, product in QUALITY_PRODUCTS.items()
        if name in face.quality
    ]
    if scores:
        record += nistitl.Field(10, 24, scores)
    record += nistitl.BinaryField(10, 999, payload)
    return record


def _jpeg(pixels: Pixels) -> bytes:
    buffer = io.BytesIO()
    # Quality 90: the level the workbench already uses for images it re-encodes.
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def candidate_transaction(
    image: bytes,
    *,
    reference: str,
    quality: Mapping[str, float] | None,
    quality_overall: float | None,
    originating_agency: str = "PRUM",
    probe_control: str | None = None,
    date: datetime.date | None = None,
) -> bytes:
    """A gallery candidate as a transaction: its reference is the TCN (1.009), the
    probe's TCN (when it came as a transaction) the TCR (1.010), our quality components
    in 10.024. SAP is 0: the gallery does not know the level the photo was taken at."""
    scores = dict(quality or {})
    if quality_overall is not None:
        scores["overall"] = quality_overall
    return write_face_transaction(
        [FaceToWrite(image, pose="F", sap=0, quality=scores)],
        control_number=reference,
        originating_agency=originating_agency,
        reference_control=probe_control,
        date=date,
    )
