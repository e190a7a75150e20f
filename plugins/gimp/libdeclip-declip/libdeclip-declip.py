#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Enhance > Declip (libdeclip).

Repairs the clipped highlights and shadows of the active layer (inside the selection's bounds
when there is a selection) with libdeclip. Pixels are read through the GEGL buffer in the image's
own precision and encoding (8/16-bit integer, half or float; perceptual or linear), repaired, and
written through the shadow buffer, so a feathered selection blends as everywhere in GIMP; one undo
step.

Two ways to run libdeclip:
- in-process, when GIMP's Python can import it (Linux with the library installed for that Python);
- otherwise through the ``libdeclip`` command of another Python environment (GIMP on Windows and
  macOS bundles a Python without numpy or ONNX Runtime): the pixels go there and back as
  uncompressed TIFF in a private temporary folder, removed afterwards.

Which Python runs the command, first found: the procedure's ``python`` argument; the environment
variable LIBDECLIP_PYTHON; the ``python`` recorded in ``libdeclip.json`` beside this file by
``libdeclip gimp install``; else ``libdeclip`` on the PATH. LIBDECLIP_GIMP_BACKEND=subprocess (or
inprocess) forces one way, for troubleshooting.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tiff_exchange  # noqa: E402

PROC = "plug-in-libdeclip-declip"
FITS = [("compress", "Compress", "Ease recovered highlights and shadows into range"),
        ("clamp", "Clamp", "Clip them again: every unclipped value stays exactly as it was"),
        ("float", "Keep (float images)", "Keep values beyond the range (HDR; float precision only)")]
DEVICES = [("auto", "Automatic", "GPU when there is one, else CPU"), ("cpu", "CPU", "CPU"),
           ("cuda", "GPU (CUDA)", "NVIDIA GPU")]
SETTINGS = os.path.join(HERE, "libdeclip.json")
AUTOMATIC = ("auto", "Automatic", "DeclipNet v2 in the precision of the device that runs it "
             "(int8 on the CPU, float16 on a GPU)")

# GIMP precision -> (GEGL sample type, numpy dtype name); 32-bit integer and double go as float
_SAMPLES = {
    "U8": ("u8", "uint8"), "U16": ("u16", "uint16"), "U32": ("float", "float32"),
    "HALF": ("half", "float16"), "FLOAT": ("float", "float32"), "DOUBLE": ("float", "float32"),
}


class DeclipError(Exception):
    """A failure to show the user as one GIMP message."""


def _layout(image, drawable):
    """(colour model, sample type, dtype name, channels, linear?) of the drawable's pixels."""
    name = image.get_precision().value_nick.upper()  # e.g. "U16-NON-LINEAR", "FLOAT-LINEAR"
    kind = name.split("-")[0]
    sample, dtype = _SAMPLES.get(kind, ("float", "float32"))
    linear = name.endswith("-LINEAR") and not name.endswith("NON-LINEAR")
    alpha = drawable.has_alpha()
    model = ("RGBA" if alpha else "RGB") if linear else ("R'G'B'A" if alpha else "R'G'B'")
    return model, sample, dtype, 4 if alpha else 3, linear


def _in_image_space(fmt, drawable):
    """The babl format ``fmt`` in the image's own colour space (its profile's primaries), so that
    the values are the image's own and not converted to sRGB. Plain names mean sRGB in babl."""
    try:
        gi.require_version("Babl", "0.1")
        from gi.repository import Babl

        return Babl.get_name(Babl.format_with_space(fmt, drawable.get_format()))
    except (ImportError, ValueError, TypeError, AttributeError):
        return fmt


def _colorspace(image, linear):
    """What the pixels' encoding means, for libdeclip: the image's ICC profile (its own values are
    read), or sRGB; linear-light images are read as linear sRGB (GEGL converts them)."""
    if linear:
        return "linear-srgb"
    profile = image.get_color_profile()
    if profile is not None:
        data = profile.get_icc_profile()
        return bytes(data.get_data() if hasattr(data, "get_data") else data)
    return "srgb"


def _settings_python():
    try:
        with open(SETTINGS, encoding="utf-8") as f:
            return json.load(f).get("python") or None
    except (OSError, ValueError):
        return None


def _command(python):
    """The argv prefix that runs libdeclip's command."""
    python = python or os.environ.get("LIBDECLIP_PYTHON") or _settings_python()
    if python:
        if not os.path.isfile(python):
            raise DeclipError(f"The Python set for libdeclip does not exist: {python}. "
                              "Run 'libdeclip gimp install' from the environment that has libdeclip.")
        return [python, "-m", "libdeclip"]
    found = shutil.which("libdeclip")
    if not found:
        raise DeclipError("libdeclip is not installed for GIMP's Python and no 'libdeclip' command was "
                          "found. Install it (pip install libdeclip), then run 'libdeclip gimp install'.")
    return [found]


