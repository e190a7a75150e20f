"""ONNX Runtime sessions for DeclipNet models, and the model contract they must follow."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from libdeclip.errors import EngineError, ModelError

__all__ = ["CONTRACT", "DEFAULT_MODEL", "ModelInfo", "OnnxEngine"]

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


class OnnxEngine:
    """One ONNX Runtime session on the CPU; ``run`` is safe to call from several threads."""

    def __init__(self, model: str | Path | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(model) if model is not None else DEFAULT_MODEL
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
        self.info = read_model_info(path, self._session.get_modelmeta().custom_metadata_map)
        self._lock = threading.Lock()

    def residual(self, clipped: np.ndarray) -> np.ndarray:
        """Run the model on N x 3 x H x W float32 (H, W multiples of ``spatial_multiple``)."""
        try:
            # InferenceSession.run is thread-safe; the lock only keeps two big runs from
            # oversubscribing the cores at once.
            with self._lock:
                return self._session.run(["residual"], {"clipped": clipped})[0]
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed on an input of shape {clipped.shape}: {exc}") from None
