"""Colour spaces <-> model space (sRGB-encoded, unclamped), for named spaces and ICC profiles.

Every conversion is unclamped and sign-symmetric (``f(-x) = -f(x)``), so out-of-gamut and
above-white values survive a round trip. Work is done in float64; the result is float64 for float64
input and float32 otherwise. Keep float64 between the two conversions when the round trip must be
exact: pure-gamma curves (Adobe RGB) are so steep near black that a float32 intermediate can move a
dark, saturated value by a few 1e-4; with float64 the round trip is exact to float32 rounding.

Named spaces: ``srgb``, ``linear-srgb``, ``display-p3``, ``adobe-rgb``, ``prophoto-rgb``,
``rec2020``, ``linear-rec2020`` (the working space of camera RAW development);
:func:`icc_profile` writes a matrix/TRC profile for any named space but ProPhoto.
An embedded ICC profile is read when it is a matrix/TRC RGB profile (colorants plus
tone curves: ``curv`` gamma or table, ``para`` types 0-4), which covers the profiles cameras and
editors embed; anything else gets a warning naming the profile, and sRGB is assumed.

>>> import numpy as np
>>> adobe = get_colorspace("adobe-rgb")
>>> white_and_beyond = np.array([[[1.0, 1.0, 1.0], [2.0, 0.5, 0.0]]])
>>> model = to_model(white_and_beyond, adobe)        # unclamped: 2.0 stays above white
>>> bool(model[0, 1, 0] > 1.0), np.allclose(from_model(model, adobe), white_and_beyond, atol=1e-7)
(True, True)
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from libdeclip import _native
from libdeclip.errors import UnsupportedInputError

__all__ = [
    "ColorSpace", "ToneCurve", "NAMED_SPACES", "get_colorspace", "colorspace_from_icc",
    "to_model", "from_model", "icc_profile", "Nclx", "colorspace_from_nclx", "nclx_of",
]


@dataclass(frozen=True)
class ToneCurve:
    """A tone curve, encoded value -> linear light, applied sign-symmetrically (``f(-x) = -f(x)``).

    ``kind`` is ``"linear"``, ``"parametric"`` (ICC type 4: ``Y = (aX + b)^g + e`` for ``X >= d``,
    else ``cX + f``; ``params`` = g, a, b, c, d, e, f and ``y_at_d``, the value where the pieces
    meet) or ``"table"`` (``ys`` sampled at ``xs`` on [0, 1], extended beyond 1 with ``params[0]``,
    the last slope). The native core evaluates it, forwards and inverted.
    """

    kind: str
    params: tuple[float, ...] = ()
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()

    def native_spec(self) -> tuple[int, list[float], list[float], list[float]]:
        kinds = {"linear": 0, "parametric": 1, "table": 2}
        return kinds[self.kind], list(self.params), list(self.xs), list(self.ys)


_WHITE_D65 = (0.3127, 0.3290)
_WHITE_D50 = (0.3457, 0.3585)
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def _xy_to_xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> np.ndarray:
    p = np.stack([_xy_to_xyz(xy) for xy in primaries], axis=1)
    scale = np.linalg.solve(p, _xy_to_xyz(white))
    return p * scale


def _adapt(src_white_xyz: np.ndarray, dst_white_xyz: np.ndarray) -> np.ndarray:
    """Bradford chromatic adaptation matrix from one white to another."""
    src = _BRADFORD @ src_white_xyz
    dst = _BRADFORD @ dst_white_xyz
    return np.linalg.inv(_BRADFORD) @ np.diag(dst / src) @ _BRADFORD


def _parametric(g: float, a: float = 1.0, b: float = 0.0, c: float = 0.0, d: float = 0.0,
                e: float = 0.0, f: float = 0.0) -> ToneCurve:
    """ICC type-4 parametric curve Y = (aX + b)^g + e for X >= d, else cX + f.

    The linear segment's slope is re-derived so that both pieces meet at ``d``: published constants
    and a profile's 16.16 fixed-point numbers leave a small gap there, which no input reaches and
    which would make the inverse inexact.
    """
    if d > 0:
        c = ((a * d + b) ** g + e - f) / d
    y_at_d = c * d + f
    return ToneCurve("parametric", tuple(float(v) for v in (g, a, b, c, d, e, f, y_at_d)))


def _table(values: np.ndarray) -> ToneCurve:
    """A sampled tone curve on [0, 1]; extended linearly beyond 1 with its last slope."""
    xs = np.linspace(0.0, 1.0, len(values))
    # A tone curve must not decrease; flat runs (a table's first entries often round to 0) get a
    # negligible tilt so that the curve is invertible.
    ys = np.maximum.accumulate(values.astype(np.float64)) + np.linspace(0.0, 1e-9, len(values))
    slope_hi = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) or 1.0
    return ToneCurve("table", (float(slope_hi),), tuple(xs.tolist()), tuple(ys.tolist()))


SRGB_CURVE = _parametric(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
_GAMMA_ADOBE = _parametric(563 / 256)
_PROPHOTO_CURVE = _parametric(1.8, 1.0, 0.0, 1 / 16, 1 / 32)
_REC2020_CURVE = _parametric(1 / 0.45, 1 / 1.09929682680944, 0.09929682680944 / 1.09929682680944, 1 / 4.5,
                             0.081242858298635)
_LINEAR = ToneCurve("linear")


@dataclass(frozen=True)
class ColorSpace:
    """An RGB space: tone curves (encoded -> linear, per channel) and a matrix to linear sRGB."""

    name: str
    curves: tuple[ToneCurve, ToneCurve, ToneCurve]
    to_linear_srgb: np.ndarray  # 3 x 3, linear RGB of this space -> linear sRGB (D65)

    @property
    def is_srgb(self) -> bool:
        return self.name == "srgb"

    @cached_property
    def native(self) -> _native.Space:
        """This space for the native core's conversions."""
        return _native.Space(
            [c.native_spec() for c in self.curves],
            self.to_linear_srgb.ravel().tolist(),
            np.linalg.inv(self.to_linear_srgb).ravel().tolist(),
            SRGB_CURVE.native_spec(),
            self.is_srgb,
        )


