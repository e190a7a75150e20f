"""The ``libdeclip`` command.

    libdeclip declip IN... [-o OUT | --out-dir DIR] [--suffix _declip] [--in-place] [--fit F]
                           [--device D] [--method M] [--no-consistency] [--jobs N] [--mask PATH]
                           [--compare PATH] [--report DIR] [--overwrite]
                           [--format dng|tiff32|tiff16] [--exposure EV]     (camera RAW inputs)
    libdeclip info FILE...
    libdeclip models
    libdeclip gimp install|uninstall [--gimp-dir DIR] [--python PY]

Inputs may be files, folders (their images) and glob patterns. A failing file gets one line on
stderr and never stops the others or leaves a partial output; the exit code is 1 if any failed.
An input is never written: an output that is an input of the run (by the same name, or through a
symbolic or hard link) is refused, unless ``--in-place`` asks to replace each input with its repair;
the input is then replaced in one rename, once the new file is complete on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from libdeclip import METHODS, __version__, declip
from libdeclip._report import Report, ReportEntry, entry_for
from libdeclip._report import to_8bit as _to_8bit
from libdeclip.engine import (
    AUTOMATIC_MODELS,
    MODELS_DIR,
    OnnxEngine,
    automatic_model,
    gpu_providers,
    shipped_models,
)
from libdeclip.errors import DeclipError
from libdeclip.fit import Fit
from libdeclip.io import _SUFFIXES, DEFAULT_PNG_LEVEL, Image, read_image, write_image
from libdeclip.mask import clip_mask
from libdeclip.raw import COMBINED, RAW_SUFFIXES, declip_raw, is_raw_path, needs_model
from libdeclip.session import Declipper

IMAGE_SUFFIXES = set(_SUFFIXES) | RAW_SUFFIXES


def _expand(inputs: Sequence[str]) -> list[Path]:
    """Files as given, images inside folders, and glob matches; duplicates removed, order kept."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in item for ch in "*?[") and not p.exists():
            paths += sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
        else:
            paths.append(p)  # missing files are reported per file later
    seen: set[Path] = set()
    unique = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


DEFAULT_SUFFIX = "_declip"


def _output_for(src: Path, args: argparse.Namespace) -> Path:
    if args.output is not None:
        return Path(args.output)
    if args.in_place:
        return src
    folder = Path(args.out_dir) if args.out_dir else src.parent
    return folder / f"{src.stem}{args.suffix or ''}{output_suffix(src, args.format)}"


def output_suffix(src: Path, raw_format: str | None) -> str:
    """The output's file extension: the input's, but a camera RAW cannot be written back as such:
    DNG or TIFF (``--format``)."""
    if is_raw_path(src):
        return ".dng" if (raw_format or "dng") == "dng" else ".tif"
    return src.suffix


def _side_path(option: str | None, src: Path, single: bool, tag: str) -> Path | None:
    if option is None:
        return None
    p = Path(option)
    if single and not p.is_dir():
        return p
    return p / f"{src.stem}_{tag}.png"


def _file_key(path: Path) -> tuple[object, ...]:
    """One key per file: its inode when it exists (so that symbolic and hard links to it share it),
    else its absolute path with links resolved."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))
    return ("inode", st.st_dev, st.st_ino)


class _Target(NamedTuple):
    """Where a file's output goes, or why it cannot be written."""

    dst: Path
    problem: str | None = None
    replaces_input: bool = False  # --in-place: dst is the input itself


def _plan_outputs(paths: Sequence[Path], args: argparse.Namespace, single: bool) -> dict[Path, _Target]:
    """Each input's output path, checked before anything is read: no output (or --mask/--compare
    picture) may be a file that is an input of this run, by its own name or through a symbolic or
    hard link (``--in-place`` allows an input's own output to replace it), and no two files may
    share an output."""
    inputs: dict[tuple[object, ...], Path] = {}
    for src in paths:
        inputs.setdefault(_file_key(src), src)
    claimed: dict[tuple[object, ...], Path] = {}
    plan: dict[Path, _Target] = {}
    for src in paths:
        dst = _output_for(src, args)
        key = _file_key(dst)
        replaces = _file_key(src) == key
        problem = None
        if replaces and not args.in_place:
            how = "" if os.path.abspath(dst) == os.path.abspath(src) else f" ({dst} is a link to it)"
            problem = (f"{src}: the output would overwrite the input{how}; choose another -o, --suffix "
                       "or --out-dir, or pass --in-place to replace the input")
        elif replaces and is_raw_path(src):
            problem = (f"{src}: --in-place cannot replace a camera RAW file (its repair is written as "
                       "DNG or TIFF); use --suffix or --out-dir")
        elif key in inputs and not replaces:
            problem = f"{src}: its output {dst} is another input of this run ({inputs[key]}); not replaced"
        elif key in claimed:
            problem = f"{src}: its output {dst} is also the output of {claimed[key]}; not written twice"
        for option, tag in ((args.mask, "mask"), (args.compare, "compare")):
            side = _side_path(option, src, single, tag)
            if problem is None and side is not None:
                side_key = _file_key(side)
                if side_key in inputs:
                    problem = f"{src}: --{tag} {side} is an input of this run; not replaced"
                elif side_key == key or side_key in claimed:
                    problem = f"{src}: --{tag} {side} would replace an output of this run"
                else:
                    claimed.setdefault(side_key, src)
        if problem is None:
            claimed.setdefault(key, src)
        if replaces:  # the file itself, not a symbolic link to it
            dst = Path(os.path.realpath(src))
        plan[src] = _Target(dst, problem, replaces)
    return plan


def _compare_picture(image: Image, result: np.ndarray) -> np.ndarray:
    from PIL import Image as PILImage

    pair = np.concatenate([_to_8bit(image, image.pixels), _to_8bit(image, result)], axis=1)
    im = PILImage.fromarray(pair)
    if im.width > 2048:
        im = im.resize((2048, max(1, round(im.height * 2048 / im.width))), PILImage.Resampling.LANCZOS)
    return np.asarray(im)


def _read_input(src: Path, target: _Target, args: argparse.Namespace) -> Image:
    """Check where the output goes, then read the input (the first stage of a file)."""
    if target.problem is not None:
        raise DeclipError(target.problem)
    if target.dst.exists() and not (args.overwrite or target.replaces_input):
        raise DeclipError(f"{target.dst}: already exists (use --overwrite to replace it)")
    return read_image(src)


class _WarningNotes:
    """Each thread's warnings, as notes of the file it works on.

    ``warnings.catch_warnings`` swaps process-wide state, so threads inside it at once lose or swap
    each other's warnings (the CLI repairs one file while it writes another, and ``--jobs`` runs
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


_NOTES = _WarningNotes()


def method_of(image: Image, args: argparse.Namespace) -> str:
    """The method a file gets: ``--method``, else the network for RGB files and the photosite
    inpaint opposed combined with the network for camera RAW (:data:`libdeclip.raw.COMBINED`)."""
    if args.method:
        return str(args.method)
    return COMBINED if image.raw is not None else "declipnet"


def _repair(
    image: Image, args: argparse.Namespace, session: Declipper | None, show_tiles: bool
) -> tuple[np.ndarray, list[str]]:
    """Declip one image: with the model through ``session``, or a classical method (no session)."""
    method = method_of(image, args)
    if method == COMBINED and image.raw is None:
        raise DeclipError(f"{image.path}: --method {COMBINED} works on camera RAW files only")
    with _NOTES.collect() as notes, _naming(image.path):
        colorspace = image.icc_profile or args.colorspace or image.colorspace
        if image.raw is not None:  # masked on the photosites, kept as float camera RGB
            result = declip_raw(session, image, method=method, progress=show_tiles)  # unmasked stay
        elif session is None or method != "declipnet":
            result = declip(image.pixels, method=method, colorspace=colorspace, fit=args.fit,
                            feather=args.feather, consistency=args.consistency)
        else:
            result = session.run(
                image.pixels,
                colorspace=colorspace,
                fit=args.fit,
                feather=args.feather,
                progress=show_tiles,
                consistency=args.consistency,
            )
    return result, notes


def write_repair(
    dst: Path, image: Image, result: np.ndarray, args: argparse.Namespace, overwrite: bool
) -> None:
    """Write ``image`` repaired as ``result`` to ``dst`` with the writer options of ``args``
    (``--format``, ``--exposure`` and ``--fit``'s development apply to camera RAW inputs only)."""
    _written(dst, image.with_pixels(result), format=args.format if image.raw is not None else None,
             overwrite=overwrite, png_level=args.png_level, exposure=args.exposure,
             fit=args.fit or "compress")


def _write_outputs(
    src: Path, target: _Target, image: Image, result: np.ndarray, notes: list[str],
    args: argparse.Namespace, single: bool,
) -> str:
    dst = target.dst
    # what the writer warns of (a DNG's range clipping the recovery) joins the file's notes
    with _NOTES.collect() as written_notes:
        write_repair(dst, image, result, args, overwrite=args.overwrite or target.replaces_input)
    notes = notes + written_notes
    mask_path = _side_path(args.mask, src, single, "mask")
    if mask_path is not None:
        mask = image.raw_mask if image.raw_mask is not None else clip_mask(image.pixels)[0]
        m = np.asarray(mask.any(axis=2), dtype=np.uint8) * 255
        _written(mask_path, Image(pixels=m, format="png"), overwrite=True)
    compare_path = _side_path(args.compare, src, single, "compare")
    if compare_path is not None:
        _written(compare_path, Image(pixels=_compare_picture(image, result), format="png"), overwrite=True)
    return "; ".join([f"{src} -> {dst}"] + notes)


@contextlib.contextmanager
def _naming(path: Path | str | None) -> Iterator[None]:
    """libdeclip's errors raised inside name ``path``: the pipeline's and the writer's own checks
    see an array, not the file."""
    try:
        yield
    except DeclipError as exc:
        if path is None or str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc


def _written(path: Path, image: Image, **options: Any) -> None:
    """:func:`write_image` into ``path`` (its folder made if needed); an error of the operating
    system becomes one line that names ``path``, not the temporary file it was being written to."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _naming(path):
            write_image(path, image, **options)
    except OSError as exc:
        if exc.strerror is None and str(path) in str(exc):  # ours: "already exists", "a folder stands"
            raise
        raise DeclipError(f"{path}: not written: {exc.strerror or exc}") from None


def _cmd_declip(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    paths = _expand(args.inputs)
    if not paths:
        print("error: no input images found", file=sys.stderr)
        return 2
    single = len(paths) == 1
    if args.output is not None and not single:
        print("error: -o/--output takes one input; use --out-dir for several", file=sys.stderr)
        return 1
    if args.in_place and (args.out_dir or args.suffix is not None):
        print("error: --in-place replaces each input; it takes no --out-dir or --suffix", file=sys.stderr)
        return 2
    if args.suffix is None:
        args.suffix = DEFAULT_SUFFIX
    targets = _plan_outputs(paths, args, single)
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    model = needs_model(args.method)  # the classical methods need no model session
    try:
        jobs = max(1, int(args.jobs))
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        first = (
            Declipper(model=args.model, device=args.device, threads=threads, tile_size=args.tile_size)
            if model else None
        )
        report_pages = Report(args.report) if args.report else None
    except (DeclipError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    def method_label(image: Image | None) -> str:
        """The report page's method: the file's, with the model file that ran (automatic picks it
        by device)."""
        method = method_of(image, args) if image is not None else (args.method or "declipnet")
        if first is None or not needs_model(method):
            return method
        return f"{method} ({first.model_info.path.stem})"

    local = threading.local()
    parallel = jobs > 1 and (first is None or first.device == "cpu")  # a GPU session serves every file
    order = {src: i for i, src in enumerate(paths)}

    def session() -> Declipper | None:
        if not parallel or first is None:
            return first
        if not hasattr(local, "session"):
            local.session = Declipper(model=args.model, device="cpu", threads=threads,
                                      tile_size=args.tile_size)
        return local.session

    failures: list[str] = []
    bar = tqdm(total=len(paths), desc="files", unit="file", disable=args.quiet or single)
    show_tiles = single and not args.quiet
    report_failed: list[str] = []

    def failure(src: Path, exc: Exception) -> Exception:
        """The error of one file as one line that names it; whatever went wrong, the other files
        go on (an unexpected error names its type instead of printing a traceback)."""
        if isinstance(exc, (DeclipError, OSError, ValueError)):
            return exc
        return DeclipError(f"{src}: unexpected {type(exc).__name__}: {exc}")

    def report(src: Path, message: str | None, exc: BaseException | None) -> None:
        if exc is not None:
            failures.append(str(src))
            bar.write(f"error: {exc}", file=sys.stderr)
            page_entry(src, lambda: ReportEntry(str(src), method=method_label(None), error=str(exc)))
        elif message and not args.quiet:
            bar.write(message)
        bar.update(1)

    def page_entry(src: Path, make: Callable[[], ReportEntry]) -> None:
        """Add a file to the --report page (its previews are written now); a failure here is the
        report's, not the file's."""
        if report_pages is None:
            return
        try:
            report_pages.add(make(), order=order[src])
        except (DeclipError, OSError, ValueError) as exc:
            report_failed.append(str(src))
            bar.write(f"error: --report: {src}: {exc}", file=sys.stderr)

    def read(src: Path) -> Image:
        return _read_input(src, targets[src], args)

    def write(src: Path, image: Image, result: np.ndarray, notes: list[str], seconds: float) -> None:
        target = targets[src]
        try:
            message = _write_outputs(src, target, image, result, notes, args, single)
        except Exception as exc:
            report(src, None, failure(src, exc))
            return
        page_entry(src, lambda: entry_for(str(src), image, result, method=method_label(image),
                                          seconds=seconds, output=target.dst, notes=notes))
        report(src, message, None)

    def repair(image: Image, on: Declipper | None) -> tuple[np.ndarray, list[str], float, float]:
        """The repair of ``image``, its notes, and when it started and ended."""
        start = time.perf_counter()
        result, notes = _repair(image, args, on, show_tiles)
        return result, notes, start, time.perf_counter()

    def one(src: Path) -> None:
        try:
            image = read(src)
            result, notes, start, end = repair(image, session())
        except Exception as exc:
            report(src, None, failure(src, exc))
            return
        write(src, image, result, notes, end - start)

    if parallel:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, paths))
    else:
        # One model, files in order. Reading the next file and writing the previous one run on an
        # I/O thread (file decoding and encoding release the GIL), and with the model two runs
        # overlap: the next file's run prepares and waits for the model while this one's finishes
        # (the session's runs take the model in turn), so the model stays busy from file to file.
        window = 2 if first is not None else 1
        running: deque[tuple[Path, Image, Future[tuple[np.ndarray, list[str], float, float]]]] = deque()
        last_end = [0.0]

        def finish() -> None:
            src, image, run = running.popleft()
            try:
                result, notes, start, end = run.result()
            except Exception as exc:
                report(src, None, failure(src, exc))
                return
            seconds = end - max(start, last_end[0])  # its own time, not its wait for the model
            last_end[0] = end
            io.submit(write, src, image, result, notes, seconds)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="libdeclip-io") as io, \
                ThreadPoolExecutor(max_workers=window, thread_name_prefix="libdeclip-run") as runs:
            reading = io.submit(read, paths[0])
            for i, src in enumerate(paths):
                current = reading
                if i + 1 < len(paths):
                    reading = io.submit(read, paths[i + 1])
                try:
                    image = current.result()
                except Exception as exc:
                    report(src, None, failure(src, exc))
                    continue
                running.append((src, image, runs.submit(repair, image, first)))
                if len(running) == window:
                    finish()
            while running:
                finish()
    bar.close()
    done = len(paths) - len(failures)
    if failures or not single:
        print(f"{done} of {len(paths)} files declipped, {len(failures)} failed", file=sys.stderr)
    if report_pages is not None:
        try:
            index = report_pages.write()
        except OSError as exc:
            print(f"error: --report: {exc}", file=sys.stderr)
            return 1
        if not args.quiet:
            print(f"report: {index}", file=sys.stderr)
    return 1 if failures or report_failed else 0


def _model_line(session: Declipper, pixels: np.ndarray, mask: np.ndarray | None, changing: int) -> str:
    """What the network would do: its windows (sized to the clipped regions) and the values."""
    try:
        windows = session.windows(pixels, mask=mask)
    except DeclipError as exc:  # what a repair would refuse (e.g. float values no photo has)
        return f"  model      would not run: {exc}"
    h, w = pixels.shape[:2]
    cores = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in windows) / (h * w)
    return (f"  model      would run {len(windows)} window(s) (cores of at most {session.tile_size} px, "
            f"{cores:.1%} of the image) and change up to {changing:,} values "
            f"(clipped specks of {session.speck_pixels} pixels or fewer keep their values)")


def _print_raw_info(src: Path, image: Image, session: Declipper) -> None:
    raw, mask = image.raw, image.raw_mask
    assert raw is not None and mask is not None
    h, w = image.pixels.shape[:2]
    layout = f"Bayer {raw.cfa_pattern}" if raw.cfa_pattern else "linear (demosaiced)"
    print(f"{src}")
    print(f"  format     camera RAW ({raw.make} {raw.model}), {w} x {h}, {layout}")
    print(f"  levels     black {', '.join(f'{b:g}' for b in raw.black)}; white "
          f"{', '.join(f'{v:g}' for v in raw.white)} (declared {raw.declared_white})")
    print(f"  balance    as shot R {raw.wb[0]:.3f}, G {raw.wb[1]:.3f}, B {raw.wb[2]:.3f}")
    print(f"  clip       {raw.clipped_share:.3%} of photosites at white; pixels with a clipped channel "
          f"{mask.any(axis=2).mean():.2%} (R {mask[..., 0].mean():.2%}, G {mask[..., 1].mean():.2%}, "
          f"B {mask[..., 2].mean():.2%})")
    for note in raw.notes:
        print(f"  note       {note}")
    print(_model_line(session, image.pixels[..., :3], mask, int(mask.sum())))


def _cmd_info(args: argparse.Namespace) -> int:
    from libdeclip.color import colorspace_from_icc

    status = 0
    session: Declipper | None = None
    for src in _expand(args.files):
        try:
            image = read_image(src)
        except DeclipError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        if session is None:
            session = Declipper(device="cpu")
        h, w = image.pixels.shape[:2]
        if image.raw is not None:
            _print_raw_info(src, image, session)
            continue
        kind = "float" if image.is_float else "integer"
        with _NOTES.collect():
            if image.icc_profile:
                space = colorspace_from_icc(image.icc_profile).name
            else:
                space = "linear sRGB (OpenEXR)" if image.format == "exr" else "sRGB (assumed)"
        mask, summary = clip_mask(image.pixels)
        names = "RGB" if mask.shape[2] == 3 else "Y"
        print(f"{src}")
        print(f"  format     {image.format.upper()}, {w} x {h}, {image.channels} channel(s), "
              f"{image.bit_depth}-bit {kind}{', alpha' if image.has_alpha else ''}")
        print(f"  colour     {space}")
        print(f"  clip       levels {image.clip_levels[0]:g} / {image.clip_levels[1]:g}; "
              f"{summary.any:.2%} of pixels clipped")
        for i, name in enumerate(names):
            print(f"    {name}: high {summary.high[i]:.2%}, low {summary.low[i]:.2%}")
        print(_model_line(session, image.pixels, None, int(mask.sum())))
    return status


def _cmd_models(args: argparse.Namespace) -> int:
    if args.names:  # for the editor plug-ins' model lists
        print("\n".join(shipped_models()))
        return 0
    automatic = {automatic_model(kind).name: kind for kind in AUTOMATIC_MODELS}
    gpu = gpu_providers()
    here = automatic_model("cuda" if gpu else "cpu").name
    print("automatic (--model not given):")
    print(f"  cpu: {automatic_model('cpu').name}")
    print(f"  cuda, tensorrt: {automatic_model('cuda').name}")
    providers = ", ".join(gpu) if gpu else "no GPU provider in this onnxruntime"
    print(f"  --device auto here: {here} ({providers})")
    for path in sorted(MODELS_DIR.glob("*.onnx")):
        try:
            info = OnnxEngine(path, device="cpu").info
        except DeclipError as exc:
            print(f"{path.name}: unusable ({exc})")
            continue
        kind = automatic.get(path.name)
        chosen = f" (automatic on {'cuda/tensorrt' if kind == 'cuda' else kind})" if kind else ""
        precision = info.metadata.get("precision", "float32")
        inputs = ("RGB + clip mask + classical estimates" if info.prior_input
                  else "RGB + clip mask" if info.mask_input else "RGB")
        print(f"{path.name}: {info.name} v{info.version}, {precision}, input {inputs}{chosen}")
        print(f"  receptive field {info.receptive_field_radius} px, {info.training_steps} training steps")
        print(f"  trained on: {info.metadata.get('training_data', '?')}")
        print(f"  checkpoint sha256: {info.checkpoint_sha256}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from libdeclip.batch import plan_jobs, run_batch

    src, dst = Path(args.src), Path(args.dst)
    try:
        listed = Path(args.list).read_text(encoding="utf-8").splitlines() if args.list else []
        jobs = plan_jobs(src, dst, listed, args.format)
        if not jobs:
            print(f"error: no photos found in {src}", file=sys.stderr)
            return 2
        options = {k: getattr(args, k) for k in args.repair_options}
        summary = run_batch(
            jobs, dst, options, address=args.ray, workers=args.workers, cpus=args.cpus,
            gpus_per_worker=args.gpus_per_worker, threads_per_worker=args.threads_per_worker,
            verify=args.verify, progress=not args.quiet,
        )
    except (DeclipError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.line(), file=sys.stderr)
    for rel, error in summary.failures or []:
        print(f"failed: {rel}: {error}", file=sys.stderr)
    return 1 if summary.failed else 0


def _cmd_gimp(args: argparse.Namespace) -> int:
    from libdeclip._plugins import gimp_profile_dir, install_gimp, uninstall_gimp

    profile = Path(args.gimp_dir) if args.gimp_dir else gimp_profile_dir()
    try:
        if args.action == "install":
            target = install_gimp(profile, args.python)
            print(f"installed the GIMP plug-in in {target} (Filters > Enhance > Declip); "
                  f"restart GIMP. Python for libdeclip: {args.python or sys.executable}")
        else:
            removed = uninstall_gimp(profile)
            print(f"removed {removed}" if removed else f"the GIMP plug-in is not installed in {profile}")
    except (DeclipError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _model_choice(value: str) -> str | None:
    """``--model``: ``auto``/``automatic`` is the default choice (None), anything else a name or file."""
    return None if value.strip().lower() in ("auto", "automatic") else value


def _add_repair_options(p: argparse.ArgumentParser) -> list[str]:
    """How each file is repaired and written: the options ``declip`` and ``batch`` share. Returns
    their destinations, which ``batch`` hands to its workers."""
    add = p.add_argument
    actions = [
        add("--fit", choices=[f.value for f in Fit],
            help="range policy (default: compress for integer files, float for float files)"),
        add("--model", default=None, metavar="NAME|FILE", type=_model_choice,
            help="the network: a shipped model's name (declipnet-v2, declipnet-v2-int8, declipnet-v2-fp16, "
            "declipnet-v1; see 'libdeclip models') or an ONNX file. Default: automatic, v2 in the "
            "device's precision (int8 on the CPU, float16 on CUDA)"),
        add("--method", choices=(*METHODS, COMBINED), default=None,
            help=f"declipnet (the network; the default for RGB files), a classical method without a "
            f"model (on camera RAW, inpaint-opposed repairs the photosites before demosaicing), or "
            f"{COMBINED} (camera RAW only, its default: the photosite inpaint opposed where a channel "
            f"survives, the network where all three are clipped)"),
        add("--no-consistency", dest="consistency", action="store_false",
            help="do not hold clipped values at or beyond their clip level (to see what the "
            "constraint does)"),
        add("--colorspace", default=None,
            help="colour space of files without an ICC profile (default: srgb; linear-srgb for OpenEXR)"),
        add("--feather", type=int, default=0,
            help="blend into unclipped pixels up to this many pixels from clipping (default 0: "
            "unclipped pixels untouched; not for RAW)"),
        add("--png-level", type=int, default=DEFAULT_PNG_LEVEL, choices=range(10), metavar="0-9",
            help=f"zlib level of PNG outputs (default {DEFAULT_PNG_LEVEL}; 9 = smallest, slowest)"),
        add("--format", choices=["dng", "tiff32", "tiff16"], default=None,
            help="camera RAW inputs: linear DNG (default), scene-referred float32 TIFF in linear "
            "Rec. 2020, or 16-bit sRGB TIFF"),
        add("--exposure", type=float, default=0.0,
            help="camera RAW inputs, TIFF output: exposure in EV (default 0)"),
        add("--tile-size", type=int, default=None, help="tile core size in pixels"),
    ]
    return [a.dest for a in actions]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="libdeclip", description="Repair clipped highlights and shadows in photos."
    )
    p.add_argument("--version", action="version", version=f"libdeclip {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("declip", help="declip image files")
    d.add_argument("inputs", nargs="+", metavar="IN", help="files, folders or glob patterns")
    out = d.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", help="output file (one input only)")
    out.add_argument("--out-dir", help="folder for the outputs (default: next to each input)")
    d.add_argument("--suffix", default=None, help=f"added to the file name (default: {DEFAULT_SUFFIX})")
    d.add_argument("--in-place", action="store_true",
                   help="replace each input with its repair (not camera RAW). The input is replaced in "
                   "one rename, only once the new file is complete on disk; it keeps its name, "
                   "format and permissions (a hard link to it keeps the old picture). Without this "
                   "flag an output that is an input (same name, symbolic or hard link) is refused")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    d.add_argument("--jobs", type=int, default=1, help="files processed in parallel on the CPU")
    repair_options = _add_repair_options(d)
    d.add_argument("--mask", help="write the clip mask as PNG here (a folder for several inputs)")
    d.add_argument("--compare", help="write a before | after PNG here (a folder for several inputs)")
    d.add_argument("--report", metavar="DIR", help="write DIR/index.html: a static page with a before/"
                   "after slider, the clip mask and the figures of every file (no server needed)")
    d.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-file lines")
    d.set_defaults(func=_cmd_declip)
    i = sub.add_parser("info", help="bit depth, colour space and clipping of image files")
    i.add_argument("files", nargs="+")
    i.set_defaults(func=_cmd_info)
    g = sub.add_parser("gimp", help="install or remove the GIMP 3 plug-in")
    g.add_argument("action", choices=["install", "uninstall"])
    g.add_argument("--gimp-dir", help="GIMP's user folder (default: $GIMP3_DIRECTORY, else the "
                   "platform's: ~/.config/GIMP/3.0, ~/Library/Application Support/GIMP/3.0, "
                   "%%APPDATA%%\\GIMP\\3.0)")
    g.add_argument("--python", help="the Python with libdeclip that the plug-in runs when GIMP's own "
                   "Python cannot import it (default: this one)")
    g.set_defaults(func=_cmd_gimp)
    b = sub.add_parser("batch", help="declip a folder tree into another on a pool of workers (Ray), "
                       "resumably", description=(
                           "Declip every photo below SRC into DST, mirroring the tree, with a pool of Ray "
                           "workers. A manifest in DST records each finished output with its sha256, so "
                           "running the same command again after a crash or a kill continues where it "
                           "stopped. Needs Ray: pip install 'libdeclip[ray]'."))
    b.add_argument("src", help="folder of photos (with --list: the root of relative listed paths)")
    b.add_argument("dst", help="output folder (the tree of SRC is mirrored there)")
    b.add_argument("--list", metavar="FILE", help="declip the paths listed in FILE (one per line) instead "
                   "of walking SRC")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="a Ray instance on this machine (the default)")
    where.add_argument("--ray", metavar="ADDRESS", help="join the Ray cluster at ADDRESS (e.g. "
                       "ray://head:10001 or auto)")
    b.add_argument("--workers", type=int, help="worker actors, each holding one model session (default: "
                   "one per CPU of the Ray instance)")
    b.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    b.add_argument("--threads-per-worker", type=int, default=1, help="ONNX Runtime threads per worker "
                   "(default 1)")
    b.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (e.g. 1 on a GPU "
                   "cluster; the workers then run the model on CUDA)")
    b.add_argument("--verify", action="store_true", help="check finished outputs by sha256, not only size")
    _add_repair_options(b)
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_batch, repair_options=repair_options)
    m = sub.add_parser("models", help="list installed models and which one each device loads")
    m.add_argument("--names", action="store_true", help="only the shipped models' names, one per line")
    m.set_defaults(func=_cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # the reader went away (`libdeclip models | head`): stop quietly, as other commands do,
        # and keep Python from reporting the same error again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
