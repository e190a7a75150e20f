"""Training data: real photos, clipped with the DeclipNet protocol.

Every sample is a random crop of a photo, clipped at two random thresholds (over-exposure in
``over_range`` and under-exposure in ``under_range``, 8-bit scale) and normalised with
``(v - under) / (over - under)``, so the clipped input spans [0, 1] and the truth, mapped the same
way, goes below 0 and above 1 exactly where the input was clipped.

Model v2 adds camera-like samples (:func:`make_camera_sample`) and the clip mask as input
channels. Batches are a pure function of ``(seed, step, rank)``: resuming at step ``s`` draws the very batch
an uninterrupted run would have drawn, which is what makes resume bit-exact.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

#: What the training sampler reads (through Pillow, not libdeclip.io): the photo folders' formats.
TRAINING_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}

# Photo folders that must never be trained on (the evaluation sets).
_EVAL_PARTS = {"eval", "kodak24", "cbsd68"}


def list_images(root: str | Path) -> list[Path]:
    """All photos below ``root``, sorted; refuses evaluation folders."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    paths = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TRAINING_SUFFIXES
    )
    for p in paths:
        if _EVAL_PARTS & {part.lower() for part in p.relative_to(root.parent).parts}:
            raise ValueError(f"{p}: evaluation photos must never be used for training")
    if not paths:
        raise FileNotFoundError(f"no photos found below {root}")
    return paths


def load_rgb8(path: Path, min_side: int) -> np.ndarray | None:
    """Decode a photo to H x W x 3 uint8 (ICC ignored: training sees the stored sRGB-ish values).

    Returns None for photos smaller than ``min_side`` on their shorter side.
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < min_side:
            return None
        return np.asarray(im, dtype=np.uint8).copy()


@dataclass(frozen=True)
class ClipSpec:
    """How samples are clipped. Thresholds are on the 8-bit scale, both ends inclusive."""

    over_range: tuple[int, int] = (175, 255)
    under_range: tuple[int, int] = (1, 80)
    per_channel: bool = False  # realistic extra: each channel its own thresholds
    # realistic extra: store the clipped input as a real 8-bit file would, its clip levels at 0 and
    # 255 (values on the 1/255 grid, not the 1/(over - under) grid of the paper's protocol)
    quantise: bool = False
    jpeg_quality: tuple[int, int] | None = None  # realistic extra: that file is a JPEG (implies
    jpeg_probability: float = 0.0  # quantise for the samples it applies to)
    flips: bool = False  # realistic extra: random horizontal / vertical flips
    # Model v2: the share of samples drawn by the camera-like protocol (make_camera_sample) instead
    # of the paper's, and whether samples carry the signed clip mask as three more channels.
    camera_probability: float = 0.0
    # Over-exposure of the camera-like highlights samples, in stops (the "both" samples go half a
    # stop under that and over). A photo's own blown areas stand in for the truth there, so the
    # further it is pushed, the brighter the network learns to make large blown areas.
    camera_stops_over: tuple[float, float] = (0.0, 2.0)
    mask_channels: bool = False
    # Model v3 (PriorSampler only): the share of sensor-space samples (training.sensor), drawn before
    # the camera-like and paper protocols share the rest.
    sensor_probability: float = 0.0
    # ... and whether their estimates are the photosite inpaint opposed (both places), as the RAW
    # path gives them to a model with raw_prior = photosite (libdeclip.photosites)
    sensor_photosite_prior: bool = False
    sensor_camera_rgb: bool = False  # ... shown in camera RGB, as the RAW path does (training.sensor)


def clip_and_normalise(
    rgb: np.ndarray, over: np.ndarray | float, under: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Clip an 8-bit-scale photo to [under, over] and normalise input and truth alike.

    ``rgb`` is H x W x 3 on the 0..255 scale (any real dtype). ``over`` and ``under`` are scalars or
    per-channel arrays of shape (3,). Returns ``(clipped, truth)`` as float32 H x W x 3 with
    ``clipped`` in [0, 1] and ``truth = (rgb - under) / (over - under)`` unbounded.
    """
    over = np.asarray(over, dtype=np.float32)
    under = np.asarray(under, dtype=np.float32)
    if np.any(over <= under):
        raise ValueError(f"over-exposure threshold {over} must exceed under-exposure {under}")
    v = rgb.astype(np.float32)
    scale = 1.0 / (over - under)
    truth = (v - under) * scale
    truth = truth.astype(np.float32)
    # clip(v, under, over) mapped the same way, computed so that clipped values are exactly 0 and 1
    clipped = np.clip(truth, 0.0, 1.0)
    return clipped, truth


