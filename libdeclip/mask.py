"""Clip detection.

Clipping is detected in the image's own encoding: a channel value at or beyond its clip level,
within ``tolerance`` (JPEG ringing and rounding leave blown areas a code value or two short).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_TOLERANCE", "clip_masks"]

#: Default tolerance, as a fraction of the clip range (about one 8-bit code value).
DEFAULT_TOLERANCE = 1.0 / 255.0


def clip_masks(
    image: np.ndarray, low: float = 0.0, high: float = 1.0, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel masks of values clipped high (``>= high - tol``) and low (``<= low + tol``).

    ``image`` is H x W x C; ``tolerance`` is a fraction of ``high - low``. Returns two boolean
    arrays of the image's shape.
    """
    tol = tolerance * (high - low)
    return image >= high - tol, image <= low + tol
