"""Camera RAW support (libdeclip.io.raw, libdeclip.io.dng, libdeclip.photosites, libdeclip.develop):
reading, the photosite clip mask, declipping with that mask, and the DNG / TIFF outputs. Synthetic
DNGs are written with libdeclip.io.dng and read back through LibRaw; the real files in
../shared/data/raw are used when present."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

from libdeclip import Declipper, declip, read_image, write_image
from libdeclip._tiffexif import read_exif
from libdeclip.develop import develop
from libdeclip.errors import UnsupportedInputError
from libdeclip.io import DEMOSAIC_REACH, Image
from libdeclip.io import dng as io_dng
from tests.conftest import SHARED_DATA

RAW_DIR = SHARED_DATA / "raw"
needs_raw = pytest.mark.skipif(not RAW_DIR.is_dir(), reason="../shared/data/raw absent")

H, W = 64, 96
CFA = np.array([[0, 1], [1, 2]])  # RGGB as RGB channel indices
XYZ_TO_CAM = np.array([[0.9, -0.3, -0.1], [-0.4, 1.2, 0.2], [-0.05, 0.15, 0.6]])
NEUTRAL = np.array([0.5, 1.0, 0.7])
BLOCK = (slice(20, 30), slice(40, 52))  # photosites set to white in the CFA tests


@pytest.fixture(scope="module")
def declipper() -> Declipper:
    return Declipper(device="cpu", threads=2)


def _colours(h: int = H, w: int = W) -> np.ndarray:
    """RGB channel of each RGGB photosite."""
    yy, xx = np.mgrid[0:h, 0:w]
    return CFA[yy % 2, xx % 2]


def _scene(h: int = H, w: int = W) -> np.ndarray:
    """Smooth camera RGB (float64, H x W x 3): a ramp in 0.1-0.6 and a round highlight peaking
    at 1.8 (green) in the middle, so the highlight clips in some channels and not in others."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = (0.1 + 0.5 * xx / w)[..., None] * np.array([0.6, 1.0, 0.8])
    blob = np.exp(-(((yy - h / 2) / (h / 6)) ** 2 + ((xx - w / 2) / (w / 6)) ** 2))[..., None]
    return ramp + blob * np.array([1.0, 1.8, 0.7])


def _mosaic(scene: np.ndarray) -> np.ndarray:
    return np.take_along_axis(scene, _colours(*scene.shape[:2])[..., None], axis=2)[..., 0]


def _dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Chessboard dilation, independent of the library's: OR of all shifts within reach."""
    h, w = mask.shape
    padded = np.pad(mask, reach)
    out = np.zeros_like(mask)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            out |= padded[reach + dy : reach + dy + h, reach + dx : reach + dx + w]
    return out


def _expected_cfa_mask(data: np.ndarray, white: np.ndarray) -> np.ndarray:
    """H x W x 3: channel k is clipped within DEMOSAIC_REACH of a clipped photosite of colour k."""
    colours = _colours(*data.shape)
    sites = data >= white[colours]
    return np.stack([_dilate(sites & (colours == k), DEMOSAIC_REACH) for k in range(3)], axis=2)


def _desc(black: list[float], white: list[int], **kw: object) -> io_dng.DngDescription:
    return io_dng.DngDescription(
        black=black, white=white, color_matrix_1=XYZ_TO_CAM, as_shot_neutral=NEUTRAL,
        make="Libdeclip", model="Synthetic", **kw,  # type: ignore[arg-type]
    )


def _write_cfa(path: Path, data: np.ndarray, black: list[float], white: int, **kw: object) -> Path:
    io_dng.write_dng(path, data, _desc(black, [white], **kw), cfa_pattern="RGGB")
    return path


def _cfa_data(black_rgb: np.ndarray, white: int, *, seed: int = 0) -> np.ndarray:
    """A noisy ramp (no highlight) as RGGB photosites between black and white."""
    rng = np.random.default_rng(seed)
    scene = (0.1 + 0.6 * np.mgrid[0:H, 0:W][1] / W)[..., None] * np.array([0.6, 1.0, 0.8])
    colours = _colours()
    span = white - black_rgb.min()
    values = black_rgb[colours] + _mosaic(scene) * span + rng.normal(0, 3, (H, W))
    return np.clip(np.rint(values), 0, white).astype(np.uint16)


def _tag(path: Path, code: int) -> object:
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags.get(code)
        return None if tag is None else tag.value


def _rational(value: object) -> np.ndarray:
    """tifffile's (num, den, num, den, ...) or (num, den) as floats."""
    v = np.asarray(value, dtype=np.float64).ravel()
    return v[0::2] / v[1::2]


# ----------------------------------------------------------------------------- synthetic CFA


