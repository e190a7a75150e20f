"""Declip a real photo and save a before/after picture.

    python examples/demo.py [PHOTO] [OUT.png]

Top row: the photo as shot | declipped (as a display shows it, clamped to white).
Bottom row: the same two, 2 stops darker in linear light, which reveals what was recovered
above white: blown areas are flat in the original and hold a reconstructed highlight after.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import libdeclip

HERE = Path(__file__).resolve().parent


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    return np.sign(v) * np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    return np.sign(v) * np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)


def _to_8bit(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)


def _darker(v: np.ndarray, stops: float) -> np.ndarray:
    return _linear_to_srgb(_srgb_to_linear(v) * 2.0**-stops)


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else HERE / "night_lamps.png"
    dst = Path(argv[1]) if len(argv) > 1 else Path("demo_out") / "night_lamps_before_after.png"
    try:
        with Image.open(src) as im:
            photo = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {src}: {exc}", file=sys.stderr)
        return 2
    repaired = libdeclip.declip(photo)
    clipped = (photo >= 1.0 - libdeclip.mask.DEFAULT_TOLERANCE).any(axis=2)
    rows = [
        np.concatenate([_to_8bit(photo), _to_8bit(repaired)], axis=1),
        np.concatenate([_to_8bit(_darker(photo, 2)), _to_8bit(_darker(repaired, 2))], axis=1),
    ]
    canvas = Image.fromarray(np.concatenate(rows, axis=0))
    draw = ImageDraw.Draw(canvas)
    w, h = photo.shape[1], photo.shape[0]
    for x, y, text in [(8, 8, "as shot"), (w + 8, 8, "declipped"),
                       (8, h + 8, "as shot, -2 EV"), (w + 8, h + 8, "declipped, -2 EV")]:
        draw.text((x + 1, y + 1), text, fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255))
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=dst.parent)
    os.close(fd)
    canvas.save(tmp)
    os.replace(tmp, dst)
    print(f"{src.name}: {clipped.mean():.1%} of pixels clipped; brightest recovered value "
          f"{repaired.max():.2f} x white")
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
