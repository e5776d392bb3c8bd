"""Files that lie, for bench/faults_inputs.py: images whose headers claim more pixels
than they carry, and ANSI/NIST-ITL transactions (fingerprints, DNA Type-18) with lying
lengths or images that are not WSQ. Built from valid files made here, then broken in
one place, so a refusal can only be about that place.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image


def face_jpeg() -> bytes:
    """A photo with one face (the shared development set), else a plain picture."""
    from prum.demo.samples import shared_data_dir

    shared = shared_data_dir()
    photos = sorted((shared / "faces" / "images").glob("img*.jpg")) if shared else []
    image = Image.open(photos[0]) if photos else Image.new("RGB", (640, 480), (120, 90, 70))
    image.thumbnail((640, 640))
    return encoded(image.convert("RGB"), "JPEG", quality=90)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# --- images whose headers lie -------------------------------------------------------------


def png(width: int, height: int, *, depth: int = 8, colour: int = 0, full: bool = False) -> bytes:
    """A PNG whose header says ``width`` x ``height``; ``full``: every row is there (all
    zero, so the file stays small on the wire), else a few bytes of pixel data only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack("!I", zlib.crc32(kind + data))
        return struct.pack("!I", len(data)) + kind + data + crc

    header = struct.pack("!IIBBBBB", width, height, depth, colour, 0, 0, 0)
    if full:
        packer = zlib.compressobj(9)
        row = b"\x00" * (1 + (width * depth * (3 if colour == 2 else 1) + 7) // 8)
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        data = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def jpeg_sized(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0 or SOF2) claiming another size."""
    at = max(jpeg.find(b"\xff\xc0"), jpeg.find(b"\xff\xc2"))
    return jpeg[: at + 5] + struct.pack("!HH", height, width) + jpeg[at + 9 :]


def tiff_sized(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("L", (64, 64)), "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength
            size = width if tag == 256 else height
            struct.pack_into("<I" if kind == 4 else "<H", data, entry + 8, size)
    return bytes(data)


def bmp_sized(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("RGB", (64, 64)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def webp_sized(side: int) -> bytes:
    """A lossless WebP whose VP8L header says ``side`` x ``side`` (at most 16384)."""
    data = bytearray(encoded(Image.new("RGB", (64, 64)), "WEBP", lossless=True))
    at = data.find(b"VP8L") + 9  # after the chunk size and the signature byte
    bits = struct.unpack_from("<I", data, at)[0] & ~((1 << 28) - 1)
    struct.pack_into("<I", data, at, bits | (side - 1) | ((side - 1) << 14))
    return bytes(data)


def gif_sized(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("L", (64, 64)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


# --- ANSI/NIST-ITL transactions ---------------------------------------------------------------


def ridges(width: int = 256, height: int = 320, twist: int = 3) -> np.ndarray[Any, Any]:
    """Concentric ridges about 9 px apart, as at 500 ppi (tests/test_finger_formats.py)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width / 2, height / 2
    wave = np.sin(
        2 * np.pi * np.hypot(x - cx, y - cy) / 9
        + 2 * np.sin(np.arctan2(y - cy, x - cx) * 0.5 * twist)
    )
    pixels: np.ndarray[Any, Any] = np.clip(128 + 100 * wave, 0, 255).astype(np.uint8)
    return pixels


def tenprint(fingers: int = 2, *, record: int = 14) -> bytes:
    """A valid transaction: Type-1, Type-2, ``fingers`` Type-14 (or Type-4) images and,
    with more than one finger, the Type-9 minutiae of the first."""
    from prum.categories.finger.nist import write_transaction
    from prum.categories.finger.types import FingerImage, Minutia, Transaction

    images = [
        FingerImage(position=p, impression="rolled", ppi=500, pixels=ridges(twist=p))
        for p in range(1, fingers + 1)
    ]
    minutia = Minutia(x=50.0, y=60.0, angle=1.0, kind="ending", quality=0.5)
    transaction = Transaction(
        tot="CAR",
        originating_agency="ATBKA0001",
        destination_agency="DEBKA0001",
        control_number="AT-INPUTS-7",
        date=dt.date(2026, 1, 2),
        images=images,
        minutiae={1: [minutia]} if fingers > 1 else {},
    )
    return write_transaction(transaction, finger_record=record)


def dna_transaction(profile_json: bytes) -> bytes:
    """A valid transaction holding one Type-18 DNA record of ``profile_json``."""
    from prum.categories.dna.nist import ReferenceData, write_transaction
    from prum.categories.dna.profile import parse_json

    profile = parse_json(profile_json.decode(), loci=_loci())
    return write_transaction([ReferenceData(None, profile)])


def spans(data: bytes) -> list[tuple[int, int, int]]:
    """(record type, start, end) of each record of a valid transaction."""
    from prum.categories.ansi_nist import content_list, read_tagged

    header, offset = read_tagged(data, 0, expected_type=1, index=1)
    found = [(1, 0, offset)]
    for index, (kind, _) in enumerate(content_list(header), start=2):
        if kind == 4:  # binary: a 4-byte length first
            end = offset + struct.unpack_from("!I", data, offset)[0]
        else:
            images = frozenset({13, 14, 15})
            _, end = read_tagged(data, offset, expected_type=kind, index=index, image_types=images)
        found.append((kind, offset, end))
        offset = end
    return found


def with_len(data: bytes, start: int, value: bytes) -> bytes:
    """``data`` with the LEN field of the tagged record at ``start`` set to ``value``."""
    colon = data.index(b":", start) + 1
    return data[:colon] + value + data[data.index(b"\x1d", colon) :]


def retagged(record: bytes) -> bytes:
    """A tagged record with its LEN field made true again."""
    colon = record.index(b":") + 1
    rest = record[record.index(b"\x1d", colon) :]
    for digits in range(1, 12):
        size = colon + digits + len(rest)
        if len(str(size)) == digits:
            return record[:colon] + str(size).encode() + rest
    raise ValueError("no consistent length")


def image_replaced(data: bytes, image: bytes, compression: bytes = b"") -> bytes:
    """``data`` with the image of its first Type-14 record replaced by ``image`` (and its
    compression field 14.011 by ``compression`` if given); every LEN stays true."""
    _, start, end = next(s for s in spans(data) if s[0] == 14)
    record = data[start:end]
    head = record[: record.index(b"14.999:") + 7]
    if compression:
        at = head.index(b"14.011:") + 7
        head = head[:at] + compression + head[head.index(b"\x1d", at) :]
    return data[:start] + retagged(head + image + b"\x1c") + data[end:]


def type4_image_replaced(data: bytes, image: bytes) -> bytes:
    """``data`` with the image of its first (binary) Type-4 record replaced; LEN true."""
    _, start, end = next(s for s in spans(data) if s[0] == 4)
    record = data[start + 4 : start + 18] + image  # the header after LEN, then the image
    return data[:start] + struct.pack("!I", len(record) + 4) + record + data[end:]


def lies(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    """Transactions whose lengths lie: LEN fields off by a little or a lot, not numbers,
    swallowing the next record; CNT miscounting; cut short; bytes after the end. Shuffled."""
    records = spans(data)
    out: list[tuple[str, bytes]] = []
    for n, (kind, start, end) in enumerate(records):
        length = end - start
        if kind == 4:
            for value in (length + 1, length - 1, 0, 17, 2**32 - 1):
                out.append(
                    (
                        f"Type-4 LEN {value}",
                        data[:start] + struct.pack("!I", value) + data[start + 4 :],
                    )
                )
            continue
        values = [length + 1, length - 1, length + 7, length * 10, 0, 5]
        if n + 1 < len(records):
            values.append(length + records[n + 1][2] - records[n + 1][1])  # swallows the next
        texts = [str(v).encode() for v in values] + [b"12x4", b"-5", b"", b"9" * 20]
        out += [(f"Type-{kind} LEN {t.decode()!r}", with_len(data, start, t)) for t in texts]
    cnt = re.search(rb"1\.003:1\x1f(\d+)", data)
    if cnt:
        more = str(int(cnt.group(1)) + 1).encode()
        out.append(("CNT counts one more", data[: cnt.start(1)] + more + data[cnt.end(1) :]))
    out.append(("bytes after the last record", data + b"2.001:20\x1d2.002:0\x1c"))
    out += [(f"cut at {cut}", data[:cut]) for cut in sorted(rng.sample(range(8, len(data) - 1), 6))]
    rng.shuffle(out)
    return out


def refused_by(read: Callable[[bytes], Any], data: bytes) -> bool:
    """Whether our own reader refuses ``data`` (only what it refuses is sent)."""
    from prum.errors import PrumError

    try:
        read(data)
    except PrumError:
        return True
    return False


def read_finger(data: bytes) -> Any:
    from prum.categories.finger.nist import read_transaction

    return read_transaction(data)


def read_dna(data: bytes) -> Any:
    from prum.categories.dna.formats import parse_profile

    return parse_profile(data, loci=_loci())


def _loci() -> Any:
    from prum.categories.dna.loci import LocusSet

    return LocusSet("prum")
