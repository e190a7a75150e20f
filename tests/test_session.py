from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

import libdeclip
from libdeclip import Declipper, DeviceFallbackWarning
from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE
from libdeclip.mask import clip_masks
from tests.conftest import REPO


@pytest.fixture(scope="module")
def session() -> Declipper:
    return Declipper(device="cpu")


def test_float_photo_unclipped_values_are_identical(demo_rgb: np.ndarray, session: Declipper) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    out = session.run(image)
    assert out.shape == image.shape and out.dtype == np.float32
    low, high = clip_masks(image)
    clipped = (high | low).any(axis=2)
    assert 0.01 < clipped.mean() < 0.5
    # every pixel far from clipping, and every unclipped channel of a partly clipped pixel
    np.testing.assert_array_equal(out[~(high | low)], image[~(high | low)])
    # clipped values only move outwards, and the model does recover highlights above 1 (HDR)
    assert (out[high] >= image[high]).all() and (out[low] <= image[low]).all()
    assert out.max() > 1.0 and np.isfinite(out).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
def test_dtype_in_is_dtype_out(demo_rgb: np.ndarray, session: Declipper, dtype: type) -> None:
    crop = demo_rgb[:160, 200:360]
    if dtype == np.uint16:
        image = crop.astype(np.uint16) * 257
    elif np.dtype(dtype).kind == "f":
        image = (crop / 255.0).astype(dtype)
    else:
        image = crop.copy()
    out = session.run(image)
    assert out.dtype == image.dtype and out.shape == image.shape
    low, high = clip_masks(image, *libdeclip.inputs.dtype_range(image.dtype))
    if np.dtype(dtype).kind in "ui":  # compress: untouched between toe and knee
        top = np.iinfo(dtype).max
        mid = (image > DEFAULT_TOE * top) & (image < DEFAULT_KNEE * top) & ~(high | low)
        np.testing.assert_array_equal(out[mid], image[mid])
        assert not np.array_equal(out, image)
    else:
        np.testing.assert_array_equal(out[~(high | low)], image[~(high | low)])


def test_clamp_preserves_every_unclipped_value(demo_rgb: np.ndarray, session: Declipper) -> None:
    out = session.run(demo_rgb, fit="clamp")
    low, high = clip_masks(demo_rgb, 0, 255)
    np.testing.assert_array_equal(out[~(high | low)], demo_rgb[~(high | low)])


def test_grey_and_alpha(demo_rgb: np.ndarray, session: Declipper) -> None:
    grey = demo_rgb.max(axis=2)
    out = session.run(grey)
    assert out.shape == grey.shape and out.dtype == np.uint8
    alpha = (np.arange(demo_rgb.size // 3) % 256).reshape(demo_rgb.shape[:2])
    rgba = np.dstack([demo_rgb, alpha]).astype(np.uint8)
    out = session.run(rgba)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], session.run(np.ascontiguousarray(rgba[..., :3])))


def test_per_channel_clip_levels(demo_rgb: np.ndarray, session: Declipper) -> None:
    image = demo_rgb.astype(np.float32) / 255.0 * 0.8  # a photo whose white sits at 0.8
    out = session.run(image, clip_levels=(0.0, [0.8, 0.8, 0.8]))
    assert out.max() > 0.8
    np.testing.assert_array_equal(session.run(image, clip_levels=(0.0, 0.8)), out)


def test_tiled_equals_whole(demo_rgb: np.ndarray) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    with Declipper(device="cpu", tile_size=4096) as whole, Declipper(device="cpu", tile_size=100) as tiled:
        assert len(tiled.plan(*image.shape[:2])) > 1  # 104-pixel cores do not divide 480 x 640
        a, b = whole.run(image), tiled.run(image)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_unclipped_tiles_are_not_run(demo_rgb: np.ndarray) -> None:
    image = demo_rgb.copy()
    image[image >= 254] = 250  # now nothing is clipped but one block
    image[:20, :20] = 255
    calls: list[tuple[int, ...]] = []
    with Declipper(device="cpu", tile_size=64) as session:
        run = session.engine.residual

        def counting(batch: np.ndarray) -> np.ndarray:
            calls.append(batch.shape)
            return run(batch)

        session.engine.residual = counting  # type: ignore[method-assign]
        out = session.run(image, fit="clamp")
    assert len(calls) == 1
    np.testing.assert_array_equal(out[20:], image[20:])


def test_unavailable_gpu_falls_back_to_cpu(demo_rgb: np.ndarray) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: nothing to fall back from")
    with pytest.warns(DeviceFallbackWarning, match="no GPU provider"):
        session = Declipper(device="cuda")
    assert session.device == "cpu"
    assert session.run(demo_rgb[:64, :64]).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Declipper(device="tpu")


