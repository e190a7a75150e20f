"""ONNX Runtime sessions for DeclipNet models, and the model contract they must follow."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.errors import EngineError, ModelError

__all__ = ["CONTRACT", "DEFAULT_MODEL", "DeviceFallbackWarning", "ModelInfo", "OnnxEngine", "parse_device"]

CONTRACT = "libdeclip-model-1"
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "declipnet-v1.onnx"
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


def read_model_info(path: Path, metadata: dict[str, str]) -> ModelInfo:
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise ModelError(f"{path}: not a libdeclip model (metadata lacks {', '.join(missing)})")
    if metadata["contract"] != CONTRACT:
        raise ModelError(
            f"{path}: model contract {metadata['contract']!r} is not supported "
            f"(this libdeclip reads {CONTRACT!r})"
        )
    channels = tuple(metadata["input_channels"].split(","))
    if channels != ("R", "G", "B"):
        raise ModelError(f"{path}: input channels {channels} are not supported (expected R,G,B)")
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


class DeviceFallbackWarning(UserWarning):
    """A GPU was asked for but could not be used; the CPU runs the model instead."""


_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def parse_device(device: str) -> tuple[str, int]:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> (kind, device index)."""
    text = str(device).strip().lower()
    if text in ("auto", "cpu", "cuda", "gpu"):
        return ("cuda" if text == "gpu" else text), 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


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

        path = Path(model) if model is not None else DEFAULT_MODEL
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        kind, index = parse_device(device)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        # Tiles come in a few shapes; memory patterns per shape only add memory (measured: -60 MB
        # at 512 px tiles, same speed).
        opts.enable_mem_pattern = False
        available = ort.get_available_providers()
        providers = _provider_list(kind, index, available)
        wants_gpu = kind == "cuda"
        if wants_gpu and len(providers) == 1:
            warnings.warn(
                f"device {device!r}: this onnxruntime has no GPU provider (install onnxruntime-gpu); "
                "running on the CPU",
                DeviceFallbackWarning,
                stacklevel=3,
            )
        try:
            session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            if len(providers) == 1:
                raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
            warnings.warn(
                f"device {device!r}: the GPU provider failed to start ({exc}); running on the CPU",
                DeviceFallbackWarning,
                stacklevel=3,
            )
            try:
                session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc2:
                raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc2})") from None
        active = session.get_providers()[0]
        if len(providers) > 1 and active == "CPUExecutionProvider":
            # ONNX Runtime quietly drops a GPU provider whose libraries fail to load.
            warnings.warn(
                f"device {device!r}: the GPU provider did not start (CUDA/cuDNN libraries missing?); "
                "running on the CPU",
                DeviceFallbackWarning,
                stacklevel=3,
            )
        self._session = session
        self.provider = active
        self.device = "cpu" if active == "CPUExecutionProvider" else f"cuda:{index}"
        self._device_index = index
        #: Tiles of equal shape run together on a GPU; one at a time on the CPU.
        self.max_batch = 1 if self.device == "cpu" else 8
        self.info = read_model_info(path, session.get_modelmeta().custom_metadata_map)
        self._lock = threading.Lock()

    def residual(self, clipped: np.ndarray) -> np.ndarray:
        """Run the model on N x 3 x H x W float32 (H, W multiples of ``spatial_multiple``)."""
        clipped = np.ascontiguousarray(clipped, dtype=np.float32)
        try:
            # InferenceSession.run is thread-safe; the lock keeps two big runs from oversubscribing
            # the cores (or the GPU's memory) at once.
            with self._lock:
                if self.device == "cpu":
                    return self._session.run(["residual"], {"clipped": clipped})[0]
                return self._run_bound(clipped)
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed on an input of shape {clipped.shape}: {exc}") from None

    def _run_bound(self, clipped: np.ndarray) -> np.ndarray:
        """GPU run with I/O binding: one copy in, one copy out, no per-run allocations by ORT."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(clipped, "cuda", self._device_index)
        binding.bind_ortvalue_input("clipped", value)
        binding.bind_output("residual", "cuda", self._device_index)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
