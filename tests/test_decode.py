"""Decoding untrusted bytes: every bad input is refused with a clear, typed error."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from prum.categories.face.decode import ACCEPTED_FORMATS, decode_image
from prum.errors import BadInput, ImageTooLarge, ImageTooSmall, UnreadableImage

MAX_PIXELS = 40_000_000


def encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(width: int = 200, height: int = 150) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
    return Image.fromarray(
        np.concatenate(
            [
                np.broadcast_to(x, (height, width, 1)),
                np.broadcast_to(y, (height, width, 1)),
                np.full((height, width, 1), 90, np.uint8),
            ],
            axis=2,
        )
    )


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", [f for f in ACCEPTED_FORMATS])
def test_every_accepted_format_decodes_to_rgb(fmt: str) -> None:
    decoded = decode_image(encode(gradient(), fmt), max_pixels=MAX_PIXELS)
    assert decoded.pixels.shape == (150, 200, 3)
    assert decoded.pixels.dtype == np.uint8


def test_exif_orientation_is_applied() -> None:
    image = gradient(200, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif), max_pixels=MAX_PIXELS)
    assert decoded.pixels.shape[:2] == (200, 100)


def test_grey_and_alpha_images_become_rgb() -> None:
    for mode in ("L", "RGBA", "P", "I;16"):
        data = encode(gradient().convert("L").convert(mode), "PNG")
        assert decode_image(data, max_pixels=MAX_PIXELS).pixels.shape == (150, 200, 3)


def test_zero_bytes_refused() -> None:
    with pytest.raises(UnreadableImage, match="empty"):
        decode_image(b"", max_pixels=MAX_PIXELS)


def test_truncated_jpeg_refused() -> None:
    data = encode(gradient(400, 300), "JPEG", quality=90)
    with pytest.raises(UnreadableImage, match=r"truncated|corrupt"):
        decode_image(data[: len(data) // 2], max_pixels=MAX_PIXELS)


def test_non_image_refused() -> None:
    with pytest.raises(UnreadableImage, match="not an image"):
        decode_image(b"%PDF-1.4 this is a document, not a photo", max_pixels=MAX_PIXELS)


def test_unaccepted_format_refused() -> None:
    with pytest.raises(UnreadableImage, match="accepted format"):
        decode_image(encode(gradient(), "GIF"), max_pixels=MAX_PIXELS)


def test_one_pixel_image_refused() -> None:
    with pytest.raises(ImageTooSmall, match="1 x 1"):
        decode_image(encode(Image.new("RGB", (1, 1)), "PNG"), max_pixels=MAX_PIXELS)


def test_hundred_megapixel_image_refused_before_decoding() -> None:
    data = encode(Image.new("L", (10_000, 10_000)), "PNG")
    with pytest.raises(ImageTooLarge, match=r"100\.0 megapixels"):
        decode_image(data, max_pixels=MAX_PIXELS)


def test_png_decompression_bomb_refused() -> None:
    bomb = png_header_only(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge, match=r"megapixels|decompression bomb"):
        decode_image(bomb, max_pixels=MAX_PIXELS)


def test_bomb_below_our_limit_is_still_caught_by_pillow_guard() -> None:
    # An operator who raises max_pixels far beyond Pillow's guard still gets a refusal.
    bomb = png_header_only(20_000, 20_000)
    with pytest.raises(ImageTooLarge):
        decode_image(bomb, max_pixels=10**12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape_the_error_tree(data: bytes) -> None:
    with contextlib.suppress(BadInput):
        decode_image(data, max_pixels=MAX_PIXELS)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_jpeg_bytes_decode_or_are_refused(data: st.DataObject) -> None:
    original = bytearray(encode(gradient(120, 90), "JPEG"))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(original) - 1))
        original[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    try:
        decoded = decode_image(bytes(original[:cut]), max_pixels=MAX_PIXELS)
    except BadInput:
        return
    assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
