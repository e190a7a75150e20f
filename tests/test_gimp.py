"""The GIMP 3 plug-in in real GIMP 3.0 (a Debian trixie chroot; see plugins/gimp/chroot.sh).

Each test loads a real photo in gimp-console, runs Filters > Enhance > Declip non-interactively
(in-process, and through the ``libdeclip`` command of another Python), reads the layer's pixels
before and after, and compares them with libdeclip's own output computed in the same chroot (same
ONNX Runtime): equal inside the selection, untouched outside. Skipped when the chroot is absent:
``make gimp-chroot`` builds it (root, about 2.5 minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from libdeclip import read_image
from libdeclip.color import icc_profile
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent
CHROOT = Path(os.environ.get("GIMP3_CHROOT", "/opt/trixie"))
CHROOT_SH = REPO / "plugins" / "gimp" / "chroot.sh"
PLUGIN = REPO / "plugins" / "gimp" / "libdeclip-declip"
VENV = "/opt/libdeclip-venv"
PHOTOS = SHARED_DATA / "clipped" / "hdrcnn"
GUI_HELPERS = (REPO / "plugins" / "gimp" / "gui_batch.py").read_text()  # image_window(), for GUI batches


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "running GIMP in the chroot needs root"
    if not (CHROOT / "usr/bin/gimp-console-3.0").exists():
        return f"no GIMP 3 chroot at {CHROOT} (make gimp-chroot)"
    if not (CHROOT / VENV.lstrip("/") / "bin/libdeclip").exists():
        return f"libdeclip is not installed in {CHROOT}{VENV} (make gimp-chroot)"
    if not PHOTOS.is_dir():
        return f"{PHOTOS} absent"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder inside the chroot (its path there: "/" + relative to the chroot)."""
    folder = Path(tempfile.mkdtemp(prefix="libdeclip-gimp-", dir=CHROOT / "tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def inside(path: Path) -> str:
    return "/" + str(path.relative_to(CHROOT))


def site_packages() -> str:
    found = sorted((CHROOT / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    assert found, "no site-packages in the chroot's venv"
    return inside(found[-1])


def in_chroot(*argv: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROOT_SH), "run", *argv], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def install_plugin(work: Path) -> Path:
    profile = work / "profile"
    target = profile / "plug-ins" / PLUGIN.name
    shutil.copytree(PLUGIN, target, dirs_exist_ok=True)
    return profile


_BATCH = """
import json
from gi.repository import Gimp, Gio, Gegl
args = json.loads({args!r})
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(args["input"]))
layer = img.get_selected_drawables()[0]
w, h = layer.get_width(), layer.get_height()
fmt = args["format"]
if fmt == "native":  # the layer's own values, in the image's colour space
    from gi.repository import Babl
    fmt = Babl.get_name(Babl.format_with_space("R'G'B' u16", layer.get_format()))
def grab():
    return bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.CLAMP))
before = grab()
if args["select"]:
    x, y, sw, sh = args["select"]
    img.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, sw, sh)
    if args.get("feather"):
        Gimp.Selection.feather(img, args["feather"])
    print("LIBDECLIP-BOUNDS", *layer.mask_intersect()[1:], flush=True)
proc = Gimp.get_pdb().lookup_procedure("plug-in-libdeclip-declip")
if proc is None:
    print("LIBDECLIP-STATUS not-installed")
else:
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    cfg.set_property("device", "cpu")
    cfg.set_property("fit", args["fit"])
    cfg.set_property("show-mask", args["show_mask"])
    if args.get("model"):
        cfg.set_property("model", args["model"])
    choice = Gimp.param_spec_choice_get_choice(proc.find_argument("model"))
    print("LIBDECLIP-MODELS", json.dumps(list(choice.list_nicks())), flush=True)
    res = proc.run(cfg)
    print("LIBDECLIP-STATUS", res.index(0).value_nick)
    open(args["before"], "wb").write(before)
    open(args["after"], "wb").write(grab())
    print("LIBDECLIP-LAYERS", json.dumps([l.get_name() for l in img.get_layers()]))
print("LIBDECLIP-SIZE", w, h)
"""


def run_plugin(work: Path, photo: Path, *, backend: str, fmt: str, select: tuple[int, int, int, int] | None,
               fit: str = "compress", show_mask: bool = False, feather: float = 0.0,
               profile: Path | None = None, env_extra: tuple[str, ...] = (), model: str | None = None
               ) -> tuple[bytes, bytes, list[str], str]:
    """Run the plug-in in gimp-console on ``photo``; ``profile``: a GIMP profile it is installed
    in (default: a copy of the checkout's plug-in, with the chroot's venv given through
    LIBDECLIP_PYTHON); ``env_extra``: more NAME=value for GIMP's environment."""
    given = profile is not None
    profile = profile or install_plugin(work)
    args = {
        "input": inside(photo), "format": fmt, "select": select, "fit": fit, "show_mask": show_mask,
        "feather": feather, "model": model,
        "before": inside(work / "before.bin"), "after": inside(work / "after.bin"),
    }
    env = [f"GIMP3_DIRECTORY={inside(profile)}", f"LIBDECLIP_GIMP_BACKEND={backend}"]
    if backend == "inprocess":
        env.append(f"PYTHONPATH={site_packages()}")
    elif not given:
        env.append(f"LIBDECLIP_PYTHON={VENV}/bin/python")
    env += env_extra
    proc = in_chroot("env", *env, "gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval", "-b", "-",
                     "--quit", stdin=_BATCH.format(args=json.dumps(args)))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    bounds = next((ln.split()[1:] for ln in log.splitlines() if ln.startswith("LIBDECLIP-BOUNDS")), None)
    if bounds:
        (work / "bounds.json").write_text(json.dumps([int(v) for v in bounds]))
    if "LIBDECLIP-STATUS not-installed" in log:
        return b"", b"", [], "not-installed\n" + log
    lines = log.splitlines()
    status = next((line.split()[1] for line in lines if line.startswith("LIBDECLIP-STATUS")), "none")
    layers = next((json.loads(line.split(" ", 1)[1]) for line in log.splitlines()
                   if line.startswith("LIBDECLIP-LAYERS")), [])
    return (work / "before.bin").read_bytes(), (work / "after.bin").read_bytes(), layers, status + "\n" + log


def library_output(work: Path, pixels: np.ndarray, fit: str, icc: bytes | None = None,
                   model: str | None = None) -> np.ndarray:
    """libdeclip.declip on ``pixels`` with the chroot's own libdeclip and ONNX Runtime."""
    np.save(work / "region.npy", pixels)
    (work / "profile.icc").write_bytes(icc or b"")
    code = (
        "import numpy as np, libdeclip\n"
        f"a = np.load({inside(work / 'region.npy')!r})\n"
        f"icc = open({inside(work / 'profile.icc')!r}, 'rb').read() or None\n"
        f"out = libdeclip.declip(a, fit={fit!r}, device='cpu', colorspace=icc, model={model!r})\n"
        f"np.save({inside(work / 'expected.npy')!r}, out)\n"
    )
    proc = in_chroot(f"{VENV}/bin/python", "-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(work / "expected.npy")


def _photo_png(work: Path) -> tuple[Path, np.ndarray]:
    src = sorted(PHOTOS.glob("*.png"))[0]
    dst = work / "photo.png"
    shutil.copy(src, dst)
    return dst, read_image(dst).pixels[..., :3]


def _photo_tiff16(work: Path) -> tuple[Path, np.ndarray]:
    src = sorted(PHOTOS.glob("*.png"))[1]
    pixels = read_image(src).pixels[..., :3].astype(np.uint16) * 257
    dst = work / "photo16.tif"
    tifffile.imwrite(dst, pixels, photometric="rgb")
    return dst, pixels


def _photo_tiff16_adobe(work: Path) -> tuple[Path, np.ndarray]:
    """16-bit Adobe RGB: GIMP must hand over the file's own values (not converted to sRGB) and
    the plug-in must tell libdeclip their profile."""
    src = sorted(PHOTOS.glob("*.png"))[2]
    pixels = read_image(src).pixels[..., :3].astype(np.uint16) * 257
    dst = work / "photo16_adobe.tif"
    icc = icc_profile("adobe-rgb")
    tifffile.imwrite(dst, pixels, photometric="rgb", extratags=[(34675, "B", len(icc), icc, True)])
    return dst, pixels


CASES = {
    "png-8bit": (_photo_png, "R'G'B' u8", np.uint8),
    "tiff-16bit": (_photo_tiff16, "R'G'B' u16", np.uint16),
}


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("selection", [False, True], ids=["whole", "selection"])
def test_plugin_declips_like_the_library(work: Path, backend: str, case: str, selection: bool) -> None:
    make, fmt, dtype = CASES[case]
    photo, pixels = make(work)
    h, w = pixels.shape[:2]
    rect = (w // 4, h // 5, w // 2, h // 2) if selection else None
    before_b, after_b, layers, log = run_plugin(work, photo, backend=backend, fmt=fmt, select=rect)
    assert log.startswith("success"), log[-3000:]
    before = np.frombuffer(before_b, dtype=dtype).reshape(h, w, 3)
    after = np.frombuffer(after_b, dtype=dtype).reshape(h, w, 3)
    np.testing.assert_array_equal(before, pixels)  # GIMP read the file as we did
    x, y, sw, sh = rect or (0, 0, w, h)
    expected = library_output(work, pixels[y : y + sh, x : x + sw], "compress")
    np.testing.assert_array_equal(after[y : y + sh, x : x + sw], expected)
    outside = np.ones((h, w), dtype=bool)
    outside[y : y + sh, x : x + sw] = False
    np.testing.assert_array_equal(after[outside], before[outside])
    assert not np.array_equal(after, before)  # the photos have real clipping: something changed
    assert layers == ["Background"] or len(layers) == 1


@pytest.mark.parametrize(("suffix", "fmt", "dtype"), [(".webp", "R'G'B' u8", np.uint8),
                                                     (".heic", "R'G'B' u8", np.uint8),
                                                     (".avif", "R'G'B' u16", np.uint16)])
def test_plugin_declips_webp_heic_avif(work: Path, suffix: str, fmt: str, dtype: type) -> None:
    """A photo opened from WebP, HEIC or AVIF (10-bit) in GIMP, through GIMP's own loaders (libwebp,
    libheif): the plug-in repairs the layer as libdeclip repairs the values GIMP decoded (the
    decoders' YUV conversions may differ from ours by a code), and GIMP decoded what libdeclip
    reads within that."""
    from libdeclip import Image as LibImage
    from libdeclip import write_image

    src = read_image(sorted(PHOTOS.glob("*.png"))[0]).pixels[..., :3]
    pixels = src if dtype == np.uint8 else src.astype(np.uint16) * 257
    bits = None if dtype == np.uint8 else 10
    photo = write_image(work / f"photo{suffix}", LibImage(pixels, significant_bits=bits,
                                                          encoding={"lossless": True}))
    ours = read_image(photo).pixels
    h, w = ours.shape[:2]
    before_b, after_b, _, log = run_plugin(work, photo, backend="inprocess", fmt=fmt, select=None)
    assert log.startswith("success"), log[-3000:]
    before = np.frombuffer(before_b, dtype=dtype).reshape(h, w, 3)
    after = np.frombuffer(after_b, dtype=dtype).reshape(h, w, 3)
    one_code = 1 if dtype == np.uint8 else 65535 // 1023 + 1
    assert np.abs(before.astype(np.int64) - ours).max() <= 2 * one_code  # the same picture
    np.testing.assert_array_equal(after, library_output(work, before.copy(), "compress"))
    assert not np.array_equal(after, before)


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_plugin_offers_the_models_libdeclip_lists(work: Path, backend: str) -> None:
    """The dialog's model choice: automatic, then what `libdeclip models` lists (asked of the
    library in-process, of the command otherwise); a chosen model is the one that runs."""
    photo, pixels = _photo_png(work)
    _, after_b, _, log = run_plugin(work, photo, backend=backend, fmt="R'G'B' u8", select=None,
                                    model="declipnet-v1")
    assert log.startswith("success"), log[-3000:]
    offered = next(json.loads(ln.split(" ", 1)[1]) for ln in log.splitlines()
                   if ln.startswith("LIBDECLIP-MODELS"))
    listed = in_chroot(f"{VENV}/bin/python", "-m", "libdeclip", "models", "--names").stdout.split()
    assert offered == ["auto", *listed] and "declipnet-v2-int8" in listed
    after = np.frombuffer(after_b, dtype=np.uint8).reshape(pixels.shape)
    np.testing.assert_array_equal(after, library_output(work, pixels, "compress", model="declipnet-v1"))
    assert not np.array_equal(after, library_output(work, pixels, "compress"))  # not the automatic one


def test_plugin_adds_the_clip_mask_layer_and_reports_errors(work: Path) -> None:
    photo, pixels = _photo_png(work)
    _, _, layers, log = run_plugin(work, photo, backend="subprocess", fmt="R'G'B' u8", select=None,
                                   show_mask=True)
    assert log.startswith("success") and layers[0] == "Clip mask (libdeclip)", log[-2000:]
    # a float fit on an 8-bit image: the plug-in refuses with a message, GIMP reports the error
    before, after, _, log = run_plugin(work, photo, backend="inprocess", fmt="R'G'B' u8", select=None,
                                       fit="float")
    assert log.startswith("execution-error"), log[-2000:]
    assert "float images only" in log and before == after


def test_install_command_on_a_fresh_profile(work: Path) -> None:
    """`libdeclip gimp install` from the chroot's environment, into an empty GIMP profile: GIMP
    finds the plug-in, which runs that environment's libdeclip (recorded at install) although
    GIMP's own Python cannot import it; `uninstall` takes it away again."""
    profile = work / "fresh-profile"
    env = ["env", f"GIMP3_DIRECTORY={inside(profile)}"]
    proc = in_chroot(*env, f"{VENV}/bin/libdeclip", "gimp", "install")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads((profile / "plug-ins" / "libdeclip-declip" / "libdeclip.json").read_text())
    assert settings["python"] in (f"{VENV}/bin/python", f"{VENV}/bin/python3")
    photo, pixels = _photo_png(work)
    before, after, _, log = run_plugin(work, photo, backend="subprocess", fmt="R'G'B' u8", select=None,
                                       profile=profile)
    assert log.startswith("success"), log[-3000:]
    assert before != after
    proc = in_chroot(*env, f"{VENV}/bin/libdeclip", "gimp", "uninstall")
    assert proc.returncode == 0 and not (profile / "plug-ins" / "libdeclip-declip").exists()
    _, _, _, log = run_plugin(work, photo, backend="subprocess", fmt="R'G'B' u8", select=None,
                              profile=profile)
    assert log.startswith("not-installed"), log[-2000:]


_GUI_BATCH = """
import json, subprocess, time
from gi.repository import Gimp, Gio, Gegl
args = json.loads({args!r})
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(args["input"]))
Gimp.Display.new(img)
Gimp.displays_flush()
layer = img.get_selected_drawables()[0]
w, h = layer.get_width(), layer.get_height()
def grab():
    return bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B' u8",
                                        Gegl.AbyssPolicy.CLAMP))
before = grab()
proc = Gimp.get_pdb().lookup_procedure("plug-in-libdeclip-declip")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
cfg.set_property("image", img)
cfg.set_core_object_array("drawables", [layer])
cfg.set_property("device", "cpu")
print("LIBDECLIP-STATUS", proc.run(cfg).index(0).value_nick, flush=True)
after = grab()
# Edit > Undo as a user does it: Ctrl+Z in the image window
subprocess.run(["xdotool", "windowfocus", "--sync", image_window()], check=True)
subprocess.run(["xdotool", "key", "ctrl+z"], check=True)
undone = after
for _ in range(100):
    time.sleep(0.1)
    undone = grab()
    if undone != after:
        break
for name, data in (("before", before), ("after", after), ("undone", undone)):
    open(args[name], "wb").write(data)
quit = Gimp.get_pdb().lookup_procedure("gimp-quit")
c = quit.create_config()
c.set_property("force", True)
quit.run(c)
"""


def test_one_undo_step_restores_the_layer_in_the_gimp_window(work: Path) -> None:
    """In GIMP's real window (under Xvfb): the plug-in's whole change is one undo step, and Ctrl+Z
    in the image window brings back the original pixels exactly."""
    photo, pixels = _photo_png(work)
    profile = install_plugin(work)
    (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
    args = {"input": inside(photo), **{n: inside(work / f"{n}.bin") for n in ("before", "after", "undone")}}
    proc = in_chroot(
        "env", f"GIMP3_DIRECTORY={inside(profile)}", f"PYTHONPATH={site_packages()}",
        "timeout", "-k", "5", "240", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24",
        "gimp-3.0", "--no-splash", "--batch-interpreter=python-fu-eval", "-b", "-",
        stdin=GUI_HELPERS + _GUI_BATCH.format(args=json.dumps(args)),
    )
    log = proc.stdout + proc.stderr
    assert "LIBDECLIP-STATUS success" in log, log[-3000:]
    before, after, undone = ((work / f"{n}.bin").read_bytes() for n in ("before", "after", "undone"))
    assert before == pixels.tobytes() and after != before
    assert undone == before


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_plugin_keeps_the_image_colour_space(work: Path, backend: str) -> None:
    photo, pixels = _photo_tiff16_adobe(work)
    h, w = pixels.shape[:2]
    # read back in the image's own space: the batch script asks for the layer's own format
    before_b, after_b, _, log = run_plugin(work, photo, backend=backend, fmt="native", select=None)
    assert log.startswith("success"), log[-3000:]
    before = np.frombuffer(before_b, dtype=np.uint16).reshape(h, w, 3)
    after = np.frombuffer(after_b, dtype=np.uint16).reshape(h, w, 3)
    np.testing.assert_array_equal(before, pixels)
    np.testing.assert_array_equal(after, library_output(work, pixels, "compress", icc_profile("adobe-rgb")))


def test_feathered_selection_blends(work: Path) -> None:
    """A feathered selection: the middle gets libdeclip's values, the edge a blend between them and
    the original (GIMP's merge of the shadow buffer), the outside nothing."""
    photo, pixels = _photo_png(work)
    h, w = pixels.shape[:2]
    x, y, sw, sh = w // 4, h // 5, w // 2, h // 2
    before_b, after_b, _, log = run_plugin(work, photo, backend="inprocess", fmt="R'G'B' u8",
                                           select=(x, y, sw, sh), feather=40.0)
    assert log.startswith("success"), log[-3000:]
    before = np.frombuffer(before_b, dtype=np.uint8).reshape(h, w, 3).astype(int)
    after = np.frombuffer(after_b, dtype=np.uint8).reshape(h, w, 3).astype(int)
    # the plug-in works on the selection's bounds, which feathering widens
    bx0, by0, bw, bh = json.loads((work / "bounds.json").read_text())
    bx1, by1 = bx0 + bw, by0 + bh
    assert bx0 < x and by0 < y and bx1 > x + sw and by1 > y + sh
    full = np.zeros_like(before)
    full[by0:by1, bx0:bx1] = library_output(work, pixels[by0:by1, bx0:bx1], "compress")
    inner = np.s_[y + 25 : y + sh - 25, x + 25 : x + sw - 25]
    np.testing.assert_array_equal(after[inner], full[inner])
    band = np.zeros((h, w), dtype=bool)
    band[by0:by1, bx0:bx1] = True
    band[inner] = False
    lo, hi = np.minimum(before, full), np.maximum(before, full)
    assert np.all((after[band] >= lo[band] - 1) & (after[band] <= hi[band] + 1))
    blended = band[..., None] & (after != before) & (after != full)
    assert blended.any()  # some edge values are part way between the two
    outside = np.ones((h, w), dtype=bool)
    outside[by0:by1, bx0:bx1] = False
    np.testing.assert_array_equal(after[outside], before[outside])


# Every shell metacharacter that matters, and non-ASCII. Run by a shell, each command substitution
# or command after ";" would create a file in $HOME (the chroot's /root: "cd" alone goes there,
# since a file name cannot hold "/").
NASTY = "it's \"q\" $(cd;touch PWNED_a) `cd;touch PWNED_b` ;cd;touch PWNED_c; & | > é ü 写真"


def test_file_names_with_shell_syntax_run_nothing(work: Path) -> None:
    """The subprocess path with shell syntax and non-ASCII everywhere it meets a name: the photo's
    folder and name, the GIMP profile the plug-in lives in, the temporary folder its exchange
    TIFFs go to (TMPDIR: these names are the libdeclip command's arguments) and the path of the
    Python that runs libdeclip. The plug-in runs it without a shell: the layer is declipped as the
    library does it, no injected command ran, and the temporary files are gone."""
    folder = work / f"photos {NASTY}"
    folder.mkdir()
    src = sorted(PHOTOS.glob("*.png"))[0]
    pixels = read_image(src).pixels[..., :3][256:512, 256:640]  # a crop with blown highlights
    photo = folder / f"{NASTY}.png"
    Image.fromarray(pixels).save(photo)
    profile = install_plugin(work)
    nasty_profile = work / f"profile {NASTY}"
    profile.rename(nasty_profile)
    tmp = work / f"tmp {NASTY}"
    tmp.mkdir()
    venv_link = work / f"venv {NASTY}"
    venv_link.symlink_to(VENV)  # a venv reached through this name still finds its pyvenv.cfg
    marker_dirs = [CHROOT / "root", CHROOT, work, folder]
    for leftover in [p for d in marker_dirs for p in d.glob("PWNED_*")]:  # from an earlier failure
        leftover.unlink()
    h, w = pixels.shape[:2]
    before_b, after_b, _, log = run_plugin(
        work, photo, backend="subprocess", fmt="R'G'B' u8", select=None, profile=nasty_profile,
        env_extra=(f"TMPDIR={inside(tmp)}", f"LIBDECLIP_PYTHON={inside(venv_link)}/bin/python"),
    )
    assert not [p for d in marker_dirs for p in d.glob("PWNED*")], "a command in a file name ran"
    assert log.startswith("success"), log[-3000:]
    before = np.frombuffer(before_b, dtype=np.uint8).reshape(h, w, 3)
    after = np.frombuffer(after_b, dtype=np.uint8).reshape(h, w, 3)
    np.testing.assert_array_equal(before, pixels)
    np.testing.assert_array_equal(after, library_output(work, pixels, "compress"))
    assert not np.array_equal(after, before)
    assert not [p for p in tmp.iterdir() if p.name.startswith("libdeclip-gimp-")]  # removed
