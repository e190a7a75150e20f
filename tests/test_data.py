from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import ClipSampler, ClipSpec, clip_and_normalise, list_images, make_sample


def test_clip_and_normalise_by_hand() -> None:
    rgb = np.array([[[10.0, 100.0, 250.0]]], dtype=np.float32)
    clipped, truth = clip_and_normalise(rgb, over=200, under=20)
    # (v - 20) / 180
    np.testing.assert_allclose(truth[0, 0], [-10 / 180, 80 / 180, 230 / 180], rtol=1e-6)
    np.testing.assert_allclose(clipped[0, 0], [0.0, 80 / 180, 1.0], rtol=1e-6)


def test_clip_and_normalise_per_channel_and_bad_thresholds() -> None:
    rgb = np.full((2, 2, 3), 150.0, dtype=np.float32)
    over, under = np.array([140, 200, 250.0]), np.array([10, 10, 160.0])
    clipped, truth = clip_and_normalise(rgb, over=over, under=under)
    np.testing.assert_allclose(clipped[0, 0], [1.0, 140 / 190, 0.0], rtol=1e-6)
    assert truth[0, 0, 0] > 1 and truth[0, 0, 2] < 0
    with pytest.raises(ValueError, match="must exceed"):
        clip_and_normalise(rgb, over=50, under=60)


def test_samples_follow_the_paper_protocol(demo_rgb: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    spec = ClipSpec()
    saw_beyond = False
    for _ in range(20):
        x, y = make_sample(demo_rgb, 64, spec, rng)
        assert x.shape == y.shape == (3, 64, 64) and x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
        inside = (y > 0) & (y < 1)
        np.testing.assert_array_equal(x[inside], y[inside])  # unclipped: input is the truth
        np.testing.assert_array_equal(x[y >= 1], 1.0)
        np.testing.assert_array_equal(x[y <= 0], 0.0)
        saw_beyond |= bool((y > 1).any() or (y < 0).any())
    assert saw_beyond, "the truth must leave [0, 1] where the input is clipped"


def test_threshold_ranges_are_respected() -> None:
    # A ramp 0..255: the clipped input's first 1.0 and last 0.0 reveal the thresholds.
    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    rgb = np.repeat(ramp[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(np.tile(rgb, (32, 1, 1)))[:256]
    rng = np.random.default_rng(3)
    spec = ClipSpec(flips=False)
    for _ in range(30):
        x, y = make_sample(rgb, 256, spec, rng)
        row_x, row_y = x[0, 0], y[0, 0]
        # v = under + y * (over - under); y is affine in v = column index.
        slope = row_y[1] - row_y[0]
        under = -row_y[0] / slope
        over = under + 1 / slope
        assert 1 - 1e-3 <= under <= 80 + 1e-3
        assert 175 - 1e-3 <= over <= 255 + 1e-3
        assert row_x.min() == 0.0


def test_quantised_input_is_on_the_8bit_grid(demo_rgb: np.ndarray) -> None:
    x, y = make_sample(demo_rgb, 64, ClipSpec(quantise=True), np.random.default_rng(2))
    np.testing.assert_array_equal(np.rint(x * 255) / 255, x.astype(np.float64).astype(np.float32))
    np.testing.assert_allclose(x, np.clip(y, 0, 1), atol=0.5 / 255 + 1e-7)


def test_jpeg_extra_and_per_channel(demo_rgb: np.ndarray) -> None:
    spec = ClipSpec(per_channel=True, jpeg_quality=(70, 90), jpeg_probability=1.0, flips=True)
    x, y = make_sample(demo_rgb, 48, spec, np.random.default_rng(1))
    assert x.min() >= 0 and x.max() <= 1
    assert not np.array_equal(np.clip(y, 0, 1), x)  # JPEG changed the unclipped values a little


def test_sampler_is_a_function_of_step(photo_folder: Path) -> None:
    a = ClipSampler(photo_folder, crop=32, batch=3, seed=5)
    b = ClipSampler(photo_folder, crop=32, batch=3, seed=5)
    x1, y1 = a.batch_at(7)
    x2, y2 = b.batch_at(7)
    assert x1.shape == (3, 3, 32, 32)
    assert (x1 == x2).all() and (y1 == y2).all()
    assert not (a.batch_at(8)[0] == x1).all()
    other_rank = ClipSampler(photo_folder, crop=32, batch=3, seed=5, rank=1, world_size=2)
    assert not (other_rank.batch_at(7)[0] == x1).all()


def test_eval_photos_are_refused(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    from PIL import Image

    (tmp_path / "eval" / "kodak24").mkdir(parents=True)
    Image.fromarray(demo_rgb).save(tmp_path / "eval" / "kodak24" / "a.png")
    with pytest.raises(ValueError, match="never be used for training"):
        list_images(tmp_path / "eval")
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")
