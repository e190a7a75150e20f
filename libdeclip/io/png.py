"""PNG: read through libpng (imagecodecs, every bit of 16-bit files kept; Pillow reads the chunks
before the pixels), written with the source's ICC profile, resolution, EXIF and text chunks."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from libdeclip.errors import UnsupportedInputError, native_diagnostics
from libdeclip.io.image import Image, check_dimensions
from libdeclip.io.jpeg import pil_metadata

__all__ = ["PNG_SIGNATURE", "DEFAULT_PNG_LEVEL", "read_png", "encode_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: zlib level for PNG output: 2.5-3x faster than level 6 on photos, files 0-7% larger.
DEFAULT_PNG_LEVEL = 3


def read_png(data: bytes, limit: int) -> Image:
    """A PNG file's bytes as an :class:`Image`, refused from its header if above ``limit`` pixels."""
    import imagecodecs
    from PIL import PngImagePlugin

    if len(data) < 33 or data[12:16] != b"IHDR":
        raise UnsupportedInputError("damaged PNG: no image header (IHDR) after the signature")
    width, height = struct.unpack(">II", data[16:24])
    check_dimensions(width, height, limit)
    if _png_header_count(data) > 1:  # decoders disagree on which one counts: the limit cannot hold
        raise UnsupportedInputError("damaged PNG: more than one image header (IHDR)")
    # The plugin's own class, not PIL.Image.open: that applies Pillow's global decompression-bomb
    # limit (179 MP) instead of ours. Only the chunks before the pixels are read here.
    with PngImagePlugin.PngImageFile(io.BytesIO(data)) as im:
        meta = pil_metadata(im)
        text = {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
    # Pillow reduces 16-bit RGB PNG to 8 bits; libpng via imagecodecs keeps every bit and expands
    # palettes (with their transparency) to RGB(A).
    with native_diagnostics("PNG warning: ", "libpng warning: ") as said:  # libpng's, on stderr
        pixels = np.asarray(imagecodecs.png_decode(data))
    damage = [line.split(": ", 1)[1] for line in said if "IDAT" in line]
    if damage:  # libpng reads on past a damaged checksum of the pixel data: we do not
        raise UnsupportedInputError(f"damaged PNG pixel data ({damage[0]})")
    return Image(pixels=pixels, format="png", text=text, **meta)


def _png_header_count(data: bytes) -> int:
    """How many IHDR chunks come before the pixel data (IDAT) or the end."""
    pos, count = 8, 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        count += kind == b"IHDR"
        pos += 12 + length
    return count


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(image: Image, level: int) -> bytes:
    """``image`` (8- or 16-bit) as PNG bytes, deflated at zlib ``level``, with its metadata."""
    import imagecodecs

    pixels = image.pixels
    if pixels.dtype not in (np.uint8, np.uint16):
        raise UnsupportedInputError(f"PNG holds 8- or 16-bit integers, not {pixels.dtype}")
    encoded = imagecodecs.png_encode(np.ascontiguousarray(pixels), level=level)
    extra = b""
    if image.icc_profile:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(image.icc_profile))
    if image.dpi:
        ppm = [round(d / 0.0254) for d in image.dpi]
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if image.exif:
        extra += _png_chunk(b"eXIf", image.exif)
    for key, value in image.text.items():
        extra += _png_chunk(b"iTXt", key.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00"
                            + value.encode("utf-8"))
    # Ancillary chunks go right after IHDR (signature 8 bytes + IHDR 25 bytes), before any IDAT.
    return bytes(encoded[:33]) + extra + bytes(encoded[33:])
