"""libdeclip.mask: clip detection in the input's own encoding, clip codes, specks, mask planes."""

from __future__ import annotations

import numpy as np
import pytest

from libdeclip.errors import UnsupportedInputError
from libdeclip.mask import (
    DEFAULT_TOLERANCE,
    channel_maxima,
    clip_codes,
    clip_mask,
    clip_masks,
    codes_to_masks,
    mask_codes,
    mask_planes,
    without_specks,
)
from libdeclip.tiling import Tile


def test_codes_pack_the_masks_one_byte_a_pixel() -> None:
    image = np.array([[[255, 10, 0], [254, 255, 255]], [[0, 0, 0], [128, 128, 128]]], np.uint8)
    codes = clip_codes(image, 0.0, 255.0, 1 / 255)
    low, high = codes_to_masks(codes, 3)
    want_low, want_high = clip_masks(image, 0.0, 255.0, 1 / 255)
    assert np.array_equal(high, want_high) and np.array_equal(low, want_low)
    assert codes[0, 0] == 0b100_001  # red high, blue low
    assert codes[1, 1] == 0


def test_a_callers_mask_becomes_the_same_codes() -> None:
    rng = np.random.default_rng(0)
    high = rng.random((6, 7, 3)) < 0.3
    low = rng.random((6, 7, 3)) < 0.2
    codes = mask_codes((low, high), (6, 7, 3))
    got_low, got_high = codes_to_masks(codes, 3)
    assert np.array_equal(got_high, high) and np.array_equal(got_low, low)
    assert np.array_equal(codes_to_masks(mask_codes(high, (6, 7, 3)), 3).high, high)
    with pytest.raises(UnsupportedInputError, match="does not match the image"):
        mask_codes(high[:5], (6, 7, 3))


def test_specks_are_small_components_only() -> None:
    codes = np.zeros((40, 40), np.uint8)
    codes[2, 2] = 1  # a speck of 1 pixel
    codes[10:12, 10:12] = 1  # 4 pixels: still a speck at the default threshold
    codes[20:30, 20:30] = 1  # a region
    cleared, n = without_specks(codes, 4)
    assert n == 5 and cleared[20:30, 20:30].all() and not cleared[:15].any()
    assert without_specks(codes, 0)[0] is codes


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_channel_maxima_of_contiguous_and_strided_pictures(dtype: type) -> None:
    rng = np.random.default_rng(4)
    picture = (rng.random((31, 17, 3)) * 200).astype(dtype)
    picture[5, 9, 1] = 250  # one channel's top in one pixel
    expected = [picture[..., c].max() for c in range(3)]
    assert channel_maxima(picture).tolist() == expected
    assert channel_maxima(picture[:, ::2]).tolist() == [picture[:, ::2, c].max() for c in range(3)]
    assert channel_maxima(picture[:1]).tolist() == [picture[:1, :, c].max() for c in range(3)]


