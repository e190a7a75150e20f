"""HEIC/HEIF (phones' photos): read and written through pillow-heif (libheif), 8-bit or 10/12-bit,
with the ICC profile or the colour signalling (``nclx``), EXIF and XMP; and what HEIF and AVIF share,
the ISO base media file format they live in: which of the two a file is, and its ``nclx`` colour
(primaries and transfer curve, the colour space of files that carry no ICC profile).

Pixels of 10- and 12-bit files are held as uint16 over the whole 16-bit range, the file's code
scaled so that its top code is 65535 (``Image.significant_bits`` records the file's depth and the
writer scales back): the clip level of such a file is then the same 65535 as for any 16-bit file.

HEIF transforms (rotation and mirror boxes) are applied by libheif when the picture is decoded, so
the pixels come as the photo is seen and the EXIF orientation says 1; a repaired copy is written
in that orientation.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from libdeclip._tiffexif import with_orientation
from libdeclip.color import Nclx, colorspace_from_nclx
from libdeclip.errors import UnsupportedInputError
from libdeclip.io.image import Image, check_dimensions
from libdeclip.io.jpeg import EXIF_PREFIX

__all__ = ["HEIF_BRANDS", "AVIF_BRANDS", "DEFAULT_HEIF_QUALITY", "isobmff_kind", "read_nclx", "read_pixi",
           "to_wide_codes", "to_file_codes", "read_heif", "encode_heif"]

#: ``ftyp`` brands of HEVC-coded HEIF (the major brand or a compatible one).
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
#: ``ftyp`` brands of AV1-coded HEIF (AVIF).
AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: Quality of HEIC output (libheif's 0-100; x265 at 90 keeps a photo's grain and texture).
DEFAULT_HEIF_QUALITY = 90


def isobmff_kind(head: bytes) -> str | None:
    """``"heif"``, ``"avif"`` or None from a file's first bytes (its ``ftyp`` box; at least 32
    bytes are needed to see the compatible brands)."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", head[:4])[0]
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    if any(b in AVIF_BRANDS for b in brands):
        return "avif"
    if any(b in HEIF_BRANDS for b in brands):
        return "heif"
    return None


# ------------------------------------------------------------------------------- colour (nclx)

def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, end) of the boxes in ``data[start:end]``."""
    found, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1 and pos + 16 <= end:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            break
        found.append((kind, pos + head, pos + size))
        pos += size
    return found


def _child(data: bytes, boxes: list[tuple[bytes, int, int]], kind: bytes) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in boxes if k == kind), None)


def _properties(data: bytes) -> list[tuple[bytes, int, int]]:
    """The item property boxes of a HEIF/AVIF file (meta > iprp > ipco), in file order."""
    meta = _child(data, _boxes(data, 0, len(data)), b"meta")
    if meta is None:
        return []
    iprp = _child(data, _boxes(data, meta[0] + 4, meta[1]), b"iprp")  # meta is a full box: +4
    ipco = iprp and _child(data, _boxes(data, *iprp), b"ipco")
    return _boxes(data, *ipco) if ipco else []


def read_nclx(data: bytes) -> Nclx | None:
    """The first ``nclx`` colour box among a HEIF/AVIF file's item properties, or None (none there,
    or the file carries an ICC profile instead)."""
    for kind, start, end in _properties(data):
        if kind == b"colr" and end - start >= 10 and data[start : start + 4] == b"nclx":
            primaries, curve = struct.unpack_from(">HH", data, start + 4)
            return primaries, curve
    return None


def read_pixi(data: bytes) -> int | None:
    """Bits per channel from the first pixel-information box (``pixi``) among a HEIF/AVIF file's
    item properties, or None."""
    for kind, start, end in _properties(data):
        if kind == b"pixi" and end - start >= 6 and data[start + 4] >= 1:  # full box, channel count
            return int(data[start + 5])
    return None


def check_declared_size(data: bytes, limit: int) -> None:
    """Refuse a HEIF/AVIF file whose largest image-spatial-extents box (``ispe``: the primary
    image's, or a grid's, full size) is above ``limit`` pixels, before libheif or libavif sees it:
    they refuse such a file with their own security limit, in words that say it is damaged."""
    sizes = [struct.unpack_from(">II", data, start + 4) for kind, start, end in _properties(data)
             if kind == b"ispe" and end - start >= 12]
    if sizes:
        width, height = max(sizes, key=lambda wh: wh[0] * wh[1])
        check_dimensions(width, height, limit)


#: An ``iloc`` entry: item_ID, construction_method, data_reference_index, base_offset, and its
#: extents as (extent_index, offset, length).
IlocItem = tuple[int, int, int, int, list[tuple[int, int, int]]]


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _parse_iloc(payload: bytes) -> tuple[int, int, list[IlocItem]]:
    """(version, index_size, items) of an ``iloc`` box's payload."""
    version = payload[0]
    sizes = struct.unpack_from(">H", payload, 4)[0]
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    pos = 6

    def number(size: int) -> int:
        nonlocal pos
        value = int.from_bytes(payload[pos : pos + size], "big") if size else 0
        pos += size
        return value

    count = number(2 if version < 2 else 4)
    items: list[IlocItem] = []
    for _ in range(count):
        item = number(2 if version < 2 else 4)
        method = number(2) & 15 if version in (1, 2) else 0
        reference, base = number(2), number(base_size)
        extents = [(number(index_size), number(offset_size), number(length_size)) for _ in range(number(2))]
        items.append((item, method, reference, base, extents))
    return version, index_size, items


