"""Every kind of bad path gets one line naming it, never a traceback, never a hang (issue #22).

Each case runs the real command in its own process (a FIFO read would block forever: the timeout
catches that). Permission cases run the command as the user ``nobody`` when the tests run as root
(root reads and writes everything), through ``setpriv``; they are skipped where that cannot be done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEMO_PHOTO

LONG = "n" * 300  # over the 255 bytes a file name may have on every common file system


def _cli(*args: str, cwd: Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "libdeclip", *args]
    if as_nobody and os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "HOME": str(cwd)})


def _one_line_naming(proc: subprocess.CompletedProcess[str], path: str, words: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert path in errors[0] and words in errors[0], errors[0]


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder every user may enter (pytest's own are the owner's only), with the demo photo."""
    where = Path(tempfile.mkdtemp(prefix="libdeclip-paths-"))
    where.chmod(0o777)
    shutil.copy(DEMO_PHOTO, where / "photo.png")
    (where / "photo.png").chmod(0o644)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize(("name", "make", "words"), [
    ("loop.png", lambda d: os.symlink("loop.png", d / "loop.png"), "a loop of symbolic links"),
    ("dangling.png", lambda d: os.symlink("gone.png", d / "dangling.png"),
     "a symbolic link to a missing file"),
    ("pipe.png", lambda d: os.mkfifo(d / "pipe.png"), "not a regular file (a FIFO"),
    (LONG + ".png", lambda d: None, "the name is too long"),
    ("photo.png/inner.png", lambda d: None, "a part of the path is a file"),
    ("missing.png", lambda d: None, "no such file"),
    ("loop.NEF", lambda d: os.symlink("loop.NEF", d / "loop.NEF"), "a loop of symbolic links"),
    ("pipe.dng", lambda d: os.mkfifo(d / "pipe.dng"), "not a regular file (a FIFO"),
])
def test_bad_inputs(folder: Path, name: str, make: object, words: str) -> None:
    make(folder)  # type: ignore[operator]
    for command in (["declip", name, "--method", "inpaint-opposed", "-q"], ["info", name]):
        _one_line_naming(_cli(*command, cwd=folder), name, words)


@pytest.mark.parametrize(("output", "make", "words"), [
    (LONG + ".png", lambda d: None, "the name is too long"),
    ("photo.png/out.png", lambda d: None, "a part of the path is a file"),
    ("pipe.png", lambda d: os.mkfifo(d / "pipe.png"), "not a regular file"),
    ("taken", lambda d: (d / "taken").mkdir(), "a folder stands there"),
])
def test_bad_outputs(folder: Path, output: str, make: object, words: str) -> None:
    make(folder)  # type: ignore[operator]
    proc = _cli("declip", "photo.png", "-o", output, "--overwrite", "--method", "inpaint-opposed", "-q",
                cwd=folder)
    _one_line_naming(proc, output, words)
    assert (folder / "photo.png").read_bytes() == DEMO_PHOTO.read_bytes()  # the input untouched


needs_nobody = pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="running as root without setpriv: permissions cannot be tested",
)


@needs_nobody
def test_an_unreadable_input(folder: Path) -> None:
    (folder / "photo.png").chmod(0o000)
    proc = _cli("declip", "photo.png", "-o", "out.png", "--method", "inpaint-opposed", "-q", cwd=folder,
                as_nobody=True)
    _one_line_naming(proc, "photo.png", "permission denied")


@needs_nobody
def test_a_folder_that_cannot_be_written(folder: Path) -> None:
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    proc = _cli("declip", "photo.png", "-o", "locked/out.png", "--method", "inpaint-opposed", "-q",
                cwd=folder, as_nobody=True)
    _one_line_naming(proc, "locked/out.png", "permission denied")
    assert list(locked.iterdir()) == []  # no temporary file left behind
