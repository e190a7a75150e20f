"""Quality harness: DeclipNet against no repair on real photos clipped with the paper's protocol.

    python -m benchmarks.quality [--data ../shared/data/eval] [--sets kodak24 cbsd68]
                                 [--out-dir benchmarks/results] [--model FILE.onnx] [--limit N]

Each photo is clipped at an over-exposure threshold in 175..255 and an under-exposure threshold in
1..80 (8-bit scale), drawn from a generator seeded by the file name, normalised with
(v - under) / (over - under) and re-quantised to 8 bits as a real file would be. Metrics are
computed on the photo's own 0..255 scale after mapping the output back:

- region PSNR / MAE: over pixels with any channel clipped (all three channels), unclamped output;
- whole-image PSNR and SSIM (SSIM on the output clamped to 0..255, as a display would show it);
- CIEDE2000 inside the clipped region (CIELAB of sRGB, output clamped to 0..255).

Writes ``quality.csv`` (one row per photo and method), ``quality.md`` (means per set) and
``quality_grid.png`` (clipped | mask | declipped | truth for a few photos).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import libdeclip

SEED = 20261125
METHODS = ("identity", "declipnet")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "eval"


@dataclass(frozen=True)
class Case:
    name: str
    truth: np.ndarray  # H x W x 3 float32, 0..255
    clipped: np.ndarray  # H x W x 3 float32 in [0, 1], re-quantised to 8 bits
    over: int
    under: int

    @property
    def region(self) -> np.ndarray:
        """Pixels with any channel clipped (H x W bool)."""
        return ((self.truth >= self.over) | (self.truth <= self.under)).any(axis=2)

    def to_photo_scale(self, normalised: np.ndarray) -> np.ndarray:
        return normalised.astype(np.float64) * (self.over - self.under) + self.under


def make_case(path: Path) -> Case:
    with Image.open(path) as im:
        truth = np.asarray(im.convert("RGB"), dtype=np.float32)
    rng = np.random.default_rng([SEED, zlib.crc32(path.name.encode())])
    over = int(rng.integers(175, 256))
    under = int(rng.integers(1, 81))
    normalised = (np.clip(truth, under, over) - under) / (over - under)
    clipped = (np.rint(normalised * 255.0) / 255.0).astype(np.float32)
    return Case(path.stem, truth, clipped, over, under)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def metrics(case: Case, output: np.ndarray) -> dict[str, float]:
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    pred = case.to_photo_scale(output)
    truth = case.truth.astype(np.float64)
    region = case.region
    shown = np.clip(pred, 0.0, 255.0)
    row = {
        "psnr": psnr(pred, truth),
        "ssim": float(structural_similarity(shown, truth, data_range=255.0, channel_axis=2)),
        "region_fraction": float(region.mean()),
    }
    if region.any():
        row["region_psnr"] = psnr(pred[region], truth[region])
        row["region_mae"] = float(np.mean(np.abs(pred[region] - truth[region])))
        lab_pred = rgb2lab(shown[region][None] / 255.0)
        lab_truth = rgb2lab(truth[region][None] / 255.0)
        row["region_ciede2000"] = float(np.mean(deltaE_ciede2000(lab_pred, lab_truth)))
    return row


def run_method(method: str, case: Case, model: Path | None, feather: int = 0) -> np.ndarray:
    if method == "identity":
        return case.clipped
    return libdeclip.declip(case.clipped, model=model, feather=feather, device="cpu")


def save_grid(rows: list[tuple[Case, np.ndarray]], path: Path) -> None:
    """clipped | mask | declipped | truth, one photo per row, each tile 256 px wide."""
    tiles = []
    for case, output in rows:
        h, w = case.truth.shape[:2]
        scale = 256 / w
        size = (256, max(1, round(h * scale)))

        def tile(a: np.ndarray, size: tuple[int, int] = size) -> np.ndarray:
            im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
            return np.asarray(im.resize(size, Image.Resampling.BILINEAR))

        mask = np.repeat(case.region[..., None], 3, axis=2).astype(np.float32) * 255.0
        tiles.append(
            np.concatenate(
                [
                    tile(case.to_photo_scale(case.clipped)),
                    tile(mask),
                    tile(case.to_photo_scale(output)),
                    tile(case.truth),
                ],
                axis=1,
            )
        )
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)


KEYS = ("region_psnr", "region_mae", "psnr", "ssim", "region_ciede2000")


def summarise(results: list[dict[str, object]]) -> str:
    lines = [
        "| set | method | photos | clipped-region PSNR (dB) | clipped-region MAE (0..255) | "
        "whole PSNR (dB) | whole SSIM | clipped-region CIEDE2000 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sets = sorted({str(r["set"]) for r in results})
    for s in sets:
        for m in METHODS:
            rs = [r for r in results if r["set"] == s and r["method"] == m]
            if not rs:
                continue
            cells = []
            for k in KEYS:
                vals = [float(r[k]) for r in rs if k in r and np.isfinite(float(r[k]))]  # type: ignore[arg-type]
                cells.append(f"{np.mean(vals):.3f}" if vals else "n/a")
            lines.append(f"| {s} | {m} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the eval sets")
    p.add_argument("--sets", nargs="+", default=["kodak24", "cbsd68"])
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--model", type=Path, help="ONNX model (default: the shipped one)")
    p.add_argument("--limit", type=int, help="first N photos of each set only (quick look)")
    p.add_argument("--grid", type=int, default=4, help="photos per set in the PNG grid")
    p.add_argument("--feather", type=int, default=0, help="feather radius for the model (default 0)")
    args = p.parse_args(argv)

    paths: list[tuple[str, Path]] = []
    for s in args.sets:
        folder = args.data / s
        files = sorted(f for f in folder.glob("*") if f.suffix.lower() in {".png", ".jpg", ".tif"})
        if not files:
            print(f"error: no photos in {folder}", file=sys.stderr)
            return 2
        paths += [(s, f) for f in files[: args.limit]]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    info = libdeclip.model_info(args.model)
    results: list[dict[str, object]] = []
    grid: list[tuple[Case, np.ndarray]] = []
    per_set_grid: dict[str, int] = {}
    t_model = 0.0
    for s, path in tqdm(paths, desc="photos", unit="photo", file=sys.stderr):
        case = make_case(path)
        for m in METHODS:
            t0 = time.perf_counter()
            output = run_method(m, case, args.model, args.feather)
            if m != "identity":
                t_model += time.perf_counter() - t0
            results.append(
                {"set": s, "photo": case.name, "method": m, "over": case.over, "under": case.under}
                | metrics(case, output)
            )
            if m == "declipnet" and per_set_grid.get(s, 0) < args.grid and case.region.mean() > 0.02:
                grid.append((case, output))
                per_set_grid[s] = per_set_grid.get(s, 0) + 1

    fields = ["set", "photo", "method", "over", "under", "region_fraction", *KEYS]
    with open(args.out_dir / "quality.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    table = summarise(results)
    header = (
        f"Model: {info.path.name} ({info.name} v{info.version}, {info.training_steps} training steps). "
        f"Thresholds seeded with {SEED} and the file name; feather {args.feather}; means over photos.\n\n"
    )
    (args.out_dir / "quality.md").write_text(header + table)
    if grid:
        save_grid(grid, args.out_dir / "quality_grid.png")
    print(header + table)
    print(f"model time: {t_model:.1f} s; results in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
