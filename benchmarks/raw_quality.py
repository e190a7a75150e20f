"""Camera RAW highlight recovery against ground truth: libdeclip versus LibRaw's and darktable's modes.

    python -m benchmarks.raw_quality [--levels 0.3 0.5 0.7] [--no-darktable] [--models NAME_OR_FILE ...]

Pairs are made in RAW space from the real files in ../shared/data/raw. The photosites are clipped at
a lowered white level T = black + f * (highest photosite - black), for each f in --levels, and
written as a DNG whose WhiteLevel is T (the clipped file); the same photosites unclipped, with the
original white level, are the truth (written the same way, so both go through the same reader).
Every method develops the clipped file:

- libdeclip: `read_image` (mask from the photosites), then `Declipper.repair` as `libdeclip declip` runs it:
  the network (the default model, and v1 for comparison) on the white-balanced picture with each
  channel's own clip level, `--method inpaint-opposed` on the photosites, and the default for RAW,
  `opposed+declipnet` (the photosite estimate where a channel survives, the network where all
  three are clipped); with `--models`, the network path of each of those models too, alone and in
  `opposed+declipnet` (two rows each, e.g. `--models declipnet-v3`);
- LibRaw through rawpy: highlight modes Clip, Blend and Reconstruct (level 5);
- darktable-cli (when installed): highlight reconstruction modes clip, inpaint opposed, reconstruct
  in LCh, reconstruct color, guided laplacians (segmentation equals inpaint opposed with its
  defaults, so it is left out);
- "no repair": the clipped file developed as it is.

The truth is developed by libdeclip's development of the truth file (LibRaw AHD, the same camera
matrix and white balance), in the clipped file's units. Each method's output, in its own linear
RGB and scale, is mapped onto the truth by a per-channel gain fitted (least squares) on pixels far
from any clipped photosite. The comparison covers, for every method alike, channel c of the pixels
whose 3 x 3 neighbourhood holds a clipped photosite of colour c, less pixels clipped in the
original file too (no truth there), split into
"some channel survives" and "all channels clipped". Linear: PSNR with the truth's peak as 1.
Display: both scaled so that the truth's peak is white, sRGB-encoded; PSNR and CIEDE2000.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from libdeclip import Declipper, read_image, write_image
from libdeclip.color import get_colorspace, to_model
from libdeclip.io import Image, dng
from libdeclip.options import COMBINED

REPO = Path(__file__).resolve().parent.parent
RAW_DIR = REPO.parent / "shared" / "data" / "raw"
RESULTS = REPO / "benchmarks" / "results"
#: (file, crop rows, crop cols): crops keep the Bayer phase (even offsets) and the run short.
SOURCES = [
    ("tinydng_colorchart.dng", None, None),
    ("imageio_Blackmagic.dng", (576, 1600), (1024, 2560)),
    ("rawpy_RAW_KODAK_DC50.KDC", None, None),
    ("photoprism_canon_eos_6d.dng", None, None),
]
_FAR = 8  # pixels from a clipped value beyond which a pixel counts for the gain fit


@dataclass
class Pair:
    name: str
    level: float
    clipped_path: Path
    truth: np.ndarray  # linear sRGB (camera matrix), clipped file's units
    clipped: Image  # the clipped file as libdeclip reads it
    region: np.ndarray  # H x W x 3 bool: values to judge


def _write_pair(source: Path, rows: tuple[int, int] | None, cols: tuple[int, int] | None, level: float,
                folder: Path) -> tuple[Path, Path]:
    """A clipped DNG and its truth DNG from a real RAW file's photosites (or linear data)."""
    import rawpy

    image = read_image(source)
    info = image.raw
    assert info is not None
    with rawpy.imread(str(source)) as raw:
        data = raw.raw_image_visible.copy()
    if info.cfa_pattern is None:
        data = data[..., :3]
    ys = slice(*rows) if rows else slice(None)
    xs = slice(*cols) if cols else slice(None)
    data = data[ys, xs]
    black = min(info.black)
    top = float(data.max())
    threshold = int(round(black + level * (top - black)))
    neutral = 1.0 / np.array(info.wb)
    paths = []
    for tag, white, values in [
        ("clipped", threshold, np.minimum(data, threshold)),
        ("truth", int(max(info.white)), data),
    ]:
        if info.cfa_pattern is None:
            blacks = list(info.black)
        else:  # one black per photosite of the 2 x 2 repeat, in pattern order
            blacks = [info.black["RGB".index(c)] for c in info.cfa_pattern]
        desc = dng.DngDescription(
            black=blacks, white=[white], color_matrix_1=np.array(info.xyz_to_cam).reshape(3, 3),
            as_shot_neutral=neutral / neutral.max(), make=info.make, model=info.model,
            carried=list(info.dng_colour_tags),
        )
        path = folder / f"{source.stem}_{level:.1f}_{tag}.dng"
        dng.write_dng(str(path), values.astype(np.uint16), desc, cfa_pattern=info.cfa_pattern)
        paths.append(path)
    return paths[0], paths[1]


