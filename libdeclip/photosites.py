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
    from libdeclip.io.image import Image

__all__ = ["COMBINED_RAMP", "RawRun", "repair_raw", "photosite_opposed"]

#: Pixels over which the combination goes from the photosite estimate to the network's, into an
#: area where every channel is clipped.
COMBINED_RAMP = 4

#: ``run(pixels, options, mask, estimate)``: the repair of an array by the options' method, on the
#: values ``mask`` marks clipped (:meth:`libdeclip.Declipper.run`); ``estimate`` (or None): the
#: photosite inpaint-opposed estimate of ``pixels``, on their scale, which a model that declares
#: it (``raw_prior = photosite`` in its metadata) starts from.
RawRun = Callable[[np.ndarray, RepairOptions, np.ndarray, "np.ndarray | None"], np.ndarray]


def repair_raw(image: Image, method: str, run: RawRun, *, photosite_prior: bool = False) -> np.ndarray:
    """Repair a RAW read by :func:`libdeclip.io.read_raw`; returns camera RGB (float32, values above
    1 kept).

    ``method``: one of :data:`~libdeclip.options.RAW_METHODS`. :data:`~libdeclip.options.COMBINED`
    (what a RAW gets by default) takes the photosite ``"inpaint-opposed"`` where a channel survives
    and the network where all three are clipped, with a ramp of :data:`COMBINED_RAMP` pixels
    between them (in the RAW benchmark the photosite method is 2.8 dB ahead of the network where a
    channel survives, 27.03 against 24.26 dB linear, mean of 12 pairs, and the network 1.2 dB ahead
    where all are clipped, 18.34 against 17.18: benchmarks/raw_quality.py); ``"declipnet"`` runs
    the network alone, the classical methods none.

    Nothing a photosite measured is clipped away before the repair. After white balance a sensor's
    channels saturate at different levels (the red and blue gains lift theirs above green's), so
    each channel keeps its own clip level, its white level times its gain, and the repair is told
    which values were clipped by the photosite mask, not by a level. The network sees the
    white-balanced picture scaled so that the highest channel's level is 1, in the camera's own
    channels (its colour space carries the per-channel levels, which the runtime divides by, and
    no camera matrix, so that each clipped channel stays one channel); only values
    under the photosite mask change, and never below what the photosites recorded. Every other
    value is returned as read (so there is no feathering into them).

    ``"inpaint-opposed"`` on a Bayer RAW repairs the clipped photosites themselves (the cube-root
    mean of the other two colours around each one plus a chroma offset per colour measured on the
    unclipped photosites ringing the clipped areas, as darktable's "inpaint opposed" does; native),
    and adds what each photosite gained, interpolated bilinearly, to the demosaiced values under
    the mask.

    ``photosite_prior`` (a prior-input model whose metadata says ``raw_prior = photosite``): the
    network is given that photosite estimate of a Bayer RAW as both of its classical estimates, so
    it starts from it (with a zero residual it returns it) instead of from the estimates of the
    demosaiced picture.
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

    mosaic = image.raw_mosaic
    photosite: list[np.ndarray] = []  # computed once, for the classical method and the network

    def opposed() -> np.ndarray:
        assert mosaic is not None
        if not photosite:
            photosite.append(photosite_opposed(mosaic.values, mosaic.colours, camera, high, gains))
        return photosite[0]

    def repair(method: str) -> np.ndarray:
        if method == "inpaint-opposed" and mosaic is not None:
            return opposed()
        levels = high * gains  # each channel's clip level, white balanced
        top = float(levels.max())
        scale = (gains / top).astype(np.float32)
        shown = camera * scale
        given = photosite_prior and method == "declipnet" and mosaic is not None
        estimate = opposed() * scale if given else None
        relative = levels / top
        # The model is shown white-balanced camera RGB itself (sRGB-encoded, each channel divided by
        # its level), not camera RGB taken to sRGB by the camera's matrix: the mask is the
        # photosites', per camera channel, and a matrix would mix a clipped channel into the
        # unclipped ones the model must leave alone. Measured in the RAW benchmark (mean of 12
        # pairs, linear dB, some channel survives / all clipped): v3 +1.3 / +1.1 dB, v2-int8
        # +0.12 / -0.07; and a model given the photosite estimate with a zero residual returns it.
        space = replace(info.balanced_colorspace, to_linear_srgb=np.diag(relative))
        options = RepairOptions(method=method, clip_levels=(0.0, relative.tolist()), colorspace=space,
                                tolerance=0.0, fit="float")
        return run(shown, options, mask, estimate) * (top / gains).astype(np.float32)

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


def photosite_opposed(values: np.ndarray, colours: np.ndarray, camera: np.ndarray, white: np.ndarray,
                      gains: np.ndarray) -> np.ndarray:
    """Camera RGB with the photosite repair of inpaint opposed added: each colour's gain at its own
    photosites, and between them the mean gain of the nearest ones (bilinear demosaicing of the
    gains, so the demosaiced detail of the unclipped channels is kept).

    ``values`` (H x W float32) and ``colours`` (H x W uint8, 0 R, 1 G, 2 B): the photosites
    (:class:`libdeclip.io.image.RawMosaic`); ``camera``: their demosaiced camera RGB (H x W x 3);
    ``white``: each colour's clip level; ``gains``: the white balance. Training
    (``training.sensor``) computes the estimate with this function too, so a model is trained on
    what the RAW path shows it."""
    from scipy.ndimage import uniform_filter

    from libdeclip import _native

    values = np.ascontiguousarray(values, dtype=np.float32)
    colours = np.ascontiguousarray(colours, dtype=np.uint8)
    repaired = _native.opposed_photosites(values, colours, [float(v) for v in white],
                                          [float(g) for g in gains])
    gained = repaired - values
    out = np.array(camera, dtype=np.float32)
    for k in range(3):
        own = colours == k
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
