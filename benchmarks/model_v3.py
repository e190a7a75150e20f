"""Model v3 against v2 and every classical method, all rows in one run.

    python -m benchmarks.model_v3 [--sections quality real speed] [--data ../shared/data/eval]
        [--sets kodak24 cbsd68] [--limit N] [--grid N] [--out-dir benchmarks/results]
    python -m benchmarks.model_v3 --merge A.csv B.csv    # the tables of runs on separate sets
    python -m benchmarks.model_v3 --sections quality --candidate NEW.onnx [MORE.onnx] --rows v2 v3
                                                   # new v3 models (e.g. a later training stage)

``--sets`` with ``--csv OUT`` runs the quality section on some sets only (e.g. one process per
set on a 2-core machine) and writes its rows; ``--merge`` writes ``model_v3_quality.md`` from them.

Quality: the protocols, photos, metrics and pooling of :mod:`benchmarks.quality` (its docstring),
with methods and models as rows: no repair, the three classical methods, v2 (float32 and int8, the
default), v3 (float32, int8, float16) and the ablation "v3 base": the v3 model with its last layer
at zero, which returns the classical estimate it starts from (cross-channel's where a channel
survives, inpaint opposed's where all three are clipped, projected outward), i.e. v3 without its
network. Besides PSNR, SSIM and CIEDE2000 the tables give the chroma error (CIELAB a*b* distance,
:func:`benchmarks._metrics.chroma_error`) where every channel is clipped: a hue invented there (a
pink cloud) is what it measures.

The report checks the issue's quality targets from the same run: v3 >= v2 + 1.0 dB region PSNR in
every set and protocol; v3 best of all rows in each split on PSNR and on CIEDE2000; int8 within
0.1 dB of float32.

``--candidate`` adds a row for each other v3 model file given (e.g. the export of a later training
stage's checkpoint, or of an ablation's), labelled "candidate <file name>", and a table of each one's
gain over v3 in each split: the evidence for releasing it, or an ablation's result on the same
photos; ``--rows`` runs only some rows (labels as in the tables; "v3" and the candidates are always
run with it). The speed section times each candidate file beside v2-int8, v3-int8 and v3.

Real: crops of real clipped photos (``../shared/data/clipped``, no truth) for inpaint opposed, v2
and v3, chosen by a rule fixed before v3's output was seen: hdrcnn's ``img_007`` and the four
photos of each subfolder with the largest clipped share under 30% (:func:`benchmarks.quality.pick_real`),
each ``--candidate`` a column too; and a table of the 2 px grid-locked pattern each column leaves
where every channel is clipped (:func:`benchmarks._metrics.grid_pattern`: a phase head's
checkerboard on a flat blown sky).

Speed: seconds per megapixel of ``libdeclip.declip`` on a 4-megapixel real photo over-exposed so
that ~6% of its pixels clip, CPU (every core), the best of 3 after a warm-up, v2 int8 and v3 int8 in
one process (v3's time includes its estimates).

Outputs in --out-dir: ``model_v3_<section>.md``, ``model_v3.csv`` (per photo and row),
``model_v3_grid_<protocol>.png`` and ``model_v3_grid_real.png``.
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
from benchmarks._metrics import GRID_CELL
from libdeclip.engine import MODELS_DIR

REPO = Path(__file__).resolve().parent.parent
ABLATION_DIR = REPO / "training" / "checkpoints" / "v3_ablation"
#: Rows: label -> (row of benchmarks.quality.METHOD_ROWS, model file or None).
ROWS: dict[str, tuple[str, Path | None]] = {
    "no repair": ("identity", None),
    "cross-channel": ("cross-channel", None),
    "inpaint-opposed": ("inpaint-opposed", None),
    "biharmonic": ("biharmonic", None),
    "v2": ("declipnet", MODELS_DIR / "declipnet-v2.onnx"),
    "v2 int8 (default)": ("declipnet", MODELS_DIR / "declipnet-v2-int8.onnx"),
    "v3 base (network off)": ("declipnet", ABLATION_DIR / "v3_base.onnx"),
    "v3": ("declipnet", MODELS_DIR / "declipnet-v3.onnx"),
    "v3 int8": ("declipnet", MODELS_DIR / "declipnet-v3-int8.onnx"),
    "v3 float16": ("declipnet", MODELS_DIR / "declipnet-v3-fp16.onnx"),
}
GRID_COLUMNS = ("inpaint-opposed", "cross-channel", "v2 int8 (default)", "v3 base (network off)", "v3")
REAL_COLUMNS = ("inpaint-opposed", "v2 int8 (default)", "v3")
TABLE_KEYS = ("region_psnr", "partial_psnr", "full_psnr", "region_psnr_bound", "full_psnr_bound",
              "region_ciede2000", "partial_ciede2000", "full_ciede2000", "full_chroma", "region_ssim")
TARGET_GAIN_DB = 1.0
INT8_TOLERANCE_DB = 0.1
SECTIONS = ("quality", "real", "speed")


CANDIDATE = "candidate"  # the label of a --candidate row: "candidate <file stem>"


def candidate_label(path: Path) -> str:
    return f"{CANDIDATE} {path.stem}"


def is_candidate(label: str) -> bool:
    return label == CANDIDATE or label.startswith(CANDIDATE + " ")


def quality(data: Path, sets: list[str], limit: int | None, grid: int, out_dir: Path,
            rows: dict[str, tuple[str, Path | None]]) -> tuple[str, list[dict[str, object]]]:
    paths = q._photos(data, sets, limit)
    pickers = {pr: q.GridPicker(grid) for pr in q.PROTOCOLS}
    columns = [c for c in GRID_COLUMNS if c in rows] + [c for c in rows if is_candidate(c)]
    results: list[dict[str, object]] = []
    bar = tqdm(total=len(paths) * len(q.PROTOCOLS), desc="photos", unit="case", file=sys.stderr)
    for s, path in paths:
        truth = q.read_truth(path)
        for protocol in q.PROTOCOLS:
            case = q.make_case(path, protocol, truth)
            score = q.GridPicker.score(case)
            keep = pickers[protocol].wants(s, score)
            outputs = {}
            for label, (method, model) in rows.items():
                t0 = time.perf_counter()
                out = q.run_method(method, case, model)
                seconds = time.perf_counter() - t0
                results.append({"set": s, "protocol": protocol, "photo": case.name, "model": label,
                                "seconds": seconds, **q.metrics(case, out)})
                if keep and label in columns:
                    outputs[label] = out
            if keep:
                pickers[protocol].add(s, score, q.case_row(s, case, outputs, columns))
            bar.update()
    bar.close()
    for protocol in q.PROTOCOLS:
        grid_rows = pickers[protocol].rows()
        if grid_rows:
            q.save_grid(
                grid_rows, ["clipped", *columns, "truth"],
                out_dir / f"model_v3_grid_{protocol}{'' if len(sets) == 2 else '_' + '_'.join(sets)}.png",
                f'Model v3, protocol "{protocol}": photo scale, clamped to 0..255; under each row its '
                "largest clipped area enlarged (outlined in yellow)",
            )
    return tables(results), results


def _pool(results: list[dict[str, object]], label: str, s: str, protocol: str, key: str) -> float:
    rows = [r for r in results if r["model"] == label and r["set"] == s and r["protocol"] == protocol
            and float(r["region_pixels"]) > 0]  # type: ignore[arg-type]
    if rows and key not in rows[0]:  # rows of a run from before the key existed
        return float("nan")
    return q.pooled(rows, key)


def _delta(results: list[dict[str, object]], label: str, s: str, protocol: str, key: str,
           sign: float) -> str:
    """Candidate ``label``'s gain over v3 on ``key`` (``sign`` -1 where lower is better)."""
    gain = _pool(results, label, s, protocol, key) - _pool(results, "v3", s, protocol, key)
    return f"{sign * gain + 0.0:+.2f}"  # + 0.0: no "-0.00" for no change


