"""libdeclip.outputs: output names, checked before anything is read."""

from __future__ import annotations

import os
from pathlib import Path

from libdeclip.outputs import OutputOptions, expand_inputs, output_suffix, plan_outputs


def test_names_follow_the_options(tmp_path: Path) -> None:
    a, raw = tmp_path / "a.png", tmp_path / "b.NEF"
    a.write_bytes(b"x")
    raw.write_bytes(b"x")
    plan = plan_outputs([a, raw], OutputOptions(), single=False)
    assert plan[a].dst == tmp_path / "a_declip.png" and plan[a].problem is None
    assert plan[raw].dst == tmp_path / "b_declip.dng"
    assert output_suffix(raw, "tiff16") == ".tif" and output_suffix(a, "tiff16") == ".png"
    out = tmp_path / "out"
    plan = plan_outputs([a], OutputOptions(out_dir=out, suffix="_x"), single=True)
    assert plan[a].dst == out / "a_x.png"


def test_an_input_is_never_an_output(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "a_declip.png"
    a.write_bytes(b"x")
    b.write_bytes(b"y")  # b is an input and a's default output
    plan = plan_outputs([a, b], OutputOptions(), single=False)
    assert plan[a].problem is not None and "another input" in plan[a].problem
    link = tmp_path / "link.png"
    os.symlink(a, link)
    plan = plan_outputs([a], OutputOptions(output=link), single=True)
    assert plan[a].problem is not None and "overwrite the input" in plan[a].problem
    plan = plan_outputs([a], OutputOptions(in_place=True), single=True)
    assert plan[a].problem is None and plan[a].replaces_input


def test_folders_give_their_images_once(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.png", "notes.txt", "c.DNG"):
        (tmp_path / name).write_bytes(b"x")
    files = expand_inputs([str(tmp_path), str(tmp_path / "a.png")])
    assert [f.name for f in files] == ["a.png", "b.jpg", "c.DNG"]
