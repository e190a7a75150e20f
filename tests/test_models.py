from __future__ import annotations

import pytest
import torch

from training.models import (
    Discriminator,
    Generator,
    build_generator,
    count_layers,
    receptive_field_radius,
)


def test_generator_layout() -> None:
    g = build_generator("paper")
    assert g.width == 32
    assert count_layers(g) == 14
    layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    kernels = {m.kernel_size for m in g.modules() if isinstance(m, layers)}
    assert kernels == {(3, 3)}
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules()) == 3
    assert sum(isinstance(m, torch.nn.ELU) for m in g.modules()) == 13  # all but the last layer
    with pytest.raises(ValueError, match="unknown generator layout"):
        build_generator("nope")


def test_generator_shapes_and_residual() -> None:
    g = Generator(width=8).eval()
    x = torch.rand(2, 3, 40, 56)
    r = g(x)
    assert r.shape == x.shape
    assert torch.count_nonzero(r) == 0  # the last layer starts at zero: the identity


def test_discriminator_layout_and_shape() -> None:
    d = Discriminator(width=8)
    assert count_layers(d) == 9
    assert d(torch.rand(3, 3, 64, 64)).shape == (3, 1)


def test_receptive_field_radius_is_exact() -> None:
    torch.manual_seed(0)
    g = Generator(width=4).double().eval()
    with torch.no_grad():  # make every weight non-zero so no connection is hidden
        for p in g.parameters():
            p.add_(0.05)
    radius = receptive_field_radius(g)
    size, c = 128, 64
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    def centre_moves(ring: torch.Tensor) -> list[bool]:
        """For each of the 64 phases of the stride grid: does lighting ``ring`` move the output?"""
        moved = []
        for dy in range(8):
            for dx in range(8):
                dist = torch.maximum((yy - c - dy).abs(), (xx - c - dx).abs())
                x = torch.where(ring(dist), 1.0, 0.0).to(torch.float64).expand(1, 3, size, size)
                ref = g(torch.zeros_like(x))[0, :, c + dy, c + dx]
                moved.append(not torch.equal(g(x)[0, :, c + dy, c + dx], ref))
        return moved

    assert not any(centre_moves(lambda d: d > radius)), "pixels beyond the radius must not matter"
    assert any(centre_moves(lambda d: d == radius)), "the radius must be reached for some phase"
