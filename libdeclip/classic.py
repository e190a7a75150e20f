"""Classical declipping without a model: the baselines the network has to beat.

Three methods, after the descriptions in their papers and darktable's documentation:

- ``cross-channel``: a clipped channel is estimated from the surviving channels of the same pixel
  by linear regression on the colour statistics of nearby unclipped pixels (the conditional mean
  of a local Gaussian colour model, in the spirit of Zhang & Brainard 2004 and Masood et al.
  2009). The neighbourhood grows (17, 65, 257 px boxes) until it holds enough unclipped pixels.
  A regressed value stops at three stops over the clip level (a steep slope fitted on dim
  neighbours otherwise extrapolates without bound). Pixels with every channel clipped have
  nothing to regress on and are left as they are.
- ``inpaint-opposed``: in the spirit of darktable's default RAW method. In linear light, a clipped
  channel becomes the mean of the other two channels (cube-root average over the 3 x 3
  neighbourhood) plus the chrominance offset of that channel measured on the unclipped border of
  the clipped region (per connected region; over the whole image where a region's border is too
  small). It restores colour more than brightness, and repairs highlights only (in linear light
  a shadow's chrominance offset is below the noise).
- ``biharmonic``: each clipped channel is inpainted from its own unclipped boundary by biharmonic
  interpolation under a little tension (a sparse solve; scikit-image's ``inpaint_biharmonic``
  clamps its result to the range of the known values, which rules out any highlight), then solved
  again with the values that fell inside their clip level fixed at it (an active-set solution of
  the constrained problem: a highlight stays at or above its clip level, a shadow at or below).

All work on clip-normalised, sRGB-encoded values (the network's model space: clip levels at 0 and
1), so they see the same picture as the network; ``inpaint-opposed`` linearises it first. The
composite, the consistency constraint and the fit policy are the network's (:mod:`libdeclip.composite`).

>>> import numpy as np
>>> photo = np.full((40, 40, 3), (200, 120, 60), dtype=np.uint8)
>>> photo[15:25, 15:25, 0] = 255                      # red clipped, green and blue measured
>>> fixed = declip_classic(photo, "cross-channel")
>>> fixed.dtype, bool((fixed[15:25, 15:25, 0] >= 255).all())
(dtype('uint8'), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from libdeclip import _native
from libdeclip.color import from_model
from libdeclip.composite import band_parts, composite, output_top
from libdeclip.errors import UnsupportedInputError
from libdeclip.estimates import clipped_estimates, reconstruct
from libdeclip.inputs import prepare
from libdeclip.mask import run_codes
from libdeclip.options import CLASSICAL_METHODS, METHODS, RepairOptions, options_from

__all__ = ["METHODS", "CLASSICAL_METHODS", "declip_classic", "reconstruct"]


def declip_classic(
    image: Any,
    method: str,
    options: RepairOptions | None = None,
    *,
    mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    threads: int = 0,
    **fields: Any,
) -> np.ndarray:
    """:func:`libdeclip.declip` with a classical ``method`` (see the module's description): the
    options' clip levels, colour space, fit, tolerance and consistency apply. These methods
    estimate clipped values only, so there is nothing to feather into unclipped ones."""
    if method not in CLASSICAL_METHODS:
        raise UnsupportedInputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    opts = options_from(options, fields)
    tolerance, consistency = opts.tolerance, opts.consistency
    image, colour, low, high, fit, space = prepare(image, opts.clip_levels, opts.colorspace, opts.fit, 0)
    low, high, codes = run_codes(colour, low, high, tolerance, mask, threads, opts.clip_levels is not None)
    h, w = colour.shape[:2]
    pixels, estimates = clipped_estimates(method, colour, low, high, space, codes, consistency, threads)
    rec = from_model(estimates[:, None, :], space)[:, 0, :]
    # native: each clipped channel's estimate (a grey picture's: the mean), with the consistency
    # constraint, the rest as recorded, clip-normalised; and which channels the codes mark
    new, changing = _native.clipped_values(colour, low.tolist(), high.tolist(), codes, pixels,
                                           np.ascontiguousarray(rec, dtype=np.float64), consistency)
    bands, recovered = band_parts(h, w, pixels, new, changing)
    # the bands cover the image: the fit curve's pass over the unclipped values goes band by band
    top = output_top(image.dtype, low, high, opts.clip_levels is not None)
    return composite(image, colour, low, high, tolerance, 0, fit, bands, recovered, codes, threads, top=top)
