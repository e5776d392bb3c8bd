"""Decode, encode and resample friction-ridge images; refuse unusable ones clearly.

WSQ (the FBI's Wavelet Scalar Quantization, IAFIS-IC-0110) is decoded by the NBIS C
code inside the ``wsq`` package. That code trusts its input: a corrupt stream can
corrupt the heap and abort the whole interpreter (measured: a few flipped bytes in a
valid stream are enough, within 1,500 mutations). So every untrusted WSQ stream is
decoded in a short-lived child process (``python -I``, about 20 ms to start, one child
for all the images of a transaction), and a crash, an error or a hang there becomes a
:class:`~prum.errors.BadWsqStream` here. Encoding our own arrays stays in process.

Other formats (PNG, TIFF, JPEG, BMP, JPEG 2000 where Pillow has it) go through Pillow
with the WSQ plug-in excluded, and raw 8-bit grayscale needs its width and height.
Sizes are checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from prum.categories.finger.types import MAX_PPI, MIN_PPI, Pixels
from prum.errors import BadWsqStream, ImageTooLarge, ImageTooSmall, UnreadableImage

ImageFile.LOAD_TRUNCATED_IMAGES = False

#: All exchange images are normalised to this resolution (ANSI/NIST-ITL Type-4 and
#: the Interpol INT-I profile fix 500 ppi for tenprints).
TARGET_PPI = 500

#: The bit rate the NBIS encoder uses; 0.75 bits per pixel (about 15:1) is the rate
#: the FBI WSQ specification (IAFIS-IC-0110 v3) certifies for 500 ppi images.
WSQ_BITRATE = 0.75

#: A finger crop under 64 px (3 mm at 500 ppi) holds no usable ridge detail.
MIN_SIDE = 64

#: A full palm at 1000 ppi is about 5,500 x 8,000 px (44 Mpx); nothing exchanged is larger.
MAX_PIXELS = 50_000_000
MAX_SIDE = 16_000
MAX_BYTES = 64 * 1024 * 1024

#: A WSQ decode of the largest allowed image takes a few seconds; a child still
#: running after this is stuck on a corrupt stream.
WSQ_TIMEOUT_S = 30.0

PILLOW_FORMATS = ["PNG", "TIFF", "JPEG", "BMP"] + (
    ["JPEG2000"] if features.check("jpg_2000") else []
)

_WSQ_SOI = b"\xff\xa0"
_WSQ_EOI = b"\xff\xa1"
_WSQ_SOF = b"\xff\xa2"
_WSQ_SEGMENTS = {b"\xff\xa3", b"\xff\xa4", b"\xff\xa5", b"\xff\xa6", b"\xff\xa7", b"\xff\xa8"}


@dataclass(frozen=True, eq=False)
class Decoded:
    """Decoded 8-bit grayscale pixels, the resolution the data declared, the format."""

    pixels: Pixels
    ppi: int | None
    format: str


def check_dimensions(width: int, height: int) -> None:
    """Refuse an image that is too small to hold ridge detail or too large to be one."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageTooLarge(
            f"the image is {width} x {height} pixels; the limit is {MAX_SIDE} per side"
            f" and {MAX_PIXELS / 1e6:.0f} megapixels",
            width=width,
            height=height,
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageTooSmall(
            f"the image is {width} x {height} pixels; a fingerprint needs at least"
            f" {MIN_SIDE} pixels per side",
            width=width,
            height=height,
        )


def decode_image(data: bytes, *, width: int | None = None, height: int | None = None) -> Decoded:
    """Decode ``data`` to 8-bit grayscale.

    With ``width`` and ``height``, ``data`` is raw 8-bit grayscale, row by row.
    Otherwise the format is recognised from its header: WSQ, or PNG, TIFF, JPEG, BMP
    (JPEG 2000 when Pillow supports it). Raises UnreadableImage (BadWsqStream for
    WSQ), ImageTooLarge or ImageTooSmall.
    """
    if not data:
        raise UnreadableImage("the image is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(
            f"the image is {len(data) / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB",
            bytes=len(data),
        )
    if width is not None or height is not None:
        return _decode_raw(data, width, height)
    if data[:2] == _WSQ_SOI:
        return decode_wsq(data)
    return _decode_pillow(data)