def tables(results: list[dict[str, object]]) -> str:
    out: list[str] = []
    sets = list(dict.fromkeys(str(r["set"]) for r in results))
    labels = list(dict.fromkeys(str(r["model"]) for r in results))
    for protocol in q.PROTOCOLS:
        for s in sets:
            out.append(f"### {s}, protocol \"{protocol}\"\n")
            out.append("| row | PSNR region / some survive / all clipped (dB) ↑ "
                       "| PSNR a truth at 255 a bound: region / all clipped (dB) ↑ "
                       "| CIEDE2000 region / some / all ↓ | chroma error, all clipped ↓ | SSIM region ↑ |")
            out.append("|---|---|---|---|---|---|")
            for label in labels:
                v = {k: _pool(results, label, s, protocol, k) for k in TABLE_KEYS}
                out.append(
                    f"| {label} | {v['region_psnr']:.2f} / {v['partial_psnr']:.2f} / {v['full_psnr']:.2f} "
                    f"| {v['region_psnr_bound']:.2f} / {v['full_psnr_bound']:.2f} "
                    f"| {v['region_ciede2000']:.2f} / {v['partial_ciede2000']:.2f} "
                    f"/ {v['full_ciede2000']:.2f} | {v['full_chroma']:.2f} | {v['region_ssim']:.4f} |"
                )
            out.append("")
    for label in (c for c in labels if is_candidate(c)):
        out.append(f"### {label[0].upper() + label[1:]} against v3 (same run; positive: the candidate "
                   "is better)\n")
        out.append("| set, protocol | PSNR region / some survive / all clipped (dB) "
                   "| CIEDE2000 region / some / all (lower is better: v3 − candidate) |")
        out.append("|---|---|---|")
        for protocol in q.PROTOCOLS:
            for s in sets:
                psnr = " / ".join(_delta(results, label, s, protocol, f"{k}_psnr", 1.0)
                                  for k in ("region", "partial", "full"))
                de = " / ".join(_delta(results, label, s, protocol, f"{k}_ciede2000", -1.0)
                                for k in ("region", "partial", "full"))
                out.append(f"| {s}, {protocol} | {psnr} | {de} |")
        out.append("")
    if not {"v2", "v3", "v3 int8"} <= set(labels):
        return "\n".join(out)
    out.append("### Targets (same run)\n")
    out.append("| set, protocol | region PSNR v3 − v2 (≥ +1.0) | v3 best PSNR some / all "
               "| v3 best CIEDE2000 some / all | int8 − v3 region PSNR |")
    out.append("|---|---|---|---|---|")
    met = True
    others = [r for r in labels if not r.startswith("v3") and not is_candidate(r)]

    def best(s: str, protocol: str, key: str, higher: bool) -> str:
        mine = _pool(results, "v3", s, protocol, key)
        rivals = {r: _pool(results, r, s, protocol, key) for r in others}
        top = max(rivals, key=lambda r: rivals[r] if higher else -rivals[r])
        margin = (mine - rivals[top]) if higher else (rivals[top] - mine)
        return f"{'yes' if margin >= 0 else 'no'} ({margin:+.2f} vs {top})"

    for protocol in q.PROTOCOLS:
        for s in sets:
            gain = _pool(results, "v3", s, protocol, "region_psnr") - _pool(results, "v2", s, protocol,
                                                                             "region_psnr")
            cells = [best(s, protocol, f"{split}_psnr", True) for split in ("partial", "full")]
            colour = [best(s, protocol, f"{split}_ciede2000", False) for split in ("partial", "full")]
            di = _pool(results, "v3 int8", s, protocol, "region_psnr") - _pool(results, "v3", s, protocol,
                                                                                "region_psnr")
            ok = gain >= TARGET_GAIN_DB and all(c.startswith("yes") for c in cells + colour)
            met &= ok and abs(di) <= INT8_TOLERANCE_DB
            out.append(f"| {s}, {protocol} | {gain:+.2f} | {cells[0]} / {cells[1]} "
                       f"| {colour[0]} / {colour[1]} | {di:+.2f} |")
    out.append("")
    out.append(f"Quality targets (every cell): **{'met' if met else 'not met'}**.\n")
    return "\n".join(out)


