"""OpenEXR: scene-linear half or float images through the reference library's bindings, single part,
scanline or tiled, R, G, B (and A) or Y (and A); the header's attributes (compression,
chromaticities, ...) are carried over. The chunk table is checked against the file first, since
OpenEXR itself only prints on stderr what it finds wrong there."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip.errors import UnsupportedInputError, native_diagnostics
from libdeclip.io.image import Image, check_dimensions

__all__ = ["EXR_MAGIC", "read_exr", "write_exr"]

EXR_MAGIC = b"\x76\x2f\x31\x01"

#: OpenEXR attributes that describe the pixel layout: written anew from the pixels.
_EXR_LAYOUT = ("channels", "dataWindow", "displayWindow", "type", "tiles", "chunkCount", "name", "version")


def read_exr(path: Path, limit: int) -> Image:
    """A single-part scanline or tiled OpenEXR with R, G, B (and A) or Y (and A) channels."""
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as exr:
        for part in exr.parts:
            (x0, y0), (x1, y1) = (tuple(int(v) for v in corner) for corner in part.header["dataWindow"])
            check_dimensions(x1 - x0 + 1, y1 - y0 + 1, limit)
    _check_exr_chunks(path)  # a truncated or damaged chunk table: refused with a clear message
    # OpenEXR prints on stderr what it finds wrong in the chunks' data before failing
    with native_diagnostics(f"{path}: ", "Warning: Exception raised reading pixel data") as said:
        exr = OpenEXR.File(str(path))
    with exr:
        if not exr.parts:  # the bindings report a file they cannot decode as one without parts
            own = [line.removeprefix(f"{path}: ") for line in said if line.startswith(f"{path}: ")]
            raise ValueError("; ".join(own[:2] or [line.split(" - ", 1)[-1] for line in said[:1]])
                             or "no readable part")
        if len(exr.parts) > 1:
            raise UnsupportedInputError(f"multi-part OpenEXR ({len(exr.parts)} parts) is not supported")
        header = dict(exr.header())
        channels = {name: ch.pixels for name, ch in exr.channels().items()}
    if set(channels) in ({"RGB"}, {"RGBA"}):
        pixels = next(iter(channels.values()))
    elif set(channels) in ({"Y"}, {"Y", "A"}):
        pixels = channels["Y"] if "A" not in channels else np.stack([channels["Y"], channels["A"]], axis=2)
    else:
        raise UnsupportedInputError(
            f"OpenEXR channels {sorted(channels)} are not supported "
            "(R, G, B with optional A, or Y with optional A)"
        )
    if pixels.dtype not in (np.float16, np.float32):
        raise UnsupportedInputError(f"OpenEXR pixels of type {pixels.dtype} are not supported (half, float)")
    kept = {k: v for k, v in header.items() if k not in _EXR_LAYOUT}
    return Image(pixels=np.ascontiguousarray(pixels), format="exr", exr_header=kept)


#: Scanlines per chunk of each OpenEXR compression (by its code in the header).
_EXR_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def _check_exr_chunks(path: Path) -> None:
    """Refuse a single-part OpenEXR whose chunk table or chunk headers are damaged or point past
    the end of the file (OpenEXR itself prints such findings on stderr before failing). Multi-part,
    deep and multi-level tiled files are left to the library."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)  # the header: attributes are small
        size = os.fstat(f.fileno()).st_size
        version = struct.unpack_from("<i", data, 4)[0] if len(data) >= 8 else 0
        if version & 0x1800:  # deep data or multi-part
            return
        attrs: dict[str, bytes] = {}
        pos = 8
        while pos < len(data) and data[pos] != 0:
            name_end = data.index(b"\x00", pos)
            type_end = data.index(b"\x00", name_end + 1)
            (n,) = struct.unpack_from("<i", data, type_end + 1)
            attrs[data[pos:name_end].decode("latin-1")] = data[type_end + 5 : type_end + 5 + n]
            pos = type_end + 5 + n
        pos += 1  # the header's terminating null byte
        x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        if version & 0x200:  # tiled: leader = tile x, tile y, level x, level y, data size
            tx, ty, mode = struct.unpack("<IIB", attrs["tiles"][:9])
            if mode & 0x0F or tx == 0 or ty == 0:  # mipmap / ripmap levels: not counted here
                return
            across = math.ceil(width / tx)
            count, leader = across * math.ceil(height / ty), "<iiiii"

            def expected(i: int) -> tuple[int, ...]:
                return (i % across, i // across, 0, 0)
        else:  # scanlines: leader = first line y, data size
            lines = _EXR_LINES_PER_CHUNK.get(attrs["compression"][0], 1)
            count, leader = math.ceil(height / lines), "<ii"

            def expected(i: int) -> tuple[int, ...]:
                return (y0 + i * lines,)
        # The table's size follows from the header alone: check it against the file before reading
        # (a damaged header can claim billions of chunks).
        if count <= 0 or 8 * count > size - pos:
            raise ValueError("truncated: the file ends inside its chunk offset table")
        f.seek(pos)
        table = f.read(8 * count)
        step = struct.calcsize(leader)
        for i, offset in enumerate(struct.unpack(f"<{count}Q", table)):
            if offset + step > size:
                raise ValueError(f"truncated: chunk {i} starts at byte {offset:,} of a {size:,}-byte file")
            f.seek(offset)
            *where, n = struct.unpack(leader, f.read(step))
            if tuple(where) != expected(i) or n <= 0:
                raise ValueError(f"chunk {i} (at byte {offset:,}) has a corrupt header")
            if offset + step + n > size:
                raise ValueError(
                    f"truncated: chunk {i} (at byte {offset:,}) runs past the end of the {size:,}-byte file"
                )


def write_exr(image: Image, tmp: str) -> None:
    """Write ``image`` (half or float) as a ZIP-compressed scanline OpenEXR to the path ``tmp``."""
    import OpenEXR

    pixels = image.pixels
    if pixels.dtype not in (np.float16, np.float32):
        raise UnsupportedInputError(f"OpenEXR holds half or float pixels, not {pixels.dtype}")
    if image.channels == 2:  # grey + alpha: two named planes
        channels = {"Y": np.ascontiguousarray(pixels[..., 0]), "A": np.ascontiguousarray(pixels[..., 1])}
    else:  # the bindings split "RGB"/"RGBA" into R, G, B, A
        channels = {{1: "Y", 3: "RGB", 4: "RGBA"}[image.channels]: np.ascontiguousarray(pixels)}
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION}
    header.update(image.exr_header or {})
    header["type"] = OpenEXR.scanlineimage
    with OpenEXR.File(header, channels) as exr:
        exr.write(tmp)
