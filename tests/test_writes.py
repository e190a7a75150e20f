"""Writes never damage anything (issue 10).

- A process killed with SIGKILL at random points while it writes an output (through
  :func:`libdeclip.write_image` and through the CLI, over a complete previous file or over nothing)
  leaves at the output path either nothing or a complete file, previous or new: decoded in full and
  equal to one of the two, byte for byte. What a kill can leave is a hidden ``.NAME.*.part``
  temporary file beside the output, never at its name.
- A read-only folder and a full disk are refused with one line that names the output; the previous
  file stays as it was and no temporary file is left.
- An output that is the input (the same name, a symbolic or a hard link to it), another input of the
  run, or another file's output is refused, unless ``--in-place`` asks to replace the input, which
  then happens in one rename once the new file is complete.
- No test here changes an input: every input is checksummed before and after.

The kills run in children forked from a ``forkserver`` that has imported libdeclip already, so a
child starts in milliseconds and a kill lands within the write, not within Python's start-up.
Read-only and full-disk folders are tmpfs mounts when the tests run as root (chmod does not stop
root); they are skipped, with the reason, where mounting is not permitted.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from libdeclip import Image, read_image, write_image
from libdeclip import cli as cli_module
from tests.conftest import REPO

SEED = 20251125
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL, fork and tmpfs are POSIX")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parts(folder: Path) -> list[Path]:
    """Temporary files that writes left in ``folder``."""
    return sorted(p for p in folder.iterdir() if p.name.endswith(".part"))


class Inputs:
    """Input files of a test, checksummed when made; :meth:`check` says none of them changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sums: dict[Path, str] = {}

    def add(self, name: str, pixels: np.ndarray) -> Path:
        path = self.folder / name
        write_image(path, Image(pixels=pixels, format="png"))
        return self.keep(path)

    def keep(self, path: Path) -> Path:
        self.sums[path] = _sha(path)
        return path

    def release(self, path: Path) -> None:
        """``path`` is meant to change (an --in-place test checks it itself)."""
        del self.sums[path]

    def check(self) -> None:
        changed = [str(p) for p, s in self.sums.items() if not p.is_file() or _sha(p) != s]
        assert not changed, f"inputs modified: {changed}"


@pytest.fixture()
def inputs(tmp_path: Path) -> Iterator[Inputs]:
    folder = tmp_path / "in"
    folder.mkdir()
    guard = Inputs(folder)
    yield guard
    guard.check()


def _crop(demo_rgb: np.ndarray) -> np.ndarray:
    """The demo photo's lamps (real clipping) in a small crop: the model runs in a fraction of a
    second."""
    return np.ascontiguousarray(demo_rgb[40:232, 160:416])


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``libdeclip`` in this process: exit code and stderr."""
    capsys.readouterr()
    code = cli_module.main([*args, "-q"])
    return code, capsys.readouterr().err


# -- killed writers ---------------------------------------------------------------------------------

def _forkserver() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    # Imported once by the fork server, so that each child starts in milliseconds (a no-op when the
    # server is already running).
    ctx.set_forkserver_preload(["libdeclip", "libdeclip.cli", "onnxruntime", __name__])
    return ctx


def _write_in_turn(dst: str, scratch: Path, images: list[Image], fmt: str, tell: Any) -> None:
    """Child: write ``images`` over ``dst`` in turn, forever (until killed). First one write in
    ``scratch`` (the codec loaded), whose duration it tells the parent."""
    start = time.perf_counter()
    write_image(scratch / f"warm.{fmt}", images[0], format=fmt, overwrite=True)
    tell.send(time.perf_counter() - start)
    while True:
        for image in images:
            write_image(dst, image, format=fmt, overwrite=True)


def _cli_once(argv: list[str], tell: Any) -> None:
    """Child: run the CLI once, telling the parent when the output's write begins; then wait for
    the parent's kill."""
    import threading

    from tqdm import tqdm

    from libdeclip import cli, workflow

    # tqdm's default lock is a multiprocessing semaphore: in a child of the fork server it would be
    # registered with the parent's resource tracker, and a kill would leave it there.
    tqdm.set_lock(threading.RLock())
    real = workflow.write_image

    def signalling(path: Any, *args: Any, **kwargs: Any) -> Path:
        tell.send("writing")
        return real(path, *args, **kwargs)

    workflow.write_image = signalling  # type: ignore[assignment]
    cli.main(argv)
    tell.send("done")
    time.sleep(600)


