"""Speed and memory of the declipping pipeline and of every declipping method, on real photos.

    python -m benchmarks.speed [--sections mosaic pipeline methods tiles fraction] [--quick]
                               [--device cpu] [--skip-50mp | --only-50mp] [--repeat 1]
                               [--max-seconds 120] [--out benchmarks/results/speed.md]

Writes a markdown file (default benchmarks/results/speed.md) with one part per section, each naming
the machine and the command, and the plot ``speed_vs_fraction.png`` beside it; with --sections, the
other parts of an existing file are kept. Sections:

- ``mosaic``: a 6000 x 4002 mosaic of 36 real photos (Kodak24 and CBSD68, resized to 1000 x 667),
  4 of them over-exposed (x 1.4 in sRGB) so that about 5-6% of its pixels are clipped, written as a
  JPEG (quality 92) and as a 16-bit TIFF, uncompressed and zlib (libdeclip keeps a TIFF's
  compression, so zlib's encoder is in its floor). Each is declipped by a fresh ``libdeclip
  declip`` process, with the default model and with ``--method inpaint-opposed``: wall time
  (median of --repeat runs, at least 3) and peak RSS. The floor is measured in the same run: a fresh
  process that only decodes the file and encodes it again (Pillow for the JPEG at the same quality,
  tifffile for the TIFF in its compression), with the ratio of each run to it. Also the model's
  windows: how many, and the share of the image they cover.
- ``pipeline`` (DeclipNet, --device): 8-bit JPEGs with real blown highlights
  (../shared/data/clipped/singlehdr), 16-bit TIFFs made from real clipped photos
  (../shared/data/clipped/hdrcnn, x257), 8-bit PNGs with little clipping (Kodak24: few tiles to run),
  a 12.6 MP PNG half unclipped, and a 50-megapixel 16-bit TIFF made by tiling the HDR-CNN photos.
  For each: megapixels per second for the whole pipeline (``libdeclip declip FILES --out-dir``, run
  in this process: read, declip, write, with reading and writing overlapped with the model across
  files) and for the engine alone (ONNX Runtime time), the pipeline overhead (everything but the
  model run, as a share of the model time; also inside ``Declipper.run`` alone), the speed-up from
  skipping unclipped tiles (same image, every tile run, through ``Declipper.run``), and the peak RSS
  of a fresh process running the CLI on one file.
- ``methods``: every method of ``libdeclip.METHODS`` through ``libdeclip.declip(..., method=M)`` on
  the SingleHDR JPEGs, each in a fresh process (read each photo, declip it; time of the declip call
  alone, after a warm-up on a crop of the first photo): megapixels per second and peak RSS (VmHWM).
  On the CPU, and on the GPU for the network when ONNX Runtime has its CUDA provider.
- ``tiles``: DeclipNet through ``Declipper(tile_size=T, threads=N)`` on a 2048 x 1536 mosaic of
  HDR-CNN photos, each configuration in a fresh process: tiles 256, 512 and 1024 px with 1 and 2
  threads on the CPU (512, 1024 and 2048 px on the GPU).
- ``fraction``: time of every method on one Kodak24 photo (kodim07, 0.15% of its pixels at 255)
  with synthetic clipping: the photo is first mapped into 3..250 (nothing clipped), then scaled so
  that 1% to 50% of its pixels have a channel at 255. A method slower than --max-seconds on one
  fraction skips the larger ones. Plotted in ``speed_vs_fraction.png``.

``--quick`` runs every section on a 256 x 256 crop of the demo photo (examples/night_lamps.png;
the mosaic of 36 thumbnails of it;
128 x 128 for the fraction section), with fewer configurations: a smoke test, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tifffile

import libdeclip
from benchmarks import _machine
from libdeclip import Declipper
from libdeclip.cli import main as cli_main
from libdeclip.engine import timing
from libdeclip.io import Image, read_image, write_image
from libdeclip.mask import clip_masks
from libdeclip.tiling import round_up

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "clipped"
DEMO = REPO / "examples" / "night_lamps.png"
FRACTION_PHOTO = DATA.parent / "eval" / "kodak24" / "kodim07.png"
SECTIONS = ("mosaic", "pipeline", "methods", "tiles", "fraction")
TITLES = {
    "mosaic": "A 24 MP mosaic of real photos, 5% clipped: whole CLI process",
    "pipeline": "Pipeline (DeclipNet)",
    "methods": "Every method",
    "tiles": "DeclipNet at several tile sizes and thread counts",
    "fraction": "Cost versus clipped fraction",
}
FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
#: The methods that run the network (and so can run on a GPU); the others are numpy/scipy on the CPU.
NETWORK_METHODS = ("declipnet",)


# -------------------------------------------------------------------------------- mosaic section


def make_mosaic(tmp: Path, quick: bool = False) -> tuple[list[tuple[str, Path]], float]:
    """The 24 MP mosaic as JPEG q92 and as 16-bit TIFF (uncompressed, and zlib: libdeclip writes
    a TIFF in its source's compression), each with its label, and its clipped share (any channel
    at 255); ``quick``: 36 copies of a 100 x 67 thumbnail of the demo photo instead (a smoke test)."""
    from PIL import Image as PILImage

    eval_dir = DATA.parent / "eval"
    if quick:
        sources = [DEMO] * 36
    else:
        sources = sorted((eval_dir / "kodak24").glob("*.png"))
        sources += sorted((eval_dir / "cbsd68").glob("*.png"))[:12]
    size = (100, 67) if quick else (1000, 667)
    cells = []
    for i, path in enumerate(sources[:36]):
        with PILImage.open(path) as im:
            cell = np.asarray(im.convert("RGB").resize(size, PILImage.Resampling.LANCZOS), np.float32)
        if i % 9 == 4:  # 4 of the 36 over-exposed (sRGB values x 1.4)
            cell = cell * 1.4
        cells.append(np.clip(np.rint(cell), 0, 255).astype(np.uint8))
    rows = [np.concatenate(cells[r * 6 : r * 6 + 6], axis=1) for r in range(6)]
    pixels = np.concatenate(rows, axis=0)
    share = float((pixels == 255).any(axis=2).mean())
    jpeg, tiff, deflated = (tmp / "mosaic_24mp.jpg", tmp / "mosaic_24mp_16bit.tif",
                            tmp / "mosaic_24mp_16bit_zlib.tif")
    PILImage.fromarray(pixels).save(jpeg, quality=92)
    tifffile.imwrite(tiff, pixels.astype(np.uint16) * 257, photometric="rgb")
    tifffile.imwrite(deflated, pixels.astype(np.uint16) * 257, photometric="rgb", compression="zlib")
    return [("JPEG q92", jpeg), ("16-bit TIFF", tiff), ("16-bit TIFF, zlib", deflated)], share


def _timed_process(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a fresh Python process running ``code``. The peak is the
    child's VmHWM: ru_maxrss would also count the pages of the (large) benchmark process that the
    child shared between fork and exec."""
    probe = code + "\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: a benchmark process failed: {proc.stderr.strip()[-500:]}")
    return wall, int(proc.stdout.strip().splitlines()[-1]) / 1024.0


