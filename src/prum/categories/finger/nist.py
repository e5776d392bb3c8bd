"""Read and write ANSI/NIST-ITL transactions (the Interpol INT-I subset Prüm uses).

Records read: Type-1 (transaction header), Type-2 (descriptive text), Type-4 (500 ppi
tenprint image, fixed binary header), Type-9 (minutiae, standard-format fields 9.010 to
9.012), Type-13 (latent image), Type-14 (variable-resolution finger image) and Type-15
(palm image). Any other record type is refused with :class:`UnknownRecordType`.

The reader is our own and strict: a file from another country is untrusted input, and
every length, count and number is checked before it is used, so a file that lies
about its lengths, a CNT field that disagrees with the records, a truncated file or a
corrupt WSQ image gets a :class:`MalformedNistRecord` (or :class:`BadWsqStream`)
naming the record and the field. ``nistitl`` parses leniently (it finds the image of a
tagged record by searching for ``999:`` and crashes on unknown types), so it is used
only to write: it computes the LEN fields and CNT.

References: ANSI/NIST-ITL 1-2011 Update 2015 (NIST SP 500-290e3), sections 7 (data
conventions), 8.1 (Type-1), 8.4, 8.9, 8.13-8.15; Interpol INT-I v6.
"""

from __future__ import annotations

import datetime
import math
import re
import struct

import nistitl

from prum.categories.ansi_nist import Record, content_list, read_tagged
from prum.categories.finger.images import (
    TARGET_PPI,
    Decoded,
    check_dimensions,
    decode_image,
    decode_wsq_many,
    encode_wsq,
    resample_to,
    wsq_dimensions,
)
from prum.categories.finger.types import MAX_PPI, MIN_PPI, FingerImage, Minutia, Transaction
from prum.errors import (
    BadWsqStream,
    ImageTooLarge,
    ImageTooSmall,
    InvalidFingerData,
    MalformedNistRecord,
    UnknownRecordType,
    UnreadableImage,
)

#: Record types this reader understands.
SUPPORTED_TYPES = frozenset({2, 4, 9, 13, 14, 15})
IMAGE_TYPES = frozenset({4, 13, 14, 15})

#: A tenprint transaction with palms is a few MB; 100 MB is not a transaction.
MAX_TRANSACTION_BYTES = 100 * 1024 * 1024

#: 0.01 mm units per inch: Type-9 standard-format coordinates are in 0.01 mm.
_UNITS_PER_INCH = 2540.0
_TYPE4_HEADER = struct.Struct("!IBB6sBHHB")  # LEN IDC IMP FGP ISR HLL VLL GCA: 18 bytes

# ANSI/NIST-ITL Table 7, impression type codes, grouped into our four kinds.
_ROLLED_CODES = frozenset({1, 3, 21, 23, 25, 27})
_PLAIN_CODES = frozenset({0, 2, 8, 20, 22, 24, 26, 28, 29})
_LATENT_CODES = frozenset({4, 5, 6, 7, 12, 13, 14, 15})
_PALM_CODES = frozenset({10, 11})
_IMPRESSION_CODE = {"rolled": 1, "plain": 0, "latent": 4, "palm": 10}
_LATENT_PALM_CODE = 12

_KIND_CODE = {"ending": "A", "bifurcation": "B", "other": "D"}
_CODE_KIND = {"A": "ending", "B": "bifurcation", "C": "other", "D": "other"}

_TEXT_KEY = re.compile(r"2\.\d{3}")
_DATE = re.compile(r"\d{8}")


# --- reading -------------------------------------------------------------------------


