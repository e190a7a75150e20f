"""ONNX Runtime sessions for DeclipNet models, and the model contract they must follow."""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.errors import EngineError, ModelError
from libdeclip.options import parse_device
from libdeclip.priors import CONTEXT_NAMES, PRIOR_METHODS

__all__ = [
    "AUTOMATIC_MODELS", "CONTRACT", "DeviceFallbackWarning", "GpuOutOfMemoryError", "ModelInfo", "OnnxEngine",
    "EngineTiming", "automatic_model", "available_devices", "gpu_providers", "resolve_model", "sha256_file",
    "shipped_models", "timing",
]

CONTRACT = "libdeclip-model-1"
#: Length of a prior-input model's context vector.
CONTEXT_SIZE = len(CONTEXT_NAMES)
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The shipped model that ``model=None`` ("automatic") loads, by the kind of device that runs it:
#: the v2 family, in the precision that device runs fastest without losing quality. On the CPU
#: int8 (1.8x float32 v2's speed there, within 0.08 dB of it in every cell of the v2 quality
#: benchmark); on CUDA and TensorRT float16, because that benchmark shows it within 0.1 dB of
#: float32 in every cell (0.03 dB at most; tests/test_engine.py reads the figures from
#: benchmarks/results/model_v2_quality.md and holds this choice to that rule).
AUTOMATIC_MODELS = {"cpu": "declipnet-v2-int8", "cuda": "declipnet-v2-fp16"}
#: sha256 of each model shipped in MODELS_DIR (``sha256sum`` format): checked at every load of a
#: shipped model, so a damaged or altered install is refused instead of giving wrong pictures.
#: Re-exporting a shipped model means updating it: ``cd libdeclip/models && sha256sum *.onnx > SHA256SUMS``.
CHECKSUMS_NAME = "SHA256SUMS"
_REQUIRED = (
    "contract",
    "name",
    "version",
    "input_channels",
    "normalisation",
    "receptive_field_radius",
    "spatial_multiple",
    "training_data",
    "training_steps",
    "checkpoint_sha256",
)


#: Input channel layouts the runtime can feed: RGB, or RGB and the signed clip mask (+1 where the
#: channel is clipped high, -1 low, 0 elsewhere), named in the model's ``input_channels``.
RGB_CHANNELS = ("R", "G", "B")
MASK_CHANNELS = ("R", "G", "B", "clip_R", "clip_G", "clip_B")
#: A prior-input model's (v3): RGB, the signed clip mask, then the classical estimates of
#: :data:`libdeclip.priors.PRIOR_METHODS` (three channels each, in that order); such a model also
#: takes a second input ``context``, N x 6 (:data:`libdeclip.priors.CONTEXT_NAMES`).
PRIOR_CHANNELS = MASK_CHANNELS + tuple(f"{method}_{c}" for method in PRIOR_METHODS for c in "RGB")
CHANNEL_LAYOUTS = (RGB_CHANNELS, MASK_CHANNELS, PRIOR_CHANNELS)
#: What a prior-input model may take as its estimates on a camera RAW (:attr:`ModelInfo.raw_prior`).
RAW_PRIORS = ("demosaiced", "photosite")


@dataclass(frozen=True)
class ModelInfo:
    """The model contract, read from the ONNX file's ``metadata_props``."""

    path: Path
    name: str
    version: str
    input_channels: tuple[str, ...]
    receptive_field_radius: int
    spatial_multiple: int
    training_steps: int
    checkpoint_sha256: str
    metadata: dict[str, str]

    @property
    def mask_input(self) -> bool:
        """Whether the model takes the clip mask as input channels after R, G, B."""
        return self.input_channels in (MASK_CHANNELS, PRIOR_CHANNELS)

    @property
    def prior_input(self) -> bool:
        """Whether the model takes the classical estimates and the image context (v3)."""
        return self.input_channels == PRIOR_CHANNELS

    @property
    def raw_prior(self) -> str:
        """What a prior-input model is given as its classical estimates on a camera RAW:
        ``"photosite"`` (the photosite inpaint-opposed estimate, in both of its estimates' places:
        metadata ``raw_prior``) or ``"demosaiced"`` (:data:`~libdeclip.priors.PRIOR_METHODS` on the
        demosaiced picture, as on RGB; models without the key)."""
        return self.metadata.get("raw_prior", "demosaiced") if self.prior_input else "demosaiced"


