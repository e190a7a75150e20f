from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms

from libdeclip.errors import UnsupportedInputError
from libdeclip.io import Image, read_image, write_image
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def exif_bytes() -> bytes:
    exif = PILImage.Exif()
    exif[274] = 6  # orientation: rotate 90 CW to display
    exif[0x010F] = "libdeclip test camera"
    return exif.tobytes()


def _rgb16(demo_rgb: np.ndarray) -> np.ndarray:
    """16-bit version of the real demo photo whose low byte carries information too."""
    rng = np.random.default_rng(0)
    return (demo_rgb[:120, :160].astype(np.uint16) * 257 - rng.integers(0, 200, (120, 160, 3))).clip(
        0, 65535
    ).astype(np.uint16)


def test_png_8bit_keeps_pixels_and_metadata(tmp_path: Path, demo_rgb: np.ndarray, srgb_icc: bytes,
                                            exif_bytes: bytes) -> None:
    src = tmp_path / "in.png"
    PILImage.fromarray(demo_rgb).save(src, icc_profile=srgb_icc, exif=exif_bytes, dpi=(300, 300))
    image = read_image(src)
    assert image.format == "png" and image.pixels.dtype == np.uint8 and image.bit_depth == 8
    np.testing.assert_array_equal(image.pixels, demo_rgb)
    assert image.icc_profile == srgb_icc and image.orientation == 6 and image.clip_levels == (0, 255)
    out = write_image(tmp_path / "out.png", image)
    again = read_image(out)
    np.testing.assert_array_equal(again.pixels, demo_rgb)
    assert again.icc_profile == srgb_icc and again.exif == image.exif and again.orientation == 6
    assert again.dpi is not None and abs(again.dpi[0] - 300) < 0.1
    with PILImage.open(out) as im:  # other readers agree
        assert im.info["icc_profile"] == srgb_icc and im.getexif()[0x010F] == "libdeclip test camera"


def test_png_16bit_is_really_16bit(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    pixels = _rgb16(demo_rgb)
    src = tmp_path / "in16.png"
    src.write_bytes(imagecodecs.png_encode(pixels))
    with PILImage.open(src) as im:  # the reason we do not read PNG pixels with Pillow
        assert np.asarray(im.convert("RGB")).dtype == np.uint8
    image = read_image(src)
    assert image.pixels.dtype == np.uint16 and image.clip_levels == (0, 65535)
    np.testing.assert_array_equal(image.pixels, pixels)
    assert len(np.unique(image.pixels % 257)) > 100  # not 8-bit data scaled up
    again = read_image(write_image(tmp_path / "out16.png", image))
    np.testing.assert_array_equal(again.pixels, pixels)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "I;16"])
def test_png_modes(tmp_path: Path, demo_rgb: np.ndarray, mode: str) -> None:
    base = PILImage.fromarray(demo_rgb[:64, :96])
    if mode == "I;16":
        im = PILImage.fromarray(demo_rgb[:64, :96, 1].astype(np.uint16) * 257)
    elif mode == "P":
        im = base.quantize(32)
    else:
        im = base.convert(mode)
    src = tmp_path / "m.png"
    im.save(src)
    image = read_image(src)
    expected_channels = {"RGBA": 4, "P": 3, "L": 1, "LA": 2, "I;16": 1}[mode]
    assert image.channels == expected_channels
    assert image.pixels.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    again = read_image(write_image(tmp_path / "o.png", image))
    np.testing.assert_array_equal(again.pixels, image.pixels)


