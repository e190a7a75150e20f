from __future__ import annotations

import numpy as np
import pytest

from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE, Fit, apply_fit, default_fit


def test_defaults_follow_the_dtype() -> None:
    assert default_fit(np.dtype(np.uint8)) is Fit.COMPRESS
    assert default_fit(np.dtype(np.uint16)) is Fit.COMPRESS
    assert default_fit(np.dtype(np.float32)) is Fit.FLOAT


def test_compress_is_smooth_monotone_and_fits() -> None:
    v = np.linspace(-0.4, 2.0, 24001)
    out = apply_fit(v, "compress", vmin=-0.4, vmax=2.0)
    assert out[0] == pytest.approx(0.0, abs=1e-12) and out[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(out) > 0)  # strictly increasing: no two recovered values merge
    middle = (v >= DEFAULT_TOE) & (v <= DEFAULT_KNEE)
    np.testing.assert_array_equal(out[middle], v[middle])
    slope = np.diff(out) / np.diff(v)
    assert np.abs(np.diff(slope)).max() < 1e-2  # continuous slope (curvature only): no kink


def test_compress_without_excess_changes_nothing() -> None:
    v = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(apply_fit(v, Fit.COMPRESS, vmin=0.0, vmax=1.0), v)


def test_clamp_and_float() -> None:
    v = np.array([-0.5, 0.2, 1.7])
    np.testing.assert_array_equal(apply_fit(v, "clamp", -0.5, 1.7), [0.0, 0.2, 1.0])
    np.testing.assert_array_equal(apply_fit(v, "float", -0.5, 1.7), v)
    with pytest.raises(ValueError):
        apply_fit(v, "squash", 0, 1)
