"""Camera RAW: read through rawpy (LibRaw), with the clip mask found on the photosites.

A RAW is read as **camera RGB**: demosaiced (LibRaw's AHD) without white balance, black level
subtracted, divided by the largest channel's white-level span, float32. Its colour space
(:attr:`~libdeclip.io.image.RawInfo.colorspace`) maps that to linear sRGB through the camera's
white balance as shot and LibRaw's camera matrix, so the model sees a developed, white-balanced
picture.

The mask is not guessed from the demosaiced values: a photosite is clipped when it reaches its
channel's white level (the declared one, or the level where the values pile up when the sensor
saturates below it), and a pixel's channel c counts as clipped when a clipped photosite of colour c
lies within :data:`DEMOSAIC_REACH` pixels (its 3 x 3 neighbourhood, which demosaicing
interpolates from). Shadows are not masked: in RAW they are noise, not clipping.

The repair of what was read is :mod:`libdeclip.photosites`; what it becomes in an ordinary file,
:mod:`libdeclip.develop`; a declipped RAW written back as DNG, :mod:`libdeclip.io.dng`.

>>> import numpy as np
>>> clipped = np.zeros((5, 5), dtype=bool)
>>> clipped[2, 2] = True
>>> dilate(clipped, DEMOSAIC_REACH).astype(int)
array([[0, 0, 0, 0, 0],
       [0, 1, 1, 1, 0],
       [0, 1, 1, 1, 0],
       [0, 1, 1, 1, 0],
       [0, 0, 0, 0, 0]])
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip._tiffexif import ExifEntry, read_exif
from libdeclip.color import XYZ_TO_SRGB
from libdeclip.errors import UnsupportedInputError, native_diagnostics
from libdeclip.io.dng import BASELINE_EXPOSURE, CARRIED_COLOUR_TAGS, MAKE, MODEL, UNIQUE_CAMERA_MODEL
from libdeclip.io.image import Image, RawInfo, RawMosaic, check_dimensions, pixel_limit
from libdeclip.io.tiff import tiff_data_end
from libdeclip.mask import piles_up

__all__ = ["RAW_SUFFIXES", "DEMOSAIC_REACH", "read_raw", "is_raw_path", "dilate"]

#: File name suffixes sent to LibRaw (lower case).
RAW_SUFFIXES = frozenset(
    ".3fr .ari .arw .bay .cr2 .cr3 .crw .dcr .dcs .dng .erf .fff .iiq .k25 .kdc .mef .mos .mrw .nef .nrw "
    ".orf .pef .ptx .raf .raw .rw2 .rwl .rwz .sr2 .srf .srw .x3f".split()
)
#: A pixel's channel c is clipped when a clipped photosite of colour c lies within this many pixels:
#: its 3 x 3 neighbourhood, where demosaicing takes the samples of c it interpolates from. AHD
#: reaches further (raising one photosite of a real DNG moved values of its colour up to 4 px
#: away) but by little: on RAW pairs with known truth, green 2-4 px from a clipped photosite is off
#: by 0.07% of white on average. Masking those too would let the model raise measured values.
DEMOSAIC_REACH = 1
#: A white level is "where the values pile up" when at least this share of a channel's
#: photosites (and 16 of them) sit exactly at its top value.
_LIBRAW_TO_EXIF_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}

_Tags = dict[int, tuple[int, int, Any]]  # IFD 0 of a TIFF-based RAW: code -> (TIFF type, count, value)


def is_raw_path(path: Path) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def _tiff_tags(path: Path) -> _Tags:
    """IFD 0 tags of a TIFF-based RAW (DNG, NEF, CR2, ARW, ...) as code -> (TIFF type, count,
    value); {} for other containers (CR3, RAF, ...), which LibRaw alone reads."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return {t.code: (int(t.dtype), int(t.count), t.value) for t in page.tags}
    except Exception:
        return {}


def _text_tag(tags: _Tags, *codes: int) -> str | None:
    for code in codes:
        if code in tags and isinstance(tags[code][2], str) and tags[code][2].strip():
            return tags[code][2].strip()
    return None


