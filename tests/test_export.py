from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import libdeclip
from libdeclip.engine import MODELS_DIR, OnnxEngine
from tests.conftest import DEMO_PHOTO, tiny_config_text
from training.config import load_config
from training.export import export, fold_batch_norm, main
from training.train import Trainer, generator_from_checkpoint, load_checkpoint

REQUIRED_METADATA = {
    "contract", "name", "version", "input_name", "output_name", "input_channels", "layout",
    "normalisation", "spatial_multiple", "receptive_field_radius", "training_data",
    "training_steps", "training_schedule", "checkpoint_sha256",
}


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, photo_folder: Path) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    cfg = tmp / "c.toml"
    cfg.write_text(tiny_config_text(photo_folder, tmp / "run", 3))
    Trainer(load_config(cfg)).run()
    return tmp / "run" / "checkpoint.pt"


def test_fold_batch_norm_matches_eval_model(trained_checkpoint: Path) -> None:
    model = generator_from_checkpoint(load_checkpoint(trained_checkpoint)).eval()
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)


def test_export_contract_and_parity(trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    info = export(trained_checkpoint, out)
    assert info["parity_max_abs_diff"] <= 1e-4
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert REQUIRED_METADATA <= set(meta)
    assert meta["training_steps"] == "3" and len(meta["checkpoint_sha256"]) == 64
    assert int(meta["receptive_field_radius"]) == 37
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    # dynamic N, H, W and independent parity on another size
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, 40, 72), dtype=np.float32)
    model = generator_from_checkpoint(load_checkpoint(trained_checkpoint)).eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = sess.run(["residual"], {"clipped": x})[0]
    assert got.shape == (2, 3, 40, 72)
    assert np.abs(got - ref).max() <= 1e-4
    # the runtime accepts it
    assert OnnxEngine(out).info.training_steps == 3


def test_export_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none.pt"), str(tmp_path / "x.onnx")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main([str(junk), str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_shipped_model_contract() -> None:
    v1 = MODELS_DIR / "declipnet-v1.onnx"
    assert v1.stat().st_size < 20 * 1024 * 1024
    info = libdeclip.model_info("declipnet-v1")
    assert info.name == "declipnet" and info.version == "1"
    assert info.receptive_field_radius > 0 and info.spatial_multiple == 8
    proto = onnx.load(str(v1))
    assert REQUIRED_METADATA <= {p.key for p in proto.metadata_props}
    assert DEMO_PHOTO.exists()
