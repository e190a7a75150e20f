"""Output range policies: what happens to reconstructed values beyond the clip levels.

All functions work on clip-normalised values (0 and 1 are the clip levels).

- ``compress`` (default for integer outputs): a smooth shoulder above ``knee`` and toe below
  ``toe`` bring the image's brightest and darkest reconstructed values exactly to 1 and 0; values
  between toe and knee are untouched; the curve is continuous with slope 1 at the knee and toe.
- ``clamp``: values beyond [0, 1] are clipped again: every unclipped pixel is exactly preserved.
- ``float`` (default for float outputs): values are kept beyond [0, 1] (HDR).
"""

from __future__ import annotations

from enum import Enum

import numpy as np

__all__ = ["Fit", "DEFAULT_KNEE", "DEFAULT_TOE", "apply_fit", "default_fit"]

DEFAULT_KNEE = 0.8
DEFAULT_TOE = 0.05


class Fit(str, Enum):
    COMPRESS = "compress"
    CLAMP = "clamp"
    FLOAT = "float"


def default_fit(dtype: np.dtype) -> Fit:
    return Fit.FLOAT if np.dtype(dtype).kind == "f" else Fit.COMPRESS


def _shoulder(v: np.ndarray, knee: float, vmax: float) -> np.ndarray:
    """Map [knee, vmax] onto [knee, 1] with f(knee) = knee, f'(knee) = 1, f(vmax) = 1."""
    head = 1.0 - knee
    big = (vmax - knee) / head  # >= 1
    u = np.maximum(v - knee, 0.0) / head
    return np.where(v > knee, knee + head * u / (1.0 + u * (1.0 - 1.0 / big)), v)


def apply_fit(
    values: np.ndarray,
    fit: Fit | str,
    vmin: float,
    vmax: float,
    knee: float = DEFAULT_KNEE,
    toe: float = DEFAULT_TOE,
) -> np.ndarray:
    """Apply ``fit`` to clip-normalised ``values``, given the image's extreme values vmin/vmax."""
    fit = Fit(fit)
    if fit is Fit.FLOAT:
        return values
    if fit is Fit.CLAMP:
        return np.clip(values, 0.0, 1.0)
    if not 0.0 < toe < knee < 1.0:
        raise ValueError(f"need 0 < toe < knee < 1, got toe={toe}, knee={knee}")
    out = values
    if vmax > 1.0:
        out = _shoulder(out, knee, vmax)
    if vmin < 0.0:  # the toe is the shoulder mirrored (x -> 1 - x); only values below it move
        out = np.where(out < toe, 1.0 - _shoulder(1.0 - out, 1.0 - toe, 1.0 - vmin), out)
    return np.clip(out, 0.0, 1.0)  # rounding only: the curves end exactly at 0 and 1
