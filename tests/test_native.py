"""The native core (libdeclip._native) against its numpy reference (tests/reference.py).

Integer outputs must agree exactly and float outputs to 1e-6, on a real photo and on edge cases:
every dtype, odd sizes, 1-pixel images, strided views, NaN, values exactly at the clip level.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from libdeclip import Declipper, UnsupportedInputError, _native
from libdeclip.color import NAMED_SPACES, colorspace_from_icc, from_model, get_colorspace, to_model
from libdeclip.fit import Fit, apply_fit
from libdeclip.inputs import dtype_range, resolve_clip_levels
from libdeclip.mask import any_clipped, clip_masks, feather_weights
from tests import reference

DTYPES = [np.uint8, np.uint16, np.float16, np.float32, np.float64]


def as_dtype(rgb8: np.ndarray, dtype: type) -> np.ndarray:
    """A real 8-bit photo in another dtype, keeping its clipped values at the dtype's levels."""
    if dtype == np.uint8:
        return rgb8.copy()
    if dtype == np.uint16:
        return rgb8.astype(np.uint16) * 257
    return (rgb8.astype(np.float64) / 255.0).astype(dtype)


def views(image: np.ndarray) -> dict[str, np.ndarray]:
    """The same pixels as contiguous, strided, reversed and alpha-carrying views."""
    rgba = np.concatenate([image, image[..., :1]], axis=2)
    return {
        "contiguous": image,
        "every-other": image[::2, ::3],
        "reversed-channels": image[:, :, ::-1],
        "flipped": image[::-1, ::-1],
        "rgb-of-rgba": rgba[..., :3],
        "fortran": np.asfortranarray(image),
        "odd": image[1:8, 3:14],
        "one-pixel": image[5:6, 7:8],
    }


