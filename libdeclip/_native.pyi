"""Type stubs of libdeclip._native, the C++ core (bindings/native.cpp). Private: use the modules."""

import numpy as np

class ReshapeTable:
    def __init__(self) -> None: ...

class Space:
    def __init__(
        self,
        trc: list[tuple[int, list[float], list[float], list[float]]],
        to_srgb: list[float],
        from_srgb: list[float],
        srgb_curve: tuple[int, list[float], list[float], list[float]],
        is_srgb: bool,
    ) -> None: ...

def set_threads(threads: int) -> None: ...
def get_threads() -> int: ...
def pow_implementation() -> str: ...
def clip_masks(
    image: np.ndarray, low: list[float], high: list[float], tolerance: float
) -> tuple[np.ndarray, np.ndarray]: ...
def any_clipped(image: np.ndarray, low: list[float], high: list[float], tolerance: float) -> bool: ...
def feather_weights(clipped: np.ndarray, radius: int) -> np.ndarray: ...
def convert(rgb: np.ndarray, space: Space, into_model: bool) -> np.ndarray: ...
def apply_fit(
    values: np.ndarray, policy: int, vmin: float, vmax: float, knee: float, toe: float
) -> np.ndarray: ...
def gather(
    image: np.ndarray, low: list[float], high: list[float], space: Space,
    wy0: int, wy1: int, wx0: int, wx1: int, out: np.ndarray, threads: int = 0,
) -> None: ...
def recover(
    image: np.ndarray, low: list[float], high: list[float], tolerance: float, feather: int, space: Space,
    y0: int, y1: int, x0: int, x1: int, wy0: int, wx0: int, residual: np.ndarray, threads: int = 0,
    codes: np.ndarray | None = None, consistency: bool = True,
) -> tuple[np.ndarray, float, float]: ...
def write_core(
    out: np.ndarray, image: np.ndarray, low: list[float], high: list[float], tolerance: float, feather: int,
    y0: int, y1: int, x0: int, x1: int, values: np.ndarray | None, policy: int,
    vmin: float, vmax: float, knee: float, toe: float, reshapes: bool, threads: int = 0,
    codes: np.ndarray | None = None, table: ReshapeTable | None = None,
) -> None: ...
def opposed_photosites(
    mosaic: np.ndarray, colours: np.ndarray, clip: list[float], gains: list[float]
) -> np.ndarray: ...
def clip_codes(
    image: np.ndarray, low: list[float], high: list[float], tolerance: float, threads: int = 0
) -> np.ndarray: ...
def clipped_values(
    image: np.ndarray, low: list[float], high: list[float], codes: np.ndarray, pixels: np.ndarray,
    rec: np.ndarray, consistency: bool,
) -> tuple[np.ndarray, np.ndarray]: ...
def mask_planes(
    codes: np.ndarray, channels: int, wy0: int, wy1: int, wx0: int, wx1: int, out: np.ndarray
) -> None: ...
def without_specks(codes: np.ndarray, max_pixels: int) -> tuple[np.ndarray, int]: ...
def opposed_rgb(
    image: np.ndarray, low: list[float], high: list[float], space: Space, codes: np.ndarray, border: int,
    min_border: int, threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]: ...
def cross_channel_rgb(
    image: np.ndarray, low: list[float], high: list[float], space: Space, codes: np.ndarray, boxes: list[int],
    min_pixels: float, ridge: float, threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]: ...
def context_sums(
    image: np.ndarray, low: list[float], high: list[float], space: Space, codes: np.ndarray, ring: int,
    threads: int = 0,
) -> list[float]: ...
