from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import libdeclip
from libdeclip.mask import clip_masks
from tests.conftest import REPO


def test_unclipped_values_are_identical(demo_rgb: np.ndarray) -> None:
    image = demo_rgb.astype(np.float32) / 255.0
    out = libdeclip.declip(image)
    assert out.shape == image.shape and out.dtype == np.float32
    high, low = clip_masks(image)
    clipped = (high | low).any(axis=2)
    assert 0.01 < clipped.mean() < 0.5
    # every pixel far from clipping, and every unclipped channel of a partly clipped pixel
    np.testing.assert_array_equal(out[~clipped], image[~clipped])
    np.testing.assert_array_equal(out[~(high | low)], image[~(high | low)])
    # clipped values only move outwards, and the model does recover some highlight above 1
    assert (out[high] >= image[high]).all() and (out[low] <= image[low]).all()
    assert out.max() > 1.0
    assert np.isfinite(out).all()


def test_unclipped_image_is_returned_unchanged(demo_rgb: np.ndarray) -> None:
    image = np.clip(demo_rgb.astype(np.float32) / 255.0, 0.1, 0.9)
    out = libdeclip.declip(image)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_odd_sizes(demo_rgb: np.ndarray) -> None:
    image = demo_rgb[100:157, 200:271].astype(np.float32) / 255.0  # 57 x 71: not multiples of 8
    assert libdeclip.declip(image).shape == (57, 71, 3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8), np.float32), "H x W x 3"),
        (np.zeros((8, 8, 3), np.uint8), "float32"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_input_is_a_clear_error(bad: object, message: str) -> None:
    with pytest.raises(libdeclip.UnsupportedInputError, match=message):
        libdeclip.declip(bad)  # type: ignore[arg-type]


def test_model_that_breaks_the_contract_is_refused(tmp_path: Path) -> None:
    proto = onnx.load(str(libdeclip.engine.DEFAULT_MODEL))
    del proto.metadata_props[:]
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(libdeclip.ModelError, match="not a libdeclip model"):
        libdeclip.model_info(bad)
    with pytest.raises(libdeclip.ModelError, match="not found"):
        libdeclip.model_info(tmp_path / "missing.onnx")


def test_runtime_never_imports_torch() -> None:
    code = (
        "import sys, numpy as np, libdeclip\n"
        "x = np.full((24, 24, 3), 0.5, np.float32); x[4:9, 4:9] = 1.0\n"
        "libdeclip.declip(x)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'training' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