def _in_process_available():
    if os.environ.get("LIBDECLIP_GIMP_BACKEND") == "subprocess":
        return False
    try:
        import numpy  # noqa: F401

        import libdeclip  # noqa: F401
    except ImportError:
        if os.environ.get("LIBDECLIP_GIMP_BACKEND") == "inprocess":
            raise DeclipError("LIBDECLIP_GIMP_BACKEND=inprocess, but GIMP's Python cannot import libdeclip") \
                from None
        return False
    return True


def _model_choices():
    """The model choice: automatic, then each model that ``libdeclip models`` lists (asked of the
    library in-process, else of the command; just automatic when neither answers). GIMP asks for it
    when it registers the plug-in, so a model installed later shows after a restart of GIMP."""
    names = []
    try:
        if _in_process_available():
            import libdeclip

            names = libdeclip.shipped_models()
        else:
            proc = subprocess.run(_command(None) + ["models", "--names"], capture_output=True, text=True,
                                  timeout=120)
            names = proc.stdout.split() if proc.returncode == 0 else []
    except (DeclipError, OSError, subprocess.SubprocessError):
        names = []
    return [AUTOMATIC] + [(name, name, f"the shipped model {name}") for name in names]


def _declip_in_process(pixels, width, height, channels, dtype, space, fit, device, model, want_mask):
    import numpy as np

    import libdeclip

    array = np.frombuffer(pixels, dtype=dtype).reshape(height, width, channels)

    def progress(done, total):
        Gimp.progress_update(0.1 + 0.8 * done / max(total, 1))

    try:
        out = libdeclip.declip(array, colorspace=space, fit=fit, device=device, progress=progress,
                               model=None if model == "auto" else model)
    except libdeclip.DeclipError as exc:
        raise DeclipError(str(exc)) from None
    mask = None
    if want_mask:
        clipped, _ = libdeclip.clip_mask(array)
        mask = (clipped.any(axis=2).astype(np.uint8) * 255).tobytes()
    return np.ascontiguousarray(out, dtype=dtype).tobytes(), mask


def _declip_subprocess(pixels, width, height, channels, sample, space, fit, device, model, want_mask,
                       python):
    argv = _command(python)
    folder = tempfile.mkdtemp(prefix="libdeclip-gimp-")
    try:
        os.chmod(folder, 0o700)
        src, dst, mask_path = (os.path.join(folder, n) for n in ("in.tif", "out.tif", "mask.png"))
        icc = space if isinstance(space, bytes) else None
        tiff_exchange.write_tiff(src, pixels, width, height, channels, sample, icc)
        argv += ["declip", src, "-o", dst, "--fit", fit, "--device", device, "-q"]
        if model != "auto":
            argv += ["--model", model]
        if not icc:
            argv += ["--colorspace", space]
        if want_mask:
            argv += ["--mask", mask_path]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not os.path.isfile(dst):
            lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
            raise DeclipError(f"libdeclip failed ({' '.join(argv[:1])}): {lines[-1] if lines else ''}")
        out, w, h, c, s = tiff_exchange.read_tiff(dst)
        if (w, h, c, s) != (width, height, channels, sample):
            raise DeclipError(f"libdeclip returned {w} x {h} x {c} {s}, expected {width} x {height}")
        mask = _load_mask(mask_path, width, height) if want_mask else None
        return out, mask
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise DeclipError(f"libdeclip could not be run: {exc}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _load_mask(path, width, height):
    """The 8-bit mask PNG libdeclip wrote, through GIMP's own PNG loader (no numpy here)."""
    from gi.repository import Gio

    loaded = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    try:
        layer = loaded.get_layers()[0]
        buf = layer.get_buffer()
        return bytes(buf.get(Gegl.Rectangle.new(0, 0, width, height), 1.0, "Y' u8", Gegl.AbyssPolicy.CLAMP))
    finally:
        loaded.delete()


def _add_mask_layer(image, drawable, mask, x, y, width, height):
    layer = Gimp.Layer.new(image, "Clip mask (libdeclip)", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
    ox, oy = drawable.get_offsets()[-2:]  # (found, x, y)
    layer.set_offsets(ox + x, oy + y)
    rgba = bytearray(width * height * 4)
    rgba[0::4] = mask
    rgba[1::4] = mask
    rgba[2::4] = mask
    rgba[3::4] = mask  # opaque where clipped, transparent elsewhere
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, width, height), "R'G'B'A u8", bytes(rgba))
    buf.flush()
    layer.update(0, 0, width, height)