def test_jpeg_keeps_quality_and_metadata(tmp_path: Path, demo_rgb: np.ndarray, srgb_icc: bytes,
                                         exif_bytes: bytes) -> None:
    src = tmp_path / "in.jpg"
    PILImage.fromarray(demo_rgb).save(src, quality=82, icc_profile=srgb_icc, exif=exif_bytes)
    image = read_image(src)
    assert image.format == "jpeg" and image.jpeg_quality == 82
    out = write_image(tmp_path / "out.jpg", image)
    again = read_image(out)
    assert again.jpeg_qtables == image.jpeg_qtables and again.jpeg_quality == 82
    assert again.icc_profile == srgb_icc and again.orientation == 6
    # a re-encode at the same tables stays close to the source
    assert np.abs(again.pixels.astype(int) - image.pixels.astype(int)).mean() < 2.0
    fresh = Image(pixels=demo_rgb, format="jpeg")
    assert read_image(write_image(tmp_path / "fresh.jpg", fresh)).jpeg_quality == 95


@pytest.mark.skipif(not (SHARED_DATA / "clipped" / "singlehdr").is_dir(), reason="../shared/data absent")
def test_real_jpeg_quality_is_estimated() -> None:
    path = sorted((SHARED_DATA / "clipped" / "singlehdr").glob("*.jpg"))[0]
    image = read_image(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 3
    assert image.jpeg_quality is not None and 1 <= image.jpeg_quality <= 100


def _real_jpegs() -> list[Path]:
    """Every 20th JPEG of ../shared/data (camera originals, BSDS, ImageNet, real clipped photos;
    baseline RGB, 4:2:0 and 4:4:4), a few dozen files."""
    return sorted(p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[::20]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data absent")
def test_jpeg_pixels_equal_pillows_decode(tmp_path: Path) -> None:
    """The reader's libjpeg-turbo decode (imagecodecs) gives Pillow's values, writable; a stream
    without its end-of-image marker goes to Pillow, which refuses it as before."""
    paths = _real_jpegs()
    assert len(paths) >= 20
    with PILImage.open(paths[0]) as im:  # the kinds the shared photos lack: progressive, grey
        im.save(tmp_path / "progressive.jpg", progressive=True, quality=90)
        im.convert("L").save(tmp_path / "grey.jpg", quality=90)
    for path in [*paths, tmp_path / "progressive.jpg", tmp_path / "grey.jpg"]:
        image = read_image(path)
        with PILImage.open(path) as im:
            assert np.array_equal(image.pixels, np.asarray(im)), path
        assert image.pixels.flags.writeable, path
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(paths[0].read_bytes()[:-2])
    with pytest.raises(UnsupportedInputError, match="truncated"):
        read_image(cut)


@pytest.mark.parametrize(
    "dtype, compression",
    [(np.uint8, None), (np.uint16, "zlib"), (np.uint16, "lzw"), (np.float32, "zlib"), (np.float16, None),
     (np.uint8, "packbits")],
)
def test_tiff_round_trips(tmp_path: Path, demo_rgb: np.ndarray, srgb_icc: bytes, dtype: type,
                          compression: str | None) -> None:
    base = _rgb16(demo_rgb)
    if dtype == np.uint8:
        pixels = demo_rgb[:120, :160].copy()
    elif dtype == np.uint16:
        pixels = base
    else:
        pixels = (base.astype(np.float32) / 65535 * 1.5 - 0.1).astype(dtype)  # HDR: beyond [0, 1]
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, pixels, photometric="rgb", compression=compression, resolution=(240, 240),
                     extratags=[(34675, "B", len(srgb_icc), srgb_icc, True), (274, "H", 1, 8, True)])
    image = read_image(src)
    assert image.pixels.dtype == dtype and image.icc_profile == srgb_icc and image.orientation == 8
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.dpi == (240, 240)
    out = write_image(tmp_path / "out.tif", image)
    again = read_image(out)
    np.testing.assert_array_equal(again.pixels, pixels)
    assert again.icc_profile == srgb_icc and again.dpi == (240, 240) and again.orientation == 8
    assert again.tiff_compression == image.tiff_compression


def test_tiff_alpha_and_multipage(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    rgba = np.dstack([demo_rgb[:50, :60], np.full((50, 60), 200, np.uint8)])
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    image = read_image(tmp_path / "a.tif")
    assert image.has_alpha
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "b.tif", image)).pixels, rgba)
    with tifffile.TiffWriter(tmp_path / "multi.tif") as tw:
        tw.write(demo_rgb[:20, :20], photometric="rgb")
        tw.write(demo_rgb[:20, :20], photometric="rgb")
    with pytest.raises(UnsupportedInputError, match=r"multi.tif: multi-page TIFF \(2 pages\)"):
        read_image(tmp_path / "multi.tif")


