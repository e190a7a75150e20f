"""The model runs on windows sized to the clipped regions, and specks keep their recorded values:
the plan never changes the output, and specks cost the network nothing."""

from __future__ import annotations

import numpy as np
import pytest

import libdeclip.tiling as tiling
from libdeclip import Declipper
from libdeclip.mask import SPECK_PIXELS, clip_codes, without_specks
from libdeclip.tiling import plan_windows


def _photo(demo_rgb: np.ndarray) -> np.ndarray:
    """The demo photo (real blown lamps) as float, with a few single clipped values added far
    from its highlights, as JPEG ringing leaves them."""
    photo = (demo_rgb / np.float32(255)).astype(np.float32)
    for y, x in [(5, 5), (40, 300), (200, 20), (300, 450)]:
        photo[y, x, 1] = 1.0
    return photo


def test_without_specks_clears_small_components_only() -> None:
    codes = np.zeros((2100, 40), np.uint8)
    codes[10, 10] = 1  # one pixel
    codes[20:22, 20:22] = 9  # four pixels (high R, low R): still a speck at the default 4
    codes[100:103, 5:7] = 2  # six pixels
    codes[1022:1027, 30] = 4  # five pixels across the first band edge (1024): not a speck
    codes[2040, 0:3] = 2  # three pixels on the last band
    cleared, n = without_specks(codes, 4)
    assert n == 1 + 4 + 3
    assert not cleared[10, 10] and not cleared[20:22, 20:22].any() and not cleared[2040, :3].any()
    assert cleared[100:103, 5:7].all() and cleared[1022:1027, 30].all()
    assert codes[10, 10] == 1  # the input is not changed
    assert without_specks(codes, 0)[0] is codes and without_specks(codes, 4)[0] is not codes
    diagonal = np.zeros((8, 8), np.uint8)
    diagonal[np.arange(5), np.arange(5)] = 1  # 8-connected: one component of five
    assert without_specks(diagonal, 4)[1] == 0 and without_specks(diagonal, 5)[1] == 5


def test_windows_cover_every_clipped_pixel_with_cores_sized_to_the_regions() -> None:
    changing = np.zeros((1000, 1500), bool)
    changing[100:110, 200:212] = True  # a small light
    changing[600:900, 300:1100] = True  # a blown sky
    tiles = plan_windows(changing, 512, 93, 16)
    covered = np.zeros_like(changing, dtype=int)
    for t in tiles:
        covered[t.core] += 1
        assert t.y0 % 16 == 0 and t.x0 % 16 == 0  # every core on the model's stride phase
        assert t.wy0 == max(0, t.y0 - 96) and t.wx0 == max(0, t.x0 - 96)  # the full halo
    assert (covered[changing] == 1).all() and covered.max() == 1  # all covered, no core twice
    small = [t for t in tiles if t.y0 <= 100 < t.y1 and t.x0 <= 200 < t.x1]
    assert len(small) == 1 and (small[0].y1 - small[0].y0) <= 32 and (small[0].x1 - small[0].x0) <= 32
    assert sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in tiles) < 0.2 * changing.size
    assert plan_windows(np.zeros((50, 50), bool), 512, 93, 16) == []


@pytest.fixture(scope="module")
def reference(demo_rgb: np.ndarray) -> np.ndarray:
    """Every tile of the image run, no speck rule: what any plan must give."""
    with Declipper(device="cpu", skip_unclipped=False, speck_pixels=0) as session:
        return session.run(_photo(demo_rgb), fit="float")


@pytest.mark.parametrize("tile_size, cell", [(512, 32), (128, 16), (256, 64), (96, 48)])
def test_windows_planned_differently_give_the_same_output(
    demo_rgb: np.ndarray, reference: np.ndarray, tile_size: int, cell: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiling, "WINDOW_CELL", cell)
    with Declipper(device="cpu", tile_size=tile_size, speck_pixels=0) as session:
        windows = session.windows(_photo(demo_rgb))
        out = session.run(_photo(demo_rgb), fit="float")
    assert len(windows) > 0
    if tile_size < 512:  # smaller cores follow the regions: they leave unclipped parts out
        assert sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in windows) < demo_rgb[..., 0].size
    np.testing.assert_allclose(out, reference, rtol=0, atol=2e-6)


