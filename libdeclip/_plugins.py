"""Installing the editor plug-ins shipped with libdeclip (``libdeclip gimp install``).

The GIMP 3 plug-in is a folder, ``libdeclip-declip``, copied into the user's GIMP plug-in folder.
Beside it goes ``libdeclip.json`` with the Python that has libdeclip: the plug-in runs that
Python's ``libdeclip`` command when GIMP's own Python cannot import the library (Windows, macOS).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from libdeclip.errors import DeclipError

GIMP_PLUGIN = "libdeclip-declip"
_PACKAGE = Path(__file__).resolve().parent


def gimp_plugin_source() -> Path:
    """The plug-in's folder: inside the installed package (wheels), or in the source checkout."""
    installed = _PACKAGE / "_plugins" / "gimp" / GIMP_PLUGIN
    checkout = _PACKAGE.parent / "plugins" / "gimp" / GIMP_PLUGIN
    for candidate in (installed, checkout):
        if (candidate / f"{GIMP_PLUGIN}.py").is_file():
            return candidate
    raise DeclipError("the GIMP plug-in's files are missing from this libdeclip installation")


def gimp_profile_dir() -> Path:
    """GIMP 3.0's user folder: $GIMP3_DIRECTORY, else the platform's default."""
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "GIMP" / "3.0"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "GIMP" / "3.0"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "GIMP" / "3.0"


def install_gimp(profile: Path | None = None, python: str | None = None) -> Path:
    """Copy the plug-in into ``profile``/plug-ins and record ``python`` (default: this one)."""
    source = gimp_plugin_source()
    target = (profile or gimp_profile_dir()) / "plug-ins" / GIMP_PLUGIN
    python = python or sys.executable
    if not Path(python).is_file():
        raise DeclipError(f"{python}: no such Python")
    staging = target.with_name(f".{GIMP_PLUGIN}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "libdeclip.json"))
    os.chmod(staging / f"{GIMP_PLUGIN}.py", 0o755)  # GIMP runs only executable plug-ins
    settings = {"python": str(Path(python).absolute())}
    (staging / "libdeclip.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        _check_ours(target)
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def uninstall_gimp(profile: Path | None = None) -> Path | None:
    """Remove the plug-in; returns the folder removed, or None when it was not installed."""
    target = (profile or gimp_profile_dir()) / "plug-ins" / GIMP_PLUGIN
    if not target.exists():
        return None
    _check_ours(target)
    shutil.rmtree(target)
    return target


def _check_ours(target: Path) -> None:
    if not (target / f"{GIMP_PLUGIN}.py").is_file():
        raise DeclipError(f"{target} exists but is not libdeclip's plug-in; remove it yourself")
