"""Whether the integer pile-up rule finds clip levels below the top code, and never where there
are none (issue #22, part 2).

    python -m benchmarks.integer_levels [--data ../shared/data] [--levels 235 245 250 254]

For every photo of the evaluation sets (Kodak24, CBSD68) and of the real clipped photos
(``clipped/``), as read (8-bit) and as 16-bit (each code times 257), this asks
``libdeclip.mask.levels_from_data``:

- on the photo itself: any level found is a false positive (none of these photos was clipped
  below its top code; those that reach 255 are the dtype's range's business, which the rule does
  not touch);
- on the photo clipped at each of --levels (8-bit; for 16-bit the level times 257, and 65280, a RAW
  developer's 255 x 256) in every channel: whether the level was found in each channel that was
  clipped there, in the channels no value reached it whether none was, and the share of pixels
  the run's detection marks clipped against the share that truly was.

It also reports the statistics the thresholds were set from: for channels whose top code is below
the dtype's top, how many values sit on that code (count, share, ratio to its band's average).
Writes ``benchmarks/results/integer_levels.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks import _machine
from libdeclip import read_image
from libdeclip.mask import (
    INT_BAND,
    INT_BAND_CODES,
    INT_MIN_LEVEL,
    INT_PILE_UP_PIXELS,
    INT_PILE_UP_SHARE,
    INT_SPIKE_RATIO,
    band_evidence,
    clip_mask,
    levels_from_data,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("eval/kodak24", "eval/cbsd68", "clipped/hdrcnn", "clipped/singlehdr")


def photos(data: Path) -> list[tuple[str, np.ndarray]]:
    out = []
    for folder in SETS:
        for path in sorted((data / folder).glob("*")):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
                pixels = read_image(path).pixels
                out.append((f"{folder}/{path.name}", pixels.reshape(*pixels.shape[:2], -1)[..., :3]))
    return out


def top_statistics(rgb: np.ndarray) -> list[tuple[int, float, float]]:
    """(values on the top code, their share, ratio to the band's average) of each channel whose
    top is below the dtype's top code: what the rule weighs (``libdeclip.mask.band_evidence``)."""
    top_code = int(np.iinfo(rgb.dtype).max)
    rows = []
    for c in range(rgb.shape[2]):
        values = rgb[..., c]
        top = int(values.max())
        if top >= top_code:
            continue
        on_top = int(np.count_nonzero(values == top))
        average, _ = band_evidence(values, top, top_code)
        rows.append((on_top, on_top / values.size, on_top / average if average else float("inf")))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--levels", type=int, nargs="+", default=[235, 245, 250, 254])
    args = ap.parse_args(argv)
    if not (args.data / "eval").is_dir():
        print(f"error: {args.data}/eval is not there (../shared/data)", file=sys.stderr)
        return 2
    pictures = photos(args.data)
    lines = [
        "# Clip levels of integer pictures, found in their values",
        "",
        f"`python -m benchmarks.integer_levels` ({len(pictures)} photos: {', '.join(SETS)}; "
        f"{_machine.describe()}).",
        "",
        f"Rule (`libdeclip.mask`): a channel whose top code is below the dtype's top and at least "
        f"{INT_MIN_LEVEL:g} of it, with at least {INT_PILE_UP_SHARE:g} of its values and "
        f"{INT_PILE_UP_PIXELS} of them on that code, {INT_SPIKE_RATIO:g} times the average of the "
        f"occupied codes of the {INT_BAND} 8-bit steps below it, of which at least {INT_BAND_CODES} "
        "are occupied.",
        "",
    ]
    stats: list[tuple[int, float, float]] = []
    false_positive: dict[str, list[str]] = {"8-bit": [], "16-bit": []}
    found_rows = []
    for depth, scale in (("8-bit", 1), ("16-bit", 257)):
        hits = misses = few = extra = 0
        true_share = found_share = 0.0
        for name, rgb8 in pictures:
            rgb = rgb8 if scale == 1 else rgb8.astype(np.uint16) * 257
            if scale == 1:
                stats += top_statistics(rgb)
            if levels_from_data(rgb) is not None:
                false_positive[depth].append(name)
            levels = [lv * scale for lv in args.levels] + ([65280] if scale == 257 else [])
            for level in levels:
                clipped = np.minimum(rgb, level).astype(rgb.dtype)
                found = levels_from_data(clipped)
                reached = [bool((rgb[..., c] >= level).any()) for c in range(3)]
                for c in range(3):
                    got = found.high[c] if found is not None else None
                    if reached[c]:
                        hits += got == level
                        on_level = int(np.count_nonzero(rgb[..., c] >= level))
                        sparse = on_level < max(INT_PILE_UP_PIXELS, INT_PILE_UP_SHARE * rgb[..., c].size)
                        few += got != level and sparse
                        misses += got != level and not sparse
                    elif got is not None and got < np.iinfo(rgb.dtype).max:
                        extra += 1
                true_share += float((rgb >= level).any(axis=2).mean())
                found_share += float(clip_mask(clipped)[1].any)
        cases = len(pictures) * len(levels)
        found_rows.append((depth, ", ".join(map(str, levels)), hits, few, misses, extra,
                           100 * true_share / cases, 100 * found_share / cases))
    lines += [
        "## False positives (the photos as they are)",
        "",
        "| pixels | photos | a level found |",
        "| --- | ---: | --- |",
    ]
    for depth, names in false_positive.items():
        listed = f": {', '.join(names)}" if names else ""
        lines.append(f"| {depth} | {len(pictures)} | {len(names)}{listed} |")
    lines += [
        "",
        "## The photos clipped at a level below the top code",
        "",
        "Channel counts over every photo and level: the level found where a channel was clipped "
        "there (found), not found where fewer values than the rule asks for reached it (too few: "
        "by design) or where enough did (missed), and a level found where no value of a channel "
        "reached it (extra). "
        "Pixels marked clipped: the run's detection (with its tolerance) against the pixels that "
        "truly reached the level, mean over the cases.",
        "",
        "| pixels | levels | found | too few | missed | extra | truly clipped | marked clipped |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for depth, levels_text, hits, few, misses, extra, true_pct, found_pct in found_rows:
        lines.append(f"| {depth} | {levels_text} | {hits} | {few} | {misses} | {extra} | {true_pct:.2f}% | "
                     f"{found_pct:.2f}% |")
    counts = np.array([s[0] for s in stats]) if stats else np.zeros(1)
    shares = np.array([s[1] for s in stats]) if stats else np.zeros(1)
    ratios = np.array([s[2] for s in stats if np.isfinite(s[2])]) if stats else np.zeros(1)
    lines += [
        "",
        "## What the thresholds were set from",
        "",
        f"The 8-bit photos' channels whose top code is below 255: {len(stats)}. Values on that code: "
        f"at most {int(counts.max())} (share at most {shares.max():.2g}); ratio to the band's "
        f"average at most {ratios.max() if ratios.size else 0:.2g}. The rule asks for "
        f"{INT_PILE_UP_PIXELS} values, a share of {INT_PILE_UP_SHARE:g} and a ratio of "
        f"{INT_SPIKE_RATIO:g}.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "integer_levels.md").write_text("\n".join(lines))
    print("\n".join(lines))
    failed = sum(len(v) for v in false_positive.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
