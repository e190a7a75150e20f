"""Files in, repaired files out: what ``libdeclip declip`` and ``libdeclip batch`` do per file.

:func:`declip_files` repairs a list of files: it plans every output before anything is read
(:func:`plan_outputs`: never an input overwritten, never two files into one output), reads, repairs
(:meth:`libdeclip.Declipper.repair`) and writes each file (:func:`write_repair`), with the next
file read and the previous one written on an I/O thread while the model runs. One file's failure
is reported as one line naming it and never stops the others. Warnings raised while a file is
repaired or written (an ICC profile's note, a device fallback) become that file's notes, whichever
thread raised them (:class:`WarningNotes`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from libdeclip._preview import to_8bit
from libdeclip._report import Report, ReportEntry, entry_for
from libdeclip.develop import develop
from libdeclip.errors import DeclipError
from libdeclip.io import (
    Image,
    read_image,
    write_image,
)
from libdeclip.io.files import check_source, path_problem, raw_output
from libdeclip.mask import clip_mask
from libdeclip.options import COMBINED, RepairOptions, needs_model
from libdeclip.outputs import OutputOptions, Target, plan_outputs, side_path
from libdeclip.session import Declipper

__all__ = ["FilesSummary", "NOTES", "WarningNotes", "declip_files", "naming", "repair_file", "write_repair",
           "written"]

class WarningNotes:
    """Each thread's warnings, as notes of the file it works on.

    ``warnings.catch_warnings`` swaps process-wide state, so threads inside it at once lose or swap
    each other's warnings (one file is repaired while another is written, and ``jobs`` runs
    several): one catch for all of them, counted, routes each warning to the notes of the thread
    that raised it; warnings of other threads are shown as usual.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._catch: Any = None
        self._show: Any = None
        self._local = threading.local()

    @contextlib.contextmanager
    def collect(self) -> Iterator[list[str]]:
        notes: list[str] = []
        outer = getattr(self._local, "notes", None)
        self._local.notes = notes
        with self._lock:
            if self._users == 0:
                self._catch = warnings.catch_warnings()
                self._catch.__enter__()
                warnings.simplefilter("always")  # an ICC profile's note, a device fallback: for each file
                self._show, warnings.showwarning = warnings.showwarning, self._route
            self._users += 1
        try:
            yield notes
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._catch.__exit__(None, None, None)
            self._local.notes = outer

    def _route(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: Any = None, line: str | None = None) -> None:
        notes = getattr(self._local, "notes", None)
        if notes is None:
            self._show(message, category, filename, lineno, file, line)
        else:
            notes.append(str(message))


#: The process's one router of warnings into file notes.
NOTES = WarningNotes()


@contextlib.contextmanager
def naming(path: Path | str | None) -> Iterator[None]:
    """libdeclip's errors raised inside name ``path``: the pipeline's and the writer's own checks
    see an array, not the file."""
    try:
        yield
    except DeclipError as exc:
        if path is None or str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc


def repair_file(image: Image, options: RepairOptions, session: Declipper, progress: bool
                ) -> tuple[Image, list[str]]:
    """``image`` repaired (:meth:`Declipper.repair`), and the notes its repair raised."""
    if options.method_for(image.raw is not None) == COMBINED and image.raw is None:
        raise DeclipError(f"{image.path}: --method {COMBINED} works on camera RAW files only")
    with NOTES.collect() as notes, naming(image.path):
        repaired = session.repair(image, options, progress=progress)
    return repaired, notes