def _clipped_region(path: Path, image: Image) -> np.ndarray:
    """Values judged, the same for every method: channel c of every pixel whose 3 x 3
    neighbourhood holds a clipped photosite of colour c (for linear data: the clipped values)."""
    import rawpy

    from libdeclip.io.raw import dilate

    info = image.raw
    assert info is not None
    with rawpy.imread(str(path)) as raw:
        data = raw.raw_image_visible
        if info.cfa_pattern is None:
            return data[..., :3] >= np.array(info.white)
        colours = np.array(["RGB".index(c) for c in raw.color_desc.decode()[:4]])[raw.raw_colors_visible]
        sites = data >= np.array(info.white)[colours]
    return np.stack([dilate(sites & (colours == k), 1) for k in range(3)], axis=2)


def _linear_srgb(image: Image, pixels: np.ndarray) -> np.ndarray:
    assert image.raw is not None
    return pixels[..., :3].astype(np.float64) @ image.raw.colorspace.to_linear_srgb.T


def make_pair(source: Path, rows: tuple[int, int] | None, cols: tuple[int, int] | None, level: float,
              folder: Path) -> Pair:
    clipped_path, truth_path = _write_pair(source, rows, cols, level, folder)
    clipped = read_image(clipped_path)
    truth_image = read_image(truth_path)
    assert clipped.raw is not None and truth_image.raw is not None and clipped.raw_mask is not None
    assert truth_image.raw_mask is not None
    truth = _linear_srgb(clipped, truth_image.pixels * (truth_image.raw.span / clipped.raw.span))
    truth_clipped = _clipped_region(truth_path, truth_image).any(axis=2, keepdims=True)
    region = _clipped_region(clipped_path, clipped) & ~truth_clipped
    return Pair(f"{source.name}", level, clipped_path, truth, clipped, region)


# ----------------------------------------------------------------------------------- methods


def libdeclip_method(session: Declipper | None, method: str = "declipnet") -> Callable[[Pair], np.ndarray]:
    on = session if session is not None else Declipper(load=False)  # a classical method loads no model

    def run(pair: Pair) -> np.ndarray:
        return _linear_srgb(pair.clipped, on.repair(pair.clipped, method=method).pixels)

    return run


def no_repair(pair: Pair) -> np.ndarray:
    return _linear_srgb(pair.clipped, pair.clipped.pixels)


def rawpy_method(mode: str) -> Callable[[Pair], np.ndarray]:
    def run(pair: Pair) -> np.ndarray:
        import rawpy

        hl = {"clip": rawpy.HighlightMode.Clip, "blend": rawpy.HighlightMode.Blend,
              "reconstruct": rawpy.HighlightMode.Reconstruct(5)}[mode]
        with rawpy.imread(str(pair.clipped_path)) as raw:
            rgb = raw.postprocess(
                demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, use_camera_wb=True, highlight_mode=hl,
                output_color=rawpy.ColorSpace.sRGB, gamma=(1, 1), no_auto_bright=True, output_bps=16,
                user_flip=0,
            )
        return rgb.astype(np.float64) / 65535.0

    return run


