"""The bad-input corpus (tests/data/bad, made by its make_corpus.py from real files): every file
gets its documented outcome (README, "Bad input"), through the Python API and the command line.

An outcome is either a defined conversion (:func:`ok`: the shape and dtype read) or a refusal
(:func:`refused`): our own exception, whose one-line message starts with the file's path and
names the problem. On the command line a refused file gives one ``error: PATH: ...`` line on
stderr, no traceback, a nonzero exit status and no output (nor a temporary ``.part`` file).
Every subprocess runs under a timeout, so a hang fails the test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import pytest

import libdeclip
from libdeclip import DeclipError, Declipper, ModelError, UnsupportedInputError, read_image
from libdeclip import engine as engine_module
from libdeclip.io import MAX_PIXELS, pixel_limit
from tests.conftest import REPO

CORPUS = REPO / "tests" / "data" / "bad"
NOT_CORPUS = ("make_corpus.py", "README.md")
MAX_CORPUS_BYTES = 2 * 1024 * 1024
CLI_TIMEOUT = 300  # seconds, for a whole batch; a hang fails the test


class Outcome(NamedTuple):
    error: type[DeclipError] | None  # None: read (or loaded) fine
    detail: str  # refused: a phrase of the message; read: "shape dtype"


def ok(shape: tuple[int, ...], dtype: str) -> Outcome:
    return Outcome(None, f"{shape} {dtype}")


def refused(phrase: str, error: type[DeclipError] = UnsupportedInputError) -> Outcome:
    return Outcome(error, phrase)


LIMIT = "above the limit of 500 MP"
DAMAGED_PNG, DAMAGED_JPEG = "damaged or unreadable PNG", "damaged or unreadable JPEG"
DAMAGED_WEBP, DAMAGED_AVIF, DAMAGED_HEIC = ("damaged or unreadable WebP", "damaged or unreadable AVIF",
                                            "damaged or unreadable HEIC")
NOT_IMAGE = "not a PNG, JPEG, TIFF, OpenEXR, WebP, AVIF or HEIC/HEIF file"
EMPTY_FILE = "the file is empty (0 bytes)"
LIBRAW_CANNOT = "LibRaw cannot read this RAW file"
NON_FINITE = "60 pixel values are NaN or infinite"
RGB8, H, W = "uint8", 48, 64

#: What each corpus file gives: the documented outcome (README, "Bad input").
EXPECTED: dict[str, Outcome] = {
    # PNG: palettes become RGB (RGBA with transparency), greyscale stays H x W
    "png_ok_rgb8.png": ok((H, W, 3), RGB8),
    "png_ok_rgb16.png": ok((H, W, 3), "uint16"),
    "png_ok_rgba8.png": ok((H, W, 4), RGB8),
    "png_palette.png": ok((H, W, 3), RGB8),
    "png_palette_trns.png": ok((H, W, 4), RGB8),
    "png_grey8.png": ok((H, W), RGB8),
    "png_grey16.png": ok((H, W), "uint16"),
    "png_grey_alpha.png": ok((H, W, 2), RGB8),
    "png_1x1.png": ok((1, 1, 3), RGB8),
    "png_truncated_no_iend.png": ok((H, W, 3), RGB8),  # every pixel is there; only the end marker is not
    "png_content_named.jpg": ok((H, W, 3), RGB8),  # the content decides, not the suffix
    "png_0x0.png": refused("the image is empty (0 x 0 pixels)"),
    "png_bomb_100000x100000.png": refused(f"100000 x 100000 pixels (10,000 MP) is {LIMIT}"),
    "png_dims_beyond_content_3000x2000.png": refused(f"{DAMAGED_PNG} (image file is truncated"),
    "png_bad_signature.png": refused(NOT_IMAGE),
    "png_bad_ihdr_crc.png": refused(f"{DAMAGED_PNG} (broken PNG file (bad header checksum in b'IHDR'))"),
    "png_bad_idat_crc.png": refused(f"{DAMAGED_PNG} (IDAT: CRC error)"),
    "png_bad_text_crc.png": refused(f"{DAMAGED_PNG} (broken PNG file (bad header checksum in b'tEXt'))"),
    "png_bad_idat_data.png": refused(f"{DAMAGED_PNG} (broken data stream"),
    "png_empty.png": refused(EMPTY_FILE),
    "png_not_an_image.png": refused(NOT_IMAGE),
    "png_content_named.nef": refused(f"{LIBRAW_CANNOT} (Unsupported file format or not RAW file)"),
    "png_truncated_8.png": refused("damaged PNG: no image header (IHDR)"),
    "png_truncated_20.png": refused("damaged PNG: no image header (IHDR)"),
    "png_truncated_40.png": refused(f"{DAMAGED_PNG} (broken PNG file (chunk b'IDA'))"),
    "png_truncated_half.png": refused(f"{DAMAGED_PNG} (image file is truncated)"),
    # JPEG
    "jpeg_ok_rgb.jpg": ok((H, W, 3), RGB8),
    "jpeg_ok_grey.jpg": ok((H, W), RGB8),
    "jpeg_1x1.jpg": ok((1, 1, 3), RGB8),
    "jpeg_content_named.png": ok((H, W, 3), RGB8),
    "jpeg_cmyk.jpg": refused("JPEG colour mode CMYK is not supported"),
    "jpeg_bomb_65535x65535.jpg": refused(f"65535 x 65535 pixels (4,295 MP) is {LIMIT}"),
    "jpeg_height_0.jpg": refused(DAMAGED_JPEG),
    "jpeg_bad_huffman.jpg": refused(f"{DAMAGED_JPEG} (broken data stream"),
    "jpeg_empty.jpg": refused(EMPTY_FILE),
    "jpeg_content_named.arw": refused(f"{LIBRAW_CANNOT} (Unsupported file format or not RAW file)"),
    "jpeg_truncated_2.jpg": refused(NOT_IMAGE),
    "jpeg_truncated_100.jpg": refused(f"{DAMAGED_JPEG} (Truncated File Read)"),
    "jpeg_truncated_half.jpg": refused(f"{DAMAGED_JPEG} (Truncated File Read)"),
    "jpeg_truncated_no_eoi.jpg": refused(f"{DAMAGED_JPEG} (image file is truncated"),
    # TIFF
    "tiff_ok_rgb8.tif": ok((H, W, 3), RGB8),
    "tiff_ok_rgb16.tif": ok((H, W, 3), "uint16"),
    "tiff_ok_rgb16_zlib.tif": ok((H, W, 3), "uint16"),
    "tiff_ok_float32.tif": ok((H, W, 3), "float32"),
    "tiff_ok_float16.tif": ok((H, W, 3), "float16"),
    "tiff_grey16.tif": ok((H, W), "uint16"),
    "tiff_1x1.tif": ok((1, 1, 3), RGB8),
    "tiff_content_named.png": ok((H, W, 3), "uint16"),
    "tiff_float32_nan.tif": refused(NON_FINITE),
    "tiff_float32_inf.tif": refused(NON_FINITE),
    "tiff_multipage.tif": refused("multi-page TIFF (2 pages) is not supported"),
    "tiff_cmyk.tif": refused("TIFF photometric SEPARATED is not supported"),
    "tiff_lab.tif": refused("TIFF photometric CIELAB is not supported"),
    "tiff_int32.tif": refused("TIFF sample type int32 is not supported"),
    "tiff_bomb_100000x100000.tif": refused(f"100000 x 100000 pixels (10,000 MP) is {LIMIT}"),
    "tiff_0x0.tif": refused("the image is empty (0 x 0 pixels)"),
    "tiff_bad_ifd_offset.tif": refused("damaged TIFF: no readable image directory (IFD)"),
    "tiff_empty.tif": refused(EMPTY_FILE),
    "tiff_truncated_4.tif": refused("damaged or truncated TIFF"),
    "tiff_truncated_8.tif": refused("damaged TIFF: no readable image directory (IFD)"),
    "tiff_truncated_100.tif": refused("damaged or unreadable TIFF (corrupted IFD structure)"),
    "tiff_truncated_half.tif": refused("truncated TIFF: the pixel data run to byte 18,656 of a 9,328-byte"),
    "tiff_truncated_last_byte.tif": refused("truncated TIFF: the pixel data run to byte 18,656 of a 18,655"),
    # camera RAW (by suffix, through LibRaw): camera RGB float32
    "dng_ok_bayer.dng": ok((64, 96, 3), "float32"),
    "dng_bomb_30000x20000.dng": refused(f"30000 x 20000 pixels (600 MP) is {LIMIT}"),
    "dng_bomb_100000x100000.dng": refused(LIBRAW_CANNOT),  # beyond what LibRaw itself opens
    "dng_bad_header.dng": refused(f"{LIBRAW_CANNOT} (Unsupported file format or not RAW file)"),
    "dng_empty.dng": refused(EMPTY_FILE),
    "raw_text_named.cr2": refused(f"{LIBRAW_CANNOT} (Unsupported file format or not RAW file)"),
    "dng_truncated_8.dng": refused(f"{LIBRAW_CANNOT} (Input/output error)"),
    "dng_truncated_200.dng": refused(f"{LIBRAW_CANNOT} (Input/output error)"),
    "dng_truncated_half.dng": refused("truncated RAW file: its image data run to byte 12,848 of a 6,424"),
    "dng_truncated_last_100.dng": refused("truncated RAW file: its image data run to byte 12,848 of a 12,"),
    # OpenEXR
    "exr_ok_half.exr": ok((H, W, 3), "float16"),
    "exr_nan.exr": refused(NON_FINITE),
    "exr_bomb_100000x100000.exr": refused(f"100000 x 100000 pixels (10,000 MP) is {LIMIT}"),
    "exr_truncated_half.exr": refused("damaged or unreadable EXR (truncated: chunk 23 (at byte 9,742) runs"),
    "exr_empty.exr": refused(EMPTY_FILE),
    # WebP: 8-bit RGB(A), lossy or lossless; animations refused
    "webp_ok_lossy.webp": ok((H, W, 3), RGB8),
    "webp_ok_lossless_rgba.webp": ok((H, W, 4), RGB8),
    "webp_content_named.png": ok((H, W, 3), RGB8),
    "webp_animated.webp": refused("an animated WebP (2 frames): libdeclip repairs stills"),
    "webp_bad_frame_header.webp": refused(f"{DAMAGED_WEBP} (could not create decoder object)"),
    "webp_empty.webp": refused(EMPTY_FILE),
    "webp_truncated_20.webp": refused(DAMAGED_WEBP),
    "webp_truncated_half.webp": refused(DAMAGED_WEBP),
    # AVIF: 8-bit, and 10/12-bit as uint16 over the whole range; HDR (PQ, HLG) refused
    "avif_ok_rgb8.avif": ok((H, W, 3), RGB8),
    "avif_ok_10bit.avif": ok((H, W, 3), "uint16"),
    "avif_pq.avif": refused("an HDR picture (PQ (SMPTE ST 2084) transfer curve)"),
    "avif_bomb_100000x100000.avif": refused(f"100000 x 100000 pixels (10,000 MP) is {LIMIT}"),
    "avif_empty.avif": refused(EMPTY_FILE),
    "avif_truncated_30.avif": refused(f"{DAMAGED_AVIF} (Failed to decode image: Truncated data)"),
    "avif_truncated_half.avif": refused(DAMAGED_AVIF),
    # HEIC: 8-bit, and 10/12-bit as uint16 over the whole range
    "heic_ok_rgb8.heic": ok((H, W, 3), RGB8),
    "heic_ok_10bit.heic": ok((H, W, 3), "uint16"),
    "heic_content_named.jpg": ok((H, W, 3), RGB8),
    "heic_bomb_100000x100000.heic": refused(f"100000 x 100000 pixels (10,000 MP) is {LIMIT}"),
    "heic_empty.heic": refused(EMPTY_FILE),
    "heic_truncated_30.heic": refused(f"{DAMAGED_HEIC} (Invalid input: Unspecified: File size too small.)"),
    "heic_truncated_half.heic": refused(f"{DAMAGED_HEIC} (Invalid input: Unexpected end of file"),
    # models (loaded as Declipper(model=...))
    "model_ok_zero_residual.onnx": Outcome(None, "zero-residual"),
    "model_not_onnx.onnx": refused("ONNX Runtime cannot load the model", ModelError),
    "model_empty.onnx": refused("ONNX Runtime cannot load the model", ModelError),
    "model_truncated_4096.onnx": refused("ONNX Runtime cannot load the model", ModelError),
    "model_no_metadata.onnx": refused("not a libdeclip model (metadata lacks contract, name", ModelError),
    "model_wrong_contract.onnx": refused("model contract 'libdeclip-model-2' is not supported", ModelError),
    "model_wrong_channels.onnx": refused("input channels R,G,B,M are not supported", ModelError),
    "model_wrong_input_name.onnx": refused("tensors break the contract", ModelError),
    "model_wrong_input_shape.onnx": refused("tensors break the contract", ModelError),
    "model_bad_metadata_value.onnx": refused("malformed model metadata", ModelError),
}
IMAGES = sorted(name for name in EXPECTED if not name.endswith(".onnx"))
MODELS = sorted(name for name in EXPECTED if name.endswith(".onnx"))


def _make_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name not in NOT_CORPUS)


def _check_message(exc: BaseException, path: Path, outcome: Outcome) -> None:
    assert outcome.error is not None
    assert type(exc) is outcome.error, f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{path}: ") or message == f"model file not found: {path}", message
    assert outcome.detail in message, message


# ---------------------------------------------------------------------------------- the corpus


def test_corpus_is_complete_and_small() -> None:
    names = {p.name for p in _corpus_files()}
    assert names == set(EXPECTED), (names - set(EXPECTED), set(EXPECTED) - names)  # (unlisted, absent)
    assert sum(p.stat().st_size for p in _corpus_files()) < MAX_CORPUS_BYTES


def test_corpus_is_what_the_script_makes() -> None:
    """The committed files are exactly what make_corpus.py generates (same names, same bytes)."""
    pytest.importorskip("onnx")
    built = _make_corpus().build()
    committed = {p.name: p.read_bytes() for p in _corpus_files()}
    assert sorted(built) == sorted(committed)
    changed = [name for name, data in built.items() if committed[name] != data]
    assert not changed, f"run `python tests/data/bad/make_corpus.py`: {changed} differ"


# ------------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("name", IMAGES)
def test_read_image_outcome(name: str) -> None:
    path = CORPUS / name
    outcome = EXPECTED[name]
    if outcome.error is None:
        image = read_image(path)
        assert f"{image.pixels.shape} {image.pixels.dtype}" == outcome.detail
        assert image.path == path
        if image.is_float:
            assert np.isfinite(image.pixels).all()
        return
    with pytest.raises(DeclipError) as info:
        read_image(path)
    _check_message(info.value, path, outcome)
    error = info.value  # raised on its own, not chained to a dependency's exception
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_conversions_keep_the_pixels() -> None:
    """The defined conversions give the same picture as the plain file."""
    rgb = read_image(CORPUS / "png_ok_rgb8.png").pixels
    assert np.array_equal(read_image(CORPUS / "png_content_named.jpg").pixels, rgb)
    assert np.array_equal(read_image(CORPUS / "png_truncated_no_iend.png").pixels, rgb)
    assert np.array_equal(read_image(CORPUS / "png_ok_rgb16.png").pixels, rgb.astype(np.uint16) * 257)
    assert np.array_equal(read_image(CORPUS / "tiff_ok_rgb8.tif").pixels, rgb)
    palette = read_image(CORPUS / "png_palette.png").pixels
    assert np.abs(palette.astype(int) - rgb).mean() < 12  # 16 colours
    with_alpha = read_image(CORPUS / "png_palette_trns.png").pixels
    assert np.array_equal(with_alpha[..., :3], palette)
    assert set(np.unique(with_alpha[..., 3])) <= {0, 128, 255}
    grey16 = read_image(CORPUS / "png_grey16.png").pixels
    assert np.array_equal(grey16, read_image(CORPUS / "png_grey8.png").pixels.astype(np.uint16) * 257)


@pytest.mark.parametrize("name", MODELS)
def test_model_outcome(name: str) -> None:
    path = CORPUS / name
    outcome = EXPECTED[name]
    if outcome.error is None:
        with Declipper(path, device="cpu", threads=1) as session:
            assert session.model_info.name == outcome.detail
            photo = read_image(CORPUS / "png_ok_rgb8.png").pixels
            assert np.array_equal(session.run(photo, fit="clamp"), photo)  # a zero residual
        return
    with pytest.raises(DeclipError) as info:
        Declipper(path, device="cpu", threads=1)
    _check_message(info.value, path, outcome)


def test_shipped_model_checksum_is_recorded() -> None:
    sums = (engine_module.MODELS_DIR / engine_module.CHECKSUMS_NAME).read_text()
    digest = hashlib.sha256(engine_module.automatic_model().read_bytes()).hexdigest()
    assert f"{digest}  {engine_module.automatic_model().name}" in sums.splitlines(), (
        "the shipped model changed: record it with `cd libdeclip/models && sha256sum *.onnx > SHA256SUMS`"
    )
    assert engine_module.shipped_checksum(engine_module.automatic_model()) == digest


def test_shipped_model_with_a_wrong_checksum_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(engine_module.MODELS_DIR / engine_module.CHECKSUMS_NAME, models)
    tampered = _make_corpus().tampered_model(models / engine_module.automatic_model().name)
    monkeypatch.setattr(engine_module, "MODELS_DIR", models)
    with pytest.raises(ModelError) as info:
        Declipper(tampered, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{tampered}: the shipped model's sha256 is ")
    assert "reinstall libdeclip" in message
    assert "\n" not in message
    # the same bytes outside the models folder are a user's own model: no recorded checksum applies
    elsewhere = tmp_path / "mine.onnx"
    shutil.copy(tampered, elsewhere)
    assert engine_module.shipped_checksum(elsewhere) is None


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        Declipper(tmp_path / "missing.onnx", device="cpu")


# ------------------------------------------------------------------------------- pixel limit


@pytest.mark.parametrize(
    "name", ["png_ok_rgb8.png", "jpeg_ok_rgb.jpg", "tiff_ok_rgb16.tif", "exr_ok_half.exr", "dng_ok_bayer.dng"]
)
def test_pixel_limit_is_configurable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every format is checked against the limit from its header: per call and by environment."""
    path = CORPUS / name
    pixels = 64 * 96 if name.endswith(".dng") else H * W
    tiny = r"pixels \(0.00\d+ MP\) is above the limit of 0.00"
    with pytest.raises(UnsupportedInputError, match=tiny) as info:
        read_image(path, max_pixels=pixels - 1)
    assert str(info.value).startswith(f"{path}: ")
    assert read_image(path, max_pixels=pixels).pixels.shape[:2] in ((H, W), (64, 96))
    monkeypatch.setenv("LIBDECLIP_MAX_PIXELS", str(pixels - 1))
    with pytest.raises(UnsupportedInputError, match="LIBDECLIP_MAX_PIXELS"):
        read_image(path)
    assert read_image(path, max_pixels=pixels) is not None  # the argument wins over the environment


