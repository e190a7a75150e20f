"""A static HTML page to judge a batch of declipped photos at a glance (``libdeclip declip --report``).

``DIR/index.html`` shows, for every photo, a before/after slider, a toggle that lays the clip mask
over the picture (magenta where clipped high, cyan where clipped low) and the figures: size,
clipped fraction per channel, method, time, brightest recovered value, output. Files that failed
are listed with their error. The pictures are 8-bit previews at most :data:`MAX_PREVIEW_WIDTH`
pixels wide in ``DIR/images/``; the style and the script are inline. Nothing is fetched: the page
works from ``file://``, offline, without a server.

From Python (the CLI and ``make bench`` use the same code)::

    from libdeclip._report import ReportEntry, write_report
    write_report("report", [ReportEntry("a.png", before=rgb8, after=fixed8, mask=clipped)])

or, file by file as they finish (thread-safe; the page is written last)::

    report = Report("report")
    report.add(entry_for("a.png", image, result, method="declipnet", seconds=1.2), order=0)
    report.write()
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np

from libdeclip import __version__
from libdeclip._preview import (
    MAX_PREVIEW_WIDTH,
    any_channel,
    encode,
    fit_width,
    overlay,
    preview,
    shrink_mask,
)
from libdeclip.inputs import resolve_clip_levels
from libdeclip.io import Image
from libdeclip.io.files import atomic_write
from libdeclip.mask import ClipSummary, clip_mask, clip_masks

__all__ = ["Report", "ReportEntry", "entry_for", "write_report"]

_IMAGE_SUFFIXES = ("_before.jpg", "_after.jpg", "_mask.png")
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')  # not allowed in file names on some systems


@dataclass
class ReportEntry:
    """One photo of the report; only ``name`` is needed, the rest shows where given.

    ``before``/``after``: 8-bit previews, H x W or H x W x 3 uint8, any size (scaled down to
    :data:`MAX_PREVIEW_WIDTH` here). ``mask``: where the input is clipped, H x W (x C) booleans at
    any size, or a ``(low, high)`` pair of them (each shown in its own colour). ``size``: the full
    image's (width, height). ``peak``: the brightest recovered value, as a multiple of the clip
    level. ``error``: why the file failed (then it is listed with it, without pictures).
    """

    name: str
    before: np.ndarray | None = field(default=None, repr=False)
    after: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    size: tuple[int, int] | None = None
    summary: ClipSummary | None = None
    method: str | None = None
    seconds: float | None = None
    peak: float | None = None
    output: str | os.PathLike[str] | None = None
    error: str | None = None
    notes: Sequence[str] = ()
    orientation: int | None = None  # EXIF orientation of the pictures, applied to the previews
    kind: str | None = None  # what the file is, e.g. "PNG 8-bit"


def _peak(image: Image, result: np.ndarray, high: np.ndarray) -> float | None:
    """The brightest recovered value over the clip level, for float results (integer ones were
    fitted into range, so the value says nothing there)."""
    if result.dtype.kind != "f" or not high.any():
        return None
    colour = result[..., None] if result.ndim == 2 else result[..., : high.shape[2]]
    low_levels, high_levels = resolve_clip_levels(result.dtype, high.shape[2], image.clip_levels)
    best = -np.inf
    for c in range(high.shape[2]):
        values = colour[..., c][high[..., c]]
        if values.size:
            best = max(best, float((values.max() - low_levels[c]) / (high_levels[c] - low_levels[c])))
    return best if np.isfinite(best) else None


def entry_for(
    name: str, image: Image, result: np.ndarray, *, method: str | None = None,
    seconds: float | None = None, output: str | os.PathLike[str] | None = None, notes: Sequence[str] = (),
    max_width: int = MAX_PREVIEW_WIDTH,
) -> ReportEntry:
    """A :class:`ReportEntry` for ``image`` (as read by :func:`libdeclip.read_image`) and its
    declipped ``result``: previews, clip mask, :class:`ClipSummary` and peak."""
    h, w = image.pixels.shape[:2]
    if image.raw_mask is not None:  # camera RAW: clipped photosites, high only
        low, high = None, image.raw_mask
        summary = ClipSummary(high=tuple(float(v) for v in high.mean(axis=(0, 1))),
                              low=(0.0,) * high.shape[2], any=float(high.any(axis=2).mean()))
        kind = f"camera RAW ({image.raw.make} {image.raw.model})" if image.raw is not None else "camera RAW"
    else:
        colour = image.pixels[..., None] if image.pixels.ndim == 2 else image.pixels[..., :3]
        if colour.shape[2] == 2:  # grey + alpha
            colour = colour[..., :1]
        _, summary = clip_mask(colour, image.clip_levels)
        lo, hi = resolve_clip_levels(image.pixels.dtype, colour.shape[2], image.clip_levels)
        low, high = clip_masks(colour, lo, hi)
        kind = f"{image.format.upper()} {image.bit_depth}-bit {'float' if image.is_float else 'integer'}"
    before = preview(image, image.pixels, max_width)
    return ReportEntry(
        name=name, before=before, after=preview(image, result, max_width),
        mask=(any_channel(low) if low is not None else np.zeros((h, w), bool), any_channel(high)),
        size=(w, h), summary=summary, method=method, seconds=seconds, peak=_peak(image, result, high),
        output=output, notes=tuple(notes), orientation=image.orientation, kind=kind,
    )


@dataclass
class _Row:
    """What the page shows of one entry once its pictures are on disk."""

    entry: ReportEntry
    pictures: dict[str, tuple[str, int, int]]  # before/after/mask -> (file name in images/, w, h)


def _file_stem(name: str) -> str:
    stem = Path(name.replace("\\", "/")).stem or "image"
    return _UNSAFE.sub("_", stem)[:80]


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_write(path, overwrite=True) as tmp, open(tmp, "wb") as f:
        f.write(data)


class Report:
    """A report being written to ``directory``: :meth:`add` each photo (its pictures are written
    then, and its arrays let go), :meth:`write` the page at the end. ``add`` is thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], title: str = "libdeclip report") -> None:
        self.directory = Path(directory)
        self.title = title
        self._images = self.directory / "images"
        self._images.mkdir(parents=True, exist_ok=True)
        self._rows: dict[int, _Row] = {}
        self._lock = threading.Lock()
        self._next = 0

    def add(self, entry: ReportEntry, order: int | None = None) -> None:
        """Write ``entry``'s pictures and keep its figures; ``order`` places it on the page
        (default: after the ones added so far)."""
        with self._lock:
            if order is None:
                order = self._next
            self._next = max(self._next, order + 1)
        pictures: dict[str, tuple[str, int, int]] = {}
        if entry.error is None:
            stem = f"{order:03d}_{_file_stem(entry.name)}"
            shown: dict[str, tuple[np.ndarray, str]] = {}
            for role in ("before", "after"):
                pixels = getattr(entry, role)
                if pixels is not None:
                    shown[role] = (fit_width(np.asarray(pixels, dtype=np.uint8), MAX_PREVIEW_WIDTH), "jpeg")
            base = shown.get("before", shown.get("after"))
            if entry.mask is not None and base is not None:
                low, high = entry.mask if isinstance(entry.mask, tuple) else (None, entry.mask)
                size = (base[0].shape[1], base[0].shape[0])
                high = shrink_mask(any_channel(np.asarray(high, dtype=bool)), size)
                low = None if low is None else shrink_mask(any_channel(np.asarray(low, dtype=bool)), size)
                shown["mask"] = (overlay(high, low), "png")
            for role, (pixels, kind) in shown.items():
                file = f"{stem}_{role}.{'jpg' if kind == 'jpeg' else 'png'}"
                _atomic_write(self._images / file, encode(pixels, kind, entry.orientation))
                h, w = pixels.shape[:2]
                if entry.orientation in (5, 6, 7, 8):
                    w, h = h, w
                pictures[role] = (file, w, h)
        light = ReportEntry(**{**entry.__dict__, "before": None, "after": None, "mask": None})
        with self._lock:
            self._rows[order] = _Row(light, pictures)

    def write(self) -> Path:
        """Write ``index.html`` (atomically, after every picture) and remove pictures of an
        earlier report in the same folder that this one no longer shows; return its path."""
        with self._lock:
            rows = [self._rows[k] for k in sorted(self._rows)]
        page = _page(self.title, rows, self.directory)
        index = self.directory / "index.html"
        _atomic_write(index, page.encode("utf-8"))
        used = {file for row in rows for file, _, _ in row.pictures.values()}
        for old in self._images.iterdir():
            if old.name not in used and old.name.endswith(_IMAGE_SUFFIXES) and old.name[:3].isdigit():
                old.unlink(missing_ok=True)
        return index


