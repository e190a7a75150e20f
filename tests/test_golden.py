"""Golden outputs: the bytes of every CLI output over the test photos, the real RAW files and the
bad-input corpus (what is refused, by exit status and message; what is read, by its output), for
every method and several options, pinned by their sha256.

They were recorded before the modules were rearranged (issue #20) and pin that a change meant to
move code leaves every output as it was. A change that means to alter outputs records them anew:

    LIBDECLIP_GOLDEN_UPDATE=1 .venv/bin/python -m pytest -q tests/test_golden.py

and says in its commit why they changed. In the messages the input's path is written ``IN``. Cases
whose input lives in ``../shared`` are skipped without it.

The int8 models' outputs depend on the CPU: ONNX Runtime picks its integer kernels by the
instructions the processor has (AVX2, AVX-512, VNNI), and they round differently. The cases that
run one are recorded per instruction set (``CASE@avx2``, ...); on a CPU none was recorded on they
are skipped, with the command that records them. Float models and classical methods give the same
bytes everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from libdeclip import cli

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "night_lamps.png"
BAD = REPO / "tests" / "data" / "bad"
SHARED = REPO.parent / "shared" / "data"
GOLDEN = REPO / "tests" / "data" / "golden.json"
UPDATE = os.environ.get("LIBDECLIP_GOLDEN_UPDATE") == "1"

METHODS = ("declipnet", "cross-channel", "inpaint-opposed", "biharmonic")
OK_FILES = sorted(p.name for p in BAD.glob("*_ok_*") if not p.name.startswith("model_"))
CORPUS_FILES = sorted(p.name for p in BAD.iterdir()
                       if p.is_file() and "_ok_" not in p.name and p.suffix not in (".py", ".md", ".onnx"))

# (case id, input, output suffix, extra CLI arguments)
CASES: list[tuple[str, Path, str, list[str]]] = []
for _method in METHODS:
    CASES.append((f"demo-{_method}", DEMO, ".png", ["--method", _method]))
CASES += [
    ("demo-v1", DEMO, ".png", ["--model", "declipnet-v1"]),
    ("demo-v2-float", DEMO, ".png", ["--model", "declipnet-v2"]),
    ("demo-v3", DEMO, ".png", ["--model", "declipnet-v3-int8"]),
    ("demo-fit-clamp", DEMO, ".png", ["--fit", "clamp"]),
    ("demo-feather", DEMO, ".png", ["--feather", "6"]),
    ("demo-no-consistency", DEMO, ".png", ["--no-consistency"]),
    ("demo-tile-128", DEMO, ".png", ["--tile-size", "128"]),
    ("demo-opposed-no-consistency", DEMO, ".png", ["--method", "inpaint-opposed", "--no-consistency"]),
    ("demo-to-tiff", DEMO, ".tif", []),
    ("demo-to-jpeg", DEMO, ".jpg", []),
    ("demo-mask-compare", DEMO, ".png", ["--mask", "{out}.mask.png", "--compare", "{out}.compare.png"]),
]
for _name in OK_FILES:
    _suffix = {".dng": ".dng"}.get(Path(_name).suffix, Path(_name).suffix)
    CASES.append((f"ok-{_name}", BAD / _name, _suffix, []))
    CASES.append((f"ok-{_name}-opposed", BAD / _name, _suffix, ["--method", "inpaint-opposed"]))
CASES += [
    ("ok-dng_ok_bayer.dng-tiff16", BAD / "dng_ok_bayer.dng", ".tif", ["--format", "tiff16"]),
    ("ok-dng_ok_bayer.dng-tiff32", BAD / "dng_ok_bayer.dng", ".tif",
     ["--format", "tiff32", "--exposure", "1"]),
    ("ok-dng_ok_bayer.dng-declipnet", BAD / "dng_ok_bayer.dng", ".dng", ["--method", "declipnet"]),
    ("ok-tiff_ok_float32.tif-clamp", BAD / "tiff_ok_float32.tif", ".tif", ["--fit", "clamp"]),
    ("ok-png_ok_rgb16.png-cross", BAD / "png_ok_rgb16.png", ".png", ["--method", "cross-channel"]),
    ("ok-exr_ok_half.exr-cross", BAD / "exr_ok_half.exr", ".exr", ["--method", "cross-channel"]),
]
for _raw in ("photoprism_canon_eos_6d.dng", "rawpy_RAW_KODAK_DC50.KDC", "tinydng_colorchart.dng"):
    CASES.append((f"raw-{_raw}", SHARED / "raw" / _raw, ".dng", []))
    CASES.append((f"raw-{_raw}-opposed-tiff16", SHARED / "raw" / _raw, ".tif",
                   ["--method", "inpaint-opposed", "--format", "tiff16"]))
CASES += [
    ("raw-blackmagic-opposed", SHARED / "raw" / "imageio_Blackmagic.dng", ".dng",
     ["--method", "inpaint-opposed"]),
    ("raw-kodak-declipnet-tiff32", SHARED / "raw" / "rawpy_RAW_KODAK_DC50.KDC", ".tif",
     ["--method", "declipnet", "--format", "tiff32"]),
    ("real-hdrcnn-img_007", SHARED / "clipped" / "hdrcnn" / "img_007.png", ".png", []),
    ("real-hdrcnn-img_007-v3", SHARED / "clipped" / "hdrcnn" / "img_007.png", ".png",
     ["--model", "declipnet-v3-int8"]),
    ("real-hdrcnn-img_007-cross", SHARED / "clipped" / "hdrcnn" / "img_007.png", ".png",
     ["--method", "cross-channel"]),
]


def cpu_kernels() -> str:
    """Which of ONNX Runtime's integer kernel families this CPU runs (from its instruction flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith(("flags", "Features"))), []))
    for family, needs in (("avx512-vnni", "avx512_vnni"), ("avx-vnni", "avx_vnni"), ("avx512", "avx512bw"),
                          ("avx2", "avx2")):
        if needs in flags:
            return family
    return "other"


