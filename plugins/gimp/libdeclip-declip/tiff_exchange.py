"""Minimal TIFF writing and reading for the plug-in's subprocess path, in pure Python.

GIMP on Windows and macOS bundles a Python without numpy, so pixels travel between GIMP and the
``libdeclip`` command as uncompressed little-endian TIFF written and read with ``struct`` alone:
RGB or RGBA (unassociated alpha), 8 or 16 bits unsigned, or 32-bit float, one image, contiguous
samples, the colour profile embedded. Only what libdeclip writes back is read: uncompressed strips.
"""

from __future__ import annotations

import struct

# TIFF tags
_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_PLANAR, _EXTRA_SAMPLES, _SAMPLE_FORMAT, _ICC = 284, 338, 339, 34675
_SHORT, _LONG, _UNDEFINED = 3, 4, 7
#: sample type -> (bits, TIFF SampleFormat)
SAMPLE_TYPES = {"u8": (8, 1), "u16": (16, 1), "float": (32, 3)}


def write_tiff(path: str, pixels: bytes, width: int, height: int, channels: int, sample: str,
               icc: bytes | None = None) -> None:
    """Write ``pixels`` (row-major, channels interleaved, little-endian) as a TIFF file."""
    bits, sample_format = SAMPLE_TYPES[sample]
    if channels not in (3, 4):
        raise ValueError("RGB or RGBA only")
    if len(pixels) != width * height * channels * bits // 8:
        raise ValueError("pixel data does not match the image size")
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes

    def add(tag: int, typ: int, values: list[int] | bytes) -> None:
        if typ == _UNDEFINED:
            assert isinstance(values, bytes)
            entries.append((tag, typ, len(values), values))
        else:
            code = "H" if typ == _SHORT else "I"
            assert not isinstance(values, bytes)
            entries.append((tag, typ, len(values), struct.pack(f"<{len(values)}{code}", *values)))

    header = 8
    data_offset = header  # pixel data right after the header
    add(_WIDTH, _LONG, [width])
    add(_HEIGHT, _LONG, [height])
    add(_BITS, _SHORT, [bits] * channels)
    add(_COMPRESSION, _SHORT, [1])
    add(_PHOTOMETRIC, _SHORT, [2])
    add(_STRIP_OFFSETS, _LONG, [data_offset])
    add(_SAMPLES, _SHORT, [channels])
    add(_ROWS_PER_STRIP, _LONG, [height])
    add(_STRIP_BYTES, _LONG, [len(pixels)])
    add(_PLANAR, _SHORT, [1])
    if channels == 4:
        add(_EXTRA_SAMPLES, _SHORT, [2])  # unassociated alpha
    add(_SAMPLE_FORMAT, _SHORT, [sample_format] * channels)
    if icc:
        add(_ICC, _UNDEFINED, icc)
    entries.sort()
    ifd_offset = data_offset + len(pixels) + (len(pixels) % 2)
    ifd_size = 2 + 12 * len(entries) + 4
    extra = b""  # values longer than 4 bytes, after the IFD
    table = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            table += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, typ, count, ifd_offset + ifd_size + len(extra))
            extra += value + (b"\0" if len(value) % 2 else b"")
    table += struct.pack("<I", 0)
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", ifd_offset))
        f.write(pixels)
        f.write(b"\0" * (len(pixels) % 2))
        f.write(table)
        f.write(extra)


def read_tiff(path: str) -> tuple[bytes, int, int, int, str]:
    """(pixels, width, height, channels, sample) of an uncompressed, contiguous TIFF's first
    image; pixels little-endian as GEGL wants them."""
    with open(path, "rb") as f:
        data = f.read()
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise ValueError(f"{path}: not a classic TIFF")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1, 16: 8}
    tags: dict[int, list[int]] = {}
    for i in range(count):
        tag, typ, n = struct.unpack(order + "HHI", data[ifd + 2 + 12 * i : ifd + 10 + 12 * i])
        size = sizes.get(typ, 1) * n
        at = ifd + 10 + 12 * i
        if size > 4:
            at = struct.unpack(order + "I", data[at : at + 4])[0]
        raw = data[at : at + size]
        if typ in (3, 4):
            tags[tag] = list(struct.unpack(f"{order}{n}{'H' if typ == 3 else 'I'}", raw))
    width, height = tags[_WIDTH][0], tags[_HEIGHT][0]
    channels = tags.get(_SAMPLES, [1])[0]
    bits = tags[_BITS][0]
    sample_format = tags.get(_SAMPLE_FORMAT, [1])[0]
    if tags.get(_COMPRESSION, [1])[0] != 1 or tags.get(_PLANAR, [1])[0] != 1:
        raise ValueError(f"{path}: compressed or planar TIFF")
    sample = {(8, 1): "u8", (16, 1): "u16", (32, 3): "float"}.get((bits, sample_format))
    if sample is None or channels not in (3, 4):
        raise ValueError(f"{path}: {channels} channels of {bits}-bit samples (format {sample_format})")
    pixels = b"".join(
        data[o : o + n] for o, n in zip(tags[_STRIP_OFFSETS], tags[_STRIP_BYTES], strict=True)
    )
    expected = width * height * channels * bits // 8
    if len(pixels) != expected:
        raise ValueError(f"{path}: {len(pixels)} bytes of pixels, expected {expected}")
    if order == ">" and bits > 8:  # GEGL wants little-endian
        code = "H" if bits == 16 else "I"
        n = expected * 8 // bits
        pixels = struct.pack(f"<{n}{code}", *struct.unpack(f">{n}{code}", pixels))
    return pixels, width, height, channels, sample