def test_specks_keep_their_recorded_values(demo_rgb: np.ndarray, reference: np.ndarray) -> None:
    photo = _photo(demo_rgb)
    codes = clip_codes(photo, 0.0, 1.0, 1 / 255)
    _, cleared = without_specks(codes, SPECK_PIXELS)
    specks = (codes != 0) & (without_specks(codes, SPECK_PIXELS)[0] == 0)
    assert cleared > 4 and specks[5, 5] and specks[40, 300]
    with Declipper(device="cpu", tile_size=128) as session:
        out = session.run(photo, fit="float")
    with Declipper(device="cpu", skip_unclipped=False) as session:
        every_tile = session.run(photo, fit="float")  # the speck rule, no windows
    np.testing.assert_array_equal(out[specks], photo[specks])  # as recorded
    assert not np.array_equal(reference[specks], photo[specks])  # the network would have moved them
    # the regions: whatever the plan (a speck is no clipped value to the network, in its mask
    # input too, so the regions near specks differ from the run without the rule)
    np.testing.assert_allclose(out, every_tile, rtol=0, atol=2e-6)
    unclipped = codes == 0
    np.testing.assert_array_equal(out[unclipped], photo[unclipped])


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("method", ["inpaint-opposed", "cross-channel", "biharmonic"])
def test_classical_methods_equal_the_whole_image_method(demo_rgb: np.ndarray, method: str,
                                                        grey: bool) -> None:
    """The classical methods as the library runs them (cross-channel and inpaint opposed native,
    with values at the clipped pixels only; biharmonic region by region): the same values as the
    numpy method on the whole image at once (a grey image as three equal channels, averaged
    back)."""
    from libdeclip import declip
    from libdeclip.classic import reconstruct
    from libdeclip.color import from_model, get_colorspace, to_model
    from libdeclip.mask import clip_masks

    pixels = demo_rgb[..., 1:2] if grey else demo_rgb
    x = pixels.astype(np.float64) / 255
    low, high = clip_masks(pixels, 0, 255, 1 / 255)
    srgb = get_colorspace("srgb")
    rgb = (lambda a: np.repeat(a, 3, axis=2)) if grey else (lambda a: a)
    whole = from_model(reconstruct(method, to_model(rgb(x), srgb), rgb(high), rgb(low), True), srgb)
    if grey:
        whole = whole.mean(axis=2, keepdims=True)
    expected = x.copy()
    expected[high] = np.maximum(whole[high], x[high])
    expected[low] = np.minimum(whole[low], x[low])
    out = declip((x[..., 0] if grey else x).astype(np.float32), method=method, fit="float")
    np.testing.assert_allclose(out, expected[..., 0] if grey else expected, rtol=0, atol=1e-6)


_CLASSIC_MEMORY = """
import json
import numpy as np
import libdeclip

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

h, w = 3000, 4000  # smooth, with 6 blown highlights spread over it
image = np.empty((h, w, 3), np.uint8)
image[...] = (np.linspace(40, 200, w, dtype=np.float32)[None, :, None]
              * np.array([1.0, 0.9, 0.8], np.float32)).astype(np.uint8)
rng = np.random.default_rng(3)
yy, xx = np.mgrid[-60:60, -60:60]
blob = np.exp(-(yy**2 + xx**2) / (2 * 20.0**2))[..., None] * np.array([400.0, 330.0, 260.0])
for y, x in zip(rng.integers(200, h - 200, 6), rng.integers(200, w - 200, 6)):
    part = image[y - 60 : y + 60, x - 60 : x + 60]
    part[...] = np.clip(part + blob, 0, 255).astype(np.uint8)  # warm lights: red clips widest
libdeclip.declip(image[:64, :64], method={method!r})  # imports and first-call set-up
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
base = status("VmRSS")
out = libdeclip.declip(image, method={method!r})
print(json.dumps({{"peak": status("VmHWM") - base, "image": image.nbytes,
                  "changed": int((out != image).any(axis=2).sum())}}))
"""


@pytest.mark.parametrize("method", ["inpaint-opposed", "cross-channel"])
def test_classical_memory_follows_the_clipped_area(method: str) -> None:
    """A 12-megapixel photo with six small highlights: the peak extra memory of a classical method
    is the output copy and a few bytes a pixel for the clip codes and regions, plus the parts
    around the highlights; not the several float64 copies of the whole image it once took
    (about 60 times the image's bytes)."""
    from tests.test_resources import in_fresh_process

    found = in_fresh_process(_CLASSIC_MEMORY.format(method=method))
    assert found["changed"] > 0
    assert found["peak"] <= 4 * found["image"] + 64 * 2**20, found


def test_on_a_gpu_the_windows_grow_to_shapes_that_batch(
    demo_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU (batches of up to 8) windows sized to the regions grow to sides of 128 px steps, so
    that they share shapes and run as batches; the output is the CPU's."""
    import libdeclip.session as session_module
    from tests.test_resources import fake_gpu

    photo = _photo(demo_rgb)
    with Declipper(device="cpu", tile_size=128) as cpu:
        expected = cpu.run(photo, fit="float")
        windows = cpu.windows(photo)
    engine_class = fake_gpu(lambda *_: False, RuntimeError("never raised"))
    monkeypatch.setattr(session_module, "OnnxEngine", engine_class)
    with Declipper(device="cuda", tile_size=128) as gpu:
        out = gpu.run(photo, fit="float")
    calls = engine_class.instances[0].calls
    shapes = {shape[2:] for shape, _ in calls}
    assert all(h % 128 == 0 or h == 480 for h, _ in shapes)  # 128 px steps, or the whole photo's side
    assert all(w % 128 == 0 or w == 640 for _, w in shapes)
    assert len(shapes) < len({t.window_shape for t in windows})  # fewer shapes than the CPU's windows
    assert len(calls) < len(windows) and max(shape[0] for shape, _ in calls) > 1  # batches
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)