def write_report(
    directory: str | os.PathLike[str], entries: Iterable[ReportEntry], title: str = "libdeclip report"
) -> Path:
    """Write a report of ``entries`` (in that order) to ``directory``; return index.html's path."""
    report = Report(directory, title)
    for i, entry in enumerate(entries):
        report.add(entry, order=i)
    return report.write()


# ------------------------------------------------------------------------------------------ page

_e = html.escape


def _url(path: str) -> str:
    """A relative link, URL-quoted (spaces, #, %, quotes, non-ASCII) and escaped for an attribute."""
    return _e(quote(path, safe="/"))


def _link_to(target: str | os.PathLike[str], directory: Path) -> str:
    p = Path(target).absolute()
    try:
        href = _url(Path(os.path.relpath(p, directory.absolute())).as_posix())
    except ValueError:  # another drive (Windows): no relative path
        href = _e(p.as_uri())
    return f'<a href="{href}">{_e(str(target))}</a>'


def _percent(v: float) -> str:
    return f"{v:.2%}".replace("%", "\u2009%")


def _channel_table(summary: ClipSummary) -> str:
    names = "RGB" if len(summary.high) == 3 else ["Y"] if len(summary.high) == 1 else [
        str(i) for i in range(len(summary.high))]
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    high = "".join(f"<td>{_percent(v)}</td>" for v in summary.high)
    low = "".join(f"<td>{_percent(v)}</td>" for v in summary.low)
    return (f'<table class="channels"><tr><th></th>{head}</tr><tr><th>high</th>{high}</tr>'
            f"<tr><th>low</th>{low}</tr></table>")


