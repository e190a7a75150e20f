"""training.int8_layout: the rewritten int8 graph computes the same bytes, on a real photo, and the
shipped int8 models carry the rewrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from libdeclip.engine import MODELS_DIR
from training import int8_layout
from training.export import model_input
from training.models import LiteGenerator
from training.quantize import make_int8


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _unshuffle_transposes(proto: onnx.ModelProto) -> int:
    return sum(n.op_type == "Transpose" and list(int8_layout._attr(n, "perm")) == int8_layout._UNSHUFFLE_PERM
               for n in proto.graph.node)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["residual"], {"clipped": x})[0]


@pytest.fixture(scope="module")
def lite_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small v2-layout generator with random weights (its head too: not the identity)."""
    torch.manual_seed(0)
    model = LiteGenerator(width=16, in_channels=6).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("lite") / "lite.onnx"
    torch.onnx.export(model, (torch.zeros(1, 6, 64, 64),), str(path), input_names=["clipped"],
                      output_names=["residual"], opset_version=17, dynamo=False,
                      dynamic_axes={name: {0: "N", 2: "H", 3: "W"} for name in ("clipped", "residual")})
    return path


def _photo_input(demo_rgb: np.ndarray) -> np.ndarray:
    crop = demo_rgb[:96, :160].astype(np.float32) / 255.0 * 1.3  # a third over the clip level
    return model_input(np.clip(crop, 0.0, 1.0), 6)


def test_rewritten_int8_graph_computes_the_same_bytes(lite_onnx: Path, tmp_path: Path,
                                                      demo_rgb: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    calibration = [{"clipped": rng.uniform(0, 1, (1, 6, 64, 64)).astype(np.float32)} for _ in range(4)]
    plain, fast = tmp_path / "plain.onnx", tmp_path / "fast.onnx"
    make_int8(lite_onnx, plain, calibration, layout=False)
    make_int8(lite_onnx, fast, calibration)
    p, f = onnx.load(str(plain)), onnx.load(str(fast))
    assert _unshuffle_transposes(p) == 1 and "SpaceToDepth" not in _ops(p)
    assert _unshuffle_transposes(f) == 0 and "SpaceToDepth" in _ops(f)
    meta = {m.key: m.value for m in f.metadata_props}
    assert "SpaceToDepth" in meta["int8_layout"] and "padded to a multiple of 16" in meta["int8_layout"]
    # the head's 12 filters padded to 16, the output shuffle between the last Quantize/Dequantize
    assert "Slice" in _ops(f) and _ops(f)[-1] == "DequantizeLinear"
    x = _photo_input(demo_rgb)
    a, b = _run(plain, x), _run(fast, x)
    assert np.count_nonzero(a) > a.size // 2  # the model does something: the comparison means something
    np.testing.assert_array_equal(a, b)


def test_a_rewrite_that_changes_the_output_is_refused(lite_onnx: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    calibration = [{"clipped": rng.uniform(0, 1, (1, 6, 64, 64)).astype(np.float32)} for _ in range(2)]
    plain = tmp_path / "plain.onnx"
    make_int8(lite_onnx, plain, calibration, layout=False)
    # weights left as they are: SpaceToDepth's channel order then feeds the wrong filters
    monkeypatch.setattr(int8_layout._Graph, "put", lambda self, name, value: None)
    with pytest.raises(ValueError, match="does not compute what the original does"):
        int8_layout.rewrite(onnx.load(str(plain)))


@pytest.mark.parametrize("name", ["declipnet-v2-int8", "declipnet-v3-int8"])
def test_shipped_int8_models_carry_the_rewrite(name: str) -> None:
    proto = onnx.load(str(MODELS_DIR / f"{name}.onnx"))
    meta = {m.key: m.value for m in proto.metadata_props}
    assert meta["precision"] == "int8" and "SpaceToDepth" in meta["int8_layout"]
    assert "1 convolution(s) padded" in meta["int8_layout"]  # the head: v2's 12 filters, v3's 3
    assert "SpaceToDepth" in _ops(proto) and _unshuffle_transposes(proto) == 0


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert int8_layout.main([str(tmp_path / "nope.onnx")]) == 2
    assert "model not found" in capsys.readouterr().err
    assert int8_layout.main([str(MODELS_DIR / "declipnet-v2.onnx"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not an int8 model" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
