"""WebP, AVIF and HEIC/HEIF (issue #22, part 1): read and written with their bit depth, ICC profile
or colour signalling, EXIF, XMP and orientation; repaired by the command line into the input's
format; the quality setting. Files are made here with the real encoders (libwebp, libavif, libheif).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from libdeclip import Image, UnsupportedInputError, read_image, write_image
from libdeclip.color import icc_profile
from libdeclip.io.heif import read_nclx, read_pixi, to_file_codes, to_wide_codes
from tests.conftest import REPO

DEMO = REPO / "examples" / "night_lamps.png"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def _photo() -> np.ndarray:
    """A 96 x 128 crop of the demo photo around blown street lamps (real clipping)."""
    with PILImage.open(DEMO) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[136:232, 352:480])


def _exif(orientation: int) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Libdeclip"
    return exif.tobytes()[6:]  # Image holds EXIF without the "Exif\0\0" of a JPEG segment


def _exif_tags(image: Image) -> dict[int, object]:
    assert image.exif is not None
    exif = PILImage.Exif()
    exif.load(b"Exif\x00\x00" + image.exif)
    return dict(exif)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(peak**2 / mse) if mse else float("inf")


# ----------------------------------------------------------------------------- bit depth codes


@pytest.mark.parametrize("bits", [10, 12])
def test_wide_codes_span_16_bits_and_go_back_exactly(bits: int) -> None:
    codes = np.arange(1 << bits, dtype=np.uint16)
    wide = to_wide_codes(codes, bits)
    assert wide[0] == 0 and wide[-1] == 65535  # the top code is the 16-bit clip level
    assert np.all(np.diff(wide.astype(np.int64)) > 0)
    assert np.array_equal(to_file_codes(wide, bits), codes)
    assert to_file_codes(np.array([65535, 0], np.uint16), bits).tolist() == [(1 << bits) - 1, 0]


# --------------------------------------------------------------------------- metadata round trips


@pytest.mark.parametrize("suffix", [".webp", ".avif", ".heic"])
def test_8bit_round_trip_keeps_icc_exif_xmp(suffix: str, tmp_path: Path) -> None:
    rgb = _photo()
    p3 = icc_profile("display-p3")
    src = Image(rgb, icc_profile=p3, exif=_exif(1), xmp=XMP)
    path = write_image(tmp_path / f"a{suffix}", src)
    back = read_image(path)
    assert back.format == {".webp": "webp", ".avif": "avif", ".heic": "heif"}[suffix]
    assert back.pixels.dtype == np.uint8 and back.pixels.shape == rgb.shape
    assert back.icc_profile == p3 and back.colorspace.name.endswith("display-p3")
    assert _exif_tags(back)[0x010F] == "Libdeclip"
    assert back.xmp == XMP
    assert _psnr(back.pixels, rgb, 255) > 33  # the default quality keeps the photo


def test_webp_lossless_stays_lossless(tmp_path: Path) -> None:
    rgba = np.dstack([_photo(), np.tile(np.linspace(0, 255, 128).astype(np.uint8), (96, 1))])
    src = tmp_path / "src.webp"
    PILImage.fromarray(rgba).save(src, "WEBP", lossless=True, exact=True)
    image = read_image(src)
    assert image.encoding == {"lossless": True} and np.array_equal(image.pixels, rgba)
    again = read_image(write_image(tmp_path / "out.webp", image))
    assert again.encoding == {"lossless": True} and np.array_equal(again.pixels, rgba)
    lossy = read_image(write_image(tmp_path / "q.webp", image, quality=60))  # a quality asks for lossy
    assert lossy.encoding == {"lossless": False}


def test_orientation_is_kept_the_way_each_format_keeps_it(tmp_path: Path) -> None:
    """WebP and AVIF keep the stored pixels and their EXIF orientation (AVIF as its rotation and
    mirror boxes); HEIC's rotation is applied on reading, so the pixels come upright and the
    orientation says 1, never turning the picture twice."""
    rgb = _photo()
    upright = np.rot90(rgb, -1)  # what orientation 6 shows
    for suffix in (".webp", ".avif"):
        back = read_image(write_image(tmp_path / f"o{suffix}", Image(rgb, exif=_exif(6)), quality=100))
        assert back.orientation == 6 and back.pixels.shape == rgb.shape, suffix
    back = read_image(write_image(tmp_path / "o.heic", Image(rgb, exif=_exif(6)), quality=100))
    assert back.orientation == 1 and _exif_tags(back)[0x0112] == 1
    assert back.pixels.shape == upright.shape and _psnr(back.pixels, upright, 255) > 33
    # and what such an image becomes elsewhere shows the same way
    jpeg = read_image(write_image(tmp_path / "o.jpg", back))
    assert jpeg.orientation == 1 and jpeg.pixels.shape == upright.shape


@pytest.mark.parametrize(("suffix", "bits"), [(".avif", 10), (".avif", 12), (".heic", 10), (".heic", 12)])
def test_high_bit_depth_round_trip(suffix: str, bits: int, tmp_path: Path) -> None:
    rgb16 = _photo().astype(np.uint16) * 257
    src = Image(rgb16, significant_bits=bits, nclx=(12, 13), encoding={"chroma": 444})
    path = write_image(tmp_path / f"w{suffix}", src, quality=100)
    data = path.read_bytes()
    assert read_pixi(data) == bits and read_nclx(data) == (12, 13)
    back = read_image(path)
    assert back.pixels.dtype == np.uint16 and back.significant_bits == bits
    assert back.colorspace.name == "display-p3"
    assert back.pixels.max() == 65535  # the blown lamps stay at the 16-bit clip level
    assert _psnr(back.pixels, rgb16, 65535) > 40


def test_10bit_avif_carries_its_metadata(tmp_path: Path) -> None:
    """libavif through imagecodecs writes no metadata: the ICC profile, EXIF and XMP go into the
    file's boxes afterwards, where libavif (through Pillow) and libdeclip read them back."""
    rgb16 = _photo().astype(np.uint16) * 257
    profile = icc_profile("adobe-rgb")
    src = Image(rgb16, significant_bits=10, exif=_exif(6), icc_profile=profile, xmp=XMP)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped any more, so nothing is said
        path = write_image(tmp_path / "w.avif", src, quality=100)
    back = read_image(path)
    assert back.icc_profile == profile and back.colorspace.name.endswith("adobe-rgb")  # from the profile
    assert back.xmp == XMP and _exif_tags(back)[0x010F] == "Libdeclip"
    assert back.pixels.shape == (128, 96, 3) and back.orientation == 1  # turned upright, EXIF says so
    assert back.significant_bits == 10 and _psnr(back.pixels, np.rot90(rgb16, -1), 65535) > 40
    from PIL import AvifImagePlugin

    with AvifImagePlugin.AvifImageFile(path) as im:  # libavif itself
        assert im.info["icc_profile"] == profile and im.info["xmp"] == XMP and im.size == (96, 128)