def test_specks_equal_labelling_the_whole_image() -> None:
    # the native raster pass against scipy's labelling (8-connected) of random codes of every
    # density, with components that snake, touch the edges and span many rows
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        codes = (rng.random((h, w)) < rng.random()).astype(np.uint8) * np.uint8(rng.integers(1, 64))
        max_pixels = int(rng.integers(1, 20))
        labels, _ = ndimage.label(codes != 0, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        small = sizes <= max_pixels
        small[0] = False
        expected = np.where(small[labels], 0, codes)
        got, cleared = without_specks(codes, max_pixels)
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")
        assert cleared == int(small[labels].sum())
        assert (got is codes) == (cleared == 0)


def test_mask_planes_are_signed_and_padded_like_the_pixels() -> None:
    colour = np.zeros((5, 6, 3), np.float32)
    colour[0, 0] = 1.0
    colour[4, 5, 1] = 0.0
    out = np.empty((3, 8, 8), np.float32)
    tile = Tile(0, 5, 0, 6, 0, 8, 0, 8)
    mask_planes(clip_codes(colour, 0.0, 1.0, 0.0), 3, tile, out)
    assert out[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert out[0, 1, 1] == -1.0  # zero is clipped low
    assert np.array_equal(out[:, 5:, :], out[:, 4::-1, :][:, :3])  # numpy's "symmetric" padding


@pytest.mark.parametrize("channels", [3, 1])
def test_mask_planes_equal_the_masks_padded_by_numpy(channels: int) -> None:
    rng = np.random.default_rng(3)
    h, w = 37, 53
    codes = rng.integers(0, 64, (h, w)).astype(np.uint8)
    if channels == 1:
        codes &= 0b1001  # a grey image's codes: bit 0 high, bit 3 low
    low, high = codes_to_masks(codes, channels)
    planes = (high.astype(np.float32) - low.astype(np.float32))
    # the image padded past its bottom/right edge, as the native gather pads the pixels
    padded = np.pad(planes, ((0, 2 * h), (0, 2 * w), (0, 0)), mode="symmetric")
    for wy0, wy1, wx0, wx1 in [(0, h, 0, w), (5, 48, 17, 64), (30, 40, 50, 60), (36, 48, 0, 16)]:
        expected = padded[wy0:wy1, wx0:wx1].transpose(2, 0, 1)
        expected = np.broadcast_to(expected, (3, *expected.shape[1:]))  # grey: one plane to all three
        out = np.full((3, wy1 - wy0, wx1 - wx0), np.nan, np.float32)
        mask_planes(codes, channels, Tile(wy0, min(wy1, h), wx0, min(wx1, w), wy0, wy1, wx0, wx1), out)
        np.testing.assert_array_equal(out, expected)


def test_clip_mask_reports_the_shares() -> None:
    image = np.zeros((10, 10, 3), np.uint8) + 100
    image[:5, :, 0] = 255
    mask, summary = clip_mask(image)
    assert mask.shape == (10, 10, 3)
    assert summary.high == (0.5, 0.0, 0.0) and summary.any == 0.5
    assert "50.00%" in str(summary)


def _hdr(clip: float | None) -> np.ndarray:
    """A scene-linear picture with a bright sun up to 6.0, clipped at ``clip`` (None: not clipped)."""
    yy, xx = np.mgrid[0:200, 0:300]
    scene = np.stack([0.3 + 0.1 * np.sin(xx / 20), 0.25 + 0.0 * yy, 0.2 + 0.05 * np.cos(yy / 9)], axis=2)
    scene = scene + 6.0 * np.exp(-((yy - 100) ** 2 + (xx - 150) ** 2) / (2 * 15.0**2))[..., None]
    return (scene if clip is None else np.minimum(scene, clip)).astype(np.float32)


def test_levels_are_found_where_float_values_pile_up() -> None:
    from libdeclip.mask import levels_from_data

    found = levels_from_data(_hdr(4.0))
    assert found is not None and found.scale == 4.0 and found.high == (4.0, 4.0, 4.0)
    free = levels_from_data(_hdr(None))  # the sun's peak is one pixel: nothing clipped high
    assert free is not None and free.high == (None, None, None)
    assert levels_from_data(np.full((8, 8, 3), 0.5, np.float32)) is None  # within 1.0: the dtype's range
    assert levels_from_data(np.full((8, 8, 3), 200, np.uint8)) is None
    assert "R clipped at 4" in found.describe()


def test_a_float_picture_above_one_is_repaired_only_where_it_was_clipped() -> None:
    import libdeclip

    clipped = _hdr(4.0)
    out = libdeclip.declip(clipped, method="cross-channel")
    at_level = (clipped >= 4.0 - 4.0 * DEFAULT_TOLERANCE).any(axis=2)
    assert np.array_equal(out[~at_level], clipped[~at_level])  # before: everything above 1.0 moved
    assert (out[at_level] >= clipped[at_level]).all()
    untouched = _hdr(None)
    assert np.array_equal(libdeclip.declip(untouched, method="cross-channel"), untouched)
    # clip_levels= always wins: at (0, 1) every value above 1.0 counts as clipped, as it says
    forced = libdeclip.declip(clipped, method="cross-channel", clip_levels=(0.0, 1.0))
    assert not np.array_equal(forced[~at_level], clipped[~at_level])
    mask, summary = clip_mask(clipped)
    assert 0 < summary.any == at_level.mean() < 0.05


def _demo_crop() -> np.ndarray:
    from PIL import Image

    from tests.conftest import REPO

    with Image.open(REPO / "examples" / "night_lamps.png") as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def test_integer_levels_are_found_only_where_values_pile_up_below_the_top_code() -> None:
    from libdeclip.mask import levels_from_data

    photo = _demo_crop()
    # a scene whose brightest point (a sun of one pixel at 235) is below 255: nothing piles up
    yy, xx = np.mgrid[0:240, 0:320]
    sun = np.exp(-((yy - 120) ** 2 + (xx - 160) ** 2) / (2 * 25.0**2))
    noise = np.random.default_rng(0).normal(0, 2, (240, 320, 3))
    dimmed = np.clip(np.rint(60 + 40 * np.sin(xx / 30)[..., None] + 135 * sun[..., None] + noise), 0, 254)
    dimmed = dimmed.astype(np.uint8)
    assert dimmed.max() < 255 and levels_from_data(dimmed) is None
    assert levels_from_data(photo) is None  # reaches 255: the dtype's range already says it
    # the demo's blown lamps, dimmed after clipping, are still clipped: at the code they moved to
    lamps = levels_from_data((photo.astype(np.float64) * 0.9).astype(np.uint8))
    assert lamps is not None and lamps.high == (229.0, 229.0, 229.0)
    clipped = np.minimum(photo.astype(np.float64) * 1.1, 250).astype(np.uint8)  # a curve stopping at 250
    found = levels_from_data(clipped)
    assert found is not None and found.scale == 250 and found.high == (250.0, 250.0, 250.0)
    assert "R clipped at 250 (values pile up there)" in found.describe()
    wide = levels_from_data(np.minimum(photo.astype(np.uint16) * 257, 65280))  # a RAW developer's TIFF
    assert wide is not None and wide.high == (65280.0,) * 3
    # a flat graphic (no values running up to the top) and a few values on the top are not clipping
    flat = np.full((64, 64, 3), 120, np.uint8)
    flat[16:48, 16:48] = 240
    assert levels_from_data(flat) is None
    few = dimmed.copy()
    few[:4, :4] = 250
    assert levels_from_data(few) is None


def test_a_photo_clipped_below_its_top_code_gets_the_codes_above_back() -> None:
    import libdeclip

    photo = _demo_crop()
    truth = np.minimum(photo.astype(np.float64) * 1.1, 255)
    clipped = np.minimum(truth, 250).astype(np.uint8)
    at_level = (clipped >= 250).any(axis=2)
    out = libdeclip.declip(clipped, method="cross-channel", fit="clamp")
    assert np.array_equal(out[~at_level], clipped[~at_level])
    assert out[at_level].max() > 250 and (out[at_level] >= clipped[at_level]).all()
    assert np.abs(out[at_level] - truth[at_level]).mean() < np.abs(clipped[at_level] - truth[at_level]).mean()
    # clip_levels= always wins: at the dtype's range nothing below 255 is clipped
    assert np.array_equal(libdeclip.declip(clipped, method="cross-channel", clip_levels=(0, 255)), clipped)
