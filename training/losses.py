"""DeclipNet losses: pixel MSE, perceptual (VGG features) and adversarial.

total = w_mse * MSE + w_perceptual * perceptual + w_adversarial * adversarial, with the paper's
weights 0.81 / 0.095 / 0.095 as the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse_loss(output: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output, truth)


def perceptual_loss(
    out_feats: list[torch.Tensor], truth_feats: list[torch.Tensor], feature_scale: float = 1.0
) -> torch.Tensor:
    """Sum over layers of the squared feature distance, each normalised by its size W*H*F.

    Averaged over the batch; features are multiplied by ``feature_scale`` first.
    """
    total = out_feats[0].new_zeros(())
    for a, b in zip(out_feats, truth_feats, strict=True):
        size = a.shape[1] * a.shape[2] * a.shape[3]
        diff = (a - b) * feature_scale
        total = total + (diff**2).sum(dim=(1, 2, 3)).mean() / size
    return total


def sigmoid_cross_entropy(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Numerically stable sigmoid cross-entropy, max(x, 0) - x*z + log(1 + exp(-|x|)), averaged."""
    x = logits
    return (torch.clamp(x, min=0) - x * target + torch.log1p(torch.exp(-x.abs()))).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """max(X, 0) - X + log(1 + exp(-|X|)) with X = D(G(clipped)): cross-entropy with target 1."""
    return sigmoid_cross_entropy(fake_logits, 1.0)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Complementary cross-entropy: real photos -> 1, generated -> 0."""
    return sigmoid_cross_entropy(real_logits, 1.0) + sigmoid_cross_entropy(fake_logits, 0.0)
