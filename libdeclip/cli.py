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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
from libdeclip.io import DEFAULT_PNG_LEVEL, FORMAT_NAMES, Image, read_image
from libdeclip.mask import clip_mask, levels_from_data
from libdeclip.options import COMBINED, METHODS, RepairOptions
from libdeclip.outputs import DEFAULT_SUFFIX, OutputOptions, expand_inputs
from libdeclip.session import Declipper
from libdeclip.workflow import NOTES, declip_files


def repair_options(args: argparse.Namespace) -> RepairOptions:
    """The repair options of ``declip``'s and ``batch``'s command line."""
    return RepairOptions(method=args.method, model=args.model, device=getattr(args, "device", "auto"),
                         fit=args.fit, feather=args.feather, consistency=args.consistency,
                         colorspace=args.colorspace)


def output_options(args: argparse.Namespace) -> OutputOptions:
    """Where and how ``declip``'s command line writes its outputs (``batch`` names its own)."""
    return OutputOptions(
        output=Path(args.output) if getattr(args, "output", None) else None,
        out_dir=Path(args.out_dir) if getattr(args, "out_dir", None) else None,
        suffix=DEFAULT_SUFFIX if getattr(args, "suffix", None) is None else args.suffix,
        in_place=getattr(args, "in_place", False), overwrite=getattr(args, "overwrite", False),
        raw_format=args.format, exposure=args.exposure, png_level=args.png_level, quality=args.quality,
        mask=getattr(args, "mask", None), compare=getattr(args, "compare", None),
        report=Path(args.report) if getattr(args, "report", None) else None,
    )


def _cmd_declip(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    paths = expand_inputs(args.inputs)
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
    bar = tqdm(total=len(paths), desc="files", unit="file", disable=args.quiet or single)

    def on_file(src: Path, message: str | None, error: BaseException | None) -> None:
        if error is not None:
            bar.write(f"error: {error}", file=sys.stderr)
        elif message and not args.quiet:
            bar.write(message)
        bar.update(1)

    try:
        options, out = repair_options(args), output_options(args)
        summary = declip_files(paths, options, out, jobs=args.jobs, tile_size=args.tile_size,
                               show_tiles=single and not args.quiet, on_file=on_file,
                               on_problem=lambda line: bar.write(line, file=sys.stderr))
    except (DeclipError, OSError, ValueError) as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    if summary.failures or not single:
        print(f"{summary.done} of {summary.total} files declipped, {len(summary.failures)} failed",
              file=sys.stderr)
    if summary.report_index is not None and not args.quiet:
        print(f"report: {summary.report_index}", file=sys.stderr)
    return 1 if summary.failures or summary.report_failures else 0


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
    for src in expand_inputs(args.files):
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
        with NOTES.collect():
            if image.icc_profile:
                space = colorspace_from_icc(image.icc_profile).name
            elif image.nclx is not None:
                space = f"{image.colorspace.name} (nclx {image.nclx[0]}/{image.nclx[1]})"
            else:
                space = "linear sRGB (OpenEXR)" if image.format == "exr" else "sRGB (assumed)"
        mask, summary = clip_mask(image.pixels)
        names = "RGB" if mask.shape[2] == 3 else "Y"
        print(f"{src}")
        depth = (f"{image.significant_bits}-bit {kind} (as 16-bit)" if image.significant_bits
                 else f"{image.bit_depth}-bit {kind}")
        lossless = image.encoding.get("lossless")
        coding = "" if lossless is None else ", lossless" if lossless else ", lossy"
        print(f"  format     {FORMAT_NAMES.get(image.format, image.format.upper())}{coding}, {w} x {h}, "
              f"{image.channels} channel(s), {depth}{', alpha' if image.has_alpha else ''}")
        print(f"  colour     {space}")
        colour = image.pixels.reshape(h, w, -1)[..., : mask.shape[2]]
        found = levels_from_data(colour)
        if found is None:
            levels = f"levels {image.clip_levels[0]:g} / {image.clip_levels[1]:g} (the pixel type's range)"
        else:
            levels = f"levels 0 / {found.scale:g}, {found.describe(names)}"
        print(f"  clip       {levels}; {summary.any:.2%} of pixels clipped")
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
        output = OutputOptions(raw_format=args.format, exposure=args.exposure, png_level=args.png_level,
                               quality=args.quality)
        summary = run_batch(
            jobs, dst, repair_options(args), output, address=args.ray, workers=args.workers, cpus=args.cpus,
            gpus_per_worker=args.gpus_per_worker, threads_per_worker=args.threads_per_worker,
            tile_size=args.tile_size, verify=args.verify, progress=not args.quiet,
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


def _add_repair_options(p: argparse.ArgumentParser) -> None:
    """How each file is repaired and written: the options ``declip`` and ``batch`` share
    (:func:`repair_options` and :func:`output_options` read them)."""
    add = p.add_argument
    add("--fit", choices=[f.value for f in Fit],
        help="range policy (default: compress for integer files, float for float files)")
    add("--model", default=None, metavar="NAME|FILE", type=_model_choice,
        help="the network: a shipped model's name (declipnet-v2, declipnet-v2-int8, declipnet-v2-fp16, "
        "declipnet-v1; see 'libdeclip models') or an ONNX file. Default: automatic, v2 in the "
        "device's precision (int8 on the CPU, float16 on CUDA)")
    add("--method", choices=(*METHODS, COMBINED), default=None,
        help=f"declipnet (the network; the default for RGB files), a classical method without a "
        f"model (on camera RAW, inpaint-opposed repairs the photosites before demosaicing), or "
        f"{COMBINED} (camera RAW only, its default: the photosite inpaint opposed where a channel "
        f"survives, the network where all three are clipped)")
    add("--no-consistency", dest="consistency", action="store_false",
        help="do not hold clipped values at or beyond their clip level (to see what the "
        "constraint does)")
    add("--colorspace", default=None,
        help="colour space of files without an ICC profile (default: srgb; linear-srgb for OpenEXR)")
    add("--feather", type=int, default=0,
        help="blend into unclipped pixels up to this many pixels from clipping (default 0: "
        "unclipped pixels untouched; not for RAW)")
    add("--png-level", type=int, default=DEFAULT_PNG_LEVEL, choices=range(10), metavar="0-9",
        help=f"zlib level of PNG outputs (default {DEFAULT_PNG_LEVEL}; 9 = smallest, slowest)")
    add("--quality", type=int, default=None, choices=range(101), metavar="0-100",
        help="quality of JPEG, WebP, AVIF and HEIC outputs (default: a JPEG's own tables, a "
        "lossless WebP lossless, else 95 for JPEG and WebP, 90 for AVIF and HEIC)")
    add("--format", choices=["dng", "tiff32", "tiff16"], default=None,
        help="camera RAW inputs: linear DNG (default), scene-referred float32 TIFF in linear "
        "Rec. 2020, or 16-bit sRGB TIFF")
    add("--exposure", type=float, default=0.0,
        help="camera RAW inputs, TIFF output: exposure in EV (default 0)")
    add("--tile-size", type=int, default=None, help="tile core size in pixels")


class _VersionAction(argparse.Action):
    """``--version``: the package's version, looked up only when asked (it costs an import of
    importlib.metadata, a fifth of the CLI's start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show the version and exit") -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        import libdeclip

        print(f"libdeclip {libdeclip.__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="libdeclip", description="Repair clipped highlights and shadows in photos."
    )
    p.add_argument("--version", action=_VersionAction)
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
    _add_repair_options(d)
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
    b.set_defaults(func=_cmd_batch)
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
