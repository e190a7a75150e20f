"""The declipping pipeline and :class:`Declipper`, the session that runs it repeatedly.

Data flow (ARCHITECTURE.md): clip mask in the input's own encoding -> clip-normalised, sRGB-encoded
model space -> tiles that hold clipped pixels, with a halo -> ONNX Runtime -> back to the input's
encoding -> composite (only clipped values change) -> fit policy -> the input's dtype.
Everything is done tile by tile, so memory follows the tile size, not the image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from libdeclip import _native
from libdeclip.color import ColorSpace, colorspace_from_icc, get_colorspace
from libdeclip.engine import GpuOutOfMemoryError, ModelInfo, OnnxEngine
from libdeclip.errors import UnsupportedInputError
from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE, POLICY_CODES, Fit, default_fit
from libdeclip.mask import (
    DEFAULT_TOLERANCE,
    SPECK_PIXELS,
    SUPPORTED_DTYPES,
    ClipLevels,
    clip_masks,
    codes_to_masks,
    resolve_clip_levels,
    without_specks,
)
from libdeclip.mask import (
    clip_codes as detect_codes,
)
from libdeclip.priors import ImagePriors, image_priors
from libdeclip.tiling import Tile, TilePlan, cover, grow_windows, plan_tiles, plan_windows, round_up

__all__ = ["Declipper", "SUPPORTED_DTYPES"]

DEFAULT_TILE_CPU = 512
DEFAULT_TILE_GPU = 1024
#: A GPU out of memory halves the batch, then the tile size down to this, then moves to the CPU.
MIN_TILE_GPU = 128
#: On a GPU, window sides are grown to multiples of this many pixels, so windows batch.
GPU_WINDOW_STEP = 128
MAX_FEATHER = 254  # the native core keeps distances in bytes
#: Float values farther than this many clip ranges from the low clip level are refused.
MAX_FLOAT_REACH = 1e6

ColorSpec: TypeAlias = "str | bytes | ColorSpace | None"


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
    ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))
    if not ok_shape:
        raise UnsupportedInputError(
            f"expected H x W (grey) or H x W x C with C = 1 or 2 (grey, grey + alpha), 3 (RGB) or "
            f"4 (RGBA), got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UnsupportedInputError(f"empty image of shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise UnsupportedInputError("image holds NaN or infinite values")
    return image


@dataclass
class Recovered:
    """The new clip-normalised values of one tile's changing values (row-major, channel-minor)."""

    tile: Tile
    values: np.ndarray  # float32
    vmin: float
    vmax: float
    #: the plan's tile this one is a part of, when a GPU out of memory split it (else None)
    part_of: Tile | None = None


def prepare(
    image: Any, clip_levels: ClipLevels | None, colorspace: ColorSpec, fit: Fit | str | None, feather: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Fit, ColorSpace]:
    """Check a call's image and arguments: (image, colour view, low, high, fit, colour space); the
    colour view is H x W x C (C = 1 for grey, else 3, alpha left out)."""
    image = _validate(image)
    if not 0 <= int(feather) <= MAX_FEATHER:
        raise UnsupportedInputError(f"feather must be 0 to {MAX_FEATHER} pixels, got {feather}")
    fit = Fit(fit) if fit is not None else default_fit(image.dtype)
    space = _resolve_colorspace(colorspace)
    grey = image.ndim == 2 or image.shape[2] <= 2  # grey, or grey + alpha
    colour = image.reshape(image.shape[0], image.shape[1], -1)[..., : 1 if grey else 3]
    low, high = resolve_clip_levels(image.dtype, colour.shape[2], clip_levels)
    if image.dtype.kind == "f":
        # float32 arithmetic on values this far beyond the clip range overflows to inf and NaN
        # (per-channel extremes, not a float64 copy of the image)
        top, bottom = colour.max(axis=(0, 1)).astype(np.float64), colour.min(axis=(0, 1)).astype(np.float64)
        reach = float(np.max(np.maximum(np.abs(top - low), np.abs(bottom - low)) / (high - low)))
        if reach > MAX_FLOAT_REACH:
            raise UnsupportedInputError(
                f"image values reach {reach:.3g} times the clip range ({low.min():g} to {high.max():g}); "
                f"more than {MAX_FLOAT_REACH:g} is no photo's (check the clip_levels or the data)"
            )
    return image, colour, low, high, fit, space


