"""BENCHMARKS.md is rebuilt from the result files (benchmarks/build_md.py), and the speed benchmark
runs end to end (benchmarks/speed.py --quick, on a crop of the demo photo)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import _machine, build_md, speed

RAW = "Camera RAW highlights against ground truth"
TEMPLATE_SECTIONS = re.findall(r"^## (.+)$", build_md.TEMPLATE.read_text(), flags=re.M)

QUALITY_MD = """# Quality benchmark

Protocols and metrics: the docstring of `benchmarks/quality.py`. Seed 20261125; feather 0; CPU.

Made by `python -m benchmarks.quality --limit 2` in 0.1 min.

## Protocol "paper"

### kodak24, 2 photos (paper)

| method | clipped-region PSNR (dB) |
|---|---|
| cross-channel | 24.125 |
"""
MODEL_V2_MD = """# Model v2: {section}

Made by `python -m benchmarks.model_v2 --sections {section}` ({section}: 0.1 min).

| model | region PSNR (dB) |
|---|---|
| v2 | 22.79 |
"""
BATCH_MD = """# libdeclip batch on one machine

Made by `python -m benchmarks.batch`.

| command | seconds |
|---|---|
| batch | 19.3 |
"""
NATIVE_MD = """24 MP 16-bit photo; 2 threads; command: `python -m benchmarks.native`

| stage | native (s) | numpy reference (s) | speed-up | native MP/s |
|---|---|---|---|---|
| clip detection | 0.024 | 0.376 | 15.4x | 983 |
"""
RAW_MD = """RAW pairs: 4 photos; darktable 4.2.1; command: `python -m benchmarks.raw_quality`

**some channel survives** (mean over pairs; pixels: 96,984)

| method | PSNR linear (dB) | PSNR sRGB (dB) | CIEDE2000 |
|---|---|---|---|
| no repair | 23.28 | 24.15 | 9.36 |
"""
SOURCE = "Machine: 16-core Test CPU, 64 GB, Test GPU; command: `python -m benchmarks.speed --skip-50mp`"
SPECKS_MD = "# The speck rule\n\n| set, protocol | N = 0 |\n|---|---|\n| kodak24, paper | 22.86 |\n"
SPEED_MD = f"""### A 24 MP mosaic of real photos, 5% clipped: whole CLI process

{SOURCE.replace("--skip-50mp", "--sections mosaic")}

| file | run | wall (s) | peak RSS (MB) | wall / floor |
|---|---|---|---|---|
| JPEG q92 | decode + encode (floor) | 0.24 | 108 | 1.00 |

### Pipeline (DeclipNet)

{SOURCE}

| case | files | MP | pipeline MP/s |
|---|---|---|---|
| 8-bit JPEG (SingleHDR, real clipping) | 6 | 3.1 | 0.809 |

### Every method

{SOURCE}

| method | device | MP/s | s per MP | peak RSS (MB) |
|---|---|---|---|---|
| biharmonic | CPU | 0.039 | 25.82 | 84 |

### DeclipNet at several tile sizes and thread counts

{SOURCE}

| device | tile (px) | threads | tiles run | MP/s | engine MP/s (run tiles) | peak RSS (MB) |
|---|---|---|---|---|---|---|
| CPU | 1024 | 1 | 4/4 | 0.413 | 0.462 | 731 |

### Cost versus clipped fraction

{SOURCE.replace("--skip-50mp", "--sections fraction")}

| target | clipped pixels | declipnet (CPU) |
|---|---|---|
| 50% | 50.3% | 0.48 |

