"""What the speck rule costs: the default model with specks kept as recorded, against the model on
every clipped pixel, on the quality harness's photos, protocols and metrics.

    python -m benchmarks.specks [--sizes 0 1 2 4 8] [--sets kodak24 cbsd68] [--limit N]
        [--repair-sizes 4 16 64 256 1024]

A speck is a clipped component of at most N pixels (``libdeclip.mask.SPECK_PIXELS``); it keeps its
recorded value and gets no window of the network. For each N in --sizes (0: the network on every
clipped pixel) this runs ``Declipper(speck_pixels=N)`` on each photo of each set under both
protocols (``benchmarks.quality``'s cases, its region metrics pooled over the set), and reports
region PSNR, the change against N = 0, the share of clipped values that were specks and the
time of the runs (Declipper.run, summed over the set). Writes ``benchmarks/results/specks.md``.

A second table asks what a cheap repair of small components would cost instead of their recorded
value: the N = 0 output with every clipped component of at most M pixels (--repair-sizes) given
the value of a classical method (``libdeclip.declip_classic`` on the whole photo: cross-channel,
inpaint opposed, or "base", inpaint opposed where all three channels are clipped high and
cross-channel elsewhere) or its recorded value, against the N = 0 output itself. It bounds what a
speck rule of M pixels with that repair can cost (the network's own windows, which would also lose
those components from their mask input, are not re-run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _machine
from benchmarks.quality import DEFAULT_DATA, PROTOCOLS, _photos, make_case, metrics, pooled
from libdeclip import Declipper, declip_classic
from libdeclip.mask import SPECK_PIXELS, clip_codes, without_specks

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.specks", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    p.add_argument("--sets", nargs="+", default=["kodak24", "cbsd68"])
    p.add_argument("--limit", type=int, default=None, help="photos per set (default: all)")
    p.add_argument("--repair-sizes", type=int, nargs="*", default=[4, 16, 64, 256, 1024],
                   help="component sizes of the cheap-repair table (none: no such table)")
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
    repair_rows: list[str] = []
    for set_name in args.sets:
        for protocol in PROTOCOLS:
            rows: dict[int, list[dict[str, float]]] = {n: [] for n in args.sizes}
            repaired: dict[tuple[str, int], list[dict[str, float]]] = {}
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
                outputs = {}
                for n, session in sessions.items():
                    t0 = time.perf_counter()
                    outputs[n] = session.run(case.clipped, fit="float", **kwargs)  # type: ignore[arg-type]
                    seconds[n] += time.perf_counter() - t0
                    rows[n].append(metrics(case, outputs[n]))
                codes = (clip_codes(case.clipped, case.low, case.high, case.tolerance) if case.mask is None
                         else np.packbits(case.mask, axis=2, bitorder="little")[..., 0])
                if args.repair_sizes:
                    cheap = _cheap_repairs(case, codes, outputs[0], args.repair_sizes, kwargs)
                    for key, row in cheap.items():
                        repaired.setdefault(key, []).append(row)
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
            for repair in REPAIRS:
                if not args.repair_sizes:
                    break
                cells = [f"{pooled(repaired[(repair, m)], 'region_psnr') - psnr[0]:+.3f}"
                         for m in args.repair_sizes]
                repair_rows.append(f"| {set_name}, {protocol} | {repair} | " + " | ".join(cells) + " |")
                print(repair_rows[-1], flush=True)
    lines += [
        "",
        f"Largest loss of the shipped rule (N = {SPECK_PIXELS}) against N = 0: {-worst:.3f} dB "
        f"(target: at most 0.05 dB in every cell).",
    ]
    if args.repair_sizes:
        lines += [
            "",
            "Cheap repairs of small components (region PSNR change against N = 0, dB): the N = 0 output "
            "with every clipped component of at most M pixels given the repair's value.",
            "",
            "| set, protocol | repair | " + " | ".join(f"M = {m}" for m in args.repair_sizes) + " |",
            "|---|---" + "|---" * len(args.repair_sizes) + "|",
            *repair_rows,
        ]
    lines += ["", f"Made in {(time.perf_counter() - started) / 60:.1f} min.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[-3:]))
    return 0


#: The cheap repairs of the second table.
REPAIRS = ("recorded", "cross-channel", "inpaint-opposed", "base")


def _cheap_repairs(case: Any, codes: np.ndarray, network: np.ndarray, sizes: list[int],
                   kwargs: dict[str, object]) -> dict[tuple[str, int], dict[str, float]]:
    """The metrics of ``network`` (the N = 0 output) with each small component repaired cheaply."""
    from scipy import ndimage

    classical = {m: declip_classic(case.clipped, m, fit="float", **kwargs)  # type: ignore[arg-type]
                 for m in ("cross-channel", "inpaint-opposed")}
    all_high = ((codes & 0b111) == 0b111)[..., None]
    values = {
        "recorded": case.clipped,
        "cross-channel": classical["cross-channel"],
        "inpaint-opposed": classical["inpaint-opposed"],
        "base": np.where(all_high, classical["inpaint-opposed"], classical["cross-channel"]),
    }
    labels, _ = ndimage.label(codes != 0, structure=np.ones((3, 3), bool))
    component = np.bincount(labels.ravel())
    component[0] = np.iinfo(component.dtype).max
    out = {}
    for m in sizes:
        small = (component <= m)[labels][..., None]
        for repair in REPAIRS:
            out[(repair, m)] = metrics(case, np.where(small, values[repair], network))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