def composite(
    image: np.ndarray, colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float, feather: int,
    fit: Fit, tiles: Iterable[Tile], recovered: list[Recovered], codes: np.ndarray | None, threads: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The output: a copy of ``image`` with each tile's recovered values written in through the
    fit policy (in the image's dtype). ``tiles`` covers the image. ``out``: that copy, when the
    caller has made it (the run does while the model works)."""
    out = image.copy() if out is None else out
    out_colour = out.reshape(out.shape[0], out.shape[1], -1)[..., : colour.shape[2]]
    vmax = max([1.0] + [r.vmax for r in recovered if r.values.size])
    vmin = min([0.0] + [r.vmin for r in recovered if r.values.size])
    reshapes = fit is Fit.COMPRESS and (vmax > 1.0 or vmin < 0.0)
    done = {r.tile for r in recovered} | {r.part_of for r in recovered if r.part_of is not None}
    # The fit curve also moves unclipped values beyond its knee and toe: then every tile. The
    # recovered cores need not be tiles of ``tiles`` (the model's windows follow the clipped
    # regions), so those tiles go first and the recovered cores are written over them.
    rest = [t for t in tiles if t not in done] if reshapes else []
    table = _native.ReshapeTable()  # an integer image's fitted codes, built once for all tiles
    for tile, rec in [(t, None) for t in rest] + [(r.tile, r) for r in recovered]:
        _native.write_core(
            out_colour, colour, low.tolist(), high.tolist(), tolerance, feather,
            tile.y0, tile.y1, tile.x0, tile.x1, None if rec is None else rec.values,
            POLICY_CODES[fit], vmin, vmax, DEFAULT_KNEE, DEFAULT_TOE, reshapes, threads, codes, table,
        )
    return out


#: ``True`` for a tqdm bar over the tiles, or a function called with (tiles done, tiles to run)
#: as they complete (a GUI's progress bar).
Progress: TypeAlias = bool | Callable[[int, int], None]


class _CallbackProgress:
    """tqdm's update/close, reported to ``fn(done, total)``."""

    def __init__(self, fn: Callable[[int, int], None], total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0
        fn(0, total)

    def update(self, n: int) -> None:
        self.done += n
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


def clip_codes(mask: np.ndarray | tuple[np.ndarray, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A caller's clip mask as the native core's H x W codes: bit c for channel c clipped high,
    bit 3 + c clipped low. ``mask`` is H x W x C (clipped high) or a (high, low) pair."""
    high, low = mask if isinstance(mask, tuple) else (mask, None)
    codes = np.zeros(shape[:2], dtype=np.uint8)
    for bits, m in ((0, high), (3, low)):
        if m is None:
            continue
        m = np.asarray(m, dtype=bool)
        m = m.reshape(m.shape[0], m.shape[1], -1) if m.ndim >= 2 else m
        if m.shape[:2] != shape[:2] or m.shape[2] != shape[2]:
            raise UnsupportedInputError(
                f"mask of shape {m.shape} does not match the image ({shape[0]} x {shape[1]}, "
                f"{shape[2]} channels)"
            )
        for c in range(shape[2]):
            codes |= m[..., c].astype(np.uint8) << (bits + c)
    return codes


def mask_planes(
    colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float, codes: np.ndarray | None,
    tile: Tile, out: np.ndarray,
) -> None:
    """Write a mask-input model's clip channels of ``tile``'s window into ``out`` (3 x h x w):
    +1 where a channel is clipped high, -1 low, 0 elsewhere. The mask is the one the run uses (the
    caller's ``codes`` or the detection at ``tolerance``), padded past the bottom/right edge the way
    the native gather pads the pixels (numpy's "symmetric")."""
    h, w = colour.shape[:2]
    ys, xs = slice(tile.wy0, min(tile.wy1, h)), slice(tile.wx0, min(tile.wx1, w))
    if codes is None:
        high_m, low_m = clip_masks(colour[ys, xs], low, high, tolerance)
    else:
        high_m, low_m = codes_to_masks(codes[ys, xs], colour.shape[2])  # grey: 1 channel
    planes = high_m.astype(np.float32) - low_m.astype(np.float32)
    pad = ((0, tile.wy1 - tile.wy0 - planes.shape[0]), (0, tile.wx1 - tile.wx0 - planes.shape[1]), (0, 0))
    if pad[0][1] or pad[1][1]:
        planes = np.pad(planes, pad, mode="symmetric")
    out[...] = planes.transpose(2, 0, 1)  # a grey image's one plane goes to all three


def feather_weights(clipped_pixels: np.ndarray, radius: int) -> np.ndarray:
    """1 - d / (radius + 1) for pixels at chessboard distance 1 <= d <= radius from a clipped
    pixel, 0 elsewhere (clipped pixels themselves included); float32, H x W (the pipeline blends
    with these same float32 weights, in float64 arithmetic)."""
    return _native.feather_weights(np.asarray(clipped_pixels, dtype=bool), int(radius))


class _ModelTurns:
    """Runs of one session take the model in the order they started.

    A run that starts while another is still running the model prepares its image and gathers its
    first tile, then waits until the earlier run is done with the model (not with its composite).
    So runs from several threads keep the model busy without interleaving their tiles: each ends as
    soon as it would alone, and the next one's start and the previous one's end hide behind the
    model.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._issued = 0  # tickets handed out
        self._serving = 0  # the ticket whose run may use the model
        self._finished: set[int] = set()  # tickets done with the model before their turn came
        self._local = threading.local()  # the ticket this thread is being served, if any

    def ticket(self) -> int:
        with self._changed:
            self._issued += 1
            return self._issued - 1

    def wait(self, ticket: int) -> None:
        """Block until ``ticket``'s turn: every earlier run is done with the model. A run started
        from inside another one's turn (a progress callback's) goes at once: waiting would deadlock."""
        if getattr(self._local, "ticket", None) is not None:
            return
        with self._changed:
            self._changed.wait_for(lambda: self._serving == ticket)
        self._local.ticket = ticket

    def done(self, ticket: int) -> None:
        """``ticket``'s run needs the model no more (also when it never ran it, or failed);
        calling it again is harmless."""
        if getattr(self._local, "ticket", None) == ticket:
            self._local.ticket = None
        with self._changed:
            if ticket < self._serving:
                return
            self._finished.add(ticket)
            while self._serving in self._finished:
                self._finished.discard(self._serving)
                self._serving += 1
            self._changed.notify_all()


class Declipper:
    """A declipping session: loads the model once, then :meth:`run` repairs images.

    Args:
        model: ONNX model following the libdeclip contract, as a path or the name of a shipped
            model (``"declipnet-v2"``, ``"declipnet-v2-int8"``, ``"declipnet-v1"``, ...). Default:
            automatic, DeclipNet v2 in the device's precision: int8 when the session runs on the
            CPU (also when a GPU was asked for and did not start), float16 on CUDA/TensorRT. A GPU
            that fails during a run hands the same file to the CPU, so one image never mixes two
            models.
        device: ``"auto"`` (TensorRT, then CUDA, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        tile_size: core size of a tile in pixels (default 512 on CPU, 1024 on GPU).
        threads: CPU threads for ONNX Runtime and the native pixel loops (default: all cores);
            see "Resources" in the README for what bounds a run's threads and memory.
        skip_unclipped: run the model only on windows around the clipped regions (cores of at
            most ``tile_size`` covering them, each with the full halo, so the plan does not change
            the output); off, every tile of the image runs: only to measure what skipping saves.
        speck_pixels: clipped components of at most this many pixels keep their recorded values
            instead of getting a window of their own (:data:`libdeclip.mask.SPECK_PIXELS`); 0
            sends every clipped pixel to the network, as does a run with ``feather``.

    ``run`` may be called from several threads at once: the runs take the model in the order they
    started, each preparing its image while the one before it still runs the model and finishing
    (the composite) while the next one does, so a stream of images keeps the model busy. Use as a
    context manager or call :meth:`close` to free the session.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        tile_size: int | None = None,
        threads: int | None = None,
        skip_unclipped: bool = True,
        speck_pixels: int = SPECK_PIXELS,
    ) -> None:
        self._engine: OnnxEngine | None = OnnxEngine(model, device=device, threads=threads)
        self._threads = int(threads) if threads else 0  # 0: the native core's default, all cores
        self._turns = _ModelTurns()
        self.skip_unclipped = skip_unclipped
        self.speck_pixels = int(speck_pixels)
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

    def _codes(self, colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float,
               mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None, feather: int) -> np.ndarray:
        """The run's clip codes: the caller's mask or the detected one, less the specks (which keep
        their recorded values). With ``feather`` every clipped value goes to the network: a speck
        left as recorded would be feathered into like an unclipped value."""
        if mask is not None:
            codes = clip_codes(mask, colour.shape)
        else:
            codes = detect_codes(colour, low, high, tolerance, self._threads)
        return without_specks(codes, self.speck_pixels if feather == 0 else 0)[0]

    def _windows(self, plan: TilePlan, codes: np.ndarray, feather: int) -> list[Tile]:
        """The cores the model runs on: windows around the clipped regions (every tile of the plan
        with ``skip_unclipped`` off)."""
        if not self.skip_unclipped:
            return list(plan)
        info = self.model_info
        return plan_windows(codes != 0, plan.tile_size, info.receptive_field_radius, info.spatial_multiple,
                            reach=feather)

    def windows(
        self,
        image: np.ndarray,
        *,
        clip_levels: ClipLevels | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        feather: int = 0,
        mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Tile]:
        """The tiles (cores and windows) that :meth:`run` would send to the model for ``image``
        with these arguments: windows sized to the clipped regions, specks left out."""
        image, colour, low, high, _, _ = prepare(image, clip_levels, None, None, feather)
        codes = self._codes(colour, low, high, tolerance, mask, int(feather))
        return self._windows(self.plan(image.shape[0], image.shape[1]), codes, int(feather))

    def run(
        self,
        image: np.ndarray,
        *,
        clip_levels: ClipLevels | None = None,
        colorspace: ColorSpec = None,
        fit: Fit | str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        feather: int = 0,
        progress: Progress = False,
        mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
        consistency: bool = True,
    ) -> np.ndarray:
        """Repair the clipped pixels of ``image`` with the model; see :func:`libdeclip.declip` for the
        arguments."""
        ticket = self._turns.ticket()  # this run's place in the queue for the model
        try:
            feather = int(feather)
            image, colour, low, high, fit, space = prepare(image, clip_levels, colorspace, fit, feather)
            plan = self.plan(image.shape[0], image.shape[1])
            codes = self._codes(colour, low, high, tolerance, mask, feather)
            # A prior-input model's estimates and context: once per image, before any tile.
            estimates = (image_priors(colour, low, high, space, codes)
                         if self.model_info.prior_input and codes.any() else None)

            # The output starts as a copy of the input, made band by band while the model runs.
            out = np.empty_like(image)
            recovered = self._recover(
                colour, low, high, tolerance, feather, space, plan, progress, codes, consistency, ticket,
                copy=(image, out), estimates=estimates,
            )
        finally:
            self._turns.done(ticket)
        return composite(
            image, colour, low, high, tolerance, feather, fit, plan, recovered, codes, self._threads, out
        )

    def _recover(
        self,
        colour: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        tolerance: float,
        feather: int,
        space: ColorSpace,
        plan: TilePlan,
        progress: Progress,
        codes: np.ndarray,
        consistency: bool = True,
        ticket: int = 0,
        copy: tuple[np.ndarray, np.ndarray] | None = None,
        estimates: ImagePriors | None = None,
    ) -> list[Recovered]:
        """Run the model on the windows around the values ``codes`` marks clipped (:meth:`_windows`;
        with ``feather``, also around those within that many pixels); return what changes in each
        core.

        A small pipeline hides the pixel work behind the model: while the engine runs one batch,
        a worker thread gathers the next and scatters the previous (the native core and ONNX
        Runtime both release the GIL).

        A GPU out of memory loses no tile and changes no result beyond float rounding: the batch
        runs again in halves, down to one tile; then that tile in parts of half its size (each
        with its own halo, as tiling is invisible), down to :data:`MIN_TILE_GPU`; then the engine
        moves to the CPU with a :class:`~libdeclip.DeviceFallbackWarning`. The smaller batch and
        tile sizes hold for the rest of the run.

        ``ticket``: this run's turn on the model (:class:`_ModelTurns`), passed on once the last
        batch has run. ``copy``: (source, destination) arrays of one shape, copied on the worker
        thread in one band of rows per batch (work that would otherwise wait for the model's end).
        """
        h, w = colour.shape[:2]
        lo, hi, native_space = low.tolist(), high.tolist(), space.native
        todo = self._windows(plan, codes, feather)
        engine = self.engine
        if engine.max_batch > 1 and self.skip_unclipped:
            # On a GPU, windows sized to the regions would each have a shape of their own and run
            # one by one: they grow (more context, same output) to a few shapes that batch.
            multiple = self.model_info.spatial_multiple
            todo = grow_windows(todo, round_up(GPU_WINDOW_STEP, multiple), round_up(h, multiple),
                                round_up(w, multiple))
        # Tiles of equal window shape run together (a batch on the GPU; one by one on the CPU).
        groups: dict[tuple[int, int], list[Tile]] = {}
        for tile in todo:
            groups.setdefault(tile.window_shape, []).append(tile)
        size = engine.max_batch
        batches = [items[i : i + size] for items in groups.values() for i in range(0, len(items), size)]

        mask_input = self.model_info.mask_input
        channels = len(self.model_info.input_channels)
        if self.model_info.prior_input and estimates is None and todo:
            raise ValueError("a prior-input model needs the image's estimates")

        def gather(batch: list[Tile]) -> np.ndarray:
            wh, ww = batch[0].window_shape
            model_in = np.empty((len(batch), channels, wh, ww), dtype=np.float32)
            for i, t in enumerate(batch):
                _native.gather(
                    colour, lo, hi, native_space, t.wy0, t.wy1, t.wx0, t.wx1, model_in[i, :3], self._threads
                )
                if mask_input:
                    mask_planes(colour, low, high, tolerance, codes, t, model_in[i, 3:6])
                if estimates is not None:
                    estimates.fill(t, model_in[i, :3], model_in[i, 6:])
            return model_in

        def run_model(model_in: np.ndarray) -> np.ndarray:
            if estimates is None:
                return engine.residual(model_in)
            return engine.residual(model_in, np.repeat(estimates.context[None], len(model_in), axis=0))

        def scatter(results: list[tuple[list[Tile], np.ndarray]]) -> list[Recovered]:
            out = []
            for batch, residual in results:
                for t, res in zip(batch, residual, strict=True):
                    values, vmin, vmax = _native.recover(
                        colour, lo, hi, tolerance, feather, native_space,
                        t.y0, t.y1, t.x0, t.x1, t.wy0, t.wx0, res, self._threads, codes, consistency,
                    )
                    out.append(Recovered(t, values, vmin, vmax, part_of.get(t)))
            return out

        # After a GPU out of memory: at most this many tiles at once, and cores of at most this size.
        limits = {"batch": size, "tile": max(plan.tile_size, MIN_TILE_GPU)}
        part_of: dict[Tile, Tile] = {}  # a split tile's parts -> the plan's tile
        multiple = self.model_info.spatial_multiple

        def infer(batch: list[Tile], model_in: np.ndarray) -> list[tuple[list[Tile], np.ndarray]]:
            """(tiles, residual) pairs that cover ``batch``; see the GPU out of memory above."""
            most = min(limits["batch"], engine.max_batch)
            if len(batch) > most:
                return [r for i in range(0, len(batch), most) for r in infer(batch[i : i + most],
                                                                             model_in[i : i + most])]
            tile = batch[0]
            extent = max(tile.y1 - tile.y0, tile.x1 - tile.x0)
            if len(batch) == 1 and extent > limits["tile"] and engine.device != "cpu":
                return split(tile)
            try:
                return [(batch, run_model(model_in))]
            except GpuOutOfMemoryError as exc:
                if len(batch) > 1:
                    limits["batch"] = (len(batch) + 1) // 2
                    return infer(batch, model_in)
                if extent > MIN_TILE_GPU:
                    limits["tile"] = max(MIN_TILE_GPU, round_up(extent // 2, multiple))
                    return split(tile)
                engine.fall_back_to_cpu(f"out of GPU memory even for one tile of {extent} px ({exc})")
                return [(batch, run_model(model_in))]

        def split(tile: Tile) -> list[tuple[list[Tile], np.ndarray]]:
            parts = cover(tile.y0, tile.y1, tile.x0, tile.x1, limits["tile"], plan.halo, multiple, h, w)
            for p in parts:
                part_of[p] = part_of.get(tile, tile)
            return [r for p in parts for r in infer([p], gather([p]))]

        def copy_band(k: int) -> None:
            """Copy band k of ``copy``'s rows: one band per batch, the last one down to the bottom."""
            if copy is None:
                return
            rows = copy[0].shape[0]
            bands = max(1, len(batches))
            a, b = rows * k // bands, rows if k + 1 >= bands else rows * (k + 1) // bands
            np.copyto(copy[1][a:b], copy[0][a:b])

        bar: Any = None
        if callable(progress):
            bar = _CallbackProgress(progress, len(todo))
        elif progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="tiles", unit="tile", leave=False)
        recovered: list[Recovered] = []
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="libdeclip-tiles") as worker:
                next_in: Future[np.ndarray] | None = worker.submit(gather, batches[0]) if batches else None
                pending: Future[list[Recovered]] | None = None
                copies: list[Future[None]] = []
                if batches:
                    self._turns.wait(ticket)
                for k, batch in enumerate(batches):
                    assert next_in is not None
                    model_in = next_in.result()
                    next_in = worker.submit(gather, batches[k + 1]) if k + 1 < len(batches) else None
                    copies.append(worker.submit(copy_band, k))
                    results = infer(batch, model_in)
                    if k + 1 == len(batches):
                        self._turns.done(ticket)  # the next run's tiles go while this one scatters
                    if pending is not None:
                        recovered += pending.result()
                    pending = worker.submit(scatter, results)
                    if bar is not None and k > 0:
                        bar.update(len(batches[k - 1]))
                if not batches:
                    copy_band(0)
                for band in copies:
                    band.result()
                if pending is not None:
                    recovered += pending.result()
                    if bar is not None:
                        bar.update(len(batches[-1]))
        finally:
            self._turns.done(ticket)
            if bar is not None:
                bar.close()
        return recovered
