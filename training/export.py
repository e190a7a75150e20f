"""Export a trained generator to the ONNX model contract of ARCHITECTURE.md.

    python -m training.export CHECKPOINT OUT.onnx [--version 1] [--parity-image PHOTO]
        [--training-data TEXT]

Batch normalisation is folded into the convolutions, the graph is checked with ``onnx.checker``,
and ONNX Runtime's output is compared with torch's on a real photo (max abs difference <= 1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from libdeclip import priors
from libdeclip.engine import MASK_CHANNELS, PRIOR_CHANNELS, RGB_CHANNELS, sha256_file
from training.data import load_rgb8, signed_mask
from training.models import PriorGenerator, conv_macs_per_pixel, receptive_field_radius, spatial_multiple
from training.train import generator_from_checkpoint, load_checkpoint

M = TypeVar("M", bound=nn.Module)

CONTRACT = "libdeclip-model-1"
PARITY_TOLERANCE = 1e-4
DEFAULT_PARITY_IMAGE = Path(__file__).resolve().parent.parent / "examples" / "night_lamps.png"
NORMALISATION = (
    "sRGB-encoded float32; per image (v - low) / (high - low) with the clip levels low and high, "
    "so the clipped input spans [0, 1]; reconstruction = clipped + residual, unbounded"
)


def fold_batch_norm(model: M) -> M:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into the layer before it
    (each (convolution, BatchNorm, activation) ``Sequential``, at any depth)."""
    import copy

    folded = copy.deepcopy(model).eval()
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Sequential) and len(child) == 3 and isinstance(child[1], nn.BatchNorm2d):
                layer, bn, act = child
                fused = fuse_conv_bn_eval(layer, bn, transpose=isinstance(layer, nn.ConvTranspose2d))
                setattr(parent, name, nn.Sequential(fused, act))
    return folded


def model_input(rgb: np.ndarray, channels: int) -> np.ndarray:
    """1 x C x H x W model input of an H x W x 3 image on 0..1: RGB, and for a mask-input model the
    signed clip mask at the runtime's default tolerance (1/255); for a prior-input model (12
    channels) also the classical estimates (:func:`libdeclip.priors.estimates`)."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    if channels >= 6:
        x = np.concatenate([x, signed_mask(x, 1.0 / 255.0)])
    if channels == 12:
        mask = x[3:6].transpose(1, 2, 0)
        x = np.concatenate([x, priors.estimates(rgb, mask > 0, mask < 0).transpose(2, 0, 1)])
    return x[None]


def model_context(rgb: np.ndarray) -> np.ndarray:
    """1 x 6 image context of an H x W x 3 image on 0..1, with model_input's mask."""
    mask = signed_mask(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32), 1.0 / 255.0)
    mask = mask.transpose(1, 2, 0)
    return priors.context(rgb, mask > 0, mask < 0)[None]


class _PriorResidual(nn.Module):
    """A v3 generator as the contract's residual: its repaired picture minus the input picture."""

    def __init__(self, model: PriorGenerator) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.model(x, context) - x[:, :3]


def describe_training(ckpt: dict[str, Any], data: str | None = None) -> tuple[str, int]:
    """Human-readable training data (``data`` if given) and the total steps over all stages."""
    history = ckpt["history"]
    if data is not None:
        return data, sum(int(h["steps"]) for h in history)
    steps = sum(int(h["steps"]) for h in history)
    roots = sorted({str(h["data_root"]) for h in history})
    images = max(int(h["images"]) for h in history)
    data = (
        f"{images} photos from {', '.join(roots)} (ImageNet sample, BSDS500 train+test, Sun-Hays 80, "
        "Debian wallpapers; research-only licences), clipped with the DeclipNet protocol"
    )
    return data, steps


# How a mask-input model reads its clip channels (layouts: libdeclip.engine.MASK_CHANNELS).
MASK_ENCODING = (
    "clip_C is +1 where channel C is clipped high, -1 where clipped low, 0 elsewhere: the runtime's "
    "clip mask (its tolerance, or the caller's mask)"
)


def set_metadata(proto: Any, props: dict[str, str], producer: str) -> None:
    """Replace an ONNX model's metadata with ``props`` (the runtime's contract) and name its producer."""
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = producer