def test_writes_are_atomic_and_never_clobber(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    image = Image(pixels=demo_rgb)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_image(target, image)
    assert target.read_bytes() == b"precious"
    with pytest.raises(UnsupportedInputError, match="PNG holds 8- or 16-bit"):
        write_image(target, Image(pixels=demo_rgb.astype(np.float32)), overwrite=True)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary left behind
    write_image(target, image, overwrite=True)
    np.testing.assert_array_equal(read_image(target).pixels, demo_rgb)


def test_written_files_get_ordinary_permissions(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    import os

    old = os.umask(0o022)
    try:
        out = write_image(tmp_path / "new.png", Image(pixels=demo_rgb))
        assert out.stat().st_mode & 0o777 == 0o644
        os.chmod(out, 0o640)
        write_image(out, Image(pixels=demo_rgb), overwrite=True)
        assert out.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(old)


def test_bad_files_get_clear_errors(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    good = tmp_path / "good.png"
    PILImage.fromarray(demo_rgb).save(good)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:5000])
    (tmp_path / "notes.png").write_text("hello")
    cases = {
        truncated: "cut.png: damaged or unreadable PNG",
        tmp_path / "notes.png": "notes.png: not a PNG, JPEG, TIFF, OpenEXR, WebP, AVIF or HEIC/HEIF file",
        tmp_path / "missing.png": "missing.png: no such file",
        tmp_path: "is a folder",
    }
    for path, message in cases.items():
        with pytest.raises(UnsupportedInputError, match=message):
            read_image(path)


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_exif_is_carried_over(tmp_path: Path, demo_rgb: np.ndarray, order: str) -> None:
    from libdeclip._tiffexif import PLACEHOLDER_TAG, ExifEntry, append_exif

    # A camera-like EXIF IFD: ASCII date, a rational exposure, a short ISO, a long value.
    date = b"2026:11:25 13:00:00\x00"
    entries = (
        ExifEntry(0x829A, 5, 1, (1, 250)),  # ExposureTime
        ExifEntry(0x8827, 3, 1, (400,)),  # ISOSpeedRatings
        ExifEntry(0x9003, 2, len(date), tuple(date)),  # DateTimeOriginal
        ExifEntry(0xA002, 4, 1, (50,)),  # PixelXDimension
    )
    src = tmp_path / "exif.tif"
    tifffile.imwrite(src, demo_rgb[:40, :50], photometric="rgb", byteorder=order,
                     extratags=[(PLACEHOLDER_TAG, "I", 1, 0, True)])
    with open(src, "r+b") as f:
        append_exif(f, entries)
    with tifffile.TiffFile(src) as tif:  # an independent reader sees what we wrote
        assert tif.pages[0].tags["ExifTag"].value["ExposureTime"] == (1, 250)
    image = read_image(src)
    assert image.tiff_exif == entries
    image = image.with_pixels(image.pixels.astype(np.uint16) * 257)  # into a 16-bit file
    out = write_image(tmp_path / "out.tif", image)
    assert read_image(out).tiff_exif == entries
    with tifffile.TiffFile(out) as tif:
        exif = tif.pages[0].tags["ExifTag"].value
    assert exif["DateTimeOriginal"] == "2026:11:25 13:00:00"
    assert exif["ExposureTime"] == (1, 250) and exif["ISOSpeedRatings"] == 400
    assert exif["PixelXDimension"] == 50
    np.testing.assert_array_equal(read_image(out).pixels, image.pixels)


def _linear(rgb8: np.ndarray) -> np.ndarray:
    """A real photo decoded to scene-linear light (what an OpenEXR holds)."""
    x = rgb8.astype(np.float64) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_openexr_round_trips(tmp_path: Path, demo_rgb: np.ndarray, dtype: type, channels: int) -> None:
    import OpenEXR

    linear = _linear(demo_rgb[:120, :160]) * 1.7 - 0.01  # above 1 and below 0 must survive
    alpha = np.linspace(0, 1, linear.shape[1])[None, :].repeat(linear.shape[0], axis=0)[..., None]
    pixels = {1: linear[..., 1], 2: np.concatenate([linear[..., 1:2], alpha], 2), 3: linear,
              4: np.concatenate([linear, alpha], 2)}[channels].astype(dtype)
    src = tmp_path / "in.exr"
    header = {"compression": OpenEXR.PIZ_COMPRESSION, "owner": "a photographer"}
    exr_channels = (
        {"Y": np.ascontiguousarray(pixels[..., 0]), "A": np.ascontiguousarray(pixels[..., 1])}
        if channels == 2 else {{1: "Y", 3: "RGB", 4: "RGBA"}[channels]: pixels}
    )
    with OpenEXR.File(header, exr_channels) as f:
        f.write(str(src))
    image = read_image(src)
    assert image.format == "exr" and image.pixels.dtype == dtype and image.colorspace.name == "linear-srgb"
    np.testing.assert_array_equal(image.pixels, pixels)
    out = write_image(tmp_path / "out.exr", image)
    again = read_image(out)
    np.testing.assert_array_equal(again.pixels, pixels)
    assert again.exr_header is not None
    assert again.exr_header["owner"] == "a photographer"
    assert str(again.exr_header["compression"]).endswith("PIZ_COMPRESSION")


def test_openexr_declips_in_linear_light(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    import subprocess
    import sys

    import OpenEXR

    linear = _linear(demo_rgb).astype(np.float32)  # clipped at 1.0, as the camera's JPEG was
    src = tmp_path / "lamps.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": linear}) as f:
        f.write(str(src))
    cmd = [sys.executable, "-m", "libdeclip", "declip", str(src), "-q", "--compare", str(tmp_path / "c.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = read_image(tmp_path / "lamps_declip.exr")
    assert out.pixels.dtype == np.float32 and out.pixels.shape == linear.shape
    clipped = linear >= 1.0 - 1 / 255
    assert out.pixels[clipped].max() > 1.0  # recovered highlights stay above white (HDR)
    far = ~clipped & (linear > 1 / 255)  # unclipped values (not near black either) are untouched
    np.testing.assert_array_equal(out.pixels[far], linear[far])
    with PILImage.open(tmp_path / "c.png") as im:
        # the before half is shown through the sRGB curve, so it matches the original photo
        before = np.asarray(im.convert("RGB"))[:, : demo_rgb.shape[1]]
        assert np.abs(before.astype(int) - demo_rgb.astype(int)).max() <= 1


def test_openexr_refusals(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    import OpenEXR

    layers = tmp_path / "layers.exr"
    plane = _linear(demo_rgb[:32, :32, 0]).astype(np.float32)
    with OpenEXR.File({}, {"diffuse.R": plane, "diffuse.G": plane, "Z": plane}) as f:
        f.write(str(layers))
    with pytest.raises(UnsupportedInputError, match=r"layers.exr: OpenEXR channels .* are not supported"):
        read_image(layers)
    truncated = tmp_path / "cut.exr"
    with OpenEXR.File({}, {"RGB": _linear(demo_rgb[:64, :64]).astype(np.float32)}) as f:
        f.write(str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(UnsupportedInputError, match="cut.exr: damaged or unreadable EXR"):
        read_image(truncated)
    with pytest.raises(UnsupportedInputError, match="OpenEXR holds half or float pixels"):
        write_image(tmp_path / "x.exr", Image(pixels=demo_rgb, format="exr"))
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "x.exr").exists()