def written(path: Path, image: Image, **kwargs: Any) -> None:
    """:func:`write_image` into ``path`` (its folder made if needed); an error of the operating
    system becomes one line that names ``path``, not the temporary file it was being written to."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise DeclipError(f"{path}: not written: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise DeclipError(f"{path}: not written: {path_problem(exc)}") from None
    try:
        with naming(path):
            write_image(path, image, **kwargs)
    except OSError as exc:
        if exc.strerror is None and str(path) in str(exc):  # ours: "already exists", "a folder stands"
            raise
        raise DeclipError(f"{path}: not written: {path_problem(exc)}") from None


def write_repair(dst: Path, repaired: Image, out: OutputOptions, fit: str | None, overwrite: bool) -> None:
    """Write a repaired picture to ``dst`` with the writer options of ``out``. A camera RAW goes
    out as a linear DNG, or developed first (:func:`libdeclip.develop.develop`: ``out``'s exposure,
    then ``fit``, default compress) where ``out.raw_format`` or the name asks for a TIFF or PNG."""
    fmt = None
    if repaired.raw is not None:
        with naming(dst):
            kind, fmt = raw_output(dst, out.raw_format, repaired)
            if kind != "dng":
                repaired = develop(repaired, kind, exposure=out.exposure, fit=fit or "compress")
    written(dst, repaired, format=fmt, overwrite=overwrite, png_level=out.png_level, quality=out.quality)


def _compare_picture(image: Image, result: np.ndarray) -> np.ndarray:
    from PIL import Image as PILImage

    pair = np.concatenate([to_8bit(image, image.pixels), to_8bit(image, result)], axis=1)
    im = PILImage.fromarray(pair)
    if im.width > 2048:
        im = im.resize((2048, max(1, round(im.height * 2048 / im.width))), PILImage.Resampling.LANCZOS)
    return np.asarray(im)


def _write_outputs(src: Path, target: Target, image: Image, repaired: Image, notes: list[str],
                   options: RepairOptions, out: OutputOptions, single: bool) -> str:
    dst = target.dst
    # what the writer warns of (a DNG's range clipping the recovery) joins the file's notes
    with NOTES.collect() as written_notes:
        write_repair(dst, repaired, out, options.fit_name, overwrite=out.overwrite or target.replaces_input)
    notes = notes + written_notes
    mask_path = side_path(out.mask, src, single, "mask")
    if mask_path is not None:
        mask = image.raw_mask if image.raw_mask is not None else clip_mask(image.pixels)[0]
        m = np.asarray(mask.any(axis=2), dtype=np.uint8) * 255
        written(mask_path, Image(pixels=m, format="png"), overwrite=True)
    compare_path = side_path(out.compare, src, single, "compare")
    if compare_path is not None:
        written(compare_path, Image(pixels=_compare_picture(image, repaired.pixels), format="png"),
                overwrite=True)
    return "; ".join([f"{src} -> {dst}"] + notes)


@dataclass
class FilesSummary:
    """What :func:`declip_files` did: the files that failed, and the report page's fate."""

    total: int
    failures: list[str] = field(default_factory=list)
    report_failures: list[str] = field(default_factory=list)
    report_index: Path | None = None

    @property
    def done(self) -> int:
        return self.total - len(self.failures)


#: ``on_file(src, message, error)``: a file is finished (its line, or the error that stopped it).
FileCallback = Callable[[Path, "str | None", "BaseException | None"], None]


