"""The declipping pipeline and :class:`Declipper`, the session that runs it repeatedly.

Data flow (ARCHITECTURE.md): clip mask in the input's own encoding -> clip-normalised, sRGB-encoded
model space -> tiles that hold clipped pixels, with a halo -> ONNX Runtime -> back to the input's
encoding -> composite (only clipped values change) -> fit policy -> the input's dtype.
Everything is done tile by tile, so memory follows the tile size, not the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.color import ColorSpace, colorspace_from_icc, from_model, get_colorspace, to_model
from libdeclip.engine import ModelInfo, OnnxEngine
from libdeclip.errors import UnsupportedInputError
from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE, Fit, apply_fit, default_fit
from libdeclip.mask import DEFAULT_TOLERANCE, ClipLevels, any_clipped, clip_masks, resolve_clip_levels
from libdeclip.tiling import Tile, TilePlan, plan_tiles

__all__ = ["Declipper", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)
DEFAULT_TILE_CPU = 512
DEFAULT_TILE_GPU = 1024

ColorSpec = str | bytes | ColorSpace | None


def _resolve_colorspace(colorspace: ColorSpec) -> ColorSpace:
    if colorspace is None:
        return get_colorspace("srgb")
    if isinstance(colorspace, ColorSpace):
        return colorspace
    if isinstance(colorspace, (bytes, bytearray)):
        return colorspace_from_icc(bytes(colorspace))
    try:
        return get_colorspace(str(colorspace))
    except ValueError as exc:
        raise UnsupportedInputError(str(exc)) from None


def _validate(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UnsupportedInputError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype.type not in SUPPORTED_DTYPES:
        names = ", ".join(np.dtype(t).name for t in SUPPORTED_DTYPES)
        raise UnsupportedInputError(f"unsupported dtype {image.dtype}: use one of {names}")
    ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    if not ok_shape:
        raise UnsupportedInputError(
            f"expected H x W (grey) or H x W x C with C = 3 (RGB) or 4 (RGBA), got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UnsupportedInputError(f"empty image of shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise UnsupportedInputError("image holds NaN or infinite values")
    return image


@dataclass
class _Recovered:
    """What changes in one tile's core, kept compact until the fit policy is known."""

    tile: Tile
    packed: np.ndarray  # np.packbits of the core-shaped mask of changed values
    shape: tuple[int, ...]
    values: np.ndarray  # their new clip-normalised values (float32), in mask order

    @property
    def changed(self) -> np.ndarray:
        n = int(np.prod(self.shape))
        return np.unpackbits(self.packed, count=n).reshape(self.shape).astype(bool)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3 x 3 binary dilation (chessboard distance 1) of an H x W mask."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def feather_weights(clipped_pixels: np.ndarray, radius: int) -> np.ndarray:
    """1 - d / (radius + 1) for pixels at chessboard distance 1 <= d <= radius from a clipped
    pixel, 0 elsewhere (clipped pixels themselves included)."""
    weights = np.zeros(clipped_pixels.shape, dtype=np.float64)
    reached = clipped_pixels
    for d in range(1, radius + 1):
        grown = _dilate(reached)
        weights[grown & ~reached] = 1.0 - d / (radius + 1)
        reached = grown
    return weights


