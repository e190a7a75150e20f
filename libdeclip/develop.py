"""Development of a camera RAW: the declipped camera RGB of :func:`libdeclip.io.read_raw` as an
ordinary image to write, in colour and with the fit policy.

Three kinds: a scene-referred float32 TIFF in linear Rec. 2020 with its ICC profile (``"tiff32"``),
a display-referred 16-bit sRGB TIFF at a chosen exposure with the fit policy (``"tiff16"``), and the
same in 8 bits (``"srgb8"``: PNG, JPEG, previews). :func:`libdeclip.io.write_image` develops a RAW
image written to one of those formats; a DNG keeps camera RGB (:mod:`libdeclip.io.dng`).

>>> import numpy as np
>>> from libdeclip.io.image import Image, RawInfo
>>> info = RawInfo(make="Libdeclip", model="Synthetic", cfa_pattern=None, black=(0.0, 0.0, 0.0),
...                white=(1.0, 1.0, 1.0), declared_white=1, span=1.0, wb=(1.0, 1.0, 1.0),
...                cam_to_srgb=(1, 0, 0, 0, 1, 0, 0, 0, 1), xyz_to_cam=(1, 0, 0, 0, 1, 0, 0, 0, 1),
...                clipped_share=0.0)
>>> camera = Image(np.array([[[0.0, 0.5, 2.0]]], dtype=np.float32), format="raw", raw=info)
>>> developed = develop(camera, "srgb8", fit="clamp")
>>> developed.format, developed.pixels.dtype, developed.pixels.tolist()
('tiff', dtype('uint8'), [[[0, 188, 255]]])
"""

from __future__ import annotations

import numpy as np

from libdeclip.color import get_colorspace, icc_profile, to_model
from libdeclip.fit import Fit, apply_fit
from libdeclip.io.image import Image, RawInfo

__all__ = ["develop"]

_WORKING_SPACE = "linear-rec2020"  # of a scene-referred development ("tiff32")


def _to_working(pixels: np.ndarray, info: RawInfo) -> np.ndarray:
    """Camera RGB -> linear Rec. 2020 (float64 matrix, float32 result)."""
    to_srgb = info.colorspace.to_linear_srgb
    to_rec2020 = np.linalg.inv(get_colorspace(_WORKING_SPACE).to_linear_srgb)
    m = (to_rec2020 @ to_srgb).astype(np.float32)
    return pixels[..., :3] @ m.T


def develop(
    image: Image, kind: str = "tiff32", *, exposure: float = 0.0, fit: Fit | str = Fit.COMPRESS
) -> Image:
    """A declipped RAW (camera RGB, :func:`~libdeclip.io.read_raw`) as an ordinary image to write.

    ``kind``: ``"tiff32"`` scene-referred float32 in linear Rec. 2020 with its ICC profile
    (values above 1 are the recovered highlights; ``exposure`` in EV scales them); ``"tiff16"``
    display-referred 16-bit sRGB: exposure, sRGB curve, then ``fit`` brings the values above 1 into
    range (``"compress"``: a smooth shoulder; ``"clamp"``; ``"float"`` is refused here);
    ``"srgb8"`` the same in 8 bits (PNG, JPEG, previews).
    """
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
