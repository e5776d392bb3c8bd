"""Facial images in ANSI/NIST-ITL Type-10 records: read a transaction, with a profile.

A national mugshot collection leaves a police system as transactions (Type-1 header,
Type-2 text, one or more Type-10 facial images). Reading goes through the project's one
record layer (:mod:`prum.categories.ansi_nist`: every length, CNT and IDC checked) and
then through a validation profile:

- ``int-i``: INTERPOL's INT-I field tables (version 0502, built on ANSI/NIST-ITL 1-2011
  Update 2015): fields 10.001-10.012 and 10.999 present, IMT FACE, CGA JPEGB or JPEGL,
  POS F/L/R/A, and for enrolment SAP 30 or above (a mugshot of the Best Practice levels).
- ``ansi-nist``: the standard's own code tables (JPEG 2000 and PNG accepted, as EU
  systems send them); non-face images (SCAR, MARK, TATTOO) are skipped, not refused.

Every violation raises :class:`NotAllowedByProfile` (or :class:`MalformedNistRecord`
for a broken structure) whose message starts with the field, e.g. "10.011 CGA 'JP2' is
not allowed by INT-I". Images pass the decode guards of
:mod:`prum.categories.face.type10_images`. The fields read and written are listed in
docs/faces.md, section "ANSI/NIST-ITL Type-10".
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Literal

from prum.categories.ansi_nist import Record, content_list, read_tagged
from prum.categories.face import type10_images as images
from prum.categories.face.config import FaceSettings
from prum.categories.face.decode import check_pixels
from prum.categories.face.types import Pixels
from prum.errors import MalformedNistRecord, NotAllowedByProfile, UnknownRecordType

Profile = Literal["int-i", "ansi-nist"]
PROFILES: tuple[str, ...] = ("int-i", "ansi-nist")
Use = Literal["enrol", "probe"]
PROFILE_NAME = {"int-i": "INT-I", "ansi-nist": "ANSI/NIST-ITL 1-2011"}

#: File name endings of transactions (EBTS/EFTS ".eft", INTERPOL ".int", NIST ".an2").
TRANSACTION_SUFFIXES = frozenset({".an2", ".eft", ".nist", ".int", ".ebts", ".efts"})
#: A transaction of a few mugshots is a few MB; 100 MB is not a face transaction.
MAX_TRANSACTION_BYTES = 100 * 1024 * 1024
#: Default for the enrolment minimum of INT-I: "mugshots at level 30 or above"
#: (ANSI/NIST-ITL 1-2011 Table 20, Best Practice Application levels 30-52).
MIN_ENROL_SAP = 30

# Code tables of ANSI/NIST-ITL 1-2011 Update 2015, section 8.10.
IMT_CODES = frozenset({"FACE", "SCAR", "MARK", "TATTOO"})
CGA_CODES = frozenset({"NONE", "WSQ20", "JPEGB", "JPEGL", "JP2", "JP2L", "PNG"})
INTI_CGA = frozenset({"JPEGB", "JPEGL"})
CSP_CODES = frozenset({"GRAY", "RGB", "SRGB", "YCC", "SYCC", "UNK"})
SAP_CODES = frozenset({0, 1, 10, 11, 12, 13, 14, 15, 20, 30, 32, 40, 42, 50, 51, 52})
POS_CODES = frozenset({"F", "L", "R", "A", "D"})
INTI_POS = frozenset({"F", "L", "R", "A"})
INTI_VERSIONS = frozenset({"0500", "0501", "0502"})
INTI_MANDATORY = tuple(range(1, 13))  # 10.001-10.012; 10.999 is checked apart
ANSI_MANDATORY = tuple(range(1, 12))  # CSP (10.012) defaults from the image when absent
MAX_QUALITY_SCORES = 9  # 10.024 SQS: at most nine subfields

#: Our quality components in 10.024, each under its own product id (QAP). QAV is the
#: vendor id; this project has no IBIA-registered CBEFF vendor id, so 0000 is written
#: and a country that holds one passes its own. single_face is not written: a Type-10
#: record is cut to one face by construction, and 10.024 holds nine subfields.
QUALITY_VENDOR = "0000"
QUALITY_PRODUCTS: dict[str, int] = {
    "overall": 1,
    "inter_eye_distance": 2,
    "sharpness": 3,
    "exposure": 4,
    "contrast": 5,
    "yaw": 6,
    "pitch": 7,
    "roll": 8,
    "expression_neutrality": 9,
}
_COMPONENT_OF = {product: name for name, product in QUALITY_PRODUCTS.items()}

_IMAGE_TYPES = frozenset(range(10, 100))  # tagged records whose 999 field is binary
_DATE = re.compile(r"\d{8}")
HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class QualityScore:
    """One subfield of 10.024: QVU (0-100, 254 not computed, 255 failed), QAV, QAP."""

    score: int
    vendor: str
    product: int


@dataclass(frozen=True)
class FaceImage:
    """One Type-10 facial image as read: what the record says, and the image."""

    idc: int
    pose: str  # 10.020 POS; "" when the record does not say (read as frontal)
    sap: int  # 10.013 SAP; 0 (unknown) when absent in a probe
    compression: str  # 10.011 CGA
    colour_space: str  # 10.012 CSP
    width: int
    height: int
    source_agency: str  # 10.004 SRC
    capture_date: datetime.date  # 10.005 PHD
    data: bytes  # what the face pipeline decodes (PNG for JPEGL and NONE)
    payload: bytes  # 10.999 as sent
    quality_scores: tuple[QualityScore, ...] = ()
    pixels: Pixels | None = field(default=None, repr=False, compare=False)

    @property
    def frontal(self) -> bool:
        return self.pose in ("", "F")

    @property
    def quality(self) -> dict[str, int]:
        """Our components from 10.024 (the records this project wrote)."""
        return {
            _COMPONENT_OF[q.product]: q.score
            for q in self.quality_scores
            if q.vendor.upper() == QUALITY_VENDOR and q.product in _COMPONENT_OF
        }


@dataclass(frozen=True)
class FaceTransaction:
    """A transaction's facial images: ``frontal`` to search with, ``others`` kept."""

    profile: str
    version: str  # 1.002
    tot: str  # 1.004
    date: datetime.date  # 1.005
    destination_agency: str  # 1.007
    originating_agency: str  # 1.008
    control_number: str  # 1.009 TCN: provenance of every record enrolled from it
    text: dict[str, str]  # Type-2 fields, "2.NNN" -> value
    frontal: list[FaceImage]  # POS F (or absent), best SAP first, then file order
    others: list[FaceImage]  # profile and angled images: kept, never searched
    skipped: list[str]  # records not read as faces (other types, non-face IMT)

    @property
    def best(self) -> FaceImage:
        return self.frontal[0]


