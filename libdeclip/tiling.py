"""Tile plans: cores that cover the image, each run with a halo of at least the receptive field.

Tiles start on multiples of the model's spatial multiple (its total stride), so every tile sees
the same stride phases as a whole-image run, and each halo is at least the receptive-field radius,
so a core pixel sees exactly the inputs it would see in a whole-image run: tiled output equals
whole-image output to float rounding. The image is first padded (symmetrically, bottom and right)
to a multiple of the spatial multiple; tiles at the border stop at that padded edge, just as the
whole-image run does. The native core (``libdeclip._native.gather``) cuts each window and pads it
where it crosses the bottom/right border, without padding the whole image.

>>> plan = plan_tiles(1000, 1500, tile_size=512, radius=93, multiple=16)
>>> len(plan), plan.halo                    # 2 x 3 cores, each with a 96 px halo
(6, 96)
>>> t = plan.tiles[0]
>>> (t.y0, t.y1, t.x0, t.x1), (t.wy0, t.wy1, t.wx0, t.wx1)
((0, 512, 0, 512), (0, 608, 0, 608))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "WINDOW_CELL", "Tile", "TilePlan", "cover", "grow_windows", "plan_regions", "plan_tiles", "plan_windows",
    "round_up",
]

#: The model's windows are planned on a grid of cells of this many pixels (rounded up to the
#: model's spatial multiple): a cell holding a value to repair is run, an empty one is not.
WINDOW_CELL = 32


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


def _cells(changing: np.ndarray, cell: int) -> np.ndarray:
    """Which ``cell`` x ``cell`` cells of an H x W bool image hold a True pixel (the last row and
    column of cells may be cut by the image's edge)."""
    h, w = changing.shape
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.zeros((gh * cell, gw * cell), dtype=bool)
    padded[:h, :w] = changing
    return np.asarray(padded.reshape(gh, cell, gw, cell).any(axis=(1, 3)))


def plan_windows(
    changing: np.ndarray, tile_size: int, radius: int, multiple: int, reach: int = 0, cell: int | None = None,
) -> list[Tile]:
    """Cores (each with its window, as :func:`cover` makes them) around the pixels the model must
    repair: ``changing`` is H x W bool (with ``reach``, pixels that many pixels from one count too:
    the feather). The image is cut into cells of ``cell`` pixels (default :data:`WINDOW_CELL`,
    rounded up to ``multiple``);
    cells holding such a pixel that lie within a halo of each other form a group (separate
    windows would each pay a halo), and each group's bounding box is covered with cores of
    ``tile_size``, each shrunk to the bounding box of the group's cells in it (dropped when it
    holds none). Every core starts on a
    multiple of ``multiple`` and has the full halo, so the output does not depend on the plan:
    any ``tile_size`` or ``cell`` gives the whole-image run's values."""
    from scipy import ndimage

    h, w = changing.shape
    size, halo = round_up(tile_size, multiple), round_up(radius, multiple)
    cell = round_up(max(WINDOW_CELL if cell is None else cell, 1), multiple)
    cells = _cells(changing, cell)
    if reach > 0:
        cells = ndimage.binary_dilation(cells, np.ones((3, 3), bool), iterations=-(-reach // cell))
    if not cells.any():
        return []
    grow = -(-halo // cell)
    near = ndimage.binary_dilation(cells, np.ones((2 * grow + 1, 2 * grow + 1), bool)) if grow else cells
    groups: np.ndarray = ndimage.label(near)[0]
    tiles: list[Tile] = []
    for index, found in enumerate(ndimage.find_objects(groups), start=1):
        if found is None:
            continue
        mine = cells[found] & (groups[found] == index)
        rows, cols = np.nonzero(mine.any(axis=1))[0], np.nonzero(mine.any(axis=0))[0]
        if rows.size == 0:
            continue
        oy, ox = found[0].start, found[1].start
        y0, y1 = (oy + rows[0]) * cell, min(h, (oy + rows[-1] + 1) * cell)
        x0, x1 = (ox + cols[0]) * cell, min(w, (ox + cols[-1] + 1) * cell)
        for tile in cover(y0, y1, x0, x1, size, halo, multiple, h, w):
            # the core shrunk to the group's cells in it (none: dropped), with its own window
            cy0, cx0 = tile.y0 // cell - oy, tile.x0 // cell - ox
            part = mine[cy0 : -(-tile.y1 // cell) - oy, cx0 : -(-tile.x1 // cell) - ox]
            rows, cols = np.nonzero(part.any(axis=1))[0], np.nonzero(part.any(axis=0))[0]
            if rows.size:
                ty0, tx0 = (oy + cy0 + rows[0]) * cell, (ox + cx0 + cols[0]) * cell
                ty1, tx1 = min(h, (oy + cy0 + rows[-1] + 1) * cell), min(w, (ox + cx0 + cols[-1] + 1) * cell)
                tiles += cover(ty0, ty1, tx0, tx1, size, halo, multiple, h, w)
    return tiles


def plan_regions(changing: np.ndarray, margin: int, cell: int | None = None) -> list[Tile]:
    """Non-overlapping cores that each hold whole clipped regions (``changing``: H x W bool), with
    a window of the core grown by ``margin`` (inside the image), for methods that solve a region
    as a whole (biharmonic inpainting). Cells (:data:`WINDOW_CELL`) holding such a pixel that touch
    or lie within ``margin`` of each other share a core; cores whose boxes would overlap merge."""
    from scipy import ndimage

    h, w = changing.shape
    cell = max(WINDOW_CELL if cell is None else cell, 1)
    cells = _cells(changing, cell)
    if not cells.any():
        return []
    grow = max(1, -(-margin // cell))
    claimed = ndimage.binary_dilation(cells, np.ones((2 * grow + 1,) * 2, bool))
    while True:  # each group's box, filled; boxes that overlap become one group, until none do
        groups: np.ndarray = ndimage.label(claimed, np.ones((3, 3), bool))[0]
        boxes = [found for found in ndimage.find_objects(groups) if found is not None]
        filled = np.zeros_like(claimed)
        for found in boxes:
            filled[found] = True
        if np.array_equal(filled, claimed):
            break
        claimed = filled
    tiles = []
    for found in boxes:
        mine = cells[found]
        rows, cols = np.nonzero(mine.any(axis=1))[0], np.nonzero(mine.any(axis=0))[0]
        if rows.size == 0:
            continue
        y0, y1 = (found[0].start + rows[0]) * cell, min(h, (found[0].start + rows[-1] + 1) * cell)
        x0, x1 = (found[1].start + cols[0]) * cell, min(w, (found[1].start + cols[-1] + 1) * cell)
        tiles.append(Tile(y0, y1, x0, x1, max(0, y0 - margin), min(h, y1 + margin),
                          max(0, x0 - margin), min(w, x1 + margin)))
    return tiles


def grow_windows(tiles: list[Tile], step: int, height: int, width: int) -> list[Tile]:
    """Each tile's window grown to sides that are multiples of ``step`` (a multiple of the model's
    spatial multiple) inside the ``height`` x ``width`` padded canvas, its core unchanged: a window
    with more context around a core gives the core the same values, and windows of few shapes run
    as batches. Where the canvas is smaller than the grown side, the window is the canvas's side."""

    def grow(a0: int, a1: int, size: int) -> tuple[int, int]:
        want = min(size, round_up(a1 - a0, step))
        end = min(size, a0 + want)
        return end - want, end  # moved back where the canvas's edge stops it

    out = []
    for t in tiles:
        wy0, wy1 = grow(t.wy0, t.wy1, height)
        wx0, wx1 = grow(t.wx0, t.wx1, width)
        out.append(Tile(t.y0, t.y1, t.x0, t.x1, wy0, wy1, wx0, wx1))
    return out
