"""Develop a camera RAW with real darktable's highlight reconstruction, for ground-truth benchmarks.

darktable is driven through ``darktable-cli`` (no display needed). The highlight reconstruction
module's parameters can only be passed through an XMP sidecar, so :func:`develop` writes one whose
sole history item is ``highlights`` (``dt_iop_highlights_params_t`` version 4, valid for darktable
4.2 up to 5.x) and exports a PFM.

The pipeline is kept scene-linear: the ``plugins/darkroom/workflow=none`` preference stops darktable
from auto-applying exposure (+0.7 EV) and filmic, and ``chromatic-adaptation=legacy`` keeps the
camera white balance as shot in the white balance module (no colour-calibration CAT). What runs is
rawprepare, temperature, highlights, demosaic, colorin, colorout (linear Rec.709, D65) and gamma,
which is a no-op for float exports. The absolute scale is darktable's (about 0.78 x rawpy's linear
16-bit output / 65535 on the test DNG); values above 1 survive. The modules that ran are read from
darktable's ``-d params`` log and checked.

Caveat (darktable 4.2.1): about one run in five differs from the others by up to ~2e-4 on a few
dozen pixels within ~10 px of the right image edge, with any thread count; otherwise runs are
bit-identical.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HIGHLIGHT_MODES: tuple[str, ...] = ("clip", "lch", "inpaint", "laplacian", "segments", "opposed")
"""Modes of darktable 4.2's highlight reconstruction; "inpaint" is "reconstruct color"."""

_MODE_IDS = {name: index for index, name in enumerate(HIGHLIGHT_MODES)}
_TIMEOUT_S = 300
# Modules that would make the output non-linear or rescale it; none may reach the export pipe.
_TONE_MODULES = (
    "filmicrgb",
    "filmic",
    "sigmoid",
    "basecurve",
    "exposure",
    "tonecurve",
    "rgbcurve",
    "channelmixerrgb",
    "toneequal",
    "colorbalancergb",
)


def _cli() -> str | None:
    return shutil.which("darktable-cli")


def _env(tmpdir: Path) -> dict[str, str]:
    """Environment that keeps darktable out of the user's ~/.config and ~/.cache."""
    return {**os.environ, "XDG_CONFIG_HOME": str(tmpdir / "xdg"), "XDG_CACHE_HOME": str(tmpdir / "xdg")}


def darktable_version() -> str | None:
    """Return darktable's version (e.g. ``"4.2.1"``), or None when ``darktable-cli`` is not installed."""
    cli = _cli()
    if cli is None:
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="dt_version_") as tmp:
            proc = subprocess.run(
                [cli, "--version"], capture_output=True, text=True, timeout=60, env=_env(Path(tmp))
            )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"darktable-cli\s+(\S+)", proc.stdout + proc.stderr)
    return match.group(1) if match else None


def _highlights_params(mode: str, clip_threshold: float) -> str:
    """Hex blob of ``dt_iop_highlights_params_t`` v4 with darktable's defaults except mode and clip."""
    fields = (
        _MODE_IDS[mode],  # mode
        1.0,  # blendL (lch only, unused)
        0.0,  # blendC
        0.0,  # strength (unused)
        clip_threshold,  # clip
        0.0,  # noise_level (segments / opposed)
        30,  # iterations (laplacian)
        6,  # scales: darktable's default diameter (256 px in 4.2, 128 px later; laplacian)
        0.4,  # candidating (segments)
        2.0,  # combine (segments)
        0,  # recovery: off (so segments without recovery equals opposed)
        0.0,  # solid_color (laplacian)
    )
    return struct.pack("<ifffffiiffif", *fields).hex()