def mosaic_section(tmp: Path, repeat: int, quick: bool = False) -> list[str]:
    files, share = make_mosaic(tmp, quick)
    runs = 1 if quick else max(3, repeat)
    floors = {  # the same codec work as libdeclip's reader and writer, nothing else
        ".jpg": "from PIL import Image; im = Image.open({src!r}); im.load(); im.save({dst!r}, quality=92)",
        ".tif": ("import tifffile; t = tifffile.TiffFile({src!r}); c = t.pages[0].compression; "
                 "a = t.asarray(); tifffile.imwrite({dst!r}, a, photometric='rgb', "
                 "compression=None if c == 1 else c)"),
    }
    jpeg = files[0][1]
    h, w = read_image(jpeg).pixels.shape[:2]
    lines = [
        f"Mosaic of 36 photos, {w} x {h}, {share:.1%} of its pixels with a channel at 255. Wall time: "
        f"median of {runs} fresh processes; peak RSS: their largest VmHWM. The floor reads and "
        "writes the file with the codec libdeclip uses (Pillow for JPEG, tifffile for TIFF, in "
        "the source's compression), nothing else.",
        "",
        "| file | run | wall (s) | peak RSS (MB) | wall / floor |",
        "|---|---|---|---|---|",
    ]
    for kind, src in files:
        dst = tmp / f"out{src.suffix}"
        floor_code = floors[src.suffix].format(src=str(src), dst=str(dst))
        measured = [_timed_process(floor_code) for _ in range(runs)]
        floor = float(np.median([m[0] for m in measured]))
        peak = max(m[1] for m in measured)
        lines.append(f"| {kind} | decode + encode (floor) | {floor:.2f} | {peak:.0f} | 1.00 |")
        for label, extra in [("libdeclip declip (default model)", []),
                             ("libdeclip declip --method inpaint-opposed", ["--method", "inpaint-opposed"])]:
            argv = ["declip", str(src), "-o", str(dst), "--overwrite", "-q", "--device", "cpu", *extra]
            code = f"from libdeclip.cli import main; main({argv!r})"
            measured = [_timed_process(code) for _ in range(runs)]
            wall = float(np.median([m[0] for m in measured]))
            lines.append(f"| {kind} | {label} | {wall:.2f} | {max(m[1] for m in measured):.0f} | "
                         f"{wall / floor:.2f} |")
    image = read_image(jpeg)
    with Declipper(device="cpu") as session:
        windows = session.windows(image.pixels)
        model = session.model_info.path.stem
        grid = len(session.plan(h, w))
    area = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in windows)
    window_area = sum((t.wy1 - t.wy0) * (t.wx1 - t.wx0) for t in windows)
    lines += [
        "",
        f"Default model {model}: the JPEG's clipped regions get {len(windows)} windows (cores "
        f"{area / (h * w):.1%} of the image, windows with their halos {window_area / (h * w):.1%}), "
        f"where a grid of {grid} tiles covers the image.",
    ]
    return lines


