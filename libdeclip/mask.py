"""Clip detection and feather weights.

Clipping is detected in the image's own encoding: a channel value at or beyond its clip level,
within ``tolerance`` (JPEG ringing and rounding leave blown areas a code value or two short).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_TOLERANCE", "FEATHER_RADIUS", "clip_masks", "feather_weights"]

#: Default tolerance, as a fraction of the clip range (about one 8-bit code value).
DEFAULT_TOLERANCE = 1.0 / 255.0

#: Distance in pixels (chessboard metric) over which the reconstruction is blended into the input.
#: Pixels farther than this from every clipped pixel are returned bit-identical.
FEATHER_RADIUS = 6


def clip_masks(
    image: np.ndarray, low: float = 0.0, high: float = 1.0, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel masks of values clipped high (``>= high - tol``) and low (``<= low + tol``).

    ``image`` is H x W x C; ``tolerance`` is a fraction of ``high - low``. Returns two boolean
    arrays of the image's shape.
    """
    tol = tolerance * (high - low)
    return image >= high - tol, image <= low + tol


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation (chessboard distance 1)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def feather_weights(pixel_mask: np.ndarray, radius: int = FEATHER_RADIUS) -> np.ndarray:
    """Blend weight per pixel: 1 on clipped pixels, falling linearly to 0 at ``radius + 1`` pixels.

    ``pixel_mask`` is H x W boolean (any channel clipped). Returns H x W float32; exactly 0 farther
    than ``radius`` pixels (chessboard distance) from every clipped pixel.
    """
    weights = pixel_mask.astype(np.float32)
    reached = pixel_mask
    for k in range(1, radius + 1):
        grown = _dilate(reached)
        weights[grown & ~reached] = 1.0 - k / (radius + 1)
        reached = grown
    return weights
