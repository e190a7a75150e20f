"""The ``libdeclip`` command.

    libdeclip declip IN... [-o OUT | --out-dir DIR] [--suffix _declip] [--fit F] [--device D]
                           [--method M] [--no-consistency] [--jobs N] [--mask PATH]
                           [--compare PATH] [--report DIR] [--overwrite]
                           [--format dng|tiff32|tiff16] [--exposure EV]     (camera RAW inputs)
    libdeclip info FILE...
    libdeclip models
    libdeclip gimp install|uninstall [--gimp-dir DIR] [--python PY]

Inputs may be files, folders (their images) and glob patterns. A failing file gets one line on
stderr and never stops the others or leaves a partial output; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from libdeclip import METHODS, __version__, declip
from libdeclip._report import Report, ReportEntry, entry_for
from libdeclip._report import to_8bit as _to_8bit
from libdeclip.engine import MODELS_DIR, OnnxEngine
from libdeclip.errors import DeclipError
from libdeclip.fit import Fit
from libdeclip.io import _SUFFIXES, DEFAULT_PNG_LEVEL, Image, read_image, write_image
from libdeclip.mask import clip_mask
from libdeclip.raw import RAW_SUFFIXES, declip_raw, is_raw_path
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


def _output_for(src: Path, args: argparse.Namespace) -> Path:
    if args.output is not None:
        return Path(args.output)
    folder = Path(args.out_dir) if args.out_dir else src.parent
    suffix = src.suffix
    if is_raw_path(src):  # a camera RAW cannot be written back as such: DNG or TIFF
        suffix = ".dng" if (args.format or "dng") == "dng" else ".tif"
    return folder / f"{src.stem}{args.suffix}{suffix}"


def _side_path(option: str | None, src: Path, single: bool, tag: str) -> Path | None:
    if option is None:
        return None
    p = Path(option)
    if single and not p.is_dir():
        return p
    p.mkdir(parents=True, exist_ok=True)
    return p / f"{src.stem}_{tag}.png"


def _compare_picture(image: Image, result: np.ndarray) -> np.ndarray:
    from PIL import Image as PILImage

    pair = np.concatenate([_to_8bit(image, image.pixels), _to_8bit(image, result)], axis=1)
    im = PILImage.fromarray(pair)
    if im.width > 2048:
        im = im.resize((2048, max(1, round(im.height * 2048 / im.width))), PILImage.Resampling.LANCZOS)
    return np.asarray(im)


def _read_input(src: Path, dst: Path, args: argparse.Namespace) -> Image:
    """Check where the output goes, then read the input (the first stage of a file)."""
    if dst.resolve() == src.resolve():
        raise DeclipError(f"{src}: the output would overwrite the input; choose another --suffix or folder")
    if dst.exists() and not args.overwrite:
        raise DeclipError(f"{dst}: already exists (use --overwrite to replace it)")
    return read_image(src)


def _repair(
    image: Image, args: argparse.Namespace, session: Declipper | None, show_tiles: bool
) -> tuple[np.ndarray, list[str]]:
    """Declip one image: with the model through ``session``, or a classical method (no session)."""
    if image.raw is not None and session is None:
        raise DeclipError(f"{image.path}: --method {args.method} works on RGB images; camera RAW files "
                          "use declipnet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # an ICC profile's note, a device fallback: one line each
        colorspace = image.icc_profile or args.colorspace or image.colorspace
        if session is None:
            result = declip(image.pixels, method=args.method, colorspace=colorspace, fit=args.fit,
                            feather=args.feather, consistency=args.consistency)
        elif image.raw is not None:  # masked on the photosites, kept as float camera RGB
            result = declip_raw(session, image, progress=show_tiles)  # unmasked values never move
        else:
            result = session.run(
                image.pixels,
                colorspace=colorspace,
                fit=args.fit,
                feather=args.feather,
                progress=show_tiles,
                consistency=args.consistency,
            )
    return result, [str(w.message) for w in caught]


def _write_outputs(
    src: Path, dst: Path, image: Image, result: np.ndarray, notes: list[str], args: argparse.Namespace,
    single: bool,
) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # --format, --exposure and --fit's development apply to camera RAW inputs only
    write_image(dst, image.with_pixels(result), format=args.format if image.raw is not None else None,
                overwrite=args.overwrite, png_level=args.png_level, exposure=args.exposure,
                fit=args.fit or "compress")
    mask_path = _side_path(args.mask, src, single, "mask")
    if mask_path is not None:
        mask = image.raw_mask if image.raw_mask is not None else clip_mask(image.pixels)[0]
        m = np.asarray(mask.any(axis=2), dtype=np.uint8) * 255
        write_image(mask_path, Image(pixels=m, format="png"), overwrite=True)
    compare_path = _side_path(args.compare, src, single, "compare")
    if compare_path is not None:
        write_image(compare_path, Image(pixels=_compare_picture(image, result), format="png"), overwrite=True)
    return "; ".join([f"{src} -> {dst}"] + notes)


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
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    model = args.method == "declipnet"  # the classical methods need no model session
    try:
        jobs = max(1, int(args.jobs))
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        first = Declipper(device=args.device, threads=threads, tile_size=args.tile_size) if model else None
        report_pages = Report(args.report) if args.report else None
    except (DeclipError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    local = threading.local()
    parallel = jobs > 1 and (first is None or first.device == "cpu")  # a GPU session serves every file
    order = {src: i for i, src in enumerate(paths)}

    def session() -> Declipper | None:
        if not parallel or first is None:
            return first
        if not hasattr(local, "session"):
            local.session = Declipper(device="cpu", threads=threads, tile_size=args.tile_size)
        return local.session

    failures: list[str] = []
    bar = tqdm(total=len(paths), desc="files", unit="file", disable=args.quiet or single)
    show_tiles = single and not args.quiet
    failed = (DeclipError, OSError, ValueError)

    report_failed: list[str] = []

    def report(src: Path, message: str | None, exc: BaseException | None) -> None:
        if exc is not None:
            failures.append(str(src))
            bar.write(f"error: {exc}", file=sys.stderr)
            page_entry(src, lambda: ReportEntry(str(src), method=args.method, error=str(exc)))
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

    def read(src: Path) -> tuple[Path, Image]:
        dst = _output_for(src, args)
        return dst, _read_input(src, dst, args)

    def write(
        src: Path, dst: Path, image: Image, result: np.ndarray, notes: list[str], seconds: float
    ) -> None:
        try:
            message = _write_outputs(src, dst, image, result, notes, args, single)
        except failed as exc:
            report(src, None, exc)
            return
        page_entry(src, lambda: entry_for(str(src), image, result, method=args.method, seconds=seconds,
                                          output=dst, notes=notes))
        report(src, message, None)

    def repair(image: Image, on: Declipper | None) -> tuple[np.ndarray, list[str], float]:
        start = time.perf_counter()
        result, notes = _repair(image, args, on, show_tiles)
        return result, notes, time.perf_counter() - start

    def one(src: Path) -> None:
        try:
            dst, image = read(src)
            result, notes, seconds = repair(image, session())
        except failed as exc:
            report(src, None, exc)
            return
        write(src, dst, image, result, notes, seconds)

    if parallel:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, paths))
    else:
        # One file at a time on the model, with its neighbours' reading and writing on a second
        # thread (file decoding and encoding release the GIL), so disk and codecs hide behind it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="libdeclip-io") as io:
            reading = io.submit(read, paths[0])
            for i, src in enumerate(paths):
                current = reading
                if i + 1 < len(paths):
                    reading = io.submit(read, paths[i + 1])
                try:
                    dst, image = current.result()
                    result, notes, seconds = repair(image, first)
                except failed as exc:
                    report(src, None, exc)
                    continue
                io.submit(write, src, dst, image, result, notes, seconds)
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


def _print_raw_info(src: Path, image: Image, session: Declipper) -> None:
    raw, mask = image.raw, image.raw_mask
    assert raw is not None and mask is not None
    h, w = image.pixels.shape[:2]
    plan = session.plan(h, w)
    touched = sum(bool(mask[t.core].any()) for t in plan)
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
    print(f"  model      would run {touched} of {len(plan)} tiles ({session.tile_size} px) "
          f"and change {int(mask.sum()):,} values")


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
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            if image.icc_profile:
                space = colorspace_from_icc(image.icc_profile).name
            else:
                space = "linear sRGB (OpenEXR)" if image.format == "exr" else "sRGB (assumed)"
        mask, summary = clip_mask(image.pixels)
        plan = session.plan(h, w)
        touched = sum(bool(mask[t.core].any()) for t in plan)
        names = "RGB" if mask.shape[2] == 3 else "Y"
        print(f"{src}")
        print(f"  format     {image.format.upper()}, {w} x {h}, {image.channels} channel(s), "
              f"{image.bit_depth}-bit {kind}{', alpha' if image.has_alpha else ''}")
        print(f"  colour     {space}")
        print(f"  clip       levels {image.clip_levels[0]:g} / {image.clip_levels[1]:g}; "
              f"{summary.any:.2%} of pixels clipped")
        for i, name in enumerate(names):
            print(f"    {name}: high {summary.high[i]:.2%}, low {summary.low[i]:.2%}")
        print(f"  model      would run {touched} of {len(plan)} tiles ({session.tile_size} px) "
              f"and change {mask.sum():,} values")
    return status


def _cmd_models(args: argparse.Namespace) -> int:
    for path in sorted(MODELS_DIR.glob("*.onnx")):
        try:
            info = OnnxEngine(path, device="cpu").info
        except DeclipError as exc:
            print(f"{path.name}: unusable ({exc})")
            continue
        print(f"{path.name}: {info.name} v{info.version}")
        print(f"  receptive field {info.receptive_field_radius} px, {info.training_steps} training steps")
        print(f"  trained on: {info.metadata.get('training_data', '?')}")
        print(f"  checkpoint sha256: {info.checkpoint_sha256}")
    return 0


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
    d.add_argument("--suffix", default="_declip", help="added to the file name (default: _declip)")
    d.add_argument("--fit", choices=[f.value for f in Fit], help="range policy (default: compress "
                   "for integer files, float for float files)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    d.add_argument("--method", choices=METHODS, default="declipnet",
                   help="declipnet (default: the network) or a classical method without a model "
                   "(RGB images only)")
    d.add_argument("--no-consistency", dest="consistency", action="store_false",
                   help="do not hold clipped values at or beyond their clip level (to see what the "
                   "constraint does)")
    d.add_argument("--colorspace", default=None, help="colour space of files without an ICC profile "
                   "(default: srgb; linear-srgb for OpenEXR)")
    d.add_argument("--feather", type=int, default=0, help="blend into unclipped pixels up to this "
                   "many pixels from clipping (default 0: unclipped pixels untouched; not for RAW)")
    d.add_argument("--jobs", type=int, default=1, help="files processed in parallel on the CPU")
    d.add_argument("--png-level", type=int, default=DEFAULT_PNG_LEVEL, choices=range(10), metavar="0-9",
                   help=f"zlib level of PNG outputs (default {DEFAULT_PNG_LEVEL}; 9 = smallest, slowest)")
    d.add_argument("--format", choices=["dng", "tiff32", "tiff16"], default=None,
                   help="camera RAW inputs: linear DNG (default), scene-referred float32 TIFF in linear "
                   "Rec. 2020, or 16-bit sRGB TIFF")
    d.add_argument("--exposure", type=float, default=0.0,
                   help="camera RAW inputs, TIFF output: exposure in EV (default 0)")
    d.add_argument("--tile-size", type=int, default=None, help="tile core size in pixels")
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
    m = sub.add_parser("models", help="list installed models")
    m.set_defaults(func=_cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
