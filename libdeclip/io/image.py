"""What is read from a photo file: :class:`Image` (pixels and what a faithful copy of the file
needs), and for camera RAW :class:`RawInfo` and :class:`RawMosaic`; the pixel limit every reader
checks a header against before anything is allocated, and the check that float pixels are finite.

>>> import numpy as np
>>> image = Image(np.zeros((2, 3, 4), dtype=np.uint16))
>>> image.channels, image.has_alpha, image.bit_depth, image.clip_levels
(4, True, 16, (0.0, 65535.0))
>>> check_dimensions(30_000, 20_000, MAX_PIXELS)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
libdeclip.errors.UnsupportedInputError: 30000 x 20000 pixels (600 MP) is above the limit of 500 MP ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip._tiffexif import ExifEntry
from libdeclip.color import ColorSpace, ToneCurve, colorspace_from_icc, colorspace_from_nclx, get_colorspace
from libdeclip.errors import UnsupportedInputError
from libdeclip.inputs import dtype_range

__all__ = ["Image", "RawInfo", "RawMosaic", "MAX_PIXELS", "pixel_limit", "check_dimensions", "check_finite"]

#: The most pixels (width x height) :func:`~libdeclip.io.read_image` accepts: 500 megapixels, above
#: the largest camera files (400 MP multi-shot) and far below what a hostile header can claim (a PNG
#: can declare 4 billion x 4 billion). Override per call with ``read_image(path, max_pixels=N)``, or
#: for a process with the environment variable ``LIBDECLIP_MAX_PIXELS``.
MAX_PIXELS = 500_000_000
_MAX_PIXELS_ENV = "LIBDECLIP_MAX_PIXELS"
_FINITE_CHECK_ROWS = 256  # rows per step of the NaN / infinity scan (bounds its temporary memory)


@dataclass(frozen=True)
class RawMosaic:
    """A Bayer RAW's photosites as read, for the methods that repair them before demosaicing."""

    values: np.ndarray = field(repr=False)  # H x W float32: (photosite - its black) / span
    colours: np.ndarray = field(repr=False)  # H x W uint8: 0 R, 1 G, 2 B


@dataclass(frozen=True)
class RawInfo:
    """What libdeclip keeps of a RAW file to develop it and to write it back as DNG."""

    make: str
    model: str
    cfa_pattern: str | None  # e.g. "RGGB"; None for linear (demosaiced) raw data
    black: tuple[float, float, float]  # per RGB channel, raw units
    white: tuple[float, float, float]  # effective saturation per RGB channel, raw units
    declared_white: int
    span: float  # raw units that camera RGB 1.0 stands for (largest white - black)
    wb: tuple[float, float, float]  # white balance as shot, smallest gain 1
    cam_to_srgb: tuple[float, ...]  # 3 x 3 row-major: white-balanced camera RGB -> linear sRGB
    xyz_to_cam: tuple[float, ...]  # 3 x 3 row-major: the DNG ColorMatrix (D65)
    clipped_share: float  # share of photosites at or above their white level
    baseline_exposure: float = 0.0
    orientation: int = 1  # EXIF orientation of the pixels (they are stored as the sensor reads)
    dng_colour_tags: tuple[Any, ...] = field(default=(), repr=False)  # a source DNG's colour tags
    notes: tuple[str, ...] = ()

    @property
    def clip_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per channel of camera RGB. High: each channel's white level; low: half a
        16-bit step below black, which no value reaches (shadows are not masked)."""
        high = np.array([(w - b) / self.span for w, b in zip(self.white, self.black, strict=True)])
        return np.full(3, -0.5 / 65535), high

    @property
    def balanced_colorspace(self) -> ColorSpace:
        """White-balanced camera RGB -> linear sRGB (the camera matrix alone)."""
        linear = ToneCurve("linear")
        m = np.array(self.cam_to_srgb).reshape(3, 3)
        return ColorSpace(f"camera:{self.make} {self.model} (balanced)", (linear, linear, linear), m)

    @property
    def colorspace(self) -> ColorSpace:
        """Camera RGB -> linear sRGB: white balance as shot, then the camera matrix."""
        balanced = self.balanced_colorspace
        return replace(balanced, name=f"camera:{self.make} {self.model}",
                       to_linear_srgb=balanced.to_linear_srgb @ np.diag(self.wb))


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
    xmp: bytes | None = None  # XMP packet (WebP, AVIF, HEIF)
    significant_bits: int | None = None  # 10 or 12: the file's depth, its codes held over 16 bits
    nclx: tuple[int, int] | None = None  # HEIF/AVIF colour signalling (H.273 primaries, transfer)
    encoding: dict[str, Any] = field(default_factory=dict)  # how the file was coded (WebP lossless, chroma)
    path: Path | None = None
    raw: RawInfo | None = None  # camera RAW: pixels are camera RGB (see libdeclip.io.raw)
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
        return dtype_range(self.pixels.dtype)  # the dtype policy's defaults (libdeclip.inputs)

    @property
    def jpeg_quality(self) -> int | None:
        """IJG quality (1..100) estimated from the luminance quantisation table."""
        if not self.jpeg_qtables:
            return None
        return _estimate_jpeg_quality(self.jpeg_qtables[0])

    @property
    def colorspace(self) -> ColorSpace:
        """The pixels' encoding: from the ICC profile, else from a HEIF/AVIF file's colour
        signalling, else linear sRGB (Rec. 709 primaries) for OpenEXR, which is scene-linear, else
        sRGB (what untagged files mean)."""
        if self.raw is not None:
            return self.raw.colorspace
        if self.icc_profile:
            return colorspace_from_icc(self.icc_profile)
        if self.nclx is not None:
            return colorspace_from_nclx(self.nclx)
        if self.format == "exr":
            return get_colorspace("linear-srgb")
        return get_colorspace("srgb")

    def with_pixels(self, pixels: np.ndarray) -> Image:
        return replace(self, pixels=pixels)


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


# -------------------------------------------------------------------------------------- limits


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


def check_dimensions(width: int, height: int, limit: int) -> None:
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


def check_finite(pixels: np.ndarray) -> None:
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
