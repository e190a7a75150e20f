"""Screenshots of the plug-in in GIMP's real window, for the README (GIMP 3 chroot, Xvfb).

    python plugins/gimp/screenshots.py [--out docs/images]

Opens the demo photo in GIMP 3 (plugins/gimp/chroot.sh; run `make gimp-chroot` first), then
captures the Filters > Enhance menu with the entry, the plug-in's dialog, and the window before
and after declipping. xdotool drives the keyboard; xwd grabs the screen, converted here to PNG.
GTK draws its popup menus black in Xvfb unless GDK_GL=disable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CHROOT = Path("/opt/trixie")
PLUGIN = REPO / "plugins" / "gimp" / "libdeclip-declip"
PHOTO = REPO / "examples" / "night_lamps.png"
GUI_HELPERS = (Path(__file__).resolve().parent / "gui_batch.py").read_text()  # image_window()

_BATCH = """
import json, subprocess, time
from gi.repository import Gimp, Gio
args = json.loads({args!r})
def sh(*argv):
    subprocess.run(argv, check=True)
def shot(name):
    time.sleep(1.0)
    sh("xwd", "-root", "-silent", "-out", args["dir"] + "/" + name + ".xwd")
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(args["photo"]))
Gimp.Display.new(img)
Gimp.displays_flush()
win = image_window()
sh("xdotool", "windowfocus", "--sync", win)
shot("before")
# the dialog: a helper process photographs it, then cancels it
subprocess.Popen(["sh", "-c", "sleep 6; xwd -root -silent -out " + args["dir"] + "/dialog.xwd; "
                  "w=$(xdotool search --name '^Declip' | head -n 1); "
                  "xdotool windowfocus --sync $w; xdotool key Escape"])
proc = Gimp.get_pdb().lookup_procedure("plug-in-libdeclip-declip")
layer = img.get_selected_drawables()[0]
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", img)
cfg.set_core_object_array("drawables", [layer])
print("dialog:", proc.run(cfg).index(0).value_nick, flush=True)
cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
cfg.set_property("device", "cpu")
print("run:", proc.run(cfg).index(0).value_nick, flush=True)
Gimp.displays_flush()
sh("xdotool", "windowfocus", "--sync", win)
shot("after")
# Filters > Enhance, opened by the menus' mnemonics once this script has ended and GIMP is idle;
# then GIMP is stopped.
import os
subprocess.Popen(["sh", "-c", "sleep 3; xdotool mousemove 1270 790; "
                  "xdotool key alt+r; sleep 1; xdotool key h; sleep 2; "
                  "xwd -root -silent -out " + args["dir"] + "/menu.xwd; kill " + str(os.getppid())],
                 start_new_session=True)
"""


def read_xwd(path: Path) -> np.ndarray:
    """A 24/32-bit TrueColor XWD screen dump as H x W x 3 uint8."""
    data = path.read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, _, _, depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = fields[7], fields[11], fields[12], fields[19]
    if bits_per_pixel not in (24, 32) or depth not in (24, 32):
        raise ValueError(f"{path}: {bits_per_pixel} bits per pixel, depth {depth}: not supported")
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data[start : start + height * bytes_per_line], np.uint8)
    rows = rows.reshape(height, bytes_per_line)
    n = bits_per_pixel // 8
    px = rows[:, : width * n].reshape(height, width, n)
    if byte_order == 0:  # LSB first: B G R (x)
        return px[..., [2, 1, 0]]
    return px[..., [n - 3, n - 2, n - 1]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = p.parse_args(argv)
    if not (CHROOT / "usr/bin/gimp-3.0").exists():
        print("error: no GIMP 3 chroot: run `make gimp-chroot`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="libdeclip-shots-", dir=CHROOT / "tmp"))
    try:
        inside = "/" + str(work.relative_to(CHROOT))
        profile = work / "profile"
        shutil.copytree(PLUGIN, profile / "plug-ins" / PLUGIN.name)
        (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
        shutil.copy(PHOTO, work / PHOTO.name)
        args_json = json.dumps({"photo": f"{inside}/{PHOTO.name}", "dir": inside})
        batch = GUI_HELPERS + _BATCH.format(args=args_json)
        site = sorted((CHROOT / "opt/libdeclip-venv/lib").glob("python3*/site-packages"))[-1]
        proc = subprocess.run(
            [str(REPO / "plugins/gimp/chroot.sh"), "run", "env", f"GIMP3_DIRECTORY={inside}/profile",
             "GDK_GL=disable",
             f"PYTHONPATH=/{site.relative_to(CHROOT)}", "timeout", "-k", "5", "120", "xvfb-run", "-a", "-s",
             "-screen 0 1280x800x24", "gimp-3.0", "--no-splash", "--batch-interpreter=python-fu-eval",
             "-b", "-"], input=batch, capture_output=True, text=True,
        )
        print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("dialog", "run"))))
        missing = [n for n in ("before", "menu", "dialog", "after") if not (work / f"{n}.xwd").exists()]
        if missing:
            said = (proc.stdout + proc.stderr)[-3000:]
            print(f"error: no screenshot {missing}; GIMP said:\n{said}", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        shots = {name: read_xwd(work / f"{name}.xwd") for name in ("before", "menu", "dialog", "after")}
        # GIMP's window fills the top left of the screen; the rest is the empty root window
        filled = np.nonzero(shots["before"].any(axis=2))
        window = np.s_[: filled[0].max() + 1, : filled[1].max() + 1]
        for name in ("menu", "dialog"):
            Image.fromarray(shots[name][window]).save(args.out / f"gimp-{name}.png", optimize=True)
        # the canvas: the span of rows and columns where many pixels changed (not the pointer's
        # outline or the layer thumbnail in the dock), with a margin
        changed = (shots["before"].astype(int) - shots["after"]).any(axis=2)
        rows = np.nonzero(changed.sum(axis=1) > 0.2 * changed.sum(axis=1).max())[0]
        cols = np.nonzero(changed.sum(axis=0) > 0.2 * changed.sum(axis=0).max())[0]
        y0, y1 = max(0, rows.min() - 40), rows.max() + 40
        x0, x1 = max(0, cols.min() - 40), cols.max() + 40
        pair = np.concatenate([shots["before"][y0:y1, x0:x1], shots["after"][y0:y1, x0:x1]], axis=1)
        Image.fromarray(pair).save(args.out / "gimp-before-after.png", optimize=True)
        print(f"wrote {args.out}/gimp-menu.png, gimp-dialog.png and gimp-before-after.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