@pytest.mark.parametrize(
    ("white", "blacks"),
    [(4095, [256]), (16383, [512]), (16383, [500, 520, 520, 540])],
    ids=["12bit", "14bit", "14bit-per-channel-black"],
)
def test_cfa_dng_levels_mask_and_values(tmp_path: Path, white: int, blacks: list[float]) -> None:
    per_site = blacks * 4 if len(blacks) == 1 else blacks  # R, G, G, B
    black_rgb = np.array([per_site[0], per_site[1], per_site[3]], dtype=np.float64)
    data = _cfa_data(black_rgb, white)
    data[BLOCK] = white
    image = read_image(_write_cfa(tmp_path / "cfa.dng", data, blacks, white))
    info = image.raw
    assert info is not None and image.raw_mask is not None
    assert info.cfa_pattern == "RGGB" and info.make == "Libdeclip" and info.model == "Synthetic"
    np.testing.assert_array_equal(info.black, black_rgb)
    assert info.white == (white, white, white) and info.declared_white == white
    span = white - black_rgb.min()
    assert info.span == span
    wb = (1 / NEUTRAL) / (1 / NEUTRAL).min()
    np.testing.assert_allclose(info.wb, wb, rtol=1e-6)
    low, high = info.clip_levels
    np.testing.assert_allclose(high, (white - black_rgb) / span, rtol=1e-12)
    if len(blacks) == 1:
        np.testing.assert_array_equal(high, 1.0)
    assert np.all(low < 0)  # no value counts as clipped low
    assert not info.notes

    # the mask: the block's photosites dilated by the demosaic's reach, per colour
    expected = _expected_cfa_mask(data, np.full(3, white))
    np.testing.assert_array_equal(image.raw_mask, expected)
    rows, cols = np.nonzero(image.raw_mask[..., 0])  # R photosites: even rows 20-28, even cols 40-50
    r = DEMOSAIC_REACH
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20 - r, 28 + r, 40 - r, 50 + r)
    assert not image.raw_mask[:10].any() and not image.raw_mask[:, :30].any()
    colours = _colours()
    assert info.clipped_share == pytest.approx(np.mean(data >= white))

    # demosaicing keeps the measured samples: camera RGB = (photosite - black) / span there
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (H, W, 3)
    expected_values = (data - black_rgb[colours]) / span
    at_sites = colours[..., None] == np.arange(3)
    unclipped = at_sites & ~image.raw_mask
    expected_values = np.broadcast_to(expected_values[..., None], (H, W, 3))
    np.testing.assert_allclose(image.pixels[unclipped], expected_values[unclipped], atol=1e-3)
    np.testing.assert_allclose(image.pixels[BLOCK][at_sites[BLOCK]], high[colours[BLOCK]].ravel(), atol=1e-3)


def test_cfa_mask_only_where_a_colour_clipped(tmp_path: Path) -> None:
    """Only red photosites reach white: green and blue stay unmasked everywhere."""
    black = np.full(3, 256.0)
    data = _cfa_data(black, 4095)
    colours = _colours()
    red_block = np.zeros((H, W), dtype=bool)
    red_block[BLOCK] = True
    data[red_block & (colours == 0)] = 4095
    image = read_image(_write_cfa(tmp_path / "red.dng", data, [256], 4095))
    assert image.raw_mask is not None
    assert image.raw_mask[..., 0].any() and not image.raw_mask[..., 1:].any()
    np.testing.assert_array_equal(image.raw_mask, _expected_cfa_mask(data, np.full(3, 4095)))


@pytest.mark.parametrize("layout", ["RGGB", "linear"])
@pytest.mark.parametrize("orientation", [6, 8])
def test_orientation_is_reported_not_applied(tmp_path: Path, layout: str, orientation: int) -> None:
    """The EXIF orientation of the file is kept (LibRaw's flip 5 is EXIF 8), the pixels are not
    rotated, and a DNG written from the image says the same."""
    if layout == "RGGB":
        data = _cfa_data(np.full(3, 256.0), 4095)
        path = _write_cfa(tmp_path / "rot.dng", data, [256], 4095, orientation=orientation)
    else:
        path = tmp_path / "rot.dng"
        values = np.clip(np.rint(256 + _scene() * 3000), 0, 4095).astype(np.uint16)
        io_dng.write_dng(path, values, _desc([256], [4095], orientation=orientation))
    image = read_image(path)
    assert image.raw is not None and image.pixels.shape == (H, W, 3)  # stored as the sensor reads
    assert (image.orientation, image.raw.orientation) == (orientation, orientation)
    out = write_image(tmp_path / "out.dng", image)
    assert _tag(out, 274) == orientation


