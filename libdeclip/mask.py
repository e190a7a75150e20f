"""Clip detection, in the image's own encoding.

A channel value is clipped when it is at or beyond its channel's clip level, within ``tolerance``
(a fraction of the range: JPEG ringing and rounding leave blown areas a code value or two short).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from libdeclip import _native
from libdeclip.errors import UnsupportedInputError

__all__ = [
    "DEFAULT_TOLERANCE", "SPECK_PIXELS", "SUPPORTED_DTYPES", "ClipSummary", "any_clipped", "clip_codes",
    "clip_mask", "codes_to_masks", "clip_masks", "resolve_clip_levels", "without_specks",
]

#: Pixel types the library (and its native core) works on.
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)

#: Default tolerance, as a fraction of the clip range (about one 8-bit code value).
DEFAULT_TOLERANCE = 1.0 / 255.0

#: A clipped component (pixels with any channel clipped, 8-connected) of at most this many pixels
#: is a speck: JPEG ringing leaves single values at or within a code of 0 and 255 in nearly every
#: tile of a photo, and a speck's own recorded value, at its clip level, is within a hair of what
#: the network would give it. Specks keep their recorded values, so the network runs only on
#: windows around real clipped regions. The threshold is measured: benchmarks/specks.py.
SPECK_PIXELS = 4

ClipLevels = tuple[float, float] | tuple[Sequence[float], Sequence[float]]


class ClipSummary(NamedTuple):
    """Fractions of pixels clipped, per colour channel (high, low) and over all channels."""

    high: tuple[float, ...]
    low: tuple[float, ...]
    any: float

    def __str__(self) -> str:
        hi = ", ".join(f"{v:.2%}" for v in self.high)
        lo = ", ".join(f"{v:.2%}" for v in self.low)
        return f"clipped pixels {self.any:.2%} (high per channel: {hi}; low: {lo})"


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


def _levels(values: float | Sequence[float] | np.ndarray, channels: int) -> list[float]:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (channels,)).tolist()


def _colour_view(image: np.ndarray) -> np.ndarray:
    if image.dtype.type not in SUPPORTED_DTYPES:
        raise UnsupportedInputError(f"unsupported pixel dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise UnsupportedInputError(f"expected an H x W x C image with C = 1 or 3, got shape {image.shape}")
    return image


def clip_masks(
    image: np.ndarray, low: float | np.ndarray = 0.0, high: float | np.ndarray = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel masks of values clipped high (``>= high - tol``) and low (``<= low + tol``).

    ``image`` is H x W x C (C = 1 or 3; any supported dtype and strides); ``low``/``high`` are
    scalars or per-channel arrays; ``tolerance`` is a fraction of ``high - low``. Returns two
    boolean arrays of the image's shape.
    """
    image = _colour_view(image)
    c = image.shape[2]
    return _native.clip_masks(image, _levels(low, c), _levels(high, c), float(tolerance))


def clip_codes(
    image: np.ndarray, low: float | np.ndarray = 0.0, high: float | np.ndarray = 1.0,
    tolerance: float = DEFAULT_TOLERANCE, threads: int = 0,
) -> np.ndarray:
    """The H x W uint8 clip codes of an H x W x C image (bit c: channel c clipped high, bit 3 + c:
    clipped low), the test of :func:`clip_masks` in one byte a pixel (native; ``threads``: 0 for
    the native core's default, all cores)."""
    image = _colour_view(image)
    c = image.shape[2]
    return _native.clip_codes(image, _levels(low, c), _levels(high, c), float(tolerance), int(threads))


def without_specks(codes: np.ndarray, max_pixels: int = SPECK_PIXELS) -> tuple[np.ndarray, int]:
    """``codes`` with the specks (clipped components of at most ``max_pixels`` pixels, see
    :data:`SPECK_PIXELS`) cleared, and how many pixels were cleared. ``codes`` itself is unchanged;
    with nothing to clear it is returned as it is."""
    if max_pixels <= 0:
        return codes, 0
    from scipy import ndimage

    clipped = codes != 0
    # Components are labelled in bands of rows (bounded memory: int32 labels of a band, not of the
    # image); a component cut by a band edge is only counted whole, so one that reaches a band's first
    # or last row is never a speck there (a speck is small: it is judged in the band holding it whole).
    out: np.ndarray | None = None
    cleared = 0
    band, reach = 1024, max_pixels  # a speck spans at most max_pixels rows
    h = codes.shape[0]
    for a in range(0, h, band):
        lo, hi = max(0, a - reach), min(h, a + band + reach)
        labels, n = ndimage.label(clipped[lo:hi], structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes <= max_pixels
        small[0] = False
        # components touching the band's padded edge (not the image's) may continue beyond it
        for edge_row in ([0] if lo > 0 else []) + ([hi - lo - 1] if hi < h else []):
            small[labels[edge_row]] = False
        core = labels[a - lo : a - lo + min(band, h - a)]
        speck = small[core]
        if speck.any():
            if out is None:
                out = codes.copy()
            out[a : a + core.shape[0]][speck] = 0
            cleared += int(speck.sum())
    return (codes if out is None else out), cleared


def any_clipped(
    image: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """Whether an H x W x C image holds a clipped value (the test of :func:`clip_masks`); stops at
    the first one."""
    image = _colour_view(image)
    c = image.shape[2]
    return bool(_native.any_clipped(image, _levels(low, c), _levels(high, c), float(tolerance)))


def clip_mask(
    image: np.ndarray,
    clip_levels: ClipLevels | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[np.ndarray, ClipSummary]:
    """Which colour values of ``image`` are clipped, and a summary.

    Args:
        image: H x W (grey) or H x W x C (C = 1 or 3, or 2 and 4 with alpha, which is ignored), any dtype
            :func:`libdeclip.declip` accepts.
        clip_levels: (low, high), scalars or per channel; default: the dtype's range.
        tolerance: fraction of the range counted as clipped next to each level.

    Returns:
        A boolean H x W x C' mask (C' = 1 for grey, else 3) and a :class:`ClipSummary`.
    """
    if image.ndim == 2:
        colour = image[..., None]
    else:  # alpha (grey + alpha, RGBA) ignored
        colour = image[..., :1] if image.ndim == 3 and image.shape[2] <= 2 else image[..., :3]
    if colour.ndim != 3 or colour.shape[2] not in (1, 3):
        raise UnsupportedInputError(f"expected an H x W or H x W x C image, got shape {image.shape}")
    low, high = resolve_clip_levels(image.dtype, colour.shape[2], clip_levels)
    hi, lo = clip_masks(colour, low, high, tolerance)
    mask = hi | lo
    summary = ClipSummary(
        high=tuple(float(v) for v in hi.mean(axis=(0, 1))),
        low=tuple(float(v) for v in lo.mean(axis=(0, 1))),
        any=float(mask.any(axis=2).mean()),
    )
    return mask, summary


def codes_to_masks(codes: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The (clipped high, clipped low) H x W x ``channels`` bool masks that :func:`clip_codes`
    packed into ``codes``."""
    bits = codes[..., None] >> np.arange(channels, dtype=np.uint8)
    return (bits & 1).astype(bool), ((bits >> 3) & 1).astype(bool)
