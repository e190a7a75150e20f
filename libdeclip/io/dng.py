"""Writing DNG files (Adobe DNG 1.4): 16-bit, uncompressed, one image in IFD 0.

Two layouts: ``LinearRaw`` (demosaiced camera RGB, what libdeclip writes after declipping a RAW:
:func:`write_declipped_dng`) and Bayer ``CFA`` (photosites, for building test files and benchmark
pairs: :func:`write_dng`). tifffile writes the TIFF structure; this module only chooses the DNG
tags. Uncompressed, because every DNG reader (LibRaw, darktable's rawspeed, Adobe's SDK) reads that.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from libdeclip.errors import UnsupportedInputError
from libdeclip.io.image import Image

# TIFF/EP and DNG tags by name (DNG specification 1.4, chapter 4)
CFA_REPEAT_PATTERN_DIM, CFA_PATTERN = 33421, 33422
DNG_VERSION, DNG_BACKWARD_VERSION, UNIQUE_CAMERA_MODEL = 50706, 50707, 50708
CFA_PLANE_COLOR, CFA_LAYOUT = 50710, 50711
BLACK_LEVEL_REPEAT_DIM, BLACK_LEVEL, WHITE_LEVEL = 50713, 50714, 50717
COLOR_MATRIX_1, COLOR_MATRIX_2 = 50721, 50722
CAMERA_CALIBRATION_1, CAMERA_CALIBRATION_2 = 50723, 50724
ANALOG_BALANCE, AS_SHOT_NEUTRAL, BASELINE_EXPOSURE = 50727, 50728, 50730
CALIBRATION_ILLUMINANT_1, CALIBRATION_ILLUMINANT_2 = 50778, 50779
FORWARD_MATRIX_1, FORWARD_MATRIX_2 = 50964, 50965
PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW = 32803, 34892
MAKE, MODEL, ORIENTATION, SOFTWARE = 271, 272, 274, 305
ILLUMINANT_D65 = 21

#: Colour-describing tags of a source DNG that stay true for its declipped LinearRaw copy (the
#: data keep the camera's native RGB, only scaled): carried over as they are.
CARRIED_COLOUR_TAGS = (
    COLOR_MATRIX_1, COLOR_MATRIX_2, CAMERA_CALIBRATION_1, CAMERA_CALIBRATION_2, ANALOG_BALANCE,
    CALIBRATION_ILLUMINANT_1, CALIBRATION_ILLUMINANT_2, FORWARD_MATRIX_1, FORWARD_MATRIX_2,
    50932, 50936, 50937, 50938, 50939, 50940, 50941, 50942, 50981, 50982,  # profile tags
)

_CFA_COLOURS = {"R": 0, "G": 1, "B": 2}
_MAX_DNG_HEADROOM = 16.0  # 4 EV above the original white level at most
_RATIONAL_DEN = 1_000_000

ExtraTag = tuple[int, int, int, Any, bool]  # tifffile's (code, TIFF type, count, value, writeonce)


def srational(values: Sequence[float] | np.ndarray) -> list[int]:
    """Signed rationals as tifffile takes them: numerator, denominator, numerator, ...; the
    denominator is 10^6, or smaller where a large value (a damaged file's matrix) needs it to fit
    32 bits."""
    out: list[int] = []
    for v in np.asarray(values, dtype=np.float64).ravel().tolist():
        if not math.isfinite(v) or abs(v) >= _INT32_MAX:
            raise UnsupportedInputError(f"the value {v} does not fit a DNG rational tag")
        den = min(_RATIONAL_DEN, int(_INT32_MAX // max(abs(v), 1.0)))
        out += [round(v * den), den]
    return out


_INT32_MAX = 2**31 - 1


@dataclass
class DngDescription:
    """What a DNG says about its data besides the pixels."""

    black: Sequence[float]  # per sample (LinearRaw) or per CFA colour
    white: Sequence[int]
    color_matrix_1: np.ndarray  # XYZ -> camera RGB, 3 x 3
    as_shot_neutral: Sequence[float]  # camera RGB of a neutral grey (1 / white-balance gains)
    illuminant_1: int = ILLUMINANT_D65
    baseline_exposure: float = 0.0
    make: str = "unknown"
    model: str = "unknown"
    unique_camera_model: str | None = None
    orientation: int = 1
    software: str = "libdeclip"
    carried: list[ExtraTag] = field(default_factory=list)  # colour tags of a source DNG
    exif_placeholder_tag: int | None = None  # see libdeclip._tiffexif


def write_dng(
    out: BinaryIO | str, data: np.ndarray, desc: DngDescription, cfa_pattern: str | None = None
) -> None:
    """Write ``data`` (uint16; H x W x 3 camera RGB, or H x W photosites with ``cfa_pattern``
    such as ``"RGGB"``, read row by row over the 2 x 2 tile) as a DNG to ``out``."""
    if data.dtype != np.uint16:
        raise ValueError(f"DNG data must be uint16, not {data.dtype}")
    if cfa_pattern is None and (data.ndim != 3 or data.shape[2] != 3):
        raise ValueError("a LinearRaw DNG holds H x W x 3 camera RGB")
    if cfa_pattern is not None and (data.ndim != 2 or len(cfa_pattern) != 4 or set(cfa_pattern) - set("RGB")):
        raise ValueError("a CFA DNG holds H x W photosites and a 2 x 2 pattern such as 'RGGB'")
    samples = 3 if cfa_pattern is None else 1
    # one black level, one per sample, or (CFA) one per photosite of the 2 x 2 repeat
    if len(desc.black) not in {1, samples, 4 if cfa_pattern else samples}:
        raise ValueError(f"need 1, {samples} or (CFA) 4 black levels, got {len(desc.black)}")
    carried_codes = {t[0] for t in desc.carried}
    tags: list[ExtraTag] = [
        (DNG_VERSION, 1, 4, bytes([1, 4, 0, 0]), True),
        (DNG_BACKWARD_VERSION, 1, 4, bytes([1, 1, 0, 0]), True),
        (UNIQUE_CAMERA_MODEL, 2, 0, desc.unique_camera_model or f"{desc.make} {desc.model}", True),
        (MAKE, 2, 0, desc.make, True),
        (MODEL, 2, 0, desc.model, True),
        (ORIENTATION, 3, 1, int(desc.orientation), True),
        (BLACK_LEVEL, 5, len(desc.black), srational([abs(float(b)) for b in desc.black]), True),
        (WHITE_LEVEL, 4, len(desc.white), [int(w) for w in desc.white], True),
        (AS_SHOT_NEUTRAL, 5, 3, [abs(v) for v in srational(desc.as_shot_neutral)], True),
        (BASELINE_EXPOSURE, 10, 1, srational([desc.baseline_exposure]), True),
    ]
    if COLOR_MATRIX_1 not in carried_codes:
        tags += [
            (COLOR_MATRIX_1, 10, 9, srational(desc.color_matrix_1), True),
            (CALIBRATION_ILLUMINANT_1, 3, 1, int(desc.illuminant_1), True),
        ]
    tags += desc.carried
    if cfa_pattern is not None:
        tags += [
            (CFA_REPEAT_PATTERN_DIM, 3, 2, (2, 2), True),
            (CFA_PATTERN, 1, 4, bytes(_CFA_COLOURS[c] for c in cfa_pattern), True),
            (CFA_PLANE_COLOR, 1, 3, bytes([0, 1, 2]), True),
            (CFA_LAYOUT, 3, 1, 1, True),
        ]
        if len(desc.black) == 4:
            tags.append((BLACK_LEVEL_REPEAT_DIM, 3, 2, (2, 2), True))
    if desc.exif_placeholder_tag is not None:
        tags.append((desc.exif_placeholder_tag, 4, 1, 0, True))

    import tifffile

    tifffile.imwrite(
        out,
        data,
        photometric=PHOTOMETRIC_LINEAR_RAW if cfa_pattern is None else PHOTOMETRIC_CFA,
        planarconfig="contig" if cfa_pattern is None else None,
        subfiletype=0,
        software=desc.software,
        extratags=tags,
        metadata=None,
    )


def dng_headroom(peak: float) -> float:
    """How far the white level rises in the DNG: the brightest value, to a power of two, <= 16."""
    return float(min(_MAX_DNG_HEADROOM, 2.0 ** math.ceil(math.log2(max(peak, 1.0)))))


def write_declipped_dng(out: BinaryIO | str, image: Image, exif_placeholder_tag: int | None) -> None:
    """Camera RGB (declipped, values above 1 allowed) as a LinearRaw DNG: the data are scaled down
    so that the brightest value fits under the white level; BaselineExposure makes up for it."""
    info = image.raw
    if info is None:
        raise ValueError("a DNG is written from an image read from a camera RAW file")
    top = float(np.nanmax(image.pixels[..., :3]))
    headroom = dng_headroom(top)
    if top > headroom:
        warnings.warn(
            f"recovered values up to {top:.1f}x the white level; the DNG holds {headroom:g}x, "
            "the rest is clipped",
            UserWarning, stacklevel=3,
        )
    scaled = np.rint(np.nan_to_num(image.pixels[..., :3]) * (65535.0 / headroom))
    data = np.clip(scaled, 0, 65535).astype(np.uint16)
    neutral = 1.0 / np.array(info.wb)
    desc = DngDescription(
        black=[0.0], white=[65535], color_matrix_1=np.array(info.xyz_to_cam).reshape(3, 3),
        as_shot_neutral=neutral / neutral.max(),
        baseline_exposure=info.baseline_exposure + math.log2(headroom),  # keeps the brightness
        make=info.make, model=info.model, orientation=image.orientation or 1,
        carried=list(info.dng_colour_tags), exif_placeholder_tag=exif_placeholder_tag,
    )
    write_dng(out, data, desc)