_SRGB_TO_XYZ = _rgb_to_xyz(((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), _WHITE_D65)
#: CIE XYZ (D65) -> linear sRGB.
XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)


def _named(name: str, primaries: tuple[tuple[float, float], ...], white: tuple[float, float],
           curve: ToneCurve) -> ColorSpace:
    m = _rgb_to_xyz(primaries, white)
    if white != _WHITE_D65:
        m = _adapt(_xy_to_xyz(white), _xy_to_xyz(_WHITE_D65)) @ m
    return ColorSpace(name, (curve,) * 3, XYZ_TO_SRGB @ m)


_SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
_REC2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
NAMED_SPACES: dict[str, ColorSpace] = {
    s.name: s
    for s in [
        _named("srgb", _SRGB_PRIMARIES, _WHITE_D65, SRGB_CURVE),
        _named("linear-srgb", _SRGB_PRIMARIES, _WHITE_D65, _LINEAR),
        _named("display-p3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), _WHITE_D65, SRGB_CURVE),
        _named("adobe-rgb", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), _WHITE_D65, _GAMMA_ADOBE),
        _named("prophoto-rgb", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), _WHITE_D50,
               _PROPHOTO_CURVE),
        _named("rec709", _SRGB_PRIMARIES, _WHITE_D65, _REC2020_CURVE),  # BT.709 and BT.2020 share the curve
        _named("rec2020", _REC2020_PRIMARIES, _WHITE_D65, _REC2020_CURVE),
        _named("linear-rec2020", _REC2020_PRIMARIES, _WHITE_D65, _LINEAR),
    ]
}


def get_colorspace(name: str) -> ColorSpace:
    try:
        return NAMED_SPACES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown colour space {name!r}; known: {', '.join(NAMED_SPACES)}") from None


