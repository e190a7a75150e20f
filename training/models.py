"""DeclipNet generator (residual hourglass) and discriminator (DCGAN-like).

Layouts follow Honig & Werman, "Image Declipping with Deep Networks": all kernels 3x3, ELU after
every layer but the last, batch normalisation, strided convolutions down, transposed convolutions
up, skip connections between matching levels, and the generator predicts a residual.
"""

from __future__ import annotations

import torch
from torch import nn

# Spatial sizes must be multiples of this (three stride-2 levels).
GENERATOR_MULTIPLE = 8


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    # k3, s2, p1, output_padding 1 doubles the size exactly.
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)


class _Block(nn.Sequential):
    """Convolution (or transposed convolution), batch normalisation, ELU."""

    def __init__(self, layer: nn.Module, channels: int) -> None:
        super().__init__(layer, nn.BatchNorm2d(channels), nn.ELU(inplace=False))


class Generator(nn.Module):
    """Residual hourglass of 14 layers; output = residual, reconstruction = input + residual.

    Encoder (7 layers) halves the resolution three times; decoder (7 layers) doubles it back with
    transposed convolutions; each decoder level adds the encoder features of the same resolution.

    Input ``N x in_channels x H x W`` with H, W multiples of 8; output ``N x 3 x H x W``.
    """

    def __init__(self, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.width, self.in_channels = width, in_channels
        self.e1 = _Block(_conv(in_channels, w), w)  # 1/1, skip 0
        self.e2 = _Block(_conv(w, w, 2), w)  # 1/2
        self.e3 = _Block(_conv(w, 2 * w), 2 * w)  # 1/2, skip 1
        self.e4 = _Block(_conv(2 * w, 2 * w, 2), 2 * w)  # 1/4
        self.e5 = _Block(_conv(2 * w, 4 * w), 4 * w)  # 1/4, skip 2
        self.e6 = _Block(_conv(4 * w, 4 * w, 2), 4 * w)  # 1/8
        self.e7 = _Block(_conv(4 * w, 4 * w), 4 * w)  # 1/8 bottleneck
        self.d8 = _Block(_up(4 * w, 4 * w), 4 * w)  # 1/4 (+ skip 2)
        self.d9 = _Block(_conv(4 * w, 2 * w), 2 * w)
        self.d10 = _Block(_up(2 * w, 2 * w), 2 * w)  # 1/2 (+ skip 1)
        self.d11 = _Block(_conv(2 * w, w), w)
        self.d12 = _Block(_up(w, w), w)  # 1/1 (+ skip 0)
        self.d13 = _Block(_conv(w, w), w)
        self.d14 = nn.Conv2d(w, 3, 3, padding=1)  # residual: no BN, no activation
        nn.init.zeros_(self.d14.weight)  # start as the identity: residual 0
        nn.init.zeros_(self.d14.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.e1(x)
        s1 = self.e3(self.e2(s0))
        s2 = self.e5(self.e4(s1))
        b = self.e7(self.e6(s2))
        u = self.d9(self.d8(b) + s2)
        u = self.d11(self.d10(u) + s1)
        u = self.d13(self.d12(u) + s0)
        return self.d14(u)


class Discriminator(nn.Module):
    """DCGAN-like critic of 9 convolution layers; returns one logit per image (N x 1)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        plan = [  # (cin, cout, stride)
            (3, w, 2),
            (w, w, 1),
            (w, 2 * w, 2),
            (2 * w, 2 * w, 1),
            (2 * w, 4 * w, 2),
            (4 * w, 4 * w, 1),
            (4 * w, 8 * w, 2),
            (8 * w, 8 * w, 1),
        ]
        layers: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate(plan):
            conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=(i == 0))
            # DCGAN: no batch normalisation on the input layer.
            layers += [conv, nn.ELU()] if i == 0 else [conv, nn.BatchNorm2d(cout), nn.ELU()]
        layers.append(nn.Conv2d(8 * w, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


# Named generator layouts. "paper" is the layout of the paper at its width.
LAYOUTS: dict[str, dict[str, int]] = {
    "paper": {"width": 32},
    "small": {"width": 16},
}


def build_generator(layout: str = "paper", width: int | None = None) -> Generator:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown generator layout {layout!r}; known: {sorted(LAYOUTS)}")
    kwargs = dict(LAYOUTS[layout])
    if width is not None:
        kwargs["width"] = width
    return Generator(**kwargs)


def count_layers(module: nn.Module) -> int:
    """Number of convolution and transposed-convolution layers."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def receptive_field_radius(model: Generator, size: int = 112) -> int:
    """Receptive-field radius in pixels, measured from the network itself.

    Back-propagates from single output pixels at every phase of the stride-8 grid and finds how far
    the non-zero input gradient reaches; the largest distance over the phases is the radius. ELU's
    derivative is never zero, so every connected input shows up. The model's weights are replaced by
    ones on a copy, so an unlucky zero weight cannot hide a connection.
    """
    import copy

    probe = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.fill_(1.0 / p[0].numel() if p.dim() > 1 else 0.1)
    c = size // 2
    phases = [(dy, dx) for dy in range(GENERATOR_MULTIPLE) for dx in range(GENERATOR_MULTIPLE)]
    # One batch item per phase; the items do not interact (eval-mode batch norm), so one backward
    # pass gives every phase's input gradient at once.
    x = torch.zeros(len(phases), probe.in_channels, size, size, requires_grad=True)
    out = probe(x)
    torch.stack([out[i, :, c + dy, c + dx].sum() for i, (dy, dx) in enumerate(phases)]).sum().backward()
    assert x.grad is not None
    radius = 0
    for i, (dy, dx) in enumerate(phases):
        nz = torch.nonzero(x.grad[i].abs().sum(0) > 0)
        reach = max(int((nz[:, 0] - (c + dy)).abs().max()), int((nz[:, 1] - (c + dx)).abs().max()))
        radius = max(radius, reach)
    if radius >= c - 1:
        raise RuntimeError("receptive field reaches the probe's border: use a larger probe size")
    return radius
