"""Exceptions raised by libdeclip. Catch :class:`DeclipError` to catch them all.

Messages name the file (or value) and the problem on one line: line breaks in a message (a
dependency's multi-line report quoted in it) are folded into spaces, so that a command-line tool
can print each error as one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["DeclipError", "UnsupportedInputError", "ModelError", "EngineError", "OutputError",
           "OutputExistsError", "OutputIsAFolderError", "OutputFolderMissingError"]

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


class DeclipError(Exception):
    """Base class of every error libdeclip raises on purpose."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_LINE_BREAKS.sub(" ", args[0]).strip(),)
        super().__init__(*args)


class UnsupportedInputError(DeclipError, ValueError):
    """The image (array or file) has a shape, dtype or content libdeclip cannot repair."""


class ModelError(DeclipError):
    """The model file is missing, unreadable, or does not follow the model contract."""


class EngineError(DeclipError, RuntimeError):
    """The inference engine failed while running the model."""


class OutputError(DeclipError, OSError):
    """An output cannot be written: its folder is missing, a folder stands at its name, the disk is
    full... (an :class:`OSError` too, with the operating system's ``errno`` where it gave one)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and replacing it was not asked for."""


class OutputIsAFolderError(OutputError, IsADirectoryError):
    """A folder stands at the output's name."""


class OutputFolderMissingError(OutputError, FileNotFoundError):
    """The output's folder does not exist."""


_CAPTURE_LOCK = threading.Lock()


@contextlib.contextmanager
def native_diagnostics(*prefixes: str) -> Iterator[list[str]]:
    """Keep a native decoder's own reports off the process's stdout and stderr while it runs.

    LibRaw and OpenEXR print what they find wrong in a damaged file on file descriptors 2 and 1
    before failing, which no Python code can catch. Inside this block both descriptors go to
    temporary files; afterwards the lines starting with one of ``prefixes`` (the library's) are
    put in the yielded list, for the error message, and every other line (another thread's) is
    written where it was going. One block at a time in the process.
    """
    caught: list[str] = []
    with _CAPTURE_LOCK, contextlib.ExitStack() as stack:
        redirected: list[tuple[int, int, Any]] = []
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            try:
                if stream is not None:
                    stream.flush()
                saved = os.dup(fd)
            except (OSError, ValueError):  # no such descriptor (a GUI host): nothing to keep clean
                continue
            tmp = stack.enter_context(tempfile.TemporaryFile())
            os.dup2(tmp.fileno(), fd)
            redirected.append((fd, saved, tmp))
        try:
            yield caught
        finally:
            for fd, saved, tmp in redirected:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    (sys.stdout if fd == 1 else sys.stderr).flush()
                os.dup2(saved, fd)
                os.close(saved)
                tmp.seek(0)
                others = []
                for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True):
                    if line.startswith(prefixes):
                        caught.append(line.strip())
                    else:
                        others.append(line)
                if others:
                    os.write(fd, "".join(others).encode("utf-8"))
