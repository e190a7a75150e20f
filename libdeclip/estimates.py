"""Classical estimates of clipped values: the reconstructions behind the classical methods.

The three methods of :mod:`libdeclip.classic` (see its description), as functions of clip-normalised
model-space values and the masks of what is clipped, and for a whole image at its clipped pixels
(:func:`clipped_estimates`), so memory and time follow the clipped area. A prior-input model
(:mod:`libdeclip.priors`) starts from the same estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from libdeclip import _native
from libdeclip.color import ColorSpace, from_model, get_colorspace, to_model
from libdeclip.errors import UnsupportedInputError
from libdeclip.mask import codes_to_masks
from libdeclip.options import CLASSICAL_METHODS
from libdeclip.tiling import plan_regions

__all__ = ["as_rgb", "clipped_estimates", "reconstruct"]

# cross-channel: box sizes tried in turn, and the unclipped pixels a box must hold to be trusted
_REGRESSION_BOXES = (17, 65, 257)
_REGRESSION_MIN_PIXELS = 24
# Ridge on the surviving channels' covariance (a standard deviation of 0.01 of the range): keeps
# the slope finite in flat neighbourhoods, where it matters least.
_REGRESSION_RIDGE = 1e-4
# The most a regressed value may reach, in model space (sRGB-encoded, 1.0 = the clip level): three
# stops over the clip level in linear light. A steep slope fitted in a box of dim pixels otherwise
# extrapolates without bound (a linear DNG's blown sky came out at 30 times its clip level in
# blue). No sample the networks train on is exposed more than two stops over (training.data,
# training.sensor); the third is margin.
_REGRESSION_TOP = 1.055 * 8.0 ** (1 / 2.4) - 0.055
# inpaint-opposed: border width around a clipped region, and the border a region needs for its
# own chrominance
_OPPOSED_BORDER = 3
_OPPOSED_MIN_BORDER = 8
# biharmonic: active-set rounds, and the most unknowns solved at full resolution per region
_BIHARMONIC_ROUNDS = 3
_BIHARMONIC_MAX_UNKNOWNS = 40_000
# Tension (a membrane term, weight relative to the squared Laplacian): pure biharmonic fills
# extrapolate the boundary's slopes without bound across large regions; tension damps that over a
# few pixels. Of 0.03, 0.1, 0.3, 1 and 3 on six BSDS500 *training* photos, lower values recovered
# highlights better and shadows worse; 0.3 gained on both sides of most photos.
_BIHARMONIC_TENSION = 0.3
# How far from a clipped value biharmonic reads (pixels): the margin of the part of the photo it is
# given around each clipped region (its stencil, and room for its boundary).
_BIHARMONIC_MARGIN = 8


# ----------------------------------------------------------------------------------- cross-channel


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _box_moments(weighted: list[np.ndarray], at: tuple[np.ndarray, ...], size: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted count, means (n x 3) and covariances (n x 3 x 3) over size x size boxes around the
    pixels ``at`` (rows, cols). ``weighted``: the weight, the weighted channels and the weighted
    products of :data:`_PAIRS`, H x W each. The boxes are summed over the whole window (a running
    sum, cheap); the moments' arithmetic is done only where they are needed."""
    from scipy.ndimage import uniform_filter

    sums = [uniform_filter(a, size=size, mode="reflect")[at] for a in weighted]
    count = sums[0]
    safe = np.maximum(count, 1e-12)
    mean = np.stack(sums[1:4], axis=-1) / safe[:, None]
    cov = np.empty((len(count), 3, 3))
    for (i, j), moment in zip(_PAIRS, sums[4:], strict=True):
        cov[:, i, j] = cov[:, j, i] = moment / safe - mean[:, i] * mean[:, j]
    # the weight is 0 or 1: the box's count is an integer, which the running mean rounds off
    return np.rint(count * size * size), mean, cov