def test_saturation_below_declared_white_is_found(tmp_path: Path) -> None:
    """Like the Blackmagic: declared 16383, the sensor saturates at 16000 (many photosites)."""
    data = _cfa_data(np.full(3, 512.0), 15000)
    data[BLOCK] = 16000
    image = read_image(_write_cfa(tmp_path / "sat.dng", data, [512], 16383))
    info = image.raw
    assert info is not None and image.raw_mask is not None
    assert info.declared_white == 16383 and info.white == (16000, 16000, 16000)
    assert info.span == 16000 - 512
    np.testing.assert_array_equal(info.clip_levels[1], 1.0)
    np.testing.assert_array_equal(image.raw_mask, _expected_cfa_mask(data, np.full(3, 16000)))
    assert image.raw_mask[BLOCK].all()
    at_sites = _colours()[..., None] == np.arange(3)  # scaled to the effective white
    expected = np.broadcast_to(((data - 512.0) / (16000 - 512))[..., None], (H, W, 3))
    np.testing.assert_allclose(image.pixels[at_sites], expected[at_sites], atol=1e-3)


def test_few_top_values_keep_the_declared_white(tmp_path: Path) -> None:
    """A handful of bright photosites is not a pile-up: the declared white stays, nothing masked."""
    data = _cfa_data(np.full(3, 512.0), 15000)
    data[[10, 30, 50], [10, 40, 70]] = 16000  # three R photosites only
    image = read_image(_write_cfa(tmp_path / "few.dng", data, [512], 16383))
    info = image.raw
    assert info is not None and image.raw_mask is not None
    assert info.white == (16383, 16383, 16383) and info.span == 16383 - 512
    assert not image.raw_mask.any() and info.clipped_share == 0.0
    bright = image.pixels[[10, 30, 50], [10, 40, 70], 0]
    np.testing.assert_allclose(bright, (16000 - 512) / (16383 - 512), atol=1e-3)


# ----------------------------------------------------------------------------- synthetic LinearRaw


@pytest.mark.parametrize("blacks", [[128.0], [100.0, 128.0, 150.0]], ids=["one-black", "per-sample-black"])
def test_linear_dng_mask_and_values(tmp_path: Path, blacks: list[float]) -> None:
    white = 16383
    black_rgb = np.broadcast_to(np.array(blacks), (3,)).astype(np.float64)
    span = white - black_rgb.min()
    values = black_rgb + _scene() * (white - black_rgb.max())
    data = np.clip(np.rint(values), 0, white).astype(np.uint16)
    path = tmp_path / "linear.dng"
    io_dng.write_dng(path, data, _desc(blacks, [white]))
    image = read_image(path)
    info = image.raw
    assert info is not None and image.raw_mask is not None
    assert info.cfa_pattern is None and info.white == (white, white, white)
    np.testing.assert_array_equal(info.black, black_rgb)
    assert info.span == span
    clipped = data >= white
    assert clipped[..., 1].any() and not clipped[..., 2].any()  # the scene clips green, not blue
    np.testing.assert_array_equal(image.raw_mask, clipped)  # no dilation for demosaiced data
    np.testing.assert_allclose(image.pixels, (data - black_rgb) / span, atol=1e-6)


# ----------------------------------------------------------------------------- real files


@needs_raw
def test_real_files_read() -> None:
    tiny = read_image(RAW_DIR / "tinydng_colorchart.dng")
    assert tiny.raw is not None and tiny.raw_mask is not None
    assert tiny.raw.cfa_pattern == "RGGB" and tiny.raw.white == (15000, 15000, 15000)
    assert tiny.raw.black == (2056, 2056, 2056) and tiny.raw.span == 15000 - 2056
    assert not tiny.raw_mask.any() and tiny.tiff_exif  # nothing clipped; an EXIF IFD
    assert tiny.pixels.dtype == np.float32 and tiny.pixels.shape[2] == 3 and tiny.pixels.max() < 1

    bmd = read_image(RAW_DIR / "imageio_Blackmagic.dng")
    assert bmd.raw is not None and bmd.raw_mask is not None
    assert bmd.raw.declared_white == 65535 and bmd.raw.white == (65472, 65472, 65472)
    assert bmd.raw.span == 65472 - 512 and bmd.raw.cfa_pattern is not None
    assert bmd.raw_mask.any(axis=(0, 1)).all()

    kdc = read_image(RAW_DIR / "rawpy_RAW_KODAK_DC50.KDC")
    assert kdc.raw is not None and kdc.raw_mask is not None
    assert kdc.pixels.shape == (512, 768, 3) and kdc.raw.cfa_pattern == "GRBG"
    assert kdc.raw.declared_white == 16383 and kdc.raw.white == (16383, 16383, 16383)
    assert any("colour matrix" in note for note in kdc.raw.notes)
    assert kdc.raw_mask[..., 0].any() or kdc.raw_mask[..., 2].any()

    eos = read_image(RAW_DIR / "photoprism_canon_eos_6d.dng")
    assert eos.raw is not None and eos.raw_mask is not None
    assert eos.raw.cfa_pattern is None and eos.raw.make == "Canon"
    assert eos.raw_mask[..., 2].any()


