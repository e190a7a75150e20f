"""A call's inputs, checked once: the image, its clip levels, colour space and fit.

The dtype policy lives here: which pixel types the library takes, and the clip levels a dtype
implies when the caller gives none (an integer type's full code range, 0 to 1 for floats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

from libdeclip.color import ColorSpace, colorspace_from_icc, get_colorspace
from libdeclip.errors import UnsupportedInputError
from libdeclip.fit import Fit, default_fit

__all__ = [
    "ClipLevels", "ColorSpec", "MAX_FEATHER", "SUPPORTED_DTYPES", "dtype_range", "prepare",
    "resolve_clip_levels", "resolve_colorspace", "validate_image",
]

#: Pixel types the library (and its native core) works on.
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)

ClipLevels = tuple[float, float] | tuple[Sequence[float], Sequence[float]]

MAX_FEATHER = 254  # the native core keeps distances in bytes
#: Float values farther than this many clip ranges from the low clip level are refused.
MAX_FLOAT_REACH = 1e6

ColorSpec: TypeAlias = "str | bytes | ColorSpace | None"


def resolve_colorspace(colorspace: ColorSpec) -> ColorSpace:
    if colorspace is None:
        return get_colorspace("srgb")
    if isinstance(colorspace, ColorSpace):
        return colorspace
    if isinstance(colorspace, (bytes, bytearray)):
        return colorspace_from_icc(bytes(colorspace))
    try:
        return get_colorspace(str(colorspace))
    except ValueError as exc:
        raise UnsupportedInputError(str(exc)) from None


def validate_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UnsupportedInputError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype.type not in SUPPORTED_DTYPES:
        names = ", ".join(np.dtype(t).name for t in SUPPORTED_DTYPES)
        raise UnsupportedInputError(f"unsupported dtype {image.dtype}: use one of {names}")
    ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))
    if not ok_shape:
        raise UnsupportedInputError(
            f"expected H x W (grey) or H x W x C with C = 1 or 2 (grey, grey + alpha), 3 (RGB) or "
            f"4 (RGBA), got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UnsupportedInputError(f"empty image of shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise UnsupportedInputError("image holds NaN or infinite values")
    return image


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return 0.0, 1.0
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return 0.0, float(info.max)
    raise UnsupportedInputError(f"unsupported pixel dtype {dtype}")


def resolve_clip_levels(
    dtype: np.dtype, channels: int, clip_levels: ClipLevels | None
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) as float64 arrays of shape (channels,); defaults to the dtype's range."""
    if clip_levels is None:
        lo, hi = dtype_range(dtype)
        return np.full(channels, lo), np.full(channels, hi)
    try:
        low_in, high_in = clip_levels
        low = np.broadcast_to(np.asarray(low_in, dtype=np.float64), (channels,)).copy()
        high = np.broadcast_to(np.asarray(high_in, dtype=np.float64), (channels,)).copy()
    except (TypeError, ValueError):
        raise UnsupportedInputError(
            f"clip_levels must be (low, high), each a number or {channels} numbers; got {clip_levels!r}"
        ) from None
    if np.any(high <= low):
        raise UnsupportedInputError(f"clip_levels: high {high} must exceed low {low}")
    return low, high


def prepare(
    image: Any, clip_levels: ClipLevels | None, colorspace: ColorSpec, fit: Fit | str | None, feather: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Fit, ColorSpace]:
    """Check a call's image and arguments: (image, colour view, low, high, fit, colour space); the
    colour view is H x W x C (C = 1 for grey, else 3, alpha left out)."""
    image = validate_image(image)
    if not 0 <= int(feather) <= MAX_FEATHER:
        raise UnsupportedInputError(f"feather must be 0 to {MAX_FEATHER} pixels, got {feather}")
    fit = Fit(fit) if fit is not None else default_fit(image.dtype)
    space = resolve_colorspace(colorspace)
    grey = image.ndim == 2 or image.shape[2] <= 2  # grey, or grey + alpha
    colour = image.reshape(image.shape[0], image.shape[1], -1)[..., : 1 if grey else 3]
    low, high = resolve_clip_levels(image.dtype, colour.shape[2], clip_levels)
    if image.dtype.kind == "f":
        # float32 arithmetic on values this far beyond the clip range overflows to inf and NaN
        # (per-channel extremes, not a float64 copy of the image)
        top, bottom = colour.max(axis=(0, 1)).astype(np.float64), colour.min(axis=(0, 1)).astype(np.float64)
        reach = float(np.max(np.maximum(np.abs(top - low), np.abs(bottom - low)) / (high - low)))
        if reach > MAX_FLOAT_REACH:
            raise UnsupportedInputError(
                f"image values reach {reach:.3g} times the clip range ({low.min():g} to {high.max():g}); "
                f"more than {MAX_FLOAT_REACH:g} is no photo's (check the clip_levels or the data)"
            )
    return image, colour, low, high, fit, space
