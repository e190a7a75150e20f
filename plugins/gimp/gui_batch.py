"""Helpers for batch scripts that drive GIMP's real window under Xvfb (the undo test and the
screenshot tool): their text is put in front of the script GIMP's python-fu-eval runs."""

import subprocess
import time


def image_window():
    """The X window id of GIMP's image window (not the welcome dialog), once it is mapped."""
    for _ in range(60):
        ids = subprocess.run(["xdotool", "search", "--name", "GIMP$"], capture_output=True, text=True).stdout
        for wid in ids.split():
            name = subprocess.run(["xdotool", "getwindowname", wid], capture_output=True, text=True).stdout
            if "Welcome" not in name:
                return wid
        time.sleep(0.5)
    raise RuntimeError("no image window")
