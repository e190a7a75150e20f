"""Quality harness: every declipping method against the truth, on real photos clipped two ways.

    python -m benchmarks.quality [--data ../shared/data/eval] [--sets kodak24 cbsd68]
        [--protocols paper camera] [--methods identity cross-channel ... declipnet-unconstrained]
        [--out-dir benchmarks/results] [--model FILE.onnx] [--limit N] [--grid N] [--real N]
        [--no-plots]

Methods (rows): ``identity`` (no repair: the clipped input as it is), the classical methods of
:mod:`libdeclip.classic` (``cross-channel``, ``inpaint-opposed``, ``biharmonic``), ``declipnet``
(the shipped model, or ``--model``, with the consistency constraint: the library's default) and
``declipnet-unconstrained`` (the same network with ``consistency=False``, to measure what the
constraint does). Every method runs through ``libdeclip.declip(..., method=...)`` on float32 input
(so the output keeps values beyond the clip levels: fit "float"), on the CPU, feather 0 by default.

Protocols (every draw from a generator seeded with SEED and the file name, plus the protocol's name
for "camera"; "paper" keeps the v1 harness's draws):

- ``paper``: the protocol of the v1 paper replication, both ends. An over-exposure threshold
  ``over`` in 175..255 and an under-exposure threshold ``under`` in 1..80 (integers, 8-bit scale,
  the same for all channels) are drawn; the photo becomes ``(clip(v, under, over) - under) /
  (over - under)``, re-quantised to 8 bits (k / 255) as a real file would be. Methods get it as
  float32 with clip levels (0, 1) and the default tolerance (1/255: values at 254/255 and 1/255
  count as clipped too). A channel value is clipped in the truth when ``v >= over`` or
  ``v <= under``.
- ``camera``: closer to a camera JPEG, highlights only. A base level ``L`` in 180..250 and three
  factors in 0.80..1.00 (like the gains of a white balance applied after the sensor clipped:
  one channel clips before the others) are drawn; the factors are divided by the largest and the
  thresholds are ``T_c = round(L * f_c)`` on the photo's own 0..255 scale (no rescaling: the
  brightest threshold is L). The photo becomes ``min(v, T_c)`` as 8-bit values, is encoded as a JPEG
  (quality drawn in 85..95, chroma 4:2:2 as most cameras write it; Pillow/libjpeg) and decoded
  again. Methods get the decoded values / 255 as float32, clip levels (0, T_c / 255) per channel
  and tolerance 0.02 (values within 2% of the range below T_c, 3-5 code values, count as clipped:
  in a trial on 29 eval photos it caught 92% of the truly clipped values with 93% of the flagged
  values truly clipped, where tolerance 0 caught 65%; JPEG ringing scatters a blown area a few
  codes on both sides of its level). As the protocol has no shadow clipping, the methods are handed that mask
  (``clip_masks(input, 0, T/255, 0.02)``'s high half, exactly what the library would detect) with
  no low half, so no method touches the shadows. A channel value is clipped in the truth when
  ``v >= T_c``. The report gives the detected mask's recall and precision against the truth.

Region. The clipped region is defined from the truth and the thresholds, never from what a method
detects: the pixels with any channel clipped in the truth (as above). It is split into "some
channel survives" (at least one channel inside its thresholds) and "all channels clipped"; the two
partition the region. A value exactly at a threshold counts as clipped: the file cannot tell it
from a clipped one (so no repair is exact there). The eval photos are 8-bit files with a few blown
areas of their own: there the truth is 255, itself a clipped value, and a method that recovers
more than 255 is scored as wrong by the excess (unclamped metrics) or not at all (clamped ones);
the bound-aware PSNR below scores it as what it is, a lower bound (how often that happens:
BENCHMARKS.md, "Ablations of v3's training").

Metrics, on the photo's own 0..255 scale after mapping a method's output back (paper:
``v * (over - under) + under``; camera: ``v * 255``), with the truth as the 8-bit photo:

- PSNR (dB, peak 255) and MAE over the region's pixels, all three channels, on the output
  unclamped (values beyond 0..255 count as the errors they are);
- bound-aware PSNR (``<split>_psnr_bound``): the same, except that a truth value at 255 (the
  original file's own clipping) is a lower bound, so an output at or above it there is no error
  and one below it is scored by how far below it is;
- SSIM: Wang et al. (2004) per pixel and channel (11 x 11 Gaussian window, sigma 1.5, K1 0.01,
  K2 0.03, data range 255; scikit-image) of the output clamped to 0..255 against the truth, the
  map averaged over the region's pixels and the channels;
- CIEDE2000 (scikit-image ``deltaE_ciede2000``, CIELAB of sRGB with the D65 white) between the
  output clamped to 0..255 (as a display shows it) and the truth, averaged over the region's pixels;
- HaarPSI (Reisenhofer et al. 2018; :func:`benchmarks._metrics.haarpsi`, our numpy port) of the
  whole image, the output clamped to 0..255;
- per photo, also the whole-image PSNR and each method's run time.

Each region metric is reported for the region, "some channel survives" and "all channels clipped".
In the markdown tables, a set's region numbers pool every region pixel of the set (PSNR from the
pooled squared error, the others pixel-weighted means: a photo counts by its clipped area, and a
photo with a handful of clipped pixels cannot swing the mean); HaarPSI and time are means over
photos. ``quality.csv`` has every photo's own numbers.

Outputs in --out-dir: ``quality.csv`` (one row per set, protocol, photo and method),
``quality.md`` (tables per protocol and set, methods as rows, and a "wins" line computed from them),
``quality_vs_fraction_<protocol>.png`` (region PSNR and CIEDE2000 against clipped fraction, per
method), ``quality_grid_<protocol>.png`` (rows: the photos with the largest connected clipped
areas; columns: clipped | each method | truth; under each row, nearest-neighbour zooms of its
largest clipped area) and ``quality_grid_real.png`` (real clipped photos from
../shared/data/clipped, no truth: input | each method, displayed through one shared highlight
shoulder per row so that values recovered above the clip level show brighter instead of clamped).
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import math
import sys
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

import libdeclip
from benchmarks._metrics import PEAK, chroma_error, ciede2000, grid_pattern, haarpsi, mae, psnr, ssim_map
from libdeclip.io import IMAGE_SUFFIXES
from libdeclip.mask import DEFAULT_TOLERANCE, clip_masks

SEED = 20261125
PROTOCOLS = ("paper", "camera")
#: Rows of the report, in order: (row name, libdeclip method, consistency).
METHOD_ROWS: dict[str, tuple[str | None, bool]] = {
    "identity": (None, True),
    "cross-channel": ("cross-channel", True),
    "inpaint-opposed": ("inpaint-opposed", True),
    "biharmonic": ("biharmonic", True),
    "declipnet": ("declipnet", True),
    "declipnet-unconstrained": ("declipnet", False),
}
METHODS = tuple(METHOD_ROWS)
SPLITS = ("region", "partial", "full")
SPLIT_NAMES = {"region": "clipped region", "partial": "some channel survives", "full": "all channels clipped"}
METRICS = ("psnr", "ssim", "ciede2000", "mae")
#: (label, unit, higher is better)
METRIC_INFO = {
    "psnr": ("PSNR", "dB", True),
    "ssim": ("SSIM", "", True),
    "ciede2000": ("CIEDE2000", "", False),
    "mae": ("MAE", "0..255", False),
    "haarpsi": ("HaarPSI", "whole image", True),
}

PAPER_OVER = (175, 255)
PAPER_UNDER = (1, 80)
CAMERA_LEVEL = (180, 250)
CAMERA_FACTORS = (0.80, 1.00)
CAMERA_QUALITY = (85, 95)
CAMERA_SUBSAMPLING = 1  # Pillow's code for 4:2:2
CAMERA_TOLERANCE = 0.02
REAL_TOLERANCE = CAMERA_TOLERANCE  # real JPEGs ring the same way

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "eval"
DEFAULT_REAL = REPO.parent / "shared" / "data" / "clipped"


# -- protocols --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One photo clipped by one protocol: what the methods get and what they are scored against."""

    name: str
    protocol: str
    truth: np.ndarray  # H x W x 3 float32, the photo on 0..255
    clipped: np.ndarray  # H x W x 3 float32: the methods' input
    low: np.ndarray  # (3,) clip levels of the input, as handed to the methods
    high: np.ndarray
    tolerance: float
    truth_clipped: np.ndarray  # H x W x 3 bool: truth values at or beyond their threshold
    gain: float  # photo scale = offset + gain * input scale
    offset: float
    params: dict[str, object] = field(default_factory=dict)
    mask: np.ndarray | None = None  # handed to the methods (camera: highlights only), or None

    @property
    def region(self) -> np.ndarray:
        """Pixels with any channel clipped in the truth (H x W bool)."""
        return np.asarray(self.truth_clipped.any(axis=2))

    def splits(self) -> dict[str, np.ndarray]:
        """The region, and its partition into "some channel survives" and "all channels clipped"."""
        region = self.region
        full = np.asarray(self.truth_clipped.all(axis=2))
        return {"region": region, "partial": region & ~full, "full": full}

    def detected(self) -> np.ndarray:
        """The values the methods treat as clipped (H x W x 3 bool)."""
        if self.mask is not None:
            return self.mask
        low, high = clip_masks(self.clipped, self.low, self.high, self.tolerance)
        return high | low

    def to_photo_scale(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, np.float64) * self.gain + self.offset


