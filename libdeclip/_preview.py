"""8-bit previews of a picture and its clip mask, for looking at (the report page, the CLI's
before | after picture).
"""

from __future__ import annotations

from io import BytesIO

import numpy as np

from libdeclip.color import get_colorspace, to_model
from libdeclip.io import Image

__all__ = ["MAX_PREVIEW_WIDTH", "any_channel", "encode", "fit_width", "overlay", "preview", "shrink_mask",
           "to_8bit"]

#: Previews are scaled down to at most this many pixels wide.
MAX_PREVIEW_WIDTH = 1600

_HIGH_RGBA = (255, 0, 255, 160)  # clip-mask overlay: clipped high
_LOW_RGBA = (0, 200, 255, 160)  # clipped low




def to_8bit(image: Image, pixels: np.ndarray) -> np.ndarray:
    """8-bit sRGB for looking at: scene-linear OpenEXR gets the sRGB curve, the rest its levels.

    ``pixels`` are ``image``'s (or its result's, or a scaled-down copy's): H x W (x C), read
    against ``image``'s clip levels, colour space and camera RAW development. Alpha is dropped.
    """
    from libdeclip.develop import develop

    if image.raw is not None:  # camera RGB: developed to sRGB like the 8-bit output
        return develop(image.with_pixels(pixels), "srgb8", fit="clamp").pixels
    lo, hi = image.clip_levels
    x = (pixels.astype(np.float64) - lo) / (hi - lo)
    if x.ndim == 3 and x.shape[2] in (2, 4):
        x = x[..., :-1]
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if image.format == "exr" and not image.icc_profile:  # linear sRGB -> sRGB-encoded
        rgb = x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)
        rgb = to_model(rgb, get_colorspace("linear-srgb"))
        x = rgb if x.ndim == 3 else rgb[..., 0]
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _block_mean(pixels: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks (the last < k rows and columns dropped), float32."""
    h, w = pixels.shape[0] // k * k, pixels.shape[1] // k * k
    x = pixels[:h, :w]
    return x.reshape(h // k, k, w // k, k, *x.shape[2:]).mean(axis=(1, 3), dtype=np.float32)


def preview(image: Image, pixels: np.ndarray, max_width: int = MAX_PREVIEW_WIDTH) -> np.ndarray:
    """:func:`to_8bit` of ``pixels``, at most ``max_width`` wide: averaged over blocks first, so a
    large photo never becomes a float64 copy at full size, then scaled with Lanczos."""
    k = pixels.shape[1] // max_width
    small = to_8bit(image, _block_mean(pixels, k) if k >= 2 else pixels)
    return fit_width(small, max_width)


def fit_width(pixels: np.ndarray, max_width: int) -> np.ndarray:
    from PIL import Image as PILImage

    if pixels.shape[1] <= max_width:
        return pixels
    im = PILImage.fromarray(pixels)
    height = max(1, round(im.height * max_width / im.width))
    return np.asarray(im.resize((max_width, height), PILImage.Resampling.LANCZOS, reducing_gap=3.0))


def shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H x W boolean mask at ``size`` (width, height): a pixel is set when any pixel it covers is."""
    from PIL import Image as PILImage

    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    im = PILImage.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.resize(size, PILImage.Resampling.BOX)) > 0


_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # EXIF orientation, as PIL's exif_transpose


def encode(pixels: np.ndarray, kind: str, orientation: int | None) -> bytes:
    from PIL import Image as PILImage

    im = PILImage.fromarray(pixels)
    if orientation in _TRANSPOSE:
        im = im.transpose(PILImage.Transpose[_TRANSPOSE[orientation]])
    buf = BytesIO()
    if kind == "jpeg":
        im.save(buf, "JPEG", quality=90)
    else:
        im.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def overlay(high: np.ndarray, low: np.ndarray | None) -> np.ndarray:
    """H x W x 4 RGBA: the overlay colours where clipped, transparent elsewhere."""
    out = np.zeros((*high.shape, 4), dtype=np.uint8)
    if low is not None:
        out[low] = _LOW_RGBA
    out[high] = _HIGH_RGBA
    return out


def any_channel(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask.any(axis=2)) if mask.ndim == 3 else mask