def _write_iloc(items: list[IlocItem], index_size: int) -> bytes:
    """An ``iloc`` box (version 1 or 2: 32-bit offsets, lengths and base offsets)."""
    version = 2 if max(i[0] for i in items) > 0xFFFF else 1
    out = bytearray(struct.pack(">B3xH", version, 0x4440 | index_size))
    out += struct.pack(">H" if version < 2 else ">I", len(items))
    for item, method, reference, base, extents in items:
        out += struct.pack(">H" if version < 2 else ">I", item)
        out += struct.pack(">HHIH", method, reference, base, len(extents))
        for index, offset, length in extents:
            out += index.to_bytes(index_size, "big") if index_size else b""
            out += struct.pack(">II", offset, length)
    return _box(b"iloc", bytes(out))


def add_metadata(data: bytes, icc: bytes | None, exif: bytes | None, xmp: bytes | None) -> bytes:
    """A HEIF/AVIF file (one whose encoder took no metadata: imagecodecs' libavif) with ``icc``
    as a ``colr`` (``prof``) property of its primary image, and ``exif`` (TIFF bytes) and ``xmp``
    as metadata items describing it (``Exif`` and ``mime`` items, ``cdsc`` references, their bytes
    in an ``mdat`` box at the end), as ISO/IEC 23008-12 lays them out and libheif writes them.
    The file's other boxes are kept; item locations after the grown ``meta`` box are moved."""
    if not (icc or exif or xmp):
        return data
    top = _boxes(data, 0, len(data))
    meta = next(((s, e) for k, s, e in top if k == b"meta"), None)
    if meta is None:
        raise UnsupportedInputError("the encoder wrote no 'meta' box: no place for the metadata")
    children = _boxes(data, meta[0] + 4, meta[1])
    kinds = [k for k, _s, _e in children]
    body = {k: data[s:e] for k, s, e in children}
    if data[meta[0] - 4 : meta[0]] != b"meta" or not {b"pitm", b"iloc", b"iinf", b"iprp"} <= set(body):
        raise UnsupportedInputError("the encoder's meta box is not laid out as expected")
    pitm = body[b"pitm"]
    primary = struct.unpack_from(">H" if pitm[0] == 0 else ">I", pitm, 4)[0]
    _version, index_size, items = _parse_iloc(body[b"iloc"])
    new_items = [(name, payload) for name, payload in ((b"Exif", exif and b"\0\0\0\0" + exif), (b"mime", xmp))
                 if payload]
    next_id = max(i[0] for i in items) + 1
    ids = list(range(next_id, next_id + len(new_items)))
    # iinf: one infe (version 2) per new item
    iinf = body[b"iinf"]
    iinf_version = iinf[0]
    count_format = ">H" if iinf_version == 0 else ">I"
    count = struct.unpack_from(count_format, iinf, 4)[0]
    entries = iinf[4 + struct.calcsize(count_format):]
    for item, (name, _payload) in zip(ids, new_items, strict=True):
        infe = struct.pack(">B3xHH4s", 2, item, 0, name) + b"\0"
        if name == b"mime":
            infe += b"application/rdf+xml\0"
        entries += _box(b"infe", infe)
    body[b"iinf"] = iinf[:4] + struct.pack(count_format, count + len(new_items)) + entries
    # iref: each new item describes (cdsc) the primary image
    if new_items:
        refs = b"".join(_box(b"cdsc", struct.pack(">HHH", item, 1, primary)) for item in ids)
        if b"iref" in body and body[b"iref"][0] == 0:
            body[b"iref"] = body[b"iref"] + refs
        elif b"iref" not in body:
            body[b"iref"] = struct.pack(">B3x", 0) + refs
            kinds.append(b"iref")
        else:
            raise UnsupportedInputError("the encoder wrote an iref box of version 1: not supported here")
    # iprp: the ICC profile as a colr property of the primary image
    if icc:
        iprp = body[b"iprp"]
        parts = _boxes(iprp, 0, len(iprp))
        ipco = next((iprp[s:e] for k, s, e in parts if k == b"ipco"), b"")
        ipma = next((iprp[s:e] for k, s, e in parts if k == b"ipma"), b"")
        index = len(_boxes(ipco, 0, len(ipco))) + 1
        ipco += _box(b"colr", b"prof" + icc)
        ipma = _add_association(ipma, primary, index)
        body[b"iprp"] = b"".join(_box(k, ipco if k == b"ipco" else ipma if k == b"ipma" else iprp[s:e])
                                 for k, s, e in parts)

    def build(shift: int, tail_start: int) -> bytes:
        moved: list[IlocItem] = []
        for item, method, reference, base, extents in items:
            if method == 0 and base:  # a base offset into the file: it moves with what follows meta
                moved.append((item, method, reference, base + shift if base >= meta[1] else base, extents))
            elif method == 0:
                moved.append((item, method, reference, base,
                              [(i, o + shift if o >= meta[1] else o, n) for i, o, n in extents]))
            else:
                moved.append((item, method, reference, base, extents))
        at = tail_start + 8
        for item, (_name, payload) in zip(ids, new_items, strict=True):
            moved.append((item, 0, 0, 0, [(0, at, len(payload))]))
            at += len(payload)
        parts = [data[meta[0] : meta[0] + 4]]
        for kind in kinds:
            parts.append(_write_iloc(moved, index_size) if kind == b"iloc" else _box(kind, body[kind]))
        return _box(b"meta", b"".join(parts))

    first = build(0, 0)
    shift = len(first) - (meta[1] - meta[0] + 8)
    tail_start = len(data) + shift
    new_meta = build(shift, tail_start)
    tail = _box(b"mdat", b"".join(payload for _name, payload in new_items)) if new_items else b""
    return data[: meta[0] - 8] + new_meta + data[meta[1] :] + tail