def read_model_info(path: Path, metadata: dict[str, str]) -> ModelInfo:
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise ModelError(f"{path}: not a libdeclip model (metadata lacks {', '.join(missing)})")
    if metadata["contract"] != CONTRACT:
        raise ModelError(
            f"{path}: model contract {metadata['contract']!r} is not supported "
            f"(this libdeclip reads {CONTRACT!r})"
        )
    if metadata.get("raw_prior", "demosaiced") not in RAW_PRIORS:
        raise ModelError(f"{path}: raw_prior {metadata['raw_prior']!r} is not one of {', '.join(RAW_PRIORS)}")
    channels = tuple(metadata["input_channels"].split(","))
    if channels not in CHANNEL_LAYOUTS:
        raise ModelError(
            f"{path}: input channels {','.join(channels)} are not supported "
            f"(expected one of: {'; '.join(','.join(c) for c in CHANNEL_LAYOUTS)})"
        )
    try:
        return ModelInfo(
            path=path,
            name=metadata["name"],
            version=metadata["version"],
            input_channels=channels,
            receptive_field_radius=int(metadata["receptive_field_radius"]),
            spatial_multiple=int(metadata["spatial_multiple"]),
            training_steps=int(metadata["training_steps"]),
            checkpoint_sha256=metadata["checkpoint_sha256"],
            metadata=dict(metadata),
        )
    except ValueError as exc:
        raise ModelError(f"{path}: malformed model metadata ({exc})") from None


def shipped_models() -> list[str]:
    """Names of the models shipped with libdeclip (file names without ``.onnx``)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))


def automatic_model(kind: str = "cpu") -> Path:
    """The file ``model=None`` loads on a device of ``kind``: ``"cpu"`` or ``"cuda"`` (CUDA and
    TensorRT); see :data:`AUTOMATIC_MODELS`."""
    if kind not in AUTOMATIC_MODELS:
        raise ValueError(f"unknown device kind {kind!r}: use one of {', '.join(AUTOMATIC_MODELS)}")
    return MODELS_DIR / f"{AUTOMATIC_MODELS[kind]}.onnx"


def resolve_model(model: str | Path | None, kind: str = "cpu") -> Path:
    """The file of ``model``: None for automatic (the v2 file for a device of ``kind``, see
    :func:`automatic_model`), a path to an ONNX file, or the name of a shipped model such as
    ``"declipnet-v2"``, ``"declipnet-v2-int8"`` or ``"declipnet-v1"``: an explicit choice always
    wins over the device's."""
    if model is None:
        return automatic_model(kind)
    path = Path(model)
    if path.is_file():
        return path
    if isinstance(model, str) and path.name == model and (MODELS_DIR / f"{model}.onnx").is_file():
        return MODELS_DIR / f"{model}.onnx"
    raise ModelError(
        f"model file not found: {path} (shipped models, by name: {', '.join(shipped_models())})"
    )


def shipped_checksum(path: Path) -> str | None:
    """The recorded sha256 of a model shipped in :data:`MODELS_DIR`; None for any other file."""
    if path.resolve().parent != MODELS_DIR.resolve():
        return None
    try:
        lines = (MODELS_DIR / CHECKSUMS_NAME).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        digest, _, name = line.strip().partition(" ")
        if name.strip().lstrip("*") == path.name:
            return digest.lower()
    return None


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path) -> None:
    """Refuse a shipped model whose bytes are not the ones recorded in SHA256SUMS."""
    expected = shipped_checksum(path)
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"{path}: the shipped model's sha256 is {actual}, not the recorded {expected} "
            f"({MODELS_DIR / CHECKSUMS_NAME}): the file is damaged or was altered; reinstall libdeclip"
        )


def check_signature(path: Path, inputs: list[Any], outputs: list[Any], channels: int = 3,
                    context: int = 0) -> None:
    """The contract's tensors: one input ``clipped`` (N x C x H x W float32, C = ``channels``) and
    an output ``residual`` (N x 3 x H x W float32), as ONNX Runtime reports them (``NodeArg``s);
    with ``context`` a second input ``context`` (N x ``context`` float32)."""

    def fits(arg: Any, name: str, c: int) -> bool:
        shape = list(arg.shape or [])
        return bool(
            arg.name == name and arg.type == "tensor(float)" and len(shape) == 4
            and (shape[1] == c or not isinstance(shape[1], int))  # a named or unknown dim: any
        )

    def describe(args: list[Any]) -> str:
        return ", ".join(f"{a.name!r} {a.type} {list(a.shape or [])}" for a in args) or "none"

    def fits_context(arg: Any) -> bool:
        shape = list(arg.shape or [])
        return bool(arg.name == "context" and arg.type == "tensor(float)" and len(shape) == 2
                    and (shape[1] == context or not isinstance(shape[1], int)))

    wanted = 2 if context else 1
    if not (len(inputs) == wanted and fits(inputs[0], "clipped", channels)
            and (not context or fits_context(inputs[1]))
            and any(fits(o, "residual", 3) for o in outputs)):
        also = f", an input 'context' N x {context} float32" if context else ""
        raise ModelError(
            f"{path}: the model's tensors break the contract (one input 'clipped' N x {channels} x H x W "
            f"float32{also}, an output 'residual' N x 3 x H x W float32): it has inputs {describe(inputs)}; "
            f"outputs {describe(outputs)}"
        )


