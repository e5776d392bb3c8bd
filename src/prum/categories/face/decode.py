"""Decode untrusted image bytes into RGB pixels, or refuse them with a clear reason.

The order matters: the header is read first and the pixel count is checked *before*
any pixel is decoded, so a decompression bomb (a tiny PNG that claims 100,000 x
100,000 pixels) costs nothing. Pillow's own bomb guard is kept as a second line.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError, features

from prum.categories.face.types import DecodedImage
from prum.errors import ImageTooLarge, ImageTooSmall, UnreadableImage

# A truncated JPEG must be refused, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

ACCEPTED_FORMATS = ["JPEG", "PNG", "WEBP", "TIFF", "BMP"] + (
    ["JPEG2000"] if features.check("jpg_2000") else []
)

# No face recognition works below this: dlib's detector needs faces of ~40 px even
# after upsampling, and a 1x1 "photo" is a mistake worth naming.
MIN_SIDE = 32

# Bytes, independent of pixels: 100 MB of input is not a photo of a face.
MAX_BYTES = 100 * 1024 * 1024


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode ``data`` (any accepted format) applying the EXIF orientation.

    Raises UnreadableImage, ImageTooLarge or ImageTooSmall; never returns a partial
    image.
    """
    if not data:
        raise UnreadableImage("the image is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(
            f"the image file is {len(data) / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB",
            bytes=len(data),
            limit=MAX_BYTES,
        )
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below gives the clearer message; Pillow's hard guard
            # (DecompressionBombError, at twice its warning level) stays armed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            check_pixels(width, height, max_pixels=max_pixels)
            image.load()
            fmt = image.format or "unknown"
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (ImageTooLarge, ImageTooSmall):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image looks like a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage(
            f"the bytes are not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})"
        ) from exc
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        raise UnreadableImage(f"the image is corrupt or truncated: {exc}") from exc
    pixels = np.asarray(rgb, dtype=np.uint8)
    return DecodedImage(pixels=np.ascontiguousarray(pixels), format=fmt)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the header (no pixels decoded), or None."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            return image.format
    except Exception:  # any failure just means "unknown"; decoding reports details
        return None


def check_pixels(width: int, height: int, *, max_pixels: int) -> None:
    """Refuse an image over the pixel limit or too small to hold a face, from its header
    alone (photos and Type-10 records alike), before any pixel is decoded."""
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image has {width} x {height} = {width * height / 1e6:.1f} megapixels;"
            f" the limit is {max_pixels / 1e6:.1f} megapixels",
            width=width,
            height=height,
            limit=max_pixels,
        )
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmall(
            f"the image is {width} x {height} pixels; at least {MIN_SIDE} pixels per side"
            " are needed to hold a face",
            width=width,
            height=height,
        )