def test_run_is_thread_safe(demo_rgb: np.ndarray, session: Declipper) -> None:
    crops = [demo_rgb[i * 60 : i * 60 + 120, 100:300] for i in range(4)]
    expected = [session.run(c) for c in crops]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = session.run(crops[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], expected[i])


def _record_engine_calls(session: Declipper, calls: list[str], started: threading.Event,
                         fail_in: str | None = None) -> None:
    """Wrap ``session``'s engine: each call appends its thread's name; ``fail_in``'s second call fails."""
    inner = session.engine.residual

    def residual(batch: np.ndarray) -> np.ndarray:
        name = threading.current_thread().name
        calls.append(name)
        started.set()
        if name == fail_in and calls.count(name) == 2:
            raise libdeclip.EngineError("a failure on purpose")
        return inner(batch)

    session.engine.residual = residual  # type: ignore[method-assign]


def _run_in_threads(session: Declipper, crops: list[np.ndarray], started: threading.Event | None,
                    **kwargs: object) -> dict[str, object]:
    """Run crop i on thread "run-i", each started once the one before it has run the model
    (``started`` set by :func:`_record_engine_calls`; None: all at once)."""
    results: dict[str, object] = {}

    def work(name: str, crop: np.ndarray) -> None:
        try:
            results[name] = session.run(crop, **kwargs)  # type: ignore[arg-type]
        except libdeclip.DeclipError as exc:
            results[name] = exc

    threads = []
    for i, crop in enumerate(crops):
        if started is not None:
            started.clear()
        threads.append(threading.Thread(target=work, args=(f"run-{i}", crop), name=f"run-{i}"))
        threads[-1].start()
        assert started is None or started.wait(60)
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a run waits for ever"
    return results


def test_runs_take_the_model_in_turn(demo_rgb: np.ndarray) -> None:
    """A run started while another runs the model waits for it: tiles of two runs never interleave,
    and each result is the run's alone."""
    crops = [demo_rgb[:256, :384], demo_rgb[128:384, 192:576], demo_rgb[224:480, :256]]
    # every tile runs (not only windows around the clipped regions): many model calls per run
    with Declipper(device="cpu", tile_size=64, skip_unclipped=False) as session:
        expected = [session.run(c) for c in crops]
        calls: list[str] = []
        started = threading.Event()
        _record_engine_calls(session, calls, started)
        results = _run_in_threads(session, crops, started)
    runs = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    assert runs == ["run-0", "run-1", "run-2"], "the runs' tiles interleaved"
    assert calls.count("run-0") >= 3  # run-1 started while run-0 had tiles to go
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(results[f"run-{i}"], want)  # type: ignore[arg-type]


def test_a_failed_run_passes_the_model_on(demo_rgb: np.ndarray) -> None:
    crops = [demo_rgb[:256, :384], demo_rgb[128:384, 192:576]]
    with Declipper(device="cpu", tile_size=64) as session:
        expected = session.run(crops[1])
        calls: list[str] = []
        started = threading.Event()
        _record_engine_calls(session, calls, started, fail_in="run-0")
        results = _run_in_threads(session, crops, started)
    assert isinstance(results["run-0"], libdeclip.EngineError)
    np.testing.assert_array_equal(results["run-1"], expected)  # type: ignore[arg-type]


def test_a_run_inside_a_progress_callback_goes_at_once(demo_rgb: np.ndarray) -> None:
    """A run started from a progress callback (inside another run's turn) cannot wait for it."""
    crop = demo_rgb[:256, :384]
    small = crop[:128, 128:256]
    assert clip_masks(small, 0, 255).high.any()  # the inner run needs the model
    inner: list[np.ndarray] = []
    with Declipper(device="cpu", tile_size=64) as session:

        def progress(done: int, total: int) -> None:
            if done == 1 and not inner:
                inner.append(session.run(small))

        results = _run_in_threads(session, [crop], None, progress=progress)
        assert isinstance(results["run-0"], np.ndarray) and len(inner) == 1
        np.testing.assert_array_equal(inner[0], session.run(small))


def test_colour_space_changes_only_clipped_values(demo_rgb: np.ndarray, session: Declipper) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    out = session.run(image, colorspace="adobe-rgb")
    low, high = clip_masks(image)
    np.testing.assert_array_equal(out[~(high | low)], image[~(high | low)])
    assert not np.array_equal(out, session.run(image))
    with pytest.raises(libdeclip.UnsupportedInputError, match="unknown colour space"):
        session.run(image, colorspace="cmyk")


