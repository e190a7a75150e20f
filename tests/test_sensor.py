"""The sensor-space sampler (training.sensor) against a hand-built mosaic, and its samples."""

from __future__ import annotations

import numpy as np
import pytest

from libdeclip.color import to_model
from tests.conftest import SHARED_DATA
from training.sensor import (
    Camera,
    balanced_space,
    clip_sensor,
    demosaic_bilinear,
    load_cameras,
    mosaic,
    photosite_mask,
)


def test_a_hand_built_mosaic() -> None:
    camera = np.zeros((4, 4, 3))
    camera[..., 0], camera[..., 1], camera[..., 2] = 0.2, 0.5, 0.8
    camera[1, 2] = (1.3, 0.6, 0.9)  # one bright pixel: a green photosite in RGGB
    values, colours = mosaic(camera, "RGGB")
    assert colours.tolist() == [[0, 1, 0, 1], [1, 2, 1, 2], [0, 1, 0, 1], [1, 2, 1, 2]]
    assert values[0, 0] == 0.2 and values[0, 1] == 0.5 and values[1, 1] == 0.8 and values[1, 2] == 0.6
    # bilinear: red at a blue site is the mean of its four diagonal red neighbours
    flat = demosaic_bilinear(values, colours)
    assert flat[1, 1, 0] == pytest.approx(0.2)
    assert flat[1, 1, 1] == pytest.approx((0.5 + 0.5 + 0.6 + 0.5) / 4)  # its four green neighbours
    # a saturated photosite flags its colour in its 3 x 3 neighbourhood, nothing else
    values[0, 2] = 1.7  # a red site
    mask = photosite_mask(values >= 1.0, colours)
    expected = np.zeros((4, 4), bool)
    expected[0:2, 1:4] = True
    np.testing.assert_array_equal(mask[..., 0], expected)
    assert not mask[..., 1:].any()


def _cameras() -> list[Camera]:
    raw = SHARED_DATA / "raw"
    if raw.is_dir():
        return load_cameras(raw)
    m = np.array([[1.8, -0.9, 0.1], [-0.2, 1.7, -0.5], [0.0, -0.5, 1.5]])
    return [Camera("hand-made", m)]


def test_samples_are_what_the_raw_path_shows() -> None:
    from PIL import Image

    from tests.conftest import DEMO_PHOTO

    photo = np.asarray(Image.open(DEMO_PHOTO).convert("RGB"))[::2, ::2]
    cameras = _cameras()
    assert all(not np.allclose(c.cam_to_srgb, np.eye(3)) for c in cameras)
    clipped, truth, mask, _ = clip_sensor(photo, cameras, np.random.default_rng(4), stops=(1.5, 1.5))
    assert clipped.shape == truth.shape == mask.shape == (3, 240, 320)
    assert set(np.unique(mask)) <= {0.0, 1.0} and 0.001 < mask.mean() < 0.9
    # where no channel of a pixel is flagged, nothing it was interpolated from saturated
    free = ~mask.astype(bool).any(axis=0)
    np.testing.assert_allclose(clipped[:, free], truth[:, free], atol=1e-6)
    # where flagged, the truth is brighter in the camera's own terms
    assert np.abs(truth - clipped)[:, ~free].max() > 0.05
    # and the encoding is the runtime's: a white-balanced camera white of 1 maps as to_model maps it
    space = balanced_space(cameras[0].cam_to_srgb, np.array([1.0, 0.5, 0.7]))
    assert to_model(np.ones((1, 1, 3)), space).shape == (1, 1, 3)


@pytest.mark.skipif(not (SHARED_DATA / "raw").is_dir(), reason="needs ../shared/data/raw (real cameras)")
def test_the_prior_sampler_draws_sensor_samples(photo_folder: object) -> None:
    from libdeclip import priors
    from training.data import ClipSpec, PriorSampler

    spec = ClipSpec(sensor_probability=1.0)
    sampler = PriorSampler(photo_folder, crop=32, batch=2, spec=spec, seed=1, pool=1, max_side=96,
                           raw_root=SHARED_DATA / "raw")
    v = sampler.variant(0, 0)
    mask = v.inputs[3:6]
    assert mask.min() >= 0 and mask.max() == 1.0  # RAW: highlights only, from the photosites
    hwc = v.inputs[:3].transpose(1, 2, 0)
    high = (mask > 0).transpose(1, 2, 0)
    expected = priors.estimates(hwc, high, np.zeros_like(high)).transpose(2, 0, 1)
    np.testing.assert_array_equal(v.inputs[6:], expected)
    # with sensor_photosite_prior both estimates are the photosite one, projected outward
    spec = ClipSpec(sensor_probability=1.0, sensor_photosite_prior=True)
    sampler = PriorSampler(photo_folder, crop=32, batch=2, spec=spec, seed=1, pool=1, max_side=96,
                           raw_root=SHARED_DATA / "raw")
    w = sampler.variant(0, 0)
    np.testing.assert_array_equal(w.inputs[:6], v.inputs[:6])
    np.testing.assert_array_equal(w.inputs[6:9], w.inputs[9:12])
    assert (w.inputs[6:9] >= w.inputs[:3])[mask > 0].all()
    assert not np.array_equal(w.inputs[6:], v.inputs[6:])


def test_the_photosite_estimate_of_a_sensor_sample() -> None:
    """With photosite_prior the sample is the same, and its estimate is the photosite inpaint
    opposed of the clipped mosaic: the picture's own values where nothing is clipped, brighter
    under the mask and nearer the truth there than what was recorded."""
    from PIL import Image

    from tests.conftest import DEMO_PHOTO

    photo = np.asarray(Image.open(DEMO_PHOTO).convert("RGB"))[::2, ::2]
    cameras = _cameras()
    plain = clip_sensor(photo, cameras, np.random.default_rng(4), stops=(1.5, 1.5), camera_rgb=True)
    clipped, truth, mask, estimate = clip_sensor(photo, cameras, np.random.default_rng(4), stops=(1.5, 1.5),
                                                 photosite_prior=True, camera_rgb=True)
    # shown in the camera's own channels, the same draws as through the camera's matrix
    matrix = clip_sensor(photo, cameras, np.random.default_rng(4), stops=(1.5, 1.5))
    np.testing.assert_array_equal(matrix[2], mask)
    assert not np.allclose(matrix[0], clipped)
    assert plain[3] is None and estimate is not None and estimate.shape == clipped.shape
    for a, b in zip(plain[:3], (clipped, truth, mask), strict=True):
        np.testing.assert_array_equal(a, b)
    flagged = mask > 0
    free = ~flagged.any(axis=0)
    np.testing.assert_allclose(estimate[:, free], clipped[:, free], atol=1e-5)
    assert np.abs(estimate - truth)[flagged].mean() < np.abs(clipped - truth)[flagged].mean()