def _decode_raw(data: bytes, width: int | None, height: int | None) -> Decoded:
    if width is None or height is None:
        raise UnreadableImage("raw grayscale needs both a width and a height")
    check_dimensions(width, height)
    if len(data) != width * height:
        raise UnreadableImage(
            f"raw grayscale of {width} x {height} needs {width * height} bytes, got {len(data)}",
            width=width,
            height=height,
            bytes=len(data),
        )
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width).copy()
    return Decoded(pixels=pixels, ppi=None, format="RAW")


def _decode_pillow(data: bytes) -> Decoded:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
            check_dimensions(*image.size)
            image.load()
            fmt = image.format or "unknown"
            ppi = _pillow_ppi(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                wide = np.asarray(image, dtype=np.uint32)
                gray = (wide >> 8 if wide.max(initial=0) > 255 else wide).astype(np.uint8)
            else:
                gray = np.asarray(image.convert("L"), dtype=np.uint8)
    except (ImageTooLarge, ImageTooSmall):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image looks like a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage(
            "the bytes are not an image in an accepted format"
            f" (WSQ, {', '.join(PILLOW_FORMATS)}, or raw with width and height)"
        ) from exc
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error) as exc:
        raise UnreadableImage(f"the image is corrupt or truncated: {exc}") from exc
    return Decoded(pixels=np.ascontiguousarray(gray), ppi=ppi, format=fmt)


def _pillow_ppi(image: Image.Image) -> int | None:
    dpi = image.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else None
    except (TypeError, ValueError, IndexError):
        return None
    # Many scanners write 1 or 72 dpi as "unknown": only a plausible value counts.
    return value if value is not None and MIN_PPI <= value <= MAX_PPI else None


# --- WSQ ------------------------------------------------------------------------------


def wsq_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from a WSQ frame header, read without decoding anything.

    Walks the marker segments (SOI, tables, SOF) of IAFIS-IC-0110 section 3; raises
    BadWsqStream when the structure is broken before the frame header.
    """
    if data[:2] != _WSQ_SOI:
        raise BadWsqStream("not a WSQ stream: it does not start with the SOI marker FFA0")
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos : pos + 2]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == _WSQ_SOF:
            if length < 17 or pos + 2 + length > len(data):
                raise BadWsqStream("WSQ frame header (SOF) is truncated", offset=pos)
            height = int.from_bytes(data[pos + 6 : pos + 8], "big")
            width = int.from_bytes(data[pos + 8 : pos + 10], "big")
            return width, height
        if marker not in _WSQ_SEGMENTS or length < 2:
            raise BadWsqStream(
                f"WSQ stream has an unknown marker {marker.hex().upper()} before its frame header",
                offset=pos,
            )
        pos += 2 + length
    raise BadWsqStream("WSQ stream ends before its frame header (SOF)")


def _wsq_ppi(data: bytes) -> int | None:
    """The PPI written by NBIS in the NIST_COM comment, when present and plausible."""
    start = data.find(b"NIST_COM")
    if start < 0:
        return None
    for line in data[start : start + 400].split(b"\n"):
        if line.startswith(b"PPI "):
            try:
                value = int(line[4:].strip())
            except ValueError:
                return None
            return value if MIN_PPI <= value <= MAX_PPI else None
    return None


# The child imports only the C extension: no numpy, no prum. Protocol on stdin: a
# count, then for each stream its length and bytes. On stdout, per stream: 0 + width,
# height, ppi, pixels; or 1 + an error message. A crash ends the output early.
_WSQ_CHILD = r"""
import struct, sys
import _wsq
inp, out = sys.stdin.buffer, sys.stdout.buffer
(count,) = struct.unpack("!I", inp.read(4))
for _ in range(count):
    (size,) = struct.unpack("!I", inp.read(4))
    data = inp.read(size)
    try:
        pixels, width, height, ppi = _wsq.decompress(data)
        if len(pixels) != width * height:
            raise ValueError("decoded %d bytes for %d x %d" % (len(pixels), width, height))
    except Exception as exc:
        message = str(exc).encode("utf-8", "replace")[:500]
        out.write(struct.pack("!BI", 1, len(message)) + message)
    else:
        out.write(struct.pack("!BiiiI", 0, width, height, ppi, len(pixels)) + pixels)
    out.flush()
