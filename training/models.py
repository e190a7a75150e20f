"""DeclipNet generators and discriminator.

``Generator`` ("paper" layout) follows Honig & Werman, "Image Declipping with Deep Networks": all
kernels 3x3, ELU after every layer but the last, batch normalisation, strided convolutions down,
transposed convolutions up, skip connections between matching levels, a predicted residual.

``LiteGenerator`` ("lite" layout, model v2) is the efficient one: a pixel-unshuffle moves the full
resolution into channels, so no layer runs at full resolution; three more levels reach 1/16 for a
receptive field twice the paper's; the clip mask can come in as extra input channels; ReLU and
plain convolutions only, which ONNX Runtime fuses and quantises to int8.
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


class LiteGenerator(nn.Module):
    """Efficient residual U-Net working at 1/2 resolution and below.

    Input ``N x in_channels x H x W`` (H, W multiples of 16): R, G, B and, with ``in_channels`` 6,
    the signed clip mask (+1 where a channel is clipped high, -1 low, 0 elsewhere); output the
    ``N x 3 x H x W`` residual. Widths at 1/2, 1/4, 1/8, 1/16 are ``width`` x (1, 3/2, 2, 3).
    Upsampling is a 1x1 convolution and a pixel shuffle (a transposed convolution of kernel 2,
    stride 2, written so that int8 quantisation covers it).
    """

    multiple = 16

    def __init__(self, width: int = 48, in_channels: int = 6, context_size: int = 0, smooth_head: bool = False
                 ) -> None:
        super().__init__()
        self.width, self.in_channels, self.context_size = width, in_channels, context_size
        self.smooth_head = smooth_head
        c1, c2, c3, c4 = width, width * 3 // 2, width * 2, width * 3

        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(_conv(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU())

        def up(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))

        self.unshuffle = nn.PixelUnshuffle(2)
        self.e1 = nn.Sequential(block(4 * in_channels, c1), block(c1, c1))  # 1/2
        self.e2 = nn.Sequential(block(c1, c2, 2), block(c2, c2))  # 1/4
        self.e3 = nn.Sequential(block(c2, c3, 2), block(c3, c3))  # 1/8
        self.e4 = nn.Sequential(block(c3, c4, 2), block(c4, c4), block(c4, c4))  # 1/16
        self.u3, self.d3 = up(c4, c3), block(c3, c3)
        self.u2, self.d2 = up(c3, c2), block(c2, c2)
        self.u1, self.d1 = up(c2, c1), block(c1, c1)
        # v1/v2: 4 phases x RGB at 1/2 resolution, shuffled to full resolution. With
        # ``smooth_head`` (v3): RGB at 1/2 resolution, upsampled bilinearly: each phase's own
        # weights would print a 2 px checkerboard on a flat blown sky, and v3's detail comes from
        # its full-resolution base estimate anyway.
        self.head = nn.Conv2d(c1, 3 if smooth_head else 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        nn.init.zeros_(self.head.weight)  # start as the identity: residual 0
        nn.init.zeros_(self.head.bias)
        # An image-level context vector enters as a bias on the first level's features (the same
        # for every pixel and every tile of an image); zero at first, so it starts with no effect.
        self.context = nn.Linear(context_size, c1) if context_size else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        s1 = self.e1(self.unshuffle(x))
        if self.context is not None:
            assert context is not None, "this generator takes an image context vector"
            s1 = s1 + self.context(context)[:, :, None, None]
        s2 = self.e2(s1)
        s3 = self.e3(s2)
        b = self.e4(s3)
        u = self.d3(self.u3(b) + s3)
        u = self.d2(self.u2(u) + s2)
        u = self.d1(self.u1(u) + s1)
        if self.smooth_head:
            half = self.head(u)
            return nn.functional.interpolate(half, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.shuffle(self.head(u))


class PriorGenerator(nn.Module):
    """DeclipNet v3: a correction of the classical estimates, outward only by construction.

    Input ``N x 12 x H x W``: the clip-normalised picture (3), the signed clip mask (3), and the
    :data:`libdeclip.priors.PRIOR_METHODS` estimates (cross-channel 3, inpaint-opposed 3); and the
    ``N x 6`` image context (:data:`libdeclip.priors.CONTEXT_NAMES`). The base is cross-channel's
    estimate where a channel of the pixel survives and inpaint opposed's where all three are
    clipped high (cross-channel has nothing to regress on there). The body (a
    :class:`LiteGenerator`) predicts a residual ``r`` on that base, and the output is

    - ``max(picture, base + r)`` where a value is clipped high (never below what was recorded),
    - ``min(picture, base + r)`` where it is clipped low,
    - the picture itself everywhere else,

    so the consistency constraint holds for any weights, and with the body's last layer at zero the
    output is the classical base exactly. Returns the repaired picture (not a residual).
    """

    multiple = 16
    channels = 12

    def __init__(
        self, width: int = 32, context_size: int = 6, detail: int = 0, phase_head: bool = False
    ) -> None:
        super().__init__()
        self.width, self.in_channels, self.context_size = width, self.channels, context_size
        # With ``phase_head`` (layout "prior-phase"): the body's head predicts each of the 2 x 2
        # phases of the residual (v2's head) instead of one smooth residual at 1/2 resolution, a
        # full-resolution residual with no float layer at full resolution (all int8 but the
        # output form), where the detail layers are 31 of v3-int8's 102 ms on a 512 px window
        # (ONNX Runtime's profile, one thread).
        self.body = LiteGenerator(width, self.channels, context_size, smooth_head=not phase_head)
        # With ``detail`` (layout "prior-detail"): two 3x3 convolutions at full resolution over the
        # input and the body's smooth residual add a correction of their own. The body ends at 1/2
        # resolution, so it cannot follow a surviving channel's pixel-scale texture into the
        # clipped one (v3 trails v2 there). Its last layer starts at zero: a "prior" checkpoint
        # loaded into it gives the same output.
        self.detail: nn.Sequential | None = None
        if detail:
            last = nn.Conv2d(detail, 3, 3, padding=1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.detail = nn.Sequential(nn.Conv2d(self.channels + 3, detail, 3, padding=1), nn.ReLU(), last)

    @staticmethod
    def base(x: torch.Tensor) -> torch.Tensor:
        """The classical estimate the output starts from (N x 3 x H x W)."""
        all_high = (x[:, 3:6] > 0.5).all(dim=1, keepdim=True)
        return torch.where(all_high, x[:, 9:12], x[:, 6:9])

    @staticmethod
    def outward(x: torch.Tensor, proposed: torch.Tensor) -> torch.Tensor:
        """``proposed`` values where the picture is clipped, never on the inner side of what was
        recorded; the picture's own values elsewhere."""
        picture, mask = x[:, 0:3], x[:, 3:6]
        out = torch.where(mask > 0.5, torch.maximum(picture, proposed), picture)
        return torch.where(mask < -0.5, torch.minimum(picture, proposed), out)

    def classical(self, x: torch.Tensor) -> torch.Tensor:
        """The output with a zero residual: the classical base, projected outward."""
        return self.outward(x, self.base(x))

    def residual(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The learned correction of the base (N x 3 x H x W), before the outward form."""
        residual = self.body(x, context)
        if self.detail is not None:
            residual = residual + self.detail(torch.cat([x, residual], dim=1))
        return residual

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.outward(x, self.base(x) + self.residual(x, context))


class _PriorCorrection(nn.Module):
    """A v3 generator's convolutional part alone: its :meth:`PriorGenerator.residual`."""

    def __init__(self, model: PriorGenerator) -> None:
        super().__init__()
        self.model = model
        self.in_channels, self.context_size = model.in_channels, model.context_size
        self.multiple = model.multiple

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.model.residual(x, context)


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


# Named generator layouts: (class, default width). "paper" is the paper's layout at its width.
LAYOUTS: dict[str, tuple[type[nn.Module], int]] = {
    "paper": (Generator, 32),
    "small": (Generator, 16),
    "lite": (LiteGenerator, 48),
    "prior": (PriorGenerator, 32),
    "prior-detail": (PriorGenerator, 32),  # v3 with its full-resolution detail layers
    "prior-phase": (PriorGenerator, 32),  # v3 with v2's phase head instead (no detail layers)
}

AnyGenerator = Generator | LiteGenerator | PriorGenerator
# the layouts of model v3 (12 input channels and a context)
PRIOR_LAYOUTS = tuple(name for name, (cls, _) in LAYOUTS.items() if cls is PriorGenerator)

#: Channels of the "prior-detail" layout's full-resolution layer (5.2 GFLOP per megapixel).
DETAIL_WIDTH = 16


def build_generator(
    layout: str = "paper", width: int | None = None, in_channels: int | None = None
) -> AnyGenerator:
    """A generator of a named layout; ``in_channels`` 3 (RGB) or, for "lite", 6 (RGB + mask);
    "prior", "prior-detail" and "prior-phase" (v3) always take their 12 channels and the context."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown generator layout {layout!r}; known: {sorted(LAYOUTS)}")
    cls, default_width = LAYOUTS[layout]
    kwargs: dict[str, int] = {"width": width or default_width}
    if cls is PriorGenerator:
        detail = DETAIL_WIDTH if layout == "prior-detail" else 0
        return PriorGenerator(**kwargs, detail=detail, phase_head=layout == "prior-phase")
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    return cls(**kwargs)  # type: ignore[return-value]


def spatial_multiple(model: nn.Module) -> int:
    """What the model's spatial sizes must be multiples of (its total stride)."""
    return int(getattr(model, "multiple", GENERATOR_MULTIPLE))


def _convolutional(model: nn.Module) -> nn.Module:
    """The convolutional network of a generator (a v3 generator's correction: its output form adds
    no convolution and, on an all-zero probe, would hide the correction's reach)."""
    return _PriorCorrection(model) if isinstance(model, PriorGenerator) else model


def _probe(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    size = int(getattr(model, "context_size", 0))
    return model(x, torch.zeros(len(x), size)) if size else model(x)


def conv_macs_per_pixel(model: nn.Module, size: int = 256) -> float:
    """Multiply-accumulates per input pixel of every convolution, measured by running the model."""
    model = _convolutional(model)
    total = [0]

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        assert isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        if isinstance(m, nn.Conv2d):  # every output value: one kernel's worth
            total[0] += k * out.shape[1] * out.shape[2] * out.shape[3]
        else:  # every input pixel spreads a kernel into each output channel
            total[0] += k * inp[0].shape[2] * inp[0].shape[3] * m.out_channels

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        with torch.no_grad():
            _probe(model.eval(), torch.zeros(1, int(getattr(model, "in_channels", 3)), size, size))
    finally:
        for h in handles:
            h.remove()
    return total[0] / (size * size)


def count_layers(module: nn.Module) -> int:
    """Number of convolution and transposed-convolution layers."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def receptive_field_radius(model: nn.Module, size: int | None = None) -> int:
    """Receptive-field radius in pixels, measured from the network itself.

    Back-propagates from single output pixels at every phase of the stride-8 grid and finds how far
    the non-zero input gradient reaches; the largest distance over the phases is the radius. On a copy,
    weights become positive constants and batch-norm statistics neutral, so every activation is
    positive (ELU and ReLU pass a gradient) and an unlucky zero weight cannot hide a connection.
    """
    import copy

    model = _convolutional(model)
    multiple = spatial_multiple(model)
    size = size or max(112, 16 * multiple)
    probe = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.fill_(1.0 / p[0].numel() if p.dim() > 1 else 0.1)
        for m in probe.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
    c = size // 2
    phases = [(dy, dx) for dy in range(multiple) for dx in range(multiple)]
    # One batch item per phase; the items do not interact (eval-mode batch norm), so one backward
    # pass gives every phase's input gradient at once.
    x = torch.zeros(len(phases), probe.in_channels, size, size, requires_grad=True)
    out = _probe(probe, x)
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
