"""RepairOptions, the one options object, and the one repair entry for arrays and files."""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import libdeclip
from libdeclip import Declipper, RepairOptions, read_image
from libdeclip.engine import available_devices
from libdeclip.errors import ModelError, UnsupportedInputError
from libdeclip.options import COMBINED, Device, needs_model

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "night_lamps.png"
BAD = REPO / "tests" / "data" / "bad"


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    photo = (rng.random((64, 80, 3)) * 200).astype(np.uint8)
    photo[20:40, 30:50] = 255
    photo[5:9, 5:60, 2] = 0
    return photo


def test_options_are_checked_once_with_one_line_errors() -> None:
    with pytest.raises(UnsupportedInputError, match="unknown method 'magic'"):
        RepairOptions(method="magic")
    with pytest.raises(UnsupportedInputError, match="feather must be 0 to 254"):
        RepairOptions(feather=-1)
    with pytest.raises(UnsupportedInputError, match="feather must be 0 to 254"):
        RepairOptions(feather=2.5)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match="unknown fit 'squash'"):
        RepairOptions(fit="squash")
    with pytest.raises(UnsupportedInputError, match="unknown device"):
        RepairOptions(device="tpu")
    with pytest.raises(TypeError, match="no option 'colour'"):
        RepairOptions().replace(colour="srgb")
    assert RepairOptions(fit="clamp").fit is libdeclip.Fit.CLAMP
    assert RepairOptions(feather=np.int64(3)).feather == 3  # type: ignore[arg-type]


def test_options_are_frozen_and_replace_checks_the_copy() -> None:
    options = RepairOptions(method="cross-channel")
    with pytest.raises(AttributeError):
        options.method = "biharmonic"  # type: ignore[misc]
    assert options.replace(consistency=False).consistency is False
    assert options.consistency is True
    with pytest.raises(UnsupportedInputError):
        options.replace(feather=999)


def test_the_automatic_method_follows_the_picture() -> None:
    options = RepairOptions()
    assert options.method_for(raw=False) == "declipnet"
    assert options.method_for(raw=True) == COMBINED
    assert RepairOptions(method="biharmonic").method_for(raw=True) == "biharmonic"
    assert needs_model(None) and needs_model(COMBINED) and not needs_model("inpaint-opposed")


def test_declip_takes_options_or_keywords_alike() -> None:
    photo = _photo()
    by_keywords = libdeclip.declip(photo, method="cross-channel", consistency=False)
    by_options = libdeclip.declip(photo, RepairOptions(method="cross-channel", consistency=False))
    over_options = libdeclip.declip(photo, RepairOptions(method="biharmonic"), method="cross-channel",
                                    consistency=False)
    assert np.array_equal(by_keywords, by_options) and np.array_equal(by_keywords, over_options)
    assert not np.array_equal(by_keywords, photo)


def test_declipper_runs_every_method_and_refuses_another_model() -> None:
    photo = _photo()
    with Declipper(device="cpu") as session:
        for method in ("cross-channel", "inpaint-opposed", "biharmonic"):
            assert np.array_equal(session.run(photo, method=method), libdeclip.declip(photo, method=method))
        assert np.array_equal(session.run(photo), libdeclip.declip(photo, device="cpu"))
        with pytest.raises(UnsupportedInputError, match="this session runs"):
            session.run(photo, model="declipnet-v1")
        with pytest.raises(UnsupportedInputError, match="camera RAW only"):
            session.run(photo, method=COMBINED)


def test_a_session_loads_its_model_only_for_the_network() -> None:
    broken = BAD / "model_not_onnx.onnx"
    with pytest.raises(ModelError):
        Declipper(broken, device="cpu")  # loaded at once by default: refused at once
    session = Declipper(broken, device="cpu", load=False)  # the file is there: refused at its first use
    photo = _photo()
    classical = libdeclip.declip(photo, method="cross-channel")
    assert np.array_equal(session.run(photo, method="cross-channel"), classical)
    with pytest.raises(ModelError):
        session.run(photo)
    with pytest.raises(ModelError, match="model file not found"):
        Declipper(REPO / "no-such-model.onnx")


def test_repair_takes_an_image_and_keeps_its_metadata() -> None:
    image = read_image(DEMO)
    with Declipper(device="cpu") as session:
        repaired = session.repair(image, method="inpaint-opposed")
        assert repaired.format == image.format and repaired.path == image.path
        assert np.array_equal(repaired.pixels, libdeclip.declip(image.pixels, method="inpaint-opposed"))


def test_repair_of_a_camera_raw_uses_its_photosites() -> None:
    image = read_image(BAD / "dng_ok_bayer.dng")
    assert image.raw is not None
    with Declipper(device="cpu") as session:
        default = session.repair(image)
        opposed = session.repair(image, method="inpaint-opposed")
    assert default.pixels.dtype == np.float32 and default.raw is not None
    mask = image.raw_mask
    assert mask is not None
    # nothing moves outside the photosite mask, nothing under it moves below what was recorded
    assert np.array_equal(default.pixels[~mask], image.pixels[..., :3][~mask])
    assert (opposed.pixels[mask] >= image.pixels[..., :3][mask]).all()


def test_declip_raw_is_a_deprecated_alias_of_repair() -> None:
    image = read_image(BAD / "dng_ok_bayer.dng")
    with Declipper(device="cpu") as session:
        with pytest.warns(DeprecationWarning, match="Declipper.repair"):
            old = libdeclip.declip_raw(session, image, method="inpaint-opposed")
        assert np.array_equal(old, session.repair(image, method="inpaint-opposed").pixels)


def test_devices_and_version() -> None:
    assert str(Device.CPU) == "cpu" and Device("cuda") is Device.CUDA
    assert available_devices()[0] == "cpu"
    assert libdeclip.__version__ == metadata.version("libdeclip")
    assert libdeclip.build_info()["version"] == metadata.version("libdeclip")
    with Declipper(device=Device.CPU) as session:
        assert session.device == "cpu"
    with pytest.raises(AttributeError, match="no attribute 'versoin'"):
        libdeclip.versoin  # noqa: B018 (the module's __getattr__ names what is missing)


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    from libdeclip.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"libdeclip {metadata.version('libdeclip')}\n"


def test_the_session_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libdeclip, "_sessions", type(libdeclip._sessions)())
    monkeypatch.setattr(libdeclip, "SESSION_CACHE_SIZE", 2)
    photo = _photo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in ("declipnet-v1", "declipnet-v2", "declipnet-v2-int8"):
            libdeclip.declip(photo, model=model, device="cpu")
    assert len(libdeclip._sessions) == 2
    assert [key[0].name for key in libdeclip._sessions] == ["declipnet-v2.onnx", "declipnet-v2-int8.onnx"]
