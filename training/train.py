"""Train the DeclipNet generator.

    python -m training.train --config training/configs/NAME.toml [--steps N] [--out-dir DIR]
    torchrun --nproc_per_node 2 -m training.train --config ...   # DistributedDataParallel

The run folder holds ``checkpoint.pt`` (everything needed to resume exactly; written atomically),
``loss.csv`` and ``loss.png``. Running the same command again resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from training.config import Config, load_config
from training.data import ClipSampler, ClipSpec, PriorSampler
from training.losses import (
    chroma_l1,
    discriminator_loss,
    encoded_l1,
    generator_adversarial_loss,
    mse_loss,
    perceptual_loss,
)
from training.models import PRIOR_LAYOUTS, AnyGenerator, Discriminator, PriorGenerator, build_generator
from training.vgg import build_perceptual_net

# identity_mse: the MSE of the clipped input itself, the baseline the generator must beat.
# pixel / chroma: v3's encoded losses; base_pixel: the pixel loss of the classical estimate it starts
# from (what v3 must beat), base_chroma likewise.
CSV_FIELDS = ["step", "total", "mse", "perceptual", "adversarial", "disc", "sec_per_step", "identity_mse",
              "pixel", "base_pixel", "chroma", "base_chroma", "lr"]
PIXEL_LOSSES = ("mse", "encoded-l1", "encoded-l2")
LR_SCHEDULES = ("constant", "linear")


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def state_sha256(modules: list[nn.Module]) -> str:
    """Digest of parameters and buffers, to compare replicas and checkpoints."""
    h = hashlib.sha256()
    for m in modules:
        for k, v in sorted(_unwrap(m).state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable training checkpoint ({exc})") from None


def input_channels(cfg: dict[str, Any]) -> int:
    """3 (RGB) or 6 (RGB and the signed clip mask); checkpoints before v2 hold RGB models."""
    return 6 if cfg.get("mask_input") else 3


def transplant_lite(prior: PriorGenerator, lite_state: dict[str, torch.Tensor]) -> None:
    """Start a v3 generator from a v2 ("lite", mask input) one of the same width: every layer
    copied, the first convolution's weights for the picture and mask channels copied and those for
    the estimates zero, the last layer left at zero (so the v3 generator starts as its classical
    base, with v2's features to learn from)."""
    body = prior.body.state_dict()
    for key, value in lite_state.items():
        if key not in body:
            raise ValueError(f"the v2 state has a layer {key!r} that a v3 body lacks")
        if key.startswith("head."):
            continue
        target = body[key]
        if key == "e1.0.0.weight":  # conv over the unshuffled input: 4 phases x channel
            if value.shape[1] != 24 or target.shape[0] != value.shape[0]:
                raise ValueError(f"cannot start from a v2 first layer of shape {tuple(value.shape)}")
            target.zero_()
            target[:, : value.shape[1]] = value
        elif target.shape != value.shape:
            raise ValueError(f"layer {key!r}: v2 {tuple(value.shape)} vs v3 {tuple(target.shape)}")
        else:
            target.copy_(value)
    prior.body.load_state_dict(body)


def phase_head_from_smooth(phase: PriorGenerator, smooth_state: dict[str, torch.Tensor]) -> None:
    """Start a "prior-phase" v3 generator from a "prior" one: every layer copied, and each of the
    four phases of a channel in the phase head given the smooth head's weights for that channel,
    so the residual starts as the smooth one upsampled by nearest neighbour (bilinear before)."""
    state = dict(smooth_state)  # the head's two entries replaced, the caller's state untouched
    for name in ("body.head.weight", "body.head.bias"):
        smooth = state.get(name)
        if smooth is None or smooth.shape[0] != 3:
            shape = None if smooth is None else tuple(smooth.shape)
            raise ValueError(f"not a 'prior' v3 generator state: {name} is {shape}")
        # PixelShuffle(2) takes channel 4 * c + phase to output channel c
        state[name] = smooth.repeat_interleave(4, dim=0)
    phase.load_state_dict(state)


def generator_from_checkpoint(ckpt: dict[str, Any]) -> AnyGenerator:
    cfg = ckpt["config"]
    channels = input_channels(cfg) if cfg["layout"] == "lite" else None
    g = build_generator(cfg["layout"], cfg["width"], channels)
    g.load_state_dict(ckpt["generator"])
    return g


class _Batches(torch.utils.data.Dataset[tuple[torch.Tensor, ...]]):
    """Steps ``start..end-1`` as a dataset, so worker processes can draw batches ahead."""

    def __init__(self, sampler: ClipSampler | PriorSampler, start: int, end: int) -> None:
        self.sampler, self.start, self.end = sampler, start, end

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.sampler.batch_at(self.start + i)


def plot_losses(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("total", "mse", "perceptual", "adversarial", "identity_mse"):
        vals = [float(r.get(key) or 0) for r in rows]
        if any(v != 0 for v in vals):
            style = ":" if key == "identity_mse" else "-"
            axes[0].plot(steps, vals, style, label=key if key != "identity_mse" else "mse of the input")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("generator losses")
    axes[0].legend()
    # The batches' clipping varies a lot from step to step: show the generator's MSE relative to
    # the input's own, smoothed, to see the learning.
    ratio = [
        float(r["mse"]) / float(r["identity_mse"]) for r in rows if float(r.get("identity_mse") or 0) > 0
    ]
    if ratio:
        k = max(1, len(ratio) // 20)
        smooth = np.convolve(ratio, np.ones(k) / k, mode="valid")
        axes[1].plot(steps[-len(ratio) :][k - 1 :], smooth, color="tab:green", label="generator / input MSE")
    disc = [float(r["disc"]) for r in rows]
    if any(disc):
        axes[1].plot(steps, disc, color="tab:red", label="discriminator loss")
    axes[1].set_xlabel("step")
    axes[1].set_title("learning progress")
    axes[1].legend()
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)


class Trainer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed:
            backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
            dist.init_process_group(backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if cfg.device.startswith("cuda"):
                local = int(os.environ.get("LOCAL_RANK", "0"))
                cfg.device = f"cuda:{local}"
                torch.cuda.set_device(local)
        else:
            self.rank, self.world = 0, 1
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device)
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)

        if cfg.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {PIXEL_LOSSES}, not {cfg.pixel_loss!r}")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {cfg.lr_schedule!r}")
        self.prior = cfg.layout in PRIOR_LAYOUTS
        spec = ClipSpec(
                over_range=cfg.over_range,
                under_range=cfg.under_range,
                per_channel=cfg.per_channel,
                quantise=cfg.quantise,
                jpeg_quality=cfg.jpeg_quality,
                jpeg_probability=cfg.jpeg_probability,
                flips=cfg.flips,
                camera_probability=cfg.camera_probability,
                camera_stops_over=cfg.camera_stops_over,
                mask_channels=cfg.mask_input,
                sensor_probability=cfg.sensor_probability,
                sensor_photosite_prior=cfg.sensor_photosite_prior,
                sensor_camera_rgb=cfg.sensor_camera_rgb,
        )
        if cfg.sensor_probability > 0 and not self.prior:
            raise ValueError("sensor_probability needs the 'prior' layout (training.data.PriorSampler)")
        self.sampler: ClipSampler | PriorSampler
        if self.prior:
            if self.world > 1:
                raise ValueError("the prior layout trains in one process (its pools are per process)")
            self.sampler = PriorSampler(
                cfg.data_root, crop=cfg.crop, batch=cfg.batch, spec=spec, seed=cfg.seed,
                max_images=cfg.max_images, pool=cfg.prior_pool, block_steps=cfg.prior_block_steps,
                hard_share=cfg.hard_share, max_side=cfg.prior_max_side, raw_root=cfg.raw_root,
                downscale=cfg.prior_downscale,
            )
        else:
            self.sampler = ClipSampler(
                cfg.data_root, crop=cfg.crop, batch=cfg.batch, spec=spec, seed=cfg.seed,
                rank=self.rank, world_size=self.world, max_images=cfg.max_images,
            )
        if cfg.mask_input and cfg.layout not in ("lite", *PRIOR_LAYOUTS):
            raise ValueError(f"mask_input needs the 'lite' or a 'prior' layout, not {cfg.layout!r}")
        channels = input_channels(cfg.to_dict()) if cfg.layout == "lite" else None
        g: nn.Module = build_generator(cfg.layout, cfg.width, channels).to(self.device)
        if self.device.type == "cuda":
            g = g.to(memory_format=torch.channels_last)
        d: nn.Module | None = Discriminator(cfg.disc_width).to(self.device) if cfg.adversarial else None
        self.vgg = (
            build_perceptual_net(cfg.perceptual_network, cfg.perceptual_layers, cfg.perceptual_weights).to(
                self.device
            )
            if cfg.perceptual
            else None
        )
        self.opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
        self.opt_d = (
            torch.optim.SGD(d.parameters(), lr=cfg.lr * cfg.disc_lr_ratio) if d is not None else None
        )
        self.step = 0
        self.wall = 0.0
        self.history: list[dict[str, Any]] = []
        ckpt_path = self.out / "checkpoint.pt"
        if ckpt_path.exists():
            ck = load_checkpoint(ckpt_path)
            g.load_state_dict(ck["generator"])
            self.opt_g.load_state_dict(ck["opt_g"])
            if d is not None:
                if ck.get("discriminator") is None:
                    raise ValueError(f"{ckpt_path}: has no discriminator but the config is adversarial")
                d.load_state_dict(ck["discriminator"])
                assert self.opt_d is not None
                self.opt_d.load_state_dict(ck["opt_d"])
            self.step, self.wall = int(ck["step"]), float(ck["wall_seconds"])
            # the last record describes this folder's run so far; the next checkpoint rewrites it
            self.history = list(ck["history"])[:-1]
            self._log(f"resumed from {ckpt_path} at step {self.step}")
        elif cfg.init_from:
            ck = load_checkpoint(cfg.init_from)
            if self.prior and ck["config"]["layout"] == "lite":
                assert isinstance(g, PriorGenerator)
                transplant_lite(g, ck["generator"])
            elif ck["config"]["layout"] == "prior" and cfg.layout == "prior-detail":
                # v3 going on with detail layers: those start at zero, so the output is unchanged
                missing, unexpected = g.load_state_dict(ck["generator"], strict=False)
                if unexpected or any(not key.startswith("detail.") for key in missing):
                    raise ValueError(f"{cfg.init_from}: not a v3 generator state ({unexpected or missing})")
            elif ck["config"]["layout"] == "prior" and cfg.layout == "prior-phase":
                assert isinstance(g, PriorGenerator)
                phase_head_from_smooth(g, ck["generator"])
            else:
                g.load_state_dict(ck["generator"])
            if d is not None and ck.get("discriminator") is not None:  # a GAN stage going on
                d.load_state_dict(ck["discriminator"])
            self.history = list(ck["history"])
            self._log(f"generator initialised from {cfg.init_from} (step {ck['step']})")
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            g = nn.parallel.DistributedDataParallel(g, device_ids=ids)
            if d is not None:
                d = nn.parallel.DistributedDataParallel(d, device_ids=ids)
        self.g, self.d = g, d

    def _log(self, msg: str) -> None:
        if self.rank == 0:
            tqdm.write(f"[{self.cfg.name}] {msg}", file=sys.stderr)

    def learning_rate(self, step: int) -> float:
        if self.cfg.lr_schedule == "linear":
            return self.cfg.lr * max(0.0, 1.0 - step / self.cfg.steps)
        return self.cfg.lr

    def train_step(
        self, step: int, batch: tuple[torch.Tensor, ...] | None = None
    ) -> dict[str, float]:
        cfg = self.cfg
        batch = batch if batch is not None else self.sampler.batch_at(step)
        x, y = batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)
        context = batch[2].to(self.device) if self.prior else None
        known = batch[3].to(self.device) if len(batch) > 3 else None
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        rgb = x[:, :3]  # the input's colour; a mask-input model also gets the mask channels
        lr = self.learning_rate(step)
        for group in self.opt_g.param_groups:
            group["lr"] = lr
        self.g.train()
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and self.device.type == "cuda")
        with amp:
            # v3 returns the repaired picture; v1 and v2 a residual on the input
            out = self.g(x, context).float() if self.prior else rgb + self.g(x).float()
        stats = {"disc": 0.0, "perceptual": 0.0, "adversarial": 0.0, "lr": lr}
        if self.d is not None:
            assert self.opt_d is not None
            self.d.train()
            with amp:
                logits = self.d(torch.cat([y, out.detach()])).float()
            loss_d = discriminator_loss(logits[: len(y)], logits[len(y) :])
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            stats["disc"] = loss_d.item()
        l_mse = mse_loss(out, y)
        if cfg.pixel_loss in ("encoded-l1", "encoded-l2"):
            power = 2 if cfg.pixel_loss == "encoded-l2" else 1
            clipped = x[:, 3:6] != 0 if x.shape[1] >= 6 else torch.zeros_like(y, dtype=torch.bool)
            all_clipped = (x[:, 3:6] > 0.5).all(dim=1, keepdim=True) if x.shape[1] >= 6 else clipped[:, :1]
            l_pixel = encoded_l1(out, y, clipped, cfg.encoding_mu, cfg.clipped_weight, known, power)
            total = cfg.w_mse * l_pixel
            stats["pixel"] = l_pixel.item()
            if cfg.w_chroma > 0:
                l_chroma = chroma_l1(out, y, all_clipped, cfg.encoding_mu, known, power)
                total = total + cfg.w_chroma * l_chroma
                stats["chroma"] = l_chroma.item()
            if self.prior:
                with torch.no_grad():
                    base = _unwrap(self.g).classical(x)
                    stats["base_pixel"] = encoded_l1(
                        base, y, clipped, cfg.encoding_mu, cfg.clipped_weight, known, power).item()
                    stats["base_chroma"] = chroma_l1(
                        base, y, all_clipped, cfg.encoding_mu, known, power).item()
        else:
            total = cfg.w_mse * l_mse
        if self.vgg is not None:
            with amp:
                with torch.no_grad():
                    truth_feats = [f.float() for f in self.vgg(y)]
                out_feats = [f.float() for f in self.vgg(out)]
            l_perc = perceptual_loss(out_feats, truth_feats, cfg.perceptual_feature_scale)
            total = total + cfg.w_perceptual * l_perc
            stats["perceptual"] = l_perc.item()
        if self.d is not None:
            with amp:
                fake_logits = self.d(out).float()
            l_adv = generator_adversarial_loss(fake_logits)
            total = total + cfg.w_adversarial * l_adv
            stats["adversarial"] = l_adv.item()
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.g.parameters(), cfg.grad_clip)
        self.opt_g.step()
        stats["mse"] = l_mse.item()
        stats["identity_mse"] = mse_loss(rgb, y).item()
        stats["total"] = total.item()
        return stats

    def _sync_buffers(self) -> None:
        """Make every replica hold rank 0's batch-norm statistics.

        DDP broadcasts buffers from rank 0 at the start of each forward pass, but the last forward
        of a step updates each replica's running statistics from its own batch.
        """
        if self.distributed:
            for m in (self.g, self.d):
                if m is not None:
                    for buf in _unwrap(m).buffers():
                        dist.broadcast(buf, src=0)

    def _shutdown_distributed(self) -> None:
        """Leave the process group so that no rank exits while a peer still talks to it.

        Without this, a rank that exits first can abort (SIGABRT, "terminate called without an
        active exception") inside gloo's threads: the DDP reducers hold the process group, so they
        are dropped first, then every rank meets at a barrier before the group is destroyed.
        """
        self.g = _unwrap(self.g)
        if self.d is not None:
            self.d = _unwrap(self.d)
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()

    def checkpoint(self) -> Path:
        path = self.out / "checkpoint.pt"
        self._sync_buffers()
        if self.rank != 0:
            return path
        d = _unwrap(self.d) if self.d is not None else None
        record = {
            "name": self.cfg.name,
            "steps": self.step,
            "crop": self.cfg.crop,
            "batch": self.cfg.batch,
            "lr": self.cfg.lr,
            "layout": self.cfg.layout,
            "mask_input": self.cfg.mask_input,
            "camera_probability": self.cfg.camera_probability,
            "prior_downscale": self.cfg.prior_downscale,
            "camera_stops_over": list(self.cfg.camera_stops_over),
            "jpeg_probability": self.cfg.jpeg_probability,
            "pixel_loss": self.cfg.pixel_loss,
            "clipped_weight": self.cfg.clipped_weight,
            "w_chroma": self.cfg.w_chroma,
            "lr_schedule": self.cfg.lr_schedule,
            "losses": {
                "mse": self.cfg.w_mse,
                "perceptual": self.cfg.w_perceptual,
                "adversarial": self.cfg.w_adversarial,
            },
            "perceptual_network": self.cfg.perceptual_network if self.cfg.perceptual else None,
            "perceptual_layers": list(self.cfg.perceptual_layers) if self.cfg.perceptual else None,
            "perceptual_feature_scale": self.cfg.perceptual_feature_scale,
            "wall_seconds": round(self.wall, 1),
            "world_size": self.world,
            "device": str(self.device),
            "data_root": self.cfg.data_root,
            "images": len(self.sampler.paths),
        }
        atomic_save(
            {
                "format": "declipnet-checkpoint-1",
                "step": self.step,
                "wall_seconds": self.wall,
                "config": self.cfg.to_dict(),
                "generator": _unwrap(self.g).state_dict(),
                "discriminator": d.state_dict() if d is not None else None,
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                "history": self.history + [record],
            },
            path,
        )
        return path

    def _csv(self) -> tuple[Any, Any]:
        path = self.out / "loss.csv"
        rows: list[dict[str, str]] = []
        if path.exists():  # keep only what precedes the resume point
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        f = open(path, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        return f, writer

    def run(self) -> None:
        cfg = self.cfg
        if self.step >= cfg.steps:
            self._log(f"already at step {self.step} >= {cfg.steps}; nothing to do")
        f, writer = self._csv() if self.rank == 0 else (None, None)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=self.rank != 0,
            desc=cfg.name,
            unit="step",
            file=sys.stderr,
            mininterval=10,
        )
        acc: dict[str, float] = {}
        n_acc = 0
        started = time.perf_counter()
        batches = iter(
            torch.utils.data.DataLoader(
                _Batches(self.sampler, self.step, cfg.steps),
                batch_size=None,
                num_workers=cfg.workers,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if cfg.workers else None,
            )
        )
        try:
            while self.step < cfg.steps:
                if cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds:
                    self._log(f"stopping at step {self.step}: max_seconds {cfg.max_seconds:g} reached")
                    self.checkpoint()
                    if self.rank == 0:
                        plot_losses(self.out / "loss.csv", self.out / "loss.png")
                    break
                t0 = time.perf_counter()
                stats = self.train_step(self.step, next(batches))
                dt = time.perf_counter() - t0
                self.wall += dt
                self.step += 1
                for k, v in stats.items():
                    acc[k] = acc.get(k, 0.0) + v
                acc["sec_per_step"] = acc.get("sec_per_step", 0.0) + dt
                n_acc += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    row = {k: f"{v / n_acc:.6g}" for k, v in acc.items()}
                    row["step"] = str(self.step)
                    if writer is not None:
                        writer.writerow(row)
                        f.flush()
                    bar.set_postfix(loss=row["total"], mse=row["mse"])
                    acc, n_acc = {}, 0
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.checkpoint()
                    if self.rank == 0:
                        plot_losses(self.out / "loss.csv", self.out / "loss.png")
        finally:
            bar.close()
            if f is not None:
                f.close()
        if self.distributed:
            self._sync_buffers()
            digest = state_sha256([m for m in (self.g, self.d) if m is not None])
            digests: list[Any] = [None] * self.world
            dist.all_gather_object(digests, digest)
            if self.rank == 0:
                (self.out / "replicas.json").write_text(json.dumps({"sha256": digests}, indent=1))
                if len(set(digests)) != 1:
                    self._log(f"WARNING: replicas disagree: {digests}")
            self._shutdown_distributed()
        self._log(f"done at step {self.step}; {self.wall:.0f} s of training in total")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each VALUE read as TOML (a bare word that is not TOML: a string)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="TOML file, e.g. training/configs/paper.toml")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--out-dir", help="override the run folder")
    p.add_argument("--threads", type=int, help="torch threads per process")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--max-seconds", type=float, help="stop with a checkpoint after this much time")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key; VALUE is read as TOML (e.g. --set workers=4 "
        "--set 'data_root=\"/data/train\"'), a bare word as a string",
    )
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        for key in ("steps", "out_dir", "threads", "device", "max_seconds"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        cfg = load_config(args.config, **overrides)
        Trainer(cfg).run()
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
