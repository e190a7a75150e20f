from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO_PHOTO = REPO / "examples" / "night_lamps.png"


@pytest.fixture(scope="session")
def demo_rgb() -> np.ndarray:
    """The shipped demo photo (real, with real blown highlights) as H x W x 3 uint8."""
    with Image.open(DEMO_PHOTO) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real photos for short training runs: ../shared/data/train photos when present,
    else the demo photo (so the training tests also run on a fresh clone)."""
    folder = tmp_path_factory.mktemp("photos")
    train = SHARED_DATA / "train"
    sources = sorted((train / "bsds").glob("*.jpg"))[:6] if train.is_dir() else []
    for src in sources or [DEMO_PHOTO]:
        shutil.copy(src, folder / src.name)
    return folder


def tiny_config_text(photo_folder: Path, out_dir: Path, steps: int, **overrides: object) -> str:
    """A TOML config for a few fast steps with all three losses (overridable)."""
    import json

    values: dict[str, object] = {
        "name": "test",
        "out_dir": str(out_dir),
        "data_root": str(photo_folder),
        "steps": steps,
        "checkpoint_every": 2,
        "log_every": 1,
        "crop": 32,
        "batch": 2,
        "width": 8,
        "disc_width": 8,
        "perceptual_layers": ["block2_conv1", "block2_conv2"],
        "threads": 1,
    }
    values.update(overrides)
    # JSON scalars, strings and lists are valid TOML values.
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
