"""Clip detection, in the image's own encoding.

A channel value is clipped when it is at or beyond its channel's clip level, within ``tolerance``
(a fraction of the range: JPEG ringing and rounding leave blown areas a code value or two short).

>>> import numpy as np
>>> photo = np.array([[[255, 10, 0], [128, 128, 128]]], dtype=np.uint8)
>>> mask, summary = clip_mask(photo)
>>> mask[0, 0].tolist(), mask[0, 1].any()
([True, False, True], np.False_)
>>> print(summary)
clipped pixels 50.00% (high per channel: 50.00%, 0.00%, 0.00%; low: 0.00%, 0.00%, 50.00%)
>>> int(clip_codes(photo, 0.0, 255.0)[0, 0])  # bit c: channel c high, bit 3 + c: low
33
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from libdeclip import _native
from libdeclip.errors import UnsupportedInputError
from libdeclip.inputs import SUPPORTED_DTYPES, ClipLevels, resolve_clip_levels
from libdeclip.tiling import Tile

__all__ = [
    "DEFAULT_TOLERANCE", "PILE_UP_PIXELS", "PILE_UP_SHARE", "SPECK_PIXELS", "ClipMasks", "ClipSummary",
    "DataLevels", "any_clipped", "channel_maxima", "clip_codes", "clip_mask", "data_codes",
    "levels_from_data", "piles_up", "run_codes",
    "clip_masks", "codes_to_masks", "feather_weights", "mask_codes", "mask_planes", "without_specks",
]

#: Default tolerance, as a fraction of the clip range (about one 8-bit code value).
DEFAULT_TOLERANCE = 1.0 / 255.0

#: A clipped component (pixels with any channel clipped, 8-connected) of at most this many pixels
#: is a speck: JPEG ringing leaves single values at or within a code of 0 and 255 in nearly every
#: tile of a photo, and a speck's own recorded value, at its clip level, is within a hair of what
#: the network would give it. Specks keep their recorded values, so the network runs only on
#: windows around real clipped regions. The threshold is measured: benchmarks/specks.py.
SPECK_PIXELS = 4

#: A float channel whose values exceed 1.0 (scene-linear, HDR) was clipped where at least this
#: share of its values, and at least :data:`PILE_UP_PIXELS` of them, sit exactly at its maximum:
#: what clipping leaves, and what a scene's own brightest point does not (the camera RAW reader's
#: rule on photosites, libdeclip.io.raw).
PILE_UP_SHARE = 1e-5
PILE_UP_PIXELS = 16


def piles_up(values: np.ndarray, top: float) -> bool:
    """Whether ``values`` sit at ``top`` the way clipping leaves them: at least
    :data:`PILE_UP_SHARE` of them, and :data:`PILE_UP_PIXELS`, exactly on it."""
    return int(np.count_nonzero(values == top)) >= max(PILE_UP_PIXELS, PILE_UP_SHARE * values.size)


#: An integer channel whose highest code is below its dtype's top (a camera curve or an editor
#: that stops at 250, a RAW developer's 16-bit TIFF that stops at 65280) was clipped there only
#: where the evidence is unambiguous, all of: that code is at least :data:`INT_MIN_LEVEL` of the
#: top; at least :data:`INT_PILE_UP_SHARE` of the channel's values, and :data:`INT_PILE_UP_PIXELS`,
#: sit on it; that is :data:`INT_SPIKE_RATIO` times as many as on an average occupied code of the
#: band of :data:`INT_BAND` 8-bit steps just below it; and at least :data:`INT_BAND_CODES` codes of
#: that band are occupied (a picture's values run up to where they were clipped; a flat graphic
#: does not). Measured with ``python -m benchmarks.integer_levels`` (Kodak24, CBSD68 and the real
#: clipped photos: on photos whose top is below 255 a natural top code holds 1 to 9 values, at most
#: 3.4e-5 of a channel; clipped below 255 with at least 64 values on the level, the level holds
#: twice its band's average or more in 97% of the channels; results in
#: benchmarks/results/integer_levels.md). A lossy file clipped below its top (JPEG) has its pile-up
#: spread by ringing and is not found: give clip_levels=.
INT_MIN_LEVEL = 0.5
INT_PILE_UP_SHARE = 2e-4
INT_PILE_UP_PIXELS = 64
INT_SPIKE_RATIO = 2.0
INT_BAND = 5
INT_BAND_CODES = 3


@dataclass(frozen=True)
class DataLevels:
    """Clip levels found in a picture's values (:func:`levels_from_data`): a float picture whose
    values exceed 1.0, or an integer one clipped below its dtype's top code."""

    #: the picture is clip-normalised by (0, scale): the highest level found, the same for every
    #: channel so that its colours stay as they are
    scale: float
    #: each channel's high clip level; None where its values do not pile up (nothing clipped high)
    high: tuple[float | None, ...]

    def describe(self, names: str = "RGB") -> str:
        """What was found, for ``libdeclip info``."""
        parts = [f"{n} clipped at {h:g} (values pile up there)" if h is not None else
                 f"{n} not clipped high (no pile-up at its maximum)"
                 for n, h in zip(names, self.high, strict=False)]
        return "found in the values: " + "; ".join(parts)