def declip_drawable(image, drawable, fit, device, show_mask, python, model="auto"):
    found, x, y, width, height = drawable.mask_intersect()
    if not found or width == 0 or height == 0:
        raise DeclipError("The selection does not touch this layer: nothing to declip.")
    colour_model, sample, dtype, channels, linear = _layout(image, drawable)
    if fit == "float" and sample in ("u8", "u16"):
        raise DeclipError("'Keep' works on float images only: choose Compress or Clamp, or change "
                          "Image > Precision to 32-bit float.")
    space = _colorspace(image, linear)
    rect = Gegl.Rectangle.new(x, y, width, height)
    in_process = _in_process_available()
    if sample == "half" and not in_process:  # the exchange TIFF has no half floats
        sample, dtype = "float", "float32"
    fmt = f"{colour_model} {sample}" if linear else _in_image_space(f"{colour_model} {sample}", drawable)
    Gimp.progress_init("Declipping (libdeclip)")
    pixels = bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))
    Gimp.progress_update(0.1)
    if in_process:
        out, mask = _declip_in_process(pixels, width, height, channels, dtype, space, fit, device, model,
                                       show_mask)
    else:
        out, mask = _declip_subprocess(pixels, width, height, channels, sample, space, fit, device, model,
                                       show_mask, python)
    Gimp.progress_update(0.9)
    shadow = drawable.get_shadow_buffer()
    shadow.set(rect, fmt, out)
    shadow.flush()
    drawable.merge_shadow(True)  # applies the selection mask: feathered selections blend
    drawable.update(x, y, width, height)
    if show_mask and mask is not None:
        _add_mask_layer(image, drawable, mask, x, y, width, height)
    Gimp.progress_update(1.0)


def run(procedure, run_mode, image, drawables, config, data):
    if len(drawables) != 1:
        message = "Select exactly one layer."
        return procedure.new_return_values(Gimp.PDBStatusType.CALLING_ERROR, _gerror(message))
    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init(PROC)
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Declip")
        dialog.fill(None)
        if not dialog.run():
            dialog.destroy()
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        dialog.destroy()
    fit = config.get_property("fit")
    device = config.get_property("device")
    model = config.get_property("model")
    show_mask = config.get_property("show-mask")
    python = config.get_property("python") or None
    image.undo_group_start()
    try:
        declip_drawable(image, drawables[0], fit, device, show_mask, python, model)
    except DeclipError as exc:
        return _error(procedure, str(exc))
    except Exception as exc:  # never a silent failure: the user sees what went wrong
        return _error(procedure, f"libdeclip: unexpected error: {type(exc).__name__}: {exc}")
    finally:
        image.undo_group_end()
        Gimp.progress_end()
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


def _gerror(message):
    return GLib.Error.new_literal(GLib.quark_from_string("libdeclip"), message, 0)


def _error(procedure, message):
    Gimp.message(message)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, _gerror(message))


def _choice(options):
    choice = Gimp.Choice.new()
    for i, (nick, label, help_) in enumerate(options):
        choice.add(nick, i, label, help_)
    return choice


class Declip(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False

    def do_query_procedures(self):
        return [PROC]

    def do_create_procedure(self, name):
        Gegl.init(None)
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("RGB*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label("_Declip...")
        proc.add_menu_path("<Image>/Filters/Enhance")
        proc.set_documentation(
            "Repair clipped highlights and shadows",
            "Reconstructs blown highlights and crushed shadows of the layer (inside the selection) "
            "with libdeclip's neural network. Unclipped pixels are not changed.",
            name)
        proc.set_attribution("libdeclip", "libdeclip contributors", "2026")
        flags = GObject.ParamFlags.READWRITE
        proc.add_choice_argument("fit", "R_ange", "What happens to values recovered beyond the range",
                                 _choice(FITS), "compress", flags)
        proc.add_choice_argument("device", "_Device", "Where the network runs", _choice(DEVICES), "auto",
                                 flags)
        proc.add_choice_argument("model", "_Model", "The network (libdeclip models lists them)",
                                 _choice(_model_choices()), "auto", flags)
        proc.add_boolean_argument("show-mask", "Show clip _mask", "Add a layer showing the clipped pixels",
                                  False, flags)
        proc.add_string_argument("python", "_Python for libdeclip",
                                 "Python environment with libdeclip, used when GIMP's own Python cannot "
                                 "import it (empty: as recorded by 'libdeclip gimp install')", "", flags)
        return proc


Gimp.main(Declip.__gtype__, sys.argv)