@needs_raw
def test_real_clipped_file_declips_with_its_mask(tmp_path: Path, declipper: Declipper) -> None:
    image = read_image(RAW_DIR / "rawpy_RAW_KODAK_DC50.KDC")
    assert image.raw is not None and image.raw_mask is not None
    out = declipper.repair(image, method="declipnet").pixels
    _check_declipped(image, out)
    declipped = dataclasses.replace(image, pixels=out)
    _check_dng_output(tmp_path / "kdc.dng", image, declipped)


@needs_raw
def test_real_linear_dng_declips_and_keeps_its_colour_tags(tmp_path: Path, declipper: Declipper) -> None:
    """The Canon 6D linear DNG (clipped blue): a crop declipped and written back as DNG keeps the
    source's colour tags, EXIF, and BaselineExposure (0.25) plus the headroom."""
    image = read_image(RAW_DIR / "photoprism_canon_eos_6d.dng")
    assert image.raw is not None and image.raw_mask is not None and image.tiff_exif
    assert image.raw.baseline_exposure == pytest.approx(0.25)
    crop = np.s_[560:816, 600:856]
    image = dataclasses.replace(image, pixels=image.pixels[crop].copy(), raw_mask=image.raw_mask[crop].copy())
    out = declipper.repair(image, method="declipnet").pixels
    _check_declipped(image, out)
    path = tmp_path / "eos.dng"
    again = _check_dng_output(path, image, dataclasses.replace(image, pixels=out))
    source_tags = {t[0]: t[3] for t in image.raw.dng_colour_tags}
    assert io_dng.COLOR_MATRIX_2 in source_tags and io_dng.FORWARD_MATRIX_1 in source_tags
    for code, value in source_tags.items():  # numbers, text, and the profile's float tables
        written = _tag(path, code)
        if isinstance(value, str):
            assert written == value, code
        else:
            np.testing.assert_array_equal(np.asarray(written), np.asarray(value), err_msg=str(code))
    assert again.tiff_exif == image.tiff_exif and again.raw is not None
    assert again.raw.make == "Canon" and again.raw.model == image.raw.model


def _check_declipped(image: Image, out: np.ndarray) -> None:
    mask = image.raw_mask
    assert mask is not None and image.raw is not None and mask.any()
    assert out.dtype == np.float32 and out.shape == image.pixels.shape
    np.testing.assert_array_equal(out[~mask], image.pixels[~mask])  # bit-identical
    assert np.all(out[mask] >= image.pixels[mask])
    high = image.raw.clip_levels[1]
    levels = np.broadcast_to(high, out.shape)[mask]
    assert np.count_nonzero(out[mask] > levels + 1e-3) > 0  # something recovered above the level


def _check_dng_output(path: Path, source: Image, declipped: Image) -> Image:
    """Write ``declipped`` as DNG and check what other readers see in it; returns it read back."""
    assert source.raw is not None
    write_image(path, declipped)
    peak = float(declipped.pixels.max())
    headroom = min(16.0, 2.0 ** math.ceil(math.log2(max(peak, 1.0))))
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_type == rawpy.RawType.Stack
        assert raw.raw_image_visible.shape[:2] == declipped.pixels.shape[:2]
    assert _tag(path, 262) == io_dng.PHOTOMETRIC_LINEAR_RAW
    white = _tag(path, io_dng.WHITE_LEVEL)
    assert np.ravel(white).tolist() == [65535]
    baseline = _rational(_tag(path, io_dng.BASELINE_EXPOSURE))
    np.testing.assert_allclose(baseline, [source.raw.baseline_exposure + math.log2(headroom)], atol=1e-6)
    # colour: a source DNG's ColorMatrix1 as it was, else LibRaw's; the white balance as shot
    carried = {t[0]: t[3] for t in source.raw.dng_colour_tags}
    if io_dng.COLOR_MATRIX_1 in carried:
        assert _tag(path, io_dng.COLOR_MATRIX_1) == carried[io_dng.COLOR_MATRIX_1]
    else:
        matrix = _rational(_tag(path, io_dng.COLOR_MATRIX_1))
        np.testing.assert_allclose(matrix, source.raw.xyz_to_cam, atol=1e-6)
    neutral = 1 / np.array(source.raw.wb)
    written_neutral = _rational(_tag(path, io_dng.AS_SHOT_NEUTRAL))
    np.testing.assert_allclose(written_neutral, neutral / neutral.max(), atol=1e-6)

    again = read_image(path)
    assert again.raw is not None and again.raw.cfa_pattern is None
    assert again.raw.span == 65535 and again.raw.white == (65535, 65535, 65535)
    np.testing.assert_allclose(again.pixels, declipped.pixels / headroom, atol=0.5 / 65535 + 1e-6, rtol=0)
    np.testing.assert_allclose(again.raw.wb, source.raw.wb, rtol=1e-5)
    return again