def runs_int8(extra: list[str]) -> bool:
    """Whether a case's command runs an int8 model: the automatic one (v2-int8 on the CPU) or one
    named so; not a classical method, not a float model."""
    if any(m in extra for m in ("cross-channel", "inpaint-opposed", "biharmonic")):
        return False
    model = extra[extra.index("--model") + 1] if "--model" in extra else "automatic"
    return model == "automatic" or model.endswith("-int8")


def _golden() -> dict[str, str]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}


def _record(case: str, value: str) -> None:
    table = _golden()
    table[case] = value
    GOLDEN.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")


def _check(case: str, value: str, *, per_cpu: bool = False) -> None:
    if per_cpu:
        case = f"{case}@{cpu_kernels()}"
    if UPDATE:
        _record(case, value)
        return
    expected = _golden().get(case)
    if expected is None and per_cpu:
        pytest.skip(f"no golden value for {case} (an int8 model on a CPU with other kernels): "
                    "record it with LIBDECLIP_GOLDEN_UPDATE=1 on such a CPU")
    if expected is None:
        pytest.fail(f"no golden value for {case}: record it (see this module's docstring)")
    assert value == expected, f"{case}: the output changed"


@pytest.mark.parametrize(("case", "src", "suffix", "extra"), CASES, ids=[c[0] for c in CASES])
def test_output_bytes(case: str, src: Path, suffix: str, extra: list[str], tmp_path: Path) -> None:
    if not src.is_file():
        pytest.skip(f"{src} is not here (../shared is absent)")
    out = tmp_path / f"out{suffix}"
    args = [a.format(out=out) for a in extra]
    assert cli.main(["declip", str(src), "-o", str(out), "-q", "--device", "cpu", *args]) == 0
    _check(case, _digest(tmp_path), per_cpu=runs_int8(extra))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):  # the output and any mask or before | after PNG
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = BAD / name
    status = cli.main(["declip", str(src), "--out-dir", str(tmp_path), "-q", "--device", "cpu"])
    said = capsys.readouterr().err.replace(str(src), "IN").replace(str(tmp_path), "OUT").strip()
    _check(f"corpus-{name}", f"{status}: {said}: {_digest(tmp_path)}", per_cpu=status == 0)
