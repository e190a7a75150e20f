"""The classical methods (libdeclip.classic) and the consistency option, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import libdeclip
from libdeclip.classic import CLASSICAL_METHODS, METHODS, reconstruct
from libdeclip.errors import UnsupportedInputError
from tests.conftest import SHARED_DATA

DEMO = Path(__file__).resolve().parent.parent / "examples" / "night_lamps.png"


def _photo() -> np.ndarray:
    """A real photo (8-bit), downscaled for speed: the demo photo with its real blown lamps."""
    with Image.open(DEMO) as im:
        im = im.convert("RGB")
        im.thumbnail((320, 320))
        return np.asarray(im)


@pytest.mark.parametrize("method", CLASSICAL_METHODS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_method_on_a_real_photo(method: str, dtype: type) -> None:
    photo = _photo()
    if dtype is np.uint16:
        image = photo.astype(np.uint16) * 257
    elif dtype is np.float32:
        image = photo.astype(np.float32) / 255.0
    else:
        image = photo
    out = libdeclip.declip(image, method=method, fit="clamp" if dtype != np.float32 else None)
    assert out.shape == image.shape and out.dtype == image.dtype
    top = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    tol = top / 255.0
    mask, summary = libdeclip.clip_mask(image)
    assert summary.any > 0.001  # the photo really is clipped
    # unclipped values are untouched (clamp / float: bit-identical)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    # consistency: clipped-high values stay at or above what was recorded, clipped-low at or below
    high = image >= top - tol
    low = image <= tol
    assert (out[high] >= image[high]).all()
    assert (out[low] <= image[low]).all()


@pytest.mark.parametrize("method", CLASSICAL_METHODS)
def test_float_output_recovers_beyond_the_clip_level(method: str) -> None:
    image = _photo().astype(np.float32) / 255.0
    out = libdeclip.declip(image, method=method)
    high = image >= 1.0 - 1.0 / 255.0
    assert out[high].max() > 1.0, f"{method} recovered nothing above the clip level"
    assert np.isfinite(out).all()


def test_methods_are_listed_and_unknown_ones_refused() -> None:
    assert libdeclip.METHODS == METHODS and METHODS[0] == "declipnet"
    with pytest.raises(UnsupportedInputError, match="unknown method"):
        libdeclip.declip(np.zeros((4, 4, 3), np.float32), method="magic")


def test_cross_channel_recovers_a_linear_colour_relation() -> None:
    # A gradient whose red is a fixed linear function of green and blue: the regression on the
    # unclipped neighbours carries it into the pixels where red clipped.
    rng = np.random.default_rng(0)
    g = np.tile(np.linspace(0.2, 0.8, 64), (64, 1)) + rng.normal(0, 0.01, (64, 64))
    b = np.tile(np.linspace(0.1, 0.5, 64)[:, None], (1, 64)) + rng.normal(0, 0.01, (64, 64))
    r = 0.2 + 1.1 * g + 0.3 * b
    truth = np.stack([r, g, b], axis=-1)
    x = truth.copy()
    high = np.zeros_like(x, dtype=bool)
    high[..., 0] = truth[..., 0] >= 1.0
    x[high] = 1.0
    rec = reconstruct("cross-channel", x, high, np.zeros_like(high))
    error = np.abs(rec[high] - truth[high])
    assert error.mean() < 0.03 and error.max() < 0.1
    assert np.abs(x[high] - truth[high]).max() > 0.2  # what was lost


def test_cross_channel_does_not_extrapolate_past_three_stops() -> None:
    """A steep relation fitted on dim neighbours (blue rising 20 times faster than red) is not
    carried far past what any photo holds: the regressed values stop at three stops over the clip
    level, in the reference and in the native estimates alike (a linear DNG's sky came out at 30
    times its clip level before)."""
    from libdeclip.color import get_colorspace
    from libdeclip.estimates import _REGRESSION_TOP, clipped_estimates
    from libdeclip.mask import clip_codes

    ramp = np.tile(np.linspace(0.30, 0.70, 64), (64, 1))
    truth = np.stack([ramp, 0.5 * np.ones_like(ramp), 20 * (ramp - 0.3) + 0.2], axis=-1)
    x = np.minimum(truth, 1.0)
    high = truth >= 1.0
    assert high[..., 2].mean() > 0.5 and not high[..., :2].any()
    rec = reconstruct("cross-channel", x, high, np.zeros_like(high))
    assert rec[high].max() == pytest.approx(_REGRESSION_TOP)
    np.testing.assert_array_equal(rec[~high], x[~high])
    colour = x.astype(np.float32)
    codes = clip_codes(colour, np.zeros(3), np.ones(3), 0.0)
    pixels, values = clipped_estimates("cross-channel", colour, np.zeros(3), np.ones(3),
                                       get_colorspace("srgb"), codes)
    assert values.max() <= _REGRESSION_TOP + 1e-9 and values.max() > 2.0
    np.testing.assert_allclose(values, rec.reshape(-1, 3)[pixels], atol=1e-4)


def test_biharmonic_fills_a_smooth_dome_above_the_level() -> None:
    # a specular highlight's size: larger regions are filled more and more like a membrane
    yy, xx = np.mgrid[-1:1:24j, -1:1:24j]
    dome = 1.3 - 0.9 * (xx**2 + yy**2)
    truth = np.repeat(dome[..., None], 3, axis=2)
    high = truth >= 1.0
    x = np.where(high, 1.0, truth)
    rec = reconstruct("biharmonic", x, high, np.zeros_like(high))
    lost = np.abs(x[high] - truth[high]).mean()
    assert np.abs(rec[high] - truth[high]).mean() < 0.7 * lost
    assert rec[high].max() > 1.05


def test_inpaint_opposed_carries_the_border_colour_into_the_highlight() -> None:
    # A warm-white lamp: red clipped, green and blue survive; the border's chrominance says red
    # sits above the other two, so the clipped red is lifted above its clip level.
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    base = 0.75 + 0.4 * np.exp(-(xx**2 + yy**2) * 4)
    truth = np.stack([base * 1.0, base * 0.85, base * 0.75], axis=-1)
    high = truth >= 1.0
    x = np.where(high, 1.0, truth)
    assert high[..., 0].any() and not high[..., 2].any()
    rec = reconstruct("inpaint-opposed", x, high, np.zeros_like(high))
    red = high[..., 0]
    assert rec[..., 0][red].mean() > 1.02
    assert (rec[~high] == x[~high]).all()


def test_grey_rgba_and_mask() -> None:
    photo = _photo()
    grey = photo[..., 1].copy()
    out = libdeclip.declip(grey, method="biharmonic", fit="clamp")
    assert out.shape == grey.shape and out.dtype == grey.dtype
    rgba = np.dstack([photo, np.full(photo.shape[:2], 77, np.uint8)])
    out = libdeclip.declip(rgba, method="cross-channel")
    assert (out[..., 3] == 77).all()
    image = photo.astype(np.float32) / 255.0
    # a caller's mask: only what it marks changes
    mask = np.zeros(image.shape, dtype=bool)
    mask[: image.shape[0] // 2] = image[: image.shape[0] // 2] >= 1 - 1 / 255
    out = libdeclip.declip(image, method="inpaint-opposed", mask=mask)
    np.testing.assert_array_equal(out[~mask], image[~mask])


@pytest.mark.parametrize("method", METHODS)
def test_consistency_off_lets_values_move_inside_the_level(method: str) -> None:
    image = _photo().astype(np.float32) / 255.0
    high = image >= 1.0 - 1.0 / 255.0
    low = image <= 1.0 / 255.0
    on = libdeclip.declip(image, method=method, device="cpu")
    off = libdeclip.declip(image, method=method, device="cpu", consistency=False)
    assert (on[high] >= image[high]).all() and (on[low] <= image[low]).all()
    # without the constraint the method's own answer shows, on both sides of the level
    if method != "inpaint-opposed":  # highlights only: it never moves a shadow
        assert (off[high] < image[high]).any() or (off[low] > image[low]).any()
    np.testing.assert_array_equal(off[~(high | low)], image[~(high | low)])
    # where the method already went outwards, both agree (biharmonic instead solves the constrained
    # problem again, so its values move everywhere)
    if method != "biharmonic":
        agree = high & (off >= image)
        np.testing.assert_allclose(on[agree], off[agree], rtol=0, atol=1e-6)


@pytest.mark.skipif(not (SHARED_DATA / "clipped").is_dir(), reason="../shared/data/clipped is absent")
def test_methods_on_real_blown_highlights() -> None:
    paths = sorted((SHARED_DATA / "clipped").rglob("*.jpg"))[:2]
    if not paths:
        pytest.skip("no JPEG in ../shared/data/clipped")
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((256, 256))
            image = np.asarray(im).astype(np.float32) / 255.0
        for method in CLASSICAL_METHODS:
            out = libdeclip.declip(image, method=method)
            high = image >= 1 - 1 / 255
            assert (out[high] >= image[high]).all(), (path.name, method)
            assert np.isfinite(out).all()