class Declipper:
    """A declipping session: loads the model once, then :meth:`run` repairs images.

    Args:
        model: ONNX model following the libdeclip contract (default: shipped DeclipNet v1).
        device: ``"auto"`` (TensorRT, then CUDA, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        tile_size: core size of a tile in pixels (default 512 on CPU, 1024 on GPU).
        threads: CPU threads for ONNX Runtime (default: its own choice, all cores).
        skip_unclipped: skip tiles whose core holds no clipped value (they cannot change); turn
            off only to measure what skipping saves.

    ``run`` may be called from several threads at once. Use as a context manager or call
    :meth:`close` to free the session.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        tile_size: int | None = None,
        threads: int | None = None,
        skip_unclipped: bool = True,
    ) -> None:
        self._engine: OnnxEngine | None = OnnxEngine(model, device=device, threads=threads)
        self.skip_unclipped = skip_unclipped
        default = DEFAULT_TILE_CPU if self._engine.device == "cpu" else DEFAULT_TILE_GPU
        self.tile_size = int(tile_size or default)
        if self.tile_size < 16:
            raise ValueError(f"tile_size must be at least 16 pixels, got {tile_size}")

    # -- session ---------------------------------------------------------------------------------
    @property
    def engine(self) -> OnnxEngine:
        if self._engine is None:
            raise RuntimeError("this Declipper is closed")
        return self._engine

    @property
    def model_info(self) -> ModelInfo:
        """The model's contract (name, version, receptive field, training data and steps...)."""
        return self.engine.info

    @property
    def device(self) -> str:
        """Where the model runs: ``"cpu"`` or ``"cuda:N"``."""
        return self.engine.device

    def close(self) -> None:
        self._engine = None

    def __enter__(self) -> Declipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipeline --------------------------------------------------------------------------------
    def plan(self, height: int, width: int) -> TilePlan:
        info = self.model_info
        return plan_tiles(height, width, self.tile_size, info.receptive_field_radius, info.spatial_multiple)

    def run(
        self,
        image: np.ndarray,
        *,
        clip_levels: ClipLevels | None = None,
        colorspace: ColorSpec = None,
        fit: Fit | str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        feather: int = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Repair the clipped pixels of ``image``; see :func:`libdeclip.declip` for the arguments."""
        image = _validate(image)
        feather = int(feather)
        if feather < 0:
            raise UnsupportedInputError(f"feather must be 0 or more pixels, got {feather}")
        fit = Fit(fit) if fit is not None else default_fit(image.dtype)
        space = _resolve_colorspace(colorspace)
        grey = image.ndim == 2 or image.shape[2] == 1
        colour = image.reshape(image.shape[0], image.shape[1], -1)[..., : 1 if grey else 3]
        low, high = resolve_clip_levels(image.dtype, colour.shape[2], clip_levels)
        plan = self.plan(image.shape[0], image.shape[1])

        recovered = list(self._recover(colour, low, high, tolerance, feather, space, plan, progress))
        out = image.copy()
        out_colour = out.reshape(out.shape[0], out.shape[1], -1)[..., : colour.shape[2]]
        vmax = max([1.0] + [float(r.values.max()) for r in recovered if r.values.size])
        vmin = min([0.0] + [float(r.values.min()) for r in recovered if r.values.size])
        reshapes = fit is Fit.COMPRESS and (vmax > 1.0 or vmin < 0.0)
        by_tile = {r.tile: r for r in recovered}
        for tile in plan if reshapes else by_tile:
            rec = by_tile.get(tile)
            self._write_core(out_colour, colour, tile, rec, low, high, fit, vmin, vmax, reshapes)
        return out

    def _recover(
        self,
        colour: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        tolerance: float,
        feather: int,
        space: ColorSpace,
        plan: TilePlan,
        progress: bool,
    ) -> Iterator[_Recovered]:
        """Run the model on every tile whose core holds a clipped value (or, with ``feather``,
        has one within that many pixels); yield what changes in its core."""
        scale = 1.0 / (high - low)
        # float32 is exact enough where no colour conversion happens (sRGB); conversions need
        # float64 to round-trip exactly (see libdeclip.color).
        work: type[np.floating[Any]] = np.float32 if space.is_srgb else np.float64
        low_w, scale_w = low.astype(work), scale.astype(work)
        h, w = colour.shape[:2]

        def grown(tile: Tile) -> tuple[slice, slice]:
            """The core grown by the feather radius: clipped pixels there reach into the core."""
            return (
                slice(max(0, tile.y0 - feather), min(h, tile.y1 + feather)),
                slice(max(0, tile.x0 - feather), min(w, tile.x1 + feather)),
            )

        def masks(tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """Core masks of values clipped high and low, and the feather weights."""
            ys, xs = grown(tile)
            hi, lo = clip_masks(colour[ys, xs], low, high, tolerance)
            inner = (
                slice(tile.y0 - ys.start, tile.y1 - ys.start),
                slice(tile.x0 - xs.start, tile.x1 - xs.start),
            )
            weights = feather_weights((hi | lo).any(axis=2), feather)[inner] if feather else None
            return hi[inner].copy(), lo[inner].copy(), weights

        # Masks are recomputed when a tile runs rather than kept for every tile: memory follows
        # the tile, not the image.
        todo = [
            t for t in plan if not self.skip_unclipped or any_clipped(colour[grown(t)], low, high, tolerance)
        ]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="tiles", unit="tile", leave=False)
        engine = self.engine
        try:
            # Tiles of equal window shape run together (a batch on the GPU; one by one on the CPU).
            groups: dict[tuple[int, int], list[Tile]] = {}
            for tile in todo:
                groups.setdefault(tile.window_shape, []).append(tile)
            for items in groups.values():
                for start in range(0, len(items), engine.max_batch):
                    batch = items[start : start + engine.max_batch]
                    windows = []
                    for tile in batch:
                        win = (plan.window_of(colour, tile).astype(work) - low_w) * scale_w
                        if win.shape[2] == 1:
                            win = np.repeat(win, 3, axis=2)
                        windows.append(to_model(win, space))
                    model_in = np.stack([w.transpose(2, 0, 1) for w in windows]).astype(np.float32)
                    residual = engine.residual(model_in)
                    for tile, win, res in zip(batch, windows, residual, strict=True):
                        hi, lo, weights = masks(tile)
                        ys, xs = tile.core_in_window
                        changed = hi | lo
                        if weights is not None:  # blend into unclipped values near clipping
                            changed |= weights[..., None] > 0
                        # Only pixels with a changing value are reconstructed: each as a whole,
                        # since a colour conversion mixes its channels.
                        sel = changed.any(axis=2)
                        recon = from_model(win[ys, xs][sel] + res.transpose(1, 2, 0)[ys, xs][sel], space)
                        if hi.shape[2] == 1:
                            recon = recon.mean(axis=1, keepdims=True)
                        x = (colour[tile.core][sel].astype(work) - low_w) * scale_w
                        new = x.copy()
                        if weights is not None:
                            new += weights[sel][:, None] * (recon - x)
                        # The camera recorded "at least this bright" (or "at most this dark").
                        hi_s, lo_s = hi[sel], lo[sel]
                        new[hi_s] = np.maximum(recon[hi_s], x[hi_s])
                        new[lo_s] = np.minimum(recon[lo_s], x[lo_s])
                        yield _Recovered(
                            tile, np.packbits(changed), changed.shape, new[changed[sel]].astype(np.float32)
                        )
                    if bar is not None:
                        bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()

    @staticmethod
    def _write_core(
        out: np.ndarray,
        colour: np.ndarray,
        tile: Tile,
        rec: _Recovered | None,
        low: np.ndarray,
        high: np.ndarray,
        fit: Fit,
        vmin: float,
        vmax: float,
        reshapes: bool,
    ) -> None:
        src = colour[tile.core]

        def per_value(levels: np.ndarray, mask: np.ndarray) -> np.ndarray | float:
            """``levels`` (one per channel) for each selected value; a scalar when all agree."""
            if np.all(levels == levels[0]):
                return float(levels[0])
            return np.broadcast_to(levels, mask.shape)[mask]

        if reshapes:  # the fit curve also moves unclipped values beyond its knee and toe
            knee = low + DEFAULT_KNEE * (high - low)
            toe = low + DEFAULT_TOE * (high - low)
            changed = (src > knee) | (src < toe)
            if rec is not None:
                recovered = rec.changed
                changed |= recovered
            x = (src[changed].astype(np.float64) - per_value(low, changed)) / per_value(high - low, changed)
            if rec is not None:
                x[recovered[changed]] = rec.values
            fitted = apply_fit(x, fit, vmin, vmax)
            moved = fitted != x
            if rec is not None:
                moved |= recovered[changed]
            changed[changed] = moved
            fitted = fitted[moved]
        elif rec is not None:  # only the recovered values change
            changed = rec.changed
            fitted = apply_fit(rec.values.astype(np.float64), fit, vmin, vmax)
        else:
            return
        if fitted.size == 0:
            return
        values = fitted * per_value(high - low, changed) + per_value(low, changed)
        if out.dtype.kind in "ui":
            info = np.iinfo(out.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        core = out[tile.core]
        core[changed] = values.astype(out.dtype)