def _start(ctx: Any, target: Any, *args: Any) -> tuple[Any, Any]:
    """A child running ``target(*args, tell)``, and the end of the pipe it tells the parent on."""
    told, tell = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(*args, tell))
    child.start()
    tell.close()  # the child's copy is the only writer left
    return child, told


def _hear(told: Any, timeout: float, word: Any = None) -> Any:
    """What the child says within ``timeout`` seconds (the first message, or ``word`` when given;
    None if not)."""
    try:
        while told.poll(timeout):
            said = told.recv()
            if word is None or said == word:
                return said
    except EOFError:  # the child is gone
        pass
    return None


def _kill_at(proc: Any, seconds: float) -> None:
    time.sleep(seconds)
    proc.kill()  # SIGKILL: no handler, no finally, no cleanup
    proc.join(30)
    assert proc.exitcode == -9


def _outcome(dst: Path, expected: dict[str, bytes], pixels: dict[str, np.ndarray]) -> str:
    """Which complete file the output path holds ("none" when there is none); fails on anything
    else (a partial or foreign file)."""
    if not dst.exists():
        return "none"
    data = dst.read_bytes()
    name = next((k for k, v in expected.items() if v == data), None)
    assert name is not None, f"{dst}: {len(data)} bytes, not a complete previous or new file"
    decoded = read_image(dst).pixels  # decoded in full
    assert np.array_equal(decoded, pixels[name])
    return name


