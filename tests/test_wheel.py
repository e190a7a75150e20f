"""The built wheel, installed into a clean virtual environment without a compiler, declips the
demo photo.

``make test`` builds the wheel first (``make wheel``: ``build/wheel/``, a manylinux wheel repaired
by auditwheel); the virtual environment gets only the wheel and its dependencies from the package
index as wheels (``--only-binary :all:``: nothing is compiled; pip's cache makes that quick), with a
PATH on which there is no g++, cc or CMake, so the test sees what a user's ``pip install`` gives on
a machine without a compiler: the native core, the models and the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from libdeclip import cli
from tests.conftest import DEMO_PHOTO, REPO

WHEELS = sorted((REPO / "build" / "wheel").glob("libdeclip-*.whl"), key=lambda p: p.stat().st_mtime)
COMPILERS = ("g++", "c++", "gcc", "cc", "clang", "clang++", "cmake", "make", "ninja")


def test_the_wheel_is_manylinux() -> None:
    if not WHEELS:
        pytest.skip("no wheel in build/wheel (make wheel)")
    assert "manylinux" in WHEELS[-1].name, WHEELS[-1].name  # repaired: installable beyond this machine


@pytest.mark.skipif(not WHEELS, reason="no wheel in build/wheel (make wheel)")
def test_the_wheel_installs_into_a_clean_environment_and_declips_the_demo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # Only the new environment's own commands on PATH: no compiler, no CMake, no make.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(venv / "bin")
    assert not [c for c in COMPILERS if shutil.which(c, path=env["PATH"])]
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                           "--only-binary", ":all:", str(WHEELS[-1])], capture_output=True, text=True,
                          timeout=1200, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import libdeclip; print(libdeclip.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's files, not this tree's
    out = tmp_path / "demo_declip.png"
    proc = subprocess.run([str(venv / "bin" / "libdeclip"), "declip", str(DEMO_PHOTO), "-o", str(out), "-q",
                           "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    here = tmp_path / "here.png"
    assert cli.main(["declip", str(DEMO_PHOTO), "-o", str(here), "-q", "--device", "cpu"]) == 0
    assert out.read_bytes() == here.read_bytes()  # the same repair as the source tree's
