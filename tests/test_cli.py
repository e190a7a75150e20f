from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from libdeclip.io import read_image
from tests.conftest import DEMO_PHOTO, REPO


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libdeclip", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture()
def folder(tmp_path: Path, demo_rgb: np.ndarray) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(demo_rgb).save(src / "a.png")
    PILImage.fromarray(demo_rgb[:200, :300]).save(src / "b.jpg", quality=88)
    tifffile.imwrite(src / "c.tif", demo_rgb[:160, :200].astype(np.uint16) * 257, photometric="rgb",
                     compression="zlib")
    (src / "d.png").write_bytes(DEMO_PHOTO.read_bytes()[:3000])  # truncated: broken
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_with_a_broken_file(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli("declip", str(folder), "--out-dir", str(out), "--mask", str(tmp_path / "masks"), "-q")
    assert proc.returncode == 1
    assert "d.png: damaged or unreadable PNG" in proc.stderr
    assert "3 of 4 files declipped, 1 failed" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_declip.png", "b_declip.jpg", "c_declip.tif"]
    # dtype in = dtype out, format and quality kept
    assert read_image(out / "c_declip.tif").pixels.dtype == np.uint16
    jpeg = read_image(out / "b_declip.jpg")
    assert jpeg.jpeg_quality == read_image(folder / "b.jpg").jpeg_quality == 88
    assert not np.array_equal(read_image(out / "a_declip.png").pixels, read_image(folder / "a.png").pixels)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir())[0] == "a_mask.png"
    # inputs untouched
    assert (folder / "d.png").stat().st_size == 3000


def test_single_file_output_compare_and_overwrite(tmp_path: Path) -> None:
    dst = tmp_path / "x.png"
    proc = _cli("declip", str(DEMO_PHOTO), "-o", str(dst), "--compare", str(tmp_path / "cmp.png"))
    assert proc.returncode == 0, proc.stderr
    with PILImage.open(tmp_path / "cmp.png") as im:
        assert im.size == (1280, 480)
    before = dst.read_bytes()
    proc = _cli("declip", str(DEMO_PHOTO), "-o", str(dst), "--fit", "clamp")
    assert proc.returncode == 1 and "already exists (use --overwrite" in proc.stderr
    assert dst.read_bytes() == before
    assert _cli("declip", str(DEMO_PHOTO), "-o", str(dst), "--fit", "clamp", "--overwrite").returncode == 0
    assert dst.read_bytes() != before