def read_transaction(data: bytes) -> Transaction:
    """Parse an ANSI/NIST-ITL transaction; images come back as 500 ppi grayscale.

    Raises MalformedNistRecord, UnknownRecordType, BadWsqStream, UnreadableImage,
    ImageTooLarge, ImageTooSmall or InvalidFingerData, never anything else.
    """
    if not data:
        raise MalformedNistRecord("the transaction is empty (0 bytes)")
    if len(data) > MAX_TRANSACTION_BYTES:
        raise MalformedNistRecord(
            f"the transaction is {len(data) / 1e6:.0f} MB; the limit is"
            f" {MAX_TRANSACTION_BYTES / 1e6:.0f} MB"
        )
    if not data.startswith(b"1.001:") and not data.startswith(b"1.01:"):
        raise MalformedNistRecord(
            "not an ANSI/NIST-ITL transaction: it must start with field 1.001 (LEN)"
        )
    header, offset = read_tagged(data, 0, expected_type=1, index=1)
    listed = content_list(header)
    records = [header]
    for index, (record_type, idc) in enumerate(listed, start=2):
        if offset >= len(data):
            raise MalformedNistRecord(
                f"field 1.003 (CNT) lists {len(listed)} records after Type-1, but the"
                f" file ends after {index - 2}: truncated, or CNT is wrong",
                record=1,
                field="1.003",
            )
        if record_type not in SUPPORTED_TYPES:
            raise UnknownRecordType(
                f"record {index} is Type-{record_type}; this system reads Types"
                f" {', '.join(str(t) for t in sorted(SUPPORTED_TYPES | {1}))}",
                record=index,
                type=record_type,
            )
        if record_type == 4:
            record, offset = _read_type4(data, offset, index)
        else:
            record, offset = read_tagged(
                data, offset, expected_type=record_type, index=index, image_types=IMAGE_TYPES
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
    return _build(records)


def _read_type4(data: bytes, offset: int, index: int) -> tuple[Record, int]:
    """A Type-4 record: 18-byte binary header (section 8.4) then the image bytes."""
    record = Record(type=4, index=index, fields={})
    remaining = len(data) - offset
    if remaining < _TYPE4_HEADER.size:
        raise record.error(1, f"the file ends inside the 18-byte header ({remaining} bytes left)")
    length, idc, imp, fgp, isr, hll, vll, gca = _TYPE4_HEADER.unpack_from(data, offset)
    if length < _TYPE4_HEADER.size or length > remaining:
        raise record.error(
            1,
            f"LEN says {length} bytes, but the header alone is 18 and {remaining} remain"
            " in the file: the length lies or the file is truncated",
        )
    record.fields = {
        1: str(length).encode(),
        2: str(idc).encode(),
        3: str(imp).encode(),
        4: str(fgp[0]).encode(),
        5: str(isr).encode(),
        6: str(hll).encode(),
        7: str(vll).encode(),
        8: str(gca).encode(),
    }
    record.data = data[offset + _TYPE4_HEADER.size : offset + length]
    return record, offset + length


def _build(records: list[Record]) -> Transaction:
    header = records[0]
    encoding = _encoding(header)
    date = _date(header)
    text: dict[str, str] = {}
    for record in records:
        if record.type == 2:
            for tag in sorted(record.fields):
                if tag > 2:
                    text[f"2.{tag:03d}"] = record.text(tag, encoding)
    images = _images([r for r in records if r.type in IMAGE_TYPES])
    by_idc = {image.source_record: image for image in images}
    minutiae: dict[int, list[Minutia]] = {}
    for record in records:
        if record.type == 9:
            position, points = _minutiae(record, by_idc, images)
            minutiae.setdefault(position, []).extend(points)
    return Transaction(
        tot=header.text(4, encoding).strip(),
        originating_agency=header.text(8, encoding).strip(),
        destination_agency=header.text(7, encoding).strip(),
        control_number=header.text(9, encoding).strip(),
        date=date,
        text=text,
        images=images,
        minutiae=minutiae,
        latent=any(r.type == 13 for r in records),
    )


def _encoding(header: Record) -> str:
    """Field 1.015 (DCS): code 3 is UTF-8; without it text is 7-bit ASCII (latin-1 read)."""
    dcs = header.text(15, required=False).split("\x1f")[0].strip()
    return "utf-8" if dcs == "3" else "latin-1"


def _date(header: Record) -> datetime.date:
    raw = header.text(5).strip()
    if not _DATE.fullmatch(raw):
        raise header.error(5, f"{raw[:20]!r} is not a date YYYYMMDD")
    try:
        return datetime.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError as exc:
        raise header.error(5, f"{raw!r} is not a calendar date") from exc


def _images(records: list[Record]) -> list[FingerImage]:
    """Decode all image records (every WSQ image in one isolated decoder run)."""
    wsq = [r for r in records if _compression(r) == "WSQ"]
    for record in wsq:
        try:
            check_dimensions(*wsq_dimensions(_image_bytes(record)))
        except (BadWsqStream, ImageTooLarge, ImageTooSmall) as exc:
            raise type(exc)(f"{_data_name(record)}: {exc.message}", record=record.index) from exc
    try:
        streams = decode_wsq_many([_image_bytes(r) for r in wsq])
    except BadWsqStream as exc:
        record = wsq[int(exc.details.get("index", 0))]
        raise BadWsqStream(f"{_data_name(record)}: {exc.message}", record=record.index) from exc
    decoded_wsq = {r.index: decoded for r, decoded in zip(wsq, streams, strict=True)}
    images: list[FingerImage] = []
    for record in records:
        decoded = decoded_wsq.get(record.index) or _decode_other(record)
        images.append(_finger_image(record, decoded))
    return images


def _data_name(record: Record) -> str:
    return record.name(None if record.type == 4 else 999)


def _image_bytes(record: Record) -> bytes:
    if not record.data:
        raise record.error(None if record.type == 4 else 999, "the record holds no image data")
    return record.data


def _compression(record: Record) -> str:
    """'WSQ', 'NONE' or a Pillow-decoded format, from GCA (Type-4) or CGA (tagged)."""
    if record.type == 4:
        gca = record.integer(8, high=255)
        if gca == 0:
            return "NONE"
        if gca == 1:
            return "WSQ"
        raise record.error(None, f"compression algorithm {gca} is not 0 (none) or 1 (WSQ)")
    cga = record.text(11).strip().upper()
    if cga in ("WSQ", "WSQ20", "1"):
        return "WSQ"
    if cga in ("NONE", "0"):
        return "NONE"
    if cga in ("PNG", "JPEGB", "JPEGL", "JP2", "JP2L"):
        return cga
    raise record.error(11, f"compression {cga[:20]!r} is not WSQ20, NONE, PNG, JPEG or JP2")


def _decode_other(record: Record) -> Decoded:
    width, height = record.integer(6, high=65535), record.integer(7, high=65535)
    if record.type != 4 and record.fields.get(12, b"8").strip() != b"8":
        raise record.error(12, "only 8 bits per pixel grayscale is read")
    raw = _compression(record) == "NONE"
    try:
        return decode_image(
            _image_bytes(record), width=width if raw else None, height=height if raw else None
        )
    except (UnreadableImage, ImageTooLarge, ImageTooSmall) as exc:
        raise type(exc)(f"{_data_name(record)}: {exc.message}", record=record.index) from exc


def _finger_image(record: Record, decoded: Decoded) -> FingerImage:
    width, height = record.integer(6, high=65535), record.integer(7, high=65535)
    found_height, found_width = decoded.pixels.shape
    if (found_width, found_height) != (width, height):
        raise record.error(
            6,
            f"the record says {width} x {height} pixels (HLL x VLL), the image is"
            f" {found_width} x {found_height}",
        )
    ppi = _resolution(record)
    idc = record.integer(2, high=255)
    impression = _impression(record)
    position = _position(record)
    try:
        pixels = resample_to(decoded.pixels, ppi)
        return FingerImage(
            position=position,
            impression=impression,
            ppi=TARGET_PPI,
            pixels=pixels,
            source_record=idc,
        )
    except (InvalidFingerData, UnreadableImage, ImageTooLarge, ImageTooSmall) as exc:
        raise type(exc)(f"{record.name()}: {exc.message}", record=record.index) from exc


def _resolution(record: Record) -> int:
    """Pixels per inch: Type-4 is 500 ppi (ISR 0); tagged records give SLC and THPS."""
    if record.type == 4:
        return TARGET_PPI
    slc = record.integer(8, high=2)
    thps = record.integer(9, high=100_000)
    tvps = record.integer(10, high=100_000)
    if slc == 0 or thps != tvps:
        raise record.error(8, f"scale units {slc} with {thps}/{tvps} give no square pixel size")
    ppi = thps if slc == 1 else round(thps * 2.54)
    if not MIN_PPI <= ppi <= MAX_PPI:
        raise record.error(9, f"{ppi} ppi is outside {MIN_PPI}-{MAX_PPI}")
    return ppi


def _impression(record: Record) -> str:
    code = record.integer(3, high=99)
    for kind, codes in (
        ("rolled", _ROLLED_CODES),
        ("plain", _PLAIN_CODES),
        ("latent", _LATENT_CODES),
        ("palm", _PALM_CODES),
    ):
        if code in codes:
            return kind
    raise record.error(3, f"impression type {code} is not an ANSI/NIST-ITL Table 7 code")


def _position(record: Record) -> int:
    tag = 4 if record.type == 4 else 13
    position = record.integer(tag, high=255)
    if record.type == 15 and not 20 <= position <= 36:
        raise record.error(tag, f"palm position {position} is not 20-36")
    return position


def _minutiae(
    record: Record, by_idc: dict[int | None, FingerImage], images: list[FingerImage]
) -> tuple[int, list[Minutia]]:
    """Type-9 standard format (section 8.9.7): 9.010 MIN, 9.012 MRC.

    Coordinates are in 0.01 mm from the image's lower-left corner with Y up (the
    convention NBIS's ``lfs2nist_minutia_XYT`` writes); they are turned into pixels of
    the 500 ppi image from the top-left corner, so the image of the same finger (same
    IDC, else same position) must be in the transaction.
    """
    if record.text(4).strip() != "S":
        raise record.error(4, "only standard-format minutiae (FMT = S) are read")
    position = record.integer(6, high=255)
    image = by_idc.get(record.integer(2, high=255))
    if image is None or image.position != position:
        image = next((i for i in images if i.position == position), None)
    if image is None:
        raise record.error(
            6, f"no image of finger {position} in the transaction to place the minutiae on"
        )
    count = record.integer(10, high=10_000)
    raw = record.text(12, required=count > 0)
    subfields = [s for s in raw.split("\x1e") if s] if raw else []
    if len(subfields) != count:
        raise record.error(12, f"{len(subfields)} minutiae, but 9.010 (MIN) says {count}")
    scale = image.ppi / _UNITS_PER_INCH
    points: list[Minutia] = []
    for number, sub in enumerate(subfields, start=1):
        items = sub.split("\x1f")
        xyt = items[1] if len(items) > 1 else ""
        if len(items) < 4 or len(xyt) != 11 or not xyt.isdigit() or not xyt.isascii():
            raise record.error(12, f"minutia {number} is not 'index␟XXXXYYYYTTT␟Q␟T'")
        quality = items[2].strip()
        kind = _CODE_KIND.get(items[3].strip())
        if kind is None or not quality.isdigit() or not quality.isascii() or int(quality) > 63:
            raise record.error(12, f"minutia {number} has a bad quality or type")
        theta = int(xyt[8:])
        if theta > 359:
            raise record.error(12, f"minutia {number} has an angle of {theta} degrees")
        x = int(xyt[:4]) * scale
        y = (image.height - 1) - int(xyt[4:8]) * scale
        if y < -1.0 or x > image.width:
            raise record.error(12, f"minutia {number} lies outside the image of finger {position}")
        try:
            points.append(
                Minutia(
                    x=x,
                    y=max(y, 0.0),
                    angle=math.radians(theta),
                    kind=kind,
                    quality=int(quality) / 63,
                )
            )
        except InvalidFingerData as exc:
            raise record.error(12, f"minutia {number}: {exc.message}") from exc
    return position, points


# --- writing -------------------------------------------------------------------------


def write_transaction(tx: Transaction, *, finger_record: int = 14) -> bytes:
    """Serialise ``tx`` as ANSI/NIST-ITL with WSQ images at 500 ppi.

    Fingers go into Type-14 records (``finger_record=14``, the INT-I default) or legacy
    Type-4 records (``finger_record=4``); latents into Type-13, palms into Type-15;
    minutiae into Type-9 with the IDC of their finger's image. Images at another
    resolution are resampled to 500 ppi first. Raises InvalidFingerData.
    """
    if finger_record not in (4, 14):
        raise InvalidFingerData(f"finger images go in Type-4 or Type-14, not {finger_record}")
    if len(tx.images) > 99:
        raise InvalidFingerData(f"{len(tx.images)} images; a transaction holds at most 99")
    message = nistitl.Message()
    header = message[0]
    for alias, value, tag in (
        ("TOT", tx.tot, "1.004"),
        ("DAI", tx.destination_agency, "1.007"),
        ("ORI", tx.originating_agency, "1.008"),
        ("TCN", tx.control_number, "1.009"),
    ):
        setattr(header, alias, _text(value, tag, required=True))
    header.VER = "0502"
    header.DAT = tx.date.strftime("%Y%m%d")
    header.NSR = header.NTR = "19.69"  # 500 ppi in pixels per millimetre
    header.DCS = [["3", "UTF-8"]]
    text_record = nistitl.AsciiRecord(2)
    text_record.IDC = 0
    for key, value in sorted(tx.text.items()):
        if not _TEXT_KEY.fullmatch(key) or key in ("2.001", "2.002"):
            raise InvalidFingerData(f"Type-2 key {key!r} is not a field tag 2.003-2.999")
        text_record += nistitl.Field(2, int(key[2:]), _text(value, key))
    message += text_record
    idc_of: dict[int, int] = {}
    for idc, image in enumerate(tx.images, start=1):
        message += _image_record(image, idc, finger_record, tx.date)
        idc_of.setdefault(image.position, idc)
    for position, points in sorted(tx.minutiae.items()):
        if position not in idc_of:
            raise InvalidFingerData(
                f"minutiae of finger {position} need an image of that finger", position=position
            )
        image = tx.images[idc_of[position] - 1]
        message += _minutiae_record(position, points, idc_of[position], image)
    try:
        result: bytes = message.NIST
    except (nistitl.NistException, UnicodeEncodeError, ValueError) as exc:
        raise InvalidFingerData(f"the transaction cannot be written: {exc}") from exc
    return result


def _text(value: str, tag: str, *, required: bool = False) -> str:
    """A text value as nistitl writes it: UTF-8 bytes carried in a latin-1 str."""
    if required and not value.strip():
        raise InvalidFingerData(f"field {tag} must not be empty", field=tag)
    if any(c in value for c in "\x1c\x1d"):
        raise InvalidFingerData(f"field {tag} holds a record or group separator", field=tag)
    return value.encode("utf-8").decode("latin-1")


def _image_record(
    image: FingerImage, idc: int, finger_record: int, date: datetime.date
) -> nistitl.AsciiRecord | nistitl.BinaryRecord:
    pixels = resample_to(image.pixels, image.ppi)
    height, width = pixels.shape
    wsq = encode_wsq(pixels)
    code = _IMPRESSION_CODE[image.impression]
    if image.impression == "latent" and image.position >= 20:
        code = _LATENT_PALM_CODE
    if image.impression == "latent":
        record_type = 13
    elif image.impression == "palm" or image.position >= 20:
        record_type = 15
    else:
        record_type = finger_record
    if record_type == 4:
        if not 0 <= image.position <= 15:
            raise InvalidFingerData(f"Type-4 holds finger positions 0-15, not {image.position}")
        binary = nistitl.BinaryRecord(4)
        binary.IDC = idc
        fgp = bytes([image.position]) + b"\xff" * 5
        binary.pack("!B6sBHHB", code, fgp, 0, width, height, 1, wsq)
        return binary
    record = nistitl.AsciiRecord(record_type)
    record.IDC = idc
    for tag, value in (
        (3, str(code)),
        (4, "PRUM"),
        (5, date.strftime("%Y%m%d")),
        (6, str(width)),
        (7, str(height)),
        (8, "1"),
        (9, str(TARGET_PPI)),
        (10, str(TARGET_PPI)),
        (11, "WSQ20"),
        (12, "8"),
        (13, str(image.position)),
    ):
        record += nistitl.Field(record_type, tag, value)
    record += nistitl.BinaryField(record_type, 999, wsq)
    return record


def _minutiae_record(
    position: int, points: list[Minutia], idc: int, image: FingerImage
) -> nistitl.AsciiRecord:
    record = nistitl.AsciiRecord(9)
    record.IDC = idc
    units = _UNITS_PER_INCH / image.ppi
    items: list[list[str]] = []
    for number, point in enumerate(points, start=1):
        x = round(point.x * units)
        y = round((image.height - 1 - point.y) * units)
        theta = round(math.degrees(point.angle)) % 360
        if not (0 <= x <= 9999 and 0 <= y <= 9999):
            raise InvalidFingerData(
                f"minutia {number} of finger {position} lies outside its image",
                position=position,
            )
        quality = max(2, min(63, round(point.quality * 63)))
        items.append(
            [str(number), f"{x:04d}{y:04d}{theta:03d}", str(quality), _KIND_CODE[point.kind]]
        )
    for tag, value in (
        (3, str(_IMPRESSION_CODE[image.impression])),
        (4, "S"),
        (5, [["PRUM", "A"]]),
        (6, str(position)),
        (7, [["T", "UC"]]),
        (10, str(len(points))),
        (11, "0"),
    ):
        record += nistitl.Field(9, tag, value)
    if items:
        record += nistitl.Field(9, 12, items)
    return record
