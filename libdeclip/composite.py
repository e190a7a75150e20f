"""The composite: the output is the input with only the repaired values written in.

The stages before it (the network's tiles, a classical method's estimates) hand it
:class:`Recovered` parts: for one core (a rectangle of the image), the new clip-normalised values of
its *changing* values, in the order the native ``write_core`` reads them: row-major over the core's
pixels, and within a pixel channel by channel, only the values the run's clip codes mark clipped
(all of a pixel's colour values where the run feathers into unclipped ones). :func:`band_parts`
lays out values given per clipped pixel that way; the fit policy then maps every written value
into the output's dtype.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from libdeclip import _native
from libdeclip.fit import DEFAULT_KNEE, DEFAULT_TOE, POLICY_CODES, Fit
from libdeclip.tiling import Tile

__all__ = ["BAND_ROWS", "Recovered", "band_parts", "composite", "output_top"]

#: Rows per band of :func:`band_parts`.
BAND_ROWS = 256


@dataclass
class Recovered:
    """The new clip-normalised values of one tile's changing values (row-major, channel-minor)."""

    tile: Tile
    values: np.ndarray  # float32
    vmin: float
    vmax: float
    #: the plan's tile this one is a part of, when a GPU out of memory split it (else None)
    part_of: Tile | None = None


def output_top(dtype: np.dtype, low: np.ndarray, high: np.ndarray, levels_given: bool) -> float | None:
    """The level an integer picture's output is fitted to when its clip levels were found in its
    values below the dtype's top code (:func:`libdeclip.mask.levels_from_data`): that top code, so
    that the codes between the level and the top hold recovered values (a photo clipped at 250 gets
    251 to 255 back, with ``clamp`` too). None otherwise: the output is fitted to the run's levels
    (a caller's ``clip_levels`` mean the output's range as well)."""
    if levels_given or np.dtype(dtype).kind not in "ui" or np.any(low != 0):
        return None
    top = float(np.iinfo(dtype).max)
    return top if float(high.max()) < top and np.all(high == high[0]) else None


def composite(
    image: np.ndarray, colour: np.ndarray, low: np.ndarray, high: np.ndarray, tolerance: float, feather: int,
    fit: Fit, tiles: Iterable[Tile], recovered: list[Recovered], codes: np.ndarray | None, threads: int,
    out: np.ndarray | None = None, top: float | None = None,
) -> np.ndarray:
    """The output: a copy of ``image`` with each tile's recovered values written in through the
    fit policy (in the image's dtype). ``tiles`` covers the image. ``out``: that copy, when the
    caller has made it (the run does while the model works). ``top``: the high level the output is
    fitted to, when not the run's (:func:`output_top`); ``recovered`` is then taken from the run's
    clip-normalised scale to that one."""
    if top is not None:  # the run's high level is one value for every channel (output_top)
        factor = float(high[0]) / top
        recovered = [Recovered(r.tile, (r.values * factor).astype(np.float32), r.vmin * factor,
                               r.vmax * factor, r.part_of) for r in recovered]
        high = np.full_like(high, top)
    out = image.copy() if out is None else out
    out_colour = out.reshape(out.shape[0], out.shape[1], -1)[..., : colour.shape[2]]
    vmax = max([1.0] + [r.vmax for r in recovered if r.values.size])
    vmin = min([0.0] + [r.vmin for r in recovered if r.values.size])
    reshapes = fit is Fit.COMPRESS and (vmax > 1.0 or vmin < 0.0)
    done = {r.tile for r in recovered} | {r.part_of for r in recovered if r.part_of is not None}
    # The fit curve also moves unclipped values beyond its knee and toe: then every tile. The
    # recovered cores need not be tiles of ``tiles`` (the model's windows follow the clipped
    # regions), so those tiles go first and the recovered cores are written over them.
    rest = [t for t in tiles if t not in done] if reshapes else []
    table = _native.ReshapeTable()  # an integer image's fitted codes, built once for all tiles
    for tile, rec in [(t, None) for t in rest] + [(r.tile, r) for r in recovered]:
        _native.write_core(
            out_colour, colour, low.tolist(), high.tolist(), tolerance, feather,
            tile.y0, tile.y1, tile.x0, tile.x1, None if rec is None else rec.values,
            POLICY_CODES[fit], vmin, vmax, DEFAULT_KNEE, DEFAULT_TOE, reshapes, threads, codes, table,
        )
    return out


def band_parts(height: int, width: int, pixels: np.ndarray, values: np.ndarray, changing: np.ndarray
               ) -> tuple[list[Tile], list[Recovered]]:
    """Bands of rows that cover a ``height`` x ``width`` image, and the :class:`Recovered` part of
    each band that holds a change: ``pixels`` are flat indices (ascending) of the clipped pixels,
    ``values`` their n x C new values, ``changing`` which of them the codes mark clipped (n x C)."""
    bands = [Tile(y, min(height, y + BAND_ROWS), 0, width, y, min(height, y + BAND_ROWS), 0, width)
             for y in range(0, height, BAND_ROWS)]
    starts = np.searchsorted(pixels, np.array([b.y0 for b in bands] + [height], dtype=np.int64) * width)
    parts = []
    for band, a, b in zip(bands, starts[:-1], starts[1:], strict=True):
        if a == b:
            continue
        new = values[a:b][changing[a:b]].astype(np.float32)  # row-major, channel-minor
        parts.append(Recovered(band, new, float(new.min(initial=0.0)), float(new.max(initial=1.0))))
    return bands, parts
