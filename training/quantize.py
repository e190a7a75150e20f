"""Deployment variants of an exported model: int8 for CPUs, float16 for GPUs.

    python -m training.quantize MODEL.onnx --int8 OUT-int8.onnx [--fp16 OUT-fp16.onnx]
        [--data ../shared/data/train] [--crops 64] [--seed 0]

int8: ONNX Runtime's static quantisation (QDQ, weights per channel in 7 bits, so that CPUs with and
without VNNI compute the same thing: see ``make_int8``), its activation ranges
calibrated on clipped crops of *training* photos drawn as in training (the paper's protocol and the
camera-like one, 256 x 256, with the mask channels where the model takes them), then its graph
rewritten by :mod:`training.int8_layout` (the same integers, fewer bytes moved). float16: every
weight and activation in float16, the input and output tensors kept float32, so the runtime feeds
both variants as it feeds the float32 model. Both keep the model's metadata, with ``precision``
and ``variant_of`` (the float32 file's sha256) added; both are compared with the float32 model on
the calibration crops, and the largest difference is printed and recorded in the metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from training.data import ClipSampler, ClipSpec, PriorSampler
from training.export import set_metadata, sha256_file
from training.int8_layout import rewrite

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "train"


Feeds = dict[str, np.ndarray]


def calibration_crops(model_channels: int, data: Path, crops: int, seed: int) -> list[Feeds]:
    """``crops`` model inputs (``clipped`` 1 x C x 256 x 256, and for a prior-input model its
    ``context``) from training photos, drawn as in training."""
    spec = ClipSpec(quantise=True, jpeg_quality=(75, 98), jpeg_probability=0.4, flips=True,
                    camera_probability=0.5, mask_channels=model_channels >= 6)
    if model_channels == 12:  # v3: whole photos clipped, their estimates computed, then cropped
        prior = PriorSampler(data, crop=256, batch=1, spec=spec, seed=seed, pool=max(1, crops // 4),
                             block_steps=crops)
        return [{"clipped": b[0].numpy(), "context": b[2].numpy()} for b in map(prior.batch_at, range(crops))]
    sampler = ClipSampler(data, crop=256, batch=1, seed=seed, spec=spec)
    return [{"clipped": sampler.batch_at(i)[0].numpy()} for i in range(crops)]


def _session(path: Path | str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _largest_difference(reference: Path, variant: Path, inputs: list[Feeds]) -> float:
    a, b = _session(reference), _session(variant)
    return max(float(np.abs(a.run(["residual"], x)[0] - b.run(["residual"], x)[0]).max()) for x in inputs)


def _with_metadata(proto: Any, source: Any, extra: dict[str, str]) -> Any:
    props = {p.key: p.value for p in source.metadata_props} | extra
    set_metadata(proto, props, "libdeclip training.quantize")
    return proto


def _save_checked(proto: Any, out: Path) -> Path:
    import onnx

    onnx.checker.check_model(proto)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    return tmp


def make_int8(model: Path, out: Path, inputs: list[Feeds], layout: bool = True) -> float:
    """Write ``model``'s int8 variant to ``out``; with ``layout`` (the default) its graph is
    rewritten by :mod:`training.int8_layout` (the same integers, fewer bytes moved). Returns the
    largest residual difference from float32 on ``inputs``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> Feeds | None:
            return next(self.items, None)

    source = onnx.load(str(model))
    # A v3 graph ends in its output form (the base estimate chosen, the residual added, the
    # projection outward, the difference from the picture): elementwise float work on values
    # beyond the clip range, where 8 bits would cost precision for no speed. Only the network
    # (the "body") is quantised.
    prior = {p.key: p.value for p in source.metadata_props}.get("input_channels", "").count(",") == 11
    exclude = [n.name for n in source.graph.node if prior and not n.name.startswith("/model/body/")]
    with tempfile.TemporaryDirectory() as tmpdir:
        pre, quantised = Path(tmpdir) / "pre.onnx", Path(tmpdir) / "int8.onnx"
        # the shapes are dynamic: symbolic shape inference cannot finish, ONNX's own is enough
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
        cwd = os.getcwd()
        os.chdir(tmpdir)  # the calibrator writes scratch files into the working folder
        try:
            # reduce_range: weights in 7 bits. ONNX Runtime's uint8 x int8 kernels on CPUs without
            # VNNI (AVX2: most laptops) add pairs of products in 16 bits, which saturate with
            # 8-bit weights: v2-int8 quantised without it was within 0.044 of float32 on a VNNI
            # CPU and 0.30 on an AVX2 one; with it, 0.047 on AVX2 at the same speed.
            quantize_static(
                str(pre), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
            )
        finally:
            os.chdir(cwd)
        proto = onnx.load(str(quantised))
        extra = {}
        if layout:
            proto, made = rewrite(proto)
            extra["int8_layout"] = made
            onnx.save(proto, str(quantised))
        diff = _largest_difference(model, quantised, inputs)
        proto = _with_metadata(proto, source, extra | {
            "precision": "int8",
            "variant_of": sha256_file(model),
            "quantisation": (
                f"ONNX Runtime static quantisation, QDQ, uint8 activations, int8 weights per channel in "
                f"7 bits (reduce_range: no 16-bit saturation on CPUs without VNNI), "
                f"calibrated (min/max) on {len(inputs)} clipped 256 x 256 crops of training photos; "
                f"largest residual difference from float32 on them {diff:.4f}"
            ),
        })
    os.replace(_save_checked(proto, out), out)
    return diff


def _topological(proto: Any) -> Any:
    """Reorder the graph's nodes so each comes after the nodes it reads from (the float16
    converter puts the input casts last, which ONNX's checker refuses)."""
    graph = proto.graph
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ValueError("the float16 graph has a cycle or an input that nothing produces")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
    return proto


def make_fp16(model: Path, out: Path, inputs: list[Feeds]) -> float:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    source = onnx.load(str(model))
    proto = _topological(convert_float_to_float16(onnx.load(str(model)), keep_io_types=True))
    tmp = _save_checked(proto, out)
    diff = _largest_difference(model, tmp, inputs)
    proto = _with_metadata(onnx.load(str(tmp)), source, {
        "precision": "float16",
        "variant_of": sha256_file(model),
        "quantisation": (
            "weights and activations float16, input and output float32; largest residual difference "
            f"from float32 on {len(inputs)} clipped crops of training photos {diff:.4f}"
        ),
    })
    tmp.unlink()
    os.replace(_save_checked(proto, out), out)
    return diff


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="float32 model exported by training.export")
    p.add_argument("--int8", type=Path, help="write the int8 variant here")
    p.add_argument("--fp16", type=Path, help="write the float16 variant here")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training photos (never the eval sets)")
    p.add_argument("--crops", type=int, default=64, help="calibration crops (default 64)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (args.int8 or args.fp16):
        p.error("nothing to do: give --int8 and/or --fp16")
    try:
        import onnx

        if not args.model.is_file():
            raise FileNotFoundError(f"model not found: {args.model}")
        channels = len({p.key: p.value for p in onnx.load(str(args.model)).metadata_props}
                       .get("input_channels", "R,G,B").split(","))
        inputs = calibration_crops(channels, args.data, args.crops, args.seed)
        if args.int8:
            diff = make_int8(args.model, args.int8, inputs)
            print(f"wrote {args.int8}: largest residual difference from float32 {diff:.4f}")
        if args.fp16:
            diff = make_fp16(args.model, args.fp16, inputs)
            print(f"wrote {args.fp16}: largest residual difference from float32 {diff:.4f}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