def _effective_white(values: np.ndarray, declared: float) -> float:
    """The declared white level, or the lower level where a sensor's values pile up."""
    if values.size == 0:
        return declared
    top = float(values.max())
    if top >= declared:
        return declared
    if top >= 0.5 * declared and piles_up(values, top):
        return top
    return declared


def dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Square (chessboard) dilation of a boolean image by ``reach`` pixels."""
    if reach <= 0 or not mask.any():
        return mask
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, min(reach, n - 1) + 1):
            lead = [slice(None)] * 2
            lag = [slice(None)] * 2
            lead[axis], lag[axis] = slice(d, None), slice(None, n - d)
            out[tuple(lead)] |= src[tuple(lag)]
            out[tuple(lag)] |= src[tuple(lead)]
    return out


def read_raw(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Read a camera RAW file as camera RGB with its clip mask; see the module docstring.

    A sensor larger than ``max_pixels`` photosites (default: :func:`libdeclip.io.pixel_limit`) is
    refused from the file's header, before LibRaw unpacks it."""
    import rawpy

    path = Path(path)
    limit = pixel_limit(max_pixels)
    said: list[str] = []
    try:
        with native_diagnostics(f"{path}: ") as said:  # LibRaw prints what it finds on stderr
            raw = rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise UnsupportedInputError(
            f"{path}: LibRaw cannot read this RAW file ({_reason(exc, said, path)})"
        ) from None
    with raw:
        _unpack(raw, path, limit)
        flip = raw.sizes.flip  # before postprocess(user_flip=0), which resets it
        tags = _tiff_tags(path)
        make = _text_tag(tags, MAKE) or "unknown"
        model = _text_tag(tags, MODEL, UNIQUE_CAMERA_MODEL) or path.suffix.lstrip(".").upper()
        desc = raw.color_desc.decode("ascii", "replace")
        if raw.num_colors != 3 or sorted(set(desc[:4])) != ["B", "G", "R"]:
            raise UnsupportedInputError(f"{path}: colour filter {desc!r}: only RGB sensors are supported")
        channel_of = np.array(["RGB".index(ch) for ch in desc[:4]])  # LibRaw colour index -> RGB
        linear = raw.raw_type == rawpy.RawType.Stack
        visible = raw.raw_image_visible
        colours = None if linear else channel_of[raw.raw_colors_visible]  # RGB channel per photosite
        black, white, declared = _levels(raw, channel_of, linear, visible, colours)
        span = float(np.max(white - black))
        if span <= 0:
            raise UnsupportedInputError(f"{path}: white level {white.tolist()} <= black {black.tolist()}")
        camera, clipped, photosites_clipped, mosaic = _camera_and_mask(raw, visible, colours, black, white,
                                                                       span, path)
        notes: list[str] = []
        wb, cam_to_srgb, xyz_to_cam = _colour(raw, notes)
        carried = tuple(
            (code, typ, count, value, True)
            for code, (typ, count, value) in sorted(tags.items())
            if code in CARRIED_COLOUR_TAGS
        )
        baseline = 0.0
        if BASELINE_EXPOSURE in tags:
            num, den = tags[BASELINE_EXPOSURE][2][:2]
            baseline = num / den if den else 0.0
        info = RawInfo(
            make=make, model=model,
            cfa_pattern=None if colours is None else "".join("RGB"[c] for c in colours[:2, :2].ravel()),
            black=(black[0], black[1], black[2]), white=(white[0], white[1], white[2]),
            declared_white=declared, span=span, wb=(wb[0], wb[1], wb[2]),
            cam_to_srgb=tuple(cam_to_srgb.ravel().tolist()), xyz_to_cam=tuple(xyz_to_cam.ravel().tolist()),
            clipped_share=photosites_clipped, baseline_exposure=baseline,
            orientation=_LIBRAW_TO_EXIF_ORIENTATION.get(flip, 1),
            dng_colour_tags=carried, notes=tuple(notes),
        )
    return Image(
        pixels=np.ascontiguousarray(camera, dtype=np.float32), format="raw", path=path, raw=info,
        raw_mask=clipped, tiff_exif=_raw_exif(path, tags), orientation=info.orientation, raw_mosaic=mosaic,
    )


