from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import ImageCms

from libdeclip.color import NAMED_SPACES, colorspace_from_icc, from_model, get_colorspace, to_model


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    """Real photo-like values plus HDR and out-of-gamut ones: -0.5 .. 2.5."""
    rng = np.random.default_rng(0)
    v = rng.uniform(-0.5, 2.5, size=(64, 64, 3)).astype(np.float32)
    v[0, :11, :] = np.linspace(0, 1, 11, dtype=np.float32)[:, None]  # the greys, exactly
    return v


@pytest.mark.parametrize("name", list(NAMED_SPACES))
def test_round_trip_is_unclamped_and_exact(name: str, values: np.ndarray) -> None:
    space = get_colorspace(name)
    assert to_model(values, space).dtype == np.float32
    v64 = values.astype(np.float64)  # float64 between the conversions, float32 at both ends
    there = from_model(v64, space)
    back = to_model(there, space).astype(np.float32)
    assert np.abs(back - values).max() <= 1e-5
    forth = from_model(to_model(v64, space), space).astype(np.float32)
    assert np.abs(forth - values).max() <= 1e-5
    # white stays white, black stays black, in every space
    np.testing.assert_allclose(there[0, 10], [1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(there[0, 0], [0, 0, 0], atol=1e-7)


@pytest.mark.parametrize(
    "name, expected",
    [  # sRGB pure red expressed in other spaces (published conversions)
        ("display-p3", [0.9175, 0.2003, 0.1386]),
        ("adobe-rgb", [0.8590, 0.0, 0.0]),
        ("prophoto-rgb", [0.7023, 0.2757, 0.1036]),
        ("linear-srgb", [1.0, 0.0, 0.0]),
    ],
)
def test_known_values(name: str, expected: list[float]) -> None:
    red = np.array([[[1.0, 0.0, 0.0]]], dtype=np.float32)
    np.testing.assert_allclose(from_model(red, get_colorspace(name))[0, 0], expected, atol=2e-3)
    mid = np.array([[[0.5, 0.5, 0.5]]], dtype=np.float32)
    assert abs(from_model(mid, get_colorspace("linear-srgb"))[0, 0, 0] - 0.21404) < 1e-4


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown colour space 'cmyk'"):
        get_colorspace("cmyk")


def test_littlecms_srgb_profile_matches_named_srgb(values: np.ndarray) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    space = colorspace_from_icc(icc)
    assert space.name.startswith("icc:")
    photo = np.clip(values, 0, 1)
    # the profile's s15Fixed16 colorants and D50 adaptation leave a tiny difference
    assert np.abs(to_model(photo, space) - photo).max() < 2e-3
    assert np.abs(to_model(from_model(values.astype(np.float64), space), space) - values).max() <= 1e-5


def _profile(curve: bytes, desc: str = "Test RGB") -> bytes:
    """A minimal matrix/TRC RGB profile with Adobe RGB colorants (D50-adapted) and ``curve``."""
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))

    d = desc.encode()
    tags = {
        b"desc": b"desc\x00\x00\x00\x00" + struct.pack(">I", len(d) + 1) + d + b"\x00",
        b"rXYZ": xyz(0.60974, 0.31111, 0.01947),
        b"gXYZ": xyz(0.20528, 0.62567, 0.06087),
        b"bXYZ": xyz(0.14919, 0.06322, 0.74457),
        b"rTRC": curve, b"gTRC": curve, b"bTRC": curve,
    }
    table, body = b"", b""
    offset = 132 + 12 * len(tags)
    for sig, data in tags.items():
        data += b"\x00" * (-len(data) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    header = bytearray(128)
    header[16:20], header[20:24], header[36:40] = b"RGB ", b"XYZ ", b"acsp"
    out = bytes(header) + struct.pack(">I", len(tags)) + table + body
    return struct.pack(">I", len(out)) + out[4:]


def test_icc_with_gamma_matches_adobe_rgb(values: np.ndarray) -> None:
    gamma = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 563)  # u8Fixed8: 563/256
    space = colorspace_from_icc(_profile(gamma, "Compatible with Adobe RGB"))
    assert space.name == "icc:Compatible with Adobe RGB"
    photo = np.clip(values, 0, 1)
    adobe = get_colorspace("adobe-rgb")
    assert np.abs(to_model(photo, space) - to_model(photo, adobe)).max() < 2e-3
    assert np.abs(to_model(from_model(values.astype(np.float64), space), space) - values).max() <= 1e-5


def test_icc_with_table_and_parametric_curves(values: np.ndarray) -> None:
    xs = np.linspace(0, 1, 1024)
    table = b"curv\x00\x00\x00\x00" + struct.pack(">I", 1024) + struct.pack(
        ">1024H", *np.rint(xs**2.2 * 65535).astype(int)
    )
    para = b"para\x00\x00\x00\x00" + struct.pack(">HH", 3, 0) + struct.pack(
        ">5i", *(round(v * 65536) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    )
    for curve in (table, para):
        space = colorspace_from_icc(_profile(curve))
        assert np.abs(to_model(from_model(values.astype(np.float64), space), space) - values).max() <= 1e-5


def test_unsupported_profiles_warn_and_fall_back_to_srgb() -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    with pytest.warns(UserWarning, match="is not supported.*assuming sRGB"):
        assert colorspace_from_icc(lab).is_srgb
    with pytest.warns(UserWarning, match="'unreadable profile' is not supported"):
        assert colorspace_from_icc(b"garbage").is_srgb
