"""Reading and writing photo files: PNG, JPEG and TIFF, with their colour profile and metadata.

Pixels keep the file's own encoding and dtype: uint8 or uint16 for integer files, float16 or
float32 for float TIFF. Metadata needed to hand back "a file of the same kind" travels in
:class:`Image`: the ICC profile, EXIF, resolution, PNG text, and the JPEG quantisation tables.
Writes go to a temporary file in the target folder, renamed into place only once complete.
"""

from __future__ import annotations

import io
import os
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
from libdeclip.errors import UnsupportedInputError
from libdeclip.raw import RawInfo, develop, is_raw_path, read_raw, write_declipped_dng

__all__ = ["Image", "read_image", "write_image", "FORMATS"]

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


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read a PNG, JPEG, TIFF or OpenEXR image, or a camera RAW file (by its suffix: DNG, CR2,
    CR3, NEF, ARW, RAF, ORF, RW2, KDC, ...; see :mod:`libdeclip.raw`). Errors name the file and
    the problem."""
    path = Path(path)
    if is_raw_path(path):
        if not path.is_file():
            raise UnsupportedInputError(f"{path}: no such file")
        return read_raw(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedInputError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise UnsupportedInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    kind = _sniff(head)
    if kind is None:
        raise UnsupportedInputError(f"{path}: not a PNG, JPEG, TIFF or OpenEXR file")
    try:
        if kind == "tiff":  # tifffile reads strips from the file: no copy of it in memory
            image = _read_tiff(path)
        elif kind == "exr":
            image = _read_exr(path)
        else:
            data = path.read_bytes()
            image = _read_png(data) if kind == "png" else _read_jpeg(data)
    except UnsupportedInputError as exc:
        raise UnsupportedInputError(f"{path}: {exc}") from None
    except Exception as exc:  # decoders raise many types; the user needs file and reason
        raise UnsupportedInputError(f"{path}: damaged or unreadable {kind.upper()} ({exc})") from None
    image.path = path
    if image.pixels.size == 0:
        raise UnsupportedInputError(f"{path}: the image is empty")
    return image


def _pil_metadata(im: Any) -> dict[str, Any]:
    exif = im.info.get("exif")
    if exif and exif.startswith(_EXIF_PREFIX):
        exif = exif[len(_EXIF_PREFIX) :]
    dpi = im.info.get("dpi")
    orientation = None
    if exif:
        orientation = im.getexif().get(_TIFF_ORIENTATION)
    return {
        "icc_profile": im.info.get("icc_profile") or None,
        "exif": exif or None,
        "dpi": (float(dpi[0]), float(dpi[1])) if dpi else None,
        "orientation": orientation,
    }


def _read_png(data: bytes) -> Image:
    import imagecodecs
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as im:
        meta = _pil_metadata(im)
        text = {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
    # Pillow reduces 16-bit RGB PNG to 8 bits; libpng via imagecodecs keeps every bit and expands
    # palettes (with their transparency) to RGB(A).
    pixels = np.asarray(imagecodecs.png_decode(data))
    return Image(pixels=pixels, format="png", text=text, **meta)


def _read_jpeg(data: bytes) -> Image:
    from PIL import Image as PILImage
    from PIL import JpegImagePlugin

    with PILImage.open(io.BytesIO(data)) as im:
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


def _read_exr(path: Path) -> Image:
    """A single-part scanline or tiled OpenEXR with R, G, B (and A) or Y (and A) channels."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        if not exr.parts:  # the bindings report a file they cannot decode as one without parts
            raise ValueError("no readable part")
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


def _read_tiff(path: Path) -> Image:
    import tifffile

    with open(path, "rb") as f:
        exif = read_exif(f)
    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) > 1:
            raise UnsupportedInputError(
                f"multi-page TIFF ({len(tif.pages)} pages) is not supported: save one image per file"
            )
        page = tif.pages[0]
        photometric = page.photometric.name  # type: ignore[union-attr]
        if photometric not in ("RGB", "MINISBLACK"):
            raise UnsupportedInputError(f"TIFF photometric {photometric} is not supported (RGB or greyscale)")
        pixels = page.asarray()
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
        orientation = int(orientation_tag.value) if orientation_tag is not None else None
        dpi = None
        if "XResolution" in tags and "YResolution" in tags:
            unit = tags.get("ResolutionUnit")
            per_cm = unit is not None and int(unit.value) == 3
            xr, yr = (tags[k].value for k in ("XResolution", "YResolution"))
            x, y = xr[0] / xr[1], yr[0] / yr[1]
            dpi = (x * 2.54, y * 2.54) if per_cm else (x, y)
        compression = str(getattr(page.compression, "name", page.compression))
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    name = (image.tiff_compression or "NONE").lower()
    compression = None if name == "none" else name
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