# ------------------------------------------------------------------------------ H.273 (nclx)

#: ``nclx`` colour signalling: (colour primaries, transfer characteristics), ITU-T H.273 codes.
Nclx = tuple[int, int]
_UNSPECIFIED = 2
_PRIMARIES = {1: "bt709", 9: "bt2020", 12: "p3"}
_CURVES = {13: "srgb", 1: "bt709", 6: "bt709", 14: "bt709", 15: "bt709", 8: "linear"}
#: libdeclip's colour space for each (primaries, curve) pair it has.
_SPACES = {
    ("bt709", "srgb"): "srgb", ("bt709", "linear"): "linear-srgb", ("bt709", "bt709"): "rec709",
    ("p3", "srgb"): "display-p3", ("bt2020", "bt709"): "rec2020", ("bt2020", "linear"): "linear-rec2020",
}
_NCLX_OF = {space: next(p for p, n in _PRIMARIES.items() if n == prim)
            for (prim, _), space in _SPACES.items()}
_CURVE_CODE = {"srgb": 13, "bt709": 1, "linear": 8}
_HDR_CURVES = {16: "PQ (SMPTE ST 2084)", 18: "HLG"}


def colorspace_from_nclx(nclx: Nclx) -> ColorSpace:
    """The colour space an ``nclx`` pair (HEIF/AVIF colour signalling) stands for (unspecified
    codes mean sRGB's, as in any untagged file); refused for HDR transfer curves, which libdeclip
    does not repair, and for pairs it has no colour space for.

    >>> colorspace_from_nclx((12, 13)).name, nclx_of("display-p3")
    ('display-p3', (12, 13))
    """
    primaries, curve = nclx
    if curve in _HDR_CURVES:
        raise UnsupportedInputError(
            f"an HDR picture ({_HDR_CURVES[curve]} transfer curve): libdeclip repairs SDR and "
            "scene-linear pictures, not HDR display encodings"
        )
    prim = _PRIMARIES.get(primaries, "bt709" if primaries == _UNSPECIFIED else None)
    tone = _CURVES.get(curve, "srgb" if curve == _UNSPECIFIED else None)
    space = _SPACES.get((prim, tone)) if prim and tone else None
    if space is None:
        raise UnsupportedInputError(
            f"colour primaries {primaries} with transfer curve {curve} (ITU-T H.273 codes) are not a "
            f"colour space libdeclip knows ({', '.join(sorted(set(_SPACES.values())))})"
        )
    return NAMED_SPACES[space]


def nclx_of(space: str | ColorSpace) -> Nclx | None:
    """The ``nclx`` pair that signals the colour space ``space`` (a name, or one read from an ICC
    profile that converts as a named one does, within 1/500), or None if H.273 has none for it."""
    if isinstance(space, ColorSpace):
        probe = np.repeat(np.linspace(0.0, 1.0, 33)[None, :, None], 3, axis=2)
        linear = _native.convert(probe, space.native, True)
        space = next((name for name in _NCLX_OF if np.allclose(
            NAMED_SPACES[name].to_linear_srgb, space.to_linear_srgb, atol=2e-3) and np.allclose(
            _native.convert(probe, NAMED_SPACES[name].native, True), linear, atol=2e-3)), "")
    if space not in _NCLX_OF:
        return None
    curve = next(tone for (_, tone), name in _SPACES.items() if name == space)
    return _NCLX_OF[space], _CURVE_CODE[curve]


# ------------------------------------------------------------------------------------------ ICC


def _s15(data: bytes, offset: int, n: int) -> np.ndarray:
    return np.array(struct.unpack(f">{n}i", data[offset : offset + 4 * n]), dtype=np.float64) / 65536.0