def is_transaction(data: bytes) -> bool:
    """True when ``data`` starts like an ANSI/NIST-ITL transaction (field 1.001)."""
    return data.startswith((b"1.001:", b"1.01:", b"1.1:"))


# --- reading ---------------------------------------------------------------------------


def read_face_transaction(
    data: bytes,
    profile: str = "int-i",
    *,
    use: Use = "enrol",
    max_pixels: int = 40_000_000,
    min_enrol_sap: int = MIN_ENROL_SAP,
    decode: bool = True,
) -> FaceTransaction:
    """The facial images of one transaction, validated against ``profile``.

    ``decode=False`` checks each image's header (format, size, pixel limit) but leaves
    the decoding to the face pipeline (bulk enrolment decodes once, in a worker).
    Raises MalformedNistRecord, UnknownRecordType, NotAllowedByProfile, UnreadableImage,
    ImageTooLarge or ImageTooSmall; nothing else.
    """
    if profile not in PROFILES:
        raise NotAllowedByProfile(
            f"unknown profile {profile!r}; known: {', '.join(PROFILES)}", profile=profile
        )
    if not data:
        raise MalformedNistRecord("the transaction is empty (0 bytes)")
    if len(data) > MAX_TRANSACTION_BYTES:
        raise MalformedNistRecord(
            f"the transaction is {len(data) / 1e6:.0f} MB; the limit is"
            f" {MAX_TRANSACTION_BYTES / 1e6:.0f} MB"
        )
    if not is_transaction(data):
        raise MalformedNistRecord(
            "not an ANSI/NIST-ITL transaction: it must start with field 1.001 (LEN)"
        )
    records = _records(data)
    header = records[0]
    encoding = (
        "utf-8" if header.text(15, required=False).split("\x1f")[0].strip() == "3" else "latin-1"
    )
    version = header.text(2, encoding).strip()
    if profile == "int-i" and version not in INTI_VERSIONS:
        raise _violation(header, 2, "VER", version, profile, "0500, 0501 or 0502")
    rules = _Rules(profile, use, max_pixels, min_enrol_sap, decode)
    text: dict[str, str] = {}
    read: list[FaceImage] = []
    skipped: list[str] = []
    for record in records[1:]:
        if record.type == 2:
            text.update(
                {f"2.{t:03d}": record.text(t, encoding) for t in sorted(record.fields) if t > 2}
            )
        elif record.type != 10:
            skipped.append(f"{record.name()}: not a facial image record")
        else:
            imt = record.text(3).strip().upper()
            if imt not in IMT_CODES:
                raise _violation(record, 3, "IMT", imt, "ansi-nist", "FACE, SCAR, MARK or TATTOO")
            if imt != "FACE":
                if profile == "int-i":
                    raise _violation(record, 3, "IMT", imt, profile, "FACE")
                skipped.append(f"{record.name()}: IMT {imt}, not a face")
                continue
            read.append(_face_image(record, rules))
    frontal = sorted((i for i in read if i.frontal), key=lambda i: -i.sap)
    if not frontal:
        raise NotAllowedByProfile(
            f"the transaction holds {len(read)} facial image(s) and none is frontal"
            " (10.020 POS F): there is nothing to search or enrol",
            field="10.020",
        )
    return FaceTransaction(
        profile=profile,
        version=version,
        tot=header.text(4, encoding).strip(),
        date=_date(header, 5),
        destination_agency=header.text(7, encoding).strip(),
        originating_agency=header.text(8, encoding).strip(),
        control_number=header.text(9, encoding).strip(),
        text=text,
        frontal=frontal,
        others=[i for i in read if not i.frontal],
        skipped=skipped,
    )