def _cross_channel(x: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    out = x.copy()
    valid = np.logical_not(clipped.any(axis=2)).astype(np.float64)
    n_clipped = clipped.sum(axis=2)
    todo = (n_clipped > 0) & (n_clipped < 3)
    if not todo.any():
        return out
    weighted = [valid, *(valid * x[..., k] for k in range(3)),
                *(valid * x[..., i] * x[..., j] for i, j in _PAIRS)]
    # Each pixel's pattern of lost channels as bits (1 R, 2 G, 4 B).
    patterns = (clipped * np.array([1, 2, 4])).sum(axis=2)
    for size in _REGRESSION_BOXES:
        at = np.nonzero(todo)
        if not len(at[0]):
            break
        count, mean, cov = _box_moments(weighted, at, size)
        ready = count >= _REGRESSION_MIN_PIXELS
        here = patterns[at]
        # One batched solve per pattern of surviving channels.
        for bits in np.unique(here[ready]):
            lost = np.flatnonzero((int(bits) >> np.arange(3)) & 1)
            kept = np.flatnonzero(~((int(bits) >> np.arange(3)) & 1).astype(bool))
            pick = ready & (here == bits)
            rows, cols = at[0][pick], at[1][pick]
            m, c, v = mean[pick], cov[pick], x[rows, cols]
            c_kk = c[:, kept][:, :, kept] + _REGRESSION_RIDGE * np.eye(len(kept))
            c_kl = c[:, kept][:, :, lost]
            slope = np.linalg.solve(c_kk, c_kl)  # n x kept x lost
            dev = (v[:, kept] - m[:, kept])[:, None, :]
            est = np.minimum(m[:, lost] + (dev @ slope)[:, 0, :], _REGRESSION_TOP)
            values = out[rows, cols]
            values[:, lost] = est
            out[rows, cols] = values
        todo[at[0][ready], at[1][ready]] = False
    return out


# --------------------------------------------------------------------------------- inpaint-opposed


def _opposed_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(linear light, opposed reference) of model-space values: per colour, the mean of the other
    two colours' 3 x 3 means, averaged as cube roots (darktable's choice: closer to perceived
    brightness than a plain mean)."""
    from scipy.ndimage import uniform_filter

    lin = from_model(x, get_colorspace("linear-srgb"))  # sRGB-encoded -> linear light (unclamped)
    cube = np.cbrt(np.stack([uniform_filter(lin[..., k], size=3, mode="reflect") for k in range(3)], axis=-1))
    ref = np.stack([((cube.sum(axis=2) - cube[..., k]) / 2.0) ** 3 for k in range(3)], axis=-1)
    return lin, ref


def _region_chroma(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Each region's mean border chrominance (row 0: outside every region), or the mean over every
    region's border where its own border is too small."""
    total = counts[1:].sum()
    global_chroma = sums[1:].sum(axis=0) / total if total else np.zeros(3)
    return np.where(
        (counts >= _OPPOSED_MIN_BORDER)[:, None], sums / np.maximum(counts, 1.0)[:, None], global_chroma
    )


def _inpaint_opposed(x: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_dilation, label

    lin, ref = _opposed_reference(x)
    chroma = lin - ref
    any_clipped = clipped.any(axis=2)
    regions, n = label(binary_dilation(any_clipped, iterations=_OPPOSED_BORDER), structure=np.ones((3, 3)))
    border = (regions > 0) & ~any_clipped
    counts = np.bincount(regions[border], minlength=n + 1).astype(np.float64)
    sums = np.stack([np.bincount(regions[border], weights=chroma[border][:, k], minlength=n + 1)
                     for k in range(3)], axis=-1)
    estimate = to_model(ref + _region_chroma(counts, sums)[regions], get_colorspace("linear-srgb"))
    out = x.copy()
    out[clipped] = estimate[clipped]
    return out


# ------------------------------------------------------------------------------------- biharmonic


def _second_difference(n: int) -> Any:
    """The 1-D second difference on n samples, reflecting at both ends."""
    from scipy import sparse

    d = sparse.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n)).tolil()
    if n > 1:
        d[0, 0] = d[n - 1, n - 1] = -1.0
    else:
        d[0, 0] = 0.0
    return d.tocsr()


