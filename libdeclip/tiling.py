"""Tile plans: cores that cover the image, each run with a halo of at least the receptive field.

Tiles start on multiples of the model's spatial multiple (its total stride), so every tile sees
the same stride phases as a whole-image run, and each halo is at least the receptive-field radius,
so a core pixel sees exactly the inputs it would see in a whole-image run: tiled output equals
whole-image output to float rounding. The image is first padded (symmetrically, bottom and right)
to a multiple of the spatial multiple; tiles at the border stop at that padded edge, just as the
whole-image run does. The native core (``libdeclip._native.gather``) cuts each window and pads it
where it crosses the bottom/right border, without padding the whole image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Tile", "TilePlan", "cover", "plan_tiles", "round_up"]


@dataclass(frozen=True)
class Tile:
    """Core rows/cols ``[y0, y1) x [x0, x1)`` (image coordinates, clipped to the image) and the
    padded-canvas window ``[wy0, wy1) x [wx0, wx1)`` that is fed to the model."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int

    @property
    def core(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.wy0, self.wy1), slice(self.wx0, self.wx1)

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        return (
            slice(self.y0 - self.wy0, self.y1 - self.wy0),
            slice(self.x0 - self.wx0, self.x1 - self.wx0),
        )

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.wy1 - self.wy0, self.wx1 - self.wx0


@dataclass(frozen=True)
class TilePlan:
    height: int
    width: int
    halo: int
    tile_size: int
    tiles: tuple[Tile, ...]

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    def __len__(self) -> int:
        return len(self.tiles)


def round_up(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def cover(
    y0: int, y1: int, x0: int, x1: int, size: int, halo: int, multiple: int, height: int, width: int
) -> list[Tile]:
    """Cover the region ``[y0, y1) x [x0, x1)`` of a ``height`` x ``width`` image with cores of
    ``size``, each with its window: the core rounded up to ``multiple`` plus ``halo`` around it,
    inside the image padded to ``multiple``."""
    ph, pw = round_up(height, multiple), round_up(width, multiple)
    tiles = []
    for ty in range(y0, y1, size):
        for tx in range(x0, x1, size):
            ty1, tx1 = min(ty + size, y1), min(tx + size, x1)
            tiles.append(
                Tile(
                    ty, ty1, tx, tx1,
                    max(0, ty - halo), min(ph, round_up(ty1, multiple) + halo),
                    max(0, tx - halo), min(pw, round_up(tx1, multiple) + halo),
                )
            )
    return tiles


def plan_tiles(height: int, width: int, tile_size: int, radius: int, multiple: int) -> TilePlan:
    """Cover an image with cores of ``tile_size`` (rounded up to ``multiple``) and halos of
    ``radius`` rounded up to ``multiple``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image of {height} x {width}")
    if tile_size <= 0:
        raise ValueError(f"tile size must be positive, got {tile_size}")
    size = round_up(tile_size, multiple)
    halo = round_up(radius, multiple)
    tiles = cover(0, height, 0, width, size, halo, multiple, height, width)
    return TilePlan(height, width, halo, size, tuple(tiles))
