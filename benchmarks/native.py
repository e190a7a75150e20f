"""The native core against its numpy reference on a 24-megapixel 16-bit photo, and the memory of
the whole pipeline.

    python -m benchmarks.native [--repeat 3] [--out benchmarks/results/native.md]

The photo is a 6000 x 4000 mosaic of the real HDR-CNN photos in ../shared/data/clipped/hdrcnn
(8-bit, real blown highlights), scaled to 16 bits (x257). Each row times one stage both ways
(best of --repeat runs, more for calls under half a second; all cores): clip detection, feather
weights, conversion into and out of model space (Adobe RGB, so the curves and matrices run),
gathering every tile with its halo into model layout, and the composite after the model
(recover + fit + write into uint16) with a fixed residual standing in for the model's output, so
that only the pixel loops are timed. The last part
runs the real model on the photo in a fresh process and reports peak memory above the level
reached after loading the photo and a warm-up run (ONNX Runtime's arena).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import libdeclip
from benchmarks import _machine
from libdeclip import Declipper
from libdeclip.color import ColorSpace, from_model, get_colorspace, to_model
from libdeclip.engine import automatic_model
from libdeclip.fit import Fit
from libdeclip.io import read_image
from libdeclip.mask import clip_masks, feather_weights
from libdeclip.tilerun import gather_window
from tests import reference  # the numpy oracles live with the tests (run from the repository root)

REPO = Path(__file__).resolve().parent.parent

DATA = REPO.parent / "shared" / "data" / "clipped" / "hdrcnn"
SIZE = (4000, 6000)


def mosaic_24mp() -> np.ndarray:
    photos = [read_image(p).pixels[..., :3] for p in sorted(DATA.glob("*.png"))]
    if not photos:
        raise SystemExit(f"error: no photos in {DATA}")
    h, w = photos[0].shape[:2]
    rows = [
        np.concatenate([photos[(r * 7 + c) % len(photos)][:h, :w] for c in range(-(-SIZE[1] // w))], axis=1)
        for r in range(-(-SIZE[0] // h))
    ]
    return np.concatenate(rows, axis=0)[: SIZE[0], : SIZE[1]].astype(np.uint16) * 257


#: Calls faster than this are repeated until they add up to it (as timeit's autorange does): one
#: 10 ms call on a shared machine is mostly noise.
SHORT_CALL_BUDGET = 0.5


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` calls, or of more while they add up to :data:`SHORT_CALL_BUDGET`."""
    times: list[float] = []
    while len(times) < repeat or (sum(times) < SHORT_CALL_BUDGET and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


#: The residual of the stand-in model: the pipeline's pixel loops timed without the network.
FIXED_RESIDUAL = 0.05


def fixed_residual(batch: np.ndarray) -> np.ndarray:
    """The numpy reference's engine: :data:`FIXED_RESIDUAL` everywhere."""
    return np.full((len(batch), 3) + batch.shape[2:], FIXED_RESIDUAL, dtype=np.float32)


def constant_model(path: Path) -> Path:
    """An ONNX model with the default model's contract (its inputs, receptive field, metadata)
    whose residual is :data:`FIXED_RESIDUAL` everywhere: a model file, so the pipeline runs it
    through the public API as it runs any model, at the cost of one pass over each window."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    like = onnx.load(str(automatic_model("cpu")))
    consts = [numpy_helper.from_array(np.array(v, dtype), name) for name, v, dtype in
              (("starts", [0], np.int64), ("ends", [3], np.int64), ("axes", [1], np.int64),
               ("zero", 0.0, np.float32), ("value", FIXED_RESIDUAL, np.float32))]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["clipped", "starts", "ends", "axes"], ["rgb"]),
         helper.make_node("Mul", ["rgb", "zero"], ["none"]),
         helper.make_node("Add", ["none", "value"], ["residual"])],
        "constant_residual", list(like.graph.input),
        [helper.make_tensor_value_info("residual", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for prop in like.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(model, str(path))
    return path


def _memory_probe(path: Path, model: Path | None) -> tuple[float, float, float]:
    """(RSS before the run, peak during it, image size), in MB, in a fresh process.

    Before the run, the photo is loaded and a 1600 x 1600 crop declipped, so ONNX Runtime's arena
    already holds a full interior tile's buffers. ``model``: the constant-residual stand-in
    (:func:`constant_model`), so that what remains is the pipeline's own memory; None: the default.
    """
    code = f"""
import tifffile
from libdeclip import Declipper
image = tifffile.imread({str(path)!r})
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
with Declipper({None if model is None else str(model)!r}, device="cpu") as s:
    s.run(image[:1600, :1600])
    before = rss("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # VmHWM: the peak from here on
    out = s.run(image)
    print(before, rss("VmHWM"), image.nbytes / 2**20)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    before, peak, size = (float(v) for v in proc.stdout.split())
    return before, peak, size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.native", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "native.md")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"error: {DATA} not found", file=sys.stderr)
        return 2
    image = mosaic_24mp()
    mp = image.shape[0] * image.shape[1] / 1e6
    low, high = np.zeros(3), np.full(3, 65535.0)
    tol = 1 / 255
    adobe = get_colorspace("adobe-rgb")
    rows: list[tuple[str, float, float]] = []

    def compare(name: str, native: Callable[[], object], numpy: Callable[[], object]) -> None:
        t_native, t_numpy = best(native, args.repeat), best(numpy, max(1, args.repeat - 1))
        rows.append((name, t_native, t_numpy))
        print(f"{name}: native {t_native:.3f} s, numpy {t_numpy:.3f} s", flush=True)

    compare(
        "clip detection",
        lambda: clip_masks(image, low, high, tol),
        lambda: reference.clip_masks(image, low, high, tol),
    )
    lo, hi = clip_masks(image, low, high, tol)
    clipped = (hi | lo).any(axis=2)
    del hi, lo
    print(f"clipped pixels: {clipped.mean():.1%}")
    compare("feather weights (radius 2)", lambda: feather_weights(clipped, 2),
            lambda: reference.feather_weights(clipped, 2))
    values = image.astype(np.float64) / 65535.0
    compare("to model space (Adobe RGB)", lambda: to_model(values, adobe),
            lambda: reference.to_model(values, adobe))
    compare("from model space (Adobe RGB)", lambda: from_model(values, adobe),
            lambda: reference.from_model(values, adobe))

    with Declipper(device="cpu") as session:
        plan = session.plan(*image.shape[:2])

        def gather_native(cs: ColorSpace) -> None:
            for t in plan:
                out = np.empty((3,) + t.window_shape, np.float32)
                gather_window(image, low.tolist(), high.tolist(), cs.native, t, out)

        def gather_numpy(cs: ColorSpace) -> None:
            for t in plan:
                win = (reference.window_of(plan, image, t).astype(np.float64) - low) * (1.0 / (high - low))
                reference.to_model(win, cs).transpose(2, 0, 1).astype(np.float32)

        for name, cs in [("Adobe RGB", adobe), ("sRGB", get_colorspace("srgb"))]:
            compare(
                f"gather tiles into model layout ({name})",
                lambda cs=cs: gather_native(cs),  # type: ignore[misc]
                lambda cs=cs: gather_numpy(cs),  # type: ignore[misc]
            )
    with tempfile.TemporaryDirectory() as tmp, \
            Declipper(constant_model(Path(tmp) / "constant.onnx"), device="cpu") as stand_in:
        srgb = get_colorspace("srgb")
        compare(
            "whole pipeline but the model (gather, recover, fit, write uint16; sRGB)",
            lambda: stand_in.run(image),
            lambda: reference.declip(fixed_residual, image, plan, low, high, tol, 0, srgb, Fit.COMPRESS),
        )
    info = libdeclip.build_info()
    lines = [
        f"Machine: {_machine.describe()}; recorded {datetime.date.today().isoformat()}; "
        "command: `python -m benchmarks.native`",
        "",
        f"24 MP 16-bit photo ({image.shape[1]} x {image.shape[0]}, {clipped.mean():.1%} of pixels clipped); "
        f"{info['native_threads']} threads; pow: {info['pow']}; "
        f"best of {args.repeat} (numpy: {max(1, args.repeat - 1)}; calls under {SHORT_CALL_BUDGET} s: "
        f"as many as fit in {SHORT_CALL_BUDGET} s, up to 50).",
        "",
        "| stage | native (s) | numpy reference (s) | speed-up | native MP/s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.3f} | {b:.3f} | {b / a:.1f}x | {mp / a:.0f} |" for n, a, b in rows]
    if not args.skip_memory:
        import tifffile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mosaic_24mp.tif"
            tifffile.imwrite(path, image, photometric="rgb")
            lines += [
                "",
                "Peak memory of `Declipper.run` on the photo, in a fresh process, above the RSS reached "
                "after loading it and declipping a 1600 x 1600 crop (ONNX Runtime's arena then holds a "
                "full tile):",
                "",
                "| engine | RSS before (MB) | peak (MB) | extra (MB) | extra / image size |",
                "|---|---|---|---|---|",
            ]
            engines: list[tuple[Path | None, str]] = [
                (constant_model(Path(tmp) / "constant.onnx"), "constant residual (the pipeline alone)"),
                (None, f"the default model ({automatic_model('cpu').stem})"),
            ]
            for model, label in engines:
                before, peak, size = _memory_probe(path, model)
                extra = peak - before
                lines.append(f"| {label} | {before:.0f} | {peak:.0f} | {extra:.0f} | {extra / size:.2f}x |")
                print(lines[-1], flush=True)
            lines.append(f"\nImage size: {image.nbytes / 2**20:.0f} MB.")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
