"""The image of a Type-10 record (field 10.999) as pixels the face pipeline can read.

Every payload passes the same guards as a photo (:mod:`prum.categories.face.decode`):
the pixel count is checked from the record's claims (HLL, VLL) and from the image's
own header *before* a pixel is decoded, so a record that hides a decompression bomb
costs nothing. Pillow reads JPEG (JPEGB), JPEG 2000 (JP2, JP2L) and PNG; lossless JPEG
(JPEGL, ISO/IEC 10918-1 process 14), which Pillow cannot read, goes through
libjpeg-turbo 3 in ``imagecodecs``; uncompressed pixels (NONE) are counted exactly.
JPEGL and NONE images are handed to the pipeline as PNG (lossless).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from prum.categories.face.decode import ACCEPTED_FORMATS, check_pixels, decode_image
from prum.categories.face.types import Pixels
from prum.errors import ImageTooLarge, ImageTooSmall, UnreadableImage

#: The errors an image payload can raise (each gets the record's name prefixed).
IMAGE_ERRORS = (UnreadableImage, ImageTooLarge, ImageTooSmall)

#: What Pillow calls the format each CGA code must hold.
PILLOW_FORMAT = {"JPEGB": "JPEG", "JP2": "JPEG2000", "JP2L": "JPEG2000", "PNG": "PNG"}

# JPEG start-of-frame markers (ITU T.81 Table B.1): SOF0-SOF15 except DHT, JPG, DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF})


@dataclass(frozen=True)
class Payload:
    """An image ready for the pipeline: bytes it decodes, and pixels when decoded."""

    data: bytes
    format: str
    width: int
    height: int
    pixels: Pixels | None = None


def header_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, Pillow format) from the image header; no pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                width, height = image.size
                return width, height, image.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image looks like a decompression bomb: {exc}") from exc
    except Exception as exc:  # any header Pillow cannot read is "not that format"
        raise UnreadableImage(
            f"the bytes are not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})"
        ) from exc


def jpeg_frame(data: bytes) -> tuple[int, int, int, bool]:
    """(width, height, components, lossless) from the first JPEG start-of-frame marker."""
    if not data.startswith(b"\xff\xd8"):
        raise UnreadableImage("the image does not start with a JPEG SOI marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise UnreadableImage(f"byte {pos}: expected a JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise UnreadableImage(f"byte {pos}: a JPEG segment of length {length}")
        if marker in _SOF:
            if pos + 10 > len(data):
                break
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height, data[pos + 9], marker in _LOSSLESS_SOF
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame
            break
        pos += 2 + length
    raise UnreadableImage("the JPEG stream has no frame header (SOF): truncated or corrupt")


def _png(pixels: Pixels) -> bytes:
    buffer = io.BytesIO()
    # Level 1: these PNGs are transient input to the pipeline (or a stored copy of a
    # lossless image); size matters less than the seconds of a bulk enrolment.
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def lossless_jpeg(data: bytes, *, max_pixels: int) -> Payload:
    """Decode a lossless JPEG (JPEGL) after checking its frame header."""
    import imagecodecs

    width, height, components, lossless = jpeg_frame(data)
    if not lossless:
        raise UnreadableImage("CGA says JPEGL, but the JPEG stream is not lossless (SOF3)")
    if components not in (1, 3):
        raise UnreadableImage(f"a lossless JPEG of {components} components is not a face photo")
    check_pixels(width, height, max_pixels=max_pixels)
    try:
        decoded = np.asarray(imagecodecs.jpeg8_decode(data))
    except Exception as exc:  # imagecodecs raises its own error classes per codec
        raise UnreadableImage(f"the lossless JPEG is corrupt or truncated: {exc}") from exc
    if decoded.dtype != np.uint8 or decoded.shape[:2] != (height, width):
        raise UnreadableImage(
            f"the lossless JPEG decodes to {decoded.shape} {decoded.dtype}, not"
            f" {height} x {width} 8-bit pixels"
        )
    pixels = np.ascontiguousarray(
        np.repeat(decoded[..., None], 3, axis=2) if decoded.ndim == 2 else decoded[..., :3]
    )
    return Payload(_png(pixels), "JPEGL", width, height, pixels)


def uncompressed(
    data: bytes, width: int, height: int, channels: int, *, max_pixels: int
) -> Payload:
    """Raw 8-bit pixels (CGA NONE), row by row, 1 (grey) or 3 (RGB) bytes a pixel."""
    check_pixels(width, height, max_pixels=max_pixels)
    expected = width * height * channels
    if len(data) != expected:
        raise UnreadableImage(
            f"{width} x {height} x {channels} uncompressed pixels are {expected} bytes,"
            f" the record holds {len(data)}"
        )
    flat = np.frombuffer(data, dtype=np.uint8)
    pixels = flat.reshape(height, width, channels)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    pixels = np.ascontiguousarray(pixels)
    return Payload(_png(pixels), "NONE", width, height, pixels)


def pillow_image(
    data: bytes, expected_format: str, *, max_pixels: int, decode: bool
) -> tuple[Payload, tuple[int, int]]:
    """A JPEG, JPEG 2000 or PNG payload; returns it and its header size (width, height)."""
    width, height, found = header_size(data)
    if found != expected_format:
        raise UnreadableImage(f"the image is {found}, not {expected_format}")
    check_pixels(width, height, max_pixels=max_pixels)
    pixels = decode_image(data, max_pixels=max_pixels).pixels if decode else None
    return Payload(data, expected_format, width, height, pixels), (width, height)


def encode_lossless_jpeg(pixels: Pixels) -> bytes:
    """Pixels as a lossless JPEG (JPEGL), 8 bits per sample."""
    import imagecodecs

    try:
        return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(pixels), lossless=True))
    except Exception as exc:
        raise UnreadableImage(f"the image cannot be written as lossless JPEG: {exc}") from exc
