"""What the speck rule costs: the default model with specks kept as recorded, against the model on
every clipped pixel, on the quality harness's photos, protocols and metrics.

    python -m benchmarks.specks [--sizes 0 1 2 4 8] [--sets kodak24 cbsd68] [--limit N]

A speck is a clipped component of at most N pixels (``libdeclip.mask.SPECK_PIXELS``); it keeps its
recorded value and gets no window of the network. For each N in --sizes (0: the network on every
clipped pixel) this runs ``Declipper(speck_pixels=N)`` on each photo of each set under both
protocols (``benchmarks.quality``'s cases, its region metrics pooled over the set), and reports
region PSNR, the change against N = 0, the share of clipped values that were specks and the
time of the runs (Declipper.run, summed over the set). Writes ``benchmarks/results/specks.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _machine
from benchmarks.quality import DEFAULT_DATA, PROTOCOLS, _photos, make_case, metrics, pooled
from libdeclip import Declipper
from libdeclip.mask import SPECK_PIXELS, clip_codes, without_specks

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.specks", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    p.add_argument("--sets", nargs="+", default=["kodak24", "cbsd68"])
    p.add_argument("--limit", type=int, default=None, help="photos per set (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS / "specks.md")
    args = p.parse_args(argv)
    if 0 not in args.sizes:
        args.sizes = [0, *args.sizes]
    try:
        photos = _photos(DEFAULT_DATA, args.sets, args.limit)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sessions = {n: Declipper(device="cpu", speck_pixels=n) for n in args.sizes}
    model = sessions[0].model_info.path.stem
    started = time.perf_counter()
    lines = [
        f"Machine: {_machine.describe()}; command: `python -m benchmarks.specks`",
        "",
        f"Model {model}. Region PSNR (dB, pooled over each set's clipped values) with specks of at most "
        f"N pixels kept "
        f"as recorded; N = 0 runs the network on every clipped value. The shipped rule is N = "
        f"{SPECK_PIXELS}.",
        "",
        "| set, protocol | " + " | ".join(f"N = {n}" for n in args.sizes) + " | speck share at N = "
        f"{SPECK_PIXELS} | run time, N = 0 / {SPECK_PIXELS} |",
        "|---" * (len(args.sizes) + 3) + "|",
    ]
    worst = 0.0
    for set_name in args.sets:
        for protocol in PROTOCOLS:
            rows: dict[int, list[dict[str, float]]] = {n: [] for n in args.sizes}
            seconds = dict.fromkeys(args.sizes, 0.0)
            specks = clipped = 0
            for s, path in photos:
                if s != set_name:
                    continue
                case = make_case(path, protocol)
                kwargs: dict[str, object] = {
                    "clip_levels": (case.low.tolist(), case.high.tolist()), "tolerance": case.tolerance,
                }
                if case.mask is not None:
                    kwargs["mask"] = case.mask
                for n, session in sessions.items():
                    t0 = time.perf_counter()
                    out = session.run(case.clipped, fit="float", **kwargs)  # type: ignore[arg-type]
                    seconds[n] += time.perf_counter() - t0
                    rows[n].append(metrics(case, out))
                codes = (clip_codes(case.clipped, case.low, case.high, case.tolerance) if case.mask is None
                         else np.packbits(case.mask, axis=2, bitorder="little")[..., 0])
                clipped += int(np.count_nonzero(codes))
                specks += without_specks(codes, SPECK_PIXELS)[1]
            psnr = {n: pooled(r, "region_psnr") for n, r in rows.items()}
            cells = [f"{psnr[n]:.2f}" + ("" if n == 0 else f" ({psnr[n] - psnr[0]:+.2f})")
                     for n in args.sizes]
            if SPECK_PIXELS in psnr:
                worst = min(worst, psnr[SPECK_PIXELS] - psnr[0])
            share = specks / clipped if clipped else 0.0
            times = f"{seconds[0]:.1f} / {seconds.get(SPECK_PIXELS, float('nan')):.1f} s"
            lines.append(f"| {set_name}, {protocol} | " + " | ".join(cells) + f" | {share:.2%} | {times} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        f"Largest loss of the shipped rule (N = {SPECK_PIXELS}) against N = 0: {-worst:.3f} dB "
        f"(target: at most 0.05 dB in every cell). Made in {(time.perf_counter() - started) / 60:.1f} min.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[-3:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
