"""Sensor-space samples: a photo taken back to a camera's photosites, clipped there, and shown to
the network exactly as :func:`libdeclip.photosites.declip_raw` shows it a camera RAW ("unprocessing",
Brooks et al. 2019).

The photo's sRGB curve is inverted (linear sRGB); a real camera's colour matrix (read from the RAW
files of ``../shared/data/raw`` by libdeclip's own reader, two of them mixed at random) takes it to
white-balanced camera RGB, and a white balance (drawn around the real ones) is undone: camera RGB
as the sensor records it. Exposed up (its bright end over the white level), laid out as a Bayer
mosaic (random phase), given shot and read noise, the photosites saturate at the white level 1.0.
Then, as the RAW path does: the mask is found on the photosites (a pixel's channel is clipped
where a clipped photosite of that colour lies within :data:`libdeclip.io.raw.DEMOSAIC_REACH`); the
mosaic is demosaiced (bilinearly here; LibRaw's AHD at run time) and white balanced; each channel
keeps its own clip level (white times its gain, the highest scaled to 1); and the colour space
that carries those levels takes it to the model's encoding with :func:`libdeclip.color.to_model`
(with ``camera_rgb``, as the RAW path does now, without the camera's matrix).
The truth is the same mosaic unclipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from libdeclip.color import ColorSpace, ToneCurve, to_model
from libdeclip.io import DEMOSAIC_REACH

#: Bayer layouts: the colour (0 R, 1 G, 2 B) of the photosites at (0, 0), (0, 1), (1, 0), (1, 1).
BAYER_PHASES = {"RGGB": (0, 1, 1, 2), "GRBG": (1, 0, 2, 1), "GBRG": (1, 2, 0, 1), "BGGR": (2, 1, 1, 0)}
#: White-balance gains drawn for red and blue (green 1), around the real files' (2.2 / 1.9 and 2.5 /
#: 1.7): from tungsten-like to shade-like light.
GAIN_RANGES = ((1.4, 2.8), (1.2, 2.4))


@dataclass(frozen=True)
class Camera:
    """What the sampler takes of a real camera: its matrix from white-balanced camera RGB to
    linear sRGB (3 x 3)."""

    name: str
    cam_to_srgb: np.ndarray


def load_cameras(raw_root: str | Path) -> list[Camera]:
    """The colour matrices of the Bayer RAW files below ``raw_root`` (identity matrices, which
    carry no camera's colour, left out)."""
    from libdeclip.io import RAW_SUFFIXES, read_raw

    cameras = []
    for path in sorted(Path(raw_root).iterdir()):
        if path.suffix.lower() not in RAW_SUFFIXES:
            continue
        info = read_raw(path).raw
        assert info is not None
        m = np.array(info.cam_to_srgb, dtype=np.float64).reshape(3, 3)
        if not np.allclose(m, np.eye(3), atol=1e-3):
            cameras.append(Camera(f"{info.make} {info.model}", m))
    if not cameras:
        raise FileNotFoundError(f"no camera RAW with a colour matrix below {raw_root}")
    return cameras


def mosaic(camera: np.ndarray, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """A Bayer mosaic of H x W x 3 camera RGB: (photosite values H x W, their colours H x W uint8).

    >>> values, colours = mosaic(np.arange(12.0).reshape(2, 2, 3), "RGGB")
    >>> values.tolist(), colours.tolist()
    ([[0.0, 4.0], [7.0, 11.0]], [[0, 1], [1, 2]])
    """
    h, w = camera.shape[:2]
    tile = np.array(BAYER_PHASES[phase], dtype=np.uint8).reshape(2, 2)
    colours = np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    values = np.take_along_axis(camera, colours[..., None].astype(np.intp), axis=2)[..., 0]
    return values, colours


def demosaic_bilinear(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """H x W x 3 from a Bayer mosaic: each colour's own photosites as they are, and between them
    the mean of that colour's photosites in the 3 x 3 neighbourhood (bilinear demosaicing)."""
    from scipy.ndimage import uniform_filter

    out = np.empty(values.shape + (3,), dtype=np.float64)
    for k in range(3):
        own = colours == k
        plane = np.where(own, values, 0.0)
        total = uniform_filter(plane, size=3, mode="mirror")
        count = uniform_filter(own.astype(np.float64), size=3, mode="mirror")
        out[..., k] = np.where(own, values, total / np.maximum(count, 1e-12))
    return out


def photosite_mask(clipped_sites: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """H x W x 3: a pixel's channel c is clipped where a clipped photosite of colour c lies within
    :data:`libdeclip.io.raw.DEMOSAIC_REACH` pixels (as the RAW reader flags it)."""
    from scipy.ndimage import maximum_filter

    size = 2 * DEMOSAIC_REACH + 1
    return np.stack([maximum_filter(clipped_sites & (colours == k), size=size, mode="constant")
                     for k in range(3)], axis=-1)


def balanced_space(cam_to_srgb: np.ndarray, relative: np.ndarray) -> ColorSpace:
    """The colour space the RAW path gives the runtime: clip-normalised white-balanced camera RGB
    (each channel divided by its level ``relative``) -> linear sRGB by ``cam_to_srgb`` (the
    identity: the camera's own channels, as the RAW path shows them since 2026-12-03)."""
    linear = ToneCurve("linear")
    return ColorSpace("camera (sampled)", (linear, linear, linear), cam_to_srgb @ np.diag(relative))


def clip_sensor(photo: np.ndarray, cameras: list[Camera], rng: np.random.Generator,
                stops: tuple[float, float] = (0.0, 2.0), photosite_prior: bool = False,
                camera_rgb: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One sensor-space sample of a photo (H x W x 3 uint8): (clipped, truth, mask, estimate), each
    3 x H x W float32 in the model's encoding, as the RAW path shows a RAW to the network; the
    mask +1 where a value is clipped (RAW shadows are not masked). With ``photosite_prior`` the
    estimate is the photosite inpaint opposed of the clipped mosaic
    (:func:`libdeclip.photosites.photosite_opposed`, what the RAW path gives a model with
    ``raw_prior = photosite``), else None. With ``camera_rgb`` the model's encoding is the
    white-balanced camera RGB itself (as the RAW path shows it since 2026-12-03), else camera RGB
    taken to sRGB by the camera's matrix (as it did before; configs from then keep their samples).
    Neither draws from ``rng``: the draws are the same either way."""
    from training.data import srgb_decode

    a, b = (cameras[int(i)] for i in rng.integers(0, len(cameras), size=2))
    t = rng.uniform()
    cam_to_srgb = (1 - t) * a.cam_to_srgb + t * b.cam_to_srgb
    gains = np.array([rng.uniform(*GAIN_RANGES[0]), 1.0, rng.uniform(*GAIN_RANGES[1])])
    linear = srgb_decode(photo.astype(np.float64) / 255.0)
    balanced = linear @ np.linalg.inv(cam_to_srgb).T
    recorded = np.maximum(balanced / gains, 0.0)  # the sensor's camera RGB (a negative one is noise)
    # Exposure: the photo's bright end (the 98th percentile of each pixel's largest channel) lands
    # this many stops over the white level, so its brightest areas saturate whatever its key.
    bright = max(float(np.quantile(recorded.max(axis=2), 0.98)), 1e-3)
    recorded *= 2.0 ** rng.uniform(*stops) / bright
    values, colours = mosaic(recorded, str(rng.choice(list(BAYER_PHASES))))
    if rng.random() < 0.7:  # shot + read noise on the photosites, before they saturate
        shot, read = 10 ** rng.uniform(-4.0, -2.5), 10 ** rng.uniform(-6.0, -4.5)
        values = values + rng.standard_normal(values.shape) * np.sqrt(shot * np.maximum(values, 0) + read)
    clipped_sites = values >= 1.0
    mask = photosite_mask(clipped_sites, colours)
    levels = gains  # white level 1.0 times each channel's gain
    relative = levels / levels.max()
    space = balanced_space(np.eye(3) if camera_rgb else cam_to_srgb, relative)

    def shown(camera: np.ndarray) -> np.ndarray:
        x = camera * gains / levels.max() / relative  # white balanced, clip-normalised per channel
        return to_model(x, space)

    sites = np.minimum(values, 1.0)
    recorded_camera = demosaic_bilinear(sites, colours)
    clipped = shown(recorded_camera)
    truth = shown(demosaic_bilinear(values, colours))
    chw = (2, 0, 1)
    estimate = None
    if photosite_prior:
        from libdeclip.photosites import photosite_opposed

        est = shown(photosite_opposed(sites, colours, recorded_camera, np.ones(3), gains))
        estimate = np.ascontiguousarray(est.transpose(chw), dtype=np.float32)
    return (np.ascontiguousarray(clipped.transpose(chw), dtype=np.float32),
            np.ascontiguousarray(truth.transpose(chw), dtype=np.float32),
            np.ascontiguousarray(mask.transpose(chw), dtype=np.float32), estimate)