def _records(data: bytes) -> list[Record]:
    header, offset = read_tagged(data, 0, expected_type=1, index=1)
    listed = content_list(header)
    records = [header]
    for index, (record_type, idc) in enumerate(listed, start=2):
        if offset >= len(data):
            raise MalformedNistRecord(
                f"field 1.003 (CNT) lists {len(listed)} records after Type-1, but the file"
                f" ends after {index - 2}: truncated, or CNT is wrong",
                record=1,
                field="1.003",
            )
        if record_type < 9 and record_type != 2:
            # Types 3-8 have binary headers without tags; a face transaction has none.
            raise UnknownRecordType(
                f"record {index} is Type-{record_type}; a face transaction holds Types 1, 2,"
                " 10 and tagged records (9 and above), which are skipped",
                record=index,
                type=record_type,
            )
        record, offset = read_tagged(
            data, offset, expected_type=record_type, index=index, image_types=_IMAGE_TYPES
        )
        found = record.integer(2, high=255)
        if found != idc:
            raise record.error(2, f"IDC is {found}, but field 1.003 (CNT) lists IDC {idc}")
        records.append(record)
    if offset != len(data):
        raise MalformedNistRecord(
            f"{len(data) - offset} bytes follow the last record that field 1.003 (CNT)"
            " lists: CNT is wrong or a length field lies",
            record=len(records),
            field="1.003",
        )
    return records


@dataclass(frozen=True)
class _Rules:
    profile: str
    use: Use
    max_pixels: int
    min_enrol_sap: int
    decode: bool


def _violation(
    record: Record, tag: int, name: str, value: object, profile: str, allowed: str
) -> NotAllowedByProfile:
    where = f"{record.type}.{tag:03d}"
    return NotAllowedByProfile(
        f"{where} {name} {str(value)[:20]!r} is not allowed by {PROFILE_NAME[profile]}"
        f" ({allowed}); {record.name()}",
        record=record.index,
        field=where,
        profile=profile,
    )


def _date(record: Record, tag: int) -> datetime.date:
    raw = record.text(tag).strip()
    if not _DATE.fullmatch(raw):
        raise record.error(tag, f"{raw[:20]!r} is not a date YYYYMMDD")
    try:
        return datetime.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError as exc:
        raise record.error(tag, f"{raw!r} is not a calendar date") from exc


def _face_image(record: Record, rules: _Rules) -> FaceImage:
    profile = rules.profile
    mandatory = INTI_MANDATORY if profile == "int-i" else ANSI_MANDATORY
    for tag in mandatory:
        if tag not in record.fields:
            raise NotAllowedByProfile(
                f"{record.type}.{tag:03d} is missing; {PROFILE_NAME[profile]} requires"
                f" 10.001-10.{mandatory[-1]:03d} and 10.999 ({record.name()})",
                record=record.index,
                field=f"10.{tag:03d}",
                profile=profile,
            )
    if not record.data:
        raise NotAllowedByProfile(
            f"10.999 DATA is missing or empty; {record.name()} holds no image",
            record=record.index,
            field="10.999",
            profile=profile,
        )
    source = record.text(4).strip()
    if not source or len(source) > 36:
        raise record.error(4, "SRC (source agency) is empty or longer than 36 characters")
    width = record.integer(6, low=1, high=99_999)
    height = record.integer(7, low=1, high=99_999)
    slc = record.integer(8, high=2)
    record.integer(9, low=0 if slc == 0 else 1, high=99_999)
    record.integer(10, low=0 if slc == 0 else 1, high=99_999)
    cga = record.text(11).strip().upper()
    if cga not in CGA_CODES or cga == "WSQ20":
        raise _violation(
            record, 11, "CGA", cga, "ansi-nist", "JPEGB, JPEGL, JP2, JP2L, PNG or NONE for faces"
        )
    if profile == "int-i" and cga not in INTI_CGA:
        raise _violation(record, 11, "CGA", cga, profile, "JPEGB or JPEGL only")
    csp = record.text(12, required=False).strip().upper()
    if csp and csp not in CSP_CODES:
        raise _violation(record, 12, "CSP", csp, profile, "GRAY, RGB, SRGB, YCC, SYCC or UNK")
    sap = _sap(record, rules)
    pose = record.text(20, required=False).strip().upper()
    allowed_pos = INTI_POS if profile == "int-i" else POS_CODES
    if pose and pose not in allowed_pos:
        raise _violation(record, 20, "POS", pose, profile, "/".join(sorted(allowed_pos)))
    scores = _quality_scores(record)
    payload = _payload(record, cga, csp, width, height, rules)
    return FaceImage(
        idc=record.integer(2, high=255),
        pose=pose,
        sap=sap,
        compression=cga,
        colour_space=csp or "UNK",
        width=width,
        height=height,
        source_agency=source,
        capture_date=_date(record, 5),
        data=payload.data,
        payload=record.data,
        quality_scores=scores,
        pixels=payload.pixels,
    )


