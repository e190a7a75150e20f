"""Where each repaired file goes: output names, checked before anything is read.

:func:`plan_outputs` names every output of a run (``-o``, ``--out-dir``, ``--suffix``,
``--in-place``; a camera RAW becomes a DNG or TIFF) and refuses, per file, an output that is an
input of the run (by its name or through a symbolic or hard link), one that two files would share,
and a mask or before | after picture that would replace either.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from libdeclip.io import DEFAULT_PNG_LEVEL, IMAGE_SUFFIXES, RAW_SUFFIXES, is_raw_path

__all__ = ["DEFAULT_SUFFIX", "INPUT_SUFFIXES", "OutputOptions", "Target", "expand_inputs", "output_suffix",
           "plan_outputs", "side_path"]

DEFAULT_SUFFIX = "_declip"
#: What a folder given as input contributes: its files with these suffixes.
INPUT_SUFFIXES = frozenset(IMAGE_SUFFIXES) | RAW_SUFFIXES


@dataclass(frozen=True)
class OutputOptions:
    """Where and how each repaired file is written.

    Attributes:
        output: the output file (one input only).
        out_dir: the folder for the outputs (default: next to each input).
        suffix: added to the input's name.
        in_place: replace each input with its repair (not camera RAW), in one rename once the new
            file is complete.
        overwrite: replace existing outputs.
        raw_format: camera RAW inputs: ``"dng"`` (default), ``"tiff32"`` or ``"tiff16"``.
        exposure: camera RAW inputs written as TIFF: exposure in EV.
        png_level: zlib level of PNG outputs.
        quality: quality (0-100) of lossy outputs (JPEG, WebP, AVIF, HEIC); None: the writer's
            default for each (:func:`libdeclip.io.write_image`).
        mask: write the clip mask as PNG here (a folder for several inputs).
        compare: write a before | after PNG here (a folder for several inputs).
        report: write ``report/index.html``, a static page of every file.
    """

    output: Path | None = None
    out_dir: Path | None = None
    suffix: str = DEFAULT_SUFFIX
    in_place: bool = False
    overwrite: bool = False
    raw_format: str | None = None
    exposure: float = 0.0
    png_level: int = DEFAULT_PNG_LEVEL
    quality: int | None = None
    mask: str | None = None
    compare: str | None = None
    report: Path | None = None


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images) and glob patterns as a list of files, each once."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        try:
            folder = p.is_dir()
        except OSError:  # a name too long, ...: reported when the file is read
            folder = False
        if folder:
            paths += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
        elif any(ch in item for ch in "*?[") and not p.exists():
            paths += sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
        else:
            paths.append(p)  # missing files are reported per file later
    seen: set[Path] = set()
    unique = []
    for p in paths:
        key = Path(os.path.realpath(p))  # never raises, not even for a loop of links
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_suffix(src: Path, raw_format: str | None) -> str:
    """The output's file extension: the input's, but a camera RAW cannot be written back as such:
    DNG or TIFF (``raw_format``)."""
    if is_raw_path(src):
        return ".dng" if (raw_format or "dng") == "dng" else ".tif"
    return src.suffix


def _output_for(src: Path, out: OutputOptions) -> Path:
    if out.output is not None:
        return Path(out.output)
    if out.in_place:
        return src
    folder = Path(out.out_dir) if out.out_dir else src.parent
    return folder / f"{src.stem}{out.suffix or ''}{output_suffix(src, out.raw_format)}"


def side_path(option: str | None, src: Path, single: bool, tag: str) -> Path | None:
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


class Target(NamedTuple):
    """Where a file's output goes, or why it cannot be written."""

    dst: Path
    problem: str | None = None
    replaces_input: bool = False  # in_place: dst is the input itself


def _problem(src: Path, dst: Path, replaces: bool, key: tuple[object, ...], out: OutputOptions,
             inputs: dict[tuple[object, ...], Path], claimed: dict[tuple[object, ...], Path]) -> str | None:
    if replaces and not out.in_place:
        how = "" if os.path.abspath(dst) == os.path.abspath(src) else f" ({dst} is a link to it)"
        return (f"{src}: the output would overwrite the input{how}; choose another -o, --suffix "
                "or --out-dir, or pass --in-place to replace the input")
    if replaces and is_raw_path(src):
        return (f"{src}: --in-place cannot replace a camera RAW file (its repair is written as "
                "DNG or TIFF); use --suffix or --out-dir")
    if key in inputs and not replaces:
        return f"{src}: its output {dst} is another input of this run ({inputs[key]}); not replaced"
    if key in claimed:
        return f"{src}: its output {dst} is also the output of {claimed[key]}; not written twice"
    return None


def plan_outputs(paths: Sequence[Path], out: OutputOptions, single: bool) -> dict[Path, Target]:
    """Each input's output path, checked before anything is read: no output (or mask/compare
    picture) may be a file that is an input of this run, by its own name or through a symbolic or
    hard link (``in_place`` allows an input's own output to replace it), and no two files may
    share an output."""
    inputs: dict[tuple[object, ...], Path] = {}
    for src in paths:
        inputs.setdefault(_file_key(src), src)
    claimed: dict[tuple[object, ...], Path] = {}
    plan: dict[Path, Target] = {}
    for src in paths:
        dst = _output_for(src, out)
        key = _file_key(dst)
        replaces = _file_key(src) == key
        problem = _problem(src, dst, replaces, key, out, inputs, claimed)
        for option, tag in ((out.mask, "mask"), (out.compare, "compare")):
            side = side_path(option, src, single, tag)
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
        plan[src] = Target(dst, problem, replaces)
    return plan