def test_synthetic_clipped_cfa_end_to_end(tmp_path: Path, declipper: Declipper) -> None:
    """A highlight clipped on the sensor: declip with the photosite mask, write DNG and TIFFs."""
    white, black = 4095, 256
    span = white - black
    rng = np.random.default_rng(1)
    values = black + _mosaic(_scene()) * span + rng.normal(0, 2, (H, W))
    data = np.clip(np.rint(values), 0, white).astype(np.uint16)
    assert (data == white).any()
    src = _write_cfa(tmp_path / "clipped.dng", data, [black], white)
    image = read_image(src)
    assert image.raw is not None and image.raw_mask is not None
    np.testing.assert_array_equal(image.raw_mask, _expected_cfa_mask(data, np.full(3, white)))

    out = declipper.repair(image, method="declipnet").pixels
    _check_declipped(image, out)
    # the module-level API takes a mask too, with the session's result
    np.testing.assert_array_equal(
        declip(image.pixels, clip_levels=image.clip_levels, colorspace=image.colorspace, tolerance=0.0,
               mask=image.raw_mask, device="cpu"),
        declipper.run(image.pixels, clip_levels=image.clip_levels, colorspace=image.colorspace,
                      tolerance=0.0, mask=image.raw_mask),
    )
    declipped = dataclasses.replace(image, pixels=out)

    dng = tmp_path / "out.dng"
    again = _check_dng_output(dng, image, declipped)
    # the colour description of the source goes with the data
    np.testing.assert_array_equal(_tag(dng, io_dng.COLOR_MATRIX_1), _tag(src, io_dng.COLOR_MATRIX_1))
    np.testing.assert_allclose(_rational(_tag(dng, io_dng.AS_SHOT_NEUTRAL)), NEUTRAL / NEUTRAL.max(),
                               rtol=1e-5)
    assert _tag(dng, io_dng.MAKE) == "Libdeclip" and _tag(dng, io_dng.MODEL) == "Synthetic"
    np.testing.assert_allclose(again.raw.xyz_to_cam, image.raw.xyz_to_cam, rtol=1e-4, atol=1e-6)

    # scene-referred float32 TIFF: linear Rec. 2020 with its ICC profile, highlights above 1 kept
    tif = write_image(tmp_path / "out.tif", declipped)
    with tifffile.TiffFile(tif) as t:
        pixels = t.asarray()
        assert 34675 in t.pages[0].tags
    assert pixels.dtype == np.float32 and pixels.shape == (H, W, 3)
    assert pixels.max() > 1.0
    np.testing.assert_allclose(pixels, develop(declipped, "tiff32").pixels, rtol=1e-6)
    brighter = develop(declipped, "tiff32", exposure=1.0).pixels
    np.testing.assert_allclose(brighter, 2 * pixels, rtol=1e-5, atol=1e-7)

    # display-referred 16-bit sRGB TIFF with its ICC profile
    tif16 = write_image(tmp_path / "out16.tif", declipped, format="tiff16")
    with tifffile.TiffFile(tif16) as t:
        pixels16 = t.asarray()
        assert 34675 in t.pages[0].tags
    assert pixels16.dtype == np.uint16 and pixels16.shape == (H, W, 3) and pixels16.max() <= 65535
    assert len(np.unique(pixels16)) > 256  # really 16-bit
    clamped = write_image(tmp_path / "clamp16.tif", declipped, format="tiff16", fit="clamp")
    assert tifffile.imread(clamped).dtype == np.uint16
    with pytest.raises(ValueError):
        write_image(tmp_path / "float16.tif", declipped, format="tiff16", fit="float")
    assert develop(declipped, "srgb8").pixels.dtype == np.uint8


