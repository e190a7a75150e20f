"""The fuzzer's seed corpus: small files of every kind libdeclip reads, made from the demo photo, plus
the bad-input corpus (tests/data/bad), the demo photo itself and the smallest real camera RAW files
of ../shared/data/raw when that folder is there.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEMO_PHOTO = REPO / "examples" / "night_lamps.png"
BAD_CORPUS = REPO / "tests" / "data" / "bad"
RAW_DIR = REPO.parent / "shared" / "data" / "raw"
MAX_SEED_BYTES = 1024 * 1024  # larger files make slow seeds: left out
SKIP_SUFFIXES = {".py", ".md", ".txt", ".json", ".csv"}


@dataclass
class Seed:
    name: str
    suffix: str  # decides the reader: camera RAW suffixes go to LibRaw
    data: bytes


def _crop() -> np.ndarray:
    """48 x 64 x 3 uint8 around a blown street lamp of the demo photo (real clipping)."""
    from PIL import Image

    with Image.open(DEMO_PHOTO) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[160:208, 384:448])


def _png(pixels: np.ndarray, **kw: object) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _png16(pixels: np.ndarray) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.png_encode(np.ascontiguousarray(pixels)))


def _jpeg(pixels: np.ndarray, **kw: object) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _tiff(pixels: np.ndarray, **kw: object) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, **kw)
    return buf.getvalue()


def _written(pixels: np.ndarray, suffix: str, tmp: Path, quality: int | None = 80, **fields: object) -> bytes:
    """``pixels`` as libdeclip writes them to a ``suffix`` file (WebP, AVIF, HEIC)."""
    from libdeclip import Image, write_image

    path = tmp / f"seed{suffix}"
    write_image(path, Image(pixels=pixels, **fields), overwrite=True, quality=quality)  # type: ignore[arg-type]
    return path.read_bytes()


def _exr(pixels: np.ndarray, tmp: Path) -> bytes:
    from libdeclip import Image, write_image

    path = tmp / "seed.exr"
    write_image(path, Image(pixels=pixels, format="exr"), overwrite=True)
    return path.read_bytes()


def _dngs(tmp: Path) -> list[Seed]:
    """A Bayer (RGGB) DNG and a LinearRaw DNG, 32 x 48, with clipped photosites, written as
    tests/test_raw.py writes them."""
    from libdeclip.io import dng

    desc = dng.DngDescription(
        black=[256], white=[4095], color_matrix_1=np.array([[0.9, -0.3, -0.1], [-0.4, 1.2, 0.2],
                                                             [-0.05, 0.15, 0.6]]),
        as_shot_neutral=[0.5, 1.0, 0.7], make="Libdeclip", model="Fuzz",
    )
    rng = np.random.default_rng(0)
    cfa = np.clip(rng.normal(1500, 300, (32, 48)), 256, 4095).astype(np.uint16)
    cfa[10:16, 20:30] = 4095
    linear = np.clip(rng.normal(1500, 300, (32, 48, 3)), 256, 4095).astype(np.uint16)
    linear[8:14, 8:20, 1] = 4095
    seeds = []
    for name, data, pattern in (("bayer", cfa, "RGGB"), ("linear", linear, None)):
        path = tmp / f"{name}.dng"
        dng.write_dng(str(path), data, desc, cfa_pattern=pattern)
        seeds.append(Seed(f"gen-{name}-dng", ".dng", path.read_bytes()))
    return seeds


def generated(tmp: Path) -> list[Seed]:
    """Small valid files of every kind and layout libdeclip reads."""
    from libdeclip.color import icc_profile

    rgb = _crop()
    rgb16 = rgb.astype(np.uint16) * 257
    grey = np.rint(rgb @ [0.2126, 0.7152, 0.0722]).astype(np.uint8)
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    f32 = (rgb / 255.0).astype(np.float32)
    p3, adobe = icc_profile("display-p3"), icc_profile("adobe-rgb")
    from PIL import Image

    palette = Image.fromarray(rgb).quantize(colors=16)
    pal_buf = io.BytesIO()
    palette.save(pal_buf, format="PNG", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "Libdeclip"
    exif_tiff = exif.tobytes()[6:]  # as Image holds it: without the "Exif\0\0" of a JPEG segment
    seeds = [
        Seed("gen-rgb8-png", ".png", _png(rgb)),
        Seed("gen-rgb8-icc-png", ".png", _png(rgb, icc_profile=p3)),
        Seed("gen-rgba8-png", ".png", _png(np.dstack([rgb, alpha]))),
        Seed("gen-grey8-png", ".png", _png(grey)),
        Seed("gen-greyalpha8-png", ".png", _png(np.dstack([grey, alpha]))),
        Seed("gen-palette-trns-png", ".png", pal_buf.getvalue()),
        Seed("gen-rgb16-png", ".png", _png16(rgb16)),
        Seed("gen-grey16-png", ".png", _png16(rgb16[..., 1])),
        Seed("gen-rgb-jpg", ".jpg", _jpeg(rgb, quality=90, icc_profile=adobe, exif=exif.tobytes())),
        Seed("gen-rgb-progressive-jpg", ".jpg", _jpeg(rgb, quality=75, progressive=True, subsampling=2)),
        Seed("gen-grey-jpg", ".jpg", _jpeg(grey, quality=95)),
        Seed("gen-rgb8-tif", ".tif", _tiff(rgb, photometric="rgb")),
        Seed("gen-rgb16-deflate-tif", ".tif", _tiff(rgb16, photometric="rgb", compression="zlib")),
        Seed("gen-rgb16-lzw-bigendian-tif", ".tif", _tiff(rgb16, photometric="rgb", compression="lzw",
                                                         byteorder=">")),
        Seed("gen-float32-icc-tif", ".tif", _tiff(f32, photometric="rgb", iccprofile=p3)),
        Seed("gen-float16-tiled-tif", ".tif", _tiff(f32.astype(np.float16), photometric="rgb",
                                                    tile=(16, 16))),
        Seed("gen-grey8-tif", ".tif", _tiff(grey, photometric="minisblack")),
        Seed("gen-rgba8-planar-tif", ".tif", _tiff(np.moveaxis(np.dstack([rgb, alpha]), 2, 0),
                                                   photometric="rgb", planarconfig="separate",
                                                   extrasamples=["unassalpha"])),
        Seed("gen-rgb-float32-exr", ".exr", _exr(f32 * 2.0, tmp)),
        Seed("gen-rgb8-icc-exif-webp", ".webp", _written(rgb, ".webp", tmp, icc_profile=p3, exif=exif_tiff)),
        Seed("gen-rgba8-lossless-webp", ".webp", _written(np.dstack([rgb, alpha]), ".webp", tmp, None,
                                                         encoding={"lossless": True})),
        Seed("gen-rgb8-exif-avif", ".avif", _written(rgb, ".avif", tmp, exif=exif_tiff, xmp=b"<x:xmpmeta/>")),
        Seed("gen-rgb10-p3-avif", ".avif", _written(rgb16, ".avif", tmp, significant_bits=10, nclx=(12, 13))),
        Seed("gen-rgb8-icc-exif-heic", ".heic", _written(rgb, ".heic", tmp, icc_profile=adobe,
                                                         exif=exif_tiff)),
        Seed("gen-rgba10-heic", ".heic", _written(np.dstack([rgb16, alpha.astype(np.uint16) * 257]), ".heic",
                                                  tmp, significant_bits=10)),
        Seed("gen-rgba-half-exr", ".exr", _exr(np.dstack([f32, f32[..., :1]]).astype(np.float16), tmp)),
    ]
    return seeds + _dngs(tmp)


def found(max_bytes: int = MAX_SEED_BYTES) -> list[Seed]:
    """Files already there: the bad-input corpus, the demo photo, small real camera RAW files."""
    files = [DEMO_PHOTO]
    if BAD_CORPUS.is_dir():
        files += sorted(p for p in BAD_CORPUS.rglob("*")
                        if p.is_file() and p.suffix.lower() not in SKIP_SUFFIXES)
    if RAW_DIR.is_dir():
        files += sorted(p for p in RAW_DIR.iterdir() if p.is_file())
    seeds = []
    for p in files:
        try:
            size = p.stat().st_size
        except OSError:
            continue
        if size <= max_bytes:
            seeds.append(Seed(f"{p.parent.name}-{p.name}", p.suffix.lower(), p.read_bytes()))
    return seeds


def corpus(tmp: Path) -> list[Seed]:
    tmp.mkdir(parents=True, exist_ok=True)
    return generated(tmp) + found()