@pytest.fixture(scope="module")
def session() -> Declipper:
    # v1: the numpy reference pipeline (tests/reference.py) feeds the model R, G, B only
    # no speck rule: the numpy reference repairs every clipped value
    return Declipper("declipnet-v1", device="cpu", tile_size=96, speck_pixels=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_masks_match_reference(demo_rgb: np.ndarray, dtype: type) -> None:
    image = as_dtype(demo_rgb[100:180, 200:300], dtype)
    lo, hi = dtype_range(image.dtype)
    for name, view in views(image).items():
        per_channel = (np.array([lo] * 3), np.array([hi * 0.9] * 3), 0.02)
        for low, high, tol in [(lo, hi, 1 / 255), (lo, hi, 0.0), per_channel]:
            got = clip_masks(view, low, high, tol)
            want = reference.clip_masks(view, low, high, tol)
            np.testing.assert_array_equal(got[0], want[0], err_msg=name)
            np.testing.assert_array_equal(got[1], want[1], err_msg=name)
            assert any_clipped(view, np.full(3, low), np.full(3, high), tol) == reference.any_clipped(
                view, low, high, tol
            ), name


def test_clip_masks_edge_values() -> None:
    # exactly at the level, one code value inside, NaN, infinities, negative zero
    image = np.array([[[1.0, 0.0, 0.5], [np.nan, 1.0 - 1e-9, 1e-9], [np.inf, -np.inf, -0.0]]], np.float32)
    for tol in (0.0, 1e-6):
        got = clip_masks(image, 0.0, 1.0, tol)
        want = reference.clip_masks(image, 0.0, 1.0, tol)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # floats next to a level that float32 cannot hold (compared in double by the reference)
    for dtype in (np.float32, np.float64, np.uint8, np.uint16):
        for level in (1.0 - 1 / 255, 1 / 255, 0.3):
            near = np.float32(level) if dtype != np.float64 else np.float64(level)
            around = [np.nextafter(near, -np.inf), near, np.nextafter(near, np.inf)]
            values = np.array(around * 3, dtype=np.float64).reshape(1, 3, 3)
            if dtype in (np.uint8, np.uint16):
                values = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]]], dtype) + int(level * 100)
            arr = values.astype(dtype)
            if dtype in (np.uint8, np.uint16):
                level = level * 100 + 4.5  # between two code values
            for lo_level, hi_level in [(level - 1, level), (level, level + 1)]:
                got = clip_masks(arr, lo_level, hi_level, 0.0)
                want = reference.clip_masks(arr, lo_level, hi_level, 0.0)
                assert got[0].any() or got[1].any()
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
    lo, hi = clip_masks(image, 0.0, 1.0, 0.0)
    assert hi[0, 0, 0] and lo[0, 0, 1] and not hi[0, 1, 0] and not lo[0, 1, 0]  # NaN is not clipped
    grey = np.array([[0, 254, 255], [1, 128, 0]], np.uint8)[..., None]
    lo, hi = clip_masks(grey, 0, 255, 1 / 255)
    np.testing.assert_array_equal(hi[..., 0], [[False, True, True], [False, False, False]])
    np.testing.assert_array_equal(lo[..., 0], [[True, False, False], [True, False, True]])
    # per-channel levels
    levels = resolve_clip_levels(np.dtype(np.uint16), 3, ([0, 10, 20], [60000, 50000, 40000]))
    rgb = np.array([[[60000, 50000, 39999], [0, 10, 21]]], np.uint16)
    lo, hi = clip_masks(rgb, *levels, 0.0)
    np.testing.assert_array_equal(hi[0], [[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(lo[0], [[False, False, False], [True, True, False]])


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_feather_weights_match_reference(radius: int) -> None:
    rng = np.random.default_rng(radius)
    # the tall and wide shapes span several threads' bands and several cache blocks of rows
    for shape in [(1, 1), (1, 7), (9, 1), (23, 31), (701, 9), (37, 2000)]:
        for density in (0.0, 0.002, 0.02, 0.3, 1.0):
            mask = rng.random(shape) < density
            want = reference.feather_weights(mask, radius)
            got = feather_weights(mask, radius)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)


def test_feather_weights_match_reference_on_a_real_photo(demo_rgb: np.ndarray) -> None:
    lo, hi = reference.clip_masks(demo_rgb, 0, 255, 1 / 255)
    clipped = (hi | lo).any(axis=2)
    assert 0.001 < clipped.mean() < 0.9
    for radius in (1, 3, 8):
        want = reference.feather_weights(clipped, radius)
        np.testing.assert_array_equal(feather_weights(clipped, radius), want)


def _icc_with_table_curve() -> bytes:
    """A minimal matrix/TRC ICC profile with a 4096-entry tone table (like many camera profiles)."""
    import struct

    curve_values = np.rint(np.linspace(0, 1, 4096) ** 2.2 * 65535).astype(">u2").tobytes()
    curv = b"curv" + b"\0" * 4 + struct.pack(">I", 4096) + curve_values
    s15 = lambda *v: b"".join(struct.pack(">i", round(x * 65536)) for x in v)  # noqa: E731
    xyz = {
        b"rXYZ": (0.4361, 0.2225, 0.0139),
        b"gXYZ": (0.3851, 0.7169, 0.0971),
        b"bXYZ": (0.1431, 0.0606, 0.7141),
    }
    tags = [(sig, b"XYZ " + b"\0" * 4 + s15(*v)) for sig, v in xyz.items()]
    tags += [(sig, curv) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = struct.pack(">I", size) + b"\0" * 12 + b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * (128 - 40)
    return header + struct.pack(">I", len(tags)) + table + body


@pytest.mark.parametrize("name", [*NAMED_SPACES, "icc-table"])
def test_colour_conversions_match_reference(name: str) -> None:
    space = colorspace_from_icc(_icc_with_table_curve()) if name == "icc-table" else get_colorspace(name)
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.uniform(-0.3, 1.6, (5000, 3)), np.eye(3), np.zeros((1, 3)), np.ones((1, 3))])
    there = to_model(values, space)
    # Same operations in the same order; libm's and numpy's pow may differ by an ulp, which a pure
    # gamma curve (Adobe RGB) amplifies next to black: 1e-7 absolute there.
    np.testing.assert_allclose(there, reference.to_model(values, space), rtol=1e-12, atol=1e-7)
    back = reference.from_model(there, space)
    np.testing.assert_allclose(from_model(there, space), back, rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(from_model(there, space), values, atol=1e-7)  # round trip in float64


def test_fit_matches_reference() -> None:
    values = np.concatenate([np.linspace(-0.6, 2.4, 3001), [0.0, 1.0, 0.8, 0.05]])
    for fit in Fit:
        for vmin, vmax in [(-0.6, 2.4), (0.0, 1.0), (0.0, 1.3), (-0.1, 1.0)]:
            np.testing.assert_array_equal(
                apply_fit(values, fit, vmin, vmax), reference.apply_fit(values, fit, vmin, vmax)
            )


def _compare_pipeline(session: Declipper, image: np.ndarray, **kwargs: object) -> None:
    out = session.run(image, **kwargs)  # type: ignore[arg-type]
    space = get_colorspace(str(kwargs.get("colorspace", "srgb")))
    fit = Fit(kwargs["fit"]) if "fit" in kwargs else (Fit.FLOAT if image.dtype.kind == "f" else Fit.COMPRESS)
    channels = 1 if image.ndim == 2 or image.shape[2] == 1 else 3
    low, high = resolve_clip_levels(image.dtype, channels, None)
    plan = session.plan(image.shape[0], image.shape[1])
    want = reference.declip(
        session.engine.residual, image, plan, low, high, 1 / 255, int(kwargs.get("feather", 0)), space, fit  # type: ignore[call-overload]
    )
    assert out.dtype == want.dtype and out.shape == want.shape
    if image.dtype.kind == "u":
        np.testing.assert_array_equal(out, want)
    else:
        np.testing.assert_allclose(out.astype(np.float64), want.astype(np.float64), rtol=0, atol=1e-6)
    assert not np.array_equal(out, image)  # something was repaired


@pytest.mark.parametrize("dtype", DTYPES)
def test_pipeline_matches_reference_per_dtype(demo_rgb: np.ndarray, session: Declipper, dtype: type) -> None:
    # a crop that does not divide into tiles, with real blown highlights
    image = as_dtype(demo_rgb[170:331, 250:447], dtype)
    _compare_pipeline(session, image)


def test_pipeline_matches_reference_with_tables(demo_rgb: np.ndarray) -> None:
    # Tiles larger than 65536 values: 16-bit decoding (Adobe RGB) and the compress fit of
    # unclipped values go through per-tile tables.
    with Declipper("declipnet-v1", device="cpu", tile_size=256, speck_pixels=0) as large:
        _compare_pipeline(large, as_dtype(demo_rgb[170:331, 250:447], np.uint16), colorspace="adobe-rgb")
        _compare_pipeline(large, as_dtype(demo_rgb[170:331, 250:447], np.uint16))


@pytest.mark.parametrize(
    "case", ["feather", "clamp", "float-fit", "adobe-rgb", "grey", "rgba", "strided", "one-pixel"]
)
def test_pipeline_matches_reference_cases(demo_rgb: np.ndarray, session: Declipper, case: str) -> None:
    crop = demo_rgb[170:331, 250:447]
    if case == "feather":
        _compare_pipeline(session, as_dtype(crop, np.uint16), feather=3)
    elif case == "clamp":
        _compare_pipeline(session, crop.copy(), fit="clamp")
    elif case == "float-fit":
        _compare_pipeline(session, as_dtype(crop, np.float32), fit="compress")
    elif case == "adobe-rgb":
        _compare_pipeline(session, as_dtype(crop, np.uint16), colorspace="adobe-rgb")
    elif case == "grey":
        _compare_pipeline(session, crop[..., 1].copy())
    elif case == "rgba":
        rgba = np.concatenate([crop, np.full(crop.shape[:2] + (1,), 200, np.uint8)], axis=2)
        _compare_pipeline(session, rgba)
    elif case == "strided":
        _compare_pipeline(session, demo_rgb[80:400:2, 100:500:3, ::-1])
    else:
        pixel = np.array([[[255, 255, 250]]], np.uint8)
        _compare_pipeline(session, pixel)


@pytest.mark.parametrize("shape", [(21, 13), (1, 1), (2, 5)])
def test_gather_pads_like_numpy(demo_rgb: np.ndarray, shape: tuple[int, int]) -> None:
    image = demo_rgb[200 : 200 + shape[0], 300 : 300 + shape[1]]
    out = np.empty((3, 32, 24), np.float32)
    _native.gather(image, [0.0] * 3, [255.0] * 3, get_colorspace("srgb").native, 0, 32, 0, 24, out)
    pad = [(0, 32 - shape[0]), (0, 24 - shape[1]), (0, 0)]
    padded = (np.pad(image.astype(np.float64), pad, mode="symmetric") - 0.0) * (1 / 255.0)
    np.testing.assert_array_equal(out, padded.transpose(2, 0, 1).astype(np.float32))


def test_native_rejects_bad_arguments(demo_rgb: np.ndarray) -> None:
    with pytest.raises(TypeError, match="unsupported dtype"):
        _native.clip_masks(demo_rgb.astype(np.int32), [0.0] * 3, [1.0] * 3, 0.0)
    with pytest.raises(ValueError, match="one low and one high"):
        _native.clip_masks(demo_rgb, [0.0], [1.0], 0.0)
    out = np.empty((3, 8, 8), np.float64)
    with pytest.raises(ValueError, match="float32"):
        _native.gather(demo_rgb, [0.0] * 3, [255.0] * 3, get_colorspace("srgb").native, 0, 8, 0, 8, out)
    with pytest.raises(ValueError, match="window"):
        _native.gather(demo_rgb[:4, :4], [0.0] * 3, [255.0] * 3, get_colorspace("srgb").native, 4, 16, 0, 8,
                       np.empty((3, 12, 8), np.float32))
    frozen = demo_rgb.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _native.write_core(
            frozen, demo_rgb, [0.0] * 3, [255.0] * 3, 0.0, 0, 0, 4, 0, 4, None, 0, 0, 1, 0.8, 0.05, True
        )


def test_half_conversion_rounds_like_numpy() -> None:
    # every float16 value, and the midpoints between neighbours (ties to even), through the writer
    bits = np.arange(0, 0x7C00, dtype=np.uint16)
    halves = bits.view(np.float16)
    mids = (halves[:-1].astype(np.float64) + halves[1:].astype(np.float64)) / 2
    values = np.concatenate([halves.astype(np.float64), mids, -mids, [65519.0, 1e-9]])
    image = np.zeros((1, values.size, 3), np.float16)
    src = np.zeros_like(image)
    src[0, :, 0], src[0, :, 1:] = 1.0, 0.5  # clipped high in channel 0 only: one value per pixel
    _native.write_core(image, src, [0.0] * 3, [1.0] * 3, 0.0, 0, 0, 1, 0, values.size,
                       values.astype(np.float32), 2, 0.0, 1.0, 0.8, 0.05, False)
    want = values.astype(np.float32).astype(np.float64).astype(np.float16)
    np.testing.assert_array_equal(image[0, :, 0], want)


@pytest.mark.parametrize("colorspace", ["srgb", "adobe-rgb"])
def test_thread_count_does_not_change_the_result(
    demo_rgb: np.ndarray, session: Declipper, colorspace: str
) -> None:
    image = as_dtype(demo_rgb[150:400, 100:500], np.uint16)
    with Declipper("declipnet-v1", device="cpu", tile_size=96, threads=1, speck_pixels=0) as single:
        want = session.run(image, feather=2, colorspace=colorspace)
        np.testing.assert_array_equal(single.run(image, feather=2, colorspace=colorspace), want)


def test_conversion_does_not_depend_on_position_in_a_batch() -> None:
    # pow runs over batches of values (vector pow where the CPU has it, the tail padded): a value's
    # result must be the same wherever it falls in a batch.
    values = np.random.default_rng(3).uniform(-0.2, 1.4, (1000, 3))
    space = get_colorspace("adobe-rgb")
    whole = to_model(values, space)
    for start in (1, 7, 255, 257):
        np.testing.assert_array_equal(to_model(values[start:], space), whole[start:])
        np.testing.assert_array_equal(from_model(values[start:], space), from_model(values, space)[start:])


def test_pow_implementation_is_named() -> None:
    assert _native.pow_implementation() in {"libmvec AVX-512", "libmvec AVX2", "scalar std::pow"}


def test_given_mask_is_used_instead_of_the_values(demo_rgb: np.ndarray, session: Declipper) -> None:
    image = as_dtype(demo_rgb[150:400, 100:500], np.uint16)
    low, high = resolve_clip_levels(image.dtype, 3, None)
    found = clip_masks(image, low, high, 1 / 255)
    # the mask the values give, handed in, gives the same result
    np.testing.assert_array_equal(session.run(image, mask=found, feather=2), session.run(image, feather=2))
    # a mask of its own: only those values may change, and only outwards
    mine = np.zeros(image.shape, dtype=bool)
    mine[60:90, 100:180, 1] = True
    out = session.run(image, mask=mine)
    np.testing.assert_array_equal(out[~mine], image[~mine])
    assert (out[mine] >= image[mine]).all() and (out[mine] != image[mine]).any()
    with pytest.raises(UnsupportedInputError, match="does not match"):
        session.run(image, mask=mine[:10])


# ------------------------------------------------- the classical estimates on RGB pictures (native)

NATIVE_METHODS = ["inpaint-opposed", "cross-channel"]


def _estimates_both(image: np.ndarray, space: str, method: str, threads: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(native, numpy) estimates of every clipped pixel of ``image`` by ``method``."""
    from libdeclip.estimates import _cross_channel, _inpaint_opposed, as_rgb, clipped_estimates
    from libdeclip.mask import clip_codes, codes_to_masks

    c = image.shape[2]
    low, high = (np.full(c, v) for v in dtype_range(image.dtype))
    codes = clip_codes(image, low, high, 1 / 255)
    sp = get_colorspace(space)
    pixels, got = clipped_estimates(method, image, low, high, sp, codes, threads=threads)
    np.testing.assert_array_equal(pixels, np.flatnonzero(codes))
    x = to_model(as_rgb((image.astype(np.float64) - low) / (high - low)), sp)
    lo, hi = (as_rgb(m) for m in codes_to_masks(codes, c))
    whole = _inpaint_opposed(x, hi) if method == "inpaint-opposed" else _cross_channel(x, hi | lo)
    want = whole[codes != 0]
    return got, want


@pytest.mark.parametrize("method", NATIVE_METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("space", ["srgb", "display-p3", "linear-srgb"])
def test_native_estimates_match_the_numpy_methods(demo_rgb: np.ndarray, dtype: type, space: str,
                                                  method: str) -> None:
    image = as_dtype(demo_rgb[150:330, 120:400], dtype)
    for name, view in {**views(image), "grey": image[..., :1]}.items():
        got, want = _estimates_both(view, space, method)
        assert got.shape == want.shape, name
        assert len(got) > 0 or name in ("odd", "one-pixel"), name  # the crop holds real highlights
        # opposed: numpy's running-sum box filter leaves ~1e-17 where a channel is 0, and a cube
        # root turns that into ~1e-6 (the native sum is exact there); cross-channel: the ridge
        # bounds how much the moments' rounding can move a slope
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=0, err_msg=f"{name}, {space}")
        assert got.size == 0 or np.mean(np.abs(got - want) < 1e-9) > 0.98, name


@pytest.mark.parametrize("method", NATIVE_METHODS)
def test_native_estimates_do_not_depend_on_threads(demo_rgb: np.ndarray, method: str) -> None:
    image = np.concatenate([np.concatenate([demo_rgb] * 2, axis=1)] * 3, axis=0)  # several cores, bands
    one, _ = _estimates_both(image, "srgb", method, threads=1)
    two, _ = _estimates_both(image, "srgb", method, threads=2)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("method", NATIVE_METHODS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (40, 600)])
@pytest.mark.parametrize("fill", [0, 255, "noise"])
def test_native_estimates_edge_cases(shape: tuple[int, int], fill: object, method: str) -> None:
    rng = np.random.default_rng(sum(shape))
    image = (np.full(shape + (3,), fill, np.uint8) if fill != "noise"
             else rng.choice(np.array([0, 40, 200, 255], np.uint8), size=shape + (3,)))
    got, want = _estimates_both(image, "srgb", method)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


def test_native_estimates_reject_bad_arguments(demo_rgb: np.ndarray) -> None:
    image = demo_rgb[:20, :20]
    codes = np.zeros((20, 20), np.uint8)
    space = get_colorspace("srgb").native
    lv = ([0.0] * 3, [255.0] * 3)
    for bad in (codes[:10], codes.astype(np.int32)):
        with pytest.raises(ValueError, match="codes"):
            _native.opposed_rgb(image, *lv, space, bad, 3, 8)
        with pytest.raises(ValueError, match="codes"):
            _native.cross_channel_rgb(image, *lv, space, bad, [17], 24, 1e-4)
    with pytest.raises(ValueError, match="border"):
        _native.opposed_rgb(image, *lv, space, codes, -1, 8)
    for boxes in ([], [16], [0]):
        with pytest.raises(ValueError, match="box"):
            _native.cross_channel_rgb(image, *lv, space, codes, boxes, 24, 1e-4)
    for pixels, values in (_native.opposed_rgb(image, *lv, space, codes, 3, 8),
                           _native.cross_channel_rgb(image, *lv, space, codes, [17], 24, 1e-4)):
        assert pixels.shape == (0,) and values.shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
@pytest.mark.parametrize("consistency", [True, False])
def test_classical_values_match_reference(demo_rgb: np.ndarray, dtype: type, consistency: bool) -> None:
    rng = np.random.default_rng(5)
    for name, image in views(as_dtype(demo_rgb, dtype)).items():
        for colour in (image, np.ascontiguousarray(image[..., 1:2])):  # RGB and grey
            top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
            c = colour.shape[2]
            low, high = [0.0] * c, [top] * c
            codes = _native.clip_codes(colour, low, high, 1 / 255)
            pixels = np.flatnonzero(codes)
            rec = rng.uniform(-0.2, 1.6, (pixels.size, 3))  # estimates below, within and above the range
            got, changing = _native.clipped_values(colour, low, high, codes, pixels, rec, consistency)
            want, want_changing = reference.clipped_values(colour, low, high, codes, pixels, rec, consistency)
            np.testing.assert_array_equal(got, want, err_msg=name)
            np.testing.assert_array_equal(changing, want_changing, err_msg=name)
    with pytest.raises(ValueError, match="outside the image"):
        _native.clipped_values(demo_rgb, [0.0] * 3, [255.0] * 3, np.zeros(demo_rgb.shape[:2], np.uint8),
                               np.array([demo_rgb.shape[0] * demo_rgb.shape[1]]), np.zeros((1, 3)), True)


def test_the_stub_matches_the_compiled_module() -> None:
    """``_native.pyi`` (what mypy checks the callers against) against the compiled module, by
    mypy's stubtest: every function, argument name and default."""
    pytest.importorskip("mypy", reason="mypy is a test dependency (pip install -e '.[test]')")
    allowlist = Path(__file__).parent / "data" / "stubtest_allowlist.txt"
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", "libdeclip._native", "--allowlist",
                           str(allowlist)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