def metadata(
    ckpt: dict[str, Any], ckpt_sha: str, version: str, radius: int, model: nn.Module,
    training_data: str | None = None,
) -> dict[str, str]:
    data, steps = describe_training(ckpt, training_data)
    cfg = ckpt["config"]
    channels = int(getattr(model, "in_channels", 3))
    extra = {"mask_encoding": MASK_ENCODING} if channels >= 6 else {}
    if channels == 12:
        extra |= {
            "prior_methods": ",".join(priors.PRIOR_METHODS),
            "prior_encoding": "each method's estimate of the clipped values in model space, projected "
            "outward; the input picture's values elsewhere (libdeclip.priors.estimates)",
            "context_names": ",".join(priors.CONTEXT_NAMES),
            # trained with the photosite estimate on its sensor-space samples: the runtime gives it
            # that estimate on a camera RAW (libdeclip.engine.ModelInfo.raw_prior)
            "raw_prior": "photosite" if cfg.get("sensor_photosite_prior") else "demosaiced",
            "output_form": "residual = repaired - input picture; repaired is outward only by the "
            "network's form (max(picture, base + r) clipped high, min(...) low, picture elsewhere)",
        }
    layouts = {3: RGB_CHANNELS, 6: MASK_CHANNELS, 12: PRIOR_CHANNELS}
    return {
        "contract": CONTRACT,
        "name": "declipnet",
        "version": version,
        "input_name": "clipped",
        "output_name": "residual",
        "input_channels": ",".join(layouts[channels]),
        **extra,
        "output_channels": "R,G,B",
        "layout": "NCHW",
        "normalisation": NORMALISATION,
        "spatial_multiple": str(spatial_multiple(model)),
        "receptive_field_radius": str(radius),
        "generator_layout": str(cfg["layout"]),
        "generator_width": str(getattr(model, "width", cfg["width"])),
        "generator_parameters": str(sum(p.numel() for p in model.parameters())),
        # 2 FLOP per multiply-add, per pixel; x 1e6 pixels / 1e9
        "gflop_per_megapixel": f"{2 * conv_macs_per_pixel(model) / 1e3:.1f}",
        "training_data": data,
        "training_steps": str(steps),
        "training_schedule": json.dumps(ckpt["history"]),
        "checkpoint_sha256": ckpt_sha,
    }


def export(
    checkpoint: Path, out: Path, version: str = "1", parity_image: Path = DEFAULT_PARITY_IMAGE,
    training_data: str | None = None,
) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    ckpt = load_checkpoint(checkpoint)
    model = generator_from_checkpoint(ckpt).eval()
    folded = fold_batch_norm(model)
    radius = receptive_field_radius(model)
    multiple = spatial_multiple(model)
    channels = int(getattr(model, "in_channels", 3))
    prior = isinstance(model, PriorGenerator)
    example: tuple[torch.Tensor, ...] = (torch.zeros(1, channels, 64, 64),)
    graph: nn.Module = folded
    names, axes = ["clipped"], {"clipped": {0: "N", 2: "H", 3: "W"}, "residual": {0: "N", 2: "H", 3: "W"}}
    if prior:
        assert isinstance(folded, PriorGenerator)
        graph = _PriorResidual(folded)
        example += (torch.zeros(1, model.context_size),)
        names.append("context")
        axes["context"] = {0: "N"}
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        graph,
        example,
        str(tmp),
        input_names=names,
        output_names=["residual"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(tmp))
    props = metadata(ckpt, sha256_file(checkpoint), version, radius, model, training_data)
    set_metadata(proto, props, "libdeclip training.export")
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))

    # Parity on a real photo, cropped to the model's multiple.
    rgb = load_rgb8(parity_image, 8)
    if rgb is None:
        raise ValueError(f"{parity_image}: too small for a parity check")
    h = rgb.shape[0] // multiple * multiple
    w = rgb.shape[1] // multiple * multiple
    picture = rgb[:h, :w].astype(np.float32) / 255.0
    x = model_input(picture, channels)
    feeds = {"clipped": x}
    with torch.no_grad():
        if prior:
            feeds["context"] = model_context(picture)
            ref = _PriorResidual(model)(torch.from_numpy(x), torch.from_numpy(feeds["context"])).numpy()
        else:
            ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(["residual"], feeds)[0]
    diff = float(np.abs(got - ref).max())
    if diff > PARITY_TOLERANCE:
        tmp.unlink()
        raise RuntimeError(f"ONNX/torch parity failed on {parity_image}: max abs diff {diff:.3g}")
    os.replace(tmp, out)
    return {"path": str(out), "parity_max_abs_diff": diff, "parity_image": str(parity_image), **props}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--version", default="1")
    p.add_argument("--parity-image", type=Path, default=DEFAULT_PARITY_IMAGE)
    p.add_argument("--training-data", help="describe the training data (default: from the checkpoint)")
    args = p.parse_args(argv)
    try:
        info = export(args.checkpoint, args.out, args.version, args.parity_image, args.training_data)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {info['path']}")
    print(f"  receptive field radius: {info['receptive_field_radius']} px")
    print(f"  training steps: {info['training_steps']}")
    diff = info["parity_max_abs_diff"]
    print(f"  ONNX Runtime vs torch on {info['parity_image']}: max abs diff {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
