"""numpy reference implementations of the native core (libdeclip._native), kept as test oracles.

Each function computes what its native counterpart computes, in float64 and in the same order of
operations, so integer outputs agree exactly and float outputs to rounding. They are slow and
allocate freely: the runtime never uses them.
"""

from __future__ import annotations

import numpy as np

from libdeclip.color import SRGB_CURVE, ColorSpace, ToneCurve
from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE, Fit
from libdeclip.tiling import Tile, TilePlan

# ------------------------------------------------------------------------------ clip detection


def thresholds(low: np.ndarray, high: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    tol = tolerance * (high - low)
    return high - tol, low + tol


def clip_masks(image: np.ndarray, low, high, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    at_high, at_low = thresholds(low, high, tolerance)
    values = image.astype(np.float64)
    return values <= at_low, values >= at_high  # (low, high), as libdeclip.mask.clip_masks


def any_clipped(image: np.ndarray, low, high, tolerance: float) -> bool:
    lo, hi = clip_masks(image, low, high, tolerance)
    return bool(hi.any() or lo.any())


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def feather_weights(clipped_pixels: np.ndarray, radius: int) -> np.ndarray:
    """1 - d / (radius + 1) at chessboard distance 1 <= d <= radius from a clipped pixel, float32."""
    weights = np.zeros(clipped_pixels.shape, dtype=np.float32)
    reached = clipped_pixels.astype(bool)
    for d in range(1, radius + 1):
        grown = _dilate(reached)
        weights[grown & ~reached] = np.float32(1.0 - d / (radius + 1))
        reached = grown
    return weights


# ------------------------------------------------------------------------------------ colour


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    return np.interp(x, xp, fp)


def curve_forward(curve: ToneCurve, v: np.ndarray) -> np.ndarray:
    if curve.kind == "linear":
        return v
    x = np.abs(v)
    if curve.kind == "parametric":
        g, a, b, c, d, e, f, _ = curve.params
        with np.errstate(invalid="ignore"):
            hi = np.power(np.maximum(a * x + b, 0.0), g) + e
        y = np.where(x >= d, hi, c * x + f)
    else:
        xs, ys = np.array(curve.xs), np.array(curve.ys)
        y = np.where(x <= 1.0, _interp(x, xs, ys), ys[-1] + (x - 1.0) * curve.params[0])
    return np.sign(v) * y


def curve_inverse(curve: ToneCurve, v: np.ndarray) -> np.ndarray:
    if curve.kind == "linear":
        return v
    y = np.abs(v)
    if curve.kind == "parametric":
        g, a, b, c, d, e, f, y_at_d = curve.params
        with np.errstate(divide="ignore", invalid="ignore"):
            hi = (np.power(np.maximum(y - e, 0.0), 1.0 / g) - b) / a
            lo = (y - f) / c if c != 0 else np.zeros_like(y)
        x = np.where(y >= y_at_d if d > 0 else np.ones_like(y, dtype=bool), hi, lo)
    else:
        xs, ys = np.array(curve.xs), np.array(curve.ys)
        x = np.where(y <= ys[-1], _interp(y, ys, xs), 1.0 + (y - ys[-1]) / curve.params[0])
    return np.sign(v) * x


def _mul(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """m @ v per pixel, summed left to right like the native core (no BLAS reordering)."""
    return np.stack([v[..., 0] * m[i, 0] + v[..., 1] * m[i, 1] + v[..., 2] * m[i, 2] for i in range(3)], -1)


def to_model(rgb: np.ndarray, space: ColorSpace) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    if space.is_srgb:
        return rgb
    lin = np.stack([curve_forward(space.curves[i], rgb[..., i]) for i in range(3)], -1)
    return curve_inverse(SRGB_CURVE, _mul(space.to_linear_srgb, lin))


def from_model(model: np.ndarray, space: ColorSpace) -> np.ndarray:
    model = model.astype(np.float64)
    if space.is_srgb:
        return model
    lin = _mul(np.linalg.inv(space.to_linear_srgb), curve_forward(SRGB_CURVE, model))
    return np.stack([curve_inverse(space.curves[i], lin[..., i]) for i in range(3)], -1)


# --------------------------------------------------------------------------------------- fit


def _shoulder(v: np.ndarray, knee: float, vmax: float) -> np.ndarray:
    head = 1.0 - knee
    big = (vmax - knee) / head
    u = np.maximum(v - knee, 0.0) / head
    return np.where(v > knee, knee + head * u / (1.0 + u * (1.0 - 1.0 / big)), v)


def apply_fit(values: np.ndarray, fit: Fit | str, vmin: float, vmax: float,
              knee: float = DEFAULT_KNEE, toe: float = DEFAULT_TOE) -> np.ndarray:
    fit = Fit(fit)
    values = np.asarray(values, dtype=np.float64)
    if fit is Fit.FLOAT:
        return values
    if fit is Fit.CLAMP:
        return np.clip(values, 0.0, 1.0)
    out = values
    if vmax > 1.0:
        out = _shoulder(out, knee, vmax)
    if vmin < 0.0:
        out = np.where(out < toe, 1.0 - _shoulder(1.0 - out, 1.0 - toe, 1.0 - vmin), out)
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------------- pipeline


def window_of(plan: TilePlan, array: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's model window cut from ``array`` (H x W x C), padded symmetrically where it
    crosses the bottom/right border exactly as padding the whole image would: that padding only
    copies rows/cols near the edge, which the window holds (the halo reaches the edge whenever the
    window does, and a window shorter than its padding spans the whole, small, image)."""
    wy1, wx1 = min(tile.wy1, plan.height), min(tile.wx1, plan.width)
    part = array[tile.wy0 : wy1, tile.wx0 : wx1]
    extra_y, extra_x = tile.wy1 - wy1, tile.wx1 - wx1
    if extra_y == 0 and extra_x == 0:
        return part
    pad = [(0, extra_y), (0, extra_x)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(part, pad, mode="symmetric")


def declip(engine, image: np.ndarray, plan: TilePlan, low: np.ndarray, high: np.ndarray, tolerance: float,
           feather: int, space: ColorSpace, fit: Fit) -> np.ndarray:
    """The whole composite of :meth:`libdeclip.Declipper.run`, tile by tile, in numpy.

    ``engine(batch)`` returns the residual of an N x 3 x H x W float32 batch. Every tile of the
    plan that holds (or, with ``feather``, lies near) a clipped value is run.
    """
    grey = image.ndim == 2 or image.shape[2] == 1
    colour = image.reshape(image.shape[0], image.shape[1], -1)[..., : 1 if grey else 3]
    h, w = colour.shape[:2]
    scale = 1.0 / (high - low)
    recovered = {}
    for tile in plan:
        ys = slice(max(0, tile.y0 - feather), min(h, tile.y1 + feather))
        xs = slice(max(0, tile.x0 - feather), min(w, tile.x1 + feather))
        if not any_clipped(colour[ys, xs], low, high, tolerance):
            continue
        win = (window_of(plan, colour, tile).astype(np.float64) - low) * scale
        if win.shape[2] == 1:
            win = np.repeat(win, 3, axis=2)
        model_win = to_model(win, space)
        res = engine(model_win.transpose(2, 0, 1)[None].astype(np.float32))[0].transpose(1, 2, 0)
        lo, hi = clip_masks(colour[ys, xs], low, high, tolerance)
        inner = (slice(tile.y0 - ys.start, tile.y1 - ys.start), slice(tile.x0 - xs.start, tile.x1 - xs.start))
        weights = feather_weights((hi | lo).any(axis=2), feather)[inner] if feather else None
        hi, lo = hi[inner], lo[inner]
        cy, cx = tile.core_in_window
        changed = hi | lo
        if weights is not None:
            changed |= weights[..., None] > 0
        sel = changed.any(axis=2)
        recon = from_model(model_win[cy, cx][sel] + res[cy, cx][sel].astype(np.float64), space)
        if grey:
            recon = (recon[:, 0] + recon[:, 1] + recon[:, 2])[:, None] / 3.0
        x = (colour[tile.core][sel].astype(np.float64) - low) * scale
        new = x.copy()
        if weights is not None:
            wsel = weights[sel][:, None]
            new = np.where(wsel != 0, x + wsel * (recon - x), x)
        hi_s, lo_s = hi[sel], lo[sel]
        new[hi_s] = np.maximum(recon[hi_s], x[hi_s])
        new[lo_s] = np.minimum(recon[lo_s], x[lo_s])
        full = np.zeros(changed.shape, dtype=np.float32)
        full[sel] = new.astype(np.float32)
        recovered[tile] = (changed, full)
    values = [v[c] for c, v in recovered.values() if c.any()]
    vmax = max([1.0] + [float(v.max()) for v in values])
    vmin = min([0.0] + [float(v.min()) for v in values])
    reshapes = fit is Fit.COMPRESS and (vmax > 1.0 or vmin < 0.0)
    out = image.copy()
    out_colour = out.reshape(h, w, -1)[..., : colour.shape[2]]
    rng = high - low
    for tile in plan:
        src = colour[tile.core].astype(np.float64)
        changed, full = recovered.get(tile, (np.zeros(src.shape, bool), np.zeros(src.shape, np.float32)))
        x = (src - low) / rng
        x = np.where(changed, full.astype(np.float64), x)
        fitted = apply_fit(x, fit, vmin, vmax)
        write = changed.copy()
        if reshapes:
            knee_level, toe_level = low + DEFAULT_KNEE * rng, low + DEFAULT_TOE * rng
            write |= ((src > knee_level) | (src < toe_level)) & (fitted != x)
        values = fitted * rng + low
        if out.dtype.kind == "u":
            info = np.iinfo(out.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        core = out_colour[tile.core]
        core[write] = values[write].astype(out.dtype)
    return out


# ------------------------------------------------------------------------------ RAW photosites

OPPOSED_RING = 6  # chessboard distance to a clipped photosite of the same colour (bindings/opposed.cpp)
OPPOSED_FLOOR = 0.2  # ring photosites read above this fraction of their clip level


def clipped_values(colour: np.ndarray, low, high, codes: np.ndarray, pixels: np.ndarray, rec: np.ndarray,
                   consistency: bool) -> tuple[np.ndarray, np.ndarray]:
    """_native.clipped_values: the classical methods' new clip-normalised values at the clipped
    pixels (``rec``: n x 3 estimates; a grey picture takes their mean), and which the codes mark."""
    channels = colour.shape[2]
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    x = (colour.reshape(-1, channels)[pixels].astype(np.float64) - low) / (high - low)
    if channels == 1:
        rec = rec.mean(axis=1, keepdims=True)
    bits = codes.ravel()[pixels][:, None] >> np.arange(channels, dtype=np.uint8)
    hi, lo = (bits & 1).astype(bool), ((bits >> 3) & 1).astype(bool)
    new = x
    if consistency:
        new[hi] = np.maximum(rec[hi], x[hi])
        new[lo] = np.minimum(rec[lo], x[lo])
    else:
        new[hi | lo] = rec[hi | lo]
    return new, hi | lo


def _window_sums(values: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per colour, the sum and count of values over each photosite's 3 x 3 window cut to the image,
    added in row-major window order like the native loop (adding 0.0 for other colours is exact)."""
    h, w = values.shape
    pv = np.zeros((h + 2, w + 2))
    pv[1:-1, 1:-1] = values
    pc = np.full((h + 2, w + 2), 3, dtype=np.uint8)  # 3: outside the image, no colour
    pc[1:-1, 1:-1] = colours
    sums = np.zeros((3, h, w))
    counts = np.zeros((3, h, w), dtype=np.int64)
    for dy in range(3):
        for dx in range(3):
            v, c = pv[dy : dy + h, dx : dx + w], pc[dy : dy + h, dx : dx + w]
            for k in range(3):
                sel = c == k
                sums[k] += np.where(sel, v, 0.0)
                counts[k] += sel
    return sums, counts


def _opposed_reference(balanced: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cube of the mean over the other colours present of their 3 x 3 cube-root means, and
    where it exists."""
    sums, counts = _window_sums(np.cbrt(np.where(balanced > 0.0, balanced, 0.0)), colours)
    t = np.zeros(balanced.shape)
    used = np.zeros(balanced.shape, dtype=np.int64)
    for k in range(3):
        sel = (colours != k) & (counts[k] > 0)
        t = t + np.where(sel, sums[k] / np.maximum(counts[k], 1), 0.0)
        used += sel
    valid = used > 0
    t = t / np.maximum(used, 1)
    return t * t * t, valid


def opposed_photosites(mosaic: np.ndarray, colours: np.ndarray, clip, gains) -> np.ndarray:
    """darktable-style inpaint opposed on an H x W RAW mosaic (colours 0/1/2 = R/G/B per photosite)."""
    values = np.asarray(mosaic).astype(np.float64)
    colours = np.asarray(colours)
    clip_at = np.asarray(clip, dtype=np.float64)[colours]
    gain = np.asarray(gains, dtype=np.float64)[colours]
    balanced = values * gain
    ref, valid = _opposed_reference(balanced, colours)
    clipped = values >= clip_at

    # The ring: unclipped, above the floor, within OPPOSED_RING of a clipped photosite of its colour,
    # with no clipped photosite in its 3 x 3 window.
    near = np.zeros(values.shape, dtype=bool)
    for k in range(3):
        grown = clipped & (colours == k)
        for _ in range(OPPOSED_RING):
            grown = _dilate(grown)
        near |= grown & (colours == k)
    ring = ~clipped & (values > OPPOSED_FLOOR * clip_at) & near & ~_dilate(clipped) & valid
    chroma = np.zeros(3)
    for k in range(3):
        sel = ring & (colours == k)
        if sel.any():
            # Rows summed left to right, then the rows in order (cumsum adds sequentially, as native does).
            rows = np.cumsum(np.where(sel, balanced - ref, 0.0), axis=1)[:, -1]
            chroma[k] = np.cumsum(rows)[-1] / np.count_nonzero(sel)

    estimate = ref + chroma[colours]
    replace = clipped & valid & (estimate > balanced)
    out = np.asarray(mosaic, dtype=np.float32).copy()
    out[replace] = (estimate / gain)[replace].astype(np.float32)
    return out
