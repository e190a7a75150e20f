"""Generate the bad-input corpus in this folder from real files.

    python tests/data/bad/make_corpus.py [OUT_DIR]        (default: this folder)

Every image is derived from the demo photo ``examples/night_lamps.png`` (BSD-3-Clause, see
``examples/night_lamps.LICENSE``), cropped to 64 x 48 pixels around a blown street lamp, or from a
small synthetic Bayer DNG written the way ``tests/test_raw.py`` writes them; the broken models from
a tiny ONNX graph built with the ``onnx`` package and from the first bytes of the shipped model.
Good files are encoded first, then broken on purpose: truncated at several offsets, headers and
CRCs corrupted, dimensions rewritten (decompression bombs), contents given the wrong suffix.

The output is deterministic (no time stamps, fixed seeds): ``tests/test_bad_inputs.py`` builds it
again and compares it byte for byte with the committed files. What each file must give is in
the table of that test and in the README's "Bad input" section.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEMO_PHOTO = REPO / "examples" / "night_lamps.png"
SHIPPED_MODEL = REPO / "libdeclip" / "models" / "declipnet-v1.onnx"
CROP = (slice(160, 208), slice(384, 448))  # 48 x 64 around a blown street lamp
BOMB = 100_000  # declared width and height of the decompression bombs: 10 gigapixels
NOT_AN_IMAGE = b"This is a text file, not an image.\n" * 8


# ------------------------------------------------------------------------------------- sources


def photo() -> np.ndarray:
    """The crop of the demo photo: 48 x 64 x 3 uint8, with clipped highlights."""
    from PIL import Image

    with Image.open(DEMO_PHOTO) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[CROP])


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb.astype(np.float64) @ [0.2126, 0.7152, 0.0722]).astype(np.uint8)


def _chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png(pixels: np.ndarray, colour_type: int, *, width: int | None = None, height: int | None = None,
        before_idat: bytes = b"", bit_depth: int | None = None) -> bytes:
    """A PNG written chunk by chunk (filter 0 on every row), so every byte is under control.
    ``pixels``: H x W x C samples (uint8 or uint16) or H x W palette indices."""
    h, w = pixels.shape[:2]
    depth = bit_depth or pixels.dtype.itemsize * 8
    rows = pixels.reshape(h, w * (pixels.size // max(h * w, 1))).astype(">u2" if depth == 16 else np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w if width is None else width, h if height is None else height,
                       depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + before_idat
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def palette_png(rgb: np.ndarray, *, transparent: bool) -> bytes:
    from PIL import Image

    quantised = Image.fromarray(rgb).quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=0)
    indices = np.asarray(quantised)
    colours = bytes(quantised.getpalette()[: 3 * 16])  # type: ignore[index]
    extra = _chunk(b"PLTE", colours)
    if transparent:
        extra += _chunk(b"tRNS", bytes([0, 128] + [255] * 14))
    return png(indices, 3, before_idat=extra, bit_depth=8)


def jpeg(pixels: np.ndarray, mode: str | None = None, quality: int = 90) -> bytes:
    from PIL import Image

    im = Image.fromarray(pixels)
    if mode is not None:
        im = im.convert(mode)
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def tiff(pixels: np.ndarray, **kwargs: object) -> bytes:
    import tifffile

    out = io.BytesIO()
    kwargs.setdefault("photometric", "rgb" if pixels.ndim == 3 and pixels.shape[-1] == 3 else "minisblack")
    tifffile.imwrite(out, pixels, metadata=None, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def tiff_pages(*pages: np.ndarray) -> bytes:
    import tifffile

    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tif:
        for page in pages:
            tif.write(page, photometric="rgb", metadata=None)
    return out.getvalue()


def set_tiff_tags(data: bytes, values: dict[int, int]) -> bytes:
    """Rewrite tags of a classic little-endian TIFF's first IFD as LONG ``values``."""
    buf = bytearray(data)
    assert buf[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", buf, 4)
    (n,) = struct.unpack_from("<H", buf, ifd)
    for i in range(n):
        at = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", buf, at)[0]
        if tag in values:
            struct.pack_into("<HHII", buf, at, tag, 4, 1, values[tag])
    return bytes(buf)


def bayer_dng() -> bytes:
    """A 64 x 96 RGGB Bayer DNG, 14-bit, with a clipped block (as tests/test_raw.py makes them)."""
    from libdeclip.io import dng

    h, w, white, black = 64, 96, 16383, 512
    yy, xx = np.mgrid[0:h, 0:w]
    colours = np.array([[0, 1], [1, 2]])[yy % 2, xx % 2]
    scene = (0.1 + 0.6 * xx / w)[..., None] * np.array([0.6, 1.0, 0.8])
    mosaic = np.take_along_axis(scene, colours[..., None], axis=2)[..., 0]
    rng = np.random.default_rng(0)
    data = np.clip(np.rint(black + mosaic * (white - black) + rng.normal(0, 3, (h, w))), 0, white)
    data = data.astype(np.uint16)
    data[20:30, 40:52] = white
    desc = dng.DngDescription(
        black=[black], white=[white],
        color_matrix_1=np.array([[0.9, -0.3, -0.1], [-0.4, 1.2, 0.2], [-0.05, 0.15, 0.6]]),
        as_shot_neutral=[0.5, 1.0, 0.7], make="Libdeclip", model="Synthetic",
    )
    out = io.BytesIO()
    dng.write_dng(out, data, desc, cfa_pattern="RGGB")
    return out.getvalue()


def exr(pixels: np.ndarray) -> bytes:
    """An uncompressed scanline OpenEXR (the bindings write to a path, so through a temp file)."""
    import tempfile

    import OpenEXR

    header = {"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "x.exr")
        with OpenEXR.File(header, {"RGB": np.ascontiguousarray(pixels)}) as f:
            f.write(path)
        return Path(path).read_bytes()


def set_exr_window(data: bytes, width: int, height: int) -> bytes:
    key = b"dataWindow\x00box2i\x00"
    at = data.index(key) + len(key) + 4  # after the attribute's size
    return data[:at] + struct.pack("<iiii", 0, 0, width - 1, height - 1) + data[at + 16 :]


def webp(pixels: np.ndarray, *, lossless: bool = False, frames: int = 1) -> bytes:
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(np.roll(pixels, 8 * i, axis=1))) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="WEBP", quality=90, lossless=lossless, method=4,
                   **({"save_all": True, "append_images": images[1:]} if frames > 1 else {}))
    return out.getvalue()


