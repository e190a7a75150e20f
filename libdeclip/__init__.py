"""libdeclip: repair clipped pixels (blown highlights, crushed shadows) in photos.

>>> import numpy as np, libdeclip
>>> photo = np.full((32, 32, 3), 0.5, dtype=np.float32)
>>> photo[8:16, 8:16] = 1.0                      # a blown highlight
>>> repaired = libdeclip.declip(photo)
>>> repaired.shape, repaired.dtype
((32, 32, 3), dtype('float32'))
>>> bool((repaired[8:16, 8:16] >= 1.0).all())    # clipped values only ever move outwards
True
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from libdeclip.engine import DEFAULT_MODEL, ModelInfo, OnnxEngine
from libdeclip.errors import DeclipError, EngineError, ModelError, UnsupportedInputError
from libdeclip.mask import DEFAULT_TOLERANCE, clip_masks

__version__ = "0.1.0"
__all__ = [
    "declip",
    "model_info",
    "ModelInfo",
    "DeclipError",
    "UnsupportedInputError",
    "ModelError",
    "EngineError",
    "__version__",
]

_engines: dict[Path, OnnxEngine] = {}
_engines_lock = threading.Lock()


def _engine(model: str | Path | None) -> OnnxEngine:
    path = Path(model).resolve() if model is not None else DEFAULT_MODEL
    with _engines_lock:
        if path not in _engines:
            _engines[path] = OnnxEngine(path)
        return _engines[path]


def model_info(model: str | Path | None = None) -> ModelInfo:
    """The contract of ``model`` (default: the shipped DeclipNet v1)."""
    return _engine(model).info


def declip(
    image: np.ndarray,
    *,
    model: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """Reconstruct clipped pixels of a float photo.

    Args:
        image: H x W x 3 float32 RGB (sRGB-encoded), clip levels 0.0 and 1.0.
        model: an ONNX model following the libdeclip contract (default: shipped DeclipNet v1).
        tolerance: values within this fraction of the range from 0 or 1 count as clipped.

    Returns:
        H x W x 3 float32. Each clipped channel value is replaced by the reconstruction,
        unclamped: above 1 for recovered highlights, below 0 for recovered shadows, and never
        inside the clip level (a value clipped high never comes back lower). Every unclipped
        channel value, including the unclipped channels of a partly clipped pixel, is returned
        bit-identical: it is what the camera measured.
    """
    if not isinstance(image, np.ndarray):
        raise UnsupportedInputError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise UnsupportedInputError(f"expected an H x W x 3 image, got shape {image.shape}")
    if image.dtype != np.float32:
        raise UnsupportedInputError(f"expected float32 pixels in [0, 1], got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UnsupportedInputError(f"empty image of shape {image.shape}")
    if not np.isfinite(image).all():
        raise UnsupportedInputError("image holds NaN or infinite values")

    high, low = clip_masks(image, 0.0, 1.0, tolerance)
    pixel_mask = (high | low).any(axis=2)
    if not pixel_mask.any():
        return image.copy()

    engine = _engine(model)
    m = engine.info.spatial_multiple
    h, w = image.shape[:2]
    pad = ((0, -h % m), (0, -w % m), (0, 0))
    padded = np.pad(image, pad, mode="symmetric") if any(p[1] for p in pad) else image
    batch = np.ascontiguousarray(padded.transpose(2, 0, 1)[None])
    residual = engine.residual(batch)[0].transpose(1, 2, 0)[:h, :w]

    reconstruction = image + residual
    # The camera recorded "at least this bright" (or "at most this dark"): never go inside.
    out = image.copy()
    out[high] = np.maximum(reconstruction[high], image[high])
    out[low] = np.minimum(reconstruction[low], image[low])
    return out
