"""Carry the EXIF sub-IFD of a TIFF over to the TIFF we write (tifffile reads it, cannot write it).

Only classic TIFF (not BigTIFF). Entries are decoded to numbers on read and encoded again in the
output's byte order, with their out-of-line values laid out after the new IFD, so no offset of the
source file survives. Nested IFD pointers (the interoperability IFD) are dropped.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

EXIF_IFD_TAG = 34665
ORIENTATION_TAG = 274
# tifffile refuses to write tag 34665 itself, so the writer asks for this unassigned tag, which
# sorts into the same place among the IFD's entries, and append_exif renames it.
PLACEHOLDER_TAG = 34664
_INTEROP_IFD_TAG = 40965
# TIFF field type -> (struct code of one element, elements per count)
_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1), 2: ("B", 1), 3: ("H", 1), 4: ("I", 1), 5: ("I", 2), 6: ("b", 1), 7: ("B", 1),
    8: ("h", 1), 9: ("i", 1), 10: ("i", 2), 11: ("f", 1), 12: ("d", 1), 13: ("I", 1),
}
_MAX_VALUE_BYTES = 1 << 20  # an EXIF value larger than this is not believable


@dataclass(frozen=True)
class ExifEntry:
    tag: int
    type: int
    count: int
    values: tuple[int | float, ...]

    def encode(self, order: str) -> bytes:
        code, per = _TYPES[self.type]
        return struct.pack(f"{order}{self.count * per}{code}", *self.values)


def _header(f: BinaryIO) -> tuple[str, int] | None:
    f.seek(0)
    head = f.read(8)
    order = "<" if head[:2] == b"II" else ">"
    if len(head) < 8 or struct.unpack(order + "H", head[2:4])[0] != 42:
        return None  # BigTIFF or not a TIFF
    return order, struct.unpack(order + "I", head[4:8])[0]


def _ifd_entries(f: BinaryIO, order: str, offset: int) -> list[tuple[int, int, int, bytes, int]]:
    """(tag, type, count, 4-byte value field, file position of that field) for one IFD."""
    f.seek(offset)
    (n,) = struct.unpack(order + "H", f.read(2))
    out = []
    for i in range(n):
        raw = f.read(12)
        tag, typ, count = struct.unpack(order + "HHI", raw[:8])
        out.append((tag, typ, count, raw[8:], offset + 2 + 12 * i + 8))
    return out


def read_exif(f: BinaryIO) -> tuple[ExifEntry, ...] | None:
    """The EXIF sub-IFD of a classic TIFF's first image, or None if it has none."""
    header = _header(f)
    if header is None:
        return None
    order, ifd0 = header
    pointer = [e for e in _ifd_entries(f, order, ifd0) if e[0] == EXIF_IFD_TAG]
    if not pointer:
        return None
    (exif_offset,) = struct.unpack(order + "I", pointer[0][3])
    entries = []
    for tag, typ, count, field, _ in _ifd_entries(f, order, exif_offset):
        if typ not in _TYPES or tag == _INTEROP_IFD_TAG:
            continue
        code, per = _TYPES[typ]
        size = struct.calcsize(code) * per * count
        if size > _MAX_VALUE_BYTES:
            continue
        if size <= 4:
            data = field[:size]
        else:
            f.seek(struct.unpack(order + "I", field)[0])
            data = f.read(size)
            if len(data) < size:
                continue
        entries.append(ExifEntry(tag, typ, count, struct.unpack(f"{order}{count * per}{code}", data)))
    return tuple(entries)


def append_exif(f: BinaryIO, entries: tuple[ExifEntry, ...]) -> None:
    """Append ``entries`` as an EXIF IFD to a TIFF written with a :data:`PLACEHOLDER_TAG` LONG
    entry, and turn that entry into the ExifIFD pointer. ``f`` is open for reading and writing."""
    header = _header(f)
    if header is None:
        raise ValueError("EXIF can only be carried into a classic TIFF")
    order, ifd0 = header
    slot = [e[4] for e in _ifd_entries(f, order, ifd0) if e[0] == PLACEHOLDER_TAG]
    if not slot:
        raise ValueError("the written TIFF has no ExifIFD placeholder")
    f.seek(0, 2)
    base = f.tell() + (f.tell() % 2)  # IFDs start on a word boundary
    ordered = sorted(entries, key=lambda e: e.tag)
    ifd_size = 2 + 12 * len(ordered) + 4
    table, data = b"", b""
    for e in ordered:
        raw = e.encode(order)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\x00")
        else:
            field = struct.pack(order + "I", base + ifd_size + len(data))
            data += raw + (b"\x00" if len(raw) % 2 else b"")
        table += struct.pack(order + "HHI", e.tag, e.type, e.count) + field
    blob = struct.pack(order + "H", len(ordered)) + table + struct.pack(order + "I", 0) + data
    if base + len(blob) >= 1 << 32:
        raise ValueError("the TIFF is too large for its EXIF to be appended")
    f.seek(0, 2)
    f.write(b"\x00" * (base - f.tell()) + blob)
    f.seek(slot[0] - 8)  # the whole entry: tag, type LONG, count 1, offset
    f.write(struct.pack(order + "HHII", EXIF_IFD_TAG, 4, 1, base))


def orientation_of(exif: bytes | None) -> int | None:
    """The orientation in the first IFD of TIFF-structured EXIF, or None."""
    if not exif:
        return None
    f = io.BytesIO(exif)
    try:
        header = _header(f)
        if header is not None:
            for tag, typ, count, value, _ in _ifd_entries(f, *header):
                if tag == ORIENTATION_TAG and typ == 3 and count == 1:
                    return int(struct.unpack(header[0] + "H", value[:2])[0])
    except struct.error:
        pass
    return None


def with_orientation(exif: bytes, orientation: int) -> bytes:
    """TIFF-structured EXIF (as :class:`~libdeclip.io.image.Image` holds it) with the orientation
    of its first IFD set to ``orientation``, changed in place so that nothing else moves; as it was
    where there is no such tag (or the block cannot be read)."""
    f = io.BytesIO(exif)
    try:
        header = _header(f)
        if header is None:
            return exif
        order, offset = header
        for tag, typ, count, _, pos in _ifd_entries(f, order, offset):
            if tag == ORIENTATION_TAG and typ == 3 and count == 1:
                patched = bytearray(exif)
                patched[pos : pos + 2] = struct.pack(order + "H", orientation)
                return bytes(patched)
    except struct.error:
        pass
    return exif