@needs_raw
def test_dng_output_carries_exif(tmp_path: Path) -> None:
    image = read_image(RAW_DIR / "tinydng_colorchart.dng")
    assert image.tiff_exif and image.raw is not None and image.raw_mask is not None
    crop = dataclasses.replace(image, pixels=image.pixels[:128, :192].copy(),
                               raw_mask=image.raw_mask[:128, :192].copy())
    out = write_image(tmp_path / "tiny.dng", crop)
    with open(out, "rb") as f:
        assert read_exif(f) == image.tiff_exif
    assert _rational(_tag(out, io_dng.BASELINE_EXPOSURE)) == pytest.approx([image.raw.baseline_exposure])
    again = read_image(out)
    assert again.tiff_exif == image.tiff_exif
    np.testing.assert_allclose(again.pixels, crop.pixels, atol=0.5 / 65535 + 1e-6, rtol=0)


def test_dng_round_trip_with_a_flat_recovered_highlight(tmp_path: Path) -> None:
    """Declipped values with a flat top (many samples at the maximum, 1.5 here) written as DNG
    read back as what was written: the maximum is data, not a sensor saturating below its white."""
    data = _cfa_data(np.full(3, 256.0), 4095)
    image = read_image(_write_cfa(tmp_path / "in.dng", data, [256], 4095))
    pixels = image.pixels.copy()
    pixels[28:36, 40:56] = 1.5
    out = write_image(tmp_path / "flat.dng", dataclasses.replace(image, pixels=pixels))
    again = read_image(out)
    assert again.raw is not None and again.raw_mask is not None
    assert again.raw.white == (65535, 65535, 65535) and not again.raw_mask.any()
    np.testing.assert_allclose(again.pixels, pixels / 2, atol=0.5 / 65535 + 1e-6, rtol=0)


# ----------------------------------------------------------------------------- errors


def test_garbage_raw_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "holiday.nef"
    bad.write_bytes(b"not a raw file at all " * 100)
    with pytest.raises(UnsupportedInputError, match="holiday.nef"):
        read_image(bad)
    with pytest.raises(UnsupportedInputError, match="missing.dng"):
        read_image(tmp_path / "missing.dng")


def test_dng_output_needs_a_raw_image(tmp_path: Path) -> None:
    plain = Image(pixels=np.zeros((8, 8, 3), dtype=np.uint8), format="png")
    with pytest.raises(UnsupportedInputError):
        write_image(tmp_path / "x.dng", plain)
    with pytest.raises(UnsupportedInputError):
        write_image(tmp_path / "x.tif", plain, format="dng")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError):
        develop(plain, "tiff32")


def test_raw_image_unknown_output_is_refused(tmp_path: Path) -> None:
    data = _cfa_data(np.full(3, 256.0), 4095)
    image = read_image(_write_cfa(tmp_path / "in.dng", data, [256], 4095))
    with pytest.raises(UnsupportedInputError):
        write_image(tmp_path / "out.exr", image)
    with pytest.raises(ValueError):
        develop(image, "tiff8")


@pytest.mark.skipif(shutil.which("darktable-cli") is None, reason="darktable-cli not installed")
def test_darktable_shows_the_recovered_highlight(tmp_path: Path, declipper: Declipper) -> None:
    """Real darktable opens the declipped DNG, and the clipped area comes out brighter, relative
    to the rest, than in a DNG of the same photo without repair."""
    from benchmarks import _darktable

    white, black = 4095, 256
    rng = np.random.default_rng(2)
    data = np.clip(np.rint(black + _mosaic(_scene()) * (white - black) + rng.normal(0, 2, (H, W))), 0, white)
    image = read_image(_write_cfa(tmp_path / "clipped.dng", data.astype(np.uint16), [black], white))
    assert image.raw_mask is not None
    clipped = image.raw_mask.any(axis=2)
    assert clipped.any()
    contrast = []
    declipped = declipper.repair(image, method="declipnet").pixels
    for name, pixels in [("as_read", image.pixels), ("declipped", declipped)]:
        path = write_image(tmp_path / f"{name}.dng", image.with_pixels(pixels))
        shown = _darktable.develop(path, "clip", tmp_path).mean(axis=2)
        assert shown.shape == clipped.shape and np.isfinite(shown).all()
        contrast.append(shown[clipped].mean() / shown[~clipped].mean())
    assert contrast[1] > contrast[0] * 1.02


def test_cli_declips_a_raw_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from libdeclip.cli import main

    white, black = 4095, 256
    data = np.clip(np.rint(black + _mosaic(_scene()) * (white - black)), 0, white).astype(np.uint16)
    src = _write_cfa(tmp_path / "shot.dng", data, [black], white)
    assert main(["info", str(src)]) == 0
    assert "camera RAW" in capsys.readouterr().out
    assert main(["declip", str(src), "-q", "--device", "cpu"]) == 0  # default: a DNG beside it
    with rawpy.imread(str(tmp_path / "shot_declip.dng")) as raw:
        assert raw.raw_type == rawpy.RawType.Stack
    assert main(["declip", str(src), "-q", "--device", "cpu", "--format", "tiff16", "--exposure", "-1"]) == 0
    tiff = tifffile.imread(tmp_path / "shot_declip.tif")
    assert tiff.dtype == np.uint16 and tiff.shape == (H, W, 3)
    out = tmp_path / "linear.tif"
    assert main(["declip", str(src), "-q", "--device", "cpu", "--format", "tiff32", "-o", str(out)]) == 0
    assert tifffile.imread(out).dtype == np.float32
    # a float fit cannot make a 16-bit file: one clear error, no output
    bad = tmp_path / "bad.tif"
    assert main(["declip", str(src), "-q", "--device", "cpu", "--format", "tiff16", "--fit", "float",
                 "-o", str(bad)]) == 1
    assert "fit" in capsys.readouterr().err and not bad.exists()