def test_colour_signalling(tmp_path: Path) -> None:
    import imagecodecs

    codes = (_photo().astype(np.uint16) << 2)
    for (primaries, transfer), name in {(1, 13): "srgb", (12, 13): "display-p3", (9, 14): "rec2020",
                                        (1, 8): "linear-srgb", (2, 2): "srgb"}.items():
        path = tmp_path / f"c{primaries}_{transfer}.avif"
        path.write_bytes(imagecodecs.avif_encode(codes, bitspersample=10, primaries=primaries,
                                                 transfer=transfer, matrix=6))
        assert read_image(path).colorspace.name == name
    for transfer, curve in ((16, "PQ"), (18, "HLG")):
        path = tmp_path / f"hdr{transfer}.avif"
        path.write_bytes(imagecodecs.avif_encode(codes, bitspersample=10, primaries=9, transfer=transfer))
        with pytest.raises(UnsupportedInputError, match=f"an HDR picture \\({curve}"):
            read_image(path)
    # an 8-bit AVIF of another space keeps its colour as an ICC profile (Pillow writes sRGB nclx only)
    p3 = read_image(tmp_path / "c12_13.avif")
    back = read_image(write_image(tmp_path / "p3.avif", Image(to_file_codes(p3.pixels, 8).astype(np.uint8),
                                                              nclx=(12, 13))))
    assert back.colorspace.name.endswith("display-p3")


def test_animations_are_refused(tmp_path: Path) -> None:
    frames = [PILImage.fromarray(np.roll(_photo(), 8 * i, axis=1)) for i in range(3)]
    for fmt in ("WEBP", "AVIF"):
        path = tmp_path / f"anim.{fmt.lower()}"
        frames[0].save(path, fmt, save_all=True, append_images=frames[1:])
        with pytest.raises(UnsupportedInputError, match=f"an animated {'WebP' if fmt == 'WEBP' else 'AVIF'} "
                           r"\(3 frames\)") as info:
            read_image(path)
        assert str(info.value).startswith(f"{path}: ")


