"""The darktable Lua script in darktable 5.0 (the Debian trixie chroot of plugins/gimp/chroot.sh;
the host's Debian 12 has 4.2, which tests/test_darktable.py uses).

In darktable 5.0's real GUI (under Xvfb) the panel's action (what its button runs on the
selection) declips a real Bayer DNG with its clipping lowered (as the RAW benchmark does) and a
history (highlight reconstruction, exposure +1 EV): the result must be a DNG equal to ``libdeclip
declip`` of the RAW (the chroot's own libdeclip, the one the script runs), grouped with the
original and given its rating, whose sidecar turns highlight reconstruction off and whose history
carries the original's exposure plus the DNG's headroom. Skipped without the chroot, its darktable
or ../shared/data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks._darktable import gui_harness, lua_string
from libdeclip import read_image
from tests.conftest import SHARED_DATA
from tests.test_darktable import (
    _dtstyle_plugins,
    _exposure_evs,
    _exposure_sidecar,
    _run_in_own_group,
    _xmp_history,
)

REPO = Path(__file__).resolve().parent.parent
CHROOT = Path(os.environ.get("GIMP3_CHROOT", "/opt/trixie"))
CHROOT_SH = REPO / "plugins" / "gimp" / "chroot.sh"
COMMAND = "/opt/libdeclip-venv/bin/libdeclip"


def _unavailable() -> str | None:
    if not (CHROOT / "usr/bin/darktable").exists():
        return f"no darktable in a chroot at {CHROOT} (make gimp-chroot)"
    if not (CHROOT / COMMAND.lstrip("/")).exists():
        return f"libdeclip is not installed in {CHROOT} (make gimp-chroot)"
    if not (SHARED_DATA / "raw").is_dir():
        return "../shared/data absent"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))

_GUI_HARNESS = """
  local script = dofile({script})
  local M = script.libdeclip
  out:write("darktable ", dt.configuration.version, "\\n")
  dt.preferences.write("libdeclip", "command", "string", {command})
  dt.preferences.write("libdeclip", "device", "enum", "cpu")
  local image = dt.database.import({raw})
  image.rating = 2
  -- what the panel's button runs on the selection (in darktable 5.0 an image imported from Lua
  -- is not in the lighttable's collection, so it cannot be selected there)
  local done, failures = M.declip_images({{image}}, M.options(), nil)
  out:write("declipped ", #done, " ", table.concat(failures, "; "), "\\n")
  for _, other in ipairs(image:get_group_members()) do
    if other.id ~= image.id then
      out:write("grouped ", other.path .. "/" .. other.filename, " rating ", other.rating, "\\n")
      local style = dt.styles.create(other, "test-history", "the repaired image's history")
      dt.styles.export(style, {work}, true)
    end
  end
  local scratch = 0  -- the history copy's styles are deleted again
  for i = 1, #dt.styles do
    if dt.styles[i].name:match("^libdeclip%-") then scratch = scratch + 1 end
  end
  out:write("scratch styles ", scratch, "\\n")
"""


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder inside the chroot (the darktable there sees only its own file system)."""
    folder = Path(tempfile.mkdtemp(prefix="libdeclip-dt5-", dir=CHROOT / "tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _inside(path: Path) -> str:
    return "/" + str(path.relative_to(CHROOT))


def test_a_raw_is_repaired_from_its_source_in_darktable_5(work: Path) -> None:
    from benchmarks.raw_quality import _write_pair

    photos = work / "photos"
    photos.mkdir()
    raw, _truth = _write_pair(SHARED_DATA / "raw" / "tinydng_colorchart.dng", None, None, 0.6, photos)
    _exposure_sidecar(raw)
    script = work / "libdeclip.lua"
    shutil.copy(REPO / "plugins" / "darktable" / "libdeclip.lua", script)
    result, harness = work / "result.txt", work / "harness.lua"
    harness.write_text(gui_harness(_inside(result), _GUI_HARNESS.format(
        script=lua_string(_inside(script)), command=lua_string(COMMAND), raw=lua_string(_inside(raw)),
        work=lua_string(_inside(work)))))
    log = _run_in_own_group(
        [str(CHROOT_SH), "run", "xvfb-run", "-a", "darktable", "--configdir", _inside(work / "config"),
         "--cachedir", _inside(work / "cache"), "--library", ":memory:", "--luacmd",
         f'dofile("{_inside(harness)}")'], 300)
    assert result.exists(), log[-3000:]
    text = result.read_text()
    assert text.endswith("OK\n") and "LUA ERROR" not in log, text + log[-3000:]
    assert text.startswith("darktable 5.") and "declipped 1 \n" in text and "scratch styles 0\n" in text, text
    grouped = next((line for line in text.splitlines() if line.startswith("grouped ")), log[-3000:])
    dng = CHROOT / grouped.split()[1].lstrip("/")
    assert dng == photos / f"{raw.stem}_declip.dng" and grouped.endswith("rating 2"), grouped
    # the pixels are those of the chroot's libdeclip (the command the script ran)
    expected = work / "expected.dng"
    proc = _run_in_own_group([str(CHROOT_SH), "run", COMMAND, "declip", _inside(raw), "-o", _inside(expected),
                              "-q", "--device", "cpu"], 300)
    assert expected.is_file(), proc[-2000:]
    np.testing.assert_array_equal(read_image(dng).pixels, read_image(expected).pixels)
    # highlight reconstruction off; the original's exposure (+1 EV) copied, plus the DNG's headroom
    history = work / "test-history.dtstyle"
    sidecar = dng.with_name(dng.name + ".xmp")
    for items in (_xmp_history(sidecar), _dtstyle_plugins(history)):
        assert [on for op, on in items if op == "highlights"] == [False], items
    headroom = read_image(dng).raw.baseline_exposure - read_image(raw).raw.baseline_exposure
    assert headroom >= 1.0
    assert _exposure_evs(history)[-1] == pytest.approx(1.0 + headroom), _exposure_evs(history)
