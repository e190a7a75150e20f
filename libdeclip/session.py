"""The declipping pipeline and :class:`Declipper`, the session that runs it repeatedly.

Data flow (ARCHITECTURE.md): clip mask in the input's own encoding -> clip-normalised, sRGB-encoded
model space -> tiles that hold clipped pixels, with a halo -> ONNX Runtime -> back to the input's
encoding -> composite (only clipped values change) -> fit policy -> the input's dtype.
Everything is done tile by tile, so memory follows the tile size, not the image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from libdeclip import _native
from libdeclip.color import ColorSpace
from libdeclip.composite import Recovered, composite
from libdeclip.engine import GpuOutOfMemoryError, ModelInfo, OnnxEngine
from libdeclip.fit import Fit
from libdeclip.inputs import ClipLevels, ColorSpec, prepare
from libdeclip.mask import DEFAULT_TOLERANCE, SPECK_PIXELS, mask_codes, mask_planes, without_specks
from libdeclip.mask import clip_codes as detect_codes
from libdeclip.priors import ImagePriors, image_priors
from libdeclip.tiling import Tile, TilePlan, cover, grow_windows, plan_tiles, plan_windows, round_up

__all__ = ["Declipper", "Progress"]

DEFAULT_TILE_CPU = 512
DEFAULT_TILE_GPU = 1024
#: A GPU out of memory halves the batch, then the tile size down to this, then moves to the CPU.
MIN_TILE_GPU = 128
#: On a GPU, window sides are grown to multiples of this many pixels, so windows batch.
GPU_WINDOW_STEP = 128
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
            codes = mask_codes(mask, colour.shape)
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
            tiles = _TileRun(self, colour, low, high, tolerance, feather, space, plan, codes, consistency,
                             estimates)
            recovered = tiles.run(progress, ticket, copy=(image, out))
        finally:
            self._turns.done(ticket)
        return composite(
            image, colour, low, high, tolerance, feather, fit, plan, recovered, codes, self._threads, out
        )


class _TileRun:
    """One image's windows through the model: what changes in each core (:meth:`run`).

    The windows are those around the values ``codes`` marks clipped (:meth:`Declipper._windows`;
    with ``feather``, also around those within that many pixels), in batches of one window shape.

    A small pipeline hides the pixel work behind the model: while the engine runs one batch, a
    worker thread gathers the next and scatters the previous (the native core and ONNX Runtime
    both release the GIL).

    A GPU out of memory loses no tile and changes no result beyond float rounding: the batch runs
    again in halves, down to one tile; then that tile in parts of half its size (each with its own
    halo, as tiling is invisible), down to :data:`MIN_TILE_GPU`; then the engine moves to the CPU
    with a :class:`~libdeclip.DeviceFallbackWarning`. The smaller batch and tile sizes hold for the
    rest of the run.
    """

    def __init__(
        self, session: Declipper, colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float,
        feather: int, space: ColorSpace, plan: TilePlan, codes: np.ndarray, consistency: bool,
        estimates: ImagePriors | None,
    ) -> None:
        self.session, self.engine, self.info = session, session.engine, session.model_info
        self.colour, self.low, self.high, self.tolerance, self.feather = colour, low, high, tolerance, feather
        self.lo, self.hi, self.space = low.tolist(), high.tolist(), space.native
        self.plan, self.codes, self.consistency, self.estimates = plan, codes, consistency, estimates
        self.threads = session._threads
        self.todo = self._windows()
        if self.info.prior_input and estimates is None and self.todo:
            raise ValueError("a prior-input model needs the image's estimates")
        # Tiles of equal window shape run together (a batch on the GPU; one by one on the CPU).
        groups: dict[tuple[int, int], list[Tile]] = {}
        for tile in self.todo:
            groups.setdefault(tile.window_shape, []).append(tile)
        size = self.engine.max_batch
        self.batches = [items[i : i + size] for items in groups.values() for i in range(0, len(items), size)]
        # After a GPU out of memory: at most this many tiles at once, and cores of at most this size.
        self.most_tiles = size
        self.largest_core = max(plan.tile_size, MIN_TILE_GPU)
        self.part_of: dict[Tile, Tile] = {}  # a split tile's parts -> the plan's tile

    def _windows(self) -> list[Tile]:
        todo = self.session._windows(self.plan, self.codes, self.feather)
        if self.engine.max_batch > 1 and self.session.skip_unclipped:
            # On a GPU, windows sized to the regions would each have a shape of their own and run
            # one by one: they grow (more context, same output) to a few shapes that batch.
            h, w = self.colour.shape[:2]
            multiple = self.info.spatial_multiple
            todo = grow_windows(todo, round_up(GPU_WINDOW_STEP, multiple), round_up(h, multiple),
                                round_up(w, multiple))
        return todo

    def gather(self, batch: list[Tile]) -> np.ndarray:
        """The model's input for ``batch``: picture, clip planes, estimates (as the model takes them)."""
        wh, ww = batch[0].window_shape
        model_in = np.empty((len(batch), len(self.info.input_channels), wh, ww), dtype=np.float32)
        for i, t in enumerate(batch):
            _native.gather(self.colour, self.lo, self.hi, self.space, t.wy0, t.wy1, t.wx0, t.wx1,
                           model_in[i, :3], self.threads)
            if self.info.mask_input:
                mask_planes(self.colour, self.low, self.high, self.tolerance, self.codes, t, model_in[i, 3:6])
            if self.estimates is not None:
                self.estimates.fill(t, model_in[i, :3], model_in[i, 6:])
        return model_in

    def run_model(self, model_in: np.ndarray) -> np.ndarray:
        if self.estimates is None:
            return self.engine.residual(model_in)
        context = np.repeat(self.estimates.context[None], len(model_in), axis=0)
        return self.engine.residual(model_in, context)

    def scatter(self, results: list[tuple[list[Tile], np.ndarray]]) -> list[Recovered]:
        """Each core's changing values from its window's residual (native)."""
        out = []
        for batch, residual in results:
            for t, res in zip(batch, residual, strict=True):
                values, vmin, vmax = _native.recover(
                    self.colour, self.lo, self.hi, self.tolerance, self.feather, self.space,
                    t.y0, t.y1, t.x0, t.x1, t.wy0, t.wx0, res, self.threads, self.codes, self.consistency,
                )
                out.append(Recovered(t, values, vmin, vmax, self.part_of.get(t)))
        return out

    def infer(self, batch: list[Tile], model_in: np.ndarray) -> list[tuple[list[Tile], np.ndarray]]:
        """(tiles, residual) pairs that cover ``batch``; see the GPU out of memory above."""
        most = min(self.most_tiles, self.engine.max_batch)
        if len(batch) > most:
            return [r for i in range(0, len(batch), most)
                    for r in self.infer(batch[i : i + most], model_in[i : i + most])]
        tile = batch[0]
        extent = max(tile.y1 - tile.y0, tile.x1 - tile.x0)
        if len(batch) == 1 and extent > self.largest_core and self.engine.device != "cpu":
            return self.split(tile)
        try:
            return [(batch, self.run_model(model_in))]
        except GpuOutOfMemoryError as exc:
            if len(batch) > 1:
                self.most_tiles = (len(batch) + 1) // 2
                return self.infer(batch, model_in)
            if extent > MIN_TILE_GPU:
                self.largest_core = max(MIN_TILE_GPU, round_up(extent // 2, self.info.spatial_multiple))
                return self.split(tile)
            self.engine.fall_back_to_cpu(f"out of GPU memory even for one tile of {extent} px ({exc})")
            return [(batch, self.run_model(model_in))]

    def split(self, tile: Tile) -> list[tuple[list[Tile], np.ndarray]]:
        h, w = self.colour.shape[:2]
        parts = cover(tile.y0, tile.y1, tile.x0, tile.x1, self.largest_core, self.plan.halo,
                      self.info.spatial_multiple, h, w)
        for p in parts:
            self.part_of[p] = self.part_of.get(tile, tile)
        return [r for p in parts for r in self.infer([p], self.gather([p]))]

    def copy_band(self, k: int, copy: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Copy band k of ``copy``'s rows: one band per batch, the last one down to the bottom."""
        if copy is None:
            return
        rows = copy[0].shape[0]
        bands = max(1, len(self.batches))
        a, b = rows * k // bands, rows if k + 1 >= bands else rows * (k + 1) // bands
        np.copyto(copy[1][a:b], copy[0][a:b])

    def _progress(self, progress: Progress) -> Any:
        if callable(progress):
            return _CallbackProgress(progress, len(self.todo))
        if progress:
            from tqdm import tqdm

            return tqdm(total=len(self.todo), desc="tiles", unit="tile", leave=False)
        return None

    def run(self, progress: Progress, ticket: int, copy: tuple[np.ndarray, np.ndarray] | None = None
            ) -> list[Recovered]:
        """Every batch through the model; what changes in each core.

        ``ticket``: this run's turn on the model (:class:`_ModelTurns`), passed on once the last
        batch has run. ``copy``: (source, destination) arrays of one shape, copied on the worker
        thread in one band of rows per batch (work that would otherwise wait for the model's end).
        """
        turns, batches = self.session._turns, self.batches
        bar = self._progress(progress)
        recovered: list[Recovered] = []
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="libdeclip-tiles") as worker:
                next_in: Future[np.ndarray] | None = (worker.submit(self.gather, batches[0]) if batches
                                                      else None)
                pending: Future[list[Recovered]] | None = None
                copies: list[Future[None]] = []
                if batches:
                    turns.wait(ticket)
                for k, batch in enumerate(batches):
                    assert next_in is not None
                    model_in = next_in.result()
                    next_in = worker.submit(self.gather, batches[k + 1]) if k + 1 < len(batches) else None
                    copies.append(worker.submit(self.copy_band, k, copy))
                    results = self.infer(batch, model_in)
                    if k + 1 == len(batches):
                        turns.done(ticket)  # the next run's tiles go while this one scatters
                    if pending is not None:
                        recovered += pending.result()
                    pending = worker.submit(self.scatter, results)
                    if bar is not None and k > 0:
                        bar.update(len(batches[k - 1]))
                if not batches:
                    self.copy_band(0, copy)
                for band in copies:
                    band.result()
                if pending is not None:
                    recovered += pending.result()
                    if bar is not None:
                        bar.update(len(batches[-1]))
        finally:
            turns.done(ticket)
            if bar is not None:
                bar.close()
        return recovered