class _Run:
    """One :func:`declip_files` call: its sessions, targets, report page and callbacks."""

    def __init__(self, paths: list[Path], options: RepairOptions, out: OutputOptions, jobs: int,
                 tile_size: int | None, show_tiles: bool, on_file: FileCallback,
                 on_problem: Callable[[str], None]) -> None:
        self.paths, self.options, self.out = paths, options, out
        self.single = len(paths) == 1
        self.show_tiles, self.on_file, self.on_problem = show_tiles, on_file, on_problem
        self.targets = plan_outputs(paths, out, self.single)
        if out.out_dir:
            Path(out.out_dir).mkdir(parents=True, exist_ok=True)
        self.model = needs_model(options.method)  # the classical methods need no model
        self.jobs = max(1, int(jobs))
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs) if self.jobs > 1 else None
        self.tile_size = tile_size
        self.first = Declipper.from_options(options, threads=self.threads, tile_size=tile_size)
        if self.model:
            self.first.load()  # a bad model file fails here, before any picture is read
        self.pages = Report(out.report) if out.report else None
        # a GPU session serves every file; on the CPU each job has its own
        self.parallel = self.jobs > 1 and (not self.model or self.first.device == "cpu")
        self.local = threading.local()
        self.order = {src: i for i, src in enumerate(paths)}
        self.summary = FilesSummary(total=len(paths))

    def session(self) -> Declipper:
        if not self.parallel or not self.model:
            return self.first
        if not hasattr(self.local, "session"):
            cpu = self.options.replace(device="cpu")
            self.local.session = Declipper.from_options(cpu, threads=self.threads, tile_size=self.tile_size)
        return self.local.session

    def method_label(self, image: Image | None) -> str:
        """The report page's method: the file's, with the model file that ran (automatic picks it
        by device)."""
        method = self.options.method_for(image.raw is not None) if image is not None else \
            (self.options.method or "declipnet")
        if not self.model or not needs_model(method):
            return method
        return f"{method} ({self.first.model_info.path.stem})"

    def failure(self, src: Path, exc: Exception) -> Exception:
        """The error of one file as one line that names it; whatever went wrong, the other files
        go on (an unexpected error names its type instead of printing a traceback)."""
        if isinstance(exc, (DeclipError, ValueError)):
            return exc
        if isinstance(exc, OSError):  # the operating system's, on a path: one line naming it
            return DeclipError(f"{exc.filename or src}: {path_problem(exc)}")
        return DeclipError(f"{src}: unexpected {type(exc).__name__}: {exc}")

    def report(self, src: Path, message: str | None, exc: BaseException | None) -> None:
        if exc is not None:
            self.summary.failures.append(str(src))
            label = self.method_label(None)
            self.page_entry(src, lambda: ReportEntry(str(src), method=label, error=str(exc)))
        self.on_file(src, message, exc)

    def page_entry(self, src: Path, make: Callable[[], ReportEntry]) -> None:
        """Add a file to the report page (its previews are written now); a failure here is the
        report's, not the file's."""
        if self.pages is None:
            return
        try:
            self.pages.add(make(), order=self.order[src])
        except (DeclipError, OSError, ValueError) as exc:
            self.summary.report_failures.append(str(src))
            self.on_problem(f"error: --report: {src}: {exc}")

    def read(self, src: Path) -> Image:
        """Check where the output goes, then read the input (the first stage of a file)."""
        target = self.targets[src]
        if target.problem is not None:
            raise DeclipError(target.problem)
        check_source(src)  # the input's own problem first: a loop, a FIFO, a name too long...
        if target.dst.exists() and not (self.out.overwrite or target.replaces_input):
            raise DeclipError(f"{target.dst}: already exists (use --overwrite to replace it)")
        return read_image(src)

    def write(self, src: Path, image: Image, repaired: Image, notes: list[str], seconds: float) -> None:
        target = self.targets[src]
        try:
            message = _write_outputs(src, target, image, repaired, notes, self.options, self.out, self.single)
        except Exception as exc:
            self.report(src, None, self.failure(src, exc))
            return
        label = self.method_label(image)
        self.page_entry(src, lambda: entry_for(str(src), image, repaired.pixels, method=label,
                                               seconds=seconds, output=target.dst, notes=notes))
        self.report(src, message, None)

    def repair(self, image: Image, on: Declipper) -> tuple[Image, list[str], float, float]:
        """The repair of ``image``, its notes, and when it started and ended."""
        start = time.perf_counter()
        repaired, notes = repair_file(image, self.options, on, self.show_tiles)
        return repaired, notes, start, time.perf_counter()

    def one(self, src: Path) -> None:
        try:
            image = self.read(src)
            repaired, notes, start, end = self.repair(image, self.session())
        except Exception as exc:
            self.report(src, None, self.failure(src, exc))
            return
        self.write(src, image, repaired, notes, end - start)

    def in_order(self) -> None:
        """One model, files in order. Reading the next file and writing the previous one run on an
        I/O thread (file decoding and encoding release the GIL), and with the model two runs
        overlap: the next file's run prepares and waits for the model while this one's finishes
        (the session's runs take the model in turn), so the model stays busy from file to file."""
        paths = self.paths
        window = 2 if self.model else 1
        running: deque[tuple[Path, Image, Future[tuple[Image, list[str], float, float]]]] = deque()
        last_end = [0.0]

        def finish() -> None:
            src, image, run = running.popleft()
            try:
                repaired, notes, start, end = run.result()
            except Exception as exc:
                self.report(src, None, self.failure(src, exc))
                return
            seconds = end - max(start, last_end[0])  # its own time, not its wait for the model
            last_end[0] = end
            io.submit(self.write, src, image, repaired, notes, seconds)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="libdeclip-io") as io, \
                ThreadPoolExecutor(max_workers=window, thread_name_prefix="libdeclip-run") as runs:
            reading = io.submit(self.read, paths[0])
            for i, src in enumerate(paths):
                current = reading
                if i + 1 < len(paths):
                    reading = io.submit(self.read, paths[i + 1])
                try:
                    image = current.result()
                except Exception as exc:
                    self.report(src, None, self.failure(src, exc))
                    continue
                running.append((src, image, runs.submit(self.repair, image, self.first)))
                if len(running) == window:
                    finish()
            while running:
                finish()

    def run(self) -> FilesSummary:
        if self.parallel:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                list(pool.map(self.one, self.paths))
        else:
            self.in_order()
        return self.summary


def declip_files(
    paths: Sequence[Path], options: RepairOptions, out: OutputOptions, *, jobs: int = 1,
    tile_size: int | None = None, show_tiles: bool = False, on_file: FileCallback | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> FilesSummary:
    """Repair ``paths`` into their outputs (see the module's description).

    ``jobs``: files repaired in parallel on the CPU, each with its own session; ``show_tiles``: a
    progress bar over one file's tiles; ``on_file(src, message, error)`` is called once per file as
    it finishes, ``on_problem(line)`` for a problem that is not a file's (a report page's).
    Raises what stops the whole run before any file is read: a bad model, a report folder that
    cannot be made. A report page that cannot be written is a problem, ``report_index`` None.
    """
    run = _Run(list(paths), options, out, jobs, tile_size, show_tiles,
               on_file or (lambda src, message, error: None), on_problem or (lambda line: None))
    summary = run.run()
    if run.pages is not None:
        try:
            summary.report_index = run.pages.write()
        except OSError as exc:
            run.on_problem(f"error: --report: {exc}")
            summary.report_failures.append(str(out.report))
    return summary
