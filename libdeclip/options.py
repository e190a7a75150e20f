"""What a repair is asked to do: one options object for every front end.

:class:`RepairOptions` is taken by :func:`libdeclip.declip`, :meth:`libdeclip.Declipper.run` and
:meth:`~libdeclip.Declipper.repair`, the command line and the batch runner, so each option is
named, checked and documented once. It is frozen: derive a variant with :meth:`RepairOptions.replace`.

>>> options = RepairOptions(method="cross-channel")
>>> options.replace(feather=0).method
'cross-channel'
>>> RepairOptions(feather=300)
Traceback (most recent call last):
...
libdeclip.errors.UnsupportedInputError: feather must be 0 to 254 pixels, got 300
"""

from __future__ import annotations

import dataclasses
import math
import operator
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from libdeclip.errors import UnsupportedInputError
from libdeclip.fit import Fit
from libdeclip.inputs import MAX_FEATHER, ClipLevels, ColorSpec
from libdeclip.mask import DEFAULT_TOLERANCE

__all__ = ["AUTOMATIC", "COMBINED", "CLASSICAL_METHODS", "Device", "METHODS", "RAW_METHODS", "RepairOptions",
           "needs_model", "options_from", "parse_device"]

#: The classical methods, without a model (:mod:`libdeclip.classic`).
CLASSICAL_METHODS = ("cross-channel", "inpaint-opposed", "biharmonic")
#: Every method for RGB pictures, the network first (the default).
METHODS = ("declipnet",) + CLASSICAL_METHODS
#: Camera RAW only: the photosite inpaint opposed where a channel survives, the network where all
#: three are clipped (:mod:`libdeclip.photosites`); what a RAW file gets by default.
COMBINED = "opposed+declipnet"
#: Every method for camera RAW, its default first.
RAW_METHODS = (COMBINED, "declipnet", "inpaint-opposed", "cross-channel", "biharmonic")
#: ``method=None``: the network for an RGB picture, :data:`COMBINED` for a camera RAW.
AUTOMATIC = None


class Device(str, Enum):
    """Where the network runs. The strings work as well (``device="cuda:1"`` picks a GPU by
    index); :func:`libdeclip.available_devices` says what this installation can use."""

    AUTO = "auto"  #: TensorRT, then CUDA, then the CPU
    CPU = "cpu"
    CUDA = "cuda"  #: the first GPU; ``"cuda:N"`` for another

    def __str__(self) -> str:
        return self.value


def parse_device(device: Device | str) -> tuple[str, int]:
    """A device as (kind, index): ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``"gpu"``, an
    old spelling of ``"cuda"``, still works with a :class:`DeprecationWarning`)."""
    text = str(device).strip().lower()
    if text == "gpu":
        warnings.warn('device "gpu" is an old spelling: use "cuda"', DeprecationWarning, stacklevel=3)
        return "cuda", 0
    if text in ("auto", "cpu", "cuda"):
        return text, 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def needs_model(method: str | None) -> bool:
    """Whether ``method`` runs the network (the automatic choice does, for every file type)."""
    return method in (AUTOMATIC, "declipnet", COMBINED)


@dataclass(frozen=True)
class RepairOptions:
    """How to repair a picture; every field has the default a photographer would want.

    Attributes:
        method: ``"declipnet"`` (the network), a classical method (:data:`CLASSICAL_METHODS`), or
            :data:`COMBINED` (camera RAW only). Default ``None``: the network for RGB pictures,
            :data:`COMBINED` for camera RAW.
        model: a shipped model's name (``"declipnet-v2"``, ``"declipnet-v2-int8"``, ...) or an
            ONNX file. Default: automatic, DeclipNet v2 in the precision of the device that runs
            it (int8 on the CPU, float16 on CUDA/TensorRT; ``libdeclip models`` lists them).
        device: a :class:`Device` or its string, or ``"cuda:N"``. A missing GPU falls back to the
            CPU with a :class:`~libdeclip.DeviceFallbackWarning`.
        fit: what happens to values recovered beyond the clip levels (:class:`~libdeclip.Fit`):
            ``"compress"`` (default for integers), ``"clamp"`` or ``"float"`` (default for floats).
        feather: blend the network's reconstruction into unclipped values up to this many pixels
            (0 to 254) from a clipped pixel. Default 0: unclipped values are never touched.
        tolerance: values within this fraction of the range from a clip level count as clipped.
        consistency: a value clipped high only ever moves up, one clipped low only down.
        colorspace: the pixels' encoding (a name, ICC profile bytes or a ColorSpace) where the
            picture does not say (an array, a file without a profile). Default sRGB.
        clip_levels: ``(low, high)``, numbers or one per colour channel; default: the dtype's range.
    """

    method: str | None = AUTOMATIC
    model: str | Path | None = None
    device: Device | str = Device.AUTO
    fit: Fit | str | None = None
    feather: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    consistency: bool = True
    colorspace: ColorSpec = None
    clip_levels: ClipLevels | None = None

    def __post_init__(self) -> None:
        if self.method is not AUTOMATIC and self.method not in RAW_METHODS:
            names = ", ".join(RAW_METHODS)
            raise UnsupportedInputError(f"unknown method {self.method!r}: use one of {names}")
        try:
            feather = operator.index(self.feather)
        except TypeError:
            feather = -1
        if not 0 <= feather <= MAX_FEATHER:
            raise UnsupportedInputError(f"feather must be 0 to {MAX_FEATHER} pixels, got {self.feather}")
        object.__setattr__(self, "feather", feather)
        if not math.isfinite(float(self.tolerance)):
            raise UnsupportedInputError(f"tolerance must be a number, got {self.tolerance}")
        if self.fit is not None:
            try:
                object.__setattr__(self, "fit", Fit(self.fit))
            except ValueError:
                names = ", ".join(f.value for f in Fit)
                raise UnsupportedInputError(f"unknown fit {self.fit!r}: use one of {names}") from None
        try:
            parse_device(str(self.device))
        except ValueError as exc:
            raise UnsupportedInputError(str(exc)) from None

    def replace(self, **changes: Any) -> RepairOptions:
        """A copy with ``changes`` (field names as keywords), checked like a new one."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"RepairOptions has no option {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)

    @property
    def fit_name(self) -> str | None:
        """:attr:`fit`'s name (``"compress"``, ``"clamp"``, ``"float"``), None for the default."""
        return None if self.fit is None else Fit(self.fit).value

    def method_for(self, raw: bool) -> str:
        """The method a picture gets: :attr:`method`, else the automatic one for its kind."""
        if self.method is AUTOMATIC:
            return COMBINED if raw else "declipnet"
        return self.method


def options_from(options: RepairOptions | None, fields: dict[str, Any]) -> RepairOptions:
    """``options`` (default: the defaults) with the keyword ``fields`` of a call applied."""
    base = options if options is not None else RepairOptions()
    return base.replace(**fields) if fields else base