def _figures(e: ReportEntry, directory: Path) -> str:
    rows: list[tuple[str, str]] = [("file", _e(e.name))]
    if e.size is not None:
        rows.append(("size", f"{e.size[0]} × {e.size[1]}" + (f", {_e(e.kind)}" if e.kind else "")))
    if e.summary is not None:
        rows.append(("clipped", f"{_percent(e.summary.any)} of pixels"))
        rows.append(("per channel", _channel_table(e.summary)))
    if e.method:
        rows.append(("method", _e(e.method)))
    if e.seconds is not None:
        rows.append(("time", f"{e.seconds:.2f} s"))
    if e.peak is not None:
        rows.append(("brightest recovered", f"{e.peak:.2f} × clip level"))
    if e.output is not None:
        rows.append(("output", _link_to(e.output, directory)))
    for note in e.notes:
        rows.append(("note", _e(note)))
    body = "".join(f'<tr class="fig-{_e(k.replace(" ", "-"))}"><th>{_e(k)}</th><td>{v}</td></tr>'
                   for k, v in rows)
    return f'<table class="figures">{body}</table>'


def _section(i: int, row: _Row, directory: Path) -> str:
    e = row.entry
    head = f'<section class="photo{" failed" if e.error else ""}" id="photo-{i}"><h2>{_e(e.name)}</h2>'
    if e.error is not None:
        return f'{head}<p class="error">{_e(e.error)}</p></section>'
    pics = row.pictures
    if "before" not in pics and "after" not in pics:
        return f'{head}<div class="body">{_figures(e, directory)}</div></section>'
    w, h = pics.get("before", pics.get("after", ("", 1, 1)))[1:]
    alt = _e(e.name)

    def img(role: str, extra: str = "") -> str:
        file = pics[role][0]
        return (f'<img class="{role}" src="{_url("images/" + file)}" alt="{role}: {alt}" '
                f'width="{w}" height="{h}" decoding="async"{extra}>')

    layers = []
    if "before" in pics:
        layers.append(img("before"))
    if "after" in pics:
        layers.append(img("after", ' style="clip-path: inset(0 0 0 50%)"'))
    if "mask" in pics:
        layers.append(img("mask", " hidden"))
    toggle = ""
    if "mask" in pics:
        toggle = ('<label class="toggle"><input type="checkbox" class="mask-toggle"> clip mask '
                  '<span class="key"><i class="hi"></i>high <i class="lo"></i>low</span></label>')
    compare = (
        f'<div class="compare" style="aspect-ratio: {w} / {h}">{"".join(layers)}'
        '<div class="divider" style="left: 50%"></div>'
        '<span class="tag tag-before">before</span><span class="tag tag-after">after</span>'
        '<input class="slider" type="range" min="0" max="100" step="0.1" value="50" '
        f'aria-label="before / after: {alt}"></div>'
    )
    return (f'{head}<div class="body"><div class="view" style="max-width: {w}px">{compare}{toggle}</div>'
            f"{_figures(e, directory)}</div></section>")


def _overview(rows: list[_Row]) -> str:
    lines = []
    for i, row in enumerate(rows):
        e = row.entry
        clipped = _percent(e.summary.any) if e.summary is not None else ""
        seconds = f"{e.seconds:.2f} s" if e.seconds is not None else ""
        status = '<span class="bad">failed</span>' if e.error else "ok"
        lines.append(f'<tr><td><a href="#photo-{i}">{_e(e.name)}</a></td><td>{clipped}</td>'
                     f"<td>{_e(e.method or '')}</td><td>{seconds}</td><td>{status}</td></tr>")
    return ('<table class="overview"><tr><th>file</th><th>clipped</th><th>method</th><th>time</th>'
            f'<th></th></tr>{"".join(lines)}</table>')