def real(out_dir: Path, candidates: list[Path] | None = None) -> str:
    folder = q.DEFAULT_REAL
    if not folder.is_dir():
        return "(no real clipped photos: ../shared/data/clipped is missing)\n"
    paths = q.pick_real(folder, 4)
    must = folder / "hdrcnn" / "img_007.png"
    if must.is_file() and must not in paths:
        paths.insert(0, must)
    columns = [(label, *ROWS[label]) for label in REAL_COLUMNS]
    columns += [(candidate_label(path), "declipnet", path) for path in candidates or []]
    target = out_dir / "model_v3_grid_real.png"
    patterns = q.real_grid(paths, columns, 0, target)
    names = ", ".join(f"{p.parent.name}/{p.name}" for p in paths)
    cells = max(len(v) for v in patterns.values())
    lines = [f"{len(paths)} real clipped photos ({names}): `{target.name}`.\n",
             f"A 2 px pattern locked to the pixel grid where every channel is clipped (a phase head's "
             f"checkerboard; `benchmarks._metrics.grid_pattern`: its amplitude in 8-bit codes of the shown "
             f"picture, per {GRID_CELL} px cell, {cells} cells of these photos):\n",
             "| column | mean | 99th percentile | largest | cells over 1 code |", "|---|---|---|---|---|"]
    for label, values in patterns.items():
        if values.size:
            lines.append(f"| {label} | {values.mean():.2f} | {np.percentile(values, 99):.2f} | "
                         f"{values.max():.2f} | {(values > 1.0).mean():.1%} |")
    return "\n".join(lines) + "\n"


