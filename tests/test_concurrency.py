"""Concurrency (issue 10): the same answers however the work is spread.

- One :class:`~libdeclip.Declipper` used from 8 threads at once, on real photos (the demo photo's
  lamps, flipped, transposed, as 16-bit and float, and clipped photos from ../shared/data when
  present), returns results bit-identical to the same session's sequential runs.
- Several processes (``multiprocessing``, spawn) on the same files return the same results as
  this one.
- ``libdeclip declip FOLDER --jobs 2`` (and 3) with a broken file among good ones writes every good
  file, byte-identical to a ``--jobs 1`` run, reports the broken one and exits with 1.

Photos are small crops (about 0.05 MP, tiles of 64 px so that each runs several tiles) to keep the
file under a minute on two cores.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from libdeclip import Declipper, Image, read_image, write_image
from tests.conftest import REPO, SHARED_DATA

SEED = 10
TILE = 64
THREADS = 8
CLIPPED = SHARED_DATA / "clipped"
SHARED_PHOTOS = ["hdrcnn/img_001.png", "hdrcnn/img_003.png", "singlehdr/RAW_02651.jpg",
                 "singlehdr/HDREye_fullsize_00004.jpg"]
#: Keyword arguments of run, one set per photo in turn (the threads mix them).
VARIANTS: list[dict[str, Any]] = [{}, {"fit": "clamp"}, {"feather": 3}]


def _window(pixels: np.ndarray, height: int = 160, width: int = 192) -> np.ndarray:
    """A ``height`` x ``width`` window of a photo centred on its median clipped pixel (a value at
    the dtype's top), so that the model has work to do."""
    ys, xs = np.nonzero((pixels == np.iinfo(pixels.dtype).max).any(axis=2))
    cy, cx = (int(np.median(ys)), int(np.median(xs))) if ys.size else (0, 0)
    y0 = min(max(0, cy - height // 2), max(0, pixels.shape[0] - height))
    x0 = min(max(0, cx - width // 2), max(0, pixels.shape[1] - width))
    return np.ascontiguousarray(pixels[y0 : y0 + height, x0 : x0 + width])


@pytest.fixture(scope="module")
def photos(demo_rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Real photos with real clipping, in several layouts and dtypes (views left as views)."""
    lamps = np.ascontiguousarray(demo_rgb[40:232, 160:416])
    found = {
        "lamps": lamps,
        "lamps-flipped-v": lamps[::-1],  # negative strides
        "lamps-flipped-h": lamps[:, ::-1],
        "lamps-transposed": lamps.transpose(1, 0, 2),
        "lamps-16bit": lamps.astype(np.uint16) * 257,
        "lamps-float": lamps.astype(np.float32) / 255,
        "demo-right": _window(np.ascontiguousarray(demo_rgb[:, 400:])),
        "demo-bottom": np.ascontiguousarray(demo_rgb[320:, :256]),
    }
    for name in SHARED_PHOTOS:
        if (CLIPPED / name).is_file():
            found[name] = _window(read_image(CLIPPED / name).pixels)
    return found


def _variant(i: int) -> dict[str, Any]:
    return VARIANTS[i % len(VARIANTS)]


def test_one_declipper_from_eight_threads(photos: dict[str, np.ndarray]) -> None:
    names = list(photos)
    with Declipper(device="cpu", tile_size=TILE) as session:
        sequential = {name: session.run(photos[name], **_variant(i)) for i, name in enumerate(names)}
        # every photo, shuffled, on 8 threads that start together
        tasks = list(range(len(names)))
        random.Random(SEED).shuffle(tasks)
        start = threading.Barrier(THREADS)

        def work(k: int) -> list[tuple[int, np.ndarray]]:
            start.wait(timeout=60)
            return [(i, session.run(photos[names[i]], **_variant(i))) for i in tasks[k::THREADS]]

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = [r for batch in pool.map(work, range(THREADS)) for r in batch]
    assert len(results) == len(tasks)
    for i, out in results:
        expected = sequential[names[i]]
        assert out.dtype == expected.dtype and out.shape == expected.shape
        assert np.array_equal(out, expected), f"{names[i]}: differs from the sequential run"
    # the runs did repair something (a test of identical no-ops would prove nothing)
    changed = [n for n in names if not np.array_equal(sequential[n], photos[n])]
    assert len(changed) == len(names), f"unchanged: {set(names) - set(changed)}"


def _declip_files(paths: list[str]) -> list[np.ndarray]:
    """In a spawned process: its own session, the same files."""
    with Declipper(device="cpu", tile_size=TILE) as session:
        return [session.run(read_image(p).pixels, **_variant(i)) for i, p in enumerate(paths)]


def _save(folder: Path, photos: dict[str, np.ndarray]) -> list[Path]:
    """Each photo as a file (16-bit and float as TIFF, the others as PNG)."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i, (name, pixels) in enumerate(photos.items()):
        ext = "tif" if pixels.dtype != np.uint8 else "png"
        fmt = "tiff" if ext == "tif" else "png"
        path = folder / f"{i:02d}-{name.replace('/', '-')}.{ext}"
        write_image(path, Image(pixels=np.ascontiguousarray(pixels), format=fmt))
        paths.append(path)
    return paths


def test_several_processes_on_the_same_files(tmp_path: Path, photos: dict[str, np.ndarray]) -> None:
    paths = [str(p) for p in _save(tmp_path / "photos", photos)]
    with Declipper(device="cpu", tile_size=TILE) as session:
        here = [session.run(read_image(p).pixels, **_variant(i)) for i, p in enumerate(paths)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:  # two processes at once, and this one
        theirs = pool.map(_declip_files, [paths] * 2)
    for results in theirs:
        for path, mine, other in zip(paths, here, results, strict=True):
            assert np.array_equal(mine, other), f"{path}: another process got another result"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libdeclip", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_cli_jobs_with_a_broken_file_lose_nothing(tmp_path: Path, photos: dict[str, np.ndarray]) -> None:
    from PIL import Image as PILImage

    folder = tmp_path / "in"
    chosen = {k: photos[k] for k in ("lamps", "lamps-flipped-h", "lamps-16bit", "demo-right")}
    _save(folder, chosen)
    PILImage.fromarray(photos["lamps-transposed"]).save(folder / "05-lamps.jpg", quality=90)
    broken = folder / "03-broken.png"
    broken.write_bytes((folder / "00-lamps.png").read_bytes()[:2000])  # truncated: unreadable
    sums = {p: _sha(p) for p in folder.iterdir()}
    good = sorted(p for p in folder.iterdir() if p != broken)

    outputs: dict[int, dict[str, bytes]] = {}
    for jobs in (1, 2, 3):
        out = tmp_path / f"out{jobs}"
        proc = _cli("declip", str(folder), "--out-dir", str(out), "--jobs", str(jobs),
                    "--tile-size", str(TILE), "-q")
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 2, proc.stderr
        assert lines[0].startswith(f"error: {broken}: ")
        assert lines[1] == f"{len(good)} of {len(good) + 1} files declipped, 1 failed"
        outputs[jobs] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        assert sorted(outputs[jobs]) == sorted(f"{p.stem}_declip{p.suffix}" for p in good)
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    for jobs in (2, 3):
        for name, data in outputs[1].items():
            assert outputs[jobs][name] == data, f"--jobs {jobs}: {name} differs from the --jobs 1 run"
    for name in outputs[1]:  # and each output is a repair, not a copy
        src = next(p for p in good if name.startswith(p.stem))
        assert not np.array_equal(read_image(tmp_path / "out1" / name).pixels, read_image(src).pixels)
    assert {p: _sha(p) for p in folder.iterdir()} == sums  # no input touched


def test_cli_jobs_with_a_failed_write_lose_nothing(tmp_path: Path, photos: dict[str, np.ndarray]) -> None:
    """A write that fails in the middle of a --jobs run (a folder stands at one output's name) is
    one error line; every other file is written."""
    folder = tmp_path / "in"
    paths = _save(folder, {k: photos[k] for k in ("lamps", "lamps-flipped-v", "demo-bottom")})
    out = tmp_path / "out"
    blocked = out / f"{paths[1].stem}_declip.png"
    blocked.mkdir(parents=True)
    proc = _cli("declip", str(folder), "--out-dir", str(out), "--jobs", "3", "--tile-size", str(TILE),
                "-q", "--overwrite")
    assert proc.returncode == 1
    assert f"error: {blocked}: a folder stands there" in proc.stderr
    assert "2 of 3 files declipped, 1 failed" in proc.stderr
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    assert written == [f"{paths[0].stem}_declip.png", f"{paths[2].stem}_declip.png"]
    assert not list(blocked.iterdir())