def _unpack(raw: Any, path: Path, limit: int) -> None:
    """Refuse a sensor above ``limit`` photosites or a truncated file, then unpack the photosites;
    refuse them if LibRaw reports damage while unpacking."""
    import rawpy

    try:
        check_dimensions(raw.sizes.raw_width, raw.sizes.raw_height, limit)
    except UnsupportedInputError as exc:
        raise UnsupportedInputError(f"{path}: {exc}") from None
    # LibRaw reads past the end of a truncated file (zeros, and a message on stderr): refuse it
    # where the container says where its data end.
    size, end = path.stat().st_size, tiff_data_end(path)
    if end > size:
        raise UnsupportedInputError(
            f"{path}: truncated RAW file: its image data run to byte {end:,} of a {size:,}-byte file"
        )
    said: list[str] = []
    try:
        with native_diagnostics(f"{path}: ") as said:
            raw.unpack()
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise UnsupportedInputError(
            f"{path}: LibRaw cannot unpack this RAW file ({_reason(exc, said, path)})"
        ) from None
    if said:  # LibRaw read on past damaged data and says so: its picture is not the camera's
        raise UnsupportedInputError(f"{path}: damaged RAW data (LibRaw: {_reason(None, said, path)})")


def _levels(raw: Any, channel_of: np.ndarray, linear: bool, visible: np.ndarray, colours: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """Black and (effective) white level per RGB channel, and the declared white level."""
    blacks = np.asarray(raw.black_level_per_channel, dtype=np.float64)
    declared = int(raw.white_level)
    per_channel_white = raw.camera_white_level_per_channel
    black = np.zeros(3)
    white = np.zeros(3)
    for k in range(3):
        idx = [i for i in range(4) if channel_of[i] == k and i < len(blacks)]
        # a Bayer sensor's two greens may have slightly different blacks; linear data has
        # one plane per channel (LibRaw's fourth entry is unused there)
        black[k] = float(blacks[k] if linear else np.mean(blacks[idx]))
        declared_k = float(per_channel_white[idx[0]]) if per_channel_white is not None else declared
        # Sensors that saturate below their declared white show it as a pile-up of photosites
        # at one value. Linear (demosaiced) raw data come from software that states its white
        # level, and a flat bright area there is not saturation (our own DNGs have them).
        if colours is None:
            white[k] = declared_k
        else:
            white[k] = _effective_white(visible[colours == k], declared_k)
    return black, white, declared


def _camera_and_mask(raw: Any, visible: np.ndarray, colours: np.ndarray | None, black: np.ndarray,
                     white: np.ndarray, span: float, path: Path
                     ) -> tuple[np.ndarray, np.ndarray, float, RawMosaic | None]:
    """Camera RGB, the clip mask per channel, the share of clipped photosites and (Bayer) the
    photosites as read."""
    if colours is None:
        camera = (visible[..., :3].astype(np.float32) - black.astype(np.float32)) / np.float32(span)
        clipped = visible[..., :3] >= white
        photosites_clipped = float(clipped.mean())
        mosaic = None
    else:
        clipped_sites = visible >= white[colours]
        photosites_clipped = float(clipped_sites.mean())
        clipped = np.stack(
            [dilate(clipped_sites & (colours == k), DEMOSAIC_REACH) for k in range(3)], axis=2
        )
        camera = _demosaic(raw, visible, colours, black, span, path)
        mosaic = RawMosaic(
            values=((visible.astype(np.float32) - black.astype(np.float32)[colours]) / np.float32(span)),
            colours=colours.astype(np.uint8),
        )
    if camera.shape[:2] != clipped.shape[:2]:
        raise UnsupportedInputError(
            f"{path}: LibRaw's image ({camera.shape[1]} x {camera.shape[0]}) is not the sensor's "
            f"({clipped.shape[1]} x {clipped.shape[0]}); this sensor layout is not supported"
        )
    return camera, clipped, photosites_clipped, mosaic


def _colour(raw: Any, notes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """White balance as shot (smallest gain 1), camera -> sRGB and XYZ -> camera matrices, with
    ``notes`` on what the file lacked."""
    wb = np.asarray(raw.camera_whitebalance[:3], dtype=np.float64)
    if not np.all(wb > 0):
        notes.append("no white balance in the file: daylight gains of LibRaw used")
        wb = np.asarray(raw.daylight_whitebalance[:3], dtype=np.float64)
    if not np.all(wb > 0):
        notes.append("no white balance known: none applied")
        wb = np.ones(3)
    wb = wb / wb.min()
    cam_to_srgb = np.asarray(raw.color_matrix, dtype=np.float64)[:, :3]
    if not np.any(cam_to_srgb):
        notes.append("no colour matrix in the file: camera RGB taken as sRGB")
        cam_to_srgb = np.eye(3)
    elif not np.isfinite(cam_to_srgb).all() or abs(np.linalg.det(cam_to_srgb)) < 1e-9:
        notes.append("the file's colour matrix is singular (damaged?): camera RGB taken as sRGB")
        cam_to_srgb = np.eye(3)
    xyz_to_cam: np.ndarray = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
    if not np.any(xyz_to_cam):  # from the camera -> sRGB matrix: XYZ -> sRGB -> camera
        xyz_to_cam = np.linalg.inv(cam_to_srgb @ np.diag(wb)) @ XYZ_TO_SRGB
    return wb, cam_to_srgb, xyz_to_cam


def _raw_exif(path: Path, tags: _Tags) -> tuple[ExifEntry, ...] | None:
    """The EXIF sub-IFD of a TIFF-based RAW, or None (other containers, or a damaged one)."""
    exif = None
    if tags:
        with open(path, "rb") as f:
            try:
                exif = read_exif(f)
            except (ValueError, OSError, IndexError, struct.error):
                exif = None
    return exif


def _reason(exc: BaseException | None, said: list[str] | None = None, path: Path | None = None) -> str:
    """LibRaw's message for an error (rawpy gives it as a bytes literal, b'...'), and what LibRaw
    printed about the file."""
    parts = []
    if exc is not None:
        text = str(exc)
        if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
            text = text[2:-1]
        parts.append(text or type(exc).__name__)
    parts += [line.removeprefix(f"{path}: ") for line in said or []][:2]
    return "; ".join(dict.fromkeys(parts))


def _demosaic(raw: Any, visible: np.ndarray, colours: np.ndarray, black: np.ndarray, span: float,
              path: Path) -> np.ndarray:
    """AHD through LibRaw, in camera RGB, no white balance, no clipping, no rotation; rescaled so
    that every channel is (photosite - black) / span exactly at its own photosites."""
    import rawpy

    try:
        rgb = raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, use_camera_wb=False, user_wb=[1.0, 1.0, 1.0, 1.0],
            output_color=rawpy.ColorSpace.raw, gamma=(1, 1), no_auto_bright=True, output_bps=16,
            user_flip=0, highlight_mode=rawpy.HighlightMode.Ignore, user_sat=int(black.min() + span),
        )
    except (rawpy.LibRawError, ValueError) as exc:
        raise UnsupportedInputError(f"{path}: LibRaw cannot develop this RAW file ({_reason(exc)})") from None
    camera = np.empty(rgb.shape, dtype=np.float32)
    for k in range(3):
        # LibRaw's own scale (maximum, per-channel black) is not exposed: measure it where the
        # output is the photosite itself (demosaicing keeps measured samples) and invert it.
        at = (colours == k) & (visible > black[k] + 0.02 * span) & (visible < black[k] + 0.9 * span)
        at &= rgb[..., k] < 65535
        measured = visible[at].astype(np.float64) - black[k]
        gain = float(np.median(rgb[..., k][at] / measured)) if measured.size >= 16 else 0.0
        if not 0.0 < gain < np.inf:  # too few samples, or LibRaw gave nothing back for them
            gain = 65535.0 / span
        camera[..., k] = rgb[..., k] / np.float32(gain * span)
    return camera
