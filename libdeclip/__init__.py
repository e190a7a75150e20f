"""libdeclip: repair clipped pixels (blown highlights, crushed shadows) in photos.

>>> import numpy as np, libdeclip
>>> photo = np.full((32, 32, 3), 0.5, dtype=np.float32)
>>> photo[8:16, 8:16] = 1.0                      # a blown highlight
>>> repaired = libdeclip.declip(photo, device="cpu")
>>> repaired.shape, repaired.dtype
((32, 32, 3), dtype('float32'))
>>> bool((repaired[8:16, 8:16] >= 1.0).all())    # clipped values only ever move outwards
True
>>> bool((repaired[20:, 20:] == photo[20:, 20:]).all())   # unclipped values are untouched
True
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from libdeclip.classic import METHODS, declip_classic
from libdeclip.color import NAMED_SPACES, ColorSpace
from libdeclip.engine import DeviceFallbackWarning, ModelInfo, resolve_model, shipped_models
from libdeclip.errors import DeclipError, EngineError, ModelError, UnsupportedInputError
from libdeclip.fit import Fit
from libdeclip.inputs import ClipLevels, ColorSpec
from libdeclip.io import Image, read_image, write_image
from libdeclip.mask import DEFAULT_TOLERANCE, ClipSummary, clip_mask
from libdeclip.raw import declip_raw
from libdeclip.session import Declipper, Progress

__version__ = "0.1.0"
__all__ = [
    "declip",
    "METHODS",
    "declip_raw",
    "Declipper",
    "clip_mask",
    "ClipSummary",
    "read_image",
    "write_image",
    "Image",
    "Fit",
    "ColorSpace",
    "NAMED_SPACES",
    "model_info",
    "shipped_models",
    "ModelInfo",
    "DeclipError",
    "UnsupportedInputError",
    "ModelError",
    "EngineError",
    "DeviceFallbackWarning",
    "__version__",
]

_sessions: dict[tuple[Path | None, str], Declipper] = {}
_sessions_lock = threading.Lock()


def _session(model: str | Path | None, device: str) -> Declipper:
    # model=None stays None in the key: which file it means depends on the device the session gets.
    path = None if model is None else resolve_model(model).resolve()
    key = (path, device)
    with _sessions_lock:
        if key not in _sessions:
            _sessions[key] = Declipper(path, device=device)
        return _sessions[key]


def model_info(model: str | Path | None = None, *, device: str = "cpu") -> ModelInfo:
    """The contract of ``model`` as loaded on ``device`` (default: the automatic choice on the
    CPU, DeclipNet v2 int8; see ``libdeclip models``)."""
    return _session(model, device).model_info


def declip(
    image: np.ndarray,
    *,
    clip_levels: ClipLevels | None = None,
    colorspace: ColorSpec = None,
    fit: Fit | str | None = None,
    device: str = "auto",
    progress: Progress = False,
    model: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    feather: int = 0,
    mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    method: str = "declipnet",
    consistency: bool = True,
) -> np.ndarray:
    """Reconstruct the clipped pixels of a photo.

    Args:
        image: H x W x 3 RGB, H x W x 4 RGBA (alpha passed through untouched), H x W grey or
            H x W x 2 grey + alpha;
            dtype uint8, uint16, float16, float32 or float64.
        clip_levels: ``(low, high)``, numbers or one per colour channel. Default: the dtype's
            range, (0, 255), (0, 65535) or (0.0, 1.0).
        colorspace: the pixels' encoding: a name from :data:`NAMED_SPACES` (``"srgb"``,
            ``"display-p3"``, ``"adobe-rgb"``, ...), ICC profile bytes, or a :class:`ColorSpace`.
            Default sRGB.
        fit: what happens to values recovered beyond the clip levels (:class:`Fit`):
            ``"compress"`` (default for integers: smooth shoulder and toe), ``"clamp"`` (every
            unclipped value exactly preserved) or ``"float"`` (default for floats: kept, HDR).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a missing GPU falls back to the
            CPU with a :class:`DeviceFallbackWarning`.
        progress: ``True`` for a progress bar over the tiles (tqdm), or a function called with
            (tiles done, tiles to run) as they complete, for a GUI's own progress bar.
        model: a shipped model's name (``"declipnet-v2"``, ``"declipnet-v2-int8"``,
            ``"declipnet-v2-fp16"``, ``"declipnet-v1"``) or an ONNX file following the libdeclip
            contract. Default: automatic, DeclipNet v2 in the precision of the device that runs
            it (int8 on the CPU, float16 on CUDA/TensorRT; ``libdeclip models`` lists them).
        tolerance: values within this fraction of the range from a clip level count as clipped.
        feather: blend the reconstruction into unclipped values up to this many pixels (0 to
            254; chessboard distance) from a clipped pixel, with weight 1 - d / (feather + 1).
            Default 0: unclipped values are never touched (see the model card for why).
        mask: which values are clipped, when the caller knows better than the values can say
            (a camera RAW's mask from its photosites, see :func:`read_image`): H x W x C booleans
            of values clipped high, or a ``(high, low)`` pair. Default: found from ``clip_levels``
            and ``tolerance``.
        method: ``"declipnet"`` (default: the network) or a classical method without a model,
            one of :data:`METHODS` (``"cross-channel"``, ``"inpaint-opposed"``, ``"biharmonic"``;
            see :mod:`libdeclip.classic`). ``model``, ``device``, ``progress`` and ``feather``
            only apply to the network (the classical methods change clipped values only).
        consistency: hold the reconstruction to what the camera recorded: a value clipped high
            is only ever moved up (at or above its clip level), one clipped low only down.
            ``False`` takes the method's answer as it is (to measure what the constraint does).

    Returns:
        An array of the same shape and dtype. Clipped values are replaced by the reconstruction
        (with ``consistency``, never moved inside their clip level); every other value farther
        than ``feather`` pixels from a clipped pixel is returned bit-identical, except that
        ``fit="compress"`` also eases values above its knee (0.8) and below its toe (0.05) so that
        the recovered range fits.

    Raises:
        UnsupportedInputError: bad shape, dtype, values or arguments.
        ModelError: the model file is missing or breaks the contract.
        EngineError: ONNX Runtime failed.
    """
    if method != "declipnet":
        return declip_classic(
            image, method, clip_levels=clip_levels, colorspace=colorspace, fit=fit,
            tolerance=tolerance, mask=mask, consistency=consistency,
        )
    return _session(model, device).run(
        image, clip_levels=clip_levels, colorspace=colorspace, fit=fit, tolerance=tolerance,
        feather=feather, progress=progress, mask=mask, consistency=consistency,
    )