def channel_maxima(colour: np.ndarray) -> np.ndarray:
    """Each channel's highest value of an H x W x C picture. A C-contiguous one is reduced over its
    rows first, whole rows at a time (one pass that numpy vectorises; per-channel strided maxima
    took 8x as long on a 24 MP photo), then over the columns of each channel."""
    h, w, c = colour.shape
    if colour.flags.c_contiguous and h > 1:
        return np.asarray(colour.reshape(h, w * c).max(axis=0).reshape(w, c).max(axis=0))
    return np.array([colour[..., k].max() for k in range(c)])


def levels_from_data(colour: np.ndarray) -> DataLevels | None:
    """Where an H x W x C picture was clipped, when its dtype's range says nothing: a float picture
    whose values exceed 1.0 (each channel's maximum where :data:`PILE_UP_SHARE` of its values sit
    on it, else no high clipping in that channel), or an integer picture some channel of which piles
    up below the dtype's top code (:func:`integer_level`; channels that reach the top code keep it,
    the others are not clipped high). None where the dtype's range holds: floats within 1.0,
    integers with no such pile-up."""
    if colour.size == 0:
        return None
    if colour.dtype.kind in "ui":
        return _integer_levels(colour)
    if colour.dtype.kind != "f":
        return None
    tops = [float(v) for v in channel_maxima(colour)]
    if max(tops) <= 1.0:
        return None
    high = tuple(top if top > 0 and piles_up(colour[..., c], top) else None for c, top in enumerate(tops))
    found = [h for h in high if h is not None]
    return DataLevels(max(found) if found else max(tops), high)


def band_evidence(values: np.ndarray, top: int, top_code: int) -> tuple[float, int]:
    """What the integer rule weighs below an integer channel's highest code ``top``: the average
    count of the occupied codes of the :data:`INT_BAND` 8-bit steps just below it (0.0 if none is),
    and how many of those steps hold a value."""
    step = top_code / 255
    below = values[(values >= top - INT_BAND * step) & (values < top)]
    codes = np.unique(below)
    average = below.size / codes.size if codes.size else 0.0
    occupied = int(np.unique(np.floor((top - 1 - codes) / step)).size)  # 8-bit steps with values
    return average, occupied


def integer_level(values: np.ndarray, top_code: int, top: int | None = None) -> int | None:
    """The code below ``top_code`` at which an integer channel's ``values`` were clipped, by the
    rule of :data:`INT_MIN_LEVEL` and the other ``INT_`` thresholds; None if there is none.
    ``top``: the channel's highest value, when the caller has it."""
    top = int(values.max()) if top is None else top
    if top >= top_code or top < INT_MIN_LEVEL * top_code:
        return None
    on_top = int(np.count_nonzero(values == top))
    if on_top < max(INT_PILE_UP_PIXELS, INT_PILE_UP_SHARE * values.size):
        return None
    average, occupied = band_evidence(values, top, top_code)
    if occupied < INT_BAND_CODES or on_top < INT_SPIKE_RATIO * average:
        return None
    return top


def _integer_levels(colour: np.ndarray) -> DataLevels | None:
    top_code = int(np.iinfo(colour.dtype).max)
    tops = [int(v) for v in channel_maxima(colour)]
    found = [integer_level(colour[..., c], top_code, top) for c, top in enumerate(tops)]
    if all(level is None for level in found):
        return None
    high = tuple(float(level) if level is not None else float(top_code) if top >= top_code else None
                 for level, top in zip(found, tops, strict=True))
    return DataLevels(max(h for h in high if h is not None), high)


def data_codes(colour: np.ndarray, levels: DataLevels, tolerance: float) -> np.ndarray:
    """The clip codes of a picture with :class:`DataLevels`: high where a channel is within
    ``tolerance`` of its own level (none where it has none), low within ``tolerance`` of 0 (both as
    fractions of the scale)."""
    codes = np.zeros(colour.shape[:2], dtype=np.uint8)
    for c, level in enumerate(levels.high):
        channel = colour[..., c]
        if level is not None:
            codes |= (channel >= level - tolerance * levels.scale).astype(np.uint8) << c
        codes |= (channel <= tolerance * levels.scale).astype(np.uint8) << (3 + c)
    return codes


