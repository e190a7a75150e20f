"""libdeclip.composite: the order of the changing values, and the composite's contract."""

from __future__ import annotations

import numpy as np

from libdeclip.composite import BAND_ROWS, band_parts, composite
from libdeclip.fit import Fit
from libdeclip.mask import clip_codes


def test_band_parts_cover_the_image_and_keep_the_native_order() -> None:
    h, w = BAND_ROWS * 2 + 10, 5
    pixels = np.array([3, w * BAND_ROWS + 1, w * (2 * BAND_ROWS + 9) + 4], np.int64)
    values = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    changing = np.array([[True, False, True], [False, True, False], [True, True, True]])
    bands, parts = band_parts(h, w, pixels, values, changing)
    assert [(b.y0, b.y1) for b in bands] == [(0, BAND_ROWS), (BAND_ROWS, 2 * BAND_ROWS), (2 * BAND_ROWS, h)]
    assert [p.tile for p in parts] == bands
    assert [p.values.tolist() for p in parts] == [[np.float32(0.1), np.float32(0.3)], [np.float32(0.5)],
                                                 [np.float32(0.7), np.float32(0.8), np.float32(0.9)]]


def test_the_composite_writes_only_the_changing_values() -> None:
    image = np.full((4, 4, 3), 100, np.uint8)
    image[1, 2, 0] = 255
    colour = image
    low, high = np.zeros(3), np.full(3, 255.0)
    codes = clip_codes(colour, low, high, 0.0)
    pixels = np.flatnonzero(codes.ravel())
    bands, parts = band_parts(4, 4, pixels, np.array([[1.0, 0.5, 0.5]]), np.array([[True, False, False]]))
    out = composite(image, colour, low, high, 0.0, 0, Fit.CLAMP, bands, parts, codes, 1)
    assert np.array_equal(out, image)  # 1.0 of the clip range, clamped: the same 255
    assert out is not image