def _add_association(ipma: bytes, item: int, index: int) -> bytes:
    """An ``ipma`` payload with property ``index`` (not essential) associated with ``item``."""
    version, flags = ipma[0], int.from_bytes(ipma[1:4], "big")
    wide_index, wide_item = flags & 1, version >= 1
    if not wide_index and index > 127:
        raise UnsupportedInputError("too many item properties for the file's ipma box")
    count = struct.unpack_from(">I", ipma, 4)[0]
    out, pos = bytearray(ipma[:8]), 8
    for _ in range(count):
        item_id = struct.unpack_from(">I" if wide_item else ">H", ipma, pos)[0]
        pos += 4 if wide_item else 2
        n = ipma[pos]
        size = n * (2 if wide_index else 1)
        links = ipma[pos + 1 : pos + 1 + size]
        pos += 1 + size
        if item_id == item:
            links += struct.pack(">H", index) if wide_index else bytes([index])
            n += 1
        out += struct.pack(">I" if wide_item else ">H", item_id) + bytes([n]) + links
    return bytes(out)


# ------------------------------------------------------------------------------ bit depth


def to_wide_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """``bits``-bit codes (uint16, 0 .. 2**bits - 1) over the 16-bit range, the top code at 65535
    (bit replication: exact, and undone by :func:`to_file_codes`)."""
    codes = codes.astype(np.uint16, copy=False)
    return (codes << (16 - bits)) | (codes >> (2 * bits - 16))


