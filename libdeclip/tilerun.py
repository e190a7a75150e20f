"""The network over one image's windows: gather, run, scatter, with the model kept busy.

:class:`TileRun` sends the windows around an image's clipped regions through the model in batches
and returns what changes in each core (:class:`~libdeclip.composite.Recovered`); a worker thread
gathers the next batch and scatters the previous one while the model runs. :class:`ModelTurns`
orders the runs of one session that share its model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeAlias

import numpy as np

from libdeclip import _native
from libdeclip.color import ColorSpace
from libdeclip.composite import Recovered
from libdeclip.engine import GpuOutOfMemoryError, OnnxEngine
from libdeclip.mask import mask_planes
from libdeclip.priors import ImagePriors
from libdeclip.tiling import Tile, TilePlan, cover, grow_windows, round_up

__all__ = ["CallbackProgress", "GPU_WINDOW_STEP", "MIN_TILE_GPU", "ModelTurns", "Progress", "TileRun",
           "gather_window"]

#: A GPU out of memory halves the batch, then the tile size down to this, then moves to the CPU.
MIN_TILE_GPU = 128
#: On a GPU, window sides are grown to multiples of this many pixels, so windows batch.
GPU_WINDOW_STEP = 128
#: ``True`` for a tqdm bar over the tiles, or a function called with (tiles done, tiles to run)
#: as they complete (a GUI's progress bar).
Progress: TypeAlias = bool | Callable[[int, int], None]


class CallbackProgress:
    """tqdm's update/close, reported to ``fn(done, total)``."""

    def __init__(self, fn: Callable[[int, int], None], total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0
        fn(0, total)

    def update(self, n: int) -> None:
        self.done += n
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


class ModelTurns:
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


def gather_window(colour: np.ndarray, low: list[float], high: list[float], space: Any, tile: Tile,
                  out: np.ndarray, threads: int = 0) -> None:
    """Write ``tile``'s window of ``colour`` (H x W x C, any dtype) into ``out`` (3 x h x w
    float32) as the model sees it: clip-normalised (``low``, ``high`` per channel), in model space
    (``space``: a :class:`~libdeclip.color.ColorSpace`'s ``native``), padded past the image's
    bottom and right edges as numpy's "symmetric" does (native; ``threads`` 0: all cores)."""
    _native.gather(colour, low, high, space, tile.wy0, tile.wy1, tile.wx0, tile.wx1, out, threads)


class TileRun:
    """One image's windows through the model: what changes in each core (:meth:`run`).

    ``windows`` are the cores (with their halos) the model runs on: around the values ``codes``
    marks clipped (:meth:`libdeclip.Declipper.windows`); they run in batches of one window shape
    (``regrow``: on a GPU, grown first to a few shapes that batch).

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
        self, engine: OnnxEngine, windows: list[Tile], colour: np.ndarray, low: np.ndarray, high: np.ndarray,
        tolerance: float, feather: int, space: ColorSpace, plan: TilePlan, codes: np.ndarray,
        consistency: bool, estimates: ImagePriors | None, threads: int, turns: ModelTurns,
        regrow: bool = True,
    ) -> None:
        self.engine, self.info, self.turns = engine, engine.info, turns
        self.colour, self.low, self.high, self.tolerance, self.feather = colour, low, high, tolerance, feather
        self.lo, self.hi, self.space = low.tolist(), high.tolist(), space.native
        self.plan, self.codes, self.consistency, self.estimates = plan, codes, consistency, estimates
        self.threads = threads
        self.todo = self._batchable(windows, regrow)
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

    def _batchable(self, todo: list[Tile], regrow: bool) -> list[Tile]:
        if self.engine.max_batch > 1 and regrow:
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
            gather_window(self.colour, self.lo, self.hi, self.space, t, model_in[i, :3], self.threads)
            if self.info.mask_input:
                mask_planes(self.codes, self.colour.shape[2], t, model_in[i, 3:6])
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
            return CallbackProgress(progress, len(self.todo))
        if progress:
            from tqdm import tqdm

            return tqdm(total=len(self.todo), desc="tiles", unit="tile", leave=False)
        return None

    def run(self, progress: Progress, ticket: int, copy: tuple[np.ndarray, np.ndarray] | None = None
            ) -> list[Recovered]:
        """Every batch through the model; what changes in each core.

        ``ticket``: this run's turn on the model (:class:`ModelTurns`), passed on once the last
        batch has run. ``copy``: (source, destination) arrays of one shape, copied on the worker
        thread in one band of rows per batch (work that would otherwise wait for the model's end).
        """
        turns, batches = self.turns, self.batches
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
