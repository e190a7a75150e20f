"""Camera RAW: read through rawpy (LibRaw), with the clip mask found on the photosites.

A RAW is read as **camera RGB**: demosaiced (LibRaw's AHD) without white balance, black level
subtracted, divided by the largest channel's white-level span, float32. Its colour space
(:attr:`RawInfo.colorspace`) maps that to linear sRGB through the camera's white balance as shot
and LibRaw's camera matrix, so the model sees a developed, white-balanced picture.

The mask is not guessed from the demosaiced values: a photosite is clipped when it reaches its
channel's white level (the declared one, or the level where the values pile up when the sensor
saturates below it), and a pixel's channel c counts as clipped when a clipped photosite of colour c
lies within :data:`DEMOSAIC_REACH` pixels (its 3 x 3 neighbourhood, which demosaicing
interpolates from). Shadows are not masked: in RAW they are noise, not clipping.

Outputs (:func:`develop` and :func:`libdeclip.write_image`): a linear DNG (camera RGB, colour
matrices, white balance and EXIF of the original, the white level raised by scaling the data
down, BaselineExposure compensating), a scene-referred float32 TIFF in linear Rec. 2020 with its
ICC profile, or a display-referred 16-bit sRGB TIFF at a chosen exposure with the fit policy.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from libdeclip import _dng
from libdeclip.color import _XYZ_TO_SRGB, ColorSpace, ToneCurve, get_colorspace, icc_profile
from libdeclip.errors import UnsupportedInputError, native_diagnostics
from libdeclip.fit import Fit, apply_fit

if TYPE_CHECKING:
    from libdeclip.io import Image
    from libdeclip.session import Declipper, Progress

__all__ = [
    "RAW_SUFFIXES", "DEMOSAIC_REACH", "RAW_METHODS", "RawInfo", "RawMosaic", "read_raw", "declip_raw",
    "develop", "is_raw_path", "needs_model",
]

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
_SATURATION_SHARE = 1e-5
_LIBRAW_TO_EXIF_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
_WORKING_SPACE = "linear-rec2020"
_MAX_DNG_HEADROOM = 16.0  # 4 EV above the original white level at most


@dataclass(frozen=True)
class RawMosaic:
    """A Bayer RAW's photosites as read, for the methods that repair them before demosaicing."""

    values: np.ndarray = field(repr=False)  # H x W float32: (photosite - its black) / span
    colours: np.ndarray = field(repr=False)  # H x W uint8: 0 R, 1 G, 2 B


#: The methods :func:`declip_raw` runs: the network, or a classical method (``inpaint-opposed``
#: works on the photosites of a Bayer RAW, the others on the demosaiced picture).
RAW_METHODS = ("opposed+declipnet", "declipnet", "inpaint-opposed", "cross-channel", "biharmonic")
#: The default for camera RAW (``libdeclip declip`` without ``--method``): the photosite inpaint
#: opposed where a channel survives, the network where all three are clipped. In the RAW benchmark
#: the photosite method is 3 dB ahead of the network where a channel survives (27.00 against 24.01
#: dB linear, mean of 12 pairs) and the network 1.2 dB ahead where all are clipped (18.35 against
#: 17.20): benchmarks/raw_quality.py.
COMBINED = "opposed+declipnet"
#: Pixels over which the combination goes from the photosite estimate to the network's, into an
#: area where every channel is clipped.
COMBINED_RAMP = 4


def needs_model(method: str | None) -> bool:
    """Whether a file repaired with ``method`` (None: the defaults, the network for RGB and
    :data:`COMBINED` for RAW) runs the network, so that a model session is needed."""
    return method in (None, "declipnet", COMBINED)


