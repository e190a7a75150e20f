"""The built wheel, installed into a clean virtual environment, declips the demo photo.

``make test`` builds the wheel first (``make wheel``: ``build/wheel/``); the virtual environment
gets only the wheel and its dependencies from the package index (pip's cache makes that quick), so
the test sees what a user's ``pip install`` gives: the native core, the models and the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from libdeclip import cli
from tests.conftest import DEMO_PHOTO, REPO

WHEELS = sorted((REPO / "build" / "wheel").glob("libdeclip-*.whl"), key=lambda p: p.stat().st_mtime)


@pytest.mark.skipif(not WHEELS, reason="no wheel in build/wheel (make wheel)")
def test_the_wheel_installs_into_a_clean_environment_and_declips_the_demo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                           str(WHEELS[-1])], capture_output=True, text=True, timeout=1200, env=env)
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