"""


def decode_wsq(data: bytes) -> Decoded:
    """Decode one WSQ stream (isolated in a child process). Raises BadWsqStream."""
    return decode_wsq_many([data])[0]


def decode_wsq_many(streams: Sequence[bytes]) -> list[Decoded]:
    """Decode several WSQ streams in one child process, in order.

    The first stream that cannot be decoded raises BadWsqStream with its ``index``.
    """
    if not streams:
        return []
    sizes = [wsq_dimensions(data) for data in streams]
    for width, height in sizes:
        check_dimensions(width, height)
    request = struct.pack("!I", len(streams)) + b"".join(
        struct.pack("!I", len(data)) + data for data in streams
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _WSQ_CHILD],
            input=request,
            capture_output=True,
            timeout=WSQ_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BadWsqStream(
            f"the WSQ decoder did not finish within {WSQ_TIMEOUT_S:.0f} s (corrupt stream)"
        ) from exc
    return _read_child_output(done, streams, sizes)


def _read_child_output(
    done: subprocess.CompletedProcess[bytes],
    streams: Sequence[bytes],
    sizes: Sequence[tuple[int, int]],
) -> list[Decoded]:
    out = done.stdout
    pos = 0
    results: list[Decoded] = []
    for index, data in enumerate(streams):
        if pos >= len(out):
            reason = _last_line(done.stderr) or f"exit status {done.returncode}"
            raise BadWsqStream(
                f"WSQ image {index + 1} crashed the decoder (corrupt stream): {reason}",
                index=index,
            )
        status = out[pos]
        if status == 1:
            (size,) = struct.unpack_from("!I", out, pos + 1)
            message = out[pos + 5 : pos + 5 + size].decode("utf-8", "replace")
            detail = _last_line(done.stderr) or message
            raise BadWsqStream(f"WSQ image {index + 1} cannot be decoded: {detail}", index=index)
        width, height, ppi, size = struct.unpack_from("!iiiI", out, pos + 1)
        pos += 17
        if (width, height) != sizes[index] or size != width * height:
            raise BadWsqStream(
                f"WSQ image {index + 1} decoded to {width} x {height}, but its frame"
                f" header says {sizes[index][0]} x {sizes[index][1]}",
                index=index,
            )
        pixels = np.frombuffer(out, dtype=np.uint8, count=size, offset=pos)
        pos += size
        declared = _wsq_ppi(data) or (ppi if MIN_PPI <= ppi <= MAX_PPI else None)
        results.append(
            Decoded(pixels=pixels.reshape(height, width).copy(), ppi=declared, format="WSQ")
        )
    return results


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line and not line.startswith("Traceback")]
    return lines[-1][:300] if lines else ""


def encode_wsq(pixels: Pixels) -> bytes:
    """Compress a 500 ppi grayscale image with WSQ at :data:`WSQ_BITRATE` bits/pixel.

    Resample first (:func:`resample_to`) when the image is at another resolution.
    """
    import _wsq  # type: ignore[import-not-found]  # C extension of the wsq package

    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise UnreadableImage("WSQ encodes 2-D uint8 grayscale only")
    height, width = pixels.shape
    check_dimensions(width, height)
    data = np.ascontiguousarray(pixels).tobytes()
    encoded: bytes = _wsq.compress(data, height, width, WSQ_BITRATE)
    return encoded


# --- resolution ----------------------------------------------------------------------


def resample_to(pixels: Pixels, ppi: int, target_ppi: int = TARGET_PPI) -> Pixels:
    """Rescale an image scanned at ``ppi`` to ``target_ppi``.

    Area averaging when shrinking (no aliasing of the ridge frequency, about 9-10
    pixels per ridge period at 500 ppi), bicubic interpolation when enlarging.
    """
    if ppi == target_ppi:
        return pixels
    if not MIN_PPI <= ppi <= MAX_PPI:
        raise UnreadableImage(f"resolution {ppi} ppi is outside {MIN_PPI}-{MAX_PPI}")
    scale = target_ppi / ppi
    height, width = pixels.shape
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    check_dimensions(*new_size)
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(pixels, new_size, interpolation=method)
    return np.ascontiguousarray(resized, dtype=np.uint8)
