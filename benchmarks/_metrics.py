"""Image quality metrics of the quality harness (``benchmarks/quality.py``), numpy/scipy only.

All functions take H x W x 3 RGB arrays on the photo's 0..255 scale (float; any range for the
unclamped ones) and return plain floats.

- :func:`psnr` and :func:`mae` over selected values;
- :func:`ssim_map`: SSIM of Wang et al. (2004) per pixel and channel (Gaussian window, sigma 1.5),
  to be averaged over any set of pixels;
- :func:`ciede2000`: CIEDE2000 colour difference per pixel of sRGB values;
- :func:`grid_pattern`: the amplitude of a 2 px pattern locked to the image's even grid (the
  checkerboard a network's 2 x 2 phase head can print on a flat blown sky), for photos with no truth;
- :func:`haarpsi`: the Haar wavelet-based perceptual similarity index of Reisenhofer, Bosse,
  Kutyniok and Wiegand, "A Haar wavelet-based perceptual similarity index for image quality
  assessment", Signal Processing: Image Communication 61 (2018), written from the paper.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve2d

__all__ = ["ciede2000", "grid_pattern", "haarpsi", "mae", "psnr", "ssim_map", "GRID_CELL", "PEAK"]

#: Peak value of the photo scale (PSNR's signal level).
PEAK = 255.0

#: HaarPSI constants from the paper (section 3, fitted there on the LIVE, TID2008, TID2013 and
#: CSIQ databases for images on a 0..255 scale).
HAARPSI_C = 30.0
HAARPSI_ALPHA = 4.2
HAARPSI_SCALES = 3

#: RGB -> YIQ (NTSC) rows, as the paper uses for colour images.
_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ]
)


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of ``pred`` against ``truth`` (same shape), peak 255; inf when equal, nan when
    empty."""
    if pred.size == 0:
        return float("nan")
    mse = float(np.mean((np.asarray(pred, np.float64) - truth) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(PEAK**2 / mse))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error (nan when empty)."""
    if pred.size == 0:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - truth)))


def ssim_map(pred: np.ndarray, truth: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """SSIM per pixel and channel (H x W x 3), data range 255, with the settings of Wang et al.
    (2004): 11 x 11 Gaussian window of sigma 1.5 (truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03,
    population covariances; borders reflected (scikit-image's ``structural_similarity``).

    With ``where`` (H x W bool), only the map at those pixels is meaningful: the work is cropped to
    their bounding box plus the window's radius (the map is exact there; elsewhere it is nan).
    """
    from skimage.metrics import structural_similarity

    h, w = truth.shape[:2]
    out = np.full(truth.shape, np.nan)
    if where is None:
        ys, xs = slice(0, h), slice(0, w)
    else:
        if not where.any():
            return out
        rows, cols = np.flatnonzero(where.any(axis=1)), np.flatnonzero(where.any(axis=0))
        margin = 8  # > the Gaussian window's radius (ceil(3.5 * 1.5) = 6)
        ys = slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin))
        xs = slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin))
    _, smap = structural_similarity(
        np.asarray(pred[ys, xs], np.float64), np.asarray(truth[ys, xs], np.float64),
        data_range=PEAK, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        full=True,
    )
    out[ys, xs] = smap
    return out


def ciede2000(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CIEDE2000 per pixel (shape ``pred.shape[:-1]``) between sRGB values on the 0..255 scale
    (each clamped to 0..255 first, as a display shows them; CIELAB with the D65 white)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    def lab(rgb: np.ndarray) -> np.ndarray:
        return rgb2lab(np.clip(np.asarray(rgb, np.float64), 0.0, PEAK).reshape(-1, 1, 3) / PEAK)

    return deltaE_ciede2000(lab(pred), lab(truth)).reshape(pred.shape[:-1])


def chroma_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Chroma error per pixel: the CIELAB a*b* distance (lightness left out) between sRGB values on
    the 0..255 scale, each clamped as a display shows them. 0 for a repair whose colour cast and
    saturation match the truth whatever its brightness: a pink cloud core scores high, a neutral
    one that is too dark does not."""
    from skimage.color import rgb2lab

    def ab(rgb: np.ndarray) -> np.ndarray:
        return rgb2lab(np.clip(np.asarray(rgb, np.float64), 0.0, PEAK).reshape(-1, 1, 3) / PEAK)[:, 0, 1:]

    return np.sqrt(((ab(pred) - ab(truth)) ** 2).sum(axis=1)).reshape(pred.shape[:-1])


#: Side (pixels) of the cells over which :func:`grid_pattern` averages its signed second differences.
GRID_CELL = 16


def grid_pattern(image: np.ndarray, region: np.ndarray, cell: int = GRID_CELL) -> np.ndarray:
    """Per ``cell`` x ``cell`` cell lying wholly in ``region`` (H x W bool), the amplitude of the
    2 px periodic pattern of ``image`` (H x W x 3) locked to the image's grid: each pixel's second
    difference across a row (its value less the mean of its two neighbours; zero on any straight
    ramp) and down a column, signed by the pixel's column, row, or both parities (a pattern of
    alternating columns, rows, or a checkerboard), averaged over the cell; half the largest
    magnitude of any pattern and channel is the cell's value (``A`` for ``A * (-1) ** x``). A pattern
    a network's 2 x 2 phases print is the same in every cell's blocks and survives the average;
    texture and noise, whose signs vary, average towards zero. Returns the cells' values (1-D,
    maybe empty)."""
    h, w = (image.shape[0] // cell) * cell, (image.shape[1] // cell) * cell
    x = np.asarray(image[:h, :w], dtype=np.float64)
    across, down = np.zeros_like(x), np.zeros_like(x)
    across[:, 1:-1] = x[:, 1:-1] - (x[:, :-2] + x[:, 2:]) / 2.0
    down[1:-1] = x[1:-1] - (x[:-2] + x[2:]) / 2.0
    column = np.where(np.arange(w) % 2 == 0, 1.0, -1.0)[None, :, None]
    row = np.where(np.arange(h) % 2 == 0, 1.0, -1.0)[:, None, None]
    inside = region[:h, :w].reshape(h // cell, cell, w // cell, cell).all(axis=(1, 3))
    amplitude = np.zeros(inside.shape)
    for signed in (across * column, down * row, across * column * row, down * column * row):
        per_cell = signed.reshape(h // cell, cell, w // cell, cell, -1).mean(axis=(1, 3)) / 2.0
        amplitude = np.maximum(amplitude, np.abs(per_cell).max(axis=-1))
    return amplitude[inside]


# -- HaarPSI ---------------------------------------------------------------------------------------


def _conv(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution, zeros outside, the input's size, aligned as MATLAB's ``conv2(A, B, 'same')``
    in the authors' reference code (for an even kernel, scipy's ``mode="same"`` keeps a window one
    pixel earlier)."""
    full = convolve2d(image, kernel, mode="full")
    oy, ox = kernel.shape[0] // 2, kernel.shape[1] // 2
    return full[oy : oy + image.shape[0], ox : ox + image.shape[1]]


def _haar_filters(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D Haar wavelet filters at ``scale`` (1, 2, 3): a 2^j x 2^j block of 2^-j, negated in its
    upper half (horizontal edges) and its transpose (vertical edges)."""
    n = 2**scale
    g = np.full((n, n), 2.0**-scale)
    g[: n // 2] *= -1.0
    return g, g.T


def _sigmoid(x: np.ndarray | float, alpha: float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-alpha * x))


def _logit(p: float, alpha: float) -> float:
    return float(np.log(p / (1.0 - p)) / alpha)


def haarpsi(
    reference: np.ndarray, distorted: np.ndarray, *, subsample: bool = True,
    c: float = HAARPSI_C, alpha: float = HAARPSI_ALPHA,
) -> float:
    """HaarPSI of ``distorted`` against ``reference``: 1 for identical images, less the more they
    differ (to 0).

    Both are H x W x 3 RGB (or H x W grey) on the 0..255 scale; clamp them to it first. Following the
    paper: colour images go to YIQ; each channel is averaged over 2 x 2 blocks and subsampled by 2;
    Y is decomposed by Haar filters at scales 1..3, horizontal and vertical. For orientation k, the
    local similarity is the mean over scales 1 and 2 of S(|g_j^k * Y1|, |g_j^k * Y2|) with
    S(a, b) = (2ab + C) / (a^2 + b^2 + C), weighted by W^k = max(|g_3^k * Y1|, |g_3^k * Y2|). The
    chrominance similarity is the mean of S over |m * I| and |m * Q| (m: the 2 x 2 mean filter),
    weighted by (W^1 + W^2) / 2. The index is
    ``(logit_a(sum_k,x sigmoid_a(HS^k[x]) W^k[x] / sum_k,x W^k[x])) ** 2``
    with C = 30 and a = 4.2.
    """
    ref = np.asarray(reference, np.float64)
    dist = np.asarray(distorted, np.float64)
    if ref.shape != dist.shape:
        raise ValueError(f"shapes differ: {ref.shape} and {dist.shape}")
    colour = ref.ndim == 3
    if colour:
        ref, dist = ref @ _YIQ.T, dist @ _YIQ.T
        planes = [(ref[..., i], dist[..., i]) for i in range(3)]
    else:
        planes = [(ref, dist)]
    mean2 = np.full((2, 2), 0.25)
    if subsample:
        planes = [(_conv(a, mean2)[::2, ::2], _conv(b, mean2)[::2, ::2]) for a, b in planes]

    def sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (2.0 * a * b + c) / (a * a + b * b + c)

    y1, y2 = planes[0]
    responses = [  # per scale: ((|h * Y1|, |h * Y2|), (|v * Y1|, |v * Y2|))
        [(np.abs(_conv(y1, g)), np.abs(_conv(y2, g))) for g in _haar_filters(j)]
        for j in range(1, HAARPSI_SCALES + 1)
    ]
    similarities, weights = [], []
    for k in range(2):  # horizontal, vertical
        similarities.append(
            (sim(*responses[0][k]) + sim(*responses[1][k])) / 2.0
        )
        weights.append(np.maximum(*responses[2][k]))
    if colour:
        (i1, i2), (q1, q2) = planes[1], planes[2]
        chroma = (
            sim(np.abs(_conv(i1, mean2)), np.abs(_conv(i2, mean2)))
            + sim(np.abs(_conv(q1, mean2)), np.abs(_conv(q2, mean2)))
        ) / 2.0
        similarities.append(chroma)
        weights.append((weights[0] + weights[1]) / 2.0)
    hs = np.stack(similarities)
    wt = np.stack(weights)
    total = float(wt.sum())
    if total == 0.0:  # flat images: no structure to compare
        return 1.0 if np.array_equal(ref, dist) else float("nan")
    pooled = float(np.sum(_sigmoid(hs, alpha) * wt) / total)
    return _logit(pooled, alpha) ** 2
