"""``libdeclip gimp install`` / ``uninstall`` on a fresh GIMP profile folder (no GIMP needed; the
plug-in running from such an install in real GIMP is in tests/test_gimp.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from libdeclip._plugins import GIMP_PLUGIN, gimp_plugin_source, gimp_profile_dir
from libdeclip.cli import main


def test_gimp_install_and_uninstall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "GIMP" / "3.0"
    assert main(["gimp", "install", "--gimp-dir", str(profile)]) == 0
    target = profile / "plug-ins" / GIMP_PLUGIN
    script = target / f"{GIMP_PLUGIN}.py"
    assert script.is_file() and os.access(script, os.X_OK)  # GIMP skips plug-ins it cannot run
    assert (target / "tiff_exchange.py").is_file()
    recorded = json.loads((target / "libdeclip.json").read_text())["python"]
    assert recorded == str(Path(sys.executable).absolute())
    assert str(target) in capsys.readouterr().out
    # again: replaced in place, with another Python recorded
    assert main(["gimp", "install", "--gimp-dir", str(profile), "--python", sys.executable]) == 0
    assert sorted(p.name for p in (profile / "plug-ins").iterdir()) == [GIMP_PLUGIN]
    assert main(["gimp", "uninstall", "--gimp-dir", str(profile)]) == 0
    assert not target.exists()
    assert main(["gimp", "uninstall", "--gimp-dir", str(profile)]) == 0
    assert "not installed" in capsys.readouterr().out


def test_gimp_install_refuses_what_is_not_ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "plug-ins" / GIMP_PLUGIN
    other.mkdir(parents=True)
    (other / "something.py").write_text("")
    assert main(["gimp", "uninstall", "--gimp-dir", str(tmp_path)]) == 1
    assert "not libdeclip's plug-in" in capsys.readouterr().err and other.exists()
    assert main(["gimp", "install", "--gimp-dir", str(tmp_path), "--python", str(tmp_path / "nope")]) == 1


def test_gimp_profile_dir_honours_gimp3_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path))
    assert gimp_profile_dir() == tmp_path
    monkeypatch.delenv("GIMP3_DIRECTORY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    if sys.platform.startswith("linux"):
        assert gimp_profile_dir() == tmp_path / "cfg" / "GIMP" / "3.0"
    assert (gimp_plugin_source() / f"{GIMP_PLUGIN}.py").is_file()