def darktable_method(mode: str, workdir: Path) -> Callable[[Pair], np.ndarray]:
    from benchmarks import _darktable

    def run(pair: Pair) -> np.ndarray:
        return _darktable.develop(pair.clipped_path, mode, workdir).astype(np.float64)

    return run


def darktable_plugin_method(session: Declipper, workdir: Path) -> Callable[[Pair], np.ndarray]:
    """What a darktable user gets from the plug-in's default (plugins/darktable/libdeclip.lua): the
    RAW's default repair written as a linear DNG (``libdeclip declip`` of the RAW), developed by
    darktable with highlight reconstruction off, as the plug-in's sidecar sets it."""
    from benchmarks import _darktable

    def run(pair: Pair) -> np.ndarray:
        dng = workdir / f"{pair.clipped_path.stem}_declip.dng"
        write_image(dng, session.repair(pair.clipped, method=COMBINED), overwrite=True)
        try:
            return _darktable.develop(dng, "opposed", workdir, highlights=False).astype(np.float64)
        finally:
            dng.unlink(missing_ok=True)

    return run


# ----------------------------------------------------------------------------------- metrics


def _far_from_clipping(mask: np.ndarray) -> np.ndarray:
    from libdeclip.io.raw import dilate

    return ~dilate(np.asarray(mask.any(axis=2)), _FAR)


def align(pair: Pair, output: np.ndarray) -> np.ndarray:
    """The output mapped onto the truth by a per-channel gain fitted away from clipping."""
    if output.shape != pair.truth.shape:
        raise ValueError(f"{pair.name}: output {output.shape} is not the truth's {pair.truth.shape}")
    assert pair.clipped.raw_mask is not None
    far = _far_from_clipping(pair.clipped.raw_mask)
    fitted = np.empty_like(output)
    for c in range(3):
        o, t = output[..., c][far], pair.truth[..., c][far]
        keep = (t > 0.01) & (t < 0.9)
        gain = float(np.dot(o[keep], t[keep]) / max(np.dot(o[keep], o[keep]), 1e-12))
        fitted[..., c] = output[..., c] * gain
    return fitted


def _display(x: np.ndarray, peak: float) -> np.ndarray:
    return to_model(np.clip(x / peak, 0.0, 1.0), get_colorspace("linear-srgb"))


def metrics(pair: Pair, output: np.ndarray) -> dict[str, float]:
    from skimage.color import deltaE_ciede2000, rgb2lab

    peak = float(pair.truth.max())
    row: dict[str, float] = {}
    all3 = pair.region.all(axis=2)
    some = pair.region.any(axis=2) & ~all3
    disp_out, disp_truth = _display(output, peak), _display(pair.truth, peak)
    lab_out, lab_truth = rgb2lab(disp_out), rgb2lab(disp_truth)
    for name, pixels in [("some", some), ("all", all3)]:
        n = int(pixels.sum())
        row[f"{name}_pixels"] = n
        if n == 0:
            continue
        lin = float(np.mean((output[pixels] / peak - pair.truth[pixels] / peak) ** 2))
        disp = float(np.mean((disp_out[pixels] - disp_truth[pixels]) ** 2))
        row[f"{name}_psnr_linear"] = float(10 * np.log10(1.0 / max(lin, 1e-12)))
        row[f"{name}_psnr_srgb"] = float(10 * np.log10(1.0 / max(disp, 1e-12)))
        row[f"{name}_ciede2000"] = float(np.mean(deltaE_ciede2000(lab_out[pixels], lab_truth[pixels])))
    return row