def _icc_curve(data: bytes, offset: int) -> ToneCurve:
    kind = data[offset : offset + 4]
    if kind == b"curv":
        (count,) = struct.unpack(">I", data[offset + 8 : offset + 12])
        if count == 0:
            return _LINEAR
        if count == 1:
            (gamma,) = struct.unpack(">H", data[offset + 12 : offset + 14])
            return _parametric(gamma / 256.0)
        table = np.array(struct.unpack(f">{count}H", data[offset + 12 : offset + 12 + 2 * count]))
        return _table(table / 65535.0)
    if kind == b"para":
        (ftype,) = struct.unpack(">H", data[offset + 8 : offset + 10])
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
        if n is None:
            raise ValueError(f"parametric curve type {ftype}")
        p = _s15(data, offset + 12, n)
        if ftype == 0:
            return _parametric(p[0])
        if ftype == 1:  # Y = (aX + b)^g for X >= -b/a, else 0
            return _parametric(p[0], p[1], p[2], 0.0, -p[2] / p[1])
        if ftype == 2:  # Y = (aX + b)^g + c for X >= -b/a, else c
            return _parametric(p[0], p[1], p[2], 0.0, -p[2] / p[1], p[3], p[3])
        if ftype == 3:
            return _parametric(*p)
        return _parametric(*p)
    raise ValueError(f"tone curve of type {kind!r}")


def _icc_description(data: bytes, tags: dict[bytes, tuple[int, int]]) -> str:
    if b"desc" not in tags:
        return "unnamed profile"
    off, size = tags[b"desc"]
    body = data[off : off + size]
    if body[:4] == b"desc":
        (n,) = struct.unpack(">I", body[8:12])
        return body[12 : 12 + n].rstrip(b"\x00").decode("latin-1", "replace")
    if body[:4] == b"mluc":
        rec_len, first = struct.unpack(">I", body[12:16])[0], body[16:28]
        length, start = struct.unpack(">II", first[4:12])
        del rec_len
        return body[start : start + length].decode("utf-16-be", "replace")
    return "unnamed profile"


def colorspace_from_icc(icc: bytes) -> ColorSpace:
    """A :class:`ColorSpace` from a matrix/TRC RGB ICC profile; warns and returns sRGB otherwise."""
    name = "unreadable profile"
    try:
        if len(icc) < 132 or icc[36:40] != b"acsp":
            raise ValueError("not an ICC profile")
        (count,) = struct.unpack(">I", icc[128:132])
        tags = {}
        for i in range(count):
            sig, off, size = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
            tags[sig] = (off, size)
        name = _icc_description(icc, tags)
        if icc[16:20] != b"RGB " or icc[20:24] != b"XYZ ":
            raise ValueError(f"colour space {icc[16:20]!r} with PCS {icc[20:24]!r}")
        needed = [b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"]
        missing = [t.decode() for t in needed if t not in tags]
        if missing:
            raise ValueError(f"no matrix/TRC tags ({', '.join(missing)}): a LUT-based profile")
        cols = [_s15(icc, tags[t][0] + 8, 3) for t in (b"rXYZ", b"gXYZ", b"bXYZ")]
        to_xyz_d50 = np.stack(cols, axis=1)
        # ICC colorants are adapted to the D50 PCS white (0.9642, 1, 0.8249).
        d50 = np.array([0.9642, 1.0, 0.8249])
        to_srgb = XYZ_TO_SRGB @ _adapt(d50, _xy_to_xyz(_WHITE_D65)) @ to_xyz_d50
        if not np.isfinite(to_srgb).all() or abs(np.linalg.det(to_srgb)) < 1e-6:
            raise ValueError("its colorant matrix is singular: no colour can be converted back")
        curves = [_icc_curve(icc, tags[t][0]) for t in (b"rTRC", b"gTRC", b"bTRC")]
        space = ColorSpace(f"icc:{name}", (curves[0], curves[1], curves[2]), to_srgb)
        # A damaged curve (a gamma of 0, a flat table) cannot be undone: test the round trip.
        probe = np.repeat(np.linspace(0.0, 1.0, 65)[None, :, None], 3, axis=2)
        back = _native.convert(_native.convert(probe, space.native, True), space.native, False)
        if not np.allclose(back, probe, atol=0.02):  # a flat toe in a table is no damage
            raise ValueError("its tone curves cannot be inverted")
        return space
    except (ValueError, struct.error, IndexError, KeyError, np.linalg.LinAlgError) as exc:
        warnings.warn(
            f"ICC profile {name!r} is not supported ({exc}); assuming sRGB", UserWarning, stacklevel=2
        )
        return NAMED_SPACES["srgb"]


def _icc_s15(values: np.ndarray) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _icc_text(text: str) -> bytes:
    """A v2 'desc' tag: ASCII with empty Unicode and ScriptCode parts."""
    ascii_ = text.encode("ascii", "replace") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 2 + 1 + 67)