def run_codes(colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float,
              mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None, threads: int,
              levels_given: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's (low, high, codes): the caller's mask, else the detection at the levels. Without
    ``levels_given``, for a float picture above 1.0 or an integer one clipped below its top code,
    the levels are found in its values (:func:`levels_from_data`), and the picture is normalised by
    their scale, mask or not."""
    found = None if levels_given else levels_from_data(colour)
    if found is not None:
        low, high = np.zeros(colour.shape[2]), np.full(colour.shape[2], found.scale)
    if mask is not None:
        return low, high, mask_codes(mask, colour.shape)
    if found is None:
        return low, high, clip_codes(colour, low, high, tolerance, threads)
    return low, high, data_codes(colour, found, tolerance)


class ClipMasks(NamedTuple):
    """Per-channel masks of the values clipped low and high, H x W x C booleans: a (low, high)
    pair, as clip levels are."""

    low: np.ndarray
    high: np.ndarray


class ClipSummary(NamedTuple):
    """Fractions of pixels clipped, per colour channel (high, low) and over all channels."""

    high: tuple[float, ...]
    low: tuple[float, ...]
    any: float

    def __str__(self) -> str:
        hi = ", ".join(f"{v:.2%}" for v in self.high)
        lo = ", ".join(f"{v:.2%}" for v in self.low)
        return f"clipped pixels {self.any:.2%} (high per channel: {hi}; low: {lo})"


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
) -> ClipMasks:
    """Per-channel masks of values clipped low (``<= low + tol``) and high (``>= high - tol``).

    ``image`` is H x W x C (C = 1 or 3; any supported dtype and strides); ``low``/``high`` are
    scalars or per-channel arrays; ``tolerance`` is a fraction of ``high - low``. Returns
    :class:`ClipMasks` (low, high): two boolean arrays of the image's shape.
    """
    image = _colour_view(image)
    c = image.shape[2]
    at_high, at_low = _native.clip_masks(image, _levels(low, c), _levels(high, c), float(tolerance))
    return ClipMasks(at_low, at_high)


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
    # native: one raster pass with a byte of state a pixel, each search stopping past max_pixels
    # (bindings/specks.cpp); the same as labelling the whole image and clearing the small components
    out, cleared = _native.without_specks(codes, int(max_pixels))
    return (codes if cleared == 0 else out), int(cleared)


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
        clip_levels: (low, high), scalars or per channel; default: the dtype's range, except for
            a float picture whose values exceed 1.0: there, the levels its values show
            (:func:`levels_from_data`).
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
    low, high, codes = run_codes(colour, low, high, tolerance, None, 0, clip_levels is not None)
    lo, hi = codes_to_masks(codes, colour.shape[2])
    mask = hi | lo
    summary = ClipSummary(
        high=tuple(float(v) for v in hi.mean(axis=(0, 1))),
        low=tuple(float(v) for v in lo.mean(axis=(0, 1))),
        any=float(mask.any(axis=2).mean()),
    )
    return mask, summary


def codes_to_masks(codes: np.ndarray, channels: int) -> ClipMasks:
    """The (clipped low, clipped high) H x W x ``channels`` bool masks that :func:`clip_codes`
    packed into ``codes``."""
    bits = codes[..., None] >> np.arange(channels, dtype=np.uint8)
    return ClipMasks(((bits >> 3) & 1).astype(bool), (bits & 1).astype(bool))


def mask_codes(mask: np.ndarray | tuple[np.ndarray, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A caller's clip mask as the native core's H x W codes: bit c for channel c clipped high,
    bit 3 + c clipped low. ``mask`` is H x W x C (clipped high) or a (low, high) pair
    (:class:`ClipMasks`), either of them None."""
    low, high = mask if isinstance(mask, tuple) else (None, mask)
    codes = np.zeros(shape[:2], dtype=np.uint8)
    for bits, m in ((0, high), (3, low)):
        if m is None:
            continue
        m = np.asarray(m, dtype=bool)
        m = m.reshape(m.shape[0], m.shape[1], -1) if m.ndim >= 2 else m
        if m.shape[:2] != shape[:2] or m.shape[2] != shape[2]:
            raise UnsupportedInputError(
                f"mask of shape {m.shape} does not match the image ({shape[0]} x {shape[1]}, "
                f"{shape[2]} channels)"
            )
        for c in range(shape[2]):
            codes |= m[..., c].astype(np.uint8) << (bits + c)
    return codes


def mask_planes(codes: np.ndarray, channels: int, tile: Tile, out: np.ndarray) -> None:
    """Write a mask-input model's clip channels of ``tile``'s window into ``out`` (3 x h x w
    float32): +1 where a channel is clipped high, -1 low, 0 elsewhere, from the run's clip
    ``codes`` of an image of ``channels`` channels (a grey image's one plane goes to all three),
    padded past the bottom/right edge the way the native gather pads the pixels (numpy's
    "symmetric"). Native: a table lookup a pixel."""
    _native.mask_planes(codes, int(channels), tile.wy0, tile.wy1, tile.wx0, tile.wx1, out)


def feather_weights(clipped_pixels: np.ndarray, radius: int) -> np.ndarray:
    """1 - d / (radius + 1) for pixels at chessboard distance 1 <= d <= radius from a clipped
    pixel, 0 elsewhere (clipped pixels themselves included); float32, H x W (the pipeline blends
    with these same float32 weights, in float64 arithmetic)."""
    return _native.feather_weights(np.asarray(clipped_pixels, dtype=bool), int(radius))
