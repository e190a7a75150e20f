"""Output range policies: what happens to reconstructed values beyond the clip levels.

All functions work on clip-normalised values (0 and 1 are the clip levels).

- ``compress`` (default for integer outputs): a smooth shoulder above ``knee`` and toe below
  ``toe`` bring the image's brightest and darkest reconstructed values exactly to 1 and 0; values
  between toe and knee are untouched; the curve is continuous with slope 1 at the knee and toe.
- ``clamp``: values beyond [0, 1] are clipped again: every unclipped pixel is exactly preserved.
- ``float`` (default for float outputs): values are kept beyond [0, 1] (HDR).

>>> import numpy as np
>>> default_fit(np.dtype(np.uint8)), default_fit(np.dtype(np.float32))
(<Fit.COMPRESS: 'compress'>, <Fit.FLOAT: 'float'>)
>>> Fit("clamp")
<Fit.CLAMP: 'clamp'>
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from libdeclip import _native

__all__ = ["Fit", "DEFAULT_KNEE", "DEFAULT_TOE", "apply_fit", "default_fit"]

DEFAULT_KNEE = 0.8
DEFAULT_TOE = 0.05


class Fit(str, Enum):
    COMPRESS = "compress"
    CLAMP = "clamp"
    FLOAT = "float"


def default_fit(dtype: np.dtype) -> Fit:
    return Fit.FLOAT if np.dtype(dtype).kind == "f" else Fit.COMPRESS


#: Policy numbers of the native core.
POLICY_CODES = {Fit.COMPRESS: 0, Fit.CLAMP: 1, Fit.FLOAT: 2}


def apply_fit(
    values: np.ndarray,
    fit: Fit | str,
    vmin: float,
    vmax: float,
    knee: float = DEFAULT_KNEE,
    toe: float = DEFAULT_TOE,
) -> np.ndarray:
    """Apply ``fit`` to clip-normalised ``values``, given the image's extreme values vmin/vmax.

    Returns float64 values of the same shape.
    """
    fit = Fit(fit)
    if fit is Fit.COMPRESS and not 0.0 < toe < knee < 1.0:
        raise ValueError(f"need 0 < toe < knee < 1, got toe={toe}, knee={knee}")
    return _native.apply_fit(values, POLICY_CODES[fit], float(vmin), float(vmax), float(knee), float(toe))
