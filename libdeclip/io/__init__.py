"""Reading and writing photo files, with their colour profile and metadata.

==========  =====================================================  ==============================
module      format                                                 pixels
==========  =====================================================  ==============================
``png``     PNG (grey, RGB, palette, with alpha)                   uint8, uint16
``jpeg``    JPEG (grey, RGB; written at the source's quality)      uint8
``tiff``    TIFF (one page, grey or RGB, with alpha)               uint8, uint16, float16, float32
``exr``     OpenEXR (one part, Y or RGB, with alpha; linear)       float16, float32
``webp``    WebP (RGB, RGBA; lossless written back lossless)       uint8
``avif``    AVIF (grey, RGB, RGBA; 8, 10 or 12 bits)               uint8, uint16 (10/12-bit files)
``heif``    HEIC/HEIF (grey, RGB, RGBA; 8, 10 or 12 bits)          uint8, uint16 (10/12-bit files)
``raw``     camera RAW through LibRaw (DNG, CR2, CR3, NEF, ...)    camera RGB, float32 (read only)
``dng``     linear DNG of a declipped camera RAW                   uint16 (written only)
==========  =====================================================  ==============================

Pixels keep the file's own encoding and dtype; 10- and 12-bit AVIF and HEIC come as uint16 over
the whole 16-bit range (their top code at 65535, so clipping is found at the same level as in any
16-bit file) and go back at their depth. Metadata needed to hand back "a file of the same
kind" travels in :class:`Image` (:mod:`libdeclip.io.image`): the ICC profile (or HEIF/AVIF colour
signalling), EXIF, XMP, resolution, PNG text, the JPEG quantisation tables, the OpenEXR header, and
for camera RAW :class:`RawInfo`.
:func:`read_image` and :func:`write_image` (:mod:`libdeclip.io.files`) find the format and call the
module for it; writes go to a temporary file in the target folder, renamed into place only once
complete. A camera RAW written as TIFF, PNG or JPEG is developed first (:mod:`libdeclip.develop`).

Bad files are refused with :class:`~libdeclip.errors.UnsupportedInputError`, its message naming the
file and the problem on one line. Image dimensions are read from the file's header first: a file
that declares more than :data:`MAX_PIXELS` pixels (a decompression bomb, or a damaged header) is
refused before any pixel memory is allocated.

The repair of a camera RAW is :mod:`libdeclip.photosites` (``declip_raw``, ``RAW_METHODS``,
``COMBINED``, ``needs_model``), its development :func:`libdeclip.develop.develop`.
"""

from __future__ import annotations

from libdeclip.io.dng import dng_headroom, write_declipped_dng
from libdeclip.io.files import (
    FORMAT_NAMES,
    FORMATS,
    IMAGE_SUFFIXES,
    LOSSY_FORMATS,
    RAW_OUTPUTS,
    READ_FORMATS,
    read_image,
    write_image,
)
from libdeclip.io.image import MAX_PIXELS, Image, RawInfo, RawMosaic, check_dimensions, pixel_limit
from libdeclip.io.png import DEFAULT_PNG_LEVEL
from libdeclip.io.raw import DEMOSAIC_REACH, RAW_SUFFIXES, is_raw_path, read_raw
from libdeclip.io.tiff import page_data_end, tiff_data_end

__all__ = [
    "Image", "RawInfo", "RawMosaic", "read_image", "write_image", "read_raw", "is_raw_path",
    "FORMATS", "FORMAT_NAMES", "LOSSY_FORMATS", "READ_FORMATS", "IMAGE_SUFFIXES", "RAW_SUFFIXES",
    "RAW_OUTPUTS", "DEFAULT_PNG_LEVEL", "DEMOSAIC_REACH",
    "MAX_PIXELS", "pixel_limit", "check_dimensions", "dng_headroom", "write_declipped_dng",
    "page_data_end", "tiff_data_end",
]
