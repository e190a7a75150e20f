"""Model v2 against v1: quality of every v2 candidate and ablation, and speed on the CPU.

    python -m benchmarks.model_v2 [--sections quality candidates speed] [--data ../shared/data/eval]
        [--limit N] [--grid N] [--out-dir benchmarks/results]

Quality: the protocols, photos, metrics and pooling of :mod:`benchmarks.quality` (its docstring),
with models as rows instead of methods. Rows: the shipped v1 and v2, v2 without the consistency
constraint, v2's int8 and float16 variants, and the ablations (``training/checkpoints/v2_ablation``,
stored as float16 to keep the repository small; float16 moves a residual by at most 0.0012 of the
clip range, see each file's metadata). Ablation rows name the losses (MSE only; + perceptual; +
adversarial, the paper's 0.81 / 0.095 / 0.095), the input (with or without the clip mask) and the
stage (2: after over-exposure up to two stops; 3: after a further stage with at most one stop).

The report checks the issue's targets from the same run: v2 against v1 on clipped-region PSNR, the
"all channels clipped" PSNR and CIEDE2000 on every set and protocol; int8 within 0.3 dB of v2.

Candidates: parameters, GFLOP per megapixel, receptive field and ONNX Runtime time per tile of each
generator design considered (random weights).

Speed: seconds per megapixel of the whole ``Declipper.run`` (every tile run: skip_unclipped off, so
the clipped fraction does not matter) on a 4-megapixel real photo, tile 512, 2 threads, CPU, the
best of 3 runs after a warm-up; and the same for ONNX Runtime alone on one tile's window. Models run
one after another in one process, so their ratios come from the same machine state.

Outputs in --out-dir: ``model_v2_<section>.md`` (tables), ``model_v2.csv`` (per photo and model),
``model_v2_grid_<protocol>.png`` (the photos with the largest clipped areas, one column per
ablation).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import libdeclip
from benchmarks import quality as q
from libdeclip.engine import MODELS_DIR
from libdeclip.tiling import round_up

REPO = Path(__file__).resolve().parent.parent
ABLATION_DIR = REPO / "training" / "checkpoints" / "v2_ablation"
#: Rows: label -> (model file, consistency constraint).
MODELS: dict[str, tuple[Path, bool]] = {
    "v1": (MODELS_DIR / "declipnet-v1.onnx", True),
    "v2": (MODELS_DIR / "declipnet-v2.onnx", True),
    "v2, no consistency": (MODELS_DIR / "declipnet-v2.onnx", False),
    "v2 int8": (MODELS_DIR / "declipnet-v2-int8.onnx", True),
    "v2 float16": (MODELS_DIR / "declipnet-v2-fp16.onnx", True),
    "MSE only (stage 2)": (ABLATION_DIR / "v2_mse.fp16.onnx", True),
    "+ perceptual (stage 2)": (ABLATION_DIR / "v2_perceptual.fp16.onnx", True),
    "+ adversarial (stage 2)": (ABLATION_DIR / "v2_full.fp16.onnx", True),
    "+ adversarial, no mask (stage 2)": (ABLATION_DIR / "v2_full_nomask.fp16.onnx", True),
    "MSE only (stage 3)": (ABLATION_DIR / "v2_mse_s3.fp16.onnx", True),
    "+ perceptual (stage 3) = v2": (MODELS_DIR / "declipnet-v2.onnx", True),
    "+ adversarial (stage 3)": (ABLATION_DIR / "v2_full_s3.fp16.onnx", True),
    "+ adversarial, no mask (stage 3)": (ABLATION_DIR / "v2_full_nomask_s3.fp16.onnx", True),
}
#: Rows computed once and shown twice: (shown as, computed as).
SAME_AS = {"+ perceptual (stage 3) = v2": "v2"}
GRID_COLUMNS = (
    "v1", "MSE only (stage 2)", "+ perceptual (stage 2)", "+ adversarial (stage 2)",
    "+ adversarial, no mask (stage 2)", "v2", "v2 int8",
)
SPEED_MODELS = ("v1", "v2", "v2 int8", "v2 float16")
TABLE_KEYS = (
    "region_psnr", "partial_psnr", "full_psnr", "region_ciede2000", "full_ciede2000", "region_ssim",
    "haarpsi",
)
INT8_TOLERANCE_DB = 0.3
SECTIONS = ("quality", "candidates", "speed")


def run_model(label: str, case: q.Case) -> np.ndarray:
    path, consistency = MODELS[label]
    return q.run_method("declipnet" if consistency else "declipnet-unconstrained", case, path)


def quality(data: Path, limit: int | None, grid: int, out_dir: Path) -> tuple[str, list[dict[str, object]]]:
    paths = q._photos(data, ["kodak24", "cbsd68"], limit)
    computed = [m for m in MODELS if m not in SAME_AS]
    pickers = {pr: q.GridPicker(grid) for pr in q.PROTOCOLS}
    results: list[dict[str, object]] = []
    bar = tqdm(total=len(paths) * len(q.PROTOCOLS), desc="photos", unit="case", file=sys.stderr)
    for s, path in paths:
        truth = q.read_truth(path)
        for protocol in q.PROTOCOLS:
            case = q.make_case(path, protocol, truth)
            score = q.GridPicker.score(case)
            keep = pickers[protocol].wants(s, score)
            outputs = {}
            for m in computed:
                t0 = time.perf_counter()
                out = run_model(m, case)
                seconds = time.perf_counter() - t0
                results.append({"set": s, "protocol": protocol, "photo": case.name, "model": m,
                                "seconds": seconds, **q.metrics(case, out)})
                if keep and m in GRID_COLUMNS:
                    outputs[m] = out
            if keep:
                pickers[protocol].add(s, score, q.case_row(s, case, outputs, GRID_COLUMNS))
            bar.update()
    bar.close()
    for protocol in q.PROTOCOLS:
        rows = pickers[protocol].rows()
        if rows:
            q.save_grid(
                rows, ["clipped", *GRID_COLUMNS, "truth"], out_dir / f"model_v2_grid_{protocol}.png",
                f'Model v2 ablations, protocol "{protocol}": photo scale, clamped to 0..255; under each '
                "row its largest clipped area enlarged (outlined in yellow)",
            )
    return tables(results), results


def _pool(results: list[dict[str, object]], model: str, s: str, protocol: str, key: str) -> float:
    rows = [r for r in results if r["model"] == SAME_AS.get(model, model) and r["set"] == s
            and r["protocol"] == protocol and float(r["region_pixels"]) > 0]  # type: ignore[arg-type]
    return q.pooled(rows, key)


def tables(results: list[dict[str, object]]) -> str:
    out: list[str] = []
    sets = list(dict.fromkeys(str(r["set"]) for r in results))
    for protocol in q.PROTOCOLS:
        for s in sets:
            out.append(f"### {s}, protocol \"{protocol}\"\n")
            out.append("| model | PSNR region / some survive / all clipped (dB) ↑ | CIEDE2000 region / all ↓ "
                       "| SSIM region ↑ | HaarPSI ↑ |")
            out.append("|---|---|---|---|---|")
            for m in MODELS:
                v = {k: _pool(results, m, s, protocol, k) for k in TABLE_KEYS}
                out.append(
                    f"| {m} | {v['region_psnr']:.2f} / {v['partial_psnr']:.2f} / {v['full_psnr']:.2f} "
                    f"| {v['region_ciede2000']:.2f} / {v['full_ciede2000']:.2f} | {v['region_ssim']:.4f} "
                    f"| {v['haarpsi']:.4f} |"
                )
            out.append("")
    out.append("### Targets: v2 against v1, int8 against v2 (same run)\n")
    out.append("| set, protocol | region PSNR v2 − v1 | all-clipped PSNR v2 − v1 | CIEDE2000 v1 − v2 "
               "| int8 − v2 region PSNR |")
    out.append("|---|---|---|---|---|")
    met = True

    def d(s: str, protocol: str, key: str, a: str = "v2", b: str = "v1") -> float:
        return _pool(results, a, s, protocol, key) - _pool(results, b, s, protocol, key)

    for protocol in q.PROTOCOLS:
        for s in sets:
            dp, df = d(s, protocol, "region_psnr"), d(s, protocol, "full_psnr")
            dc = -d(s, protocol, "region_ciede2000")
            di = d(s, protocol, "region_psnr", "v2 int8", "v2")
            ok = dp > 0 and df > 0 and dc > 0 and abs(di) <= INT8_TOLERANCE_DB
            met &= ok
            mark = lambda x: f"**{x:+.2f}**" if x > 0 else f"{x:+.2f}"  # noqa: E731
            out.append(f"| {s}, {protocol} | {mark(dp)} | {mark(df)} | {mark(dc)} | {di:+.2f} |")
    out.append("")
    out.append(f"Quality targets (v2 ahead on all three, int8 within {INT8_TOLERANCE_DB} dB, every row): "
               f"**{'met' if met else 'not met'}**.\n")
    return "\n".join(out)


def speed_photo() -> np.ndarray:
    """A 2048 x 2048 crop of a real photo (float32), every tile run regardless of clipping."""
    for path in sorted((q.DEFAULT_REAL).rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
            img = libdeclip.read_image(path).pixels
            if min(img.shape[:2]) >= 2048:
                return np.ascontiguousarray(img[:2048, :2048, :3])
    rng = np.random.default_rng(0)  # no real photo of that size: smooth noise, still every tile
    return rng.random((2048, 2048, 3)).astype(np.float32)


def speed() -> str:
    import onnxruntime as ort

    photo = speed_photo()
    mp = photo.shape[0] * photo.shape[1] / 1e6
    rows, per_mp = [], {}
    for m in SPEED_MODELS:
        path, _ = MODELS[m]
        with libdeclip.Declipper(path, device="cpu", tile_size=512, threads=2) as d:
            d.skip_unclipped = False
            d.run(photo[:512, :512])
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                d.run(photo)
                times.append(time.perf_counter() - t0)
            info = d.model_info
        halo = round_up(info.receptive_field_radius, info.spatial_multiple)
        window = 512 + 2 * halo
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, len(info.input_channels), window, window), dtype=np.float32)
        session.run(None, {"clipped": x})
        ort_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            session.run(None, {"clipped": x})
            ort_times.append(time.perf_counter() - t0)
        per_mp[m] = min(times) / mp
        meta = info.metadata
        network = f"{meta.get('generator_layout', '?')}, width {meta.get('generator_width', '?')}"
        rows.append(
            f"| {m} | {network} | {info.receptive_field_radius} px / {halo} px "
            f"| {min(times) / mp:.3f} | {mp / min(times):.2f} | {min(ort_times):.3f} s ({window} px window) |"
        )
    v1, v2, i8 = per_mp["v1"], per_mp["v2"], per_mp["v2 int8"]
    return "\n".join([
        f"Whole `Declipper.run` on a {photo.shape[1]} x {photo.shape[0]} real photo ({mp:.1f} MP), "
        "every tile run, tile 512, 2 threads, CPU; best of 3 after a warm-up.\n",
        "| model | network | receptive field / halo | s per MP | MP/s | ONNX Runtime alone, one tile |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"v2 is **{v1 / v2:.2f}x** as fast as v1 (target 2x); int8 is **{v2 / i8:.2f}x** as fast as v2 "
        f"(target 1.5x); float16 runs at {per_mp['v2'] / per_mp['v2 float16']:.2f}x v2 on this CPU "
        "(it is meant for GPUs).\n",
    ])


#: Generator candidates: (label, layout, width, input channels).
CANDIDATES = (
    ("paper (v1)", "paper", 32, 3),
    ("lite 24, mask", "lite", 24, 6),
    ("lite 32, mask (v2)", "lite", 32, 6),
    ("lite 32, no mask", "lite", 32, 3),
    ("lite 48, mask", "lite", 48, 6),
)


def candidates() -> str:
    """Parameters, GFLOP/MP, receptive field and ONNX Runtime time of each generator candidate
    (random weights: the time does not depend on them), at a 512 px tile core with its halo."""
    import tempfile

    import onnxruntime as ort
    import torch

    from training.export import fold_batch_norm
    from training.models import build_generator, conv_macs_per_pixel, receptive_field_radius, spatial_multiple

    rows = []
    for label, layout, width, channels in CANDIDATES:
        torch.manual_seed(0)
        g = build_generator(layout, width, channels if layout == "lite" else None).eval()
        radius, multiple = receptive_field_radius(g), spatial_multiple(g)
        halo = round_up(radius, multiple)
        window = 512 + 2 * halo
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "g.onnx"
            torch.onnx.export(
                fold_batch_norm(g), (torch.zeros(1, channels, 64, 64),), str(path), input_names=["x"],
                output_names=["y"], dynamic_axes={"x": {2: "H", 3: "W"}, "y": {2: "H", 3: "W"}},
                opset_version=17, dynamo=False,
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = np.random.default_rng(0).random((1, channels, window, window), dtype=np.float32)
            session.run(None, {"x": x})
            times = []
            for _ in range(7):  # one tile is short: more repetitions than the whole-run timing
                t0 = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - t0)
        rows.append(
            f"| {label} | {sum(p.numel() for p in g.parameters()):,} "
            f"| {2 * conv_macs_per_pixel(g) / 1e3:.1f} "
            f"| {radius} px (halo {halo}) | {window} px | {min(times):.3f} | {min(times) / 0.262144:.2f} |"
        )
    return "\n".join([
        "Generator candidates, random weights, ONNX Runtime on the CPU with 2 threads, one tile of 512 px "
        "core and its halo (best of 7). GFLOP per megapixel counts 2 per multiply-add of every "
        "convolution, measured by running the network; the receptive field is measured by "
        "back-propagation (`training.models`).\n",
        "| candidate | parameters | GFLOP/MP | receptive field | window | s per tile | s per MP of cores |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])


def write_csv(results: list[dict[str, object]], path: Path) -> None:
    keys = list(dict.fromkeys(k for r in results for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_v2", description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--data", type=Path, default=q.DEFAULT_DATA)
    p.add_argument("--limit", type=int, help="first N photos of each set only (quick look)")
    p.add_argument("--grid", type=int, default=4, help="photos per protocol grid (0: none)")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    missing = [str(path) for path, _ in MODELS.values() if not path.is_file()]
    if missing:
        print(f"error: model files missing: {', '.join(sorted(set(missing)))}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.model_v2 " + " ".join(argv if argv is not None else sys.argv[1:])
    for section in SECTIONS:
        if section not in args.sections:
            continue
        started = time.perf_counter()
        if section == "quality":
            try:
                table, results = quality(args.data, args.limit, args.grid, args.out_dir)
            except FileNotFoundError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            write_csv(results, args.out_dir / "model_v2.csv")
            body = "Region metrics pool every clipped pixel of a set, as in `quality.md`.\n\n" + table
        else:
            body = candidates() if section == "candidates" else speed()
        minutes = (time.perf_counter() - started) / 60
        title = {
            "quality": "Model v2: quality", "candidates": "Generator candidates", "speed": "Model v2: speed",
        }
        text = f"# {title[section]}\n\nMade by `{command.strip()}` ({section}: {minutes:.1f} min).\n\n{body}"
        (args.out_dir / f"model_v2_{section}.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
