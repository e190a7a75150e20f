"""Every input the fuzzer (fuzz/, ``make fuzz``) saved in tests/data/fuzz_crashes/ is run again, in a
child process as the fuzzer ran it (``python -m fuzz.replay``): ``read_image`` raises a
:class:`~libdeclip.DeclipError` or returns a valid image, ``libdeclip info`` and ``libdeclip declip``
(with the options in the file's JSON) exit with 0 or 1 and one ``error:`` line naming the file, a
declip output reads back and keeps the contract, the input is left as it was; and the interpreter
neither crashes nor hangs.

A finding not fixed yet is listed in OPEN with what fails: its test is a strict xfail, so fixing it
makes the test fail until the entry is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CRASHES = REPO / "tests" / "data" / "fuzz_crashes"
CASES = sorted(p for p in CRASHES.glob("*") if p.is_file() and p.suffix not in (".json", ".md"))

#: Saved inputs whose bug is still open: file name -> the function that fails and how.
OPEN: dict[str, str] = {}


def _case(path: Path) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=OPEN[path.name])] if path.name in OPEN else []
    return pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", [_case(p) for p in CASES])
def test_saved_fuzz_input(path: Path) -> None:
    # the fuzzer's pixel limit (fuzz/README.md); replay bounds its own address space (3 GiB)
    env = dict(os.environ, LIBDECLIP_MAX_PIXELS="4000000")
    proc = subprocess.run([sys.executable, "-m", "fuzz.replay", "--json", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), f"the interpreter ended with {proc.returncode}:\n{proc.stderr[-3000:]}"
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    bugs = [r for r in answer["results"] if r["status"] == "bug"]
    assert not bugs, "\n".join(f"{b['target']} {b['kind']} {b.get('type', '')}: {b.get('message', '')}\n"
                               f"{b.get('traceback', '')}" for b in bugs)


def test_open_findings_are_saved_inputs() -> None:
    names = {p.name for p in CASES}
    assert not set(OPEN) - names, f"OPEN names files that are not in {CRASHES}: {set(OPEN) - names}"


@pytest.mark.parametrize("shape", [(5, 3, 3), (48, 64, 3), (48, 64, 4)],
                         ids=["5x3-rgb", "48x64-rgb", "48x64-rgba"])
def test_planar_tiff_reads_as_interleaved(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """A planar TIFF (PlanarConfiguration 2, "separate": tifffile gives C x H x W) reads as H x W x C.
    Found while making the fuzzer's seeds (fuzz/seeds.py: gen-rgba8-planar-tif): a 5 x 3 RGB image
    read as 3 x 5 x 3 garbage, a 48 x 64 one was refused as "64 samples per pixel"."""
    import numpy as np
    import tifffile

    import libdeclip

    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "planar.tif"
    extra = {"extrasamples": ["unassalpha"]} if shape[2] == 4 else {}
    tifffile.imwrite(path, np.moveaxis(pixels, 2, 0), photometric="rgb", planarconfig="separate", **extra)
    np.testing.assert_array_equal(libdeclip.read_image(path).pixels, pixels)