def _jpeg_roundtrip(clipped_8bit: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(clipped_8bit).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def random_crop(rgb: np.ndarray, crop: int, flips: bool, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop`` x ``crop`` window of ``rgb``, flipped at random with ``flips``."""
    h, w = rgb.shape[:2]
    if h < crop or w < crop:
        raise ValueError(f"photo of {w}x{h} is smaller than the crop {crop}")
    y = int(rng.integers(0, h - crop + 1))
    x = int(rng.integers(0, w - crop + 1))
    patch = rgb[y : y + crop, x : x + crop]
    if flips:
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
    return patch


def make_sample(
    rgb: np.ndarray, crop: int, spec: ClipSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One (clipped, truth) pair, both 3 x crop x crop float32, from one photo."""
    return clip_paper(random_crop(rgb, crop, spec.flips, rng), spec, rng)


def clip_paper(
    patch: np.ndarray, spec: ClipSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A photo (H x W x 3 uint8) clipped by the paper's protocol: (clipped, truth), 3 x H x W."""
    n = 3 if spec.per_channel else 1
    over = rng.integers(spec.over_range[0], spec.over_range[1] + 1, size=n).astype(np.float32)
    under = rng.integers(spec.under_range[0], spec.under_range[1] + 1, size=n).astype(np.float32)
    if not spec.per_channel:
        over, under = over[0], under[0]
    clipped, truth = clip_and_normalise(patch, over, under)
    as_jpeg = spec.jpeg_quality is not None and rng.random() < spec.jpeg_probability
    if spec.quantise or as_jpeg:
        stored = np.rint(clipped * 255.0).astype(np.uint8)
        if as_jpeg:
            assert spec.jpeg_quality is not None
            lo_q, hi_q = spec.jpeg_quality
            stored = _jpeg_roundtrip(stored, int(rng.integers(lo_q, hi_q + 1)))
        clipped = stored.astype(np.float32) / 255.0
    return (
        np.ascontiguousarray(clipped.transpose(2, 0, 1)),
        np.ascontiguousarray(truth.transpose(2, 0, 1)),
    )


# -- camera-like samples (model v2) --------------------------------------------------------------

# Shares of the camera-like samples: highlights only, shadows only, both ends.
CAMERA_MODES = (("highlights", 0.55), ("shadows", 0.2), ("both", 0.25))
# Tolerances the runtime may be given (fractions of the clip range): the default 1/255 up to the
# 0.03 that suits JPEG ringing. The mask channels are drawn with one of them, as a caller would.
MASK_TOLERANCE = (1.0 / 255.0, 0.03)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    """sRGB's curve, continued beyond 1 by its own power law (monotone, so the truth stays ordered)."""
    v = np.maximum(v, 0.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1.0 / 2.4) - 0.055)


def signed_mask(x: np.ndarray, tolerance: float, low: bool = True) -> np.ndarray:
    """+1 where a value (3 x H x W, clip-normalised) is clipped high, -1 low, 0 elsewhere: what the
    runtime flags with ``tolerance`` (a fraction of the clip range, as in ``libdeclip.mask``)."""
    m = (x >= 1.0 - tolerance - 1e-6).astype(np.float32)
    if low:
        m -= (x <= tolerance + 1e-6).astype(np.float32)
    return m


def make_camera_sample(
    rgb: np.ndarray, crop: int, spec: ClipSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (clipped, truth, mask) triple, each 3 x crop x crop float32, made the way a camera
    makes clipped files rather than by cutting a finished photo at two thresholds:

    the photo is taken back to linear light, exposed up or down (highlights, shadows or both
    clipped), given white-balance-like channel gains (one channel clips before the others) and
    sensor-like noise (shot noise growing with the signal, plus read noise), encoded with a
    camera-like tone curve (sRGB with a drawn gamma), cut at per-channel levels on the 8-bit scale,
    stored as 8 bits and, for some, as a JPEG. Input and truth are normalised by the per-channel
    levels as the runtime does, ``(v - low) / (high - low)``; the mask is what the runtime would
    flag at a drawn tolerance.
    """
    return clip_camera(random_crop(rgb, crop, spec.flips, rng), spec, rng)


def clip_camera(
    patch: np.ndarray, spec: ClipSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo (H x W x 3 uint8) clipped the camera-like way of :func:`make_camera_sample`:
    (clipped, truth, mask), each 3 x H x W float32."""
    names, shares = zip(*CAMERA_MODES, strict=True)
    mode = names[int(rng.choice(len(names), p=np.asarray(shares) / sum(shares)))]
    linear = srgb_decode(patch.astype(np.float64) / 255.0)
    lo_stop, hi_stop = spec.camera_stops_over
    stops = {
        "highlights": (lo_stop, hi_stop), "shadows": (-2.5, -0.3), "both": (lo_stop - 0.5, hi_stop - 0.5)
    }[mode]
    linear = linear * 2.0 ** rng.uniform(*stops)
    if rng.random() < 0.5:  # white-balance-like gains
        gains = rng.uniform(0.8, 1.25, size=3)
        linear = linear * (gains / gains.mean())
    if rng.random() < 0.7:  # shot + read noise, in linear light, before the sensor clips
        shot = 10 ** rng.uniform(-4.0, -2.5)
        read = 10 ** rng.uniform(-6.0, -4.5)
        linear = linear + rng.standard_normal(linear.shape) * np.sqrt(shot * np.maximum(linear, 0) + read)
    gamma = rng.uniform(0.85, 1.2)
    encoded = srgb_encode(linear) ** gamma * 255.0  # the file's scale, unbounded above
    high = np.full(3, 255.0)
    low = np.zeros(3)
    if mode != "shadows" and rng.random() < 0.4:  # some channels saturate below the file's white
        high = np.where(rng.random(3) < 0.5, rng.integers(200, 255, size=3), 255.0).astype(np.float64)
    if mode == "shadows":  # nothing may clip high: the file's white stays above the patch
        high = np.full(3, max(255.0, float(np.ceil(encoded.max()))))
    if mode != "highlights":
        low = np.full(3, float(rng.integers(0, 24)))
    scale = 255.0 / high.max()  # the file holds 0..255: a high level above 255 is rescaled
    stored = np.clip(np.minimum(np.maximum(encoded, low), high) * scale, 0, 255)
    stored = np.rint(stored).astype(np.uint8)
    if spec.jpeg_quality is not None and rng.random() < spec.jpeg_probability:
        stored = _jpeg_roundtrip(stored, int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1)))
    lo_s, hi_s = low * scale, high * scale
    clipped = (stored.astype(np.float64) - lo_s) / (hi_s - lo_s)
    truth = (encoded * scale - lo_s) / (hi_s - lo_s)
    tolerance = float(rng.uniform(*MASK_TOLERANCE))
    chw = (2, 0, 1)
    clipped32 = np.ascontiguousarray(clipped.transpose(chw), dtype=np.float32)
    # A caller may hand the runtime a highlights-only mask (the shadows are left alone).
    mask = signed_mask(clipped32, tolerance, low=mode != "highlights" or rng.random() < 0.5)
    return clipped32, np.ascontiguousarray(truth.transpose(chw), dtype=np.float32), mask


class ClipSampler:
    """Deterministic batches of clipped crops from a folder of photos.

    Photos are decoded lazily and cached in memory (as uint8) on first use.
    """

    def __init__(
        self,
        root: str | Path,
        crop: int,
        batch: int,
        spec: ClipSpec = ClipSpec(),
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_images: int | None = None,
    ) -> None:
        self.crop, self.batch, self.spec, self.seed = crop, batch, spec, seed
        self.rank, self.world_size = rank, world_size
        paths = list_images(root)
        if max_images is not None:
            paths = paths[:max_images]
        self.paths = paths
        self._cache: dict[int, np.ndarray | None] = {}

    def _photo(self, index: int) -> np.ndarray | None:
        if index not in self._cache:
            self._cache[index] = load_rgb8(self.paths[index], self.crop)
        return self._cache[index]

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch for global step ``step`` on this rank: (input, truth). The input is
        N x 3 x H x W clipped RGB, or N x 6 x H x W with the signed clip mask after it; the truth
        N x 3 x H x W."""
        rng = np.random.default_rng([self.seed, step, self.rank, self.world_size])
        xs, ys = [], []
        while len(xs) < self.batch:
            rgb = self._photo(int(rng.integers(0, len(self.paths))))
            if rgb is None:  # too small for this crop size: draw another photo
                continue
            if rng.random() < self.spec.camera_probability:
                x, y, m = make_camera_sample(rgb, self.crop, self.spec, rng)
            else:
                x, y = make_sample(rgb, self.crop, self.spec, rng)
                m = signed_mask(x, float(rng.uniform(*MASK_TOLERANCE)))
            xs.append(np.concatenate([x, m]) if self.spec.mask_channels else x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


# -- prior-input samples (model v3) --------------------------------------------------------------


@dataclass(frozen=True)
class _Variant:
    """One photo clipped as a whole, with what the runtime would compute on it."""

    inputs: np.ndarray  # 12 x H x W: clipped picture, signed mask, the priors' estimates
    truth: np.ndarray  # 3 x H x W
    context: np.ndarray  # (6,)
    known: np.ndarray  # 1 x H x W float32: 0 where the photo itself was clipped (its truth unknown)
    clipped: np.ndarray  # flat indices of the pixels with a clipped value (the hard crops' centres)


#: A photo's own value at or above this 8-bit code is taken as clipped in the photo itself.
OWN_CLIP_CODE = 254


def shrink_to_fit(rgb: np.ndarray, side: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` (H x W x 3 uint8) shrunk with Lanczos until its longer side is ``side`` (its shorter
    side kept at least ``crop``), and where the photo itself was blown (a value at
    :data:`OWN_CLIP_CODE` or above) on the shrunk grid: every output pixel whose footprint holds one,
    since the filter mixes a blown value into values that no longer look blown."""
    h, w = rgb.shape[:2]
    scale = max(side / max(h, w), crop / min(h, w))
    size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    blown = Image.fromarray(((rgb >= OWN_CLIP_CODE).any(axis=2) * 255).astype(np.uint8))
    # a box filter of a 0/255 mask is above 0 wherever the footprint held a blown pixel; Lanczos'
    # footprint is wider (3 lobes), so the mask is grown by a pixel on the shrunk grid afterwards
    from scipy.ndimage import maximum_filter

    own = maximum_filter(np.asarray(blown.resize(size, Image.Resampling.BOX)) > 0, size=3)
    return small, own


class PriorSampler:
    """Deterministic batches for a prior-input model (v3): (inputs, truth, context).

    The runtime computes the classical estimates and the context once per image, on the whole
    image, so training does the same: a photo (or, for photos above ``max_side`` on a side, a
    ``max_side`` window of it, which stands for a photo of that size) is clipped as a whole by one
    of the protocols (the paper's, or the camera-like one with ``camera_probability``), its
    estimates and context computed by :mod:`libdeclip.priors`, and only then cropped. The estimates
    cost ~0.5 s a photo on one core, so each photo clipped this way serves many crops: the steps
    of a block of ``block_steps`` draw their crops from the block's ``pool`` clipped photos, and
    ``hard_share`` of the crops are centred on a clipped pixel. With ``downscale``, that share of the
    photos larger than ``max_side`` are first shrunk (Lanczos, on the 8-bit sRGB values, as an
    exported copy is) until the whole scene fits the window, so the model sees whole scenes at
    small sizes as well as windows of large photos at their own scale.

    A batch is a pure function of ``(seed, step)``, as for :class:`ClipSampler` (the pool is a
    cache of pure functions of ``(seed, block, slot)``), which keeps resume exact.
    """

    def __init__(
        self,
        root: str | Path,
        crop: int,
        batch: int,
        spec: ClipSpec = ClipSpec(),
        seed: int = 0,
        max_images: int | None = None,
        pool: int = 48,
        block_steps: int = 150,
        hard_share: float = 0.75,
        max_side: int = 512,
        raw_root: str | Path = "../shared/data/raw",
        downscale: float = 0.0,
    ) -> None:
        if max_side < crop:
            raise ValueError(f"max_side {max_side} must be at least the crop {crop}")
        self.crop, self.batch, self.spec, self.seed = crop, batch, spec, seed
        self.pool, self.block_steps, self.hard_share, self.max_side = pool, block_steps, hard_share, max_side
        paths = list_images(root)
        self.paths = paths[:max_images] if max_images is not None else paths
        self._photos: dict[int, np.ndarray | None] = {}
        self._variants: dict[tuple[int, int], _Variant] = {}
        self.raw_root = Path(raw_root)
        self.downscale = downscale
        self._camera_list: list[Any] | None = None

    def _cameras(self) -> list[Any]:
        """The real cameras of the sensor-space samples (read once, on first use)."""
        if self._camera_list is None:
            from training.sensor import load_cameras

            self._camera_list = load_cameras(self.raw_root)
        return self._camera_list

    def _photo(self, index: int) -> np.ndarray | None:
        if index not in self._photos:
            self._photos[index] = load_rgb8(self.paths[index], self.crop)
        return self._photos[index]

    def variant(self, block: int, slot: int) -> _Variant:
        """The clipped photo in ``slot`` of ``block``'s pool, with its estimates and context."""
        key = (block, slot)
        if key not in self._variants:
            for old in [k for k in self._variants if k[0] < block]:  # earlier blocks are done with
                del self._variants[old]
            self._variants[key] = self._make_variant(np.random.default_rng([self.seed, block, slot, 3]))
        return self._variants[key]

    def _make_variant(self, rng: np.random.Generator) -> _Variant:
        from libdeclip import priors

        rgb = None
        while rgb is None:
            rgb = self._photo(int(rng.integers(0, len(self.paths))))
        own: np.ndarray | None = None  # the photo's own blown highlights, where known before cropping
        # (no draw at all without downscaling: configs from before it keep their batches)
        if self.downscale > 0 and max(rgb.shape[:2]) > self.max_side and rng.random() < self.downscale:
            rgb, own = shrink_to_fit(rgb, self.max_side, self.crop)
        h, w = rgb.shape[:2]
        wh, ww = min(h, self.max_side), min(w, self.max_side)
        y, x = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
        photo = rgb[y : y + wh, x : x + ww]
        own = None if own is None else own[y : y + wh, x : x + ww]
        if self.spec.flips and rng.random() < 0.5:
            photo = photo[:, ::-1]
            own = None if own is None else own[:, ::-1]
        # (no draw at all without sensor samples: configs from before them keep their batches)
        given: np.ndarray | None = None  # an estimate that takes every method's place (3 x H x W)
        if self.spec.sensor_probability > 0 and rng.random() < self.spec.sensor_probability:
            from training.sensor import clip_sensor

            clipped, truth, mask, given = clip_sensor(photo, self._cameras(), rng,
                                                      photosite_prior=self.spec.sensor_photosite_prior,
                                                      camera_rgb=self.spec.sensor_camera_rgb)
        elif rng.random() < self.spec.camera_probability:
            clipped, truth, mask = clip_camera(photo, self.spec, rng)
        else:
            clipped, truth = clip_paper(photo, self.spec, rng)
            mask = signed_mask(clipped, float(rng.uniform(*MASK_TOLERANCE)))
        hwc = clipped.transpose(1, 2, 0)
        high, low = (mask > 0).transpose(1, 2, 0), (mask < 0).transpose(1, 2, 0)
        if given is not None:  # as libdeclip.priors.image_priors projects a given estimate
            outward = priors.project_outward(given, clipped, mask > 0, mask < 0)
            est = np.concatenate([outward] * len(priors.PRIOR_METHODS))
        else:
            est = priors.estimates(hwc, high, low).transpose(2, 0, 1)
        inputs = np.ascontiguousarray(np.concatenate([clipped, mask, est]), dtype=np.float32)
        # Camera originals (and some web photos) hold their own blown highlights: there the
        # "truth" is itself clipped, so those pixels (and their 3 x 3 neighbours) carry no loss.
        from scipy.ndimage import maximum_filter

        own = maximum_filter((photo >= OWN_CLIP_CODE).any(axis=2) if own is None else own, size=3)
        known = (~own)[None].astype(np.float32)
        return _Variant(inputs, truth, priors.context(hwc, high, low), known,
                        np.flatnonzero((mask != 0).any(axis=0)))

    def _crop_at(self, v: _Variant, rng: np.random.Generator) -> tuple[int, int]:
        h, w = v.truth.shape[1:]
        c = self.crop
        if len(v.clipped) and rng.random() < self.hard_share:
            centre = int(v.clipped[int(rng.integers(0, len(v.clipped)))])
            cy, cx = divmod(centre, w)
            y = int(np.clip(cy - c // 2 + rng.integers(-c // 4, c // 4 + 1), 0, h - c))
            x = int(np.clip(cx - c // 2 + rng.integers(-c // 4, c // 4 + 1), 0, w - c))
            return y, x
        return int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch for ``step``: inputs N x 12 x crop x crop, truth N x 3 x crop x crop, context
        N x 6, and where the truth is known N x 1 x crop x crop (1, or 0 where the photo itself
        was clipped)."""
        rng = np.random.default_rng([self.seed, step, 5])
        block = step // self.block_steps
        xs, ys, cs, ks = [], [], [], []
        for _ in range(self.batch):
            v = self.variant(block, int(rng.integers(0, self.pool)))
            y, x = self._crop_at(v, rng)
            window = (slice(None), slice(y, y + self.crop), slice(x, x + self.crop))
            inp, tru, known = v.inputs[window], v.truth[window], v.known[window]
            if self.spec.flips and rng.random() < 0.5:  # vertical flips (horizontal ones: per photo)
                inp, tru, known = inp[:, ::-1], tru[:, ::-1], known[:, ::-1]
            xs.append(np.ascontiguousarray(inp))
            ys.append(np.ascontiguousarray(tru))
            cs.append(v.context)
            ks.append(np.ascontiguousarray(known))
        return tuple(torch.from_numpy(np.stack(a)) for a in (xs, ys, cs, ks))  # type: ignore[return-value]
