"""The repair of a camera RAW read by :func:`libdeclip.io.read_raw`: on the photosites, by the
network, or both combined (:data:`COMBINED`, what ``libdeclip declip`` runs on a RAW by default).

The result is camera RGB with values above the white level kept; :mod:`libdeclip.develop` makes it
an ordinary image, :mod:`libdeclip.io.dng` a DNG.

>>> COMBINED_RAMP
4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from libdeclip.errors import UnsupportedInputError
from libdeclip.options import COMBINED, RAW_METHODS, RepairOptions

if TYPE_CHECKING:
    from libdeclip.io.image import Image, RawMosaic

__all__ = ["COMBINED_RAMP", "RawRun", "repair_raw"]

#: Pixels over which the combination goes from the photosite estimate to the network's, into an
#: area where every channel is clipped.
COMBINED_RAMP = 4

#: ``run(pixels, options, mask)``: the repair of an array by the options' method, on the values
#: ``mask`` marks clipped (:meth:`libdeclip.Declipper.run`).
RawRun = Callable[[np.ndarray, RepairOptions, np.ndarray], np.ndarray]


def repair_raw(image: Image, method: str, run: RawRun) -> np.ndarray:
    """Repair a RAW read by :func:`libdeclip.io.read_raw`; returns camera RGB (float32, values above
    1 kept).

    ``method``: one of :data:`~libdeclip.options.RAW_METHODS`. :data:`~libdeclip.options.COMBINED`
    (what a RAW gets by default) takes the photosite ``"inpaint-opposed"`` where a channel survives
    and the network where all three are clipped, with a ramp of :data:`COMBINED_RAMP` pixels
    between them (in the RAW benchmark the photosite method is 3 dB ahead of the network where a
    channel survives, 27.00 against 24.01 dB linear, mean of 12 pairs, and the network 1.2 dB ahead
    where all are clipped, 18.35 against 17.20: benchmarks/raw_quality.py); ``"declipnet"`` runs
    the network alone, the classical methods none.

    Nothing a photosite measured is clipped away before the repair. After white balance a sensor's
    channels saturate at different levels (the red and blue gains lift theirs above green's), so
    each channel keeps its own clip level, its white level times its gain, and the repair is told
    which values were clipped by the photosite mask, not by a level. The network sees the
    white-balanced picture scaled so that the highest channel's level is 1, in its true colours
    (its colour space carries the per-channel levels, which the runtime divides by); only values
    under the photosite mask change, and never below what the photosites recorded. Every other
    value is returned as read (so there is no feathering into them).

    ``"inpaint-opposed"`` on a Bayer RAW repairs the clipped photosites themselves (the cube-root
    mean of the other two colours around each one plus a chroma offset per colour measured on the
    unclipped photosites ringing the clipped areas, as darktable's "inpaint opposed" does; native),
    and adds what each photosite gained, interpolated bilinearly, to the demosaiced values under
    the mask.
    """
    info, mask = image.raw, image.raw_mask
    if info is None or mask is None:
        raise ValueError("repair_raw() takes an image read from a camera RAW file")
    if method not in RAW_METHODS:
        raise UnsupportedInputError(
            f"unknown method {method!r} for camera RAW: use one of {', '.join(RAW_METHODS)}"
        )
    camera = image.pixels[..., :3]
    result = camera.copy()
    if not mask.any():
        return result
    gains = np.array(info.wb, dtype=np.float64)
    _, high = info.clip_levels

    def repair(method: str) -> np.ndarray:
        if method == "inpaint-opposed" and image.raw_mosaic is not None:
            return _opposed_from_photosites(image.raw_mosaic, camera, high, gains)
        levels = high * gains  # each channel's clip level, white balanced
        top = float(levels.max())
        shown = camera * (gains / top).astype(np.float32)
        relative = levels / top
        balanced = info.balanced_colorspace
        # The runtime divides each channel by its level; the matrix multiplies it back, so the
        # picture in model space keeps its colours.
        space = replace(balanced, to_linear_srgb=balanced.to_linear_srgb @ np.diag(relative))
        options = RepairOptions(method=method, clip_levels=(0.0, relative.tolist()), colorspace=space,
                                tolerance=0.0, fit="float")
        return run(shown, options, mask) * (top / gains).astype(np.float32)

    if method == COMBINED:
        recovered = _combine(repair("inpaint-opposed"), repair("declipnet"), np.asarray(mask.all(axis=2)))
    else:
        recovered = repair(method)
    result[mask] = np.maximum(recovered[mask], camera[mask])
    return result


def _combine(opposed: np.ndarray, network: np.ndarray, all_clipped: np.ndarray) -> np.ndarray:
    """The photosite estimate where a channel survives, the network's deep inside the areas where
    every channel is clipped, and between them a ramp over :data:`COMBINED_RAMP` pixels (a hard
    switch would draw the areas' outlines)."""
    from scipy.ndimage import distance_transform_cdt

    if not all_clipped.any():
        return opposed
    depth = distance_transform_cdt(all_clipped, metric="chessboard")  # 1 on an area's edge
    weight = (np.minimum(depth, COMBINED_RAMP) / np.float32(COMBINED_RAMP)).astype(np.float32)[..., None]
    return opposed + weight * (network - opposed)


def _opposed_from_photosites(mosaic: RawMosaic, camera: np.ndarray, high: np.ndarray, gains: np.ndarray
                             ) -> np.ndarray:
    """Camera RGB with the photosite repair of inpaint opposed added: each colour's gain at its own
    photosites, and between them the mean gain of the nearest ones (bilinear demosaicing of the
    gains, so the demosaiced detail of the unclipped channels is kept)."""
    from scipy.ndimage import uniform_filter

    from libdeclip import _native

    repaired = _native.opposed_photosites(mosaic.values, mosaic.colours, high.tolist(), gains.tolist())
    gained = repaired - mosaic.values
    out = camera.copy()
    for k in range(3):
        own = mosaic.colours == k
        if not own.any():
            continue
        plane = np.where(own, gained, np.float32(0.0))
        # the 3 x 3 mean of colour k's gains where the pixel has none of its own (mode="constant":
        # outside the sensor there are no photosites, so they count for neither sum)
        total = uniform_filter(plane, size=3, mode="constant")
        count = uniform_filter(own.astype(np.float32), size=3, mode="constant")
        spread = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        out[..., k] += np.where(own, plane, spread)
    return out