def test_never_writes_over_the_input(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    src = tmp_path / "p.png"
    PILImage.fromarray(demo_rgb).save(src)
    before = src.read_bytes()
    proc = _cli("declip", str(src), "--suffix", "", "--overwrite")
    assert proc.returncode == 1 and "would overwrite the input" in proc.stderr
    assert src.read_bytes() == before


def test_jobs_and_globs(folder: Path, tmp_path: Path) -> None:
    proc = _cli("declip", str(folder / "*.png"), "--out-dir", str(tmp_path / "o"), "--jobs", "2", "-q")
    assert proc.returncode == 1  # d.png is broken
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["a_declip.png"]


def test_files_in_one_call_are_the_files_one_by_one(folder: Path, tmp_path: Path) -> None:
    # In one call, the next file's run prepares while this one's still runs the model: the bytes
    # must be those of one call per file.
    proc = _cli("declip", str(folder), "--out-dir", str(tmp_path / "all"), "-q")
    assert proc.returncode == 1 and "3 of 4 files declipped, 1 failed" in proc.stderr  # d.png is broken
    for name in ("a.png", "b.jpg", "c.tif"):
        src = folder / name
        one = tmp_path / "one" / f"{src.stem}_declip{src.suffix}"
        assert _cli("declip", str(src), "-o", str(one), "-q").returncode == 0
        assert (tmp_path / "all" / one.name).read_bytes() == one.read_bytes(), src.name


def test_each_file_keeps_its_own_notes(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    # Files are repaired and written on several threads at once: each file's warnings (here an ICC
    # profile that cannot be read) must be its notes, once each, never another file's or lost.
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        profile = f"not a profile {i}".encode() + bytes(200)
        PILImage.fromarray(demo_rgb[i * 40 : i * 40 + 200, :240]).save(src / f"p{i}.png", icc_profile=profile)
    proc = _cli("declip", str(src), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if " -> " in line]
    assert len(lines) == 5
    for line in lines:
        assert line.count("is not supported") == 1, line
    assert "is not supported" not in proc.stderr


def test_warning_notes_are_per_thread() -> None:
    from libdeclip.workflow import NOTES as _NOTES

    shown_before, filters_before = warnings.showwarning, list(warnings.filters)
    collected: dict[int, list[str]] = {}
    both_in = threading.Barrier(2)

    def work(i: int) -> None:
        with _NOTES.collect() as notes:
            both_in.wait()
            for _ in range(3):  # the same warning again: a note each time
                warnings.warn(f"note of thread {i}", UserWarning, stacklevel=1)
            both_in.wait()
        collected[i] = notes

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert collected == {i: [f"note of thread {i}"] * 3 for i in range(2)}
    assert warnings.showwarning is shown_before and warnings.filters == filters_before


def test_a_failed_write_is_reported_and_the_others_finish(folder: Path, tmp_path: Path) -> None:
    # Outputs are written on an I/O thread while the next file runs: a write that fails there (a
    # folder stands where b's output would go) is one error line, never a stop or a partial file.
    out = tmp_path / "out"
    (out / "b_declip.jpg").mkdir(parents=True)
    proc = _cli("declip", str(folder), "--out-dir", str(out), "--overwrite", "-q", "--png-level", "9")
    assert proc.returncode == 1
    assert "b_declip.jpg: a folder stands there" in proc.stderr
    assert "2 of 4 files declipped, 2 failed" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_declip.png", "b_declip.jpg", "c_declip.tif"]
    assert (out / "b_declip.jpg").is_dir() and not list((out / "b_declip.jpg").iterdir())
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    level9 = (out / "a_declip.png").stat().st_size
    proc = _cli("declip", str(folder / "a.png"), "-o", str(out / "a_declip.png"), "--overwrite", "-q")
    assert proc.returncode == 0 and (out / "a_declip.png").stat().st_size > level9  # level 3 is larger


def test_info_and_models() -> None:
    proc = _cli("info", str(DEMO_PHOTO))
    assert proc.returncode == 0, proc.stderr
    assert "PNG, 640 x 480, 3 channel(s), 8-bit integer" in proc.stdout
    assert "R: high" in proc.stdout and "would run" in proc.stdout
    proc = _cli("models")
    assert proc.returncode == 0 and "declipnet-v1.onnx: declipnet v1" in proc.stdout
    assert _cli("info", "missing.png").returncode == 1


def _no_model(*args: object, **kwargs: object) -> None:
    raise AssertionError("a classical method loaded the model")


def test_method_and_consistency_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      demo_rgb: np.ndarray) -> None:
    import libdeclip
    from libdeclip import cli, session

    # declipnet (the default), with or without the constraint: what libdeclip.declip gives
    assert cli.main(["declip", str(DEMO_PHOTO), "-o", str(tmp_path / "n.png"), "-q"]) == 0
    assert cli.main(["declip", str(DEMO_PHOTO), "-o", str(tmp_path / "m.png"), "-q", "--no-consistency"]) == 0
    photo = read_image(DEMO_PHOTO).pixels
    for name, consistency in (("n", True), ("m", False)):
        expected = libdeclip.declip(photo, device="auto", consistency=consistency)
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.png").pixels, expected)

    # a classical method never loads the model (no ONNX), also with --jobs, and writes exactly
    # what libdeclip.declip(method=...) returns
    monkeypatch.setattr(session, "OnnxEngine", _no_model)
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(demo_rgb).save(src / "a.png")
    PILImage.fromarray(demo_rgb[:200, :300]).save(src / "b.png")
    out = tmp_path / "out"
    assert cli.main(["declip", str(src), "--out-dir", str(out), "--method", "inpaint-opposed",
                     "--no-consistency", "--jobs", "2", "-q"]) == 0
    for name, pixels in (("a", demo_rgb), ("b", demo_rgb[:200, :300])):
        expected = libdeclip.declip(pixels, method="inpaint-opposed", consistency=False)
        written = read_image(out / f"{name}_declip.png").pixels
        np.testing.assert_array_equal(written, expected)
    assert not np.array_equal(read_image(out / "a_declip.png").pixels, demo_rgb)


@pytest.mark.parametrize("method", ["inpaint-opposed", "cross-channel"])
def test_classical_method_on_camera_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """A classical method on a RAW needs no model session and writes the DNG: the values under
    the photosite mask only ever rise, every other value is as read; the same as Declipper.repair."""
    from libdeclip import Declipper, cli, session
    from tests.test_raw import H, W, _mosaic, _write_cfa

    # a light whose core saturates the red photosites only (green and blue stay measured): white
    # balanced (gains 2, 1, 1/0.7 from AsShotNeutral), red is the luminance plus a constant 1.2
    yy, xx = np.mgrid[0:H, 0:W]
    lum = 0.1 + 0.85 * np.exp(-((yy - 30) ** 2 + (xx - 45) ** 2) / (2 * 8.0**2))
    scene = np.stack([(lum + 1.2) / 2, lum, lum * 0.7], axis=2)
    data = np.clip(np.rint(256 + _mosaic(scene) * (4095 - 256)), 0, 4095).astype(np.uint16)
    raw = _write_cfa(tmp_path / "photo.dng", data, [256], 4095)
    monkeypatch.setattr(session, "OnnxEngine", _no_model)  # the model is never loaded
    assert cli.main(["declip", str(raw), "--method", method, "-q", "--format", "tiff32"]) == 0
    image = read_image(raw)
    assert image.raw_mask is not None and image.raw_mask[..., 0].any() and not image.raw_mask[..., 1].any()
    result = Declipper(load=False).repair(image, method=method).pixels
    mask = image.raw_mask
    assert (result[mask] >= image.pixels[mask]).all() and (result[mask] > image.pixels[mask]).any()
    np.testing.assert_array_equal(result[~mask], image.pixels[~mask])
    assert (tmp_path / "photo_declip.tif").is_file()


def test_a_pipeline_refusal_names_the_file(tmp_path: Path) -> None:
    """The pipeline's own checks know no file name; the CLI's error line names the input."""
    src = tmp_path / "huge values.tif"
    pixels = np.full((16, 16, 3), 0.5, np.float32)
    pixels[4:8, 4:8] = 1e30  # finite, but no photo's: refused before float32 arithmetic overflows
    tifffile.imwrite(src, pixels, photometric="rgb")
    proc = _cli("declip", str(src), "-o", str(tmp_path / "out.tif"), "-q")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(f"error: {src}: image values reach 1e+30 times")
    assert not (tmp_path / "out.tif").exists()


def test_a_closed_pipe_ends_the_listing_without_a_traceback() -> None:
    """`libdeclip models | head -1`: the reader goes away; no traceback on stderr."""
    proc = subprocess.run(f"{shlex.quote(sys.executable)} -m libdeclip models | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("automatic") and "Traceback" not in proc.stderr, proc.stderr