def to_file_codes(wide: np.ndarray, bits: int) -> np.ndarray:
    """uint16 pixels over the 16-bit range as ``bits``-bit codes, rounded to the nearest."""
    top = (1 << bits) - 1
    return ((wide.astype(np.uint32) * top + 32767) // 65535).astype(np.uint16)


# ---------------------------------------------------------------------------------------- HEIF


def read_heif(data: bytes, limit: int) -> Image:
    """A HEIC/HEIF file's bytes (its primary image) as an :class:`Image`, refused from its header
    if above ``limit`` pixels."""
    import pillow_heif

    check_declared_size(data, limit)
    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    check_dimensions(heif.size[0], heif.size[1], limit)
    info = heif.info
    bits = int(info.get("bit_depth") or 8)
    mode = heif.mode
    if mode not in ("L", "RGB", "RGBA", "L;16", "RGB;16", "RGBA;16"):
        raise UnsupportedInputError(f"HEIF colour mode {mode} is not supported (grey, RGB or RGBA)")
    pixels = np.asarray(heif)  # decodes; libheif has applied the rotation and mirror boxes
    if bits > 8:  # pillow-heif shifts the codes to the top bits: undo, then spread over 16 bits
        pixels = to_wide_codes(pixels >> (16 - bits), bits)
    icc = info.get("icc_profile") or None
    if icc is not None and info.get("icc_profile_type") != "prof":
        icc = None  # a restricted ICC (rICC) describes no colour space we can use as is
    nclx = None
    profile = info.get("nclx_profile")
    if icc is None and profile:
        nclx = (int(profile["color_primaries"]), int(profile["transfer_characteristics"]))
        colorspace_from_nclx(nclx)  # refuses HDR and unknown colour
    exif = info.get("exif") or None
    if exif is not None:  # the pixels come upright: an orientation other than 1 would turn them again
        exif = with_orientation(exif[len(EXIF_PREFIX):] if exif.startswith(EXIF_PREFIX) else exif, 1)
    chroma = info.get("chroma")
    return Image(
        pixels=pixels,
        format="heif",
        icc_profile=icc,
        exif=exif,
        xmp=info.get("xmp") or None,
        orientation=1 if exif else None,
        significant_bits=bits if bits > 8 else None,
        nclx=nclx,
        encoding={"chroma": int(chroma)} if chroma in (420, 422, 444) else {},
    )


def encode_heif(image: Image, quality: int | None, out: Any) -> None:
    """Write ``image`` as HEIC to the stream ``out``: 8-bit, or 10/12-bit as read (16-bit pixels of
    another source at 12 bits), at ``quality`` (default :data:`DEFAULT_HEIF_QUALITY`), with its
    ICC profile or colour signalling, EXIF and XMP, and the source's chroma subsampling (else
    4:2:0, what cameras write)."""
    import pillow_heif

    pixels = image.pixels
    if pixels.dtype not in (np.uint8, np.uint16):
        raise UnsupportedInputError(f"HEIC holds 8-, 10- or 12-bit integers, not {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]  # grey + alpha: HEIC has no such layout
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    kwargs: dict[str, Any] = {"quality": quality if quality is not None else DEFAULT_HEIF_QUALITY,
                              "chroma": image.encoding.get("chroma", 420)}
    if pixels.dtype == np.uint16:
        bits = image.significant_bits or 12
        pixels = to_file_codes(pixels, bits) << (16 - bits)  # pillow-heif takes the top bits of 16
        mode += ";16"
        kwargs["bit_depth"] = bits
    heif = pillow_heif.from_bytes(mode=mode, size=(pixels.shape[1], pixels.shape[0]),
                                  data=np.ascontiguousarray(pixels).tobytes())
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    else:
        primaries, curve = image.nclx or (1, 13)  # sRGB
        kwargs.update(color_primaries=primaries, transfer_characteristics=curve, matrix_coefficients=6,
                      full_range_flag=1)
    if image.exif:
        kwargs["exif"] = EXIF_PREFIX + image.exif
    if image.xmp:
        kwargs["xmp"] = image.xmp
    heif.save(out, **kwargs)
