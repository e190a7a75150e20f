"""The classical estimates a prior-input model (DeclipNet v3) starts from, and its image context.

A v3 model is not asked to invent a clipped value from the picture alone: it is given what the
classical methods (:mod:`libdeclip.estimates`) already estimate there, and learns a correction. Both
the runtime and the training compute these inputs with the functions below, on the whole image,
so the network is trained on exactly what it is shown.

- **Estimates** (:data:`PRIOR_METHODS`, in the model's input order): ``cross-channel`` and
  ``inpaint-opposed`` reconstructions of the clip-normalised model-space picture, each projected
  outward (a value clipped high is never estimated below what was recorded, one clipped low never
  above). Unclipped values are the picture's own.
- **Context** (:data:`CONTEXT_NAMES`): one short vector per image, the same for every tile: the mean
  colour of the unclipped ring around the clipped highlights (a blown sky's colour comes from
  the whole frame, not from the ~100 px a tile sees), and the mean colour of all unclipped pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from libdeclip.color import ColorSpace
    from libdeclip.tiling import Tile

__all__ = ["PRIOR_METHODS", "CONTEXT_NAMES", "estimates", "context", "context_sums", "context_from_sums",
           "ImagePriors", "image_priors"]

#: The estimates a prior-input model takes, in the order of its input channels.
PRIOR_METHODS = ("cross-channel", "inpaint-opposed")
#: The image context vector, in order.
CONTEXT_NAMES = ("ring_R", "ring_G", "ring_B", "unclipped_R", "unclipped_G", "unclipped_B")
#: Width of the ring of unclipped pixels around the clipped highlights that the context averages.
CONTEXT_RING = 16
# Context when nothing is unclipped at all: mid grey, the neutral answer.
_NEUTRAL = 0.5


def project_outward(estimate: np.ndarray, x: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``estimate`` made consistent with the recorded values ``x``: never below ``x`` where it is
    clipped ``high``, never above it where clipped ``low``, equal to ``x`` wherever nothing is
    clipped (all arrays of one shape, or broadcasting to it).

    >>> project_outward(np.array([0.8, 0.2, 0.7]), np.array([1.0, 0.0, 0.5]),
    ...                 np.array([True, False, False]), np.array([False, True, False])).tolist()
    [1.0, 0.0, 0.5]
    """
    return np.where(high, np.maximum(estimate, x), np.where(low, np.minimum(estimate, x), x))


def estimates(x: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The :data:`PRIOR_METHODS` estimates of model-space values ``x`` (H x W x 3), given the masks of
    values clipped ``high`` and ``low``: H x W x 6 float32 (three channels per method, in order),
    projected outward, equal to ``x`` wherever nothing is clipped.

    >>> x = np.array([[[1.0, 1.0, 0.5]]] * 3)
    >>> high = x >= 1.0
    >>> est = estimates(x, high, np.zeros_like(high))
    >>> est.shape, bool((est[..., :3] >= x).all()), bool((est[..., 3:] >= x).all())
    ((3, 1, 6), True, True)
    """
    from libdeclip.estimates import reconstruct

    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape[:2] + (3 * len(PRIOR_METHODS),), dtype=np.float32)
    for i, method in enumerate(PRIOR_METHODS):
        out[..., 3 * i : 3 * i + 3] = project_outward(reconstruct(method, x, high, low), x, high, low)
    return out


def _ring(high_any: np.ndarray, clipped_any: np.ndarray) -> np.ndarray:
    """Unclipped pixels within :data:`CONTEXT_RING` px (chessboard) of a clipped highlight."""
    from scipy.ndimage import maximum_filter

    near = maximum_filter(high_any.astype(np.uint8), size=2 * CONTEXT_RING + 1, mode="constant") > 0
    return near & ~clipped_any


def context_sums(x: np.ndarray, high: np.ndarray, low: np.ndarray,
                 near: np.ndarray | None = None) -> np.ndarray:
    """The sums behind :func:`context` of one part of an image: (ring count, ring R, G, B sums,
    unclipped count, unclipped R, G, B sums). Parts that do not overlap add up to the image's.
    ``near`` (H x W bool): the pixels within the ring's reach of a highlight, where the part does
    not hold every highlight within :data:`CONTEXT_RING` px of its pixels."""
    clipped_any = (high | low).any(axis=2)
    ring = _ring(np.asarray(high.any(axis=2)), clipped_any) if near is None else near & ~clipped_any
    unclipped = ~clipped_any
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([[ring.sum()], x[ring].sum(axis=0), [unclipped.sum()], x[unclipped].sum(axis=0)])


def context_from_sums(sums: np.ndarray) -> np.ndarray:
    """The context vector (:data:`CONTEXT_NAMES`, float32) from :func:`context_sums` added up."""
    ring_n, ring, all_n, whole = sums[0], sums[1:4], sums[4], sums[5:8]
    whole_mean = whole / all_n if all_n > 0 else np.full(3, _NEUTRAL)
    ring_mean = ring / ring_n if ring_n > 0 else whole_mean
    return np.concatenate([ring_mean, whole_mean]).astype(np.float32)


def context(x: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The image context of model-space values ``x`` (H x W x 3): :data:`CONTEXT_NAMES`, float32.

    >>> x = np.full((40, 40, 3), 0.25); x[18:22, 18:22] = 1.0
    >>> context(x, x >= 1.0, x <= 0.0).tolist()
    [0.25, 0.25, 0.25, 0.25, 0.25, 0.25]
    """
    return context_from_sums(context_sums(x, high, low))



# -- the runtime: once per image, at the clipped pixels ----------------------------------------------


@dataclass(frozen=True)
class ImagePriors:
    """An image's estimates, kept only where a value is clipped (memory follows the clipped area):
    ``values[i]`` (the :data:`PRIOR_METHODS` estimates, 3 channels each) belongs to the pixel of
    flat index ``pixels[i]`` (row-major, ascending)."""

    height: int
    width: int
    pixels: np.ndarray  # int64
    values: np.ndarray  # n x 6 float32
    context: np.ndarray  # (6,) float32

    def fill(self, tile: Tile, picture: np.ndarray, out: np.ndarray) -> None:
        """Write the estimate planes of ``tile``'s window into ``out`` (6 x wh x ww), given the
        window's model-space picture (3 x wh x ww, as the native gather wrote it): the picture's
        values where nothing is clipped, padded past the bottom/right edge as the gather pads."""
        h, w = self.height, self.width
        y1, x1 = min(tile.wy1, h), min(tile.wx1, w)
        block = np.concatenate([picture[:, : y1 - tile.wy0, : x1 - tile.wx0]] * len(PRIOR_METHODS))
        rows = np.arange(tile.wy0, y1, dtype=np.int64) * w
        starts = np.searchsorted(self.pixels, rows + tile.wx0)
        stops = np.searchsorted(self.pixels, rows + x1)
        if (stops > starts).any():
            at = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True) if b > a])
            ys, xs = np.divmod(self.pixels[at], w)
            block[:, ys - tile.wy0, xs - tile.wx0] = self.values[at].T
        pad = ((0, 0), (0, tile.wy1 - y1), (0, tile.wx1 - x1))
        out[...] = np.pad(block, pad, mode="symmetric") if pad[1][1] or pad[2][1] else block