def test_pixel_limit_default_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBDECLIP_MAX_PIXELS", raising=False)
    assert pixel_limit() == MAX_PIXELS == 500_000_000
    monkeypatch.setenv("LIBDECLIP_MAX_PIXELS", "1_000_000_000")
    assert pixel_limit() == 1_000_000_000 and pixel_limit(5) == 5
    monkeypatch.setenv("LIBDECLIP_MAX_PIXELS", "lots")
    with pytest.raises(UnsupportedInputError, match="LIBDECLIP_MAX_PIXELS='lots' is not a whole number"):
        read_image(CORPUS / "png_ok_rgb8.png")
    with pytest.raises(UnsupportedInputError, match="must be positive"):
        read_image(CORPUS / "png_ok_rgb8.png", max_pixels=0)


def test_errors_are_one_line() -> None:
    assert str(DeclipError("a\nb\r\n  c")) == "a b c"
    assert str(ModelError("x:\n[ONNXRuntimeError] :\n bad")) == "x: [ONNXRuntimeError] : bad"
    assert issubclass(UnsupportedInputError, ValueError)
    assert libdeclip.UnsupportedInputError is UnsupportedInputError


# ------------------------------------------------------------------------------ command line


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libdeclip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _error_lines(stderr: str, paths: list[Path]) -> dict[Path, list[str]]:
    """Each stderr line must be one file's ``error:`` line or the batch summary; by file."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    by_file: dict[Path, list[str]] = {p: [] for p in paths}
    for line in lines:
        if " files declipped, " in line:
            continue
        owner = [p for p in paths if line.startswith(f"error: {p}: ")]
        assert len(owner) == 1, f"a stderr line that is no file's one error line: {line!r}"
        by_file[owner[0]].append(line)
    return by_file


def test_cli_declip_over_the_corpus(tmp_path: Path) -> None:
    """All images in one batch: one error line per refused file, an output per good one, nothing else
    in the output folder, and the inputs unchanged."""
    paths = [CORPUS / name for name in IMAGES]
    before = _digests(paths)
    out = tmp_path / "out"
    proc = _cli("declip", *map(str, paths), "--out-dir", str(out), "--device", "cpu", "-q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = _error_lines(proc.stderr, paths)
    expected_outputs = set()
    for path in paths:
        outcome = EXPECTED[path.name]
        if outcome.error is None:
            assert errors[path] == [], errors[path]
            suffix = ".dng" if path.suffix == ".dng" else path.suffix
            expected_outputs.add(f"{path.stem}_declip{suffix}")
        else:
            assert len(errors[path]) == 1, f"{path.name}: {errors[path]}"
            assert outcome.detail in errors[path][0]
    written = {p.name for p in out.iterdir()}
    assert written == expected_outputs, (expected_outputs - written, written - expected_outputs)
    assert _digests(paths) == before


def test_cli_info_over_the_corpus(tmp_path: Path) -> None:
    paths = [CORPUS / name for name in IMAGES]
    proc = _cli("info", *map(str, paths), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = _error_lines(proc.stderr, paths)
    for path in paths:
        outcome = EXPECTED[path.name]
        if outcome.error is None:
            assert errors[path] == [] and f"{path}\n  format" in proc.stdout, path.name
        else:
            assert len(errors[path]) == 1 and outcome.detail in errors[path][0], (path.name, errors[path])
    assert list(tmp_path.iterdir()) == []  # info writes nothing


@pytest.mark.parametrize("name", [
    "png_bomb_100000x100000.png", "png_truncated_half.png", "jpeg_truncated_half.jpg", "tiff_float32_nan.tif",
    "tiff_multipage.tif", "dng_truncated_half.dng", "raw_text_named.cr2", "exr_truncated_half.exr",
    "png_empty.png",

])
def test_cli_single_file_error(name: str, tmp_path: Path) -> None:
    """``declip FILE -o OUT``: one error line (and the count), exit status 1, no output, no .part."""
    path = CORPUS / name
    dst = tmp_path / "out" / "result.png"
    dst.parent.mkdir()
    proc = _cli("declip", str(path), "-o", str(dst), "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 1
    errors = _error_lines(proc.stderr, [path])
    assert len(errors[path]) == 1
    assert EXPECTED[name].detail in errors[path][0]
    assert list(dst.parent.iterdir()) == []


def test_grey_alpha_is_declipped_with_its_alpha_kept(tmp_path: Path) -> None:
    path = CORPUS / "png_grey_alpha.png"
    proc = _cli("info", str(path), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    dst = tmp_path / "out.png"
    proc = _cli("declip", str(path), "-o", str(dst), "--device", "cpu", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    before, after = read_image(path).pixels, read_image(dst).pixels
    assert after.shape == before.shape and after.dtype == before.dtype
    np.testing.assert_array_equal(after[..., 1], before[..., 1])