def _biharmonic_region(values: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Solve the biharmonic equation under tension (squared 5-point Laplacian minus the tension
    times the Laplacian) for the ``unknown`` values of a small 2-D array, the others held fixed;
    reflecting at the array's edges. Unlike
    :func:`skimage.restoration.inpaint_biharmonic` the result is not clamped to the range of the
    known values, which is the whole point for a highlight."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    h, w = values.shape
    laplacian = (sparse.kron(sparse.eye(h), _second_difference(w))
                 + sparse.kron(_second_difference(h), sparse.eye(w)))
    a = (laplacian @ laplacian - _BIHARMONIC_TENSION * laplacian).tocsr()
    u = unknown.ravel()
    rows = a[u]
    rhs = -(rows[:, ~u] @ values.ravel()[~u])
    out = values.copy()
    out[unknown] = spsolve(rows[:, u].tocsc(), rhs)
    return out


def _inpaint_channel(values: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Biharmonic inpainting of one channel, region by region (each on its bounding box grown by
    the stencil's reach). A region too large for a direct solve is solved on a downscaled copy of
    its box and scaled back up: a smooth fill holds little more than those low frequencies."""
    from scipy.ndimage import find_objects, label, zoom

    out = values.copy()
    regions, _ = label(unknown, structure=np.ones((3, 3)))
    h, w = values.shape
    for i, box in enumerate(find_objects(regions), start=1):
        if box is None:
            continue
        roi = (slice(max(box[0].start - 2, 0), min(box[0].stop + 2, h)),
               slice(max(box[1].start - 2, 0), min(box[1].stop + 2, w)))
        region = regions[roi] == i
        if region.all():  # nothing known around it (a channel clipped everywhere): nothing to fill from
            continue
        size = int(region.sum())
        if size <= _BIHARMONIC_MAX_UNKNOWNS:
            out[roi][region] = _biharmonic_region(out[roi], region)[region]
            continue
        step = int(np.ceil(np.sqrt(size / _BIHARMONIC_MAX_UNKNOWNS)))
        coarse_values = out[roi][::step, ::step]
        coarse_region = region[::step, ::step]
        coarse = _biharmonic_region(coarse_values, coarse_region)
        rh, rw = region.shape
        up = zoom(coarse, step, order=1, mode="nearest", grid_mode=True)[:rh, :rw]
        up = np.pad(up, ((0, rh - up.shape[0]), (0, rw - up.shape[1])), mode="edge")
        out[roi][region] = up[region]
    return out


def _biharmonic(x: np.ndarray, high: np.ndarray, low: np.ndarray, constrained: bool) -> np.ndarray:
    out = x.copy()
    for k in range(x.shape[2]):
        unknown = high[..., k] | low[..., k]
        for _ in range(_BIHARMONIC_ROUNDS):
            if not unknown.any():
                break
            filled = _inpaint_channel(x[..., k], unknown)
            out[..., k][unknown] = filled[unknown]
            if not constrained:
                break
            # Values that fell inside their clip level stay at the recorded value (the level):
            # fixed as known, the rest is solved again with them as boundary.
            inside = unknown & ((high[..., k] & (filled < x[..., k])) | (low[..., k] & (filled > x[..., k])))
            if not inside.any():
                break
            out[..., k][inside] = x[..., k][inside]
            unknown &= ~inside
    return out


# ------------------------------------------------------------------------------------------ public


_RECONSTRUCT: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, bool], np.ndarray]] = {
    "cross-channel": lambda x, high, low, constrained: _cross_channel(x, high | low),
    "inpaint-opposed": lambda x, high, low, constrained: _inpaint_opposed(x, high),
    "biharmonic": _biharmonic,
}


def reconstruct(
    method: str, x: np.ndarray, high: np.ndarray, low: np.ndarray, constrained: bool = True
) -> np.ndarray:
    """The reconstruction of clip-normalised model-space values ``x`` (H x W x 3 float64) by a
    classical ``method``, given the per-channel masks of values clipped ``high`` and ``low``.
    ``constrained`` makes ``biharmonic`` solve the constrained problem (the others estimate each
    value on its own, and the caller projects them).

    Returns H x W x 3 float64; only masked values differ from ``x``.
    """
    if method not in _RECONSTRUCT:
        raise UnsupportedInputError(f"unknown method {method!r}: use one of {', '.join(CLASSICAL_METHODS)}")
    if not (high.any() or low.any()):
        return x.copy()
    return _RECONSTRUCT[method](x, high, low, constrained)


def clipped_estimates(method: str, colour: np.ndarray, low: np.ndarray, high: np.ndarray, space: ColorSpace,
                      codes: np.ndarray, constrained: bool = True, threads: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``method``'s reconstruction of every pixel with a clip code: their flat indices
    (``np.flatnonzero(codes)``, int64) and model-space values (n x 3 float64), what
    :func:`reconstruct` gives on the whole image, in memory and time that follow the clipped area.

    ``colour``: H x W x C (C = 1 or 3) in its own encoding, with its clip ``low``/``high`` levels
    (per channel) and colour ``space``; ``codes``: its clip codes. ``inpaint-opposed`` and
    ``cross-channel`` are native (``bindings/opposed.cpp``, ``bindings/cross_channel.cpp``);
    ``biharmonic`` solves region by region, each with the surroundings its stencil reads.
    """
    if method not in _RECONSTRUCT:
        raise UnsupportedInputError(f"unknown method {method!r}: use one of {', '.join(CLASSICAL_METHODS)}")
    if method == "inpaint-opposed":
        return _native.opposed_rgb(colour, low.tolist(), high.tolist(), space.native, codes, _OPPOSED_BORDER,
                                   _OPPOSED_MIN_BORDER, threads)
    channels = colour.shape[2]
    if method == "cross-channel":
        at, regressed = _native.cross_channel_rgb(colour, low.tolist(), high.tolist(), space.native, codes,
                                                  list(_REGRESSION_BOXES), _REGRESSION_MIN_PIXELS,
                                                  _REGRESSION_RIDGE, threads)
        low_m, high_m = codes_to_masks(codes.ravel()[at][:, None], channels)
        lost = as_rgb(low_m | high_m)[:, 0]
        return at, np.where(lost, np.minimum(regressed, _REGRESSION_TOP), regressed)
    span = high - low

    def model_space(window: tuple[slice, slice]) -> np.ndarray:
        return to_model(as_rgb((colour[window].astype(np.float64) - low) / span), space)

    tiles = plan_regions(codes != 0, _BIHARMONIC_MARGIN)
    w = codes.shape[1]
    pixels, values = [], []
    for tile in tiles:  # the cores do not overlap
        low_m, high_m = codes_to_masks(codes[tile.window], channels)
        rec = reconstruct(method, model_space(tile.window), as_rgb(high_m), as_rgb(low_m), constrained)
        ys, xs = np.nonzero(codes[tile.core])
        pixels.append((ys + tile.y0).astype(np.int64) * w + xs + tile.x0)
        values.append(rec[tile.core_in_window][ys, xs])
    if not pixels:
        return np.empty(0, np.int64), np.empty((0, 3))
    flat = np.concatenate(pixels)
    order = np.argsort(flat, kind="stable")
    return flat[order], np.concatenate(values)[order]


def as_rgb(a: np.ndarray) -> np.ndarray:
    """H x W x 3 from H x W x 1 (grey, repeated) or H x W x 3: the methods work on three channels."""
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