def image_priors(colour: np.ndarray, low: np.ndarray, high: np.ndarray, space: ColorSpace,
                 codes: np.ndarray, given: np.ndarray | None = None) -> ImagePriors:
    """:func:`estimates` and :func:`context` of an image (H x W x C in its own encoding, its clip
    levels, colour space and clip codes), computed natively at the clipped pixels only: the same
    values as on the whole image, in memory that follows the clipped area (plus one pass over the
    image for the context's means).

    ``given`` (H x W x 3, the image's encoding): an estimate made elsewhere (a camera RAW's
    photosite inpaint opposed, :mod:`libdeclip.photosites`) that takes the place of every
    method's, projected outward as they are."""
    from libdeclip.color import to_model
    from libdeclip.estimates import as_rgb, clipped_estimates
    from libdeclip.mask import codes_to_masks

    h, w, channels = colour.shape
    span = high - low

    def in_model_space(at: np.ndarray) -> np.ndarray:
        """n x C values in the image's encoding -> n x 3 in model space."""
        return to_model(as_rgb(((at.astype(np.float64) - low) / span)[:, None, :]), space)[:, 0, :]

    pixels = np.flatnonzero(codes.ravel())
    x = in_model_space(colour.reshape(-1, channels)[pixels])
    lo, hi = (as_rgb(m)[:, 0] for m in codes_to_masks(codes.ravel()[pixels][:, None], channels))
    values = np.empty((len(pixels), 3 * len(PRIOR_METHODS)), dtype=np.float32)
    if given is not None:
        if given.shape[:2] != colour.shape[:2] or channels != 3:
            raise ValueError(f"the given estimate is {given.shape}, the picture {colour.shape}")
        # one estimate in every method's place: projected once
        values[:] = np.tile(project_outward(in_model_space(given.reshape(-1, 3)[pixels]), x, hi, lo),
                            len(PRIOR_METHODS))
    else:
        for i, method in enumerate(PRIOR_METHODS):
            rec = clipped_estimates(method, colour, low, high, space, codes)[1]  # at ``pixels``
            values[:, 3 * i : 3 * i + 3] = project_outward(rec, x, hi, lo)
    return ImagePriors(h, w, pixels, values, _image_context(colour, low, high, space, codes))


def _image_context(colour: np.ndarray, low: np.ndarray, high: np.ndarray, space: ColorSpace,
                   codes: np.ndarray) -> np.ndarray:
    """:func:`context` of a whole image (native: one pass, a row at a time)."""
    from libdeclip import _native

    sums = _native.context_sums(colour, low.tolist(), high.tolist(), space.native, codes, CONTEXT_RING)
    return context_from_sums(np.asarray(sums))