def _sap(record: Record, rules: _Rules) -> int:
    if 13 not in record.fields:
        if rules.profile == "int-i" and rules.use == "enrol":
            raise NotAllowedByProfile(
                f"10.013 SAP is missing; INT-I enrolment needs a mugshot of level"
                f" {rules.min_enrol_sap} or above ({record.name()})",
                record=record.index,
                field="10.013",
                profile=rules.profile,
            )
        return 0
    sap = record.integer(13, high=99)
    if sap not in SAP_CODES:
        raise _violation(record, 13, "SAP", sap, "ansi-nist", "a code of the SAP table")
    if rules.profile == "int-i" and rules.use == "enrol" and sap < rules.min_enrol_sap:
        raise _violation(
            record, 13, "SAP", sap, rules.profile, f"{rules.min_enrol_sap} or above to enrol"
        )
    return sap


def _quality_scores(record: Record) -> tuple[QualityScore, ...]:
    raw = record.text(24, required=False)
    if not raw:
        return ()
    subfields = raw.split("\x1e")
    if len(subfields) > MAX_QUALITY_SCORES:
        raise record.error(24, f"{len(subfields)} quality scores; at most {MAX_QUALITY_SCORES}")
    out: list[QualityScore] = []
    for number, sub in enumerate(subfields, start=1):
        items = [i.strip() for i in sub.split("\x1f")]
        ok = len(items) == 3 and items[0].isdigit() and items[2].isdigit()
        ok = ok and items[0].isascii() and items[2].isascii() and bool(HEX4.fullmatch(items[1]))
        if not ok:
            raise record.error(24, f"subfield {number} is not 'QVU␟QAV␟QAP'")
        score, product = int(items[0]), int(items[2])
        if not (score <= 100 or score in (254, 255)) or not 1 <= product <= 65535:
            raise record.error(24, f"subfield {number}: score {score} or product {product}")
        out.append(QualityScore(score, items[1].upper(), product))
    return tuple(out)


def _payload(
    record: Record, cga: str, csp: str, width: int, height: int, rules: _Rules
) -> images.Payload:
    assert record.data is not None
    try:
        check_pixels(width, height, max_pixels=rules.max_pixels)
        if cga == "JPEGL":
            payload = images.lossless_jpeg(record.data, max_pixels=rules.max_pixels)
        elif cga == "NONE":
            channels = 1 if csp == "GRAY" else 3
            payload = images.uncompressed(
                record.data, width, height, channels, max_pixels=rules.max_pixels
            )
        else:
            payload, _ = images.pillow_image(
                record.data,
                images.PILLOW_FORMAT[cga],
                max_pixels=rules.max_pixels,
                decode=rules.decode,
            )
    except images.IMAGE_ERRORS as exc:
        raise type(exc)(
            f"{record.name(999)}: {exc.message}", record=record.index, field="10.999"
        ) from exc
    if (payload.width, payload.height) != (width, height):
        raise record.error(
            6,
            f"the record says {width} x {height} pixels (HLL x VLL), the image is"
            f" {payload.width} x {payload.height}",
        )
    return payload


def probe_image(data: bytes, settings: FaceSettings) -> tuple[bytes, FaceTransaction]:
    """The image to search with from a transaction probe (the best frontal image) and
    the transaction; the node's profile applies, SAP 0 and 1 (CCTV stills) included.
    The pipeline decodes the image once, with its quality check for probes."""
    tx = read_face_transaction(
        data,
        settings.type10_profile,
        use="probe",
        max_pixels=settings.max_pixels,
        decode=False,
    )
    return tx.best.data, tx