def save_grid(pair: Pair, outputs: dict[str, np.ndarray], path: Path, size: int = 192) -> None:
    """Crops around the pair's largest clipped area: truth, then each method (display scaling)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    peak = float(pair.truth.max())
    weight = pair.region.all(axis=2).astype(np.float64) + 0.2 * pair.region.any(axis=2)
    h, w = weight.shape
    s = min(size, h, w)
    step = max(1, s // 4)
    best, at = -1.0, (0, 0)
    csum = weight.cumsum(0).cumsum(1)
    for y in range(0, h - s + 1, step):
        for x in range(0, w - s + 1, step):
            total = csum[y + s - 1, x + s - 1] - (csum[y - 1, x + s - 1] if y else 0) - (
                csum[y + s - 1, x - 1] if x else 0) + (csum[y - 1, x - 1] if x and y else 0)
            if total > best:
                best, at = total, (y, x)
    y, x = at
    tiles = [("truth", pair.truth)] + list(outputs.items())
    grid = PILImage.new("RGB", (s * len(tiles), s + 14), "white")
    draw = ImageDraw.Draw(grid)
    for i, (name, img) in enumerate(tiles):
        crop = _display(img[y : y + s, x : x + s], peak)
        grid.paste(PILImage.fromarray(np.rint(crop * 255).astype(np.uint8)), (i * s, 14))
        draw.text((i * s + 2, 1), name[:28], fill="black")
    grid.save(path)


# -------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.raw_quality", description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--no-darktable", action="store_true", help="leave darktable's modes out")
    p.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                   help="more models (names or ONNX files), each a row of its own network path")
    p.add_argument("--out", type=Path, default=RESULTS / "raw_quality.md",
                   help="the table; the per-pair CSV and the picture grid go beside it")
    args = p.parse_args(argv)
    if not RAW_DIR.is_dir():
        print(f"error: {RAW_DIR} not found", file=sys.stderr)
        return 2
    from benchmarks import _darktable

    dt_version = None if args.no_darktable else _darktable.darktable_version()
    results: list[dict[str, object]] = []
    from contextlib import ExitStack

    with (tempfile.TemporaryDirectory() as tmp, Declipper(device="cpu") as session,
          Declipper("declipnet-v1", device="cpu") as v1, ExitStack() as extra):
        more = [extra.enter_context(Declipper(m, device="cpu")) for m in args.models]
        folder = Path(tmp)
        methods: dict[str, Callable[[Pair], np.ndarray]] = {
            "no repair": no_repair,
            "LibRaw Clip": rawpy_method("clip"),
            "LibRaw Blend": rawpy_method("blend"),
            "LibRaw Reconstruct(5)": rawpy_method("reconstruct"),
        }
        if dt_version:
            dt_names = {"clip": "clip", "opposed": "inpaint opposed", "lch": "reconstruct in LCh",
                        "inpaint": "reconstruct color", "laplacian": "guided laplacians"}
            for mode, label in dt_names.items():
                methods[f"darktable {label}"] = darktable_method(mode, folder)
        methods["libdeclip inpaint opposed (photosites)"] = libdeclip_method(None, "inpaint-opposed")
        network = f"libdeclip ({session.model_info.path.stem})"
        methods[network] = libdeclip_method(session)
        combined = f"libdeclip {COMBINED} (default)"
        methods[combined] = libdeclip_method(session, COMBINED)
        methods["libdeclip (declipnet-v1)"] = libdeclip_method(v1)
        for other in more:
            stem = other.model_info.path.stem
            methods[f"libdeclip ({stem})"] = libdeclip_method(other)
            methods[f"libdeclip {COMBINED} ({stem})"] = libdeclip_method(other, COMBINED)
        if dt_version:
            methods["libdeclip DNG in darktable (plug-in)"] = darktable_plugin_method(session, folder)
        grid_pair: tuple[int, Pair, dict[str, np.ndarray]] | None = None
        for file, rows, cols in SOURCES:
            for level in args.levels:
                pair = make_pair(RAW_DIR / file, rows, cols, level, folder)
                outputs = {}
                for name, method in methods.items():
                    t0 = time.perf_counter()
                    out = align(pair, method(pair))
                    row: dict[str, object] = {"photo": pair.name, "level": level, "method": name,
                                              "seconds": time.perf_counter() - t0}
                    row.update(metrics(pair, out))
                    results.append(row)
                    outputs[name] = out
                    scores = [f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float) and k != "level"]
                    print(f"{pair.name} f={level}: {name}: {', '.join(scores)}", flush=True)
                n_all = int(pair.region.all(axis=2).sum())
                if grid_pair is None or n_all > grid_pair[0]:
                    grid_pair = (n_all, pair, outputs)
                else:
                    del outputs
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if grid_pair is not None:
            keep = ["no repair", "darktable inpaint opposed", "libdeclip inpaint opposed (photosites)",
                    network, combined]
            save_grid(grid_pair[1], {k: v for k, v in grid_pair[2].items() if k in keep},
                      args.out.with_name(args.out.stem + "_grid.png"))
    keys = sorted({k for r in results for k in r})
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results)
    text = summarise(results, args.levels, dt_version)
    args.out.write_text(text)
    print(text)
    return 0


def summarise(results: list[dict[str, object]], levels: list[float], dt_version: str | None) -> str:
    """Mean of each metric per method over the pairs that have such pixels."""
    methods = list(dict.fromkeys(str(r["method"]) for r in results))
    photos = sorted({str(r["photo"]) for r in results})
    lowered = ", ".join(f"{v:g}" for v in levels)
    lines = [
        f"RAW pairs: {len(photos)} photos x white level lowered to {lowered} of the highest photosite; "
        f"darktable {dt_version or 'not run'}; command: `python -m benchmarks.raw_quality`",
        "",
    ]
    for region, title in [("some", "some channel survives"), ("all", "all channels clipped")]:
        lines += [
            f"**{title}** (mean over pairs; pixels: "
            f"{sum(int(r.get(f'{region}_pixels', 0)) for r in results if r['method'] == methods[0]):,})",  # type: ignore[call-overload]
            "",
            "| method | PSNR linear (dB) | PSNR sRGB (dB) | CIEDE2000 |",
            "|---|---|---|---|",
        ]
        for m in methods:
            rows = [r for r in results if r["method"] == m and f"{region}_psnr_linear" in r]
            if not rows:
                continue
            mean = {k: float(np.mean([float(r[k]) for r in rows]))  # type: ignore[arg-type]
                    for k in (f"{region}_psnr_linear", f"{region}_psnr_srgb", f"{region}_ciede2000")}
            lines.append(f"| {m} | {mean[f'{region}_psnr_linear']:.2f} | {mean[f'{region}_psnr_srgb']:.2f} | "
                         f"{mean[f'{region}_ciede2000']:.2f} |")
        lines.append("")
    # Per pair: where a method wins or loses, which a mean hides.
    shown = [m for m in methods if m.startswith(("no repair", "darktable inpaint", "libdeclip"))]
    for region, title in [("some", "some channel survives"), ("all", "all channels clipped")]:
        lines += [f"**Per pair, {title}: PSNR linear (dB)**", "",
                  "| pair | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
        pairs = list(dict.fromkeys((str(r["photo"]), float(r["level"])) for r in results))  # type: ignore[arg-type]
        for photo, level in pairs:
            cells = []
            for m in shown:
                row = next((r for r in results if r["photo"] == photo and r["level"] == level
                            and r["method"] == m), None)
                value = row.get(f"{region}_psnr_linear") if row else None
                cells.append(f"{float(value):.2f}" if value is not None else "-")  # type: ignore[arg-type]
            lines.append(f"| {photo} f={level:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
