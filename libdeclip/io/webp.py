"""WebP: read and written through Pillow's WebP support (libwebp), 8-bit RGB or RGBA, with the ICC
profile, EXIF and XMP; a lossless source is written back lossless, a lossy one at a quality."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from libdeclip.errors import UnsupportedInputError
from libdeclip.io.image import Image
from libdeclip.io.jpeg import EXIF_PREFIX, pil_still_metadata

__all__ = ["WEBP_MAGIC", "DEFAULT_WEBP_QUALITY", "is_webp", "read_webp", "encode_webp"]

WEBP_MAGIC = b"WEBP"
#: Quality of lossy WebP output (libwebp's 0-100), as of JPEG output without a source's tables.
DEFAULT_WEBP_QUALITY = 95


def is_webp(head: bytes) -> bool:
    """Whether a file's first 12 bytes are a WebP file's RIFF header."""
    return head[:4] == b"RIFF" and head[8:12] == WEBP_MAGIC


def _is_lossless(data: bytes) -> bool:
    """Whether the picture of a WebP file is coded lossless (a ``VP8L`` chunk, not ``VP8 ``)."""
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def read_webp(data: bytes, limit: int) -> Image:
    """A WebP file's bytes as an :class:`Image`, refused from its header if above ``limit`` pixels
    and if it is an animation."""
    from PIL import WebPImagePlugin

    # The plugin's own class, not PIL.Image.open: that applies Pillow's global bomb limit.
    with WebPImagePlugin.WebPImageFile(io.BytesIO(data)) as im:
        meta = pil_still_metadata(im, limit, "WebP")
        pixels = np.asarray(im if im.mode in ("RGB", "RGBA") else im.convert("RGBA"))
    return Image(pixels=pixels, format="webp", encoding={"lossless": _is_lossless(data)}, **meta)


def encode_webp(image: Image, quality: int | None, out: Any) -> None:
    """Write ``image`` (8-bit) as WebP to the stream ``out``: lossless when the source was and no
    ``quality`` is asked, else lossy at ``quality`` (default :data:`DEFAULT_WEBP_QUALITY`)."""
    from PIL import Image as PILImage

    pixels = image.pixels
    if pixels.dtype != np.uint8:
        raise UnsupportedInputError(f"WebP holds 8-bit pixels, not {pixels.dtype}: write PNG, TIFF or AVIF")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)  # WebP has no grey layout
    elif pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]
    kwargs: dict[str, Any] = {"method": 4}
    if image.encoding.get("lossless") and quality is None:
        kwargs.update(lossless=True, exact=True)  # exact: colour under transparent pixels kept
    else:
        kwargs["quality"] = DEFAULT_WEBP_QUALITY if quality is None else quality
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if image.exif:
        kwargs["exif"] = EXIF_PREFIX + image.exif
    if image.xmp:
        kwargs["xmp"] = image.xmp
    PILImage.fromarray(pixels).save(out, format="WEBP", **kwargs)