def _sidecar(mode: str, clip_threshold: float, enabled: bool = True) -> str:
    """An XMP sidecar whose only history item is the highlight reconstruction module (switched
    off with ``enabled=False``, as the darktable plug-in's sidecar of a declipped DNG does)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/"
    darktable:xmp_version="5" darktable:auto_presets_applied="0" darktable:history_end="1">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="highlights" darktable:enabled="{int(enabled)}"
      darktable:modversion="4" darktable:params="{_highlights_params(mode, clip_threshold)}"
      darktable:multi_name="" darktable:multi_priority="0"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _read_pfm(path: Path) -> np.ndarray:
    """Read a colour PFM into a top-to-bottom float32 H x W x 3 array."""
    data = path.read_bytes()
    parts = data.split(b"\n", 3)
    if len(parts) < 4 or parts[0].strip() != b"PF":
        raise RuntimeError(f"{path} is not a colour PFM")
    width, height = (int(v) for v in parts[1].split())
    scale = float(parts[2])
    dtype = "<f4" if scale < 0 else ">f4"
    pixels = np.frombuffer(parts[3], dtype=dtype, count=width * height * 3)
    # PFM stores the bottom row first.
    return pixels.reshape(height, width, 3)[::-1].astype(np.float32)


def develop(raw_path: Path, mode: str, workdir: Path, clip_threshold: float = 1.0,
            highlights: bool = True) -> np.ndarray:
    """Develop ``raw_path`` with darktable's highlight reconstruction ``mode`` (or, with
    ``highlights=False``, with the module switched off: how the darktable plug-in's DNG of a
    declipped RAW is developed).

    Returns a scene-linear float32 H x W x 3 array in linear Rec.709 / sRGB primaries (D65), camera
    white balance as shot, full sensor size with the geometry of ``rawpy``'s ``postprocess()`` (the
    raw file's default crop and orientation). ``clip_threshold`` is the module's clipping threshold
    (1.0 = the raw white point; lower values force clipping). Each call uses a fresh temporary
    darktable config and cache under ``workdir`` (removed afterwards) and an in-memory library, so
    results do not depend on earlier runs. Raises ValueError for an unknown mode and RuntimeError
    when darktable is missing, fails, times out or runs a tone-mapping module.
    """
    if mode not in _MODE_IDS:
        raise ValueError(f"unknown highlight mode {mode!r}; expected one of {HIGHLIGHT_MODES}")
    cli = _cli()
    if cli is None:
        raise RuntimeError("darktable-cli is not installed (apt-get install darktable)")
    raw_path = Path(raw_path).resolve()
    if not raw_path.is_file():
        raise FileNotFoundError(raw_path)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"dt_{mode}_", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        sidecar = tmpdir / "highlights.xmp"
        sidecar.write_text(_sidecar(mode, float(clip_threshold), highlights))
        out = tmpdir / "out.pfm"
        cmd = [
            cli, str(raw_path), str(sidecar), str(out),
            "--icc-type", "LIN_REC709", "--hq", "true", "--upscale", "false",
            "--apply-custom-presets", "false",
            "--core",
            "--configdir", str(tmpdir / "config"), "--cachedir", str(tmpdir / "cache"),
            "--library", ":memory:", "--disable-opencl",
            "--conf", "plugins/darkroom/workflow=none",
            "--conf", "plugins/darkroom/chromatic-adaptation=legacy",
            "-d", "params",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=tmpdir, env=_env(tmpdir)
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"darktable-cli timed out after {_TIMEOUT_S} s on {raw_path}") from exc
        log = proc.stdout + proc.stderr
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(log.strip().splitlines()[-20:])
            raise RuntimeError(f"darktable-cli failed (exit {proc.returncode}) on {raw_path}:\n{tail}")
        committed = set(re.findall(r"commit for (\w+) in pipe", log))
        tone = committed.intersection(_TONE_MODULES)
        if tone:
            raise RuntimeError(f"darktable ran non-linear modules {sorted(tone)}; output is not scene-linear")
        if highlights and committed and "highlights" not in committed:  # an empty set: the log format changed
            raise RuntimeError("darktable did not run the highlight reconstruction module")
        return _read_pfm(out)


def lua_string(s: str) -> str:
    """A Lua long-bracket literal: taken verbatim, quotes, backslashes, $ and all."""
    if "]==]" in s:
        raise ValueError(f"{s!r} holds ]==], which a Lua long-bracket literal cannot")
    return "[==[" + s + "]==]"


def gui_harness(result: str, body: str) -> str:
    """A Lua program for ``darktable --luacmd 'dofile(...)'`` in darktable's GUI: ``body`` (Lua; it
    may write lines to ``out``) run under ``pcall``, then ``OK`` or ``FAIL`` and the error written
    to the file ``result`` and darktable quit. darktable exits 0 even on a Lua error and has no
    quit call in its Lua API, hence the result file and the quit action."""
    return (
        'local dt = require "darktable"\n'
        f'local out = io.open({lua_string(result)}, "w")\n'
        "local ok, err = pcall(function()\n"
        f"{body.rstrip()}\n"
        "end)\n"
        'out:write(ok and "OK\\n" or ("FAIL " .. tostring(err) .. "\\n"))\n'
        "out:close()\n"
        'dt.gui.action("global/quit", 0, "", "", 1.0)\n'
    )
