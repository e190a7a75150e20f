"""AVIF: read and written through Pillow's AVIF support (libavif), with the ICC profile, EXIF,
XMP and orientation (AVIF's rotation and mirror boxes, which Pillow gives as the EXIF orientation;
the pixels stay as stored); 10- and 12-bit files through imagecodecs' libavif, which keeps every
bit (Pillow decodes to 8) but takes no metadata: the ICC profile, EXIF and XMP are then added to the
file's boxes (:func:`libdeclip.io.heif.add_metadata`).

Pixels of 10- and 12-bit files are held as uint16 over the whole 16-bit range, as for HEIF
(:func:`libdeclip.io.heif.to_wide_codes`). A 10/12-bit AVIF is written at its depth with its colour
as ``nclx`` signalling (and its ICC profile, where it has one); a picture whose EXIF orientation is
not 1 is turned upright first (the encoder writes no rotation boxes) and its EXIF says 1.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from libdeclip._tiffexif import orientation_of, with_orientation
from libdeclip.color import colorspace_from_nclx, nclx_of
from libdeclip.errors import UnsupportedInputError
from libdeclip.io.heif import (
    add_metadata,
    check_declared_size,
    read_nclx,
    read_pixi,
    to_file_codes,
    to_wide_codes,
)
from libdeclip.io.image import Image
from libdeclip.io.jpeg import EXIF_PREFIX, pil_still_metadata

__all__ = ["DEFAULT_AVIF_QUALITY", "read_avif", "encode_avif"]

#: Quality of AVIF output (libavif's 0-100; 90 keeps a photo's texture at about a third of the
#: size of a JPEG at 95).
DEFAULT_AVIF_QUALITY = 90


def read_avif(data: bytes, limit: int) -> Image:
    """An AVIF file's bytes as an :class:`Image`, refused from its header if above ``limit`` pixels
    and if it is an animation (image sequence)."""
    import imagecodecs
    from PIL import AvifImagePlugin

    check_declared_size(data, limit)
    # The plugin's own class, not PIL.Image.open: that applies Pillow's global bomb limit.
    with AvifImagePlugin.AvifImageFile(io.BytesIO(data)) as im:
        meta = pil_still_metadata(im, limit, "AVIF")
        bits = read_pixi(data) or 8
        if bits > 8:
            pixels = to_wide_codes(np.asarray(imagecodecs.avif_decode(data)), bits)
        else:
            pixels = np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB") if im.mode not in (
                "L", "RGB", "RGBA") else im)
    nclx = None if meta["icc_profile"] else read_nclx(data)
    if nclx is not None:
        colorspace_from_nclx(nclx)  # refuses HDR (PQ, HLG) and colour libdeclip does not know
    return Image(pixels=pixels, format="avif", significant_bits=bits if bits > 8 else None, nclx=nclx,
                 **meta)


def encode_avif(image: Image, quality: int | None, out: Any) -> None:
    """Write ``image`` as AVIF to the stream ``out`` at ``quality`` (default
    :data:`DEFAULT_AVIF_QUALITY`): 8-bit through Pillow with all its metadata, 16-bit pixels at the
    source's 10 or 12 bits (else 12) through imagecodecs."""
    pixels = image.pixels
    quality = DEFAULT_AVIF_QUALITY if quality is None else quality
    if pixels.dtype == np.uint8:
        _encode_8bit(image, quality, out)
    elif pixels.dtype == np.uint16:
        _encode_wide(image, quality, out)
    else:
        raise UnsupportedInputError(f"AVIF holds 8-, 10- or 12-bit integers, not {pixels.dtype}")


def _encode_8bit(image: Image, quality: int, out: Any) -> None:
    from PIL import Image as PILImage

    pixels = image.pixels
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]  # grey + alpha: AVIF through Pillow has no such layout
    kwargs: dict[str, Any] = {"quality": quality}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    elif image.nclx is not None and image.nclx != nclx_of("srgb"):
        from libdeclip.color import icc_profile

        kwargs["icc_profile"] = icc_profile(image.colorspace.name)  # Pillow writes sRGB nclx only
    if image.exif:
        kwargs["exif"] = EXIF_PREFIX + image.exif
    if image.xmp:
        kwargs["xmp"] = image.xmp
    PILImage.fromarray(pixels).save(out, format="AVIF", **kwargs)


def _encode_wide(image: Image, quality: int, out: Any) -> None:
    import imagecodecs

    bits = image.significant_bits or 12
    pixels = image.pixels
    nclx = nclx_of(image.colorspace) if (image.icc_profile or image.nclx) else nclx_of("srgb")
    if nclx is None:  # an ICC profile no H.273 colour matches: the profile says it, sRGB is signalled
        nclx = nclx_of("srgb")
    assert nclx is not None
    exif = image.exif
    orientation = image.orientation or orientation_of(exif)
    if orientation not in (None, 1):  # libavif's encoder writes no rotation boxes: turned upright
        pixels = _upright(pixels, orientation)
        exif = with_orientation(exif, 1) if exif else None
    data = imagecodecs.avif_encode(np.ascontiguousarray(to_file_codes(pixels, bits)), level=quality,
                                   bitspersample=bits, primaries=nclx[0], transfer=nclx[1], matrix=6)
    # imagecodecs' libavif takes no metadata: it goes into the file's boxes afterwards
    out.write(add_metadata(bytes(data), image.icc_profile, exif, image.xmp))


#: What EXIF orientation 2-8 asks of the stored pixels to show them upright (Pillow's exif_transpose).
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` as shown under EXIF ``orientation``."""
    turn = _UPRIGHT.get(orientation)
    return np.ascontiguousarray(turn(pixels)) if turn else pixels
