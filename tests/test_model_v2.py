"""Model v2: the lite generator, camera-like samples, the mask-input contract and the quantised
variants, on the real shipped models and the real demo photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import libdeclip
from libdeclip import Declipper
from libdeclip.engine import MASK_CHANNELS, MODELS_DIR
from libdeclip.mask import DEFAULT_TOLERANCE, clip_masks
from tests.conftest import tiny_config_text
from training.config import load_config
from training.data import ClipSampler, ClipSpec, make_camera_sample, signed_mask
from training.export import export
from training.models import (
    LiteGenerator,
    build_generator,
    conv_macs_per_pixel,
    receptive_field_radius,
    spatial_multiple,
)
from training.train import Trainer, load_checkpoint, parse_overrides

V2 = MODELS_DIR / "declipnet-v2.onnx"
V2_INT8 = MODELS_DIR / "declipnet-v2-int8.onnx"
V2_FP16 = MODELS_DIR / "declipnet-v2-fp16.onnx"


# -- the network -------------------------------------------------------------------------------------


def test_lite_generator_shapes_identity_start_and_multiple() -> None:
    g = build_generator("lite", 8, 6).eval()
    assert isinstance(g, LiteGenerator) and spatial_multiple(g) == 16
    x = torch.rand(2, 6, 48, 80)
    r = g(x)
    assert r.shape == (2, 3, 48, 80)
    assert torch.count_nonzero(r) == 0  # the head starts at zero: the identity
    assert build_generator("lite", 8, 3)(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert not any(isinstance(m, torch.nn.ELU) for m in g.modules())  # ReLU only: int8-friendly


def test_lite_receptive_field_is_measured_exactly() -> None:
    torch.manual_seed(0)
    g = build_generator("lite", 8, 3).double().eval()
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.05)
    radius = receptive_field_radius(g)
    assert radius > 37  # larger than the paper's network
    size, c = 256, 128
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    reached = False
    for dy, dx in [(0, 0), (5, 11), (15, 15)]:
        dist = torch.maximum((yy - c - dy).abs(), (xx - c - dx).abs())
        ref = g(torch.zeros(1, 3, size, size, dtype=torch.float64))[0, :, c + dy, c + dx]
        outside = torch.where(dist > radius, 1.0, 0.0).double().expand(1, 3, size, size)
        assert torch.equal(g(outside)[0, :, c + dy, c + dx], ref)  # nothing beyond the radius counts
        ring = torch.where(dist == radius, 1.0, 0.0).double().expand(1, 3, size, size)
        reached |= not torch.equal(g(ring)[0, :, c + dy, c + dx], ref)
    assert reached  # ... and the radius itself is reached


def test_conv_macs_per_pixel_by_hand() -> None:
    one = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1))
    assert conv_macs_per_pixel(one) == 3 * 9 * 8
    strided = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1))
    assert conv_macs_per_pixel(strided) == 3 * 9 * 4 / 4
    paper, lite = build_generator("paper"), build_generator("lite", 32, 6)
    assert conv_macs_per_pixel(lite) < 0.35 * conv_macs_per_pixel(paper)


# -- training data -----------------------------------------------------------------------------------


def test_camera_samples_follow_their_protocol(demo_rgb: np.ndarray) -> None:
    spec = ClipSpec(camera_probability=1.0, mask_channels=True)  # no JPEG: values only quantised
    rng = np.random.default_rng(3)
    for _ in range(12):
        x, truth, mask = make_camera_sample(demo_rgb, 96, spec, rng)
        assert x.shape == truth.shape == mask.shape == (3, 96, 96)
        assert x.dtype == truth.dtype == mask.dtype == np.float32
        assert set(np.unique(mask)) <= {-1.0, 0.0, 1.0}
        inside = (x > 0.04) & (x < 0.96)
        # within the levels the input is the truth stored as 8 bits (half a code of the range)
        assert np.all(np.abs(x - truth)[inside] <= 0.6 / 255 * 255 / 200 + 1e-6)
        assert np.all(truth[x >= 1.0] >= 1.0 - 0.6 / 200)  # at the high level: the truth is there or beyond
        assert np.all(mask[x >= 1.0] == 1.0)


def test_signed_mask_matches_the_runtime_detection(demo_rgb: np.ndarray) -> None:
    x = np.ascontiguousarray(demo_rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
    low, high = clip_masks(demo_rgb, 0, 255, DEFAULT_TOLERANCE)
    expected = high.astype(np.float32) - low.astype(np.float32)
    np.testing.assert_array_equal(signed_mask(x, DEFAULT_TOLERANCE), expected.transpose(2, 0, 1))


def test_sampler_with_mask_channels_is_a_function_of_step(photo_folder: Path) -> None:
    spec = ClipSpec(quantise=True, camera_probability=0.5, mask_channels=True, jpeg_quality=(80, 95),
                    jpeg_probability=0.5)
    a = ClipSampler(photo_folder, 64, 4, spec, seed=7)
    b = ClipSampler(photo_folder, 64, 4, spec, seed=7)
    x, y = a.batch_at(5)
    assert x.shape == (4, 6, 64, 64) and y.shape == (4, 3, 64, 64)
    x2, y2 = b.batch_at(5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, a.batch_at(6)[0])


# -- training and export ------------------------------------------------------------------------------


def _lite_config(tmp_path: Path, photo_folder: Path, name: str, steps: int, **extra: object) -> Path:
    path = tmp_path / f"{name}.toml"
    values: dict[str, object] = {
        "layout": "lite", "mask_input": True, "camera_probability": 0.5, "workers": 1,
    }
    path.write_text(tiny_config_text(photo_folder, tmp_path / name, steps, **(values | extra)))
    return path


@pytest.fixture(scope="module")
def lite_checkpoint(tmp_path_factory: pytest.TempPathFactory, photo_folder: Path) -> Path:
    tmp = tmp_path_factory.mktemp("lite")
    Trainer(load_config(_lite_config(tmp, photo_folder, "run", 3, crop=32))).run()
    return tmp / "run" / "checkpoint.pt"


def test_lite_training_runs_resumes_and_records_the_data(lite_checkpoint: Path, tmp_path: Path) -> None:
    ck = load_checkpoint(lite_checkpoint)
    assert ck["step"] == 3 and ck["config"]["mask_input"] and ck["config"]["layout"] == "lite"
    assert ck["generator"]["e1.0.0.weight"].shape[1] == 4 * 6  # unshuffled RGB + mask
    record = ck["history"][-1]
    assert record["camera_probability"] == 0.5 and record["mask_input"] is True
    # resuming in the same folder keeps one record for the folder's run
    cfg = load_config(lite_checkpoint.parent.parent / "run.toml", steps=5)
    Trainer(cfg).run()
    history = load_checkpoint(lite_checkpoint)["history"]
    assert [h["steps"] for h in history] == [5]


def test_max_seconds_stops_with_a_checkpoint(tmp_path: Path, photo_folder: Path) -> None:
    cfg = load_config(_lite_config(tmp_path, photo_folder, "timed", 10_000, crop=32), max_seconds=1.0)
    Trainer(cfg).run()
    ck = load_checkpoint(tmp_path / "timed" / "checkpoint.pt")
    assert 0 < ck["step"] < 10_000


def test_set_overrides_are_toml() -> None:
    items = ["workers=4", "camera_stops_over=[0.0, 1.0]", 'data_root="/x y"', "name=plain"]
    assert parse_overrides(items) == {
        "workers": 4, "camera_stops_over": [0.0, 1.0], "data_root": "/x y", "name": "plain",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_mask_model_export_and_runtime(lite_checkpoint: Path, tmp_path: Path, demo_rgb: np.ndarray) -> None:
    out = tmp_path / "lite.onnx"
    info = export(lite_checkpoint, out, version="2-test")
    assert info["parity_max_abs_diff"] <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["input_channels"] == ",".join(MASK_CHANNELS) and meta["spatial_multiple"] == "16"
    assert "mask_encoding" in meta and float(meta["gflop_per_megapixel"]) > 0
    model = libdeclip.model_info(out)
    assert model.mask_input and model.spatial_multiple == 16
    result = libdeclip.declip(demo_rgb, model=out, device="cpu")
    assert result.shape == demo_rgb.shape and result.dtype == demo_rgb.dtype


# -- the shipped v2 and its variants --------------------------------------------------------------------


def test_shipped_v2_contract_and_checksums() -> None:
    info = libdeclip.model_info(V2)
    assert info.version == "2" and info.mask_input
    assert libdeclip.model_info().version == "2"  # the default on the CPU: v2 int8 (see the model card)
    sums = (MODELS_DIR / "SHA256SUMS").read_text()
    for path in (V2, V2_INT8, V2_FP16):
        assert path.name in sums
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["input_channels"] == ",".join(MASK_CHANNELS)
    precision = {p.key: p.value for p in onnx.load(str(V2_INT8)).metadata_props}["precision"]
    assert precision == "int8"
    assert {p.key: p.value for p in onnx.load(str(V2_FP16)).metadata_props}["precision"] == "float16"


def test_v2_tiled_equals_whole(demo_rgb: np.ndarray) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    with (
        Declipper(V2, device="cpu", tile_size=4096) as whole,
        Declipper(V2, device="cpu", tile_size=100) as tiled,
    ):
        assert len(tiled.plan(*image.shape[:2])) > 1  # windows cross the bottom/right edges: mask padding
        a, b = whole.run(image), tiled.run(image)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_v2_mask_planes_come_from_the_run_mask(demo_rgb: np.ndarray) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    low, high = clip_masks(image, 0.0, 1.0, DEFAULT_TOLERANCE)
    clipped = (high | low).any(axis=2)
    ys, xs = np.nonzero(clipped)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    extra = high.copy()  # the same mask, plus a block flagged next to a clipped area
    block = (slice(max(0, y - 30), y - 10), slice(max(0, x - 30), x - 10))
    extra[block] = True
    with Declipper(V2, device="cpu") as d:
        detected = d.run(image)
        given = d.run(image, mask=(low, high))  # the detected mask, handed in: the same result
        widened = d.run(image, mask=(low, extra))
    np.testing.assert_array_equal(detected, given)
    # Pixels clipped under both masks, outside the block: the model's RGB input is the same, only
    # its mask channels differ, and so does what it makes of them.
    both = clipped.copy()
    both[block] = False
    assert not np.array_equal(detected[both], widened[both])


@pytest.mark.parametrize(("variant", "max_codes", "mean_codes"), [(V2_INT8, 8, 0.05), (V2_FP16, 2, 0.01)])
def test_quantised_variants_stay_close_to_float32(
    demo_rgb: np.ndarray, variant: Path, max_codes: int, mean_codes: float
) -> None:
    reference = libdeclip.declip(demo_rgb, model=V2, device="cpu", fit="clamp").astype(int)
    got = libdeclip.declip(demo_rgb, model=variant, device="cpu", fit="clamp")
    low, high = clip_masks(demo_rgb, 0, 255, DEFAULT_TOLERANCE)
    np.testing.assert_array_equal(got[~(high | low)], demo_rgb[~(high | low)])  # unclipped: identical
    diff = np.abs(got.astype(int) - reference)
    assert diff.max() <= max_codes and diff.mean() <= mean_codes, (diff.max(), diff.mean())


# -- choosing a model by name --------------------------------------------------------------------------


def test_models_by_name_in_the_api_and_the_cli(tmp_path: Path, demo_rgb: np.ndarray,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from libdeclip import cli
    from libdeclip.engine import resolve_model

    assert resolve_model("declipnet-v2-int8") == V2_INT8
    assert resolve_model(str(V2)) == V2
    with pytest.raises(libdeclip.ModelError, match="shipped models, by name: declipnet-v1, declipnet-v2"):
        resolve_model("declipnet-v9")
    by_name = libdeclip.declip(demo_rgb, model="declipnet-v2", device="cpu")
    np.testing.assert_array_equal(by_name, libdeclip.declip(demo_rgb, model=V2, device="cpu"))
    photo = tmp_path / "in.png"
    from PIL import Image as PILImage

    PILImage.fromarray(demo_rgb).save(photo)
    out_v2, out_v1 = tmp_path / "v2.png", tmp_path / "v1.png"
    assert cli.main(["declip", str(photo), "-o", str(out_v2), "-q", "--model", "declipnet-v2",
                     "--device", "cpu"]) == 0
    assert cli.main(["declip", str(photo), "-o", str(out_v1), "-q", "--model", "declipnet-v1",
                     "--device", "cpu"]) == 0
    v2_pixels = libdeclip.read_image(out_v2).pixels
    np.testing.assert_array_equal(v2_pixels, libdeclip.declip(demo_rgb, model=V2, device="cpu"))
    assert not np.array_equal(v2_pixels, libdeclip.read_image(out_v1).pixels)
    capsys.readouterr()
    assert cli.main(["declip", str(photo), "-o", str(tmp_path / "x.png"), "-q", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "model file not found: nope" in err and "declipnet-v2-int8" in err
    assert not (tmp_path / "x.png").exists()
    assert cli.main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "declipnet-v1.onnx: declipnet v1, float32, input RGB\n" in listing
    assert "declipnet-v2-int8.onnx: declipnet v2, int8, input RGB + clip mask (automatic on cpu)" in listing