def _icc_trc(curve: ToneCurve) -> bytes:
    if curve.kind == "linear":
        return b"curv" + bytes(4) + struct.pack(">I", 0)  # no entries: identity
    g, a, b, c, d, e, f, _ = curve.params
    if curve.kind != "parametric" or e != 0 or f != 0:
        raise ValueError("only linear and ICC type 0-3 parametric curves can be written")
    if d == 0 and a == 1 and b == 0:
        return b"para" + bytes(4) + struct.pack(">HH", 0, 0) + _icc_s15(np.array([g]))
    return b"para" + bytes(4) + struct.pack(">HH", 3, 0) + _icc_s15(np.array([g, a, b, c, d]))


def icc_profile(name: str) -> bytes:
    """A version 2 matrix/TRC ICC profile of a named colour space, to embed in the files we write.

    Colorants are adapted to the D50 connection space with Bradford, as ICC requires; reading the
    profile back with :func:`colorspace_from_icc` gives the same space (to 16.16 rounding).
    """
    space = get_colorspace(name)
    if space.curves[0].kind == "parametric" and (space.curves[0].params[5] or space.curves[0].params[6]):
        raise ValueError(f"{name}: its tone curve has no ICC type 0-3 form")
    d50 = np.array([0.9642, 1.0, 0.8249])
    to_xyz_d50 = _adapt(_xy_to_xyz(_WHITE_D65), d50) @ _SRGB_TO_XYZ @ space.to_linear_srgb
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _icc_text(f"libdeclip {name}")),
        (b"cprt", b"text" + bytes(4) + b"No copyright, use freely\0"),
        (b"wtpt", b"XYZ " + bytes(4) + _icc_s15(d50)),
    ]
    for i, sig in enumerate([b"rXYZ", b"gXYZ", b"bXYZ"]):
        tags.append((sig, b"XYZ " + bytes(4) + _icc_s15(to_xyz_d50[:, i])))
    trc = _icc_trc(space.curves[0])
    tags += [(sig, trc) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
        + bytes(12) + b"acsp" + b"APPL" + bytes(4 + 4 + 4 + 4 + 8 + 4) + _icc_s15(d50) + bytes(4)
    )
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


# ------------------------------------------------------------------------------- conversions


def _out_dtype(a: np.ndarray) -> type:
    return np.float64 if a.dtype == np.float64 else np.float32


def to_model(rgb: np.ndarray, space: ColorSpace) -> np.ndarray:
    """H x W x 3 values encoded in ``space`` (1.0 = white) -> sRGB-encoded values, unclamped."""
    dtype = _out_dtype(rgb)
    if space.is_srgb:
        return rgb.astype(dtype, copy=False)
    return _native.convert(rgb, space.native, True).astype(dtype, copy=False)


def from_model(model: np.ndarray, space: ColorSpace) -> np.ndarray:
    """Inverse of :func:`to_model`: sRGB-encoded values -> values encoded in ``space``."""
    dtype = _out_dtype(model)
    if space.is_srgb:
        return model.astype(dtype, copy=False)
    return _native.convert(model, space.native, False).astype(dtype, copy=False)