def test_quality_is_checked_and_the_old_name_still_works(tmp_path: Path) -> None:
    image = Image(_photo())
    with pytest.raises(ValueError, match="quality must be 0 to 100"):
        write_image(tmp_path / "x.webp", image, quality=101)
    with pytest.warns(DeprecationWarning, match="quality="):
        write_image(tmp_path / "x.jpg", image, jpeg_quality=70)
    assert read_image(tmp_path / "x.jpg").jpeg_quality == 70
    small = write_image(tmp_path / "s.heic", image, quality=20).stat().st_size
    large = write_image(tmp_path / "l.heic", image, quality=95).stat().st_size
    assert small < large


# ------------------------------------------------------------------------------- command line


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libdeclip", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("suffix", "bits"), [(".webp", 8), (".avif", 8), (".avif", 10), (".heic", 8),
                                              (".heic", 10)])
def test_cli_repairs_into_the_inputs_format(suffix: str, bits: int, tmp_path: Path) -> None:
    """``libdeclip declip photo.heic`` writes photo_declip.heic: same format, depth and metadata,
    the blown lamps filled in (values move inwards from the clip level only where the model says)."""
    rgb = _photo()
    pixels = rgb if bits == 8 else rgb.astype(np.uint16) * 257
    src = write_image(tmp_path / f"photo{suffix}", Image(pixels, exif=_exif(1), xmp=XMP,
                                                         significant_bits=bits if bits > 8 else None),
                      quality=95)
    proc = _cli("declip", str(src), "--device", "cpu", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"photo_declip{suffix}"
    before, after = read_image(src), read_image(out)
    assert after.format == before.format and after.pixels.dtype == before.pixels.dtype
    assert after.significant_bits == before.significant_bits
    assert after.xmp == XMP and _exif_tags(after)[0x010F] == "Libdeclip"
    assert after.pixels.shape == before.pixels.shape
    info = _cli("info", str(out), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    depth = f"{bits}-bit integer (as 16-bit)" if bits > 8 else "8-bit integer"
    name = {".webp": "WebP, lossy", ".avif": "AVIF", ".heic": "HEIC"}[suffix]
    assert f"format     {name}, 128 x 96, 3 channel(s), {depth}" in info.stdout, info.stdout


def test_cli_quality(tmp_path: Path) -> None:
    src = write_image(tmp_path / "p.webp", Image(_photo()))
    sizes = []
    for q in ("30", "95"):
        proc = _cli("declip", str(src), "-o", str(tmp_path / f"q{q}.webp"), "--quality", q,
                    "--device", "cpu", "-q", "--method", "cross-channel", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        sizes.append((tmp_path / f"q{q}.webp").stat().st_size)
    assert sizes[0] < sizes[1]
    bad = _cli("declip", str(src), "--quality", "200", cwd=tmp_path)
    assert bad.returncode == 2 and "--quality" in bad.stderr


def test_unknown_isobmff_brand_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "movie.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64))
    with pytest.raises(UnsupportedInputError, match="not a PNG, JPEG, TIFF, OpenEXR, WebP, AVIF or HEIC"):
        read_image(path)


def test_a_scene_linear_float_tiff_clipped_at_4_is_found_there(tmp_path: Path) -> None:
    """The issue's row: a float32 TIFF, values 0..4.0, only the pixels at 4.0 clipped (1.1%):
    ``libdeclip info`` finds the level 4 and that share, not 1.0 and every value above it, and
    ``declip`` changes only those pixels."""
    import tifffile

    yy, xx = np.mgrid[0:300, 0:400]
    sun = 6.0 * np.exp(-((yy - 150) ** 2 + (xx - 200) ** 2) / (2 * 20.0**2))
    scene = (0.2 + 0.6 * xx / 400)[..., None] * np.array([1.0, 0.9, 0.8]) + sun[..., None]
    clipped = np.minimum(scene, 4.0).astype(np.float32)
    src = tmp_path / "linear.tif"
    tifffile.imwrite(src, clipped, photometric="rgb")
    at_four = (clipped >= 4.0).any(axis=2)
    assert 0.010 < at_four.mean() < 0.013 and (clipped > 1.0).any(axis=2).mean() > 0.05
    info = _cli("info", str(src), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "levels 0 / 4, found in the values: R clipped at 4 (values pile up there)" in info.stdout
    share = float(info.stdout.split("; ")[-1].split("%")[0].split()[-1]) / 100
    assert abs(share - at_four.mean()) < 0.002, info.stdout
    out = tmp_path / "out.tif"
    proc = _cli("declip", str(src), "-o", str(out), "--device", "cpu", "-q", "--method", "cross-channel",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    repaired = read_image(out).pixels
    changed = (repaired != clipped).any(axis=2)
    assert changed.any() and not (changed & ~at_four).any()