@dataclass(frozen=True)
class RawInfo:
    """What libdeclip keeps of a RAW file to develop it and to write it back as DNG."""

    make: str
    model: str
    cfa_pattern: str | None  # e.g. "RGGB"; None for linear (demosaiced) raw data
    black: tuple[float, float, float]  # per RGB channel, raw units
    white: tuple[float, float, float]  # effective saturation per RGB channel, raw units
    declared_white: int
    span: float  # raw units that camera RGB 1.0 stands for (largest white - black)
    wb: tuple[float, float, float]  # white balance as shot, smallest gain 1
    cam_to_srgb: tuple[float, ...]  # 3 x 3 row-major: white-balanced camera RGB -> linear sRGB
    xyz_to_cam: tuple[float, ...]  # 3 x 3 row-major: the DNG ColorMatrix (D65)
    clipped_share: float  # share of photosites at or above their white level
    baseline_exposure: float = 0.0
    orientation: int = 1  # EXIF orientation of the pixels (they are stored as the sensor reads)
    dng_colour_tags: tuple[Any, ...] = field(default=(), repr=False)  # a source DNG's colour tags
    notes: tuple[str, ...] = ()

    @property
    def clip_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per channel of camera RGB. High: each channel's white level; low: half a
        16-bit step below black, which no value reaches (shadows are not masked)."""
        high = np.array([(w - b) / self.span for w, b in zip(self.white, self.black, strict=True)])
        return np.full(3, -0.5 / 65535), high

    @property
    def balanced_colorspace(self) -> ColorSpace:
        """White-balanced camera RGB -> linear sRGB (the camera matrix alone)."""
        linear = ToneCurve("linear")
        m = np.array(self.cam_to_srgb).reshape(3, 3)
        return ColorSpace(f"camera:{self.make} {self.model} (balanced)", (linear, linear, linear), m)

    @property
    def colorspace(self) -> ColorSpace:
        """Camera RGB -> linear sRGB: white balance as shot, then the camera matrix."""
        balanced = self.balanced_colorspace
        return replace(balanced, name=f"camera:{self.make} {self.model}",
                       to_linear_srgb=balanced.to_linear_srgb @ np.diag(self.wb))


def declip_raw(
    session: Declipper | None, image: Image, *, method: str = "declipnet", progress: Progress = False
) -> np.ndarray:
    """Declip a RAW read by :func:`read_raw`; returns camera RGB (float32, values above 1 kept).

    ``method``: one of :data:`RAW_METHODS`. ``"opposed+declipnet"`` (:data:`COMBINED`, what
    ``libdeclip declip`` runs on a RAW by default) takes the photosite ``"inpaint-opposed"``
    where a channel survives and ``session``'s model where all three are clipped, with a ramp of
    :data:`COMBINED_RAMP` pixels between them; ``"declipnet"`` (the default here, for
    compatibility) runs the model alone; the classical methods need no session (pass None).

    Nothing a photosite measured is clipped away before the repair. After white balance a sensor's
    channels saturate at different levels (the red and blue gains lift theirs above green's), so
    each channel keeps its own clip level, its white level times its gain, and the repair is told
    which values were clipped by the photosite mask, not by a level. The network sees the
    white-balanced picture scaled so that the highest channel's level is 1, in its true colours
    (its colour space carries the per-channel levels, which the runtime divides by); only values
    under the photosite mask change, and never below what the photosites recorded. Every other
    value is returned as read (so there is no feathering into them).

    ``"inpaint-opposed"`` on a Bayer RAW repairs the clipped photosites themselves (the cube-root
    mean of the other two colours around each one plus a chroma offset per colour measured on the
    unclipped photosites ringing the clipped areas, as darktable's "inpaint opposed" does; native),
    and adds what each photosite gained, interpolated bilinearly, to the demosaiced values under
    the mask.
    """
    info, mask = image.raw, image.raw_mask
    if info is None or mask is None:
        raise ValueError("declip_raw() takes an image read from a camera RAW file")
    if method not in RAW_METHODS:
        raise UnsupportedInputError(
            f"unknown method {method!r} for camera RAW: use one of {', '.join(RAW_METHODS)}"
        )
    camera = image.pixels[..., :3]
    result = camera.copy()
    if not mask.any():
        return result
    gains = np.array(info.wb, dtype=np.float64)
    _, high = info.clip_levels

    def repair(method: str) -> np.ndarray:
        if method == "inpaint-opposed" and image.raw_mosaic is not None:
            return _opposed_from_photosites(image.raw_mosaic, camera, high, gains)
        levels = high * gains  # each channel's clip level, white balanced
        top = float(levels.max())
        shown = camera * (gains / top).astype(np.float32)
        relative = levels / top
        balanced = info.balanced_colorspace
        # The runtime divides each channel by its level; the matrix multiplies it back, so the
        # picture in model space keeps its colours.
        space = replace(balanced, to_linear_srgb=balanced.to_linear_srgb @ np.diag(relative))
        kwargs: dict[str, Any] = dict(clip_levels=(0.0, relative.tolist()), colorspace=space, tolerance=0.0,
                                      mask=mask, fit="float")
        if method == "declipnet":
            if session is None:
                raise ValueError(f"declip_raw(method={method!r}) needs a Declipper session")
            out = session.run(shown, progress=progress, **kwargs)
        else:
            from libdeclip.classic import declip_classic

            out = declip_classic(shown, method, **kwargs)
        return out * (top / gains).astype(np.float32)

    if method == COMBINED:
        recovered = _combine(repair("inpaint-opposed"), repair("declipnet"), np.asarray(mask.all(axis=2)))
    else:
        recovered = repair(method)
    result[mask] = np.maximum(recovered[mask], camera[mask])
    return result


def _combine(opposed: np.ndarray, network: np.ndarray, all_clipped: np.ndarray) -> np.ndarray:
    """The photosite estimate where a channel survives, the network's deep inside the areas where
    every channel is clipped, and between them a ramp over :data:`COMBINED_RAMP` pixels (a hard
    switch would draw the areas' outlines)."""
    from scipy.ndimage import distance_transform_cdt

    if not all_clipped.any():
        return opposed
    depth = distance_transform_cdt(all_clipped, metric="chessboard")  # 1 on an area's edge
    weight = (np.minimum(depth, COMBINED_RAMP) / np.float32(COMBINED_RAMP)).astype(np.float32)[..., None]
    return opposed + weight * (network - opposed)


def _opposed_from_photosites(mosaic: RawMosaic, camera: np.ndarray, high: np.ndarray, gains: np.ndarray
                             ) -> np.ndarray:
    """Camera RGB with the photosite repair of inpaint opposed added: each colour's gain at its own
    photosites, and between them the mean gain of the nearest ones (bilinear demosaicing of the
    gains, so the demosaiced detail of the unclipped channels is kept)."""
    from scipy.ndimage import uniform_filter

    from libdeclip import _native

    repaired = _native.opposed_photosites(mosaic.values, mosaic.colours, high.tolist(), gains.tolist())
    gained = repaired - mosaic.values
    out = camera.copy()
    for k in range(3):
        own = mosaic.colours == k
        if not own.any():
            continue
        plane = np.where(own, gained, np.float32(0.0))
        # the 3 x 3 mean of colour k's gains where the pixel has none of its own (mode="constant":
        # outside the sensor there are no photosites, so they count for neither sum)
        total = uniform_filter(plane, size=3, mode="constant")
        count = uniform_filter(own.astype(np.float32), size=3, mode="constant")
        spread = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        out[..., k] += np.where(own, plane, spread)
    return out


def is_raw_path(path: Path) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def _tiff_tags(path: Path) -> dict[int, tuple[int, int, Any]]:
    """IFD 0 tags of a TIFF-based RAW (DNG, NEF, CR2, ARW, ...) as code -> (TIFF type, count,
    value); {} for other containers (CR3, RAF, ...), which LibRaw alone reads."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return {t.code: (int(t.dtype), int(t.count), t.value) for t in page.tags}
    except Exception:
        return {}


def page_data_end(page: Any) -> int:
    """Where one TIFF page's strips or tiles end in the file, by their byte counts and, for
    uncompressed strips, by the rows they must hold (LibRaw reads those whatever the counts say)."""
    offsets = list(getattr(page, "dataoffsets", None) or ())
    counts = list(getattr(page, "databytecounts", None) or ())
    ends = [o + n for o, n in zip(offsets, counts, strict=False) if n]
    try:
        if int(page.compression) == 1 and not page.is_tiled and int(page.planarconfig) == 1:
            height = int(page.imagelength)
            row = (int(page.imagewidth) * int(page.samplesperpixel) * int(page.bitspersample) + 7) // 8
            rows = min(int(page.rowsperstrip or height), height) or 1
            ends += [
                o + min(rows, height - i * rows) * row for i, o in enumerate(offsets) if i * rows < height
            ]
    except (AttributeError, TypeError, ValueError):
        pass
    return max(ends, default=0)


def tiff_data_end(path: Path) -> int:
    """Where the image data of a TIFF-structured file end: the largest :func:`page_data_end` over
    its IFDs and their SubIFDs (a DNG keeps its raw data in one); 0 for other containers."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            todo: list[Any] = list(tif.pages)
            end, seen = 0, 0
            while todo and seen < 256:  # a hostile file may nest SubIFDs without end
                page = todo.pop()
                seen += 1
                end = max(end, page_data_end(page))
                if getattr(page, "subifds", None):
                    todo.extend(tifffile.TiffPages(page))
            return end
    except Exception:
        return 0


def _text_tag(tags: dict[int, tuple[int, int, Any]], *codes: int) -> str | None:
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
    at_top = int(np.count_nonzero(values == top))
    if top >= 0.5 * declared and at_top >= max(16, _SATURATION_SHARE * values.size):
        return top
    return declared


def _dilate(mask: np.ndarray, reach: int) -> np.ndarray:
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

    from libdeclip.io import Image, _check_dimensions, pixel_limit

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
        try:
            _check_dimensions(raw.sizes.raw_width, raw.sizes.raw_height, limit)
        except UnsupportedInputError as exc:
            raise UnsupportedInputError(f"{path}: {exc}") from None
        # LibRaw reads past the end of a truncated file (zeros, and a message on stderr): refuse it
        # where the container says where its data end.
        size, end = path.stat().st_size, tiff_data_end(path)
        if end > size:
            raise UnsupportedInputError(
                f"{path}: truncated RAW file: its image data run to byte {end:,} of a {size:,}-byte file"
            )
        try:
            with native_diagnostics(f"{path}: ") as said:
                raw.unpack()
        except (rawpy.LibRawError, OSError, ValueError) as exc:
            raise UnsupportedInputError(
                f"{path}: LibRaw cannot unpack this RAW file ({_reason(exc, said, path)})"
            ) from None
        if said:  # LibRaw read on past damaged data and says so: its picture is not the camera's
            raise UnsupportedInputError(f"{path}: damaged RAW data (LibRaw: {_reason(None, said, path)})")
        flip = raw.sizes.flip  # before postprocess(user_flip=0), which resets it
        tags = _tiff_tags(path)
        make = _text_tag(tags, _dng.MAKE) or "unknown"
        model = _text_tag(tags, _dng.MODEL, _dng.UNIQUE_CAMERA_MODEL) or path.suffix.lstrip(".").upper()
        desc = raw.color_desc.decode("ascii", "replace")
        if raw.num_colors != 3 or sorted(set(desc[:4])) != ["B", "G", "R"]:
            raise UnsupportedInputError(f"{path}: colour filter {desc!r}: only RGB sensors are supported")
        channel_of = np.array(["RGB".index(ch) for ch in desc[:4]])  # LibRaw colour index -> RGB
        blacks = np.asarray(raw.black_level_per_channel, dtype=np.float64)
        declared = int(raw.white_level)
        per_channel_white = raw.camera_white_level_per_channel
        linear = raw.raw_type == rawpy.RawType.Stack
        visible = raw.raw_image_visible
        colours = None if linear else channel_of[raw.raw_colors_visible]  # RGB channel per photosite
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
        span = float(np.max(white - black))
        if span <= 0:
            raise UnsupportedInputError(f"{path}: white level {white.tolist()} <= black {black.tolist()}")

        notes: list[str] = []
        if colours is None:
            camera = (visible[..., :3].astype(np.float32) - black.astype(np.float32)) / np.float32(span)
            clipped = visible[..., :3] >= white
            photosites_clipped = float(clipped.mean())
            pattern = None
            mosaic = None
        else:
            clipped_sites = visible >= white[colours]
            photosites_clipped = float(clipped_sites.mean())
            clipped = np.stack(
                [_dilate(clipped_sites & (colours == k), DEMOSAIC_REACH) for k in range(3)], axis=2
            )
            pattern = "".join("RGB"[c] for c in colours[:2, :2].ravel())
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
            xyz_to_cam = np.linalg.inv(cam_to_srgb @ np.diag(wb)) @ _XYZ_TO_SRGB
        carried = tuple(
            (code, typ, count, value, True)
            for code, (typ, count, value) in sorted(tags.items())
            if code in _dng.CARRIED_COLOUR_TAGS
        )
        baseline = 0.0
        if _dng.BASELINE_EXPOSURE in tags:
            num, den = tags[_dng.BASELINE_EXPOSURE][2][:2]
            baseline = num / den if den else 0.0
        info = RawInfo(
            make=make, model=model, cfa_pattern=pattern,
            black=(black[0], black[1], black[2]), white=(white[0], white[1], white[2]),
            declared_white=declared, span=span, wb=(wb[0], wb[1], wb[2]),
            cam_to_srgb=tuple(cam_to_srgb.ravel().tolist()), xyz_to_cam=tuple(xyz_to_cam.ravel().tolist()),
            clipped_share=photosites_clipped, baseline_exposure=baseline,
            orientation=_LIBRAW_TO_EXIF_ORIENTATION.get(flip, 1),
            dng_colour_tags=carried, notes=tuple(notes),
        )
    from libdeclip._tiffexif import read_exif

    exif = None
    if tags:
        with open(path, "rb") as f:
            try:
                exif = read_exif(f)
            except (ValueError, OSError, IndexError, struct.error):
                exif = None
    return Image(
        pixels=np.ascontiguousarray(camera, dtype=np.float32), format="raw", path=path, raw=info,
        raw_mask=clipped, tiff_exif=exif, orientation=info.orientation, raw_mosaic=mosaic,
    )


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


# ----------------------------------------------------------------------------------- develop


def _to_working(pixels: np.ndarray, info: RawInfo) -> np.ndarray:
    """Camera RGB -> linear Rec. 2020 (float64 matrix, float32 result)."""
    to_srgb = info.colorspace.to_linear_srgb
    to_rec2020 = np.linalg.inv(get_colorspace(_WORKING_SPACE).to_linear_srgb)
    m = (to_rec2020 @ to_srgb).astype(np.float32)
    return pixels[..., :3] @ m.T


def develop(
    image: Image, kind: str = "tiff32", *, exposure: float = 0.0, fit: Fit | str = Fit.COMPRESS
) -> Image:
    """A declipped RAW (camera RGB, :func:`read_raw`) as an ordinary image to write.

    ``kind``: ``"tiff32"`` scene-referred float32 in linear Rec. 2020 with its ICC profile
    (values above 1 are the recovered highlights; ``exposure`` in EV scales them); ``"tiff16"``
    display-referred 16-bit sRGB: exposure, sRGB curve, then ``fit`` brings the values above 1 into
    range (``"compress"``: a smooth shoulder; ``"clamp"``; ``"float"`` is refused here);
    ``"srgb8"`` the same in 8 bits (PNG, JPEG, previews).
    """
    from libdeclip.color import to_model
    from libdeclip.io import Image

    if image.raw is None:
        raise ValueError("develop() takes an image read from a camera RAW file")
    gain = np.float32(2.0**exposure)

    def as_tiff(pixels: np.ndarray, space: str) -> Image:
        return Image(
            pixels=pixels, format="tiff", icc_profile=icc_profile(space), tiff_compression="zlib",
            tiff_exif=image.tiff_exif, orientation=image.orientation, path=image.path,
        )

    if kind == "tiff32":
        return as_tiff((_to_working(image.pixels, image.raw) * gain).astype(np.float32), _WORKING_SPACE)
    if kind not in ("tiff16", "srgb8"):
        raise ValueError(f"unknown RAW development {kind!r}; use tiff32, tiff16 or srgb8")
    fit = Fit(fit)
    if fit is Fit.FLOAT:
        raise ValueError("integer output needs fit 'compress' or 'clamp'")
    encoded = to_model(image.pixels[..., :3].astype(np.float64) * float(gain), image.raw.colorspace)
    fitted = apply_fit(encoded, fit, float(min(encoded.min(), 0.0)), float(max(encoded.max(), 1.0)))
    scale = 65535.0 if kind == "tiff16" else 255.0
    dtype = np.uint16 if kind == "tiff16" else np.uint8
    return as_tiff(np.clip(np.rint(fitted * scale), 0, scale).astype(dtype), "srgb")


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
    desc = _dng.DngDescription(
        black=[0.0], white=[65535], color_matrix_1=np.array(info.xyz_to_cam).reshape(3, 3),
        as_shot_neutral=neutral / neutral.max(),
        baseline_exposure=info.baseline_exposure + math.log2(headroom),  # keeps the brightness
        make=info.make, model=info.model, orientation=image.orientation or 1,
        carried=list(info.dng_colour_tags), exif_placeholder_tag=exif_placeholder_tag,
    )
    _dng.write_dng(out, data, desc)