class DeviceFallbackWarning(UserWarning):
    """A GPU was asked for but could not be used; the CPU runs the model instead."""


class GpuOutOfMemoryError(EngineError):
    """The GPU had no memory for a batch of tiles. :class:`~libdeclip.Declipper` answers it by
    running fewer tiles at once, then smaller tiles, then the CPU; it reaches a caller only from
    :meth:`OnnxEngine.residual` used directly."""


#: How ONNX Runtime reports a GPU out of memory. It raises its own untyped exceptions
#: (``onnxruntime.capi.onnxruntime_pybind11_state.RuntimeException`` or ``Fail``) whose text
#: names the failure: the CUDA arena's "Failed to allocate memory for requested buffer of size N"
#: (BFCArena), "CUDA failure 2: out of memory" (a raw cudaMalloc, or the input's copy to the
#: device), "cudaErrorMemoryAllocation", cuBLAS/cuDNN "..._STATUS_ALLOC_FAILED" (their workspaces)
#: and TensorRT's "Cuda Error in allocate: 2 (out of memory)".
_OUT_OF_MEMORY = re.compile(
    r"failed to allocate memory|out of memory|cudaErrorMemoryAllocation|STATUS_ALLOC_FAILED", re.IGNORECASE
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception from ONNX Runtime says that a device ran out of memory."""
    return isinstance(exc, MemoryError) or bool(_OUT_OF_MEMORY.search(str(exc)))


_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass
class EngineTiming:
    """What the model cost while a :func:`timing` was active, over every engine of the process."""

    seconds: float = 0.0  #: in ONNX Runtime, model runs only (not waiting for another run's turn)
    tiles: int = 0  #: windows run
    calls: int = 0  #: model runs (a batch of windows is one)


_timings: list[EngineTiming] = []
_timings_lock = threading.Lock()


@contextlib.contextmanager
def timing() -> Iterator[EngineTiming]:
    """The benchmarks' one hook into the runtime: while active, every engine of this process adds
    the time it spends running the model, and the windows it runs, to the :class:`EngineTiming` it
    yields (so a whole run's time can be split into the model's and the pipeline's)::

        with timing() as model:
            libdeclip.declip(photo)
        print(model.seconds, model.tiles)
    """
    record = EngineTiming()
    with _timings_lock:
        _timings.append(record)
    try:
        yield record
    finally:
        with _timings_lock:
            _timings.remove(record)


def _timed(seconds: float, tiles: int) -> None:
    with _timings_lock:
        for record in _timings:
            record.seconds += seconds
            record.tiles += tiles
            record.calls += 1


def available_devices() -> list[str]:
    """The devices this installation can run the network on: ``["cpu"]``, plus ``"cuda"`` where
    ONNX Runtime has a GPU provider (``pip install onnxruntime-gpu``)."""
    return ["cpu"] + (["cuda"] if gpu_providers() else [])


def gpu_providers() -> list[str]:
    """The GPU execution providers (TensorRT, CUDA) this onnxruntime has, in preference order."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [name for name in _GPU_PROVIDERS if name in available]


def _provider_list(kind: str, index: int, available: list[str]) -> list[Any]:
    """Providers in preference order: TensorRT, then CUDA, then the CPU."""
    chosen: list[Any] = []
    if kind in ("auto", "cuda"):
        for name in _GPU_PROVIDERS:
            if name in available:
                chosen.append((name, {"device_id": index}))
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxEngine:
    """An ONNX Runtime session on the requested device; ``residual`` is safe to call from threads.

    ``device="auto"`` prefers TensorRT, then CUDA, then the CPU. A GPU that is asked for but
    missing or failing gives one :class:`DeviceFallbackWarning` and the CPU, never a crash.
    """

    def __init__(
        self, model: str | Path | None = None, device: str = "auto", threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        kind, index = parse_device(device)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        # Tiles come in a few shapes; memory patterns per shape only add memory (measured: -60 MB
        # at 512 px tiles, same speed).
        opts.enable_mem_pattern = False
        # ONNX Runtime's worker threads spin between runs by default; the runtime's own worker
        # gathers the next window and scatters the last one meanwhile, on the same cores. Without
        # the spinning (measured on the 24 MP mosaic of BENCHMARKS.md, 2 cores): 13% less CPU time
        # and 3% less wall time.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        providers = _provider_list(kind, index, available)
        # model=None: the GPU's file when a GPU provider will be tried, the CPU's otherwise (and
        # the CPU's again below if the GPU does not start).
        path = resolve_model(model, "cuda" if len(providers) > 1 else "cpu")
        verify_checksum(path)
        wants_gpu = kind == "cuda"
        if wants_gpu and len(providers) == 1:
            warnings.warn(
                f"device {device!r}: this onnxruntime has no GPU provider (install onnxruntime-gpu); "
                "running on the CPU",
                DeviceFallbackWarning,
                stacklevel=3,
            )

        def cpu_session(reason: str) -> Any:
            nonlocal path
            warnings.warn(f"device {device!r}: {reason}; running on the CPU", DeviceFallbackWarning,
                          stacklevel=4)
            if model is None:
                path = automatic_model("cpu")
                verify_checksum(path)
            try:
                return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc2:
                raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc2})") from None

        try:
            session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            if len(providers) == 1:
                raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
            session = cpu_session(f"the GPU provider failed to start ({exc})")
        else:
            if len(providers) > 1 and session.get_providers()[0] == "CPUExecutionProvider":
                # ONNX Runtime quietly drops a GPU provider whose libraries fail to load.
                session = cpu_session("the GPU provider did not start (CUDA/cuDNN libraries missing?)")
        active = session.get_providers()[0]
        self._session = session
        self._options = opts  # for a CPU session after the GPU fails (fall_back_to_cpu)
        self.provider = active
        self.device = "cpu" if active == "CPUExecutionProvider" else f"cuda:{index}"
        self._device_index = index
        #: Tiles of equal shape run together on a GPU; one at a time on the CPU.
        self.max_batch = 1 if self.device == "cpu" else 8
        self.info = read_model_info(path, session.get_modelmeta().custom_metadata_map)
        check_signature(path, session.get_inputs(), session.get_outputs(), len(self.info.input_channels),
                        CONTEXT_SIZE if self.info.prior_input else 0)
        self._lock = threading.Lock()

    def residual(self, clipped: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Run the model on N x C x H x W float32 (H, W multiples of ``spatial_multiple``; C the
        model's input channels) and, for a prior-input model, its N x 6 ``context``.

        Raises :class:`GpuOutOfMemoryError` when the GPU has no memory for this input (a smaller
        one may fit), :class:`~libdeclip.EngineError` for any other failure.
        """
        clipped = np.ascontiguousarray(clipped, dtype=np.float32)
        feeds = {"clipped": clipped}
        if self.info.prior_input:
            if context is None:
                raise EngineError(f"{self.info.path}: this model needs the image context")
            feeds["context"] = np.ascontiguousarray(context, dtype=np.float32).reshape(len(clipped), -1)
        on_gpu = False
        try:
            # InferenceSession.run is thread-safe; the lock keeps two big runs from oversubscribing
            # the cores (or the GPU's memory) at once.
            with self._lock:
                on_gpu = self.device != "cpu"
                start = time.perf_counter()
                out = self._session.run(["residual"], feeds)[0] if not on_gpu else self._run_bound(feeds)
                if _timings:
                    _timed(time.perf_counter() - start, len(clipped))
                return out
        except Exception as exc:
            if on_gpu and is_out_of_memory(exc):
                raise GpuOutOfMemoryError(
                    f"the GPU ({self.device}) ran out of memory on an input of shape {clipped.shape}: {exc}"
                ) from None
            raise EngineError(f"ONNX Runtime failed on an input of shape {clipped.shape}: {exc}") from None

    def fall_back_to_cpu(self, reason: str) -> None:
        """Go on with the model on the CPU (a new session, same model and options), after the GPU
        failed for ``reason``; warns once with :class:`DeviceFallbackWarning`. Safe to call from
        several threads: only the first call does it."""
        import onnxruntime as ort

        with self._lock:
            if self.device == "cpu":
                return
            warnings.warn(
                f"device {self.device!r}: {reason}; running on the CPU", DeviceFallbackWarning, stacklevel=3
            )
            try:
                session = ort.InferenceSession(
                    str(self.info.path), self._options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise EngineError(
                    f"{self.info.path}: ONNX Runtime cannot run the model on the CPU ({exc})"
                ) from None
            self._session = session
            self.provider = "CPUExecutionProvider"
            self.device = "cpu"
            self.max_batch = 1

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """GPU run with I/O binding: one copy in, one copy out, no per-run allocations by ORT."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", self._device_index)
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("residual", "cuda", self._device_index)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