# ------------------------------------------------------------------------------ pipeline section


def _cli(files: list[Path], out_dir: Path, device: str) -> tuple[float, float]:
    """(total seconds, engine seconds) of ``libdeclip declip FILES --out-dir DIR`` in this process."""
    with timing() as clock:
        t0 = time.perf_counter()
        code = cli_main(["declip", *map(str, files), "--out-dir", str(out_dir), "--overwrite", "-q",
                         "--device", device])
        total = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"error: the CLI failed on {files}")
    return total, clock.seconds


def _pipeline(path: Path, out: Path, session: Declipper) -> tuple[float, float, int, int]:
    """(run seconds, engine seconds, tiles run, tiles in plan) for read + declip + write, where run
    is ``Declipper.run`` alone."""
    image = read_image(path)
    with timing() as clock:
        t0 = time.perf_counter()
        result = session.run(image.pixels, colorspace=image.icc_profile)
        run = time.perf_counter() - t0
    write_image(out, image.with_pixels(result), overwrite=True)
    return run, clock.seconds, clock.tiles, len(session.plan(*image.pixels.shape[:2]))


def _peak_rss_mb(path: Path, out: Path, device: str) -> float:
    cli_args = ["declip", str(path), "-o", str(out), "--overwrite", "-q", "--device", device]
    return _timed_process(f"from libdeclip.cli import main; main({cli_args!r})")[1]


def make_cases(tmp: Path, skip_50mp: bool) -> list[tuple[str, list[Path]]]:
    jpegs = sorted((DATA / "singlehdr").glob("*.jpg"))[:6]
    pngs = sorted((DATA / "hdrcnn").glob("*.png"))
    tiffs = []
    for p in pngs[:3]:
        rgb = read_image(p).pixels.astype(np.uint16) * 257
        t = tmp / f"{p.stem}_16bit.tif"
        tifffile.imwrite(t, rgb, photometric="rgb", compression="zlib")
        tiffs.append(t)
    kodak = sorted((DATA.parent / "eval" / "kodak24").glob("*.png"))[:8]
    # Half clipped, half not: the HDR-CNN photos as shot, and darkened to 85% (nothing clipped,
    # no value within the tolerance of 0 either), to show time following the clipped tiles.
    photos = [read_image(p).pixels.astype(np.float32) for p in pngs]
    quilt = []
    for r in range(4):
        row = []
        for c in range(4):
            ph = photos[(r * 4 + c) % len(photos)]
            row.append(ph if (r * 4 + c) % 2 == 0 else np.clip(ph * 0.85, 3, 255))
        quilt.append(np.concatenate(row, axis=1))
    mixed = tmp / "mixed_12mp_8bit.png"
    write_image(mixed, Image(pixels=np.rint(np.concatenate(quilt, axis=0)).astype(np.uint8)))
    cases = [
        ("8-bit JPEG (SingleHDR, real clipping)", jpegs),
        ("16-bit TIFF (HDR-CNN x257)", tiffs),
        ("8-bit PNG (Kodak24)", kodak),
        ("8-bit PNG, 12.6 MP: 8 HDR-CNN photos as shot + 8 darkened (half unclipped)", [mixed]),
    ]
    if not skip_50mp:
        tiles = [read_image(p).pixels for p in pngs]  # 1024 x 768 each
        rows = []
        for r in range(8):
            rows.append(np.concatenate([tiles[(r * 8 + c) % len(tiles)] for c in range(8)], axis=1))
        big = (np.concatenate(rows, axis=0).astype(np.uint16) * 257)[:, :, :3]
        t = tmp / "mosaic_50mp_16bit.tif"
        tifffile.imwrite(t, big, photometric="rgb", compression="zlib")
        del big, rows
        cases.append(("50 MP 16-bit TIFF (8 x 8 mosaic of HDR-CNN photos)", [t]))
    return cases


