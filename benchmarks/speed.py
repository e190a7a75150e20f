"""Speed and memory of the declipping pipeline on real photos (CPU unless --device says otherwise).

    python -m benchmarks.speed [--device cpu] [--skip-50mp | --only-50mp] [--out FILE.md]

Cases: 8-bit JPEGs with real blown highlights (../shared/data/clipped/singlehdr), 16-bit TIFFs made
from real clipped photos (../shared/data/clipped/hdrcnn, x257), 8-bit PNGs with little clipping
(Kodak24: few tiles to run), and a 50-megapixel 16-bit TIFF made by tiling the HDR-CNN photos.
For each: megapixels per second for the whole pipeline (``libdeclip declip FILES --out-dir``, run
in this process: read, declip, write, with reading and writing overlapped with the model across
files) and for the engine alone (ONNX Runtime time), the pipeline overhead (everything but the
model run, as a share of the model time; also inside ``Declipper.run`` alone), the speed-up from
skipping unclipped tiles (same image, every tile run, through ``Declipper.run``), and the peak RSS
of a fresh process running the CLI on one file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from libdeclip import Declipper
from libdeclip.cli import main as cli_main
from libdeclip.engine import OnnxEngine
from libdeclip.io import Image, read_image, write_image

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "clipped"


class _EngineClock:
    """Adds up the time every engine spends in ONNX Runtime while active (a class-level wrap, so
    it also times the sessions the CLI creates)."""

    def __enter__(self) -> _EngineClock:
        self.seconds, self.runs = 0.0, 0
        self._inner = inner = OnnxEngine.residual

        def timed(engine: OnnxEngine, batch: np.ndarray) -> np.ndarray:
            t0 = time.perf_counter()
            out = inner(engine, batch)
            self.seconds += time.perf_counter() - t0
            self.runs += 1
            return out

        OnnxEngine.residual = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        OnnxEngine.residual = self._inner  # type: ignore[method-assign]


def _cli(files: list[Path], out_dir: Path, device: str) -> tuple[float, float]:
    """(total seconds, engine seconds) of ``libdeclip declip FILES --out-dir DIR`` in this process."""
    with _EngineClock() as clock:
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
    with _EngineClock() as clock:
        t0 = time.perf_counter()
        result = session.run(image.pixels, colorspace=image.icc_profile)
        run = time.perf_counter() - t0
    write_image(out, image.with_pixels(result), overwrite=True)
    return run, clock.seconds, clock.runs, len(session.plan(*image.pixels.shape[:2]))


def _peak_rss_mb(path: Path, out: Path, device: str) -> float:
    cli_args = ["declip", str(path), "-o", str(out), "--overwrite", "-q", "--device", device]
    # VmHWM, the peak of this process's own memory: ru_maxrss would also count the pages of the
    # (large) benchmark process that the child shared between fork and exec.
    code = (
        "from libdeclip.cli import main; "
        f"main({cli_args!r}); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024.0


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-50mp", action="store_true")
    p.add_argument("--only-50mp", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed.md")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"error: {DATA} not found", file=sys.stderr)
        return 2
    lines = [
        "| case | files | MP | pipeline MP/s | engine MP/s (run tiles) | overhead / model time | "
        "overhead inside run | tiles run | skip speed-up | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmpdir, Declipper(device=args.device) as session, Declipper(
        device=args.device, skip_unclipped=False
    ) as every:
        tmp = Path(tmpdir)
        cases = make_cases(tmp, args.skip_50mp)
        if args.only_50mp:
            cases = cases[-1:]
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
                rss = max(rss, _peak_rss_mb(f, tmp / f"rss{f.suffix}", args.device))
            total, engine = _cli(files, tmp / "cli_out", args.device)
            overhead = (total - engine) / engine if engine else float("nan")
            lines.append(
                f"| {name} | {len(files)} | {mp:.1f} | {mp / total:.3f} | {run_mp / engine:.3f} | "
                f"{overhead:.1%} | {(single_total - single_engine) / single_engine:.1%} | {run}/{planned} | "
                f"{all_total / single_total:.2f}x | {rss:.0f} |"
            )
            print(lines[-1], flush=True)
    header = (
        f"Device: {args.device}; tile {session.tile_size} px; command: "
        f"`python -m benchmarks.speed{' --skip-50mp' if args.skip_50mp else ''}`\n\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + "\n".join(lines) + "\n")
    print(header + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
