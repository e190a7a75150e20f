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
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.classic import declip_classic
from libdeclip.color import NAMED_SPACES, ColorSpace
from libdeclip.engine import (
    DeviceFallbackWarning,
    GpuOutOfMemoryError,
    ModelInfo,
    available_devices,
    resolve_model,
    shipped_models,
)
from libdeclip.errors import (
    DeclipError,
    EngineError,
    ModelError,
    OutputError,
    OutputExistsError,
    UnsupportedInputError,
)
from libdeclip.fit import Fit
from libdeclip.inputs import ClipLevels, ColorSpec
from libdeclip.io import Image, RawInfo, read_image, write_image
from libdeclip.mask import ClipMasks, ClipSummary, clip_mask
from libdeclip.options import METHODS, Device, RepairOptions, options_from
from libdeclip.session import Declipper
from libdeclip.tilerun import Progress

__all__ = [
    "declip",
    "build_info",
    "RepairOptions",
    "Device",
    "available_devices",
    "METHODS",
    "declip_raw",
    "Declipper",
    "clip_mask",
    "ClipSummary",
    "ClipMasks",
    "read_image",
    "write_image",
    "Image",
    "RawInfo",
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
    "OutputError",
    "OutputExistsError",
    "DeviceFallbackWarning",
    "GpuOutOfMemoryError",
    "ClipLevels",
    "ColorSpec",
    "Progress",
    "__version__",
]

#: How many sessions :func:`declip` and :func:`model_info` keep loaded, one per (model file,
#: device): the least recently used one is closed when another is needed. A program that switches
#: between more models than this should hold its own :class:`Declipper` for each.
SESSION_CACHE_SIZE = 4
_sessions: OrderedDict[tuple[Path | None, str], Declipper] = OrderedDict()
_sessions_lock = threading.Lock()


def _session(model: str | Path | None, device: str) -> Declipper:
    # model=None stays None in the key: which file it means depends on the device the session gets.
    path = None if model is None else resolve_model(model).resolve()
    key = (path, str(device))
    with _sessions_lock:
        if key in _sessions:
            _sessions.move_to_end(key)
        else:
            _sessions[key] = Declipper(path, device=str(device))
            while len(_sessions) > SESSION_CACHE_SIZE:
                _sessions.popitem(last=False)[1].close()
        return _sessions[key]


def model_info(model: str | Path | None = None, *, device: str = "cpu") -> ModelInfo:
    """The contract of ``model`` as loaded on ``device`` (default: the automatic choice on the
    CPU, DeclipNet v2 int8; see ``libdeclip models``)."""
    return _session(model, device).model_info


def declip(
    image: np.ndarray,
    options: RepairOptions | None = None,
    *,
    mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress = False,
    **fields: Any,
) -> np.ndarray:
    """Reconstruct the clipped pixels of a photo.

    Args:
        image: H x W x 3 RGB, H x W x 4 RGBA (alpha passed through untouched), H x W grey or
            H x W x 2 grey + alpha;
            dtype uint8, uint16, float16, float32 or float64.
        options: a :class:`RepairOptions` (method, model, device, fit, feather, tolerance,
            consistency, colorspace, clip_levels; its docstring says what each does).
        mask: which values are clipped, when the caller knows better than the values can say
            (a camera RAW's mask from its photosites, see :func:`read_image`): H x W x C booleans
            of values clipped high, or a ``(low, high)`` pair (:class:`ClipMasks`; either may be
            None). Default: found from the clip levels
            and the tolerance.
        progress: ``True`` for a progress bar over the network's tiles (tqdm), or a function
            called with (tiles done, tiles to run) as they complete, for a GUI's own progress bar.
        **fields: any field of :class:`RepairOptions` as a keyword, over ``options``
            (``declip(photo, method="cross-channel")``).

    The network is the default method; ``model``, ``device``, ``progress`` and ``feather`` only
    apply to it (the classical methods change clipped values only). ``method="opposed+declipnet"``
    works on camera RAW only (:meth:`Declipper.repair` of an :class:`Image` read from the file).

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
    opts = options_from(options, fields)
    method = opts.method_for(raw=False)
    if method != "declipnet":
        return declip_classic(image, method, opts, mask=mask)
    return _session(opts.model, str(opts.device)).run(image, opts, mask=mask, progress=progress)


def declip_raw(session: Declipper | None, image: Image, *, method: str = "declipnet",
               progress: Progress = False) -> np.ndarray:
    """Deprecated: ``session.repair(image, method=method).pixels`` (:meth:`Declipper.repair`)."""
    warnings.warn("declip_raw() is deprecated: use Declipper.repair(image, method=...)", DeprecationWarning,
                  stacklevel=2)
    on = session if session is not None else Declipper(device="cpu", load=False)
    return on.repair(image, method=method, progress=progress).pixels


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed package's metadata (one place: pyproject.toml) on
    first use: importlib.metadata costs a fifth of ``import libdeclip``, which every plug-in call
    and CLI run pays."""
    if name == "__version__":
        from importlib import metadata

        version = metadata.version("libdeclip")
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'libdeclip' has no attribute {name!r}")


def build_info() -> dict[str, object]:
    """What this installation is: its version, the native core's default thread count and pow
    implementation, ONNX Runtime's version and the devices it can use (benchmarks record it)."""
    import onnxruntime

    from libdeclip import _native

    return {"version": __getattr__("__version__"), "native_threads": _native.get_threads(),
            "pow": _native.pow_implementation(), "onnxruntime": onnxruntime.__version__,
            "devices": available_devices()}
