"""The classical estimates a prior-input model (DeclipNet v3) starts from, and its image context.

A v3 model is not asked to invent a clipped value from the picture alone: it is given what the
classical methods of :mod:`libdeclip.classic` already estimate there, and learns a correction. Both
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

import numpy as np

__all__ = ["PRIOR_METHODS", "CONTEXT_NAMES", "estimates", "context", "context_sums", "context_from_sums"]

#: The estimates a prior-input model takes, in the order of its input channels.
PRIOR_METHODS = ("cross-channel", "inpaint-opposed")
#: The image context vector, in order.
CONTEXT_NAMES = ("ring_R", "ring_G", "ring_B", "unclipped_R", "unclipped_G", "unclipped_B")
#: Width of the ring of unclipped pixels around the clipped highlights that the context averages.
CONTEXT_RING = 16
# Context when nothing is unclipped at all: mid grey, the neutral answer.
_NEUTRAL = 0.5


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
    from libdeclip.classic import reconstruct

    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape[:2] + (3 * len(PRIOR_METHODS),), dtype=np.float32)
    for i, method in enumerate(PRIOR_METHODS):
        rec = reconstruct(method, x, high, low)
        rec = np.where(high, np.maximum(rec, x), np.where(low, np.minimum(rec, x), x))
        out[..., 3 * i : 3 * i + 3] = rec
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