def test_unclipped_image_is_returned_unchanged(demo_rgb: np.ndarray, session: Declipper) -> None:
    # No value at 0 or 255 and no pile-up below (np.clip(photo, 30, 200) would be clipped at 200:
    # libdeclip.mask.levels_from_data finds it): values spread evenly over 30..200.
    image = np.random.default_rng(0).integers(30, 201, demo_rgb.shape).astype(np.uint8)
    out = session.run(image)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_odd_sizes(demo_rgb: np.ndarray, session: Declipper) -> None:
    image = demo_rgb[100:157, 200:271]  # 57 x 71: not multiples of 8
    assert session.run(image).shape == (57, 71, 3)
    assert session.run(demo_rgb[:1, :1]).shape == (1, 1, 3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8, 5), np.float32), "C = 1 or 2"),
        (np.zeros((8, 8, 3), np.int32), "unsupported dtype int32"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        ([[0.0]], "numpy array"),
        (np.zeros((0, 8, 3), np.uint8), "empty image"),
    ],
)
def test_bad_input_is_a_clear_error(bad: object, message: str, session: Declipper) -> None:
    with pytest.raises(libdeclip.UnsupportedInputError, match=message):
        session.run(bad)  # type: ignore[arg-type]


def test_bad_arguments_are_clear_errors(demo_rgb: np.ndarray, session: Declipper) -> None:
    with pytest.raises(libdeclip.UnsupportedInputError, match="high .* must exceed low"):
        session.run(demo_rgb, clip_levels=(10, 5))
    with pytest.raises(libdeclip.UnsupportedInputError, match="unknown fit 'squash'"):
        session.run(demo_rgb, fit="squash")


def test_clip_mask_summary(demo_rgb: np.ndarray) -> None:
    mask, summary = libdeclip.clip_mask(demo_rgb)
    assert mask.shape == demo_rgb.shape and mask.dtype == bool
    assert summary.any == pytest.approx(mask.any(axis=2).mean())
    assert len(summary.high) == 3 and max(summary.high) > 0.01
    assert "clipped pixels" in str(summary)


def test_model_that_breaks_the_contract_is_refused(tmp_path: Path) -> None:
    proto = onnx.load(str(libdeclip.engine.automatic_model()))
    del proto.metadata_props[:]
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(libdeclip.ModelError, match="not a libdeclip model"):
        Declipper(bad, device="cpu")
    with pytest.raises(libdeclip.ModelError, match="not found"):
        Declipper(tmp_path / "missing.onnx", device="cpu")


def test_runtime_never_imports_torch() -> None:
    code = (
        "import sys, numpy as np, libdeclip\n"
        "x = np.full((24, 24, 3), 0.5, np.float32); x[4:9, 4:9] = 1.0\n"
        "libdeclip.declip(x)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'training' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_feather_band(demo_rgb: np.ndarray) -> None:
    from libdeclip.mask import feather_weights

    image = demo_rgb.astype(np.float32) / 255.0
    low, high = clip_masks(image)
    clipped = (high | low).any(axis=2)
    weights = feather_weights(clipped, 3)
    with Declipper(device="cpu", tile_size=4096) as whole, Declipper(device="cpu", tile_size=100) as tiled:
        out = whole.run(image, feather=3)
        np.testing.assert_allclose(tiled.run(image, feather=3), out, atol=2e-5, rtol=0)
    with Declipper(device="cpu", tile_size=4096, speck_pixels=0) as every_value:  # feather sets specks aside
        plain = every_value.run(image)
    far = ~clipped & (weights == 0)
    np.testing.assert_array_equal(out[far], image[far])  # beyond the band: bit-identical
    band = weights > 0
    assert not np.array_equal(out[band], image[band])  # inside it: blended
    np.testing.assert_array_equal(out[high | low], plain[high | low])  # clipped values: the same
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    np.testing.assert_allclose(feather_weights(mask, 3)[4, 1:8], [0.25, 0.5, 0.75, 0, 0.75, 0.5, 0.25])


def test_progress_callback_counts_the_tiles() -> None:
    from libdeclip import Declipper

    image = np.full((150, 200, 3), 0.4, dtype=np.float32)
    image[10:20, 10:20] = 1.0  # clipped in one tile of the 3 x 4
    image[70:80, 140:150] = 1.0  # and in another
    calls: list[tuple[int, int]] = []
    with Declipper(device="cpu", tile_size=64) as session:
        session.run(image, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 2) and calls[-1] == (2, 2)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