def avif(pixels: np.ndarray) -> bytes:
    """8-bit through Pillow (its image sequences carry a time stamp: tests/test_io.py makes one)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="AVIF", quality=80, speed=8, max_threads=1)
    return out.getvalue()


def avif_wide(codes: np.ndarray, bits: int, *, transfer: int = 13) -> bytes:
    """10- or 12-bit through imagecodecs (libavif), colour signalled as ``nclx`` (BT.709 primaries)."""
    import imagecodecs

    return bytes(imagecodecs.avif_encode(codes, level=80, speed=8, bitspersample=bits, primaries=1,
                                         transfer=transfer, matrix=6, numthreads=1))


def heic(pixels: np.ndarray, bits: int = 8) -> bytes:
    """Through pillow-heif (x265); 16-bit ``pixels`` (codes in the top bits) at ``bits``."""
    import pillow_heif

    mode = "RGB" if bits == 8 else "RGB;16"
    heif = pillow_heif.from_bytes(mode=mode, size=(pixels.shape[1], pixels.shape[0]),
                                  data=np.ascontiguousarray(pixels).tobytes())
    out = io.BytesIO()
    heif.save(out, quality=80, **({} if bits == 8 else {"bit_depth": bits}))
    return out.getvalue()


def set_ispe(data: bytes, width: int, height: int) -> bytes:
    """Rewrite every image spatial extent (``ispe``) property of a HEIF/AVIF file."""
    buf = bytearray(data)
    at = buf.find(b"ispe")
    while at >= 0:
        struct.pack_into(">II", buf, at + 8, width, height)  # after the full box's version and flags
        at = buf.find(b"ispe", at + 4)
    return bytes(buf)


def set_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0") + 5  # marker, length, precision, then height, width
    return data[:at] + struct.pack(">HH", height, width) + data[at + 4 :]


def onnx_model(metadata: dict[str, str] | None, *, input_name: str = "clipped",
               channels: int | str = "C") -> bytes:
    """A tiny valid ONNX graph: residual = clipped - clipped (zero), with ``metadata`` props."""
    import onnx
    from onnx import TensorProto, helper

    shape: list[int | str] = ["N", channels, "H", "W"]
    graph = helper.make_graph(
        [helper.make_node("Sub", [input_name, input_name], ["residual"])],
        "zero_residual",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("residual", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    model = helper.make_model(graph, producer_name="libdeclip-corpus",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)  # type: ignore[call-arg]


def contract(**changes: str) -> dict[str, str]:
    meta = {
        "contract": "libdeclip-model-1", "name": "zero-residual", "version": "0",
        "input_channels": "R,G,B", "normalisation": "clip-normalised sRGB", "receptive_field_radius": "0",
        "spatial_multiple": "1", "training_data": "none", "training_steps": "0",
        "checkpoint_sha256": "0" * 64,
    }
    meta.update(changes)
    return meta


def truncations(prefix: str, suffix: str, data: bytes, offsets: dict[str, int]) -> dict[str, bytes]:
    """``data`` cut at each offset: ``{prefix}_truncated_{label}{suffix}``."""
    return {f"{prefix}_truncated_{label}{suffix}": data[:at] for label, at in offsets.items()}


# -------------------------------------------------------------------------------------- corpus


def build() -> dict[str, bytes]:
    """File name -> contents of the whole corpus."""
    rgb = photo()
    g = grey(rgb)
    rgb16 = rgb.astype(np.uint16) * 257
    # Through a table on a 2**-24 grid: numpy's vectorised power differs by an ulp between releases.
    table = np.array([round((i / 255) ** 2.2 * 2**24) / 2**24 for i in range(256)], dtype=np.float32)
    linear = table[rgb]
    files: dict[str, bytes] = {}

    # PNG
    ok_png = png(rgb, 2)
    files |= {
        "png_ok_rgb8.png": ok_png,
        "png_ok_rgb16.png": png(rgb16, 2),
        "png_ok_rgba8.png": png(np.dstack([rgb, np.full(g.shape, 200, np.uint8)]), 6),
        "png_palette.png": palette_png(rgb, transparent=False),
        "png_palette_trns.png": palette_png(rgb, transparent=True),
        "png_grey8.png": png(g, 0),
        "png_grey16.png": png(g.astype(np.uint16) * 257, 0),
        "png_grey_alpha.png": png(np.dstack([g, np.full(g.shape, 255, np.uint8)]), 4),
        "png_1x1.png": png(rgb[:1, :1], 2),
        "png_0x0.png": png(rgb[:0, :0], 2),
        "png_bomb_100000x100000.png": png(rgb, 2, width=BOMB, height=BOMB),
        "png_dims_beyond_content_3000x2000.png": png(rgb, 2, width=3000, height=2000),
        "png_bad_signature.png": b"\x89PNX" + ok_png[4:],
        "png_bad_ihdr_crc.png": ok_png[:29] + bytes([ok_png[29] ^ 0xFF]) + ok_png[30:],
        "png_bad_idat_crc.png": ok_png[:-16] + bytes([ok_png[-16] ^ 0xFF]) + ok_png[-15:],
        "png_bad_text_crc.png": png(rgb, 2, before_idat=_chunk(b"tEXt", b"Comment\x00hello", crc=0)),
        "png_bad_idat_data.png": ok_png[:60] + bytes(64) + ok_png[124:],
        "png_empty.png": b"",
        "png_not_an_image.png": NOT_AN_IMAGE,
        "png_content_named.jpg": ok_png,
        "png_content_named.nef": ok_png,
    }
    files |= truncations("png", ".png", ok_png, {
        "8": 8, "20": 20, "40": 40, "half": len(ok_png) // 2, "no_iend": len(ok_png) - 12,
    })

    # JPEG
    ok_jpeg = jpeg(rgb)
    files |= {
        "jpeg_ok_rgb.jpg": ok_jpeg,
        "jpeg_ok_grey.jpg": jpeg(g),
        "jpeg_1x1.jpg": jpeg(rgb[:1, :1]),
        "jpeg_cmyk.jpg": jpeg(rgb, "CMYK"),
        "jpeg_bomb_65535x65535.jpg": set_jpeg_size(ok_jpeg, 65535, 65535),
        "jpeg_height_0.jpg": set_jpeg_size(ok_jpeg, 64, 0),
        "jpeg_bad_huffman.jpg": ok_jpeg.replace(b"\xff\xc4", b"\xff\xc4\x00\x03\x00", 1),
        "jpeg_empty.jpg": b"",
        "jpeg_content_named.png": ok_jpeg,
        "jpeg_content_named.arw": ok_jpeg,
    }
    files |= truncations("jpeg", ".jpg", ok_jpeg, {
        "2": 2, "100": 100, "half": len(ok_jpeg) // 2, "no_eoi": len(ok_jpeg) - 2,
    })

    # TIFF
    ok_tiff = tiff(rgb16)
    nan = linear.copy()
    nan[10:12, 20:30] = np.nan
    inf = linear.copy()
    inf[10:12, 20:30] = np.inf
    files |= {
        "tiff_ok_rgb8.tif": tiff(rgb),
        "tiff_ok_rgb16.tif": ok_tiff,
        "tiff_ok_rgb16_zlib.tif": tiff(rgb16, compression="zlib"),
        "tiff_ok_float32.tif": tiff(linear),
        "tiff_ok_float16.tif": tiff(linear.astype(np.float16)),
        "tiff_grey16.tif": tiff(g.astype(np.uint16) * 257),
        "tiff_1x1.tif": tiff(rgb[:1, :1]),
        "tiff_float32_nan.tif": tiff(nan),
        "tiff_float32_inf.tif": tiff(inf),
        "tiff_multipage.tif": tiff_pages(rgb, rgb[::-1]),
        "tiff_cmyk.tif": tiff(np.dstack([255 - rgb, np.zeros(g.shape, np.uint8)]), photometric="separated"),
        "tiff_lab.tif": tiff(rgb, photometric=8),
        "tiff_int32.tif": tiff(rgb.astype(np.int32)),
        "tiff_bomb_100000x100000.tif": set_tiff_tags(ok_tiff, {256: BOMB, 257: BOMB}),
        "tiff_0x0.tif": set_tiff_tags(ok_tiff, {256: 0, 257: 0}),
        "tiff_bad_ifd_offset.tif": ok_tiff[:4] + struct.pack("<I", 0x7FFFFFF0) + ok_tiff[8:],
        "tiff_empty.tif": b"",
        "tiff_content_named.png": ok_tiff,
    }
    files |= truncations("tiff", ".tif", ok_tiff, {
        "4": 4, "8": 8, "100": 100, "half": len(ok_tiff) // 2, "last_byte": len(ok_tiff) - 1,
    })

    # Camera RAW (DNG) and files with a RAW suffix LibRaw cannot read
    ok_dng = bayer_dng()
    files |= {
        "dng_ok_bayer.dng": ok_dng,
        "dng_bomb_100000x100000.dng": set_tiff_tags(ok_dng, {256: BOMB, 257: BOMB}),
        "dng_bad_header.dng": b"NOTADNG!" + ok_dng[8:],
        "dng_bomb_30000x20000.dng": set_tiff_tags(ok_dng, {256: 30000, 257: 20000}),
        "dng_empty.dng": b"",
        "raw_text_named.cr2": NOT_AN_IMAGE,
    }
    files |= truncations("dng", ".dng", ok_dng, {
        "8": 8, "200": 200, "half": len(ok_dng) // 2, "last_100": len(ok_dng) - 100,
    })

    # OpenEXR
    ok_exr = exr(linear.astype(np.float16))
    files |= {
        "exr_ok_half.exr": ok_exr,
        "exr_nan.exr": exr(nan),
        "exr_bomb_100000x100000.exr": set_exr_window(ok_exr, BOMB, BOMB),
        "exr_truncated_half.exr": ok_exr[: len(ok_exr) // 2],
        "exr_empty.exr": b"",
    }

    # WebP
    ok_webp = webp(rgb)
    files |= {
        "webp_ok_lossy.webp": ok_webp,
        "webp_ok_lossless_rgba.webp": webp(np.dstack([rgb, np.full(g.shape, 200, np.uint8)]), lossless=True),
        "webp_animated.webp": webp(rgb, frames=2),
        "webp_bad_frame_header.webp": ok_webp.replace(b"\x9d\x01\x2a", b"\x00\x00\x00", 1),  # VP8 start code
        "webp_empty.webp": b"",
        "webp_content_named.png": ok_webp,
    }
    files |= truncations("webp", ".webp", ok_webp, {"20": 20, "half": len(ok_webp) // 2})

    # AVIF
    ok_avif = avif(rgb)
    codes10 = (rgb16 >> 6).astype(np.uint16)
    files |= {
        "avif_ok_rgb8.avif": ok_avif,
        "avif_ok_10bit.avif": avif_wide(codes10, 10),
        "avif_pq.avif": avif_wide(codes10, 10, transfer=16),
        "avif_bomb_100000x100000.avif": set_ispe(ok_avif, BOMB, BOMB),
        "avif_empty.avif": b"",
    }
    files |= truncations("avif", ".avif", ok_avif, {"30": 30, "half": len(ok_avif) // 2})

    # HEIC
    ok_heic = heic(rgb)
    files |= {
        "heic_ok_rgb8.heic": ok_heic,
        "heic_ok_10bit.heic": heic(codes10 << 6, 10),
        "heic_bomb_100000x100000.heic": set_ispe(ok_heic, BOMB, BOMB),
        "heic_empty.heic": b"",
        "heic_content_named.jpg": ok_heic,
    }
    files |= truncations("heic", ".heic", ok_heic, {"30": 30, "half": len(ok_heic) // 2})

    # Models
    files |= {
        "model_not_onnx.onnx": NOT_AN_IMAGE,
        "model_empty.onnx": b"",
        "model_truncated_4096.onnx": SHIPPED_MODEL.read_bytes()[:4096],
        "model_ok_zero_residual.onnx": onnx_model(contract()),
        "model_no_metadata.onnx": onnx_model(None),
        "model_wrong_contract.onnx": onnx_model(contract(contract="libdeclip-model-2")),
        "model_wrong_channels.onnx": onnx_model(contract(input_channels="R,G,B,M")),
        "model_wrong_input_name.onnx": onnx_model(contract(), input_name="image"),
        "model_wrong_input_shape.onnx": onnx_model(contract(), channels=4),
        "model_bad_metadata_value.onnx": onnx_model(contract(receptive_field_radius="forty")),
    }
    return dict(sorted(files.items()))


def tampered_model(dst: Path) -> Path:
    """The shipped model with one byte changed near its end (in the weights), written to ``dst``
    (not committed: 3 MB); named like the shipped file so that its recorded checksum applies."""
    data = bytearray(SHIPPED_MODEL.read_bytes())
    data[-100] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def write(out_dir: Path, files: dict[str, bytes] | None = None) -> list[Path]:
    """Write the corpus to ``out_dir``, removing corpus files that are no longer made."""
    files = build() if files is None else files
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if old.is_file() and old.name not in files and old.name not in KEEP:
            old.unlink()
    written = []
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
        written.append(out_dir / name)
    return written


KEEP = {"make_corpus.py", "README.md"}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE
    written = write(out)
    size = sum(p.stat().st_size for p in written)
    print(f"{len(written)} files, {size:,} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
