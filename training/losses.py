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


# -- model v3: losses in a perceptual encoding, on the clipped values -----------------------------


def mu_law(v: torch.Tensor, mu: float) -> torch.Tensor:
    """Sign-symmetric mu-law of model-space values: ``sign(v) log(1 + mu |v|) / log(1 + mu)``.

    Model space is already sRGB-encoded, but the truth of a highlight runs far above 1 (several
    stops in linear light); there equal steps of this encoding are roughly equal ratios, as the eye
    sees brightness, so an error in a bright sun does not drown the rest of the picture. 0 and 1
    stay where they are, and a shadow's negative values are treated alike.
    """
    return torch.sign(v) * torch.log1p(mu * v.abs()) / torch.log1p(torch.tensor(mu, dtype=v.dtype))


def encoded_l1(output: torch.Tensor, truth: torch.Tensor, clipped: torch.Tensor, mu: float,
               clipped_weight: float, known: torch.Tensor | None = None, power: int = 1) -> torch.Tensor:
    """L1 distance in :func:`mu_law`, the ``clipped`` values (N x 3 x H x W bool) weighted
    ``clipped_weight`` times the others (Santos et al. 2020 weight saturated pixels 6x); pixels
    where ``known`` (N x 1 x H x W) is 0 count for nothing. With ``power`` 2, the squared distance
    (pixel_loss "encoded-l2"): L1 pulls a clipped value towards the median of what it could be,
    which for a highlight (a long tail of brighter truths) is the dimmer side; the square pulls it
    to the mean."""
    weight = 1.0 + (clipped_weight - 1.0) * clipped.float()
    if known is not None:
        weight = weight * known
    return (weight * (mu_law(output, mu) - mu_law(truth, mu)).abs() ** power).sum() / weight.sum()


def chroma_l1(output: torch.Tensor, truth: torch.Tensor, all_clipped: torch.Tensor, mu: float,
              known: torch.Tensor | None = None, power: int = 1) -> torch.Tensor:
    """L1 distance of the chroma (each channel's :func:`mu_law` value minus the pixel's mean of
    them, a log-chromaticity) over the pixels where every channel is clipped (``all_clipped``,
    N x 1 x H x W bool): there the hue has to come from the surroundings, and an invented one
    (a pink cloud) is what a viewer sees first. 0 where no pixel is all clipped. With ``power`` 2,
    the squared distance (to weigh against :func:`encoded_l1`'s squared one as its L1 does)."""
    def chroma(v: torch.Tensor) -> torch.Tensor:
        e = mu_law(v, mu)
        return e - e.mean(dim=1, keepdim=True)

    where = all_clipped.float() if known is None else all_clipped.float() * known
    n = where.sum()
    if n == 0:
        return output.new_zeros(())
    return ((chroma(output) - chroma(truth)).abs() ** power * where).sum() / (3 * n)