def speed_photo() -> np.ndarray:
    """A 4-megapixel real photo (a camera original, upscaled if smaller) over-exposed by 1.25x."""
    from PIL import Image

    source = sorted((REPO.parent / "shared" / "data" / "train" / "camera").glob("*.jpg"))
    with Image.open(source[0] if source else REPO / "examples" / "night_lamps.png") as im:
        rgb = im.convert("RGB").resize((2448, 1632), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(rgb, dtype=np.float32) * 1.25, 0, 255).astype(np.uint8)


def speed(candidates: list[Path] | None = None) -> str:
    """Seconds per megapixel of v2-int8, v3-int8, v3 and each ``candidates`` file, in one run."""
    photo = speed_photo()
    mp = photo.shape[0] * photo.shape[1] / 1e6
    clipped = float((photo >= 254).any(axis=2).mean())
    lines = [f"{mp:.1f} MP photo, {clipped:.1%} of its pixels clipped; `libdeclip.declip`, CPU (every core), "
             "best of 3 after a warm-up.\n", "| model | s / MP | vs v2 int8 |", "|---|---|---|"]
    times: dict[str, float] = {}
    models = {label: ROWS[label][1] for label in ("v2 int8 (default)", "v3 int8", "v3")}
    models |= {candidate_label(path): path for path in candidates or []}
    for label, model in models.items():
        libdeclip.declip(photo[:256, :256], model=model, device="cpu")
        best = min(_timed(lambda m=model: libdeclip.declip(photo, model=m, device="cpu"))
                   for _ in range(3))
        times[label] = best / mp
    for label, t in times.items():
        lines.append(f"| {label} | {t:.3f} | {t / times['v2 int8 (default)']:.2f}x |")
    return "\n".join(lines) + "\n"


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def write_csv(results: list[dict[str, object]], path: Path) -> None:
    keys = sorted({k for r in results for k in r})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_v3", description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--data", type=Path, default=q.DEFAULT_DATA)
    p.add_argument("--sets", nargs="+", default=["kodak24", "cbsd68"])
    p.add_argument("--csv", type=Path, help="the quality rows' CSV (default: OUT_DIR/model_v3.csv)")
    p.add_argument("--merge", nargs="+", type=Path, metavar="CSV", help="tables from these rows only")
    p.add_argument("--limit", type=int, help="first N photos of each set only (quick look)")
    p.add_argument("--grid", type=int, default=4, help="photos per protocol grid (0: none)")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--candidate", type=Path, nargs="+", metavar="ONNX", default=[],
                   help="other v3 model files, a row each")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), metavar="ROW",
                   help=f"run only these rows (of: {', '.join(ROWS)})")
    args = p.parse_args(argv)
    rows = {k: v for k, v in ROWS.items() if not args.rows or k in args.rows or k == "v3"}
    for path in args.candidate:
        if candidate_label(path) in rows:
            print(f"error: two candidates named {path.stem}: give the files different names", file=sys.stderr)
            return 2
        rows[candidate_label(path)] = ("declipnet", path)
    missing = [str(m) for _, m in rows.values() if m is not None and not m.is_file()]
    if missing:
        print(f"error: model files missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.merge:
        results: list[dict[str, object]] = []
        for path in args.merge:
            with open(path, newline="") as f:
                results += list(csv.DictReader(f))
        write_csv(results, args.out_dir / "model_v3.csv")
        text = tables(results)
        names = " ".join(p.name for p in args.merge)
        (args.out_dir / "model_v3_quality.md").write_text(
            f"<!-- python -m benchmarks.model_v3 --merge {names} -->\n\n{text}")
        print(text)
        return 0
    started = time.perf_counter()
    for section in args.sections:
        if section == "quality":
            if not args.data.is_dir():
                print(f"error: {args.data} not found", file=sys.stderr)
                return 2
            text, results = quality(args.data, args.sets, args.limit, args.grid, args.out_dir, rows)
            write_csv(results, args.csv or args.out_dir / "model_v3.csv")
        elif section == "real":
            text = real(args.out_dir, args.candidate)
        else:
            text = speed(args.candidate)
        limit = f", first {args.limit} photos of each set" if args.limit else ""
        if section == "quality" and args.sets != ["kodak24", "cbsd68"]:
            limit += f", sets {' '.join(args.sets)}"
        if section == "quality" and args.rows:
            limit += f", rows {' '.join(args.rows)}"
        if args.candidate:
            limit += f", candidate {' '.join(path.name for path in args.candidate)}"
        header = (f"<!-- python -m benchmarks.model_v3 --sections {section}{limit}; "
                  f"{time.perf_counter() - started:.0f} s so far -->\n\n")
        name = f"model_v3_{section}.md" if section != "quality" or not args.csv else args.csv.stem + ".md"
        (args.out_dir / name).write_text(header + text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
