"""Type-10 faces for the bad-input half of the fault campaign (bench/faults_inputs.py):
ANSI/NIST-ITL transactions holding a facial image, built valid here and then broken in
one place (wrong IMT, unknown or refused CGA, codes outside the tables, lying lengths,
a JPEG bomb inside a record, payloads that are no image of the kind the record says).
Only transactions our own INT-I reader refuses are sent.
"""

from __future__ import annotations

import base64
import io
import random

from PIL import Image

import faults_inputs_files as files
from faults_inputs_kit import HOLDER, SEED, Campaign, Trial
from faultworld import InputClass

FACE_NIST_CODES = {
    "malformed_nist_record",
    "unknown_record_type",
    "not_allowed_by_profile",
    "unreadable_image",
    "image_too_small",
    "image_too_large",
    "bad_input",
}


def probe(face: bytes) -> bytes:
    """A valid INT-I probe transaction: Type-1, Type-2, one frontal Type-10 (SAP 1)."""
    from prum.categories.face.type10_write import FaceToWrite, write_face_transaction

    face_record = FaceToWrite(face, pose="F", sap=1)
    return write_face_transaction([face_record], control_number="AT-FAULTS-10")


def _record_span(data: bytes) -> tuple[int, int]:
    start = data.index(b"10.001:")
    length = int(data[start + 7 : data.index(b"\x1d", start)])
    return start, start + length


def field_set(data: bytes, tag: int, value: bytes | None) -> bytes:
    """``data`` with field 10.``tag`` of its Type-10 record set to ``value`` (removed
    if None, added before 10.999 if absent); every LEN stays true."""
    start, end = _record_span(data)
    record = data[start:end]
    marker = f"10.{tag:03d}:".encode()
    image_at = record.index(b"10.999:")
    if tag == 999 and value is None:  # the record without its image field
        return data[:start] + files.retagged(record[: image_at - 1] + b"\x1c") + data[end:]
    at = record.find(marker, 0, image_at)
    if at < 0:
        if value is None:
            return data
        record = record[:image_at] + marker + value + b"\x1d" + record[image_at:]
    else:
        stop = record.index(b"\x1d", at)
        if tag == 999:
            stop = len(record) - 1
        if value is None:
            record = record[:at] + record[stop + 1 :]
        else:
            record = record[: at + len(marker)] + value + record[stop:]
    return data[:start] + files.retagged(record) + data[end:]


def image_set(data: bytes, image: bytes) -> bytes:
    start, end = _record_span(data)
    record = data[start:end]
    head = record[: record.index(b"10.999:") + 7]
    return data[:start] + files.retagged(head + image + b"\x1c") + data[end:]


def lies(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    """LEN of the Type-10 and Type-1 records off, not numbers, swallowing; CNT one more;
    cut short; bytes after the end."""
    start, end = _record_span(data)
    length = end - start
    out = [
        (f"Type-10 LEN {text.decode()!r}", files.with_len(data, start, text))
        for text in [
            str(v).encode() for v in (length + 1, length - 1, length + 7, length * 10, 0, 5)
        ]
        + [b"12x4", b"-5", b"", b"9" * 20]
    ]
    header_end = data.index(b"\x1c") + 1
    out += [
        (f"Type-1 LEN {v}", files.with_len(data, 0, str(v).encode()))
        for v in (header_end + 1, header_end - 1, len(data))
    ]
    out.append(("CNT counts one more", data.replace(b"1.003:1\x1f2", b"1.003:1\x1f3", 1)))
    out.append(("bytes after the last record", data + b"10.001:20\x1d10.002:2\x1c"))
    out += [(f"cut at {cut}", data[:cut]) for cut in sorted(rng.sample(range(8, len(data)), 5))]
    return out


def cases(face: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    base = probe(face)
    jp2 = files.encoded(Image.open(io.BytesIO(face)).convert("RGB"), "JPEG2000")
    width = Image.open(io.BytesIO(face)).size[0]
    bomb = files.jpeg_sized(face, 60000, 60000)
    found: list[tuple[str, bytes]] = [
        ("IMT MARK", field_set(base, 3, b"MARK")),
        ("IMT TATTOO", field_set(base, 3, b"TATTOO")),
        ("IMT PHOTO (no such code)", field_set(base, 3, b"PHOTO")),
        ("IMT missing", field_set(base, 3, None)),
        ("CGA JPEGX (no such code)", field_set(base, 11, b"JPEGX")),
        ("CGA WSQ20 (a fingerprint codec)", field_set(base, 11, b"WSQ20")),
        ("CGA JP2 with a JPEG 2000 image", image_set(field_set(base, 11, b"JP2"), jp2)),
        ("CGA JPEGL on a lossy JPEG", field_set(base, 11, b"JPEGL")),
        ("CGA PNG on a JPEG", field_set(base, 11, b"PNG")),
        ("CSP CMYK", field_set(base, 12, b"CMYK")),
        ("SAP 31 (no such code)", field_set(base, 13, b"31")),
        ("POS X", field_set(base, 20, b"X")),
        ("POS L only (no frontal image)", field_set(base, 20, b"L")),
        ("HLL lies by one pixel", field_set(base, 6, str(width + 1).encode())),
        ("SRC missing", field_set(base, 4, None)),
        ("PHD 20261341", field_set(base, 5, b"20261341")),
        ("10.024 score 300", field_set(base, 24, b"300\x1f0000\x1f1")),
        ("image missing", field_set(base, 999, None)),
        (
            "JPEG bomb 60000 x 60000, HLL/VLL honest",
            field_set(field_set(image_set(base, bomb), 6, b"60000"), 7, b"60000"),
        ),
        ("JPEG bomb 60000 x 60000, HLL/VLL lying", image_set(base, bomb)),
        ("image: 3000 random bytes", image_set(base, rng.randbytes(3000))),
        ("image cut at a half", image_set(base, face[: len(face) // 2])),
        ("image empty", image_set(base, b"")),
    ]
    return found + lies(base, rng)


def refused(data: bytes) -> bool:
    from prum.categories.face.type10 import read_face_transaction
    from prum.errors import PrumError

    try:
        read_face_transaction(data, "int-i", use="probe")
    except PrumError:
        return True
    return False


def type10_faces(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "ANSI/NIST-ITL Type-10 faces",
        "AT's national API (face probe as an ansi_nist transaction and as the image field)"
        " and AT's workbench face form: INT-I transactions broken in one place (wrong IMT,"
        " unknown or refused CGA, codes outside the tables, lying LEN and CNT, cut short,"
        " a JPEG bomb inside a record, payloads of another kind than CGA says); read before"
        " the search travels: nothing signed, nothing stored",
    )
    rng = random.Random(SEED + 10)
    if refused(probe(c.face)):
        t.fail("our own reader refuses the valid Type-10 probe")
    for name, data in cases(c.face, rng):
        if not refused(data):
            t.fail(f"{name}: our own reader accepts it (not bad input)")
            continue
        body = c.world.search_body("face", targets=[HOLDER])
        body["probe"] = {"format": "ansi_nist", "data": base64.b64encode(data).decode()}
        t.check(f"API probe: {name}", c.search(body), codes=FACE_NIST_CODES)
        t.check(f"API image: {name}", c.search(c.face_body(data)), codes=FACE_NIST_CODES)
    for name, data in cases(c.face, random.Random(SEED + 10))[:12]:
        form = c.form(category="face", profile_text="")
        answer = c.bench().post("/workbench/search", form, {"image": ("probe.an2", data)})
        t.check(f"workbench: {name}", answer, codes=FACE_NIST_CODES)
    return t.finish()