def _rng(path: Path, protocol: str) -> np.random.Generator:
    key = [SEED, zlib.crc32(path.name.encode())]
    if protocol != "paper":  # the paper protocol keeps v1's draws
        key.append(zlib.crc32(protocol.encode()))
    return np.random.default_rng(key)


def read_truth(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def make_case(path: Path, protocol: str = "paper", truth: np.ndarray | None = None) -> Case:
    """Clip the photo at ``path`` by ``protocol`` (see the module's description)."""
    truth = read_truth(path) if truth is None else truth
    rng = _rng(path, protocol)
    if protocol == "paper":
        over = int(rng.integers(PAPER_OVER[0], PAPER_OVER[1] + 1))
        under = int(rng.integers(PAPER_UNDER[0], PAPER_UNDER[1] + 1))
        normalised = (np.clip(truth, under, over) - under) / (over - under)
        clipped = (np.rint(normalised * 255.0) / 255.0).astype(np.float32)
        return Case(
            path.stem, protocol, truth, clipped, np.zeros(3), np.ones(3), DEFAULT_TOLERANCE,
            (truth >= over) | (truth <= under), float(over - under), float(under),
            {"over": over, "under": under},
        )
    if protocol == "camera":
        level = int(rng.integers(CAMERA_LEVEL[0], CAMERA_LEVEL[1] + 1))
        factors = rng.uniform(*CAMERA_FACTORS, size=3)
        thresholds = np.rint(level * factors / factors.max())
        quality = int(rng.integers(CAMERA_QUALITY[0], CAMERA_QUALITY[1] + 1))
        buffer = io.BytesIO()
        Image.fromarray(np.minimum(truth, thresholds).astype(np.uint8)).save(
            buffer, "JPEG", quality=quality, subsampling=CAMERA_SUBSAMPLING
        )
        with Image.open(buffer) as im:
            decoded = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        high = thresholds / 255.0
        mask = clip_masks(decoded, 0.0, high, CAMERA_TOLERANCE).high
        return Case(
            path.stem, protocol, truth, decoded, np.zeros(3), high, CAMERA_TOLERANCE,
            truth >= thresholds, 255.0, 0.0,
            {"levels": "/".join(str(int(t)) for t in thresholds), "jpeg_quality": quality},
            mask=mask,
        )
    raise ValueError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")


# -- methods ----------------------------------------------------------------------------------------


def available_methods() -> tuple[str, ...]:
    """The rows this libdeclip can run."""
    known = set(getattr(libdeclip, "METHODS", ("declipnet",)))
    return tuple(m for m, (method, _) in METHOD_ROWS.items() if method is None or method in known)


def run_method(row: str, case: Case, model: Path | None = None, feather: int = 0) -> np.ndarray:
    """The output of method ``row`` on ``case`` (float32, the input's scale, unbounded)."""
    method, consistency = METHOD_ROWS[row]
    if method is None:
        return case.clipped
    kwargs: dict[str, object] = {
        "clip_levels": (case.low.tolist(), case.high.tolist()),
        "tolerance": case.tolerance,
        "feather": feather,
        "method": method,
        "consistency": consistency,
    }
    if case.mask is not None:
        kwargs["mask"] = case.mask
    if method == "declipnet":
        kwargs.update(model=model, device="cpu")
    return libdeclip.declip(case.clipped, **kwargs)  # type: ignore[arg-type]


# -- metrics ----------------------------------------------------------------------------------------


def metrics(case: Case, output: np.ndarray) -> dict[str, float]:
    """Every metric of ``output`` (the input's scale) against the truth; see the module's description.

    Keys: ``haarpsi``, ``psnr`` (whole image), and for each split in SPLITS ``<split>_pixels``,
    ``<split>_psnr``, ``<split>_psnr_bound``, ``<split>_ssim``, ``<split>_ciede2000``,
    ``<split>_chroma`` (CIELAB a*b* distance, :func:`benchmarks._metrics.chroma_error`),
    ``<split>_mae`` (nan when the split is empty).
    """
    pred = case.to_photo_scale(output)
    truth = case.truth.astype(np.float64)
    shown = np.clip(pred, 0.0, PEAK)
    # A truth value at the peak is the original file's own clipping: it says only "at least 255",
    # so for the bound-aware PSNR any output at or above it agrees with it.
    bounded = np.where(truth >= PEAK, np.minimum(pred, PEAK), pred)
    splits = case.splits()
    region = splits["region"]
    row: dict[str, float] = {"haarpsi": haarpsi(truth, shown), "psnr": psnr(pred, truth)}
    smap = ssim_map(shown, truth, where=region)
    delta = np.full(region.shape, np.nan)
    delta[region] = ciede2000(shown[region], truth[region])
    chroma = np.full(region.shape, np.nan)
    chroma[region] = chroma_error(shown[region], truth[region])
    for split, where in splits.items():
        n = int(where.sum())
        row[f"{split}_pixels"] = n
        row[f"{split}_psnr"] = psnr(pred[where], truth[where])
        row[f"{split}_psnr_bound"] = psnr(bounded[where], truth[where])
        row[f"{split}_mae"] = mae(pred[where], truth[where])
        row[f"{split}_ssim"] = float(smap[where].mean()) if n else float("nan")
        row[f"{split}_ciede2000"] = float(delta[where].mean()) if n else float("nan")
        row[f"{split}_chroma"] = float(chroma[where].mean()) if n else float("nan")
    return row


def mask_agreement(case: Case) -> tuple[int, int, int]:
    """(true positives, truth-clipped values, detected values) of the methods' mask, per value."""
    detected = case.detected()
    return (
        int((detected & case.truth_clipped).sum()), int(case.truth_clipped.sum()), int(detected.sum())
    )


PSNR_METRICS = ("psnr", "psnr_bound")  # pooled from the squared error


def pooled(rows: Sequence[Mapping[str, object]], key: str) -> float:
    """A set-level number: region metrics pooled over pixels (PSNR from the pooled squared error),
    HaarPSI and seconds as means over photos; nan when nothing counts."""
    if key in ("haarpsi", "seconds"):
        vals = [float(r[key]) for r in rows if np.isfinite(float(r[key]))]  # type: ignore[arg-type]
        return float(np.mean(vals)) if vals else float("nan")
    split, metric = key.split("_", 1)
    weights, values = [], []
    for r in rows:
        n = int(r[f"{split}_pixels"])  # type: ignore[call-overload]
        if n == 0:
            continue
        v = float(r[key])  # type: ignore[arg-type]
        if metric in PSNR_METRICS:
            v = 0.0 if math.isinf(v) else PEAK**2 * 10.0 ** (-v / 10.0)
        weights.append(n)
        values.append(v)
    if not weights:
        return float("nan")
    mean = float(np.average(values, weights=weights))
    if metric in PSNR_METRICS:
        return float("inf") if mean == 0 else 10.0 * math.log10(PEAK**2 / mean)
    return mean


# -- report -----------------------------------------------------------------------------------------


def _fmt(v: float, metric: str) -> str:
    if not np.isfinite(v):
        return "inf" if v > 0 else "–"
    return f"{v:.2f}" if metric in ("psnr", "ciede2000", "mae") else f"{v:.4f}"


SPLIT_SHORT = {"region": "region", "partial": "some", "full": "all"}


def wins_line(table: dict[str, dict[str, float]]) -> str:
    """Which method is best in each column (metric and split), grouped by method, computed from
    ``table`` (row -> key -> pooled value) at the precision shown: equal shown values share a win."""
    keys = ["haarpsi"] + [f"{s}_{m}" for m in METRICS for s in SPLITS]
    best: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        metric = key if key == "haarpsi" else key.split("_", 1)[1]
        shown = {row: float(_fmt(vals[key], metric)) for row, vals in table.items() if np.isfinite(vals[key])}
        if not shown:
            continue
        top = max(shown.values()) if METRIC_INFO[metric][2] else min(shown.values())
        split = "" if key == "haarpsi" else SPLIT_SHORT[key.split("_", 1)[0]]
        for row, v in shown.items():
            if v == top:
                best.setdefault(row, {}).setdefault(METRIC_INFO[metric][0], []).append(split)
    parts = []
    for row, cols in best.items():
        labels = [f"{m} ({', '.join(sp)})" if any(sp) else m for m, sp in cols.items()]
        parts.append(f"**{row}** {', '.join(labels)}")
    return "Best per column (ties shared): " + "; ".join(parts) + "."


def per_photo_line(rows: Sequence[dict[str, object]], methods: Sequence[str]) -> str:
    """How often each method has the best region PSNR on a photo (ties to the first in order)."""
    photos: dict[str, dict[str, float]] = {}
    for r in rows:
        photos.setdefault(str(r["photo"]), {})[str(r["method"])] = float(r["region_psnr"])  # type: ignore[arg-type]
    counts = dict.fromkeys(methods, 0)
    n = 0
    for vals in photos.values():
        finite = {m: v for m, v in vals.items() if not np.isnan(v)}
        if not finite:
            continue
        n += 1
        counts[max(finite, key=lambda m: (finite[m], -methods.index(m)))] += 1
    text = ", ".join(f"{m} {c}" for m, c in counts.items() if c)
    return f"Best region PSNR per photo ({n} photos with clipping): {text}."


def summarise(
    results: Sequence[dict[str, object]], methods: Sequence[str], masks: dict[tuple[str, str], list[int]]
) -> str:
    """Markdown tables, one per protocol and set, methods as rows."""
    out: list[str] = []
    for protocol in PROTOCOLS:
        prs = [r for r in results if r["protocol"] == protocol]
        if not prs:
            continue
        out.append(f"## Protocol \"{protocol}\"\n")
        for s in dict.fromkeys(str(r["set"]) for r in prs):
            rs = [r for r in prs if r["set"] == s]
            first = [r for r in rs if r["method"] == rs[0]["method"]]
            frac = float(np.mean([float(r["region_fraction"]) for r in first]))  # type: ignore[arg-type]
            region_px = sum(int(r["region_pixels"]) for r in first)  # type: ignore[call-overload]
            full_px = sum(int(r["full_pixels"]) for r in first)  # type: ignore[call-overload]
            tp, n_truth, n_det = masks.get((protocol, s), [0, 0, 0])
            out.append(
                f"### {s}, {len(first)} photos ({protocol})\n\n"
                f"Clipped region: {frac:.1%} of the pixels on average; {full_px / max(region_px, 1):.0%} "
                f"of its pixels have all channels clipped. The methods' mask caught "
                f"{tp / max(n_truth, 1):.1%} of the values clipped in the truth; "
                f"{tp / max(n_det, 1):.1%} of the values it flags are clipped in the truth.\n"
            )
            header = "| method | HaarPSI ↑ | " + " | ".join(
                f"{METRIC_INFO[m][0]}{' (' + METRIC_INFO[m][1] + ')' if METRIC_INFO[m][1] else ''} "
                f"{'↑' if METRIC_INFO[m][2] else '↓'}"
                for m in METRICS
            ) + " | s / photo |"
            out.append(
                "Cells: clipped region / some channel survives / all channels clipped.\n\n"
                + header + "\n|---|" + "---|" * (len(METRICS) + 2)
            )
            table: dict[str, dict[str, float]] = {}
            for m in methods:
                mrs = [r for r in rs if r["method"] == m]
                if not mrs:
                    continue
                keys = ["haarpsi", "seconds"] + [f"{sp}_{mt}" for mt in METRICS for sp in SPLITS]
                vals = {k: pooled(mrs, k) for k in keys}
                table[m] = vals
                cells = [_fmt(vals["haarpsi"], "haarpsi")]
                cells += [" / ".join(_fmt(vals[f"{sp}_{mt}"], mt) for sp in SPLITS) for mt in METRICS]
                cells.append(f"{vals['seconds']:.2f}")
                out.append(f"| {m} | " + " | ".join(cells) + " |")
            out.append("")
            out.append(wins_line(table))
            out.append(per_photo_line(rs, [m for m in methods if m in table]))
            if "declipnet" in table and "declipnet-unconstrained" in table:
                c, u = table["declipnet"], table["declipnet-unconstrained"]
                out.append(
                    f"Consistency constraint (declipnet against declipnet-unconstrained): region PSNR "
                    f"{c['region_psnr'] - u['region_psnr']:+.2f} dB, CIEDE2000 "
                    f"{c['region_ciede2000'] - u['region_ciede2000']:+.2f}, MAE "
                    f"{c['region_mae'] - u['region_mae']:+.2f}."
                )
            out.append("")
    return "\n".join(out)


CSV_FIELDS = [
    "set", "protocol", "photo", "method", "over", "under", "levels", "jpeg_quality", "region_fraction",
    "seconds", "haarpsi", "psnr",
    *[f"{s}_{k}" for s in SPLITS for k in ("pixels", *METRICS)],
]


def write_csv(results: Sequence[dict[str, object]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


# -- figures ----------------------------------------------------------------------------------------

TILE = 200  # width of a picture in the grids, px
COLOURS = {
    "identity": "#7f7f7f", "cross-channel": "#1f77b4", "inpaint-opposed": "#2ca02c",
    "biharmonic": "#9467bd", "declipnet": "#d62728", "declipnet-unconstrained": "#ff7f0e",
}
#: Lines that often lie on top of another (identity under a method that changes little; the
#: network with and without the constraint) are dashed or dotted so both stay visible.
LINESTYLES = {"identity": ":", "declipnet-unconstrained": "--"}


def plot_vs_fraction(
    results: Sequence[dict[str, object]], methods: Sequence[str], protocol: str, path: Path
) -> None:
    """Region PSNR and CIEDE2000 against the clipped fraction, one point per photo and method, with
    the median per fraction bin as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in results if r["protocol"] == protocol and int(r["region_pixels"]) > 0]  # type: ignore[call-overload]
    sets = list(dict.fromkeys(str(r["set"]) for r in rs))
    markers = dict(zip(sets, "o^sDv", strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    fractions = np.array([float(r["region_fraction"]) for r in rs])  # type: ignore[arg-type]
    edges = np.quantile(fractions, np.linspace(0, 1, 7)) if len(fractions) else np.array([])
    for ax, key, label in (
        (axes[0], "region_psnr", "clipped-region PSNR (dB) ↑"),
        (axes[1], "region_ciede2000", "clipped-region CIEDE2000 ↓"),
    ):
        for m in methods:
            mrs = [r for r in rs if r["method"] == m]
            if not mrs:
                continue
            colour = COLOURS.get(m, None)
            x = np.array([float(r["region_fraction"]) for r in mrs])  # type: ignore[arg-type]
            y = np.array([float(r[key]) for r in mrs])  # type: ignore[arg-type]
            in_set = np.array([str(r["set"]) for r in mrs])
            for s in sets:
                sel = (in_set == s) & np.isfinite(y)
                ax.scatter(x[sel], y[sel], s=12, alpha=0.45, color=colour, marker=markers[s], linewidths=0)
            centres, medians = [], []
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                sel = (x >= lo) & (x <= hi) & np.isfinite(y)
                if sel.any():
                    centres.append(float(np.sqrt(max(lo, 1e-6) * hi)))
                    medians.append(float(np.median(y[sel])))
            ax.plot(centres, medians, color=colour, lw=2, ls=LINESTYLES.get(m, "-"), label=m)
        ax.set_xscale("log")
        ax.set_xlabel("clipped fraction of the photo (pixels with any channel clipped)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    marker_text = ", ".join(f"{markers[s]} {s}" for s in sets)
    fig.suptitle(
        f'Protocol "{protocol}": one point per photo ({marker_text}); lines: median per fraction bin'
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _to_uint8(photo_scale: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(photo_scale), 0, 255).astype(np.uint8)


def crop_box(region: np.ndarray) -> tuple[int, int, int, int, int]:
    """(y, x, side, side, zoom): a square window on the largest connected clipped area, sized so that
    ``side * zoom`` fills a grid tile. Zoom 3 centred on the area when it fits a third of a tile;
    else zoom 2, placed where the area fills about 60% of the window (its edge and inside both
    show, rather than a flat middle)."""
    from scipy import ndimage

    h, w = region.shape
    labels, n = ndimage.label(region, structure=np.ones((3, 3)))
    if n == 0:
        side = min(h, w, TILE // 2)
        return 0, 0, side, side, 2
    largest = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    (y0, y1), (x0, x1) = ((np.flatnonzero(largest.any(axis=a))[[0, -1]]) for a in (1, 0))
    zoom = 3 if max(y1 - y0, x1 - x0) + 1 <= TILE // 3 else 2
    side = min(TILE // zoom, h, w)
    if zoom == 3:
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    else:
        share = ndimage.uniform_filter(largest.astype(np.float32), size=side, mode="constant")
        half = side // 2
        inner = share[half : h - side + half + 1, half : w - side + half + 1]
        iy, ix = np.unravel_index(int(np.argmin(np.abs(inner - 0.6))), inner.shape)
        cy, cx = iy + half, ix + half
    y = int(np.clip(cy - side // 2, 0, h - side))
    x = int(np.clip(cx - side // 2, 0, w - side))
    return y, x, side, side, zoom


@dataclass
class GridRow:
    label: str
    thumbs: list[np.ndarray]  # one per column, TILE wide
    crops: list[np.ndarray]  # one per column, TILE x TILE (or less)


def render_row(label: str, pictures: Sequence[np.ndarray], region: np.ndarray) -> GridRow:
    """Thumbnails (box-filtered to TILE px wide) of H x W x 3 uint8 ``pictures``, and the same crop of
    each, enlarged nearest-neighbour; the crop's place is outlined on the first thumbnail."""
    h, w = region.shape
    y, x, ch, cw, zoom = crop_box(region)
    size = (TILE, max(1, round(h * TILE / w)))
    thumbs, crops = [], []
    for i, pic in enumerate(pictures):
        im = Image.fromarray(pic).resize(size, Image.Resampling.BOX)
        if i == 0:
            s = TILE / w
            ImageDraw.Draw(im).rectangle(
                [x * s, y * s, (x + cw) * s, (y + ch) * s], outline=(255, 255, 0), width=2
            )
        thumbs.append(np.asarray(im))
        crop = pic[y : y + ch, x : x + cw]
        crops.append(np.repeat(np.repeat(crop, zoom, axis=0), zoom, axis=1))
    return GridRow(label, thumbs, crops)


def save_grid(rows: Sequence[GridRow], columns: Sequence[str], path: Path, title: str) -> None:
    """Rows of thumbnails, each followed by its row of zoomed crops, under a header of column names."""
    font, small = _font(15), _font(12)
    gap, header = 4, 44
    width = len(columns) * (TILE + gap)
    heights = [max(t.shape[0] for t in r.thumbs) + max(c.shape[0] for c in r.crops) + 3 * gap for r in rows]
    canvas = Image.new("RGB", (width, header + sum(heights)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 2), title, fill=(0, 0, 0), font=small)
    for j, name in enumerate(columns):
        draw.text((j * (TILE + gap) + gap, 22), name, fill=(0, 0, 0), font=font)
    top = header
    for r, hgt in zip(rows, heights, strict=True):
        th = max(t.shape[0] for t in r.thumbs)
        for j, (t, c) in enumerate(zip(r.thumbs, r.crops, strict=True)):
            x = j * (TILE + gap)
            canvas.paste(Image.fromarray(t), (x, top))
            canvas.paste(Image.fromarray(c), (x, top + th + gap))
        box = draw.textbbox((gap, top + gap), r.label, font=small)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((gap, top + gap), r.label, fill=(255, 255, 255), font=small)
        top += hgt
    canvas.save(path, optimize=True)


@dataclass(order=True)
class _Candidate:
    score: int
    order: int
    row: GridRow = field(compare=False)


class GridPicker:
    """Keeps, per set, the ``n`` cases with the largest connected clipped area, rendered."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.heaps: dict[str, list[_Candidate]] = {}
        self._order = 0

    @staticmethod
    def score(case: Case) -> int:
        from scipy import ndimage

        labels, n = ndimage.label(case.region, structure=np.ones((3, 3)))
        return int(np.bincount(labels.ravel())[1:].max()) if n else 0

    def wants(self, set_name: str, score: int) -> bool:
        heap = self.heaps.get(set_name, [])
        return self.n > 0 and score > 0 and (len(heap) < self.n or score > heap[0].score)

    def add(self, set_name: str, score: int, row: GridRow) -> None:
        heap = self.heaps.setdefault(set_name, [])
        self._order -= 1
        heapq.heappush(heap, _Candidate(score, self._order, row))
        if len(heap) > self.n:
            heapq.heappop(heap)

    def rows(self) -> list[GridRow]:
        """The ``n`` largest, taken from the sets in turn."""
        ranked = [sorted(h, reverse=True) for h in self.heaps.values()]
        out: list[GridRow] = []
        for i in range(self.n):
            out += [r[i].row for r in ranked if i < len(r)]
        return out[: self.n]


def case_row(set_name: str, case: Case, outputs: dict[str, np.ndarray], columns: Sequence[str]) -> GridRow:
    pictures = [_to_uint8(case.to_photo_scale(case.clipped))]
    pictures += [_to_uint8(case.to_photo_scale(outputs[m])) for m in columns]
    pictures.append(case.truth.astype(np.uint8))
    label = f"{set_name}/{case.name}: {case.region.mean():.1%} clipped"
    return render_row(label, pictures, case.region)


# -- real clipped photos ----------------------------------------------------------------------------


def _load_real(path: Path, longest: int = 640) -> np.ndarray:
    """A real photo as float32 in [0, 1], reduced by an integer box factor to at most ``longest`` px
    (a box keeps a fully blown block at exactly 1)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    factor = math.ceil(max(rgb.size) / longest)
    if factor > 1:
        rgb = rgb.reduce(factor)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def pick_real(folder: Path, n: int) -> list[Path]:
    """``n`` photos from each subfolder of ``folder``: those with the largest clipped fraction under
    30% (more is mostly a blown-out photo). The simulated ``Synthetic_*`` inputs are left out."""
    picks: list[Path] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        scored = []
        for p in sorted(sub.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("Synthetic_"):
                continue
            with Image.open(p) as im:
                im.draft("RGB", (im.width // 4, im.height // 4))  # JPEG: decode at 1/4, fast
                small = np.asarray(im.convert("RGB"))
            fraction = float((small >= 255 * (1 - REAL_TOLERANCE)).any(axis=2).mean())
            if fraction < 0.3:
                scored.append((fraction, p))
        picks += [p for _, p in sorted(scored, key=lambda t: (-t[0], t[1].name))[:n]]
    return picks


def real_grid(
    paths: Sequence[Path], columns: Sequence[tuple[str, str, Path | None]], feather: int, path: Path
) -> dict[str, np.ndarray]:
    """Input | each method on real clipped photos (library defaults: clip levels 0 and 1, both ends,
    tolerance REAL_TOLERANCE), all columns of a row through one highlight shoulder (libdeclip's
    ``compress`` fit with the row's brightest value: 99.9th percentile), so recovered highlights show
    brighter than the clipped input instead of clamped. ``columns``: (label, row of
    :data:`METHOD_ROWS`, model file or None for the shipped one). Returns, for each column, the
    :func:`~benchmarks._metrics.grid_pattern` values (8-bit codes of the shown picture) of the
    cells where every channel was clipped, all photos together."""
    from libdeclip.fit import apply_fit

    rows = []
    patterns: dict[str, list[np.ndarray]] = {label: [] for label, _, _ in columns}
    for p in tqdm(paths, desc="real photos", unit="photo", file=sys.stderr):
        image = _load_real(p)
        case = Case(
            p.stem, "real", image * 255.0, image, np.zeros(3), np.ones(3), REAL_TOLERANCE,
            np.zeros(image.shape, bool), 1.0, 0.0,
        )
        outs = [image] + [run_method(m, case, model, feather) for _, m, model in columns]
        vmax = max(1.0, max(float(np.percentile(o, 99.9)) for o in outs))
        vmin = min(0.0, min(float(np.percentile(o, 0.1)) for o in outs))
        shoulder = [apply_fit(np.ascontiguousarray(o, np.float64), "compress", vmin, vmax) for o in outs]
        shown = [_to_uint8(np.clip(o, 0.0, 1.0) * 255.0) for o in shoulder]
        detected = np.asarray(case.detected().any(axis=2))
        blown = np.asarray(case.detected().all(axis=2))
        for (column, _, _), picture in zip(columns, shoulder[1:], strict=True):
            patterns[column].append(grid_pattern(picture * 255.0, blown))
        label = f"{p.parent.name}/{p.name}: {detected.mean():.1%} clipped (detected)"
        rows.append(render_row(label, shown, detected))
    save_grid(
        rows, ["input", *(label for label, _, _ in columns)], path,
        "Real clipped photos (no truth); one highlight shoulder per row for every column",
    )
    return {label: np.concatenate(values) for label, values in patterns.items()}


# -- main -------------------------------------------------------------------------------------------


def _photos(data: Path, sets: Iterable[str], limit: int | None) -> list[tuple[str, Path]]:
    paths: list[tuple[str, Path]] = []
    for s in sets:
        folder = data / s
        files = sorted(f for f in folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no photos in {folder}")
        paths += [(s, f) for f in files[:limit]]
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the eval sets")
    p.add_argument("--sets", nargs="+", default=["kodak24", "cbsd68"])
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    p.add_argument("--methods", nargs="+", choices=METHODS, help="rows to run (default: all available)")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--model", type=Path, help="ONNX model (default: the shipped one)")
    p.add_argument("--limit", type=int, help="first N photos of each set only (quick look)")
    p.add_argument("--grid", type=int, default=4, help="photos per protocol grid (0: none)")
    p.add_argument("--real", type=int, default=2, help="real clipped photos per subfolder (0: none)")
    p.add_argument("--real-dir", type=Path, default=DEFAULT_REAL, help="folder of real clipped photos")
    p.add_argument("--feather", type=int, default=0, help="feather radius for every method (default 0)")
    p.add_argument("--no-plots", action="store_true", help="tables only: no figures or grids")
    args = p.parse_args(argv)

    available = available_methods()
    methods = list(dict.fromkeys(args.methods or available))
    missing = [m for m in methods if m not in available]
    if missing:
        print(f"error: this libdeclip has no method for {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        paths = _photos(args.data, args.sets, args.limit)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    grid_methods = [m for m in methods if m != "identity"]
    pickers = {pr: GridPicker(0 if args.no_plots else args.grid) for pr in args.protocols}
    results: list[dict[str, object]] = []
    masks: dict[tuple[str, str], list[int]] = {}
    method_time = dict.fromkeys(methods, 0.0)
    metric_time = 0.0
    bar = tqdm(total=len(paths) * len(args.protocols), desc="photos", unit="case", file=sys.stderr)
    for s, path in paths:
        truth = read_truth(path)
        for protocol in args.protocols:
            bar.set_postfix_str(f"{s}/{path.stem} {protocol}")
            case = make_case(path, protocol, truth)
            agree = masks.setdefault((protocol, s), [0, 0, 0])
            for i, v in enumerate(mask_agreement(case)):
                agree[i] += v
            score = GridPicker.score(case)
            keep = pickers[protocol].wants(s, score)
            outputs: dict[str, np.ndarray] = {}
            for m in methods:
                t0 = time.perf_counter()
                output = run_method(m, case, args.model, args.feather)
                seconds = time.perf_counter() - t0
                method_time[m] += seconds
                t0 = time.perf_counter()
                row = metrics(case, output)
                metric_time += time.perf_counter() - t0
                results.append(
                    {"set": s, "protocol": protocol, "photo": case.name, "method": m, **case.params,
                     "region_fraction": float(case.region.mean()), "seconds": seconds, **row}
                )
                if keep:
                    outputs[m] = output
            if keep:
                pickers[protocol].add(s, score, case_row(s, case, outputs, grid_methods))
            bar.update()
    bar.close()

    write_csv(results, args.out_dir / "quality.csv")
    if not args.no_plots:
        for protocol in args.protocols:
            plot_vs_fraction(results, methods, protocol, args.out_dir / f"quality_vs_fraction_{protocol}.png")
            rows = pickers[protocol].rows()
            if rows:
                save_grid(
                    rows, ["clipped", *grid_methods, "truth"], args.out_dir / f"quality_grid_{protocol}.png",
                    f'Protocol "{protocol}": photo scale, clamped to 0..255; under each row, its largest '
                    "clipped area enlarged (nearest neighbour, outlined in yellow)",
                )
        if args.real > 0 and args.real_dir.is_dir() and grid_methods:
            real_grid(
                pick_real(args.real_dir, args.real), [(m, m, args.model) for m in grid_methods], args.feather,
                args.out_dir / "quality_grid_real.png",
            )
    elapsed = time.perf_counter() - started

    model = ""
    if any(METHOD_ROWS[m][0] == "declipnet" for m in methods):
        info = libdeclip.model_info(args.model)
        model = (
            f"Model: {info.path.name} ({info.name} v{info.version}, {info.training_steps} training steps). "
        )
    command = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        "# Quality benchmark\n\n"
        f"{model}Protocols and metrics: the docstring of `benchmarks/quality.py`. Seed {SEED}; "
        f"feather {args.feather}; CPU. Region metrics pool every clipped pixel of a set (PSNR from the "
        "pooled squared error); HaarPSI (whole image) and seconds are means over photos.\n\n"
        f"Made by `{command.strip()}` in {elapsed / 60:.1f} min.\n\n"
    )
    (args.out_dir / "quality.md").write_text(header + summarise(results, methods, masks))
    print(header + summarise(results, methods, masks))
    times = ", ".join(f"{m} {t:.1f} s" for m, t in method_time.items())
    print(f"method time: {times}; metrics {metric_time:.1f} s; total {elapsed:.1f} s")
    print(f"results in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
