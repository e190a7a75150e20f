"""libdeclip.workflow: files in, repaired files out, with one callback per file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

import libdeclip
from libdeclip import RepairOptions, read_image
from libdeclip.engine import timing
from libdeclip.outputs import OutputOptions
from libdeclip.workflow import NOTES, declip_files


def test_declip_files_reports_each_file_once_and_writes_what_declip_gives(tmp_path: Path,
                                                                          demo_rgb: np.ndarray) -> None:
    good, broken = tmp_path / "good.png", tmp_path / "broken.png"
    PILImage.fromarray(demo_rgb[:120, :160]).save(good)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    seen: list[tuple[str, str | None, str | None]] = []
    options = RepairOptions(method="cross-channel")
    summary = declip_files([good, broken], options, OutputOptions(out_dir=tmp_path / "out"),
                           on_file=lambda src, msg, err: seen.append((src.name, msg, err and str(err))))
    assert sorted(name for name, _, _ in seen) == ["broken.png", "good.png"]
    assert summary.total == 2 and summary.failures == [str(broken)] and summary.done == 1
    written = read_image(tmp_path / "out" / "good_declip.png").pixels
    assert np.array_equal(written, libdeclip.declip(demo_rgb[:120, :160], options))
    error = next(err for name, _, err in seen if name == "broken.png")
    assert error is not None and str(broken) in error and "\n" not in error


def test_warnings_become_the_notes_of_their_file() -> None:
    with NOTES.collect() as notes:
        warnings.warn("a profile was assumed", UserWarning, stacklevel=1)
    assert notes == ["a profile was assumed"]


def test_the_timing_hook_counts_the_models_windows(demo_rgb: np.ndarray) -> None:
    with timing() as model:
        libdeclip.declip(demo_rgb, device="cpu")
    assert model.calls >= 1 and model.tiles >= model.calls and model.seconds > 0
    with timing() as idle:
        libdeclip.declip(demo_rgb, method="cross-channel")
    assert (idle.calls, idle.tiles, idle.seconds) == (0, 0, 0.0)