def test_sigkill_during_write_image(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    """36 kills at random points of write_image (PNG, 16-bit TIFF, JPEG): the output is always
    nothing (when there was nothing before) or a complete file, previous or new."""
    rng = random.Random(SEED)
    ctx = _forkserver()
    big = np.tile(demo_rgb, (2, 2, 1))  # TIFF and JPEG encode fast: a larger picture, a longer write
    report = []
    for fmt, old in (("png", demo_rgb), ("tiff", big.astype(np.uint16) * 257), ("jpeg", big)):
        new = np.ascontiguousarray(old[::-1, ::-1])
        folder = tmp_path / fmt
        refs = tmp_path / f"refs-{fmt}"
        folder.mkdir()
        refs.mkdir()
        images = {"old": Image(pixels=old, format=fmt), "new": Image(pixels=new, format=fmt)}
        for name, image in images.items():
            write_image(refs / name, image, format=fmt)
        expected = {name: (refs / name).read_bytes() for name in images}
        pixels = {name: read_image(refs / name).pixels for name in images}
        dst = folder / f"out.{fmt}"
        outcomes: Counter[str] = Counter()
        left = 0
        times = []
        for kill in range(12):
            if kill < 2:  # the first two kills write over nothing, the others over a complete file
                dst.unlink(missing_ok=True)
            elif not dst.exists():
                shutil.copy(refs / "old", dst)
            child, told = _start(ctx, _write_in_turn, str(dst), refs, [images["new"], images["old"]], fmt)
            seconds = _hear(told, 60)
            assert isinstance(seconds, float), "the writer did not start"
            times.append(seconds)
            # a random point of the child's first two writes (new, then old): its whole write cycle
            _kill_at(child, rng.uniform(0, 2 * seconds))
            outcome = _outcome(dst, expected, pixels)
            assert outcome != "none" or kill < 2, "a kill removed the previous file"
            outcomes[outcome] += 1
            for part in _parts(folder):  # a kill inside a write leaves its temporary file, only that
                assert part.name.startswith(f".{dst.name}.")
                part.unlink()
                left += 1
            assert sorted(p.name for p in folder.iterdir()) in ([], [dst.name])
        report.append(f"{fmt}: 12 kills, output {dict(outcomes)}, {left} inside a write (left a .part); "
                      f"a write {np.median(times) * 1e3:.0f} ms")
    print("\n".join(report))


def test_what_a_killed_write_leaves(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    """A kill inside a write leaves its temporary file: hidden, named after the output and ending in
    ``.part``, never at the output's name. Printed: whether the next write of that output cleans
    it up (reported in issue 10)."""
    ctx = _forkserver()
    dst = tmp_path / "out.tif"
    big = Image(pixels=np.tile(demo_rgb, (2, 2, 1)).astype(np.uint16) * 257, format="tiff")
    (tmp_path / "scratch").mkdir()
    left: list[Path] = []
    for _ in range(5):  # a kill may land between two writes (rarely): then try again
        child, told = _start(ctx, _write_in_turn, str(dst), tmp_path / "scratch", [big], "tiff")
        assert _hear(told, 60) is not None
        deadline = time.monotonic() + 5
        while not _parts(tmp_path) and time.monotonic() < deadline:  # inside a write
            time.sleep(0.001)
        _kill_at(child, 0)
        left = _parts(tmp_path)
        if left:
            break
    assert len(left) == 1 and left[0].name.startswith(f".{dst.name}.")
    if dst.exists():
        assert read_image(dst).pixels.shape == (960, 1280, 3)
    write_image(dst, big, overwrite=True)
    cleaned = not (set(left) & set(_parts(tmp_path)))
    print(f"a killed write left {left[0].name}; the next write {'removed' if cleaned else 'kept'} it")
    assert read_image(dst).pixels.shape == (960, 1280, 3)


@pytest.mark.parametrize("mode", ["overwrite", "in-place"])
def test_sigkill_during_cli_write(mode: str, tmp_path: Path, inputs: Inputs, demo_rgb: np.ndarray) -> None:
    """8 kills at random points of the CLI's output write, ``-o OUT --overwrite`` over a previous
    file or ``--in-place`` over the input: the path holds the previous file or the complete new one."""
    rng = random.Random(f"{SEED}-{mode}")
    ctx = _forkserver()
    crop = _crop(demo_rgb)
    src = inputs.add("lamps.png", crop)
    original = src.read_bytes()
    refs = tmp_path / "refs"
    refs.mkdir()
    assert cli_module.main(["declip", str(src), "-o", str(refs / "new.png"), "-q", "--png-level", "9"]) == 0
    repaired = read_image(refs / "new.png")
    start = time.perf_counter()
    write_image(refs / "again.png", repaired, png_level=9)
    seconds = time.perf_counter() - start
    expected = {"old": original, "new": (refs / "new.png").read_bytes()}
    pixels = {"old": crop, "new": repaired.pixels}
    out = tmp_path / "out"
    out.mkdir()
    if mode == "in-place":
        inputs.release(src)
        dst = src
        argv = ["declip", str(src), "--in-place", "-q", "--png-level", "9"]
    else:
        dst = out / "lamps.png"
        argv = ["declip", str(src), "-o", str(dst), "--overwrite", "-q", "--png-level", "9"]
    outcomes: Counter[str] = Counter()
    left = finished = 0
    for _ in range(8):
        dst.write_bytes(original)  # the previous file (for --in-place: the input itself)
        child, told = _start(ctx, _cli_once, argv)
        assert _hear(told, 120, "writing"), "the CLI did not reach its write"
        _kill_at(child, rng.uniform(0, 2 * seconds))
        finished += _hear(told, 0, "done") is not None
        outcomes[_outcome(dst, expected, pixels)] += 1
        for part in _parts(dst.parent):
            assert part.name.startswith(f".{dst.name}.")
            part.unlink()
            left += 1
        assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]
    assert "none" not in outcomes
    print(f"CLI {mode}: 8 kills, output {dict(outcomes)}, {left} left a .part, {finished} finished "
          f"before the kill ({seconds * 1e3:.0f} ms a write)")


# -- refused writes ---------------------------------------------------------------------------------

@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only); skips the test when it cannot mount."""
    if not IS_ROOT:
        pytest.skip("needs root to mount a tmpfs")
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def _read_only_folder(path: Path, previous: bytes) -> Iterator[Path]:
    """A folder holding ``prev.png`` that no one may write to: chmod 555, or as root (whom chmod
    does not stop) a tmpfs remounted read-only."""
    if not IS_ROOT:
        path.mkdir()
        (path / "prev.png").write_bytes(previous)
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _tmpfs(path, "4m"):
        (path / "prev.png").write_bytes(previous)
        proc = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")
        yield path


def test_read_only_folder(tmp_path: Path, inputs: Inputs, demo_rgb: np.ndarray,
                          capsys: pytest.CaptureFixture[str]) -> None:
    src = inputs.add("lamps.png", _crop(demo_rgb))
    previous = src.read_bytes()
    with _read_only_folder(tmp_path / "ro", previous) as ro:
        # a new file and a replacement, through the CLI: one line naming the output, exit code 1
        for name, extra in (("new.png", []), ("prev.png", ["--overwrite"])):
            code, err = _cli(capsys, "declip", str(src), "-o", str(ro / name), *extra)
            assert code == 1
            reason = "Read-only file system" if IS_ROOT else "Permission denied"
            assert f"error: {ro / name}: not written: {reason}" in err, err
            assert ".part" not in err
        # a --mask picture there: its own error line; the output itself is written
        out = tmp_path / "out.png"
        code, err = _cli(capsys, "declip", str(src), "-o", str(out), "--mask", str(ro / "mask.png"))
        assert code == 1 and f"error: {ro / 'mask.png'}: not written: {reason}" in err, err
        assert read_image(out).pixels.shape == _crop(demo_rgb).shape
        # and through the API
        with pytest.raises(OSError):
            write_image(ro / "prev.png", read_image(src), overwrite=True)
        assert sorted(p.name for p in ro.iterdir()) == ["prev.png"]
        assert (ro / "prev.png").read_bytes() == previous


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_full_disk(ext: str, tmp_path: Path, inputs: Inputs, demo_rgb: np.ndarray,
                   capsys: pytest.CaptureFixture[str]) -> None:
    """A 64 kB tmpfs holding a small previous file; the output (an uncompressed 16-bit TIFF of
    295 kB, a PNG of about 150 kB at --png-level 0) does not fit: an error naming the output, no
    partial file, the previous file intact."""
    crop = _crop(demo_rgb)
    src = inputs.keep(write_image(inputs.folder / "lamps.tif",
                                  Image(pixels=crop.astype(np.uint16) * 257, format="tiff")))
    previous = np.ascontiguousarray(crop[:32, :32])
    with _tmpfs(tmp_path / "small", "64k") as disk:
        kind = "tiff" if ext == "tif" else ext
        prev = write_image(disk / f"out.{ext}", Image(pixels=previous, format=kind))
        before = prev.read_bytes()
        code, err = _cli(capsys, "declip", str(src), "-o", str(prev), "--overwrite", "--png-level", "0")
        assert code == 1
        assert f"error: {prev}: not written: " in err, err
        if ext == "png":
            assert f"error: {prev}: not written: No space left on device" in err, err
        assert prev.read_bytes() == before
        assert np.array_equal(read_image(prev).pixels, previous)
        assert sorted(p.name for p in disk.iterdir()) == [prev.name]
        # the API: an error, nothing left, the previous file intact
        with pytest.raises(OSError):
            write_image(prev, read_image(src), overwrite=True, png_level=0)
        assert sorted(p.name for p in disk.iterdir()) == [prev.name] and prev.read_bytes() == before
        # a new file that does not fit leaves nothing at all
        code, err = _cli(capsys, "declip", str(src), "-o", str(disk / f"new.{ext}"), "--png-level", "0")
        assert code == 1 and f"error: {disk / f'new.{ext}'}: not written: " in err
        assert sorted(p.name for p in disk.iterdir()) == [prev.name]


def test_full_disk_tiff_error_says_why(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    big = Image(pixels=_crop(demo_rgb).astype(np.uint16) * 257, format="tiff")
    with _tmpfs(tmp_path / "small", "64k") as disk:
        with pytest.raises(OSError) as caught:
            write_image(disk / "out.tif", big)
        assert not list(disk.iterdir())
    assert caught.value.errno == errno.ENOSPC, repr(caught.value)


# -- the output is an input -------------------------------------------------------------------------

def test_output_that_is_the_input_is_refused(tmp_path: Path, inputs: Inputs, demo_rgb: np.ndarray,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = inputs.add("lamps.png", _crop(demo_rgb))
    symlink = inputs.folder / "link.png"
    symlink.symlink_to(src.name)
    hardlink = inputs.folder / "hard.png"
    os.link(src, hardlink)
    for dst, how in ((src, ""), (symlink, f" ({symlink} is a link to it)"),
                     (hardlink, f" ({hardlink} is a link to it)")):
        for extra in ([], ["--overwrite"]):
            code, err = _cli(capsys, "declip", str(src), "-o", str(dst), *extra)
            assert code == 1
            assert f"error: {src}: the output would overwrite the input{how}; " in err, err
            assert "--in-place" in err
    # the same through the suffix (an empty one names the input itself)
    code, err = _cli(capsys, "declip", str(src), "--suffix", "", "--overwrite")
    assert code == 1 and "would overwrite the input" in err
    assert symlink.is_symlink() and os.path.samefile(hardlink, src)
    assert sorted(p.name for p in inputs.folder.iterdir()) == ["hard.png", "lamps.png", "link.png"]


def test_outputs_that_are_other_inputs_or_shared_are_refused(tmp_path: Path, inputs: Inputs,
                                                             demo_rgb: np.ndarray,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    crop = _crop(demo_rgb)
    a = inputs.add("a.png", crop)
    a_out = inputs.add("a_declip.png", crop[:, ::-1])  # a's output name, also an input of the run
    code, err = _cli(capsys, "declip", str(a), str(a_out), "--overwrite", "--method", "cross-channel")
    assert code == 1
    assert f"error: {a}: its output {a_out} is another input of this run ({a_out}); not replaced" in err
    assert (inputs.folder / "a_declip_declip.png").is_file()  # the other file is done
    # --mask or --compare naming an input
    code, err = _cli(capsys, "declip", str(a), "-o", str(tmp_path / "x.png"), "--mask", str(a),
                     "--method", "cross-channel")
    assert code == 1 and f"--mask {a} is an input of this run" in err
    code, err = _cli(capsys, "declip", str(a), "-o", str(tmp_path / "x.png"), "--compare",
                     str(tmp_path / "x.png"), "--method", "cross-channel")
    assert code == 1 and "would replace an output of this run" in err
    assert not (tmp_path / "x.png").exists()
    # two inputs with one output: the first is written, the second refused
    other = tmp_path / "other"
    other.mkdir()
    b = inputs.keep(Path(shutil.copy(a, other / "a.png")))
    out = tmp_path / "out"
    code, err = _cli(capsys, "declip", str(a), str(b), "--out-dir", str(out), "--method", "cross-channel")
    assert code == 1
    assert f"error: {b}: its output {out / 'a_declip.png'} is also the output of {a}" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_declip.png"]


def test_in_place(tmp_path: Path, inputs: Inputs, demo_rgb: np.ndarray,
                  capsys: pytest.CaptureFixture[str]) -> None:
    """--in-place replaces the input by its repair (the same file as -o would write), keeping its
    permissions; through a symbolic link the target is replaced and the link kept."""
    crop = _crop(demo_rgb)
    src = inputs.add("lamps.png", crop)
    original = src.read_bytes()
    assert cli_module.main(["declip", str(src), "-o", str(tmp_path / "ref.png"), "-q"]) == 0
    expected = (tmp_path / "ref.png").read_bytes()
    inputs.release(src)
    src.chmod(0o640)
    code, err = _cli(capsys, "declip", str(src), "--in-place")
    assert code == 0, err
    assert src.read_bytes() == expected
    assert stat.S_IMODE(src.stat().st_mode) == 0o640
    assert sorted(p.name for p in inputs.folder.iterdir()) == ["lamps.png"]
    # -o naming the input (or a link to it) with --in-place: the input file itself is replaced
    src.write_bytes(original)
    link = tmp_path / "link.png"
    link.symlink_to(src)
    code, err = _cli(capsys, "declip", str(link), "-o", str(link), "--in-place")
    assert code == 0, err
    assert link.is_symlink() and src.read_bytes() == expected
    # a hard link keeps the old picture (the input is a new file under the same name)
    src.write_bytes(original)
    hard = tmp_path / "hard.png"
    os.link(src, hard)
    assert _cli(capsys, "declip", str(src), "--in-place")[0] == 0
    assert src.read_bytes() == expected and hard.read_bytes() == original
    # --in-place takes no --out-dir or --suffix
    for extra in (["--out-dir", str(tmp_path / "o")], ["--suffix", "_x"]):
        code, err = _cli(capsys, "declip", str(hard), "--in-place", *extra)
        assert code == 2 and "--in-place replaces each input; it takes no --out-dir or --suffix" in err
    assert hard.read_bytes() == original


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_in_place_over_a_folder(jobs: str, tmp_path: Path, demo_rgb: np.ndarray,
                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    crops = {"a.png": _crop(demo_rgb), "b.png": np.ascontiguousarray(demo_rgb[300:, 100:400])}
    expected = {}
    for name, pixels in crops.items():
        write_image(folder / name, Image(pixels=pixels, format="png"))
        ref = tmp_path / f"ref-{name}"
        assert _cli(capsys, "declip", str(folder / name), "-o", str(ref), "--method", "cross-channel")[0] == 0
        expected[name] = ref.read_bytes()
    code, err = _cli(capsys, "declip", str(folder), "--in-place", "--jobs", jobs, "--method", "cross-channel")
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == expected


def test_in_place_refuses_camera_raw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_raw import _cfa_data, _write_cfa

    data = _cfa_data(np.full(3, 256.0), 4095)
    data[20:30, 40:52] = 4095
    raw = _write_cfa(tmp_path / "photo.dng", data, [256], 4095)
    before = _sha(raw)
    code, err = _cli(capsys, "declip", str(raw), "--in-place")
    assert code == 1 and "--in-place cannot replace a camera RAW file" in err
    assert _sha(raw) == before and sorted(p.name for p in tmp_path.iterdir()) == ["photo.dng"]


def test_cli_help_documents_in_place() -> None:
    proc = subprocess.run([sys.executable, "-m", "libdeclip", "declip", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--in-place" in proc.stdout
    assert "--in-place" in (REPO / "README.md").read_text()


def test_long_output_name(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    """A file name of 250 bytes is valid (NAME_MAX is 255); its temporary name must fit too."""
    dst = tmp_path / ("x" * 246 + ".png")
    write_image(dst, Image(pixels=_crop(demo_rgb), format="png"))
    assert np.array_equal(read_image(dst).pixels, _crop(demo_rgb))
    assert not _parts(tmp_path)


def test_writer_refusals_are_typed(tmp_path: Path) -> None:
    """Every refusal of the writer is a DeclipError, and still the OSError it always was."""
    import numpy as np

    from libdeclip import DeclipError, Image, OutputError, OutputExistsError, write_image

    image = Image(pixels=np.zeros((4, 4, 3), np.uint8), format="png")
    path = write_image(tmp_path / "a.png", image)
    with pytest.raises(OutputExistsError, match="already exists") as exists:
        write_image(path, image)
    assert isinstance(exists.value, DeclipError) and isinstance(exists.value, FileExistsError)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OutputError, match="a folder stands there") as folder:
        write_image(tmp_path / "folder.png", image, overwrite=True)
    assert isinstance(folder.value, IsADirectoryError)
    with pytest.raises(OutputError, match="does not exist") as missing:
        write_image(tmp_path / "no" / "b.png", image)
    assert isinstance(missing.value, FileNotFoundError)
