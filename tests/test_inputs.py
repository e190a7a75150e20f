"""libdeclip.inputs: the checks every call's image and arguments go through, once."""

from __future__ import annotations

import numpy as np
import pytest

from libdeclip.errors import UnsupportedInputError
from libdeclip.fit import Fit
from libdeclip.inputs import dtype_range, prepare, resolve_clip_levels, resolve_colorspace


def test_default_clip_levels_follow_the_dtype() -> None:
    assert dtype_range(np.dtype(np.uint8)) == (0.0, 255.0)
    assert dtype_range(np.dtype(np.uint16)) == (0.0, 65535.0)
    assert dtype_range(np.dtype(np.float32)) == (0.0, 1.0)
    low, high = resolve_clip_levels(np.dtype(np.uint16), 3, (0, [100, 200, 300]))
    assert low.tolist() == [0, 0, 0] and high.tolist() == [100, 200, 300]
    with pytest.raises(UnsupportedInputError, match="must exceed low"):
        resolve_clip_levels(np.dtype(np.uint8), 3, (10, 5))
    with pytest.raises(UnsupportedInputError, match="clip_levels must be"):
        resolve_clip_levels(np.dtype(np.uint8), 3, 7)  # type: ignore[arg-type]


def test_prepare_gives_the_colour_view_and_the_fit_policy() -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    image, colour, low, high, fit, space = prepare(rgba, None, None, None, 0)
    assert image is rgba and colour.shape == (4, 5, 3) and fit is Fit.COMPRESS and space.name == "srgb"
    grey = np.zeros((4, 5), np.float32)
    _, colour, _, _, fit, _ = prepare(grey, None, "display-p3", None, 3)
    assert colour.shape == (4, 5, 1) and fit is Fit.FLOAT


@pytest.mark.parametrize(("image", "message"), [
    ([[1, 2]], "expected a numpy array"),
    (np.zeros((2, 2, 3), np.int32), "unsupported dtype int32"),
    (np.zeros((2, 2, 5), np.uint8), "expected H x W"),
    (np.full((2, 2, 3), 1e9, np.float32), "times the clip range"),
])
def test_bad_images_are_one_line_errors(image: object, message: str) -> None:
    with pytest.raises(UnsupportedInputError, match=message):
        prepare(image, None, None, None, 0)


def test_colour_spaces_by_name_only() -> None:
    assert resolve_colorspace(None).name == "srgb"
    with pytest.raises(UnsupportedInputError):
        resolve_colorspace("no-such-space")
