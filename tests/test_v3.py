"""Model v3 (prior-input): the estimates and context the runtime feeds, the outward-only form, the
whole-photo sampler, the contract, resume, and tiled == whole through the real ONNX Runtime path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import libdeclip
from libdeclip import priors
from libdeclip.color import get_colorspace
from libdeclip.engine import PRIOR_CHANNELS, OnnxEngine
from libdeclip.mask import clip_codes, codes_to_masks
from libdeclip.tiling import Tile
from tests.conftest import DEMO_PHOTO, SHARED_DATA, tiny_config_text
from training.config import load_config
from training.data import ClipSpec, PriorSampler
from training.export import export
from training.models import PriorGenerator, receptive_field_radius
from training.train import Trainer, generator_from_checkpoint, load_checkpoint, phase_head_from_smooth

PRIOR_RUN = {"layout": "prior", "mask_input": True, "pixel_loss": "encoded-l1", "clipped_weight": 6.0,
             "w_chroma": 1.0, "w_mse": 1.0, "w_perceptual": 0.0, "w_adversarial": 0.0, "prior_pool": 2,
             "prior_block_steps": 3, "prior_max_side": 96, "lr_schedule": "linear", "crop": 32}


@pytest.fixture(scope="module")
def demo_clipped() -> np.ndarray:
    """The demo photo over-exposed by 1.4x, as 8-bit: highlights clipped in one and all channels."""
    from PIL import Image

    rgb = np.asarray(Image.open(DEMO_PHOTO).convert("RGB"), dtype=np.float32)
    return np.clip(rgb * 1.4, 0, 255).astype(np.uint8)


def _codes(image: np.ndarray) -> np.ndarray:
    return clip_codes(image, np.zeros(3), np.full(3, 255.0), 1.0 / 255.0, 0)


def test_image_priors_match_the_whole_image_estimates(demo_clipped: np.ndarray) -> None:
    codes = _codes(demo_clipped)
    assert (codes != 0).mean() > 0.01
    got = priors.image_priors(demo_clipped, np.zeros(3), np.full(3, 255.0), get_colorspace("srgb"), codes)
    x = demo_clipped / 255.0
    low, high = codes_to_masks(codes, 3)
    whole = priors.estimates(x, high, low)
    expected = whole.reshape(-1, 6)[got.pixels]
    # The native estimates sum their boxes in another order: a few ulp, rarely more where a
    # regression is ill-conditioned (the ridge bounds it).
    diff = np.abs(got.values - expected)
    assert np.quantile(diff, 0.999) < 1e-5 and diff.max() < 0.02
    np.testing.assert_allclose(got.context, priors.context(x, high, low), atol=1e-6)
    # estimates never point inward, and they differ from the picture where it is clipped
    assert (whole[..., :3][high] >= x[high] - 1e-6).all() and (whole[..., 3:][high] >= x[high] - 1e-6).all()
    assert (whole[..., :3][low] <= x[low] + 1e-6).all()
    assert np.abs(whole[..., 3:][high] - x[high]).max() > 0.05


@pytest.mark.parametrize(("dtype", "space"), [(np.uint16, "display-p3"), (np.float32, "adobe-rgb"),
                                           (np.uint8, "grey")])
def test_the_native_context_matches_the_whole_image_one(demo_clipped: np.ndarray, dtype: type,
                                                        space: str) -> None:
    from libdeclip.color import to_model
    from libdeclip.estimates import as_rgb

    image = demo_clipped[..., :1] if space == "grey" else demo_clipped
    if dtype == np.uint16:
        image, top = image.astype(np.uint16) * 257, 65535.0
    elif dtype == np.float32:
        image, top = (image / 255.0).astype(np.float32), 1.0
    else:
        top = 255.0
    c = image.shape[2]
    high_level = np.full(c, top)
    sp = get_colorspace("srgb" if space == "grey" else space)
    codes = clip_codes(image, np.zeros(c), high_level, 1.0 / 255.0, 0)
    got = priors.image_priors(image, np.zeros(c), high_level, sp, codes).context
    x = to_model(as_rgb(image.astype(np.float64) / high_level), sp)
    low, high = (as_rgb(m) for m in codes_to_masks(codes, c))
    np.testing.assert_allclose(got, priors.context(x, high, low), atol=1e-6)


def test_estimates_in_any_tile_equal_the_whole_image_window(demo_clipped: np.ndarray) -> None:
    codes = _codes(demo_clipped)
    est = priors.image_priors(demo_clipped, np.zeros(3), np.full(3, 255.0), get_colorspace("srgb"), codes)
    h, w = codes.shape
    pad = 32  # the canvas past the bottom/right edge, padded as the native gather pads
    picture = np.pad((demo_clipped / np.float32(255)).transpose(2, 0, 1), ((0, 0), (0, pad), (0, pad)),
                     mode="symmetric")
    whole = np.empty((6, h + pad, w + pad), np.float32)
    est.fill(Tile(0, h, 0, w, 0, h + pad, 0, w + pad), picture, whole)
    rng = np.random.default_rng(0)
    for _ in range(12):
        y0, x0 = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        y1, x1 = int(rng.integers(y0 + 8, h + pad + 1)), int(rng.integers(x0 + 8, w + pad + 1))
        tile = Tile(y0, min(y1, h), x0, min(x1, w), y0, y1, x0, x1)
        out = np.empty((6, y1 - y0, x1 - x0), np.float32)
        est.fill(tile, picture[:, y0:y1, x0:x1], out)
        np.testing.assert_array_equal(out, whole[:, y0:y1, x0:x1])
    # where nothing is clipped the planes are the picture's
    free = codes == 0
    np.testing.assert_array_equal(whole[:3, :h, :w][:, free], picture[:, :h, :w][:, free])


# (detail width, phase head) of the layouts "prior", "prior-detail", "prior-phase"
V3_FORMS = pytest.mark.parametrize(("detail", "phase"), [(0, False), (4, False), (0, True)],
                                   ids=["prior", "prior-detail", "prior-phase"])


@V3_FORMS
def test_the_output_is_outward_only_for_any_weights(detail: int, phase: bool) -> None:
    torch.manual_seed(0)
    model = PriorGenerator(width=8, detail=detail, phase_head=phase).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)  # the last layer too: far from the identity start
    x = torch.rand(3, 12, 32, 32)
    mask = torch.randint(-1, 2, (3, 3, 32, 32)).float()
    x[:, 3:6] = mask
    with torch.no_grad():
        out = model(x, torch.rand(3, 6))
    picture = x[:, :3]
    assert (out[mask > 0] >= picture[mask > 0]).all() and (out[mask < 0] <= picture[mask < 0]).all()
    assert torch.equal(out[mask == 0], picture[mask == 0])
    assert (out[mask > 0] > picture[mask > 0]).any()  # and it does move the clipped ones


@V3_FORMS
def test_with_its_last_layer_at_zero_it_returns_the_classical_answer(detail: int, phase: bool) -> None:
    # a new model: the heads start at zero
    model = PriorGenerator(width=8, detail=detail, phase_head=phase).eval()
    x = torch.rand(2, 12, 32, 32)
    mask = torch.zeros(2, 3, 32, 32)
    mask[:, :, 4:12, 4:12] = 1.0  # all three clipped high: the base is inpaint opposed's
    mask[:, 0, 20:28, 20:28] = 1.0  # one channel clipped: cross-channel's
    mask[:, 2, 0:4, 24:30] = -1.0
    x[:, 3:6] = mask
    x[:, 6:12] = x[:, :3].repeat(1, 2, 1, 1) + torch.rand(2, 6, 32, 32) * torch.sign(mask).repeat(1, 2, 1, 1)
    with torch.no_grad():
        out = model(x, torch.rand(2, 6))
    assert torch.equal(out[:, :, 4:12, 4:12], x[:, 9:12, 4:12, 4:12])
    assert torch.equal(out[:, 0, 20:28, 20:28], x[:, 6, 20:28, 20:28])
    assert torch.equal(out[:, 2, 0:4, 24:30], x[:, 8, 0:4, 24:30])
    assert receptive_field_radius(model) > 0  # the body's reach, not the output form's


def test_detail_layers_start_from_a_v3_checkpoint_unchanged_and_widen_the_reach() -> None:
    torch.manual_seed(1)
    v3 = PriorGenerator(width=8).eval()
    with torch.no_grad():
        for p in v3.parameters():
            p.normal_(0.0, 0.3)
    detailed = PriorGenerator(width=8, detail=4).eval()
    missing, unexpected = detailed.load_state_dict(v3.state_dict(), strict=False)
    assert not unexpected and missing and all(key.startswith("detail.") for key in missing)
    x, context = torch.rand(2, 12, 32, 32), torch.rand(2, 6)
    x[:, 3:6] = torch.randint(-1, 2, (2, 3, 32, 32)).float()
    with torch.no_grad():
        assert torch.equal(detailed(x, context), v3(x, context))
    # two 3x3 convolutions at full resolution: 2 px more reach than the body's
    assert receptive_field_radius(detailed) == receptive_field_radius(v3) + 2


def test_the_sampler_computes_estimates_on_the_whole_photo(photo_folder: Path) -> None:
    spec = ClipSpec(quantise=True, camera_probability=0.5, flips=True)
    sampler = PriorSampler(photo_folder, crop=32, batch=4, spec=spec, seed=3, pool=2, block_steps=2,
                           max_side=96)
    variant = sampler.variant(0, 0)
    clipped, mask = variant.inputs[:3], variant.inputs[3:6]
    hwc = clipped.transpose(1, 2, 0)
    high, low = (mask > 0).transpose(1, 2, 0), (mask < 0).transpose(1, 2, 0)
    np.testing.assert_array_equal(variant.inputs[6:], priors.estimates(hwc, high, low).transpose(2, 0, 1))
    np.testing.assert_array_equal(variant.context, priors.context(hwc, high, low))
    x, y, context, known = sampler.batch_at(5)
    assert x.shape == (4, 12, 32, 32) and y.shape == (4, 3, 32, 32) and context.shape == (4, 6)
    assert known.shape == (4, 1, 32, 32)
    again = PriorSampler(photo_folder, crop=32, batch=4, spec=spec, seed=3, pool=2, block_steps=2,
                         max_side=96).batch_at(5)
    for a, b in zip((x, y, context, known), again, strict=True):
        assert torch.equal(a, b)  # a pure function of the step: what makes resume exact


def test_shrinking_a_photo_keeps_where_it_was_blown() -> None:
    from training.data import OWN_CLIP_CODE, shrink_to_fit

    photo = np.full((800, 1200, 3), 120, np.uint8)
    photo[100:140, 600:660] = 255  # a blown patch
    photo[700, 100] = (255, 90, 90)  # one blown value in a red pixel
    small, own = shrink_to_fit(photo, 300, 128)
    assert small.shape == (200, 300, 3) and own.shape == (200, 300)
    # every shrunk pixel that the patch (or the single value) reaches is marked, and nothing far off
    assert own[25:35, 150:165].all() and own[175, 25]
    assert not own[60:, 50:140].any() and not own[:20].any() and own.sum() < 40 * 60 / 16 + 80
    assert small[30, 157].min() >= OWN_CLIP_CODE and small[175, 25, 0] < OWN_CLIP_CODE  # blurred away
    small, own = shrink_to_fit(photo[:200], 300, 128)  # a wide strip: its short side stays the crop
    assert small.shape[0] == 128 and small.shape[1] == 768


def test_the_sampler_shows_large_photos_whole_when_asked(tmp_path: Path) -> None:
    from PIL import Image

    Image.open(DEMO_PHOTO).convert("RGB").resize((1024, 683)).save(tmp_path / "large.png")
    spec = ClipSpec(quantise=True, camera_probability=0.5, flips=True)
    kwargs = {"crop": 32, "batch": 2, "spec": spec, "seed": 3, "pool": 4, "block_steps": 2, "max_side": 96}
    shrunk = PriorSampler(tmp_path, downscale=1.0, **kwargs)  # type: ignore[arg-type]
    windows = PriorSampler(tmp_path, **kwargs)  # type: ignore[arg-type]
    for slot in range(4):
        assert shrunk.variant(0, slot).truth.shape == (3, 64, 96)  # the whole scene, 1024 x 683 shrunk
        assert windows.variant(0, slot).truth.shape == (3, 96, 96)  # a window at the photo's scale
    again = PriorSampler(tmp_path, downscale=1.0, **kwargs).batch_at(3)  # type: ignore[arg-type]
    for a, b in zip(shrunk.batch_at(3), again, strict=True):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def v3_model(tmp_path_factory: pytest.TempPathFactory, photo_folder: Path) -> Path:
    """A few steps of v3 training (tiny), its checkpoint given a random last layer (so the output
    differs from the classical base), exported through the real exporter."""
    tmp = tmp_path_factory.mktemp("v3")
    cfg = tmp / "v3.toml"
    cfg.write_text(tiny_config_text(photo_folder, tmp / "run", 3, **PRIOR_RUN))
    Trainer(load_config(cfg)).run()
    ck = load_checkpoint(tmp / "run" / "checkpoint.pt")
    gen = torch.Generator().manual_seed(1)
    for key in ("body.head.weight", "body.head.bias"):
        ck["generator"][key] = torch.randn(ck["generator"][key].shape, generator=gen) * 0.05
    torch.save(ck, tmp / "random_head.pt")
    out = tmp / "v3.onnx"
    info = export(tmp / "random_head.pt", out, version="3")
    assert info["parity_max_abs_diff"] <= 1e-4
    return out


def _fine_tune_of_a_v3_run(tmp_path: Path, photo_folder: Path, layout: str) -> tuple[Path, Path]:
    """A two-step first-stage v3 run trained, and the config of a run of ``layout`` starting from
    it: (the first run's checkpoint, the second run's config)."""
    v3 = tmp_path / "v3.toml"
    v3.write_text(tiny_config_text(photo_folder, tmp_path / "v3", 2, **PRIOR_RUN))
    Trainer(load_config(v3)).run()
    start = tmp_path / "v3" / "checkpoint.pt"
    name = layout.removeprefix("prior-")
    config = tmp_path / f"{name}.toml"
    config.write_text(tiny_config_text(photo_folder, tmp_path / name, 2, **{
        **PRIOR_RUN, "layout": layout, "init_from": str(start)}))
    return start, config


def test_a_detail_run_starts_from_a_v3_checkpoint(tmp_path: Path, photo_folder: Path) -> None:
    start, detail = _fine_tune_of_a_v3_run(tmp_path, photo_folder, "prior-detail")
    trainer = Trainer(load_config(detail))
    assert isinstance(trainer.g, PriorGenerator) and trainer.g.detail is not None
    for name, tensor in load_checkpoint(start)["generator"].items():
        assert torch.equal(trainer.g.state_dict()[name], tensor), f"{name} not taken from the v3 state"
    trainer.run()
    assert load_checkpoint(tmp_path / "detail" / "checkpoint.pt")["config"]["layout"] == "prior-detail"
    # a state that is not a v3 generator's is refused by name
    ck = load_checkpoint(start)
    ck["generator"]["stray.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "stray.pt")
    detail.write_text(tiny_config_text(photo_folder, tmp_path / "stray", 2, **{
        **PRIOR_RUN, "layout": "prior-detail", "init_from": str(tmp_path / "stray.pt")}))
    with pytest.raises(ValueError, match="not a v3 generator state"):
        Trainer(load_config(detail))


def test_a_phase_run_starts_from_a_v3_checkpoint_as_its_residual_upsampled(
    tmp_path: Path, photo_folder: Path
) -> None:
    start, phase = _fine_tune_of_a_v3_run(tmp_path, photo_folder, "prior-phase")
    trainer = Trainer(load_config(phase))
    smooth = generator_from_checkpoint(load_checkpoint(start))
    assert isinstance(trainer.g, PriorGenerator) and isinstance(smooth, PriorGenerator)
    assert trainer.g.detail is None and not trainer.g.body.smooth_head
    # the smooth head given random weights: a two-step run's head is nearly zero, and a zero
    # residual would make the comparison below vacuous
    with torch.no_grad():
        for p in smooth.body.head.parameters():
            p.normal_(0.0, 0.1)
        state = smooth.state_dict()
    phase_head_from_smooth(trainer.g, state)
    smooth.eval()
    trainer.g.eval()
    x, context = torch.rand(2, 12, 32, 32), torch.rand(2, 6)
    half: list[torch.Tensor] = []
    hook = smooth.body.head.register_forward_hook(lambda module, args, out: half.append(out))
    with torch.no_grad():
        smooth.residual(x, context)
        hook.remove()
        nearest = torch.nn.functional.interpolate(half[0], scale_factor=2, mode="nearest")
        assert nearest.abs().max() > 0
        torch.testing.assert_close(trainer.g.residual(x, context), nearest, rtol=0, atol=1e-6)
    trainer.run()
    assert load_checkpoint(tmp_path / "phase" / "checkpoint.pt")["config"]["layout"] == "prior-phase"
    # a state whose head is not a smooth one is refused
    with pytest.raises(ValueError, match="not a 'prior' v3 generator state"):
        phase_head_from_smooth(trainer.g, trainer.g.state_dict())


def test_resume_is_bit_exact(tmp_path: Path, photo_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text(tiny_config_text(photo_folder, tmp_path / "straight", 4, **PRIOR_RUN))
    Trainer(load_config(cfg)).run()
    # The same run stopped by its time budget after two steps (as the chunks of the schedule stop;
    # a smaller ``steps`` would change the linear decay), then started again by the same command.
    cfg2 = tmp_path / "b.toml"
    cfg2.write_text(tiny_config_text(photo_folder, tmp_path / "resumed", 4, **PRIOR_RUN))
    import training.train

    ticks = iter(range(10**6))  # a clock that advances 1 s per reading: 3 readings per step
    with monkeypatch.context() as m:
        m.setattr(training.train.time, "perf_counter", lambda: float(next(ticks)))
        Trainer(load_config(cfg2, max_seconds=5.5)).run()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 2
    Trainer(load_config(cfg2)).run()
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    for name, tensor in a["generator"].items():
        assert torch.equal(tensor, b["generator"][name]), f"{name} differs after resume"
    rows = (tmp_path / "straight" / "loss.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(","), strict=True))
    assert float(last["base_pixel"]) > 0 and float(last["lr"]) < 0.0005  # linear decay


def test_the_contract_names_the_priors(v3_model: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(str(v3_model)).metadata_props}
    assert tuple(meta["input_channels"].split(",")) == PRIOR_CHANNELS
    assert meta["prior_methods"] == ",".join(priors.PRIOR_METHODS)
    assert meta["context_names"] == ",".join(priors.CONTEXT_NAMES)
    engine = OnnxEngine(v3_model, device="cpu")
    assert engine.info.prior_input and engine.info.mask_input
    with pytest.raises(libdeclip.EngineError, match="context"):
        engine.residual(np.zeros((1, 12, 32, 32), np.float32))


def test_tiled_output_equals_whole_and_keeps_the_constraint(v3_model: Path, demo_clipped: np.ndarray) -> None:
    with libdeclip.Declipper(v3_model, device="cpu", tile_size=2048) as session:
        whole = session.run(demo_clipped / np.float32(255))
    with libdeclip.Declipper(v3_model, device="cpu", tile_size=64) as session:
        tiled = session.run(demo_clipped / np.float32(255))
    np.testing.assert_array_equal(whole, tiled)
    x = demo_clipped / np.float32(255)
    high = demo_clipped >= 254
    assert (whole[high] >= x[high]).all() and np.abs(whole[high] - x[high]).max() > 0.01
    free = (_codes(demo_clipped) == 0)
    np.testing.assert_array_equal(whole[free], x[free])
    # v1 and v2 still run next to it
    for name in ("declipnet-v1", "declipnet-v2-int8"):
        assert libdeclip.declip(demo_clipped, model=name, device="cpu").shape == demo_clipped.shape


def test_the_shipped_v3_models(demo_clipped: np.ndarray) -> None:
    from libdeclip.engine import MODELS_DIR

    for name, precision in (("declipnet-v3", "float32"), ("declipnet-v3-int8", "int8"),
                            ("declipnet-v3-fp16", "float16")):
        info = libdeclip.model_info(name)
        assert info.prior_input and info.version == "3"
        assert info.metadata.get("precision", "float32") == precision
        assert (MODELS_DIR / f"{name}.onnx").stat().st_size < 4 * 1024 * 1024
    x = demo_clipped / np.float32(255)
    out = libdeclip.declip(x, model="declipnet-v3-int8", device="cpu")
    high = codes_to_masks(_codes(demo_clipped), 3).high
    assert (out[high] >= x[high]).all() and (out[high] > x[high] + 0.01).any()
    assert not libdeclip.model_info("declipnet-v3").metadata.get("precision")


@pytest.mark.skipif(not (SHARED_DATA / "eval" / "kodak24").is_dir(), reason="../shared/data/eval is absent")
def test_the_v3_benchmark_compares_several_candidates(tmp_path: Path) -> None:
    import csv
    import shutil

    from benchmarks import model_v3
    from libdeclip.engine import MODELS_DIR

    # two candidate files: the shipped v3 under another name, and its int8 variant
    same, other = tmp_path / "same.onnx", tmp_path / "other.onnx"
    shutil.copy(MODELS_DIR / "declipnet-v3.onnx", same)
    shutil.copy(MODELS_DIR / "declipnet-v3-int8.onnx", other)
    argv = ["--sections", "quality", "--sets", "kodak24", "--limit", "1", "--grid", "0",
            "--rows", "no repair", "--candidate", str(same), str(other), "--out-dir", str(tmp_path)]
    assert model_v3.main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "model_v3.csv")))
    assert {r["model"] for r in rows} == {"no repair", "v3", "candidate same", "candidate other"}
    md = (tmp_path / "model_v3_quality.md").read_text()
    assert "### Candidate same against v3" in md and "### Candidate other against v3" in md
    # the same weights under another name: no gain in any split, so the table says +0.00 everywhere
    same_table = md.split("### Candidate same against v3")[1].split("###")[0]
    assert "| kodak24, camera | +0.00 / +0.00 / +0.00 | +0.00 / +0.00 / +0.00 |" in same_table
    other_table = md.split("### Candidate other against v3")[1]
    assert "| kodak24, camera | +0.00 / +0.00 / +0.00 |" not in other_table
    assert model_v3.main([*argv[:-2], "--candidate", str(same), str(same)]) == 2  # one name twice
