"""Reading and writing photo files: PNG, JPEG and TIFF, with their colour profile and metadata.

Pixels keep the file's own encoding and dtype: uint8 or uint16 for integer files, float16 or
float32 for float TIFF. Metadata needed to hand back "a file of the same kind" travels in
:class:`Image`: the ICC profile, EXIF, resolution, PNG text, and the JPEG quantisation tables.
Writes go to a temporary file in the target folder, renamed into place only once complete.

Bad files are refused with :class:`~libdeclip.errors.UnsupportedInputError`, its message naming the
file and the problem on one line. Image dimensions are read from the file's header first: a file
that declares more than :data:`MAX_PIXELS` pixels (a decompression bomb, or a damaged header) is
refused before any pixel memory is allocated.
"""

from __future__ import annotations

import errno
import io
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip._tiffexif import PLACEHOLDER_TAG, ExifEntry, append_exif, read_exif
from libdeclip.color import ColorSpace, colorspace_from_icc, get_colorspace
from libdeclip.errors import UnsupportedInputError, native_diagnostics
from libdeclip.raw import (
    RawInfo,
    RawMosaic,
    develop,
    is_raw_path,
    page_data_end,
    read_raw,
    write_declipped_dng,
)

__all__ = ["Image", "read_image", "write_image", "FORMATS", "MAX_PIXELS", "pixel_limit"]

FORMATS = ("png", "jpeg", "tiff", "exr", "dng")
#: What a camera RAW image becomes in each output format (see libdeclip.raw.develop).
RAW_OUTPUTS = {"dng": "dng", "tiff": "tiff32", "tiff32": "tiff32", "tiff16": "tiff16", "png": "srgb8",
               "jpeg": "srgb8"}
#: zlib level for PNG output: 2.5-3x faster than level 6 on photos, files 0-7% larger.
DEFAULT_PNG_LEVEL = 3
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_PREFIX = b"Exif\x00\x00"
_TIFF_ICC, _TIFF_ORIENTATION = 34675, 274
_SUFFIXES = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr",
    ".dng": "dng",
}
_EXR_MAGIC = b"\x76\x2f\x31\x01"
#: The most pixels (width x height) :func:`read_image` accepts: 500 megapixels, above the largest
#: camera files (400 MP multi-shot) and far below what a hostile header can claim (a PNG can declare
#: 4 billion x 4 billion). Override per call with ``read_image(path, max_pixels=N)``, or for a
#: process with the environment variable ``LIBDECLIP_MAX_PIXELS``.
MAX_PIXELS = 500_000_000
_MAX_PIXELS_ENV = "LIBDECLIP_MAX_PIXELS"
# tifffile reports what it works around in a damaged file through logging; without this handler an
# application that set up no logging would get those reports on stderr (Python's last resort).
logging.getLogger("tifffile").addHandler(logging.NullHandler())
_FINITE_CHECK_ROWS = 256  # rows per step of the NaN / infinity scan (bounds its temporary memory)


@dataclass
class Image:
    """A photo's pixels and what a faithful copy of its file needs.

    ``pixels`` is H x W (greyscale) or H x W x C (C = 2 grey + alpha, 3 RGB, 4 RGBA), dtype
    uint8, uint16, float16 or float32 as stored in the file.
    """

    pixels: np.ndarray
    format: str = "png"
    icc_profile: bytes | None = None
    exif: bytes | None = None  # raw TIFF-structured EXIF, without the JPEG "Exif\0\0" prefix
    dpi: tuple[float, float] | None = None
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks
    jpeg_qtables: list[list[int]] | None = None
    jpeg_subsampling: int | None = None
    tiff_compression: str | None = None
    tiff_exif: tuple[ExifEntry, ...] | None = None  # a TIFF's EXIF sub-IFD, decoded
    orientation: int | None = None  # EXIF/TIFF orientation tag, kept as found
    exr_header: dict[str, Any] | None = None  # OpenEXR attributes (compression, chromaticities...)
    path: Path | None = None
    raw: RawInfo | None = None  # camera RAW: pixels are camera RGB (see libdeclip.raw)
    raw_mask: np.ndarray | None = field(default=None, repr=False)  # RAW: H x W x 3, clipped photosites
    raw_mosaic: RawMosaic | None = field(default=None, repr=False)  # Bayer RAW: the photosites as read

    @property
    def bit_depth(self) -> int:
        return self.pixels.dtype.itemsize * 8

    @property
    def is_float(self) -> bool:
        return self.pixels.dtype.kind == "f"

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def clip_levels(self) -> tuple[float, float]:
        """The file's own range: (0, 255), (0, 65535), or (0.0, 1.0) for float; per channel for
        camera RAW (each channel's white level)."""
        if self.raw is not None:
            return self.raw.clip_levels  # type: ignore[return-value]
        if self.is_float:
            return 0.0, 1.0
        return 0.0, float(np.iinfo(self.pixels.dtype).max)

    @property
    def jpeg_quality(self) -> int | None:
        """IJG quality (1..100) estimated from the luminance quantisation table."""
        if not self.jpeg_qtables:
            return None
        return _estimate_jpeg_quality(self.jpeg_qtables[0])

    @property
    def colorspace(self) -> ColorSpace:
        """The pixels' encoding: from the ICC profile, else linear sRGB (Rec. 709 primaries) for
        OpenEXR, which is scene-linear, else sRGB (what untagged files mean)."""
        if self.raw is not None:
            return self.raw.colorspace
        if self.icc_profile:
            return colorspace_from_icc(self.icc_profile)
        if self.format == "exr":
            return get_colorspace("linear-srgb")
        return get_colorspace("srgb")

    def with_pixels(self, pixels: np.ndarray) -> Image:
        return replace(self, pixels=pixels)