def test_the_network_sees_every_measured_value_with_each_channels_own_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RAW repair's network path: the white-balanced picture scaled so that the highest channel's
    level is 1, every photosite's measurement in it (none clipped at the lowest channel's white),
    each channel's own level (white x gain) as its clip level, the photosite mask as the mask; the
    model's colour space keeps the picture's colours (its matrix times the per-channel levels)."""
    from libdeclip import Declipper, RepairOptions

    # white balanced, red is the luminance plus 1.2 (AsShotNeutral 0.5, 1, 0.7: gains 2, 1, 1.43):
    # red photosites saturate in the core, and red values above green's level are measured around it
    yy, xx = np.mgrid[0:H, 0:W]
    lum = 0.1 + 0.85 * np.exp(-((yy - 30) ** 2 + (xx - 45) ** 2) / (2 * 8.0**2))
    scene = np.stack([(lum + 1.2) / 2, lum, lum * 0.7], axis=2)
    data = np.clip(np.rint(256 + _mosaic(scene) * (4095 - 256)), 0, 4095).astype(np.uint16)
    image = read_image(_write_cfa(tmp_path / "light.dng", data, [256], 4095))
    assert image.raw is not None and image.raw_mask is not None
    gains = np.array(image.raw.wb)
    np.testing.assert_allclose(gains, [2.0, 1.0, 1 / 0.7], rtol=1e-6)
    seen: dict[str, object] = {}
    session = Declipper(device="cpu")
    real_run = session.run

    def run(pixels: np.ndarray, options: RepairOptions, **kwargs: object) -> np.ndarray:
        seen.update(kwargs, pixels=pixels.copy(), clip_levels=options.clip_levels,
                    colorspace=options.colorspace)
        return real_run(pixels, options, **kwargs)

    monkeypatch.setattr(session, "run", run)
    result = session.repair(image, method="declipnet").pixels
    shown = seen["pixels"]
    assert isinstance(shown, np.ndarray)
    camera = image.pixels
    # nothing measured is clipped away: the picture shown is camera x gains / 2 (red's level, the
    # highest), so balanced red between green's level (1) and its own (2) reaches the model
    np.testing.assert_allclose(shown, camera * (gains / 2.0).astype(np.float32), rtol=1e-6)
    assert ((camera[..., 0] * 2.0 > 1.05) & ~image.raw_mask[..., 0]).any()
    np.testing.assert_allclose(seen["clip_levels"][1], [1.0, 0.5, 1 / 0.7 / 2], rtol=1e-6)  # type: ignore[index]
    np.testing.assert_array_equal(seen["mask"], image.raw_mask)
    space = seen["colorspace"]
    # the camera's own channels (no matrix mixing a clipped channel into the others)
    np.testing.assert_allclose(space.to_linear_srgb, np.diag([1.0, 0.5, 1 / 0.7 / 2]))  # type: ignore[attr-defined]
    mask = image.raw_mask
    assert (result[mask] >= camera[mask]).all()
    np.testing.assert_array_equal(result[~mask], camera[~mask])


def test_the_raw_default_combines_the_photosite_estimate_and_the_network(tmp_path: Path) -> None:
    """opposed+declipnet (the CLI's default for RAW): the photosite inpaint opposed where a
    channel survives, the network deep inside areas with every channel clipped, a ramp between;
    never below what the photosites recorded; what `libdeclip declip` writes for a RAW."""
    from libdeclip import Declipper
    from libdeclip.cli import main as cli_main
    from libdeclip.options import COMBINED
    from libdeclip.photosites import COMBINED_RAMP

    yy, xx = np.mgrid[0:H, 0:W]
    lum = 0.1 + 1.7 * np.exp(-((yy - 32) ** 2 + (xx - 48) ** 2) / (2 * 9.0**2))
    scene = np.stack([(lum + 0.6) / 2, lum, lum * 0.7], axis=2)  # green clips widest, then all three
    data = np.clip(np.rint(256 + _mosaic(scene) * (4095 - 256)), 0, 4095).astype(np.uint16)
    path = _write_cfa(tmp_path / "light.dng", data, [256], 4095)
    image = read_image(path)
    mask = image.raw_mask
    assert mask is not None
    every = mask.all(axis=2)
    some = mask.any(axis=2) & ~every
    assert every.sum() > 50 and some.sum() > 50
    with Declipper(device="cpu") as session:
        combined = session.repair(image, method=COMBINED).pixels
        network = session.repair(image, method="declipnet").pixels
    opposed = Declipper(load=False).repair(image, method="inpaint-opposed").pixels
    np.testing.assert_array_equal(combined[some], opposed[some])
    from scipy.ndimage import distance_transform_cdt

    deep = distance_transform_cdt(every, metric="chessboard") >= COMBINED_RAMP
    assert deep.any()
    np.testing.assert_allclose(combined[deep], network[deep], rtol=0, atol=1e-6)
    ramp = every & ~deep
    low, high = np.minimum(opposed, network)[ramp], np.maximum(opposed, network)[ramp]
    assert (combined[ramp] >= low - 1e-6).all() and (combined[ramp] <= high + 1e-6).all()
    assert (combined[mask] >= image.pixels[mask]).all()
    np.testing.assert_array_equal(combined[~mask], image.pixels[~mask])
    # the command line's default for a RAW, to a float TIFF of camera RGB developed the same way
    out = tmp_path / "light_declip.tif"
    assert cli_main(["declip", str(path), "-o", str(out), "--format", "tiff32", "-q", "--device", "cpu"]) == 0
    from libdeclip.develop import develop

    expected = develop(image.with_pixels(combined), "tiff32").pixels
    np.testing.assert_allclose(read_image(out).pixels, expected, rtol=0, atol=1e-6)


def _photosite_prior_model(source: Path, out: Path, raw_prior: str = "photosite") -> Path:
    """``source`` (a v3 file) with its metadata's raw_prior set, as the exporter writes metadata."""
    import onnx

    from training.export import set_metadata

    proto = onnx.load(str(source))
    meta = {p.key: p.value for p in proto.metadata_props} | {"raw_prior": raw_prior}
    set_metadata(proto, meta, proto.producer_name)
    onnx.save(proto, str(out))
    return out


def test_a_photosite_prior_model_starts_from_the_photosite_estimate(tmp_path: Path) -> None:
    """A v3 model exported with raw_prior = photosite is given a Bayer RAW's photosite inpaint
    opposed as both of its estimates: with its residual at zero (v3's base) it returns that
    estimate, where the same model reading the demosaiced picture's estimates does not."""
    from libdeclip.engine import MODELS_DIR
    from libdeclip.errors import ModelError

    base = Path(__file__).resolve().parents[1] / "training" / "checkpoints" / "v3_ablation" / "v3_base.onnx"
    yy, xx = np.mgrid[0:H, 0:W]
    lum = 0.1 + 1.7 * np.exp(-((yy - 32) ** 2 + (xx - 48) ** 2) / (2 * 9.0**2))
    scene = np.stack([(lum + 0.6) / 2, lum, lum * 0.7], axis=2)
    data = np.clip(np.rint(256 + _mosaic(scene) * (4095 - 256)), 0, 4095).astype(np.uint16)
    image = read_image(_write_cfa(tmp_path / "light.dng", data, [256], 4095))
    mask = image.raw_mask
    assert mask is not None and mask.any()
    opposed = Declipper(load=False).repair(image, method="inpaint-opposed").pixels
    photosite = _photosite_prior_model(base, tmp_path / "base_photosite.onnx")
    with Declipper(photosite, device="cpu") as session:
        assert session.model_info.raw_prior == "photosite"
        started = session.repair(image, method="declipnet").pixels
    np.testing.assert_array_equal(started[~mask], image.pixels[~mask])
    with Declipper(base, device="cpu") as session:
        assert session.model_info.raw_prior == "demosaiced"  # no key: the estimates of the picture
        demosaiced = session.repair(image, method="declipnet").pixels
    np.testing.assert_allclose(started[mask], opposed[mask], rtol=0, atol=1e-5)
    assert np.abs(demosaiced[mask] - opposed[mask]).mean() > 1e-3
    # the shipped v3 was trained without photosite estimates (its sensor samples had none), and
    # says so; a value the runtime does not know is refused
    assert Declipper(MODELS_DIR / "declipnet-v3.onnx", device="cpu").model_info.raw_prior == "demosaiced"
    with pytest.raises(ModelError, match="raw_prior 'mosaic'"):
        Declipper(_photosite_prior_model(base, tmp_path / "bad.onnx", "mosaic"), device="cpu").load()