def pipeline_section(cases: list[tuple[str, list[Path]]], tmp: Path, device: str) -> list[str]:
    lines = [
        "| case | files | MP | pipeline MP/s | engine MP/s (run tiles) | overhead / model time | "
        "overhead inside run | tiles run | skip speed-up | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with Declipper(device=device) as session, Declipper(device=device, skip_unclipped=False) as every:
        for name, files in cases:
            mp = total = engine = 0.0
            run = planned = 0
            all_total = single_total = single_engine = 0.0
            rss = 0.0
            run_mp = 0.0
            for f in files:
                h, w = read_image(f).pixels.shape[:2]
                mp += h * w / 1e6
                t, e, r, n = _pipeline(f, tmp / f"out{f.suffix}", session)
                single_total, single_engine = single_total + t, single_engine + e
                run, planned = run + r, planned + n
                run_mp += r / n * h * w / 1e6
                all_total += _pipeline(f, tmp / f"all{f.suffix}", every)[0]
                rss = max(rss, _peak_rss_mb(f, tmp / f"rss{f.suffix}", device))
            total, engine = _cli(files, tmp / "cli_out", device)
            overhead = (total - engine) / engine if engine else float("nan")
            inside = (single_total - single_engine) / single_engine if single_engine else float("nan")
            lines.append(
                f"| {name} | {len(files)} | {mp:.1f} | {mp / total:.3f} | {_ratio(run_mp, engine)} | "
                f"{overhead:.1%} | {inside:.1%} | {run}/{planned} | "
                f"{all_total / single_total:.2f}x | {rss:.0f} |"
            )
            print(lines[-1], flush=True)
        tile = session.tile_size
    return [
        f"Device: {device}; tile {tile} px. Pipeline = `libdeclip declip FILES --out-dir DIR` in the "
        "benchmark's process; engine = ONNX Runtime time on the tiles that ran; overhead = pipeline "
        "time not spent in the engine, as a share of engine time; skip speed-up = `Declipper.run` "
        "with every tile run / as shipped; peak RSS = VmHWM of a fresh `libdeclip declip` process "
        "on one file.",
        "",
        *lines,
    ]


# ------------------------------------------------------------- fresh-process runs (methods, tiles)


@dataclass
class Measured:
    """What one fresh process measured: seconds per input (best of the repeats), megapixels per
    input, ONNX Runtime seconds and tiles (``Declipper`` runs only), and its peak RSS."""

    seconds: list[float]
    megapixels: list[float]
    engine_seconds: float = 0.0
    tiles_run: int = 0
    tiles_planned: int = 0
    peak_mb: float = 0.0

    @property
    def mp_per_s(self) -> float:
        return sum(self.megapixels) / sum(self.seconds)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _clipped(pixels: np.ndarray) -> np.ndarray:
    """H x W booleans: a channel clipped high or low (libdeclip's default detection)."""
    top = 1.0 if pixels.dtype.kind == "f" else float(np.iinfo(pixels.dtype).max)
    low, high = clip_masks(pixels[..., :3], 0.0, top)
    return (high | low).any(axis=2)


def _warm_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """A size x size crop centred on a clipped pixel (so the network has a tile to run)."""
    ys, xs = np.nonzero(_clipped(pixels))
    h, w = pixels.shape[:2]
    cy, cx = (int(ys[len(ys) // 2]), int(xs[len(xs) // 2])) if len(ys) else (h // 2, w // 2)
    y0, x0 = max(0, min(cy - size // 2, h - size)), max(0, min(cx - size // 2, w - size))
    return np.ascontiguousarray(pixels[y0 : y0 + size, x0 : x0 + size])


@dataclass
class Spec:
    """One fresh-process measurement: ``method`` through :func:`libdeclip.declip`, or, with ``tile``,
    DeclipNet through ``Declipper(tile_size=tile, threads=threads)``; after a warm-up on a
    ``warm`` x ``warm`` crop of the first input."""

    inputs: list[str]
    device: str
    method: str = "declipnet"
    tile: int | None = None
    threads: int | None = None
    warm: int = 256
    repeat: int = 1


def _measure(spec: Spec) -> Measured:
    """Run in the fresh process: declip each input of ``spec``, timing the declip call alone."""
    session = None
    if spec.tile:
        session = Declipper(device=spec.device, tile_size=spec.tile, threads=spec.threads)

    def run(image: Image) -> np.ndarray:
        if session is not None:
            return session.run(image.pixels, colorspace=image.icc_profile)
        return libdeclip.declip(image.pixels, method=spec.method, device=spec.device,
                                colorspace=image.icc_profile)

    first = read_image(Path(spec.inputs[0]))
    run(first.with_pixels(_warm_crop(first.pixels, spec.warm)))
    out = Measured([], [])
    with timing() as clock:
        for path in spec.inputs:
            image = read_image(Path(path))
            best = math.inf
            for _ in range(spec.repeat):
                t0 = time.perf_counter()
                run(image)
                best = min(best, time.perf_counter() - t0)
            h, w = image.pixels.shape[:2]
            out.seconds.append(best)
            out.megapixels.append(h * w / 1e6)
            if session is not None:
                out.tiles_planned += len(session.plan(h, w))
    out.engine_seconds, out.tiles_run = clock.seconds / spec.repeat, clock.tiles // spec.repeat
    out.peak_mb = _status_mb("VmHWM")
    return out


def _fresh(spec: Spec) -> Measured:
    """:func:`_measure` in a fresh Python process (its peak RSS is its own)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--measure", json.dumps(asdict(spec))],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: measuring {spec} failed:\n{proc.stderr}")
    return Measured(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def _no_gpu() -> str:
    return "No GPU on this machine (ONNX Runtime has no CUDA provider): nothing measured on a GPU."


def methods_section(photos: list[Path], cuda: bool, repeat: int) -> list[str]:
    mp = sum(math.prod(read_image(p).pixels.shape[:2]) for p in photos) / 1e6
    lines = [
        f"{len(photos)} photo(s), {mp:.1f} MP in all ({', '.join(p.name for p in photos)}). "
        "`libdeclip.declip(pixels, method=M, device=D)` in a fresh process per method: MP/s = "
        "megapixels / time of the declip calls (reading excluded; after a warm-up on a 256 x 256 "
        "crop of the first photo); peak RSS = the process's VmHWM.",
        "",
        "| method | device | MP/s | s per MP | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    runs = [(m, "cpu") for m in libdeclip.METHODS]
    runs += [(m, "cuda") for m in libdeclip.METHODS if m in NETWORK_METHODS] if cuda else []
    for method, device in runs:
        r = _fresh(Spec(inputs=list(map(str, photos)), device=device, method=method, repeat=repeat))
        lines.append(f"| {method} | {device.upper()} | {r.mp_per_s:.3f} | {1 / r.mp_per_s:.2f} | "
                     f"{r.peak_mb:.0f} |")
        print(lines[-1], flush=True)
    if not cuda:
        lines += ["", _no_gpu()]
    else:
        lines += ["", "The classical methods run on the CPU whatever the device; only the network "
                  "has GPU rows."]
    return lines


def tiles_section(photo: Path, tiles_cpu: tuple[int, ...], threads: tuple[int, ...],
                  tiles_gpu: tuple[int, ...], cuda: bool, repeat: int) -> list[str]:
    h, w = read_image(photo).pixels.shape[:2]
    info = libdeclip.model_info()
    halo = round_up(info.receptive_field_radius, info.spatial_multiple)
    lines = [
        f"DeclipNet through `Declipper(device=D, tile_size=T, threads=N)` on {photo.name} "
        f"({w} x {h}, {h * w / 1e6:.1f} MP, real clipping), a fresh process per row (after a warm-up "
        "on one tile's crop); unclipped tiles skipped as shipped. Engine MP/s counts the cores of the "
        f"tiles that ran; a tile runs with a {halo} px halo on each side, so small tiles compute more "
        "pixels.",
        "",
        "| device | tile (px) | threads | tiles run | MP/s | engine MP/s (run tiles) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs: list[tuple[str, int, int | None]] = [("cpu", t, n) for t in tiles_cpu for n in threads]
    runs += [("cuda", t, None) for t in tiles_gpu] if cuda else []
    for device, tile, n in runs:
        r = _fresh(Spec(inputs=[str(photo)], device=device, tile=tile, threads=n, warm=min(tile, h, w),
                        repeat=repeat))
        run_mp = r.tiles_run / max(r.tiles_planned, 1) * sum(r.megapixels)
        lines.append(
            f"| {device.upper()} | {tile} | {n or 'n/a'} | {r.tiles_run}/{r.tiles_planned} | "
            f"{r.mp_per_s:.3f} | {_ratio(run_mp, r.engine_seconds)} | {r.peak_mb:.0f} |"
        )
        print(lines[-1], flush=True)
    if not cuda:
        lines += ["", _no_gpu()]
    return lines


# ------------------------------------------------------------------------------ fraction section


def clipped_versions(photo: np.ndarray, fractions: tuple[float, ...]) -> list[tuple[float, np.ndarray]]:
    """The photo with synthetic clipping: mapped into 3..250 (nothing within libdeclip's tolerance
    of 0 or 255), then scaled so that about ``f`` of its pixels have a channel at 255. Returns
    (measured clipped fraction, uint8 image) per fraction."""
    base = 3.0 + photo[..., :3].astype(np.float64) * (247.0 / 255.0)
    brightest = base.max(axis=2)
    out = []
    for f in fractions:
        threshold = float(np.quantile(brightest, 1.0 - f))
        image = np.clip(np.rint(base * (255.0 / threshold)), 0, 255).astype(np.uint8)
        out.append((float(_clipped(image).mean()), image))
    return out


def fraction_section(photo: Path, fractions: tuple[float, ...], cuda: bool, repeat: int,
                     max_seconds: float, plot: Path) -> list[str]:
    versions = clipped_versions(read_image(photo).pixels, fractions)
    h, w = versions[0][1].shape[:2]
    runs = [(m, "cpu") for m in libdeclip.METHODS]
    runs += [(m, "cuda") for m in libdeclip.METHODS if m in NETWORK_METHODS] if cuda else []
    times: dict[str, list[float]] = {}
    for method, device in runs:
        label = f"{method} ({device.upper()})"
        libdeclip.declip(_warm_crop(versions[-1][1], 256), method=method, device=device)
        times[label] = []
        for _, image in versions:
            best = math.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                libdeclip.declip(image, method=method, device=device)
                best = min(best, time.perf_counter() - t0)
            times[label].append(best)
            print(f"{label}: {times[label][-1]:.2f} s", flush=True)
            if best > max_seconds:
                break
    lines = [
        f"Seconds to declip {photo.name} ({w} x {h}, {h * w / 1e6:.2f} MP) with synthetic clipping "
        "(mapped into 3..250, then scaled until the target share of pixels has a channel at 255; "
        "clipped = any channel within libdeclip's tolerance of 0 or 255), in this process, "
        f"best of {repeat}. A dash: skipped after a smaller fraction took over {max_seconds:g} s.",
        "",
        "| target | clipped pixels | " + " | ".join(times) + " |",
        "|---|---|" + "---|" * len(times),
    ]
    for i, (f, (measured, _)) in enumerate(zip(fractions, versions, strict=True)):
        cells = [f"{t[i]:.2f}" if i < len(t) else "-" for t in times.values()]
        lines.append(f"| {f:.0%} | {measured:.1%} | " + " | ".join(cells) + " |")
    if not cuda:
        lines += ["", _no_gpu()]
    _plot(times, [m for m, _ in versions], f"{photo.name}, {h * w / 1e6:.2f} MP", plot)
    lines += ["", f"![time versus clipped fraction]({plot.name})"]
    return lines


def _plot(times: dict[str, list[float]], measured: list[float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for label, seconds in times.items():
        ax.plot([100 * f for f in measured[: len(seconds)]], seconds, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clipped pixels (%)")
    ax.set_ylabel("seconds")
    ax.set_title(f"Time versus clipped fraction ({title})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="which parts to run (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="every section on a small crop of the demo photo, few configurations (a smoke test)")
    p.add_argument("--device", default="cpu", help="device of the pipeline section")
    p.add_argument("--skip-50mp", action="store_true")
    p.add_argument("--only-50mp", action="store_true")
    p.add_argument("--repeat", type=int, default=1,
                   help="best of N for the methods, tiles and fraction sections")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="fraction section: a method slower than this skips the larger fractions")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed.md",
                   help="the markdown; speed_vs_fraction.png goes beside it")
    p.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one fresh-process measurement
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(asdict(_measure(Spec(**json.loads(args.measure))))))
        return 0
    if not args.quick and not DATA.is_dir():
        print(f"error: {DATA} not found (--quick runs on the demo photo alone)", file=sys.stderr)
        return 2
    cuda = _machine.cuda_available()
    command = shlex.join(["python", "-m", "benchmarks.speed", *argv])
    source = f"Machine: {_machine.describe()}; command: `{command}`"
    fractions: tuple[float, ...]
    tiles_cpu: tuple[int, ...]
    threads: tuple[int, ...]
    tiles_gpu: tuple[int, ...]
    parts = _read_parts(args.out)  # the sections not run now stay as they were
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.quick:
            demo = read_image(DEMO)
            small = tmp / "demo_crop.png"
            write_image(small, demo.with_pixels(_warm_crop(demo.pixels, 256)))
            tiny = tmp / "demo_crop_128.png"
            write_image(tiny, demo.with_pixels(np.ascontiguousarray(demo.pixels[64:192, :128])))  # unclipped
            cases = [("8-bit PNG (demo photo, 256 x 256 crop)", [small])]
            photos, mosaic, fraction_photo = [small], small, tiny
            fractions, tiles_cpu, threads, tiles_gpu = (0.02, 0.2), (128, 256), (2,), (256,)
        else:
            cases = make_cases(tmp, args.skip_50mp) if "pipeline" in args.sections else []
            cases = cases[-1:] if args.only_50mp else cases
            photos = sorted((DATA / "singlehdr").glob("*.jpg"))[:6]
            pngs = sorted((DATA / "hdrcnn").glob("*.png"))[:4]
            mosaic = tmp / "hdrcnn_2x2.png"
            pix = [read_image(q).pixels[:768, :1024, :3] for q in pngs]
            write_image(mosaic, Image(pixels=np.concatenate(
                [np.concatenate(pix[:2], axis=1), np.concatenate(pix[2:], axis=1)], axis=0)))
            fraction_photo = FRACTION_PHOTO
            fractions, tiles_cpu, threads, tiles_gpu = FRACTIONS, (256, 512, 1024), (1, 2), (512, 1024, 2048)
        for section in SECTIONS:
            if section not in args.sections:
                continue
            if section == "mosaic":
                lines = mosaic_section(tmp, args.repeat, args.quick)
            elif section == "pipeline":
                lines = pipeline_section(cases, tmp, args.device)
            elif section == "methods":
                lines = methods_section(photos, cuda, args.repeat)
            elif section == "tiles":
                lines = tiles_section(mosaic, tiles_cpu, threads, tiles_gpu, cuda, args.repeat)
            else:
                lines = fraction_section(fraction_photo, fractions, cuda, args.repeat, args.max_seconds,
                                         args.out.with_name("speed_vs_fraction.png"))
            parts[section] = "\n".join([f"### {TITLES[section]}", "", source, "", *lines])
    text = "\n\n".join(parts[k] for k in SECTIONS if k in parts) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def _read_parts(path: Path) -> dict[str, str]:
    """The sections of an earlier speed.md, by name (each from its heading to the next)."""
    if not path.is_file():
        return {}
    names = {f"### {title}": name for name, title in TITLES.items()}
    parts = {}
    for chunk in re.split(r"^(?=### )", path.read_text(), flags=re.M):
        heading = chunk.partition("\n")[0]
        if heading in names:
            parts[names[heading]] = chunk.strip()
    return parts


if __name__ == "__main__":
    raise SystemExit(main())
