"""model=None ("automatic"): DeclipNet v2 in the precision of the device that runs it, chosen by
the quality benchmark's figures; an explicit choice always wins; the CLI, ``libdeclip models`` and
the report page say which file ran."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image as PILImage

import libdeclip
from libdeclip import Declipper, DeviceFallbackWarning, cli
from libdeclip.engine import AUTOMATIC_MODELS, MODELS_DIR, automatic_model, resolve_model
from tests.conftest import REPO

V1 = MODELS_DIR / "declipnet-v1.onnx"
V2 = MODELS_DIR / "declipnet-v2.onnx"
V2_INT8 = MODELS_DIR / "declipnet-v2-int8.onnx"
V2_FP16 = MODELS_DIR / "declipnet-v2-fp16.onnx"
QUALITY = REPO / "benchmarks" / "results" / "model_v2_quality.md"


def test_automatic_is_v2_by_device_and_an_explicit_name_wins() -> None:
    assert resolve_model(None) == automatic_model("cpu") == V2_INT8
    assert resolve_model(None, "cuda") == automatic_model("cuda") == V2_FP16
    for name, path in [("declipnet-v1", V1), ("declipnet-v2", V2), ("declipnet-v2-int8", V2_INT8)]:
        assert resolve_model(name) == resolve_model(name, "cuda") == path
    assert resolve_model(str(V1), "cuda") == V1
    with pytest.raises(ValueError, match="unknown device kind 'tpu'"):
        automatic_model("tpu")


def _region_psnr(row: str) -> list[float]:
    """The region PSNR of ``row`` in each set/protocol table of the v2 quality benchmark."""
    found = re.findall(rf"^\| {re.escape(row)} \| ([0-9.]+) /", QUALITY.read_text(encoding="utf-8"), re.M)
    return [float(x) for x in found]


def test_the_gpu_precision_follows_the_quality_benchmark() -> None:
    """float16 on CUDA only while the benchmark shows it within 0.1 dB of float32 in every cell
    (and int8 on the CPU within the same 0.1 dB)."""
    v2, fp16, int8 = _region_psnr("v2"), _region_psnr("v2 float16"), _region_psnr("v2 int8")
    assert len(v2) == len(fp16) == len(int8) == 4, "every set/protocol cell of the benchmark"
    fp16_ok = all(abs(a - b) <= 0.1 for a, b in zip(v2, fp16, strict=True))
    assert AUTOMATIC_MODELS["cuda"] == ("declipnet-v2-fp16" if fp16_ok else "declipnet-v2")
    assert all(abs(a - b) <= 0.1 for a, b in zip(v2, int8, strict=True))
    assert AUTOMATIC_MODELS["cpu"] == "declipnet-v2-int8"


def test_automatic_on_the_cpu_runs_v2_int8(demo_rgb: np.ndarray) -> None:
    with Declipper(device="cpu") as session:
        assert session.model_info.path == V2_INT8 and session.model_info.mask_input
    assert libdeclip.model_info().path == V2_INT8
    np.testing.assert_array_equal(libdeclip.declip(demo_rgb, device="cpu"),
                                  libdeclip.declip(demo_rgb, model="declipnet-v2-int8", device="cpu"))


@pytest.mark.parametrize("family", ["declipnet-v2", "declipnet-v3"])
def test_an_int8_model_repairs_as_its_float32_does_on_this_cpu(family: str, demo_rgb: np.ndarray) -> None:
    """The quality benchmark measures int8 on one machine; its kernels differ by CPU (uint8 x int8
    products added in 16 bits saturate on CPUs without VNNI unless the weights have 7 bits), so
    the agreement is checked wherever the tests run. The v2-int8 quantised with 8-bit weights was
    off by 0.079 of the clip range on average here on an AVX2 CPU (0.27 at most)."""
    photo = demo_rgb.astype(np.float32) / 255
    reference = libdeclip.declip(photo, model=family, device="cpu")
    int8 = libdeclip.declip(photo, model=f"{family}-int8", device="cpu")
    repaired = reference != photo
    error = np.abs(int8 - reference)[repaired]
    assert repaired.mean() > 0.01 and error.mean() < 0.02 and error.max() < 0.1, (error.mean(), error.max())


def test_a_gpu_asked_for_without_a_provider_gets_the_cpus_model() -> None:
    with pytest.warns(DeviceFallbackWarning, match="no GPU provider"):
        session = Declipper(device="cuda")
    assert session.device == "cpu" and session.model_info.path == V2_INT8


class _SessionOnAGpu(ort.InferenceSession):
    """A real CPU session that reports the CUDA provider as active (no GPU here): what the engine
    sees when the GPU provider starts."""

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _pretend_cuda(monkeypatch: pytest.MonkeyPatch, starts: bool) -> list[str]:
    opened: list[str] = []
    real = ort.InferenceSession

    def make(path: str, options: Any = None, providers: Any = None) -> Any:
        opened.append(Path(path).name)
        gpu = any(isinstance(p, tuple) and p[0] == "CUDAExecutionProvider" for p in providers or [])
        cls = _SessionOnAGpu if gpu and starts else real
        if gpu and not starts:
            raise RuntimeError("CUDA driver version is insufficient")
        return cls(path, options, providers=["CPUExecutionProvider"])

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: providers)
    monkeypatch.setattr(ort, "InferenceSession", make)
    return opened


def test_automatic_on_cuda_runs_v2_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _pretend_cuda(monkeypatch, starts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeviceFallbackWarning)
        session = Declipper(device="auto")
    assert session.device == "cuda:0" and session.model_info.path == V2_FP16
    assert opened == ["declipnet-v2-fp16.onnx"]
    assert Declipper("declipnet-v2", device="cuda").model_info.path == V2  # the name wins


def test_a_gpu_that_fails_to_start_gets_the_cpus_model(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _pretend_cuda(monkeypatch, starts=False)
    with pytest.warns(DeviceFallbackWarning, match="CUDA driver version is insufficient"):
        session = Declipper(device="cuda")
    assert session.device == "cpu" and session.model_info.path == V2_INT8
    assert opened == ["declipnet-v2-fp16.onnx", "declipnet-v2-int8.onnx"]
    with pytest.warns(DeviceFallbackWarning):
        assert Declipper("declipnet-v1", device="cuda").model_info.path == V1  # the name wins still


def test_the_cli_lists_and_reports_the_model_that_ran(tmp_path: Path, demo_rgb: np.ndarray,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "  cpu: declipnet-v2-int8.onnx\n" in listing
    assert "  cuda, tensorrt: declipnet-v2-fp16.onnx\n" in listing
    assert "  --device auto here: declipnet-v2-int8.onnx (no GPU provider" in listing
    assert ("declipnet-v2-fp16.onnx: declipnet v2, float16, input RGB + clip mask "
            "(automatic on cuda/tensorrt)") in listing
    assert cli.main(["models", "--names"]) == 0
    assert capsys.readouterr().out.split() == libdeclip.shipped_models() == [
        "declipnet-v1", "declipnet-v2", "declipnet-v2-fp16", "declipnet-v2-int8",
        "declipnet-v3", "declipnet-v3-fp16", "declipnet-v3-int8"]
    photo = tmp_path / "in.png"
    PILImage.fromarray(demo_rgb).save(photo)
    outputs = {}
    for choice in ["auto", "declipnet-v2-int8", "declipnet-v1"]:
        outputs[choice] = tmp_path / f"{choice}.png"
        report = tmp_path / f"report-{choice}"
        assert cli.main(["declip", str(photo), "-o", str(outputs[choice]), "-q", "--device", "cpu",
                         "--model", choice, "--report", str(report)]) == 0
        page = (report / "index.html").read_text(encoding="utf-8")
        ran = "declipnet-v2-int8" if choice == "auto" else choice
        assert f"declipnet ({ran})" in page
    pixels = {k: libdeclip.read_image(v).pixels for k, v in outputs.items()}
    np.testing.assert_array_equal(pixels["auto"], pixels["declipnet-v2-int8"])
    assert not np.array_equal(pixels["auto"], pixels["declipnet-v1"])
