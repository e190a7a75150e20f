"""TIFF: 8/16-bit integer and half/float pixels through tifffile, one page, RGB or greyscale (with
alpha), with the ICC profile, orientation, resolution, compression and EXIF sub-IFD (through
:mod:`libdeclip._tiffexif`) carried over; and where a TIFF-structured file's pixel data end, which
the TIFF and camera RAW readers check against the file's size."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip._tiffexif import PLACEHOLDER_TAG, read_exif
from libdeclip.errors import UnsupportedInputError
from libdeclip.io.image import Image, check_dimensions

__all__ = ["TIFF_ICC", "TIFF_ORIENTATION", "read_tiff", "encode_tiff", "page_data_end", "tiff_data_end"]

TIFF_ICC, TIFF_ORIENTATION = 34675, 274
#: TIFF compressions kept from the source when writing (lossless, and tifffile/imagecodecs encode them).
_TIFF_WRITABLE = {"NONE", "LZW", "ADOBE_DEFLATE", "DEFLATE", "PACKBITS", "ZSTD", "LZMA"}
# tifffile reports what it works around in a damaged file through logging; without this handler an
# application that set up no logging would get those reports on stderr (Python's last resort).
logging.getLogger("tifffile").addHandler(logging.NullHandler())


def read_tiff(path: Path, limit: int) -> Image:
    """A single-page RGB or greyscale TIFF as an :class:`Image`, refused from its header if above
    ``limit`` pixels (tifffile reads strips from the file: no copy of it in memory)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) == 0:
            raise UnsupportedInputError("damaged TIFF: no readable image directory (IFD) in the file")
        if len(tif.pages) > 1:
            raise UnsupportedInputError(
                f"multi-page TIFF ({len(tif.pages)} pages) is not supported: save one image per file"
            )
        page = tif.pages.first
        photometric = getattr(page.photometric, "name", page.photometric)
        if photometric not in ("RGB", "MINISBLACK"):
            raise UnsupportedInputError(f"TIFF photometric {photometric} is not supported (RGB or greyscale)")
        check_dimensions(page.imagewidth, page.imagelength, limit)
        size, end = path.stat().st_size, page_data_end(page)
        if not end:
            raise UnsupportedInputError("damaged TIFF: the image has no pixel data")
        if end > size:
            raise UnsupportedInputError(
                f"truncated TIFF: the pixel data run to byte {end:,} of a {size:,}-byte file"
            )
        with np.errstate(all="ignore"):  # a damaged tag's arithmetic: no RuntimeWarning on stderr
            pixels = page.asarray()
        if pixels.ndim == 3 and int(page.planarconfig) == 2:  # "separate" planes come as C x H x W
            pixels = np.moveaxis(pixels, 0, -1)
        if pixels.dtype.kind == "f" and pixels.dtype.itemsize > 4:
            pixels = pixels.astype(np.float32)
        if pixels.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
            raise UnsupportedInputError(f"TIFF sample type {pixels.dtype} is not supported")
        if pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4):
            raise UnsupportedInputError(f"TIFF with {pixels.shape[2]} samples per pixel is not supported")
        tags = page.tags  # type: ignore[union-attr]
        icc_tag = tags.get(TIFF_ICC)
        icc = bytes(icc_tag.value) if icc_tag is not None else None  # read while the file is open
        orientation_tag = tags.get(TIFF_ORIENTATION)
        value = orientation_tag.value if orientation_tag is not None else None
        orientation = int(value) if isinstance(value, int) else None  # a damaged tag is dropped
        dpi = None
        if "XResolution" in tags and "YResolution" in tags:
            unit = tags.get("ResolutionUnit")
            per_cm = unit is not None and unit.value == 3
            try:
                xr, yr = (tags[k].value for k in ("XResolution", "YResolution"))
                x, y = xr[0] / xr[1], yr[0] / yr[1]
                dpi = (x * 2.54, y * 2.54) if per_cm else (x, y)
            except (TypeError, IndexError, ZeroDivisionError):
                dpi = None  # a damaged resolution tag is dropped, not a reason to refuse the pixels
        compression = str(getattr(page.compression, "name", page.compression))
    with open(path, "rb") as f:
        exif = read_exif(f)
    return Image(
        pixels=pixels,
        format="tiff",
        icc_profile=icc,
        dpi=dpi,
        orientation=orientation,
        tiff_compression=compression,
        tiff_exif=exif,
    )


def encode_tiff(image: Image, out: Any) -> None:
    """Write ``image`` as TIFF to ``out``; with an EXIF sub-IFD to carry, a
    :data:`~libdeclip._tiffexif.PLACEHOLDER_TAG` entry that ``append_exif`` turns into its pointer."""
    import tifffile

    pixels = image.pixels
    if pixels.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
        raise UnsupportedInputError(
            f"TIFF output supports uint8, uint16, float16 and float32, not {pixels.dtype}"
        )
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    photometric = "rgb" if channels >= 3 else "minisblack"
    extratags: list[tuple[int, str, int, Any, bool]] = []
    if image.icc_profile:
        extratags.append((TIFF_ICC, "B", len(image.icc_profile), image.icc_profile, True))
    if image.orientation is not None:
        extratags.append((TIFF_ORIENTATION, "H", 1, int(image.orientation), True))
    if image.tiff_exif:  # a placeholder that append_exif points at the EXIF IFD
        extratags.append((PLACEHOLDER_TAG, "I", 1, 0, True))
    # The source's compression where it is lossless and encodable, else zlib (CCITT fax and the
    # other bilevel schemes read fine but cannot hold photo samples; JPEG would lose the repair).
    name = (image.tiff_compression or "NONE").upper()
    if name not in _TIFF_WRITABLE:
        name = "ADOBE_DEFLATE"
    compression = None if name == "NONE" else name.lower()
    tifffile.imwrite(
        out,
        pixels,
        photometric=photometric,
        planarconfig="contig",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression=compression,
        resolution=image.dpi,
        resolutionunit="inch" if image.dpi else None,
        extratags=extratags,
        metadata=None,
        maxworkers=os.cpu_count(),  # compress strips in parallel
    )


def page_data_end(page: Any) -> int:
    """Where one TIFF page's strips or tiles end in the file, by their byte counts and, for
    uncompressed strips, by the rows they must hold (LibRaw reads those whatever the counts say)."""
    offsets = list(getattr(page, "dataoffsets", None) or ())
    counts = list(getattr(page, "databytecounts", None) or ())
    ends = [o + n for o, n in zip(offsets, counts, strict=False) if n]
    try:
        if int(page.compression) == 1 and not page.is_tiled and int(page.planarconfig) == 1:
            height = int(page.imagelength)
            row = (int(page.imagewidth) * int(page.samplesperpixel) * int(page.bitspersample) + 7) // 8
            rows = min(int(page.rowsperstrip or height), height) or 1
            ends += [
                o + min(rows, height - i * rows) * row for i, o in enumerate(offsets) if i * rows < height
            ]
    except (AttributeError, TypeError, ValueError):
        pass
    return max(ends, default=0)


def tiff_data_end(path: Path) -> int:
    """Where the image data of a TIFF-structured file end: the largest :func:`page_data_end` over
    its IFDs and their SubIFDs (a DNG keeps its raw data in one); 0 for other containers."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            todo: list[Any] = list(tif.pages)
            end, seen = 0, 0
            while todo and seen < 256:  # a hostile file may nest SubIFDs without end
                page = todo.pop()
                seen += 1
                end = max(end, page_data_end(page))
                if getattr(page, "subifds", None):
                    todo.extend(tifffile.TiffPages(page))
            return end
    except Exception:
        return 0
