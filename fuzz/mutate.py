"""Mutations of image files: generic byte-level ones and format-aware ones that keep a file valid
enough to reach past the first check of its decoder (PNG chunks with fixed CRCs and recompressed
image data, JPEG segments and frame headers, TIFF/DNG directory entries).

Every mutator takes and returns ``bytes`` and draws its choices from a ``random.Random``, so a run
is reproduced by its seed. :func:`mutate` stacks one to four of them.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

MAX_SIZE = 2 * 1024 * 1024  # bytes: a mutated file never grows past this

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INTERESTING_8 = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 129, 254, 255)
INTERESTING_16 = (0, 1, 2, 255, 256, 257, 4095, 4096, 16383, 32767, 32768, 65534, 65535)
INTERESTING_32 = (0, 1, 2, 3, 8, 16, 255, 256, 65535, 65536, 100_000, 2**24, 2**31 - 1, 2**31, 2**32 - 2,
                  2**32 - 1)
# dimensions worth declaring: degenerate, just off the real ones (filled in by the caller), large
# but under a pixel limit, and far beyond any
DIMENSIONS = (0, 1, 2, 3, 7, 8, 9, 255, 256, 1023, 1024, 2000, 4096, 16384, 65535, 65536, 2**31 - 1,
              2**32 - 1)

Mutator = Callable[[bytes, random.Random], bytes]


def _offset(data: bytes, rng: random.Random) -> int:
    """A position, biased towards the first bytes (headers live there)."""
    if not data:
        return 0
    if rng.random() < 0.5:
        return rng.randrange(min(len(data), 512))
    return rng.randrange(len(data))


# ------------------------------------------------------------------------------------- generic


def bit_flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        i = _offset(data, rng)
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte_set(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        out[_offset(data, rng)] = rng.choice(INTERESTING_8) if rng.random() < 0.7 else rng.randrange(256)
    return bytes(out)


def word_set(data: bytes, rng: random.Random) -> bytes:
    """A 16- or 32-bit field set to an interesting value, in either byte order."""
    if len(data) < 4:
        return byte_set(data, rng)
    i = min(_offset(data, rng), len(data) - 4)
    order = rng.choice("<>")
    if rng.random() < 0.5:
        return data[:i] + struct.pack(order + "H", rng.choice(INTERESTING_16)) + data[i + 2 :]
    return data[:i] + struct.pack(order + "I", rng.choice(INTERESTING_32)) + data[i + 4 :]


def truncate(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data
    kind = rng.random()
    if kind < 0.3:
        return data[: rng.randrange(1, min(len(data), 64))]  # inside the header
    if kind < 0.6:
        return data[: len(data) - rng.randrange(1, min(len(data), 64))]  # the last bytes
    return data[: rng.randrange(1, len(data))]


def duplicate_range(data: bytes, rng: random.Random) -> bytes:
    """A byte range copied elsewhere (once or repeated): a chunk or segment twice, or shifted."""
    if len(data) < 2:
        return data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.choice((1, 4, 16, 64, 256, 4096)))
    piece = data[a:b] * rng.choice((1, 1, 2, 8))
    at = rng.randrange(len(data) + 1)
    return (data[:at] + piece + data[at:])[:MAX_SIZE]


def delete_range(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.choice((1, 2, 4, 16, 256)))
    return data[:a] + data[b:]


def insert_random(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.choice((1, 2, 4, 16, 128))) + data[at:]


def splice_with(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """The head of one file and the tail of another (or a piece of it inserted)."""
    if not data or not other:
        return data or other
    if rng.random() < 0.5:
        return (data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :])[:MAX_SIZE]
    a = rng.randrange(len(other))
    piece = other[a : a + rng.choice((16, 256, 4096))]
    at = rng.randrange(len(data) + 1)
    return (data[:at] + piece + data[at:])[:MAX_SIZE]


GENERIC: tuple[Mutator, ...] = (bit_flip, byte_set, word_set, truncate, duplicate_range, delete_range,
                                insert_random)


# ------------------------------------------------------------------------------------------ PNG


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(type, payload) of each whole chunk after the signature; None when it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    chunks, i = [], len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        if i + 12 + n > len(data):
            break
        chunks.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + n]))
        i += 12 + n
    return chunks


def png_build(chunks: list[tuple[bytes, bytes]], rng: random.Random | None = None) -> bytes:
    """A PNG of these chunks, CRCs right (one in 20 left wrong when ``rng`` is given)."""
    out = [PNG_SIGNATURE]
    for kind, payload in chunks:
        crc = zlib.crc32(kind + payload)
        if rng is not None and rng.random() < 0.05:
            crc ^= 1 << rng.randrange(32)
        out.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc))
    return b"".join(out)


def _png_ihdr(chunks: list[tuple[bytes, bytes]], rng: random.Random) -> None:
    for k, (kind, payload) in enumerate(chunks):
        if kind == b"IHDR" and len(payload) == 13:
            w, h, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", payload)
            field = rng.randrange(7)
            if field == 0:
                w = rng.choice(DIMENSIONS + (w + 1, (w - 1) & 0xFFFFFFFF, w * 2, w // 2))
            elif field == 1:
                h = rng.choice(DIMENSIONS + (h + 1, (h - 1) & 0xFFFFFFFF, h * 2, h // 2))
            elif field == 2:
                depth = rng.choice((0, 1, 2, 3, 4, 8, 16, 32, 255))
            elif field == 3:
                colour = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 255))
            elif field == 4:
                comp = rng.choice((0, 1, 255))
            elif field == 5:
                filt = rng.choice((0, 1, 64, 255))
            else:
                interlace = rng.choice((0, 1, 2))
            chunks[k] = (kind, struct.pack(">IIBBBBB", w & 0xFFFFFFFF, h & 0xFFFFFFFF, depth, colour, comp,
                                           filt, interlace))
            return


def _png_idat(chunks: list[tuple[bytes, bytes]], rng: random.Random) -> None:
    """Decompress the image data, change the filtered rows (filter bytes included), compress again
    and split into one to three IDAT chunks: the damage reaches libpng's row decoding."""
    idat = [i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT"]
    if not idat:
        return
    stream = b"".join(chunks[i][1] for i in idat)
    try:
        raw = zlib.decompressobj().decompress(stream, MAX_SIZE * 4)
    except zlib.error:
        raw = b""
    choice = rng.random()
    if raw and choice < 0.3:  # filter type bytes: 0-4 valid, others not; where a row starts is unknown
        out = bytearray(raw)
        for _ in range(rng.choice((1, 4, 16))):
            out[rng.randrange(len(out))] = rng.choice((0, 1, 2, 3, 4, 5, 255))
        raw = bytes(out)
    elif raw and choice < 0.5:
        cut = rng.random() < 0.5
        raw = raw[: rng.randrange(len(raw))] if cut else raw + rng.randbytes(rng.randrange(1, 256))
    elif raw:
        raw = rng.choice(GENERIC)(raw, rng)
    packed = zlib.compress(raw, rng.choice((0, 1, 9)))
    if rng.random() < 0.1:  # a stream that does not end, or a zlib bomb
        packed = packed[:-rng.randrange(1, 8)] if rng.random() < 0.5 else zlib.compress(bytes(2**22), 9)
    parts = rng.choice((1, 1, 2, 3))
    step = max(1, -(-len(packed) // parts))
    new = [(b"IDAT", packed[j : j + step]) for j in range(0, len(packed), step)] or [(b"IDAT", b"")]
    chunks[idat[0] : idat[-1] + 1] = new


def _icc_payload(rng: random.Random, icc: bytes | None) -> bytes:
    """An ICC profile to embed: a real one mutated (its tag table and curves), or noise."""
    if icc and rng.random() < 0.8:
        profile = bytearray(icc)
        for _ in range(rng.choice((1, 2, 4))):
            if rng.random() < 0.5 and len(profile) > 132:  # the tag table and tag bodies
                i = rng.randrange(128, len(profile) - 4)
            else:
                i = rng.randrange(len(profile) - 4)
            profile[i : i + 4] = struct.pack(">I", rng.choice(INTERESTING_32))
        return bytes(profile)
    return rng.randbytes(rng.choice((0, 16, 131, 132, 200)))


def _png_ancillary(chunks: list[tuple[bytes, bytes]], rng: random.Random, icc: bytes | None) -> None:
    kind = rng.choice((b"iCCP", b"eXIf", b"tRNS", b"PLTE", b"gAMA", b"sBIT", b"zTXt", b"iTXt", b"tEXt",
                       b"pHYs", b"acTL", b"cHRM", b"sRGB"))
    if kind == b"iCCP":
        body = _icc_payload(rng, icc)
        payload = b"fuzz\x00\x00" + (zlib.compress(body) if rng.random() < 0.9 else body)
    elif kind == b"zTXt":  # a text bomb: a small chunk that inflates to megabytes
        payload = b"Comment\x00\x00" + zlib.compress(bytes(rng.choice((10, 2**20, 2**24))), 9)
    elif kind == b"eXIf":
        payload = rng.choice((b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08")) + rng.randbytes(
            rng.choice((0, 2, 12, 64)))
    elif kind == b"tRNS":
        payload = rng.randbytes(rng.choice((0, 1, 2, 6, 16, 256, 300)))
    elif kind == b"PLTE":
        payload = rng.randbytes(rng.choice((0, 3, 6, 48, 768, 770)))
    elif kind == b"acTL":
        payload = struct.pack(">II", rng.choice(INTERESTING_32), rng.choice(INTERESTING_32))
    else:
        payload = rng.randbytes(rng.choice((0, 1, 4, 9, 32)))
    chunks.insert(rng.randrange(1, len(chunks) + 1) if chunks else 0, (kind, payload))


def mutate_png(data: bytes, rng: random.Random, icc: bytes | None = None) -> bytes:
    chunks = png_chunks(data)
    if not chunks:
        return rng.choice(GENERIC)(data, rng)
    op = rng.randrange(7)
    if op == 0:
        _png_ihdr(chunks, rng)
    elif op == 1:
        _png_idat(chunks, rng)
    elif op == 2:
        _png_ancillary(chunks, rng, icc)
    elif op == 3:  # a chunk twice
        k = rng.randrange(len(chunks))
        chunks.insert(rng.randrange(len(chunks) + 1), chunks[k])
    elif op == 4 and len(chunks) > 1:  # a chunk dropped
        del chunks[rng.randrange(len(chunks))]
    elif op == 5 and len(chunks) > 2:  # two chunks swapped
        a, b = rng.sample(range(len(chunks)), 2)
        chunks[a], chunks[b] = chunks[b], chunks[a]
    else:  # a chunk's payload changed in place
        k = rng.randrange(len(chunks))
        kind, payload = chunks[k]
        chunks[k] = (kind, rng.choice(GENERIC)(payload, rng) if payload else rng.randbytes(4))
    return png_build(chunks, rng)


# ----------------------------------------------------------------------------------------- JPEG


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each marker segment before the entropy-coded data (the marker included)."""
    segments, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            segments.append((i, 2))
            i += 2
            continue
        (n,) = struct.unpack(">H", data[i + 2 : i + 4])
        segments.append((i, n + 2))
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            break
        i += n + 2
    return segments


def mutate_jpeg(data: bytes, rng: random.Random, icc: bytes | None = None) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        return rng.choice(GENERIC)(data, rng)
    segments = jpeg_segments(data)
    if not segments:
        return rng.choice(GENERIC)(data, rng)
    op = rng.randrange(5)
    sof = [(o, n) for o, n in segments if data[o + 1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA)]
    if op == 0 and sof:  # frame header: precision, height, width, components
        o, _ = sof[0]
        field = rng.randrange(4)
        if field == 0:
            return data[: o + 4] + bytes([rng.choice((0, 1, 8, 12, 16, 255))]) + data[o + 5 :]
        if field in (1, 2):
            at = o + 5 + 2 * (field - 1)
            return data[:at] + struct.pack(">H", rng.choice(INTERESTING_16 + (0, 1, 2, 9))) + data[at + 2 :]
        return data[: o + 9] + bytes([rng.choice((0, 1, 2, 3, 4, 5, 255))]) + data[o + 10 :]
    if op == 1:  # a segment twice
        o, n = rng.choice(segments)
        at = rng.choice(segments)[0]
        return data[:at] + data[o : o + n] + data[at:]
    if op == 2 and len(segments) > 1:  # a segment dropped
        o, n = rng.choice(segments[1:])
        return data[:o] + data[o + n :]
    if op == 3:  # an APP1 Exif or APP2 ICC segment inserted
        if rng.random() < 0.5:
            body = b"Exif\x00\x00" + rng.choice((b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08")) + \
                rng.randbytes(rng.choice((0, 2, 12, 64)))
            seg = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
        else:
            profile = _icc_payload(rng, icc)[:65000]
            body = b"ICC_PROFILE\x00" + bytes([1, rng.choice((1, 2))]) + profile
            seg = b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
        return data[:2] + seg + data[2:]
    o, n = rng.choice(segments)  # inside one segment (its length field included)
    body = rng.choice(GENERIC)(data[o : o + n], rng)
    return data[:o] + body + data[o + n :]


# ------------------------------------------------------------------------------------ TIFF, DNG

TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
# tags whose values steer the decoders: size, layout, strips, sample format, colour, DNG levels
TIFF_TAGS = (256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 330, 338, 339,
             34665, 34675, 33421, 33422, 50706, 50710, 50711, 50713, 50714, 50717, 50719, 50720, 50721,
             50728, 50829, 51041)


def tiff_entries(data: bytes) -> tuple[str, list[int]] | None:
    """Byte order and the offsets of every 12-byte entry in the classic TIFF's IFD chain (and
    SubIFDs / EXIF IFDs one level down); None for other data."""
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    entries: list[int] = []
    todo = [struct.unpack(order + "I", data[4:8])[0]]
    seen: set[int] = set()
    while todo and len(seen) < 16:
        ifd = todo.pop()
        if ifd in seen or ifd + 2 > len(data):
            continue
        seen.add(ifd)
        (n,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        for k in range(min(n, 512)):
            e = ifd + 2 + 12 * k
            if e + 12 > len(data):
                break
            entries.append(e)
            tag, typ, count, value = struct.unpack(order + "HHII", data[e : e + 12])
            if tag in (330, 34665) and typ in (4, 13) and count >= 1:
                todo.append(value if count == 1 else struct.unpack(order + "I", data[value : value + 4])[0]
                            if value + 4 <= len(data) else 0)
        nxt = ifd + 2 + 12 * n
        if nxt + 4 <= len(data):
            todo.append(struct.unpack(order + "I", data[nxt : nxt + 4])[0])
    return order, entries


def mutate_tiff(data: bytes, rng: random.Random, icc: bytes | None = None) -> bytes:
    parsed = tiff_entries(data)
    if not parsed or not parsed[1]:
        return rng.choice(GENERIC)(data, rng)
    order, entries = parsed
    out = bytearray(data)
    # prefer the tags that matter
    important = [e for e in entries if struct.unpack(order + "H", data[e : e + 2])[0] in TIFF_TAGS]
    e = rng.choice(important if important and rng.random() < 0.8 else entries)
    tag, typ, count, value = struct.unpack(order + "HHII", data[e : e + 12])
    op = rng.randrange(6)
    if op == 0:  # the value (or offset) field
        value = rng.choice(INTERESTING_32 + DIMENSIONS + (value + 1, max(0, value - 1)))
    elif op == 1:  # the count
        count = rng.choice((0, 1, 2, 3, 4, count + 1, max(0, count - 1), 2**16, 2**31 - 1, 2**32 - 1))
    elif op == 2:  # the type
        typ = rng.choice((0, 1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 17, 255))
    elif op == 3:  # the tag code: a tag becomes another
        tag = rng.choice(TIFF_TAGS)
    elif op == 4:  # the data the entry points to (strips, tables, matrices)
        size = TIFF_TYPES.get(typ, 1) * count
        if size > 4 and value < len(data):
            end = min(len(data), value + size)
            out[value:end] = rng.choice(GENERIC)(bytes(out[value:end]), rng)[: end - value].ljust(end - value,
                                                                                                b"\0")
        return bytes(out)
    else:  # a whole entry duplicated over its neighbour (two tags with one code, out of order)
        other = rng.choice(entries)
        out[other : other + 12] = data[e : e + 12]
        return bytes(out)
    if order == "<" and typ == 3 and count == 1 and op == 0:
        value &= 0xFFFF  # a short's value sits in the first two bytes
    elif order == ">" and typ == 3 and count == 1 and op == 0:
        value = (value & 0xFFFF) << 16
    out[e : e + 12] = struct.pack(order + "HHII", tag & 0xFFFF, typ & 0xFFFF, count & 0xFFFFFFFF,
                                  value & 0xFFFFFFFF)
    return bytes(out)


# ---------------------------------------------------------------------------------------- driver


def sniff(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"\x76\x2f\x31\x01":
        return "exr"
    return "other"


FORMAT_MUTATORS = {"png": mutate_png, "jpeg": mutate_jpeg, "tiff": mutate_tiff}


def mutate(
    data: bytes, rng: random.Random, others: list[bytes], icc: bytes | None = None
) -> tuple[bytes, str]:
    """One to four stacked mutations of ``data`` (``others``: the corpus, for splicing); returns the
    new bytes and the names of the mutations, for the log."""
    names = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        fmt = sniff(data)
        r = rng.random()
        if others and r < 0.08:
            data = splice_with(data, rng.choice(others), rng)
            names.append("splice")
        elif fmt in FORMAT_MUTATORS and r < 0.6:
            try:
                data = FORMAT_MUTATORS[fmt](data, rng, icc)
            except (struct.error, IndexError, ValueError, OverflowError, zlib.error):
                data = truncate(data, rng)  # a header too broken to parse: cut it instead
            names.append(fmt)
        else:
            m = rng.choice(GENERIC)
            data = m(data, rng)
            names.append(m.__name__)
    return data[:MAX_SIZE], "+".join(names)