# ---------------------------------------------------------------------------------------- read


def _sniff(head: bytes) -> str | None:
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(_EXR_MAGIC):
        return "exr"
    return None


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$LIBDECLIP_MAX_PIXELS``, else
    :data:`MAX_PIXELS`."""
    if max_pixels is None:
        env = os.environ.get(_MAX_PIXELS_ENV, "").strip()
        if not env:
            return MAX_PIXELS
        try:
            max_pixels = int(env)
        except ValueError:
            raise UnsupportedInputError(
                f"{_MAX_PIXELS_ENV}={env!r} is not a whole number of pixels"
            ) from None
    if max_pixels <= 0:
        raise UnsupportedInputError(f"the pixel limit must be positive, got {max_pixels}")
    return int(max_pixels)


def _check_dimensions(width: int, height: int, limit: int) -> None:
    """Refuse an image of ``width`` x ``height`` (from a file's header) that is empty or larger
    than ``limit`` pixels, before anything is allocated for it."""
    if not isinstance(width, (int, np.integer)) or not isinstance(height, (int, np.integer)):
        raise UnsupportedInputError(
            f"damaged header: the image size {width!r} x {height!r} is not two numbers"
        )
    if width <= 0 or height <= 0:
        raise UnsupportedInputError(f"the image is empty ({width} x {height} pixels)")
    if width * height > limit:
        raise UnsupportedInputError(
            f"{width} x {height} pixels ({_megapixels(width * height)}) is above the limit of "
            f"{_megapixels(limit)} (a damaged header or a decompression bomb; if the image is real, "
            f"raise the limit with max_pixels= or {_MAX_PIXELS_ENV})"
        )


def _megapixels(n: int) -> str:
    return f"{n / 1e6:,.0f} MP" if n >= 10_000_000 else f"{n / 1e6:,.3g} MP"


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Read a PNG, JPEG, TIFF or OpenEXR image, or a camera RAW file (by its suffix: DNG, CR2,
    CR3, NEF, ARW, RAF, ORF, RW2, KDC, ...; see :mod:`libdeclip.raw`).

    The format is found from the file's first bytes (the suffix does not matter), except for
    camera RAW, which LibRaw reads by suffix. Palette images come back as RGB (RGBA with
    transparency), greyscale as H x W (H x W x 2 with alpha). Refused with
    :class:`UnsupportedInputError`, whose message names the file and the problem on one line:
    a missing, empty, truncated or damaged file; an image larger than ``max_pixels`` pixels
    (default :func:`pixel_limit`: ``$LIBDECLIP_MAX_PIXELS``, else :data:`MAX_PIXELS`), from its
    header, before its pixels are decoded; float pixels that are NaN or infinite; and layouts
    libdeclip does not repair (multi-page TIFF, CMYK, CIELab, other sample types).
    """
    path = Path(path)
    limit = pixel_limit(max_pixels)
    if is_raw_path(path):
        if not path.is_file():
            raise UnsupportedInputError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise UnsupportedInputError(f"{path}: the file is empty (0 bytes)")
        try:
            image = read_raw(path, max_pixels=limit)
        except UnsupportedInputError:
            raise
        except MemoryError:
            raise UnsupportedInputError(f"{path}: not enough memory to read this RAW file") from None
        except Exception as exc:  # LibRaw's errors and others: the user needs file and reason
            raise UnsupportedInputError(f"{path}: damaged or unreadable RAW file ({exc})") from None
        return image
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedInputError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise UnsupportedInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise UnsupportedInputError(f"{path}: the file is empty (0 bytes)")
    kind = _sniff(head)
    if kind is None:
        raise UnsupportedInputError(f"{path}: not a PNG, JPEG, TIFF or OpenEXR file")
    try:
        if kind == "tiff":  # tifffile reads strips from the file: no copy of it in memory
            image = _read_tiff(path, limit)
        elif kind == "exr":
            image = _read_exr(path, limit)
        else:
            data = path.read_bytes()
            image = _read_png(data, limit) if kind == "png" else _read_jpeg(data, limit)
        if image.pixels.size == 0:
            raise UnsupportedInputError("the image is empty")
        if image.is_float:
            _check_finite(image.pixels)
    except UnsupportedInputError as exc:
        raise UnsupportedInputError(f"{path}: {exc}") from None
    except MemoryError:
        raise UnsupportedInputError(f"{path}: not enough memory to decode this {kind.upper()}") from None
    except (struct.error, EOFError) as exc:  # a header or directory cut short
        raise UnsupportedInputError(f"{path}: damaged or truncated {kind.upper()} ({exc})") from None
    except Exception as exc:  # decoders raise many types; the user needs file and reason
        raise UnsupportedInputError(f"{path}: damaged or unreadable {kind.upper()} ({exc})") from None
    image.path = path
    return image


def _check_finite(pixels: np.ndarray) -> None:
    """Refuse NaN and infinite values: they are missing data, not clipping (row block by block,
    so the scan needs little memory)."""
    bad = 0
    for y in range(0, pixels.shape[0], _FINITE_CHECK_ROWS):
        bad += int(np.count_nonzero(~np.isfinite(pixels[y : y + _FINITE_CHECK_ROWS])))
    if bad:
        raise UnsupportedInputError(
            f"{bad:,} pixel values are NaN or infinite: libdeclip repairs clipped values, not missing "
            "ones (replace them first, e.g. with 0)"
        )


def _pil_metadata(im: Any) -> dict[str, Any]:
    exif = im.info.get("exif")
    if exif and exif.startswith(_EXIF_PREFIX):
        exif = exif[len(_EXIF_PREFIX) :]
    dpi = im.info.get("dpi")
    orientation = None
    if exif:
        try:
            orientation = im.getexif().get(_TIFF_ORIENTATION)
        except (SyntaxError, ValueError, OSError, struct.error, KeyError, IndexError):
            exif = None  # a damaged EXIF block: dropped, never carried into an output
    return {
        "icc_profile": im.info.get("icc_profile") or None,
        "exif": exif or None,
        "dpi": (float(dpi[0]), float(dpi[1])) if dpi else None,
        "orientation": orientation,
    }


def _read_png(data: bytes, limit: int) -> Image:
    import imagecodecs
    from PIL import PngImagePlugin

    if len(data) < 33 or data[12:16] != b"IHDR":
        raise UnsupportedInputError("damaged PNG: no image header (IHDR) after the signature")
    width, height = struct.unpack(">II", data[16:24])
    _check_dimensions(width, height, limit)
    if _png_header_count(data) > 1:  # decoders disagree on which one counts: the limit cannot hold
        raise UnsupportedInputError("damaged PNG: more than one image header (IHDR)")
    # The plugin's own class, not PIL.Image.open: that applies Pillow's global decompression-bomb
    # limit (179 MP) instead of ours. Only the chunks before the pixels are read here.
    with PngImagePlugin.PngImageFile(io.BytesIO(data)) as im:
        meta = _pil_metadata(im)
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


def _read_jpeg(data: bytes, limit: int) -> Image:
    from PIL import JpegImagePlugin

    # The plugin's own class reads the header (frame size) without Pillow's global limit.
    with JpegImagePlugin.JpegImageFile(io.BytesIO(data)) as im:
        _check_dimensions(im.width, im.height, limit)
        meta = _pil_metadata(im)
        if im.mode not in ("L", "RGB"):
            raise UnsupportedInputError(f"JPEG colour mode {im.mode} is not supported (only L and RGB)")
        tables = getattr(im, "quantization", None)
        qtables = [list(t) for t in tables.values()] if tables else None
        subsampling = JpegImagePlugin.get_sampling(im)
        pixels = np.asarray(im)
    return Image(
        pixels=pixels,
        format="jpeg",
        jpeg_qtables=qtables,
        jpeg_subsampling=subsampling if subsampling >= 0 else None,
        **meta,
    )


#: OpenEXR attributes that describe the pixel layout: written anew from the pixels.
_EXR_LAYOUT = ("channels", "dataWindow", "displayWindow", "type", "tiles", "chunkCount", "name", "version")


def _read_exr(path: Path, limit: int) -> Image:
    """A single-part scanline or tiled OpenEXR with R, G, B (and A) or Y (and A) channels."""
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as exr:
        for part in exr.parts:
            (x0, y0), (x1, y1) = (tuple(int(v) for v in corner) for corner in part.header["dataWindow"])
            _check_dimensions(x1 - x0 + 1, y1 - y0 + 1, limit)
    _check_exr_chunks(path)  # a truncated or damaged chunk table: refused with a clear message
    # OpenEXR prints on stderr what it finds wrong in the chunks' data before failing
    with native_diagnostics(f"{path}: ", "Warning: Exception raised reading pixel data") as said:
        exr = OpenEXR.File(str(path))
    with exr:
        if not exr.parts:  # the bindings report a file they cannot decode as one without parts
            own = [line.removeprefix(f"{path}: ") for line in said if line.startswith(f"{path}: ")]
            raise ValueError("; ".join(own[:2] or [line.split(" - ", 1)[-1] for line in said[:1]])
                             or "no readable part")
        if len(exr.parts) > 1:
            raise UnsupportedInputError(f"multi-part OpenEXR ({len(exr.parts)} parts) is not supported")
        header = dict(exr.header())
        channels = {name: ch.pixels for name, ch in exr.channels().items()}
    if set(channels) in ({"RGB"}, {"RGBA"}):
        pixels = next(iter(channels.values()))
    elif set(channels) in ({"Y"}, {"Y", "A"}):
        pixels = channels["Y"] if "A" not in channels else np.stack([channels["Y"], channels["A"]], axis=2)
    else:
        raise UnsupportedInputError(
            f"OpenEXR channels {sorted(channels)} are not supported "
            "(R, G, B with optional A, or Y with optional A)"
        )
    if pixels.dtype not in (np.float16, np.float32):
        raise UnsupportedInputError(f"OpenEXR pixels of type {pixels.dtype} are not supported (half, float)")
    kept = {k: v for k, v in header.items() if k not in _EXR_LAYOUT}
    return Image(pixels=np.ascontiguousarray(pixels), format="exr", exr_header=kept)


#: Scanlines per chunk of each OpenEXR compression (by its code in the header).
_EXR_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def _check_exr_chunks(path: Path) -> None:
    """Refuse a single-part OpenEXR whose chunk table or chunk headers are damaged or point past
    the end of the file (OpenEXR itself prints such findings on stderr before failing). Multi-part,
    deep and multi-level tiled files are left to the library."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)  # the header: attributes are small
        size = os.fstat(f.fileno()).st_size
        version = struct.unpack_from("<i", data, 4)[0] if len(data) >= 8 else 0
        if version & 0x1800:  # deep data or multi-part
            return
        attrs: dict[str, bytes] = {}
        pos = 8
        while pos < len(data) and data[pos] != 0:
            name_end = data.index(b"\x00", pos)
            type_end = data.index(b"\x00", name_end + 1)
            (n,) = struct.unpack_from("<i", data, type_end + 1)
            attrs[data[pos:name_end].decode("latin-1")] = data[type_end + 5 : type_end + 5 + n]
            pos = type_end + 5 + n
        pos += 1  # the header's terminating null byte
        x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        if version & 0x200:  # tiled: leader = tile x, tile y, level x, level y, data size
            tx, ty, mode = struct.unpack("<IIB", attrs["tiles"][:9])
            if mode & 0x0F or tx == 0 or ty == 0:  # mipmap / ripmap levels: not counted here
                return
            across = math.ceil(width / tx)
            count, leader = across * math.ceil(height / ty), "<iiiii"

            def expected(i: int) -> tuple[int, ...]:
                return (i % across, i // across, 0, 0)
        else:  # scanlines: leader = first line y, data size
            lines = _EXR_LINES_PER_CHUNK.get(attrs["compression"][0], 1)
            count, leader = math.ceil(height / lines), "<ii"

            def expected(i: int) -> tuple[int, ...]:
                return (y0 + i * lines,)
        # The table's size follows from the header alone: check it against the file before reading
        # (a damaged header can claim billions of chunks).
        if count <= 0 or 8 * count > size - pos:
            raise ValueError("truncated: the file ends inside its chunk offset table")
        f.seek(pos)
        table = f.read(8 * count)
        step = struct.calcsize(leader)
        for i, offset in enumerate(struct.unpack(f"<{count}Q", table)):
            if offset + step > size:
                raise ValueError(f"truncated: chunk {i} starts at byte {offset:,} of a {size:,}-byte file")
            f.seek(offset)
            *where, n = struct.unpack(leader, f.read(step))
            if tuple(where) != expected(i) or n <= 0:
                raise ValueError(f"chunk {i} (at byte {offset:,}) has a corrupt header")
            if offset + step + n > size:
                raise ValueError(
                    f"truncated: chunk {i} (at byte {offset:,}) runs past the end of the {size:,}-byte file"
                )


#: TIFF compressions kept from the source when writing (lossless, and tifffile/imagecodecs encode them).
_TIFF_WRITABLE = {"NONE", "LZW", "ADOBE_DEFLATE", "DEFLATE", "PACKBITS", "ZSTD", "LZMA"}


def _write_exr(image: Image, tmp: str) -> None:
    import OpenEXR

    pixels = image.pixels
    if pixels.dtype not in (np.float16, np.float32):
        raise UnsupportedInputError(f"OpenEXR holds half or float pixels, not {pixels.dtype}")
    if image.channels == 2:  # grey + alpha: two named planes
        channels = {"Y": np.ascontiguousarray(pixels[..., 0]), "A": np.ascontiguousarray(pixels[..., 1])}
    else:  # the bindings split "RGB"/"RGBA" into R, G, B, A
        channels = {{1: "Y", 3: "RGB", 4: "RGBA"}[image.channels]: np.ascontiguousarray(pixels)}
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION}
    header.update(image.exr_header or {})
    header["type"] = OpenEXR.scanlineimage
    with OpenEXR.File(header, channels) as exr:
        exr.write(tmp)


def _read_tiff(path: Path, limit: int) -> Image:
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
        _check_dimensions(page.imagewidth, page.imagelength, limit)
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
        icc_tag = tags.get(_TIFF_ICC)
        icc = bytes(icc_tag.value) if icc_tag is not None else None  # read while the file is open
        orientation_tag = tags.get(_TIFF_ORIENTATION)
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


def _estimate_jpeg_quality(luma_table: list[int]) -> int:
    """Closest IJG quality: the one whose scaled standard table is nearest to the file's."""
    base = np.array(
        [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
         56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
         104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
        dtype=np.float64,
    )  # ITU-T T.81 Annex K, table K.1; Pillow gives tables in natural (row-major) order
    table = np.asarray(luma_table, dtype=np.float64)
    best, best_err = 95, np.inf
    for q in range(1, 101):
        scale = 5000 / q if q < 50 else 200 - 2 * q
        ref = np.clip(np.floor((base * scale + 50) / 100), 1, 255)
        err = float(np.abs(ref - table).sum())
        if err < best_err:
            best, best_err = q, err
    return best


# --------------------------------------------------------------------------------------- write


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    *,
    format: str | None = None,
    overwrite: bool = False,
    jpeg_quality: int | None = None,
    png_level: int = DEFAULT_PNG_LEVEL,
    exposure: float = 0.0,
    fit: str = "compress",
) -> Path:
    """Write ``image`` atomically; the format follows ``format``, else the suffix, else the image.

    An existing file is replaced only with ``overwrite=True``. JPEG keeps the source's quantisation
    tables when the image came from a JPEG (same quality), else uses ``jpeg_quality`` or 95. PNG is
    deflated at ``png_level`` (0-9; the default 3 encodes photos 2.5-3x faster than zlib's usual
    6, for files 0-7% larger on the photos we measured).

    An image read from a camera RAW (camera RGB, see :mod:`libdeclip.raw`) is written as a linear
    DNG (``format="dng"`` or a ``.dng`` name), a scene-referred float32 TIFF in linear Rec. 2020
    (``"tiff32"``, or ``"tiff"``), a 16-bit sRGB TIFF (``"tiff16"``), or 8-bit sRGB PNG/JPEG;
    the last three at ``exposure`` EV, the integer ones through ``fit`` (compress or clamp).
    """
    if not 0 <= png_level <= 9:
        raise ValueError(f"png_level must be 0 to 9, got {png_level}")
    path = Path(path)
    fmt = format or _SUFFIXES.get(path.suffix.lower()) or image.format
    if image.raw is not None:
        if fmt not in RAW_OUTPUTS:
            raise UnsupportedInputError(f"{path}: a RAW image is written as one of {', '.join(RAW_OUTPUTS)}")
        kind = RAW_OUTPUTS[fmt]
        if kind != "dng":
            image = develop(image, kind, exposure=exposure, fit=fit)
            fmt = "tiff" if fmt in ("tiff32", "tiff16") else fmt
    elif fmt == "dng":
        raise UnsupportedInputError(f"{path}: only images read from camera RAW files can be written as DNG")
    if fmt not in FORMATS:
        raise UnsupportedInputError(f"{path}: unknown output format {fmt!r}; use one of {FORMATS}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder stands there; choose another output name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".part", dir=path.parent)  # fits NAME_MAX
    os.close(fd)
    try:
        if fmt == "exr":  # OpenEXR writes to a path, not a stream
            _write_exr(image, tmp)
        else:
            with open(tmp, "wb") as f:
                if fmt == "jpeg":
                    _encode_jpeg(image, jpeg_quality, f)
                elif fmt == "png":
                    f.write(_encode_png(image, png_level))
                elif fmt == "dng":
                    write_declipped_dng(f, image, PLACEHOLDER_TAG if image.tiff_exif else None)
                else:
                    _encode_tiff(image, f)
        if fmt in ("tiff", "dng") and image.tiff_exif:
            with open(tmp, "r+b") as f:
                append_exif(f, image.tiff_exif)
        with open(tmp, "rb") as f:  # on disk before it takes the output's name
            os.fsync(f.fileno())
        if path.exists() and not overwrite:  # appeared while we were encoding
            raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
        # mkstemp makes the file private (0600); give it the mode a plain open() would have, or
        # keep the mode of the file it replaces.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        error = _write_error(path, tmp, exc)
        Path(tmp).unlink(missing_ok=True)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_error(path: Path, tmp: str, exc: OSError) -> OSError:
    """An error met while writing ``tmp`` for ``path``, told about ``path``: the temporary file is
    ours, not the caller's. Encoders that write through numpy (tifffile) report a full disk as
    "N requested and M written" with no errno: with the device (nearly) full, that is ENOSPC."""
    if exc.errno is None and shutil.disk_usage(path.parent).free < _NEARLY_FULL:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if exc.filename is not None and os.fspath(exc.filename) == tmp:
        return OSError(exc.errno, exc.strerror, str(path))
    return exc


#: Free space under which an encoder's errno-less write failure counts as a full disk.
_NEARLY_FULL = 1 << 20


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # the only way to read the umask is to set it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _encode_png(image: Image, level: int) -> bytes:
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


def _encode_jpeg(image: Image, quality: int | None, out: Any) -> None:
    from PIL import Image as PILImage

    pixels = image.pixels
    if pixels.dtype != np.uint8:
        raise UnsupportedInputError(f"JPEG holds 8-bit pixels, not {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        raise UnsupportedInputError("JPEG has no alpha channel: write PNG or TIFF instead")
    im = PILImage.fromarray(pixels)
    kwargs: dict[str, Any] = {}
    if image.jpeg_qtables and quality is None:
        kwargs["qtables"] = image.jpeg_qtables
        if image.jpeg_subsampling is not None:
            kwargs["subsampling"] = image.jpeg_subsampling
    else:
        kwargs["quality"] = quality or 95
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if image.exif:
        kwargs["exif"] = _EXIF_PREFIX + image.exif
    if image.dpi:
        kwargs["dpi"] = tuple(round(d) for d in image.dpi)
    im.save(out, format="JPEG", **kwargs)


def _encode_tiff(image: Image, out: Any) -> None:
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
        extratags.append((_TIFF_ICC, "B", len(image.icc_profile), image.icc_profile, True))
    if image.orientation is not None:
        extratags.append((_TIFF_ORIENTATION, "H", 1, int(image.orientation), True))
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
