"""Reading and writing image files: the format found from the file (its first bytes, or for camera
RAW its suffix), the one reader or writer per format called, and every write made atomic.

Writes go to a temporary file in the target folder (:func:`atomic_write`), renamed into place only
once complete and on disk. Bad files are refused with
:class:`~libdeclip.errors.UnsupportedInputError`, its message naming the file and the problem on one
line.

>>> sorted(set(IMAGE_SUFFIXES.values()))
['avif', 'dng', 'exr', 'heif', 'jpeg', 'png', 'tiff', 'webp']
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import struct
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from libdeclip._tiffexif import PLACEHOLDER_TAG, append_exif
from libdeclip.develop import develop
from libdeclip.errors import (
    OutputError,
    OutputExistsError,
    OutputFolderMissingError,
    OutputIsAFolderError,
    UnsupportedInputError,
)
from libdeclip.io.avif import encode_avif, read_avif
from libdeclip.io.dng import write_declipped_dng
from libdeclip.io.exr import EXR_MAGIC, read_exr, write_exr
from libdeclip.io.heif import encode_heif, isobmff_kind, read_heif
from libdeclip.io.image import Image, check_finite, pixel_limit
from libdeclip.io.jpeg import encode_jpeg, read_jpeg
from libdeclip.io.png import DEFAULT_PNG_LEVEL, PNG_SIGNATURE, encode_png, read_png
from libdeclip.io.raw import is_raw_path, read_raw
from libdeclip.io.tiff import encode_tiff, read_tiff
from libdeclip.io.webp import encode_webp, is_webp, read_webp

__all__ = ["read_image", "write_image", "atomic_write", "check_source", "path_problem", "raw_output",
           "FORMATS", "LOSSY_FORMATS", "FORMAT_NAMES", "READ_FORMATS", "IMAGE_SUFFIXES", "RAW_OUTPUTS"]

FORMATS = ("png", "jpeg", "tiff", "exr", "webp", "avif", "heif", "dng")
#: The formats a quality (0-100) applies to: lossy ones.
LOSSY_FORMATS = ("jpeg", "webp", "avif", "heif")
#: How each format is named in messages.
FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "exr": "EXR", "webp": "WebP",
                "avif": "AVIF", "heif": "HEIC", "dng": "DNG"}
#: Readers of the formats read from bytes in memory (TIFF and OpenEXR read from the file).
_READERS = {"png": read_png, "jpeg": read_jpeg, "webp": read_webp, "avif": read_avif, "heif": read_heif}
#: Encoders of the lossy formats: (image, quality or None, stream).
_LOSSY_ENCODERS = {"jpeg": encode_jpeg, "webp": encode_webp, "avif": encode_avif, "heif": encode_heif}
#: What a camera RAW image becomes in each output format (see :func:`libdeclip.develop.develop`).
RAW_OUTPUTS = {"dng": "dng", "tiff": "tiff32", "tiff32": "tiff32", "tiff16": "tiff16", "png": "srgb8",
               "jpeg": "srgb8", "webp": "srgb8", "avif": "srgb8", "heif": "srgb8"}
#: File name suffixes of the formats written (and, but for camera RAW, read), and the format each
#: one stands for when :func:`write_image` is given no ``format``. Camera RAW files are read by
#: their suffix: :data:`~libdeclip.io.raw.RAW_SUFFIXES`.
IMAGE_SUFFIXES = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr",
    ".webp": "webp", ".avif": "avif", ".heic": "heif", ".heif": "heif", ".hif": "heif", ".dng": "dng",
}
#: What :func:`read_image` reads, for messages.
READ_FORMATS = "PNG, JPEG, TIFF, OpenEXR, WebP, AVIF or HEIC/HEIF"
#: Free space under which an encoder's errno-less write failure counts as a full disk.
_NEARLY_FULL = 1 << 20
_UMASK_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------- read


def _sniff(head: bytes) -> str | None:
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(EXR_MAGIC):
        return "exr"
    if is_webp(head):
        return "webp"
    return isobmff_kind(head)


#: What a path that is not a regular file is, by its stat mode, for the refusal.
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def path_problem(exc: OSError) -> str:
    """What an operating system error on a path means, in a few words (for one-line messages)."""
    return {
        errno.ENOENT: "no such file", errno.ELOOP: "a loop of symbolic links",
        errno.ENAMETOOLONG: "the name is too long for this file system",
        errno.EACCES: "permission denied", errno.EPERM: "permission denied",
        errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EISDIR: "is a folder, not a file",
    }.get(exc.errno or -1, exc.strerror or str(exc))


def check_source(path: Path) -> None:
    """Refuse, with one line naming ``path``, anything but a regular file this process may read:
    missing, a dangling or looping symbolic link, a name too long, no permission, a folder, a FIFO
    (which would block the read), a socket or a device."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise UnsupportedInputError(f"{path}: a symbolic link to a missing file ({target})") from None
        raise UnsupportedInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise UnsupportedInputError(f"{path}: {path_problem(exc)}") from None
    if stat.S_ISDIR(mode):
        raise UnsupportedInputError(f"{path}: is a folder, not an image file")
    for test, what in _NOT_REGULAR:
        if test(mode):
            raise UnsupportedInputError(f"{path}: not a regular file ({what}); libdeclip reads image files")
    if not os.access(path, os.R_OK):
        raise UnsupportedInputError(f"{path}: permission denied")


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Read a PNG, JPEG, TIFF, OpenEXR, WebP, AVIF or HEIC/HEIF image, or a camera RAW file (by its
    suffix: DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, KDC, ...; see :mod:`libdeclip.io.raw`).

    The format is found from the file's first bytes (the suffix does not matter), except for
    camera RAW, which LibRaw reads by suffix. Palette images come back as RGB (RGBA with
    transparency), greyscale as H x W (H x W x 2 with alpha). Refused with
    :class:`UnsupportedInputError`, whose message names the file and the problem on one line:
    a missing, empty, truncated or damaged file; an image larger than ``max_pixels`` pixels
    (default :func:`pixel_limit`: ``$LIBDECLIP_MAX_PIXELS``, else :data:`MAX_PIXELS`), from its
    header, before its pixels are decoded; float pixels that are NaN or infinite; and layouts
    libdeclip does not repair (multi-page TIFF, CMYK, CIELab, other sample types).
    """
    path = Path(path)
    limit = pixel_limit(max_pixels)
    check_source(path)
    if is_raw_path(path):
        return _read_camera_raw(path, limit)
    try:
        with open(path, "rb") as f:
            head = f.read(64)  # an ISO media file's brands (HEIF, AVIF) follow its first 16 bytes
    except OSError as exc:  # it went between the check and the open
        raise UnsupportedInputError(f"{path}: cannot read ({path_problem(exc)})") from None
    if not head:
        raise UnsupportedInputError(f"{path}: the file is empty (0 bytes)")
    kind = _sniff(head)
    if kind is None:
        raise UnsupportedInputError(f"{path}: not a {READ_FORMATS} file")
    try:
        if kind == "tiff":  # tifffile reads strips from the file: no copy of it in memory
            image = read_tiff(path, limit)
        elif kind == "exr":
            image = read_exr(path, limit)
        else:
            image = _READERS[kind](path.read_bytes(), limit)
        if image.pixels.size == 0:
            raise UnsupportedInputError("the image is empty")
        if image.is_float:
            check_finite(image.pixels)
    except UnsupportedInputError as exc:
        raise UnsupportedInputError(f"{path}: {exc}") from None
    except MemoryError:
        raise UnsupportedInputError(f"{path}: not enough memory to decode this {FORMAT_NAMES[kind]}") \
            from None
    except (struct.error, EOFError) as exc:  # a header or directory cut short
        raise UnsupportedInputError(f"{path}: damaged or truncated {FORMAT_NAMES[kind]} ({exc})") from None
    except Exception as exc:  # decoders raise many types; the user needs file and reason
        raise UnsupportedInputError(f"{path}: damaged or unreadable {FORMAT_NAMES[kind]} ({exc})") from None
    image.path = path
    return image


def _read_camera_raw(path: Path, limit: int) -> Image:
    """A camera RAW through LibRaw; ``path`` passed :func:`check_source` (a readable regular file)."""
    if path.stat().st_size == 0:
        raise UnsupportedInputError(f"{path}: the file is empty (0 bytes)")
    try:
        image = read_raw(path, max_pixels=limit)
    except UnsupportedInputError:
        raise
    except MemoryError:
        raise UnsupportedInputError(f"{path}: not enough memory to read this RAW file") from None
    except Exception as exc:  # LibRaw's errors and others: the user needs file and reason
        raise UnsupportedInputError(f"{path}: damaged or unreadable RAW file ({exc})") from None
    return image


# --------------------------------------------------------------------------------------- write


def raw_output(path: Path, format: str | None, image: Image) -> tuple[str, str]:
    """(development, file format) of a camera RAW ``image`` written to ``path``: ``format``, else
    the suffix's, else the image's; the development one of :data:`RAW_OUTPUTS`' kinds."""
    fmt = format or IMAGE_SUFFIXES.get(path.suffix.lower()) or image.format
    if fmt not in RAW_OUTPUTS:
        raise UnsupportedInputError(f"{path}: a RAW image is written as one of {', '.join(RAW_OUTPUTS)}")
    return RAW_OUTPUTS[fmt], ("tiff" if fmt in ("tiff32", "tiff16") else fmt)


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    *,
    format: str | None = None,
    overwrite: bool = False,
    quality: int | None = None,
    png_level: int = DEFAULT_PNG_LEVEL,
    exposure: float = 0.0,
    fit: str = "compress",
    jpeg_quality: int | None = None,
) -> Path:
    """Write ``image`` atomically; the format follows ``format``, else the suffix, else the image.

    An existing file is replaced only with ``overwrite=True``. ``quality`` (0-100) applies to the
    lossy formats; without it each keeps what it can of the source: JPEG the source's quantisation
    tables when the image came from a JPEG (same quality), else 95; WebP lossless when the source
    was, else 95; AVIF and HEIC 90. PNG is deflated at ``png_level`` (0-9; the default 3 encodes
    photos 2.5-3x faster than zlib's usual 6, for files 0-7% larger on the photos we measured).
    ``jpeg_quality`` is the former name of ``quality``.

    An image read from a camera RAW (camera RGB, see :mod:`libdeclip.io.raw`) is written as a linear
    DNG (``format="dng"`` or a ``.dng`` name), a scene-referred float32 TIFF in linear Rec. 2020
    (``"tiff32"``, or ``"tiff"``), a 16-bit sRGB TIFF (``"tiff16"``), or 8-bit sRGB PNG/JPEG;
    the last three at ``exposure`` EV, the integer ones through ``fit`` (compress or clamp):
    :func:`libdeclip.develop.develop`.
    """
    if not 0 <= png_level <= 9:
        raise ValueError(f"png_level must be 0 to 9, got {png_level}")
    if jpeg_quality is not None:
        warnings.warn("write_image(jpeg_quality=) is now quality=", DeprecationWarning, stacklevel=2)
        quality = jpeg_quality if quality is None else quality
    if quality is not None and not 0 <= quality <= 100:
        raise ValueError(f"quality must be 0 to 100, got {quality}")
    path = Path(path)
    fmt = format or IMAGE_SUFFIXES.get(path.suffix.lower()) or image.format
    if image.raw is not None:
        kind, fmt = raw_output(path, format, image)
        if kind != "dng":
            image = develop(image, kind, exposure=exposure, fit=fit)
    elif fmt == "dng":
        raise UnsupportedInputError(f"{path}: only images read from camera RAW files can be written as DNG")
    if fmt not in FORMATS:
        raise UnsupportedInputError(f"{path}: unknown output format {fmt!r}; use one of {FORMATS}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise OutputFolderMissingError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise OutputIsAFolderError(f"{path}: a folder stands there; choose another output name")
    if path.exists() and not path.is_file():  # a FIFO, a socket, a device: never replaced
        raise OutputError(f"{path}: not a regular file; not replaced, choose another output name")
    with atomic_write(path, overwrite=overwrite) as tmp:
        if fmt == "exr":  # OpenEXR writes to a path, not a stream
            write_exr(image, tmp)
        else:
            with open(tmp, "wb") as f:
                if fmt in _LOSSY_ENCODERS:
                    _LOSSY_ENCODERS[fmt](image, quality, f)
                elif fmt == "png":
                    f.write(encode_png(image, png_level))
                elif fmt == "dng":
                    write_declipped_dng(f, image, PLACEHOLDER_TAG if image.tiff_exif else None)
                else:
                    encode_tiff(image, f)
        if fmt in ("tiff", "dng") and image.tiff_exif:
            with open(tmp, "r+b") as f:
                append_exif(f, image.tiff_exif)
    return path


@contextmanager
def atomic_write(path: Path, *, overwrite: bool = False) -> Iterator[str]:
    """Give the name of a new temporary file in ``path``'s folder to write; once the block ends
    without error, put that file on disk and rename it to ``path``, replacing a file there only with
    ``overwrite=True`` (one that appeared while the block ran is not replaced either). On any error
    the temporary file is removed, and an :class:`OSError` about it is told about ``path``.

    The file gets the mode a plain ``open()`` would give it, or keeps the mode of the file it
    replaces (not the private 0600 of a temporary file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".part", dir=path.parent)  # fits NAME_MAX
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # on disk before it takes the output's name
            os.fsync(f.fileno())
        if path.exists() and not overwrite:  # appeared while we were encoding
            raise OutputExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
        # mkstemp makes the file private (0600); give it the mode a plain open() would have, or
        # keep the mode of the file it replaces.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        error = _write_error(path, tmp, exc)
        Path(tmp).unlink(missing_ok=True)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_error(path: Path, tmp: str, exc: OSError) -> OSError:
    """An error met while writing ``tmp`` for ``path``, told about ``path``: the temporary file is
    ours, not the caller's. Encoders that write through numpy (tifffile) report a full disk as
    "N requested and M written" with no errno: with the device (nearly) full, that is ENOSPC."""
    if exc.errno is None and shutil.disk_usage(path.parent).free < _NEARLY_FULL:
        return OutputError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if exc.filename is not None and os.fspath(exc.filename) == tmp:
        return OutputError(exc.errno, exc.strerror, str(path))
    return exc


def _umask() -> int:
    with _UMASK_LOCK:  # the only way to read the umask is to set it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
