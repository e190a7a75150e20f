""":class:`Declipper`, the session that repairs pictures with one loaded model, run after run.

One run (docs/ARCHITECTURE.md): the inputs checked (:mod:`libdeclip.inputs`) -> the clip codes in
the input's own encoding, less the specks (:mod:`libdeclip.mask`) -> windows around the clipped
regions, with their halo (:mod:`libdeclip.tiling`) -> the model over them in model space
(:mod:`libdeclip.tilerun`) -> the composite through the fit policy (:mod:`libdeclip.composite`).
A classical method goes to :mod:`libdeclip.classic`, a camera RAW to :mod:`libdeclip.photosites`.
Everything is done window by window, so memory follows the window size, not the image.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.classic import declip_classic
from libdeclip.composite import composite, output_top
from libdeclip.engine import ModelInfo, OnnxEngine, resolve_model
from libdeclip.errors import UnsupportedInputError
from libdeclip.inputs import prepare
from libdeclip.io import Image
from libdeclip.mask import SPECK_PIXELS, run_codes, without_specks
from libdeclip.options import COMBINED, Device, RepairOptions, needs_model, options_from, parse_device
from libdeclip.photosites import repair_raw
from libdeclip.priors import image_priors
from libdeclip.tilerun import ModelTurns, Progress, TileRun
from libdeclip.tiling import Tile, TilePlan, plan_tiles, plan_windows

__all__ = ["Declipper"]

DEFAULT_TILE_CPU = 512
DEFAULT_TILE_GPU = 1024
class Declipper:
    """A declipping session: loads the model once, then :meth:`run` repairs arrays and
    :meth:`repair` pictures read from files (RGB or camera RAW), with any method.

    Args:
        model: ONNX model following the libdeclip contract, as a path or the name of a shipped
            model (``"declipnet-v2"``, ``"declipnet-v2-int8"``, ``"declipnet-v1"``, ...). Default:
            automatic, DeclipNet v2 in the device's precision: int8 when the session runs on the
            CPU (also when a GPU was asked for and did not start), float16 on CUDA/TensorRT. A GPU
            that fails during a run hands the same file to the CPU, so one image never mixes two
            models.
        device: a :class:`~libdeclip.Device` or its string: ``"auto"`` (TensorRT, then CUDA, then
            CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        tile_size: core size of a tile in pixels (default 512 on CPU, 1024 on GPU).
        threads: CPU threads for ONNX Runtime and the native pixel loops (default: all cores);
            see "Resources" in the README for what bounds a run's threads and memory.
        skip_unclipped: run the model only on windows around the clipped regions (cores of at
            most ``tile_size`` covering them, each with the full halo, so the plan does not change
            the output); off, every tile of the image runs: only to measure what skipping saves.
        speck_pixels: clipped components of at most this many pixels keep their recorded values
            instead of getting a window of their own (:data:`libdeclip.mask.SPECK_PIXELS`); 0
            sends every clipped pixel to the network, as does a run with ``feather``.
        load: load the model now (a bad model file fails here); ``False`` defers it to the first
            use of the network, so a session that only runs classical methods never loads it.

    ``run`` may be called from several threads at once: the runs take the model in the order they
    started, each preparing its image while the one before it still runs the model and finishing
    (the composite) while the next one does, so a stream of images keeps the model busy. Use as a
    context manager or call :meth:`close` to free the session.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: Device | str = "auto",
        tile_size: int | None = None,
        threads: int | None = None,
        skip_unclipped: bool = True,
        speck_pixels: int = SPECK_PIXELS,
        load: bool = True,
    ) -> None:
        if model is not None:
            resolve_model(model)  # a name or file that is not there: refused now, not at the first run
        parse_device(str(device))
        self._model, self._device_asked = model, str(device)
        self._engine: OnnxEngine | None = None
        self._closed = False
        self._loading = threading.Lock()
        self._threads = int(threads) if threads else 0  # 0: the native core's default, all cores
        self._engine_threads = threads
        self._turns = ModelTurns()
        self.skip_unclipped = skip_unclipped
        self.speck_pixels = int(speck_pixels)
        if tile_size is not None and int(tile_size) < 16:
            raise ValueError(f"tile_size must be at least 16 pixels, got {tile_size}")
        self._tile_size = int(tile_size) if tile_size else None
        if load:
            self.load()

    @classmethod
    def from_options(cls, options: RepairOptions, **kwargs: Any) -> Declipper:
        """A session for ``options``' model and device (``kwargs``: the other arguments); it loads
        the model at once only where the options' method needs it."""
        kwargs.setdefault("load", needs_model(options.method))
        return cls(options.model, device=options.device, **kwargs)

    # -- session ---------------------------------------------------------------------------------
    @property
    def engine(self) -> OnnxEngine:
        """The model loaded on its device: at the first use of the network (a session that only
        runs classical methods never loads it)."""
        with self._loading:
            if self._closed:
                raise RuntimeError("this Declipper is closed")
            if self._engine is None:
                self._engine = OnnxEngine(self._model, device=self._device_asked,
                                          threads=self._engine_threads)
            return self._engine

    def load(self) -> Declipper:
        """Load the model now (where a bad model file should fail before any picture is read)."""
        _ = self.engine
        return self

    @property
    def tile_size(self) -> int:
        """Core size of the network's tiles: the one asked for, else 512 on the CPU, 1024 on a GPU."""
        if self._tile_size is None:
            self._tile_size = DEFAULT_TILE_CPU if self.engine.device == "cpu" else DEFAULT_TILE_GPU
        return self._tile_size

    @property
    def model_info(self) -> ModelInfo:
        """The model's contract (name, version, receptive field, training data and steps...)."""
        return self.engine.info

    @property
    def device(self) -> str:
        """Where the model runs: ``"cpu"`` or ``"cuda:N"``."""
        return self.engine.device

    def close(self) -> None:
        with self._loading:
            self._closed, self._engine = True, None

    def __enter__(self) -> Declipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipeline --------------------------------------------------------------------------------
    def plan(self, height: int, width: int) -> TilePlan:
        info = self.model_info
        return plan_tiles(height, width, self.tile_size, info.receptive_field_radius, info.spatial_multiple)

    def _codes(self, colour: np.ndarray, low: np.ndarray, high: np.ndarray, opts: RepairOptions,
               mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The run's levels and clip codes (:func:`libdeclip.mask.run_codes`: the caller's mask,
        else the detection, at levels found in the values for a float picture above 1.0), less the
        specks (which keep their recorded values). With ``feather`` every clipped value goes to the
        network: a speck left as recorded would be feathered into like an unclipped value."""
        low, high, codes = run_codes(colour, low, high, opts.tolerance, mask, self._threads,
                                     opts.clip_levels is not None)
        return low, high, without_specks(codes, self.speck_pixels if opts.feather == 0 else 0)[0]

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
        options: RepairOptions | None = None,
        *,
        mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
        **fields: Any,
    ) -> list[Tile]:
        """The tiles (cores and windows) that :meth:`run` would send to the model for ``image``
        with these options: windows sized to the clipped regions, specks left out."""
        opts = options_from(options, fields)
        image, colour, low, high, _, _ = prepare(image, opts.clip_levels, None, None, opts.feather)
        _, _, codes = self._codes(colour, low, high, opts, mask)
        return self._windows(self.plan(image.shape[0], image.shape[1]), codes, opts.feather)

    def _check_model(self, options: RepairOptions) -> None:
        if options.model is None or not needs_model(options.method):
            return
        asked = resolve_model(options.model).resolve()
        if asked != self.model_info.path.resolve():
            raise UnsupportedInputError(
                f"the options ask for the model {asked.name}; this session runs "
                f"{self.model_info.path.name} (make a session for that model: Declipper.from_options)"
            )

    def run(
        self,
        image: np.ndarray,
        options: RepairOptions | None = None,
        *,
        mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
        progress: Progress = False,
        **fields: Any,
    ) -> np.ndarray:
        """Repair the clipped pixels of the array ``image``; see :func:`libdeclip.declip` for the
        arguments. The network is this session's model; a classical method runs without it."""
        opts = options_from(options, fields)
        self._check_model(opts)
        method = opts.method_for(raw=False)
        if method == COMBINED:
            raise UnsupportedInputError(
                f"method {COMBINED!r} works on camera RAW only: repair() an Image read from the RAW file"
            )
        if method != "declipnet":
            return declip_classic(image, method, opts, mask=mask, threads=self._threads)
        return self._run_network(image, opts, mask, progress)

    def repair(self, image: Image, options: RepairOptions | None = None, *, progress: Progress = False,
               **fields: Any) -> Image:
        """Repair a picture read by :func:`libdeclip.read_image`, RGB or camera RAW, with any
        method; returns it with the repaired pixels (and all its metadata).

        An RGB picture's own ICC profile wins over ``options.colorspace``, which wins over what
        its format implies (linear for OpenEXR). A camera RAW is repaired on its photosite mask
        in white-balanced camera RGB (:mod:`libdeclip.photosites`); its default method is
        :data:`~libdeclip.options.COMBINED`."""
        opts = options_from(options, fields)
        self._check_model(opts)
        if image.raw is not None:
            def run(pixels: np.ndarray, raw_options: RepairOptions, mask: np.ndarray,
                    estimate: np.ndarray | None) -> np.ndarray:
                if estimate is not None:  # the network, told the photosite estimate
                    return self._run_network(pixels, raw_options, mask, progress, estimate)
                return self.run(pixels, raw_options, mask=mask, progress=progress)

            method = opts.method_for(raw=True)
            photosite_prior = method in ("declipnet", COMBINED) and self.model_info.raw_prior == "photosite"
            pixels = repair_raw(image, method, run, photosite_prior=photosite_prior)
        else:
            colorspace = image.icc_profile or opts.colorspace or image.colorspace
            pixels = self.run(image.pixels, opts.replace(colorspace=colorspace), progress=progress)
        return image.with_pixels(pixels)

    def _run_network(self, image: np.ndarray, opts: RepairOptions,
                     mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None, progress: Progress,
                     estimate: np.ndarray | None = None) -> np.ndarray:
        ticket = self._turns.ticket()  # this run's place in the queue for the model
        tolerance, feather = opts.tolerance, opts.feather
        try:
            image, colour, low, high, fit, space = prepare(image, opts.clip_levels, opts.colorspace, opts.fit,
                                                           feather)
            plan = self.plan(image.shape[0], image.shape[1])
            low, high, codes = self._codes(colour, low, high, opts, mask)
            # A prior-input model's estimates and context: once per image, before any tile.
            # (``estimate``: a camera RAW's photosite estimate, which the model starts from)
            estimates = (image_priors(colour, low, high, space, codes, estimate)
                         if self.model_info.prior_input and codes.any() else None)

            # The output starts as a copy of the input, made band by band while the model runs.
            out = np.empty_like(image)
            windows = self._windows(plan, codes, feather)
            tiles = TileRun(self.engine, windows, colour, low, high, tolerance, feather, space, plan, codes,
                            opts.consistency, estimates, self._threads, self._turns,
                            regrow=self.skip_unclipped)
            recovered = tiles.run(progress, ticket, copy=(image, out))
        finally:
            self._turns.done(ticket)
        top = output_top(image.dtype, low, high, opts.clip_levels is not None)
        return composite(
            image, colour, low, high, tolerance, feather, fit, plan, recovered, codes, self._threads, out, top
        )