![time versus clipped fraction](speed_vs_fraction.png)
"""
TRAIN_COST = "threads: 2; batch 8 x 224x224\ngenerator step (width 32, MSE only): 2.07 s\n"


def _png(path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_build_md_fills_every_section_from_the_results(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for name, text in [("quality.md", QUALITY_MD), ("native.md", NATIVE_MD), ("raw_quality.md", RAW_MD),
                       ("speed.md", SPEED_MD), ("train_cost.txt", TRAIN_COST),
                       ("machine.md", "2-core Test EPYC, 24 GB, no GPU; recorded 2026-01-01"),
                       ("model_v2_quality.md", MODEL_V2_MD.format(section="quality")),
                       ("model_v2_candidates.md", MODEL_V2_MD.format(section="candidates")),
                       ("model_v2_speed.md", MODEL_V2_MD.format(section="speed")),
                       *((f"model_v3_{section}.md", MODEL_V2_MD.format(section=section))
                         for section in ("quality", "real", "speed", "ablation", "detail", "phase")),
                       ("batch.md", BATCH_MD),
                       ("specks.md", SPECKS_MD)]:
        (results / name).write_text(text)
    for name in ["quality_vs_fraction_paper.png", "quality_grid_paper.png", "quality_grid_real.png",
                 "raw_quality_grid.png", "speed_vs_fraction.png", "model_v2_grid_paper.png",
                 "model_v3_grid_paper_kodak24.png"]:
        _png(results / name)

    text, _ = build_md.build(build_md.TEMPLATE, results, tmp_path / "BENCHMARKS.md")

    assert "{{" not in text and "Not measured yet" not in text and "has no part" not in text
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections == TEMPLATE_SECTIONS and len(sections) >= 5
    body = {s: part for s, part in zip(sections, re.split(r"^## .+$", text, flags=re.M)[1:], strict=True)}
    assert "Measured on: 2-core Test EPYC, 24 GB, no GPU; recorded 2026-01-01." in text
    quality = body["Quality"]
    assert "| cross-channel | 24.125 |" in quality  # verbatim, its headings moved below the section's:
    assert '### Quality benchmark' in quality and '#### Protocol "paper"' in quality
    assert "##### kodak24, 2 photos (paper)" in quality
    assert ("*Command: `python -m benchmarks.quality --limit 2` (results in "
            "`benchmarks/results/quality.md`); machine: 2-core Test EPYC") in quality
    for image in ["quality_vs_fraction_paper.png", "quality_grid_paper.png", "quality_grid_real.png"]:
        assert quality.count(f"(benchmarks/results/{image})") == 1, image  # shown once, relative link
    assert "| kodak24, paper | 22.86 |" in quality  # the speck rule's table
    assert "| no repair | 23.28 | 24.15 | 9.36 |" in body[RAW]
    assert "(benchmarks/results/raw_quality_grid.png)" in body[RAW]
    speed_part = body["Speed and memory"]
    for line in SPEED_MD.splitlines():
        if line.startswith("|") or line.startswith("### "):
            assert line in speed_part, line
    # One source line for the three parts of one run, another for the part run on its own.
    assert re.findall(r"^\*Command: `(.*?)` .*; machine: (.*?)\.\*$", speed_part, flags=re.M) == [
        ("python -m benchmarks.speed --sections mosaic", "16-core Test CPU, 64 GB, Test GPU"),
        ("python -m benchmarks.speed --skip-50mp", "16-core Test CPU, 64 GB, Test GPU"),
        ("python -m benchmarks.speed --sections fraction", "16-core Test CPU, 64 GB, Test GPU"),
    ]
    assert "Machine:" not in speed_part
    assert "(benchmarks/results/speed_vs_fraction.png)" in speed_part
    assert "| clip detection | 0.024 | 0.376 | 15.4x | 983 |" in body["Native core against numpy"]
    assert f"```\n{TRAIN_COST.strip()}\n```" in body["Training cost"]
    # A missing result is said to be missing, with the command that writes it.
    (results / "native.md").unlink()
    text, _ = build_md.build(build_md.TEMPLATE, results, tmp_path / "BENCHMARKS.md")
    assert ("*Not measured yet: `benchmarks/results/native.md` is missing; `python -m benchmarks.native` "
            "writes it.*") in text


def test_speed_quick_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks" / "results" / "speed.md"
    assert speed.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    headings = re.findall(r"^### (.*)$", text, flags=re.M)
    assert headings == list(speed.TITLES.values())
    assert text.count(f"; command: `python -m benchmarks.speed --quick --out {out}`") == 5
    methods = re.findall(r"^\| ([\w-]+) \| CPU \| ([\d.]+) \| [\d.]+ \| (\d+) \|$", text, flags=re.M)
    assert [m for m, _, _ in methods] == list(speed.libdeclip.METHODS)
    # MP/s, and a peak RSS in MB that was measured (a Python with numpy imported holds ~30 MB; the
    # native opposed needs little more on the quick run's small crop)
    assert all(float(mps) > 0 and int(rss) > 25 for _, mps, rss in methods)
    assert len(re.findall(r"^\| CPU \| \d+ \| \d \| \d+/\d+ \|", text, flags=re.M)) == 2  # tile sizes
    fraction_rows = re.findall(r"^\| \d+% \| [\d.]+% \|(.*)\|$", text, flags=re.M)
    assert len(fraction_rows) == 2 and all("-" not in row for row in fraction_rows)
    assert ("No GPU on this machine" in text) != _machine.cuda_available()
    plot = out.with_name("speed_vs_fraction.png")
    assert plot.stat().st_size > 1000 and "](speed_vs_fraction.png)" in text
    # A run of one section replaces that part and keeps the others.
    assert speed.main(["--quick", "--sections", "pipeline", "--out", str(out)]) == 0
    again = out.read_text()
    assert re.findall(r"^### (.*)$", again, flags=re.M) == headings
    assert again.split("### Every")[1] == text.split("### Every")[1]
    assert "command: `python -m benchmarks.speed --quick --sections pipeline" in again.split("### Every")[0]
    # The page builds from these results: every part of the speed section is found.
    text, _ = build_md.build(build_md.TEMPLATE, out.parent, tmp_path / "BENCHMARKS.md", machine="test")
    assert "has no part" not in text and "(benchmarks/results/speed_vs_fraction.png)" in text