_CSS = """
:root { color-scheme: dark; --bg: #2a2a2a; --fg: #ddd; --dim: #999; --line: #444; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem 1.5rem 3rem; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; overflow-wrap: anywhere; }
a { color: #8cf; }
header { margin-bottom: 1rem; }
.summary, .dim { color: var(--dim); }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .15rem .6rem .15rem 0; vertical-align: top; }
.overview { margin: .6rem 0; }
.overview td, .overview th { border-bottom: 1px solid var(--line); }
.photo { border-top: 1px solid var(--line); padding: 1.2rem 0; }
.body { display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: flex-start; }
.view { flex: 1 1 24rem; min-width: 0; }
.figures { flex: 0 1 22rem; }
.figures > tbody > tr > th { color: var(--dim); font-weight: normal; white-space: nowrap; }
.figures td { overflow-wrap: anywhere; }
.channels th, .channels td { padding: 0 .7rem 0 0; font-variant-numeric: tabular-nums; }
.compare { position: relative; width: 100%; background: #111; overflow: hidden; user-select: none; }
.compare img { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.compare img[hidden] { display: none; }
.divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 3px #000; pointer-events: none; }
.divider::after { content: ""; position: absolute; top: 50%; left: 50%; width: 22px; height: 22px;
  margin: -11px 0 0 -11px; border-radius: 50%; background: #fff; box-shadow: 0 0 3px #000; }
.tag { position: absolute; top: .4rem; padding: .05rem .4rem; background: rgba(0,0,0,.55);
  border-radius: 3px; font-size: 12px; pointer-events: none; }
.tag-before { left: .4rem; } .tag-after { right: .4rem; }
.slider { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0; background: transparent;
  -webkit-appearance: none; appearance: none; cursor: ew-resize; }
.slider::-webkit-slider-runnable-track { height: 100%; background: transparent; }
.slider::-webkit-slider-thumb { -webkit-appearance: none; width: 2px; height: 100%; background: transparent; }
.slider::-moz-range-track { background: transparent; }
.slider::-moz-range-thumb { width: 2px; height: 100%; border: 0; background: transparent; }
.slider:focus-visible { outline: 2px solid #8cf; outline-offset: 2px; }
.toggle { display: inline-block; margin-top: .5rem; cursor: pointer; }
.key i { display: inline-block; width: .8em; height: .8em; margin: 0 .25em 0 .6em; vertical-align: -1px; }
.key .hi { background: rgb(255,0,255); } .key .lo { background: rgb(0,200,255); }
.error, .bad { color: #f88; }
.error { white-space: pre-wrap; font-family: ui-monospace, monospace; }
"""

_JS = """
for (const box of document.querySelectorAll('.photo')) {
  const slider = box.querySelector('.slider');
  const after = box.querySelector('img.after');
  const divider = box.querySelector('.divider');
  if (slider && after) {
    const move = () => {
      const at = slider.value + '%';
      after.style.clipPath = 'inset(0 0 0 ' + at + ')';
      divider.style.left = at;
    };
    slider.addEventListener('input', move);
    move();
  }
  const toggle = box.querySelector('.mask-toggle');
  const mask = box.querySelector('img.mask');
  if (toggle && mask) {
    const show = () => { mask.hidden = !toggle.checked; };
    toggle.addEventListener('change', show);
    show();
  }
}
const all = document.getElementById('all-masks');
all.addEventListener('change', () => {
  for (const t of document.querySelectorAll('.mask-toggle')) {
    t.checked = all.checked;
    t.dispatchEvent(new Event('change'));
  }
});
"""

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="libdeclip $version">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header>
<h1>$title</h1>
<p class="summary">$summary</p>
$overview
<label class="toggle"><input type="checkbox" id="all-masks"> clip mask on every photo</label>
<span class="dim"> · drag across a picture to compare; magenta: clipped high, cyan: clipped low</span>
</header>
<main>
$sections
</main>
<script>$js</script>
</body>
</html>
""")


def _page(title: str, rows: list[_Row], directory: Path) -> str:
    failed = sum(row.entry.error is not None for row in rows)
    summary = (f"{len(rows)} file{'s' if len(rows) != 1 else ''}: {len(rows) - failed} declipped, "
               f"{failed} failed · libdeclip {__version__} · {time.strftime('%Y-%m-%d %H:%M')}")
    return _PAGE.substitute(
        title=_e(title), version=_e(__version__), css=_CSS, js=_JS, summary=_e(summary),
        overview=_overview(rows), sections="\n".join(_section(i, r, directory) for i, r in enumerate(rows)),
    )
