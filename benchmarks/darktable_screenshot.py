"""A screenshot of the darktable script in darktable's real lighttable, for the README.

    .venv/bin/python -m benchmarks.darktable_screenshot [OUT.png]

darktable (4.2 from Debian: ``make darktable``) runs its GUI on an Xvfb screen of its own with the
script loaded. A real Bayer DNG from ``../shared/data/raw`` with its clipping lowered (as the RAW
benchmark makes its pairs) is imported and given a rating, the panel's **declip** button is pressed
on it, as a click does, and the screen is grabbed (Pillow's X11 grab) once the repaired DNG is
imported, grouped with the original and its thumbnail drawn: the lighttable with both images and
the libdeclip panel. Default output: ``docs/images/darktable-lighttable.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageGrab

from benchmarks._darktable import gui_harness, lua_string
from benchmarks.raw_quality import RAW_DIR, _write_pair

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "plugins" / "darktable" / "libdeclip.lua"
COMMAND = Path(sys.executable).parent / "libdeclip"
OUT = REPO / "docs" / "images" / "darktable-lighttable.png"
SCREEN = (1440, 900)

# The harness runs in the GUI's Lua thread; it waits (dt.control.sleep lets the GUI draw) until the
# screenshot is taken, then quits darktable.
_HARNESS = """
  local script = dofile({script})
  local M = script.libdeclip
  dt.preferences.write("libdeclip", "command", "string", {command})
  dt.preferences.write("libdeclip", "device", "enum", "cpu")
  local image = dt.database.import({raw})
  image.rating = 3
  dt.gui.selection({{image}})
  M.button.clicked_callback(M.button)
  local members = image:get_group_members()
  out:write("members ", #members, "\\n")
  dt.gui.selection(members)
  dt.gui.libs["libdeclip"].expanded = true
  dt.control.sleep(8000)  -- the new thumbnail is drawn
  out:write("ready\\n")
  out:flush()
  for _ = 1, 150 do
    local shot = io.open({shot}, "r")
    if shot then shot:close() break end
    dt.control.sleep(200)
  end
"""

# darktable's own settings for the shot: its window filling the screen, groups shown expanded
# (every member drawn, framed together), two thumbnails a row.
_DARKTABLERC = """ui_last/window_x=0
ui_last/window_y=0
ui_last/window_w={w}
ui_last/window_h={h}
ui_last/maximized=FALSE
ui_last/grouping=FALSE
plugins/lighttable/images_in_row=2
ui_last/view=lighttable
"""


def unavailable() -> str | None:
    for tool in ("darktable", "Xvfb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make darktable)"
    if not RAW_DIR.is_dir():
        return f"{RAW_DIR} is absent"
    return None


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number between :90 and :199")


def make_screenshot(out: Path = OUT) -> Path:
    with tempfile.TemporaryDirectory(prefix="libdeclip-dtshot-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        photos.mkdir()
        clipped, _truth = _write_pair(RAW_DIR / "imageio_Blackmagic.dng", None, None, 0.5, photos)
        raw = clipped.rename(photos / "blackmagic.dng")
        config = work / "config"
        config.mkdir()
        (config / "darktablerc").write_text(_DARKTABLERC.format(w=SCREEN[0], h=SCREEN[1]))
        result, shot = work / "result.txt", work / "shot"
        harness = work / "harness.lua"
        harness.write_text(gui_harness(str(result), _HARNESS.format(
            script=lua_string(str(SCRIPT)), command=lua_string(str(COMMAND)), raw=lua_string(str(raw)),
            shot=lua_string(str(shot)))))
        display = f":{_free_display()}"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten",
                                 "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        darktable = None
        try:
            deadline = time.monotonic() + 10
            while not Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("Xvfb did not start")
                time.sleep(0.1)
            log = open(work / "darktable.log", "w")  # noqa: SIM115 (closed with the process below)
            darktable = subprocess.Popen(
                ["darktable", "--configdir", str(config), "--cachedir", str(work / "cache"),
                 "--library", ":memory:", "--luacmd", f'dofile("{harness}")'],
                env={**os.environ, "DISPLAY": display}, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 240
            while "ready" not in (result.read_text() if result.exists() else ""):
                if time.monotonic() > deadline or darktable.poll() is not None:
                    said = (work / "darktable.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"darktable did not get to the screenshot: "
                                       f"{result.read_text() if result.exists() else ''}{said}")
                time.sleep(0.2)
            screen = ImageGrab.grab(xdisplay=display).convert("RGB")
            shot.touch()
            darktable.wait(timeout=60)
            text = result.read_text()
            if not text.endswith("OK\n") or "members 2" not in text:
                raise RuntimeError(f"the button did not give a grouped repair: {text}")
        finally:
            if darktable is not None and darktable.poll() is None:
                darktable.kill()
            xvfb.kill()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp.png")
        screen.save(tmp_out, optimize=True)
        Image.open(tmp_out).verify()
        os.replace(tmp_out, out)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    reason = unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        out = make_screenshot(Path(argv[0]) if argv else OUT)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
