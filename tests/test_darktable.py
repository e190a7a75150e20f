"""The darktable Lua script in real darktable (library mode: lua5.4 loads libdarktable under Xvfb).

The script's declip action runs on real photos imported in a fresh library. By default it repairs
each source file: a camera RAW (a real Bayer DNG with its clipping lowered as in the RAW benchmark)
becomes a linear DNG whose sidecar turns darktable's highlight reconstruction off, equal to
``libdeclip declip`` of the RAW, with the original's history copied onto it; a JPEG becomes a JPEG
equal to ``libdeclip declip`` of it. With the "rendering" preference darktable exports each image
and the result must equal libdeclip's own output on that export. Either way the result is imported,
grouped with the original and given its tags, rating and colour labels. Skipped when darktable,
Xvfb or lua5.4 are missing (`make darktable` installs them from Debian packages).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from benchmarks._darktable import gui_harness, lua_string
from libdeclip import read_image
from libdeclip.cli import main as libdeclip_main
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "plugins" / "darktable" / "libdeclip.lua"
LIBDARKTABLE = Path("/usr/lib/x86_64-linux-gnu/darktable/libdarktable.so")
COMMAND = Path(sys.executable).parent / "libdeclip"


def _unavailable() -> str | None:
    for tool in ("lua5.4", "xvfb-run"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make darktable)"
    if not LIBDARKTABLE.exists():
        return "darktable is not installed (make darktable)"
    if not (SHARED_DATA / "clipped").is_dir() or not (SHARED_DATA / "raw").is_dir():
        return "../shared/data absent"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))

_HARNESS = """
package.cpath = package.cpath .. ";{libdir}/lib?.so"
local args = {args}
local dt = require("darktable")("--library", args.work .. "/library.db",
                                "--configdir", args.work .. "/config", "--cachedir", args.work .. "/cache")
-- darktable's background threads share this Lua state while it starts; a load that lands in their
-- middle can fail ("attempt to call a string value" from dofile): wait for them, load again.
local script
for _ = 1, 5 do
  local ok, loaded = pcall(dofile, args.script)
  if ok and type(loaded) == "table" and loaded.libdeclip then script = loaded break end
  dt.control.sleep(300)
end
assert(script, "the plug-in script did not load")
local M = script.libdeclip
local opts = M.options()
opts.command, opts.device, opts.keep_export = args.command, "cpu", true
if args.model then opts.model = args.model end
if args.repair then opts.repair = args.repair end
if args.copy_history ~= nil then opts.copy_history = args.copy_history end
print("LIBDECLIP-RAW-SUFFIXES " .. (function()
  local names = {{}}
  for k in pairs(M.RAW_SUFFIXES) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ",")
end)())
print("LIBDECLIP-MODELS " .. table.concat(M.model_names(args.command), ","))
local tag = dt.tags.create("test|libdeclip")
local images = {{}}
for i, path in ipairs(args.photos) do
  local image = dt.database.import(path)
  dt.tags.attach(tag, image)
  image.rating = 4
  image.red = true
  images[i] = image
end
for i, image in ipairs(images) do
  local new, export = M.declip_image(image, opts)
  local result = {{source = args.photos[i]}}
  if new then
    local tags = {{}}
    for _, t in ipairs(dt.tags.get_tags(new)) do tags[#tags + 1] = t.name end
    result.output = new.path .. "/" .. new.filename
    result.export = export
    result.grouped = (new.group_leader == image.group_leader)
    result.rating, result.red, result.tags = new.rating, new.red, table.concat(tags, ",")
    -- the new image's history, as a style file the test reads
    local style = dt.styles.create(new, "history-" .. i, "")
    if style then
      dt.styles.export(style, args.work, true)
      result.history = args.work .. "/history-" .. i .. ".dtstyle"
      -- (not deleted: darktable 4.2 crashes deleting a style without a GUI)
    end
  else
    result.error = export
  end
  print("LIBDECLIP-RESULT " .. args.json(result))
end
print("LIBDECLIP-QUOTE " .. M.command_line({{"a b", "it's", "$(touch x)", ";", "\\\\"}}))
"""

_JSON = """function(t)
  local parts = {}
  for k, v in pairs(t) do
    local value = type(v) == "string" and string.format("%q", v):gsub("\\\\\\n", "\\\\n") or tostring(v)
    parts[#parts + 1] = string.format("%q", k) .. ":" .. value
  end
  return "{" .. table.concat(parts, ",") .. "}"
end"""


def run_harness(work: Path, photos: list[Path], command: Path = COMMAND, env: dict[str, str] | None = None,
                model: str | None = None, repair: str | None = None, copy_history: bool | None = None
                ) -> tuple[list[dict[str, object]], str]:
    """Run the script's declip on ``photos`` in a fresh library; ``repair``: "source" (the script's
    default) or "rendering"."""
    listed = ", ".join(lua_string(str(p)) for p in photos)
    args = (
        "{" + f"work = {lua_string(str(work))}, script = {lua_string(str(SCRIPT))}, "
        f"command = {lua_string(str(command))}, photos = {{{listed}}}, json = {_JSON}"
        + (f", model = {lua_string(model)}" if model else "")
        + (f", repair = {lua_string(repair)}" if repair else "")
        + (f", copy_history = {str(copy_history).lower()}" if copy_history is not None else "") + "}"
    )
    harness = work / "harness.lua"
    harness.write_text(_HARNESS.format(libdir=LIBDARKTABLE.parent, args=args))
    log = ""
    # darktable in library mode runs inside the lua5.4 interpreter, and its background threads use
    # the interpreter's Lua state; now and then (about one start in three in the shell-syntax test
    # here) the harness fails while loading the script, before it has reported anything: a
    # segfault in lua_load or "attempt to call a table value" from dofile. The harness loads the
    # script again after a pause (above); a start that still reports nothing is tried again, up to
    # six times; a failure after the script reported is a failure like any other.
    for _attempt in range(6):
        proc = subprocess.run(["timeout", "-k", "5", "300", "xvfb-run", "-a", "lua5.4", str(harness)],
                              capture_output=True, text=True, errors="replace", cwd=work,
                              env={**os.environ, **(env or {})})  # a segfault's backtrace is not UTF-8
        log += proc.stdout + proc.stderr
        results = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines()
                   if line.startswith("LIBDECLIP-RESULT ")]
        # Tried again when no image was reported (a harness of no photos only has to start): darktable
        # 4.2 has also crashed in a clean CI run after the script loaded, before the first result.
        if results or (not photos and "LIBDECLIP-" in proc.stdout):
            break
        # A start that crashed leaves darktable's database locks behind, and every later start in
        # this library then fails ("Starting darktable failed"): remove them, pause, try again.
        for lock in [*work.glob("*.lock"), *work.glob("config/*.lock")]:
            lock.unlink(missing_ok=True)
        time.sleep(2)
    return results, log


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    jpeg = sorted((SHARED_DATA / "clipped" / "singlehdr").glob("*.jpg"))[0]
    # a name a shell would love to run: quotes, $(...), ;, spaces, non-ASCII
    tricky = folder / "it's \"a\" $(touch PWNED) ;ls `id` é.jpg"
    shutil.copy(jpeg, tricky)
    tiff = folder / "sixteen.tif"
    png = sorted((SHARED_DATA / "clipped" / "hdrcnn").glob("*.png"))[0]
    tifffile.imwrite(tiff, read_image(png).pixels[..., :3].astype(np.uint16) * 257, photometric="rgb")
    raw = folder / "colorchart.dng"
    shutil.copy(SHARED_DATA / "raw" / "tinydng_colorchart.dng", raw)
    return [tricky, tiff, raw]


def _check_rendering(result: dict[str, object], log: str, tmp_path: Path) -> tuple[Path, Path]:
    """One image repaired from darktable's rendering: no error, the output there and grouped with
    the original, equal to libdeclip's own result on the export darktable made. (output, export)."""
    assert "error" not in result, (result, log[-2000:])
    output, export = Path(str(result["output"])), Path(str(result["export"]))
    assert output.is_file() and result["grouped"] is True
    expected = tmp_path / f"expected_{output.name}"
    assert libdeclip_main(["declip", str(export), "-o", str(expected), "-q", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_image(output).pixels, read_image(expected).pixels)
    return output, export


def test_script_declips_groups_and_tags_in_darktable(tmp_path: Path, photos: list[Path]) -> None:
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, photos, repair="rendering")
    assert len(results) == len(photos), log[-3000:]
    for result in results:
        output, export = _check_rendering(result, log, tmp_path)
        assert output.parent == photos[0].parent
        assert result["rating"] == 4 and result["red"] is True
        assert "test|libdeclip" in str(result["tags"]).split(",")
        export.unlink()
    assert not list(tmp_path.rglob("PWNED")) and not (work / "PWNED").exists()  # nothing was run
    quoted = next(line for line in log.splitlines() if line.startswith("LIBDECLIP-QUOTE"))
    echoed = subprocess.run(["sh", "-c", "printf '%s\\n' " + quoted.split(" ", 1)[1]], capture_output=True,
                            text=True, cwd=work)
    assert echoed.stdout.splitlines() == ["a b", "it's", "$(touch x)", ";", "\\"]
    assert not (work / "x").exists()


def test_script_declips_webp_avif_heic(tmp_path: Path) -> None:
    """Photos darktable imports from WebP, AVIF and HEIC, with the rendering preference: darktable's
    export, libdeclip, the import beside the original, as libdeclip repairs that export."""
    from libdeclip import Image, write_image

    folder = tmp_path / "photos"
    folder.mkdir()
    rgb = read_image(sorted((SHARED_DATA / "clipped" / "hdrcnn").glob("*.png"))[1]).pixels[..., :3]
    photos = [write_image(folder / f"phone{suffix}", Image(rgb), quality=90)
              for suffix in (".webp", ".avif", ".heic")]
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, photos, repair="rendering")
    assert len(results) == len(photos), log[-3000:]
    for result in results:
        _check_rendering(result, log, tmp_path)


def test_the_model_preference_lists_and_runs_what_libdeclip_lists(tmp_path: Path,
                                                                  photos: list[Path]) -> None:
    """The model choice offers "automatic" and what `libdeclip models` lists; a chosen model is the
    one that runs on darktable's export."""
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, photos[1:2], model="declipnet-v1", repair="rendering")
    assert len(results) == 1 and "error" not in results[0], log[-3000:]
    offered = next(ln.split(" ", 1)[1] for ln in log.splitlines() if ln.startswith("LIBDECLIP-MODELS "))
    names = subprocess.run([str(COMMAND), "models", "--names"], capture_output=True, text=True)
    listed = names.stdout.split()
    assert offered.split(",") == ["automatic", *listed] and "declipnet-v2-int8" in listed
    output, export = Path(str(results[0]["output"])), Path(str(results[0]["export"]))
    expected = {}
    for model in ["declipnet-v1", "auto"]:
        expected[model] = tmp_path / f"expected_{model}.tif"
        assert libdeclip_main(["declip", str(export), "-o", str(expected[model]), "-q", "--device", "cpu",
                               "--model", model]) == 0
    np.testing.assert_array_equal(read_image(output).pixels, read_image(expected["declipnet-v1"]).pixels)
    assert not np.array_equal(read_image(output).pixels, read_image(expected["auto"]).pixels)


_GUI_HARNESS = """
  local script = dofile({script})
  local M = script.libdeclip
  out:write("panel ", tostring(dt.gui.libs["libdeclip"] ~= nil), "\\n")
  dt.preferences.write("libdeclip", "command", "string", {command})
  dt.preferences.write("libdeclip", "device", "enum", "cpu")
  out:write("model ", M.options().model, "\\n")  -- the registered preference's default
  out:write("mode ", M.mode_label.label, "\\n")
  local image = dt.database.import({photo})
  image.rating = 2
  dt.gui.selection({{image}})
  M.button.clicked_callback(M.button)  -- the panel's button, as a click runs it
  local scratch = 0  -- the history copy's styles are deleted again (with a GUI, darktable can)
  for i = 1, #dt.styles do
    if dt.styles[i].name:match("^libdeclip%-") then scratch = scratch + 1 end
  end
  out:write("scratch styles ", scratch, "\\n")
  for _, other in ipairs(image:get_group_members()) do
    if other.id ~= image.id then
      out:write("grouped ", other.path .. "/" .. other.filename, " rating ", other.rating, "\\n")
    end
  end
  -- a job cancelled while the first of two images is being declipped stops before the second
  local job = dt.gui.create_job("test", true, function(j) j.valid = false end)
  local declip_image = M.declip_image
  M.declip_image = function(...)
    local r = {{declip_image(...)}}
    job.valid = false
    return table.unpack(r)
  end
  local second = dt.database.import({photo2})
  local done = M.declip_images({{image, second}}, M.options(), job)
  M.declip_image = declip_image
  out:write("after cancel ", #done, "\\n")
  script.destroy()
  out:write("hidden ", tostring(not dt.gui.libs["libdeclip"].visible), "\\n")
  script.restart()
"""


def _run_in_own_group(command: list[str], seconds: float) -> str:
    """Run ``command`` in a process group of its own and return its output; past ``seconds`` the
    whole group is killed (``timeout`` alone kills xvfb-run but can leave darktable behind, holding
    the output pipes open, so the test would wait for ever)."""
    import signal

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[killed after {seconds:g} s]"
    return out


def test_panel_button_in_the_darktable_gui(tmp_path: Path) -> None:
    """The script in darktable's real GUI (under Xvfb): its lighttable panel is there, its button
    declips the selection (job, preferences) and groups the result; script_manager's destroy hides
    the panel and restart shows it again."""
    photo, photo2 = tmp_path / "photo.png", tmp_path / "second.png"
    shutil.copy(sorted((SHARED_DATA / "clipped" / "hdrcnn").glob("*.png"))[0], photo)
    shutil.copy(sorted((SHARED_DATA / "clipped" / "hdrcnn").glob("*.png"))[1], photo2)
    _exposure_sidecar(photo, highlights=False)  # a history to copy: the scratch styles get made
    result = tmp_path / "result.txt"
    harness = tmp_path / "harness.lua"
    harness.write_text(gui_harness(str(result), _GUI_HARNESS.format(
        script=lua_string(str(SCRIPT)), command=lua_string(str(COMMAND)), photo=lua_string(str(photo)),
        photo2=lua_string(str(photo2)))))
    log = _run_in_own_group(
        ["xvfb-run", "-a", "darktable", "--configdir", str(tmp_path / "config"),
         "--cachedir", str(tmp_path / "cache"), "--library", ":memory:", "--luacmd",
         f'dofile("{harness}")'], 240)
    assert result.exists(), log[-3000:]
    text = result.read_text()
    assert text.endswith("OK\n") and "LUA ERROR" not in log, text + log[-3000:]
    assert "panel true" in text and "hidden true" in text and "after cancel 1" in text
    assert "model automatic\n" in text
    assert not (tmp_path / "second_declip.png").exists()
    assert "mode repairs: the source file\n" in text  # the panel says what the button repairs
    assert "scratch styles 0\n" in text
    grouped = next(line for line in text.splitlines() if line.startswith("grouped "))
    output = Path(grouped.split()[1])
    assert output == tmp_path / "photo_declip.png" and output.is_file() and grouped.endswith("rating 2")


# Shell syntax and non-ASCII; run by a shell, each command substitution or command after ";"
# would create a file in $HOME ("cd" alone goes there; a file name cannot hold "/").
NASTY = "it's \"q\" $(cd;touch PWNED_a) `cd;touch PWNED_b` ;cd;touch PWNED_c; & | > é 写真"


def test_file_names_with_shell_syntax_run_nothing(tmp_path: Path) -> None:
    """dt.control.execute hands the command line to a shell: with shell syntax and non-ASCII in
    the photo's folder and name (so in the output path beside it) and in the libdeclip command's
    own path, the script's quoting runs libdeclip on exactly these paths and nothing else."""
    home = tmp_path / "home"
    home.mkdir()
    folder = tmp_path / f"photos {NASTY}"
    folder.mkdir()
    photo = folder / f"{NASTY}.jpg"
    shutil.copy(sorted((SHARED_DATA / "clipped" / "singlehdr").glob("*.jpg"))[0], photo)
    command = tmp_path / f"bin {NASTY}" / "libdeclip"
    command.parent.mkdir()
    command.symlink_to(COMMAND)
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, [photo], command=command, env={"HOME": str(home)})
    markers = [p for d in (home, Path.home(), work, tmp_path, folder) for p in d.glob("PWNED*")]
    assert not markers, f"a command in a file name ran: {markers}"
    assert len(results) == 1 and "error" not in results[0], log[-3000:]
    output = Path(str(results[0]["output"]))
    assert output == folder / f"{NASTY}_declip.jpg" and output.is_file()  # the source file, repaired
    expected = tmp_path / "expected.jpg"
    assert libdeclip_main(["declip", str(photo), "-o", str(expected), "-q", "--device", "cpu"]) == 0
    assert output.read_bytes() == expected.read_bytes()


def test_the_raw_suffixes_are_libdeclips(tmp_path: Path) -> None:
    """The script tells a camera RAW by libdeclip's own list of suffixes (darktable's is_raw is set
    only once it has loaded the file)."""
    from libdeclip.io import RAW_SUFFIXES

    work = tmp_path / "dt"
    work.mkdir()
    _, log = run_harness(work, [])
    listed = next(ln.split(" ", 1)[1] for ln in log.splitlines() if ln.startswith("LIBDECLIP-RAW-SUFFIXES "))
    assert listed.split(",") == sorted(s.lstrip(".") for s in RAW_SUFFIXES)


def _dtstyle_plugins(path: Path) -> list[tuple[str, bool]]:
    """(operation, enabled) of each history item of a .dtstyle file, in its order."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    return [(p.findtext("operation") or "", p.findtext("enabled") == "1") for p in root.iter("plugin")]


def _xmp_history(path: Path) -> list[tuple[str, bool]]:
    """(operation, enabled) of each history item of a darktable XMP sidecar, in its order."""
    import xml.etree.ElementTree as ET

    dt_ns = "{http://darktable.sf.net/}"
    items = [li for li in ET.parse(path).getroot().iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")
             if li.get(f"{dt_ns}operation")]
    return [(li.get(f"{dt_ns}operation") or "", li.get(f"{dt_ns}enabled") == "1") for li in items]


def _exposure_evs(path: Path) -> list[float]:
    """The exposure (EV, ``dt_iop_exposure_params_t`` v6) of each exposure item of a .dtstyle file
    or of an XMP sidecar, in its order."""
    import struct
    import xml.etree.ElementTree as ET

    dt_ns, rdf_li = "{http://darktable.sf.net/}", "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"
    root = ET.parse(path).getroot()
    params = [p.findtext("op_params") or "" for p in root.iter("plugin")
              if p.findtext("operation") == "exposure"]
    params += [li.get(f"{dt_ns}params") or "" for li in root.iter(rdf_li)
               if li.get(f"{dt_ns}operation") == "exposure"]
    return [struct.unpack_from("<f", bytes.fromhex(h), 8)[0] for h in params]


# highlight reconstruction on in mode "clip" (values stop at the white level): the clipped file's cap
_HIGHLIGHTS_CLIP_XMP = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5"
 darktable:auto_presets_applied="0" darktable:history_end="1"><darktable:history><rdf:Seq>
<rdf:li darktable:num="0" darktable:operation="highlights" darktable:enabled="1" darktable:modversion="4"
 darktable:params="000000000000803f00000000000000000000803f000000001e00000006000000cdcccc3e000000400000000000000000"
 darktable:multi_name="" darktable:multi_priority="0"/></rdf:Seq></darktable:history></rdf:Description>
</rdf:RDF></x:xmpmeta>
"""


def _exposure_sidecar(path: Path, highlights: bool = True) -> None:
    """Give an original a history: darktable reads NAME.xmp when it imports NAME. Exposure +1 EV
    (``dt_iop_exposure_params_t`` v6) after highlight reconstruction on (inpaint opposed)."""
    import struct

    exposure = struct.pack("<iffffi", 0, -0.000244140625, 1.0, 50.0, -4.0, 0).hex()
    hl_params = struct.pack("<ifffffiiffif", 5, 1.0, 0.0, 0.0, 1.0, 0.0, 30, 6, 0.4, 2.0, 0, 0.0).hex()
    items = "".join(
        f'<rdf:li darktable:num="{i}" darktable:operation="{op}" darktable:enabled="1" '
        f'darktable:modversion="{version}" darktable:params="{params}" darktable:multi_name="" '
        'darktable:multi_priority="0"/>'
        for i, (op, version, params) in enumerate(
            ([("highlights", 4, hl_params)] if highlights else []) + [("exposure", 6, exposure)]))
    path.with_name(path.name + ".xmp").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5" '
        f'darktable:auto_presets_applied="1" darktable:history_end="{2 if highlights else 1}">'
        "<darktable:history><rdf:Seq>"
        f"{items}</rdf:Seq></darktable:history></rdf:Description></rdf:RDF></x:xmpmeta>")


def _darktable_pfm(raw: Path, sidecar: Path, work: Path) -> np.ndarray:
    """darktable-cli's scene-linear export of ``raw`` with ``sidecar`` (as benchmarks/_darktable.py
    runs it: no tone mapping, camera white balance)."""
    from benchmarks._darktable import _read_pfm

    out = work / f"{raw.stem}.pfm"
    proc = subprocess.run(
        ["darktable-cli", str(raw), str(sidecar), str(out), "--icc-type", "LIN_REC709", "--hq", "true",
         "--upscale", "false", "--apply-custom-presets", "false", "--core", "--configdir",
         str(work / f"cfg-{raw.stem}"), "--cachedir", str(work / f"cache-{raw.stem}"), "--library",
         ":memory:", "--disable-opencl", "--conf", "plugins/darkroom/workflow=none",
         "--conf", "plugins/darkroom/chromatic-adaptation=legacy"],
        capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0 and out.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return _read_pfm(out)


def test_a_raw_is_repaired_from_its_source_to_a_dng_with_highlights_off(tmp_path: Path) -> None:
    """The default button on a RAW: a real Bayer DNG (its clipping lowered to 0.6 of its highest
    photosite, as the RAW benchmark does) with a history (exposure, highlight reconstruction).
    The script's DNG equals ``libdeclip declip`` of the RAW, is grouped with it and has its tags;
    its sidecar and its history in the library turn highlight reconstruction off, and the copied
    history brought exposure along; darktable-cli's export of it with that sidecar holds, where the
    photosites were clipped, values above the original's white; and a JPEG is repaired from its
    source into a JPEG equal to ``libdeclip declip`` of it."""
    from benchmarks.raw_quality import _write_pair

    folder = tmp_path / "photos"
    folder.mkdir()
    raw, _truth = _write_pair(SHARED_DATA / "raw" / "tinydng_colorchart.dng", None, None, 0.6, folder)
    _exposure_sidecar(raw)
    jpeg = folder / "street.jpg"
    shutil.copy(sorted((SHARED_DATA / "clipped" / "singlehdr").glob("*.jpg"))[1], jpeg)
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, [raw, jpeg], copy_history=True)
    assert len(results) == 2 and not any("error" in r for r in results), (results, log[-3000:])
    dng, repaired_jpeg = (Path(str(r["output"])) for r in results)
    assert dng == folder / f"{raw.stem}_declip.dng" and repaired_jpeg == folder / "street_declip.jpg"
    for result in results:
        assert result["grouped"] is True and result["rating"] == 4 and result["red"] is True
        assert "test|libdeclip" in str(result["tags"]).split(",")
    # the pixels are libdeclip's
    expected = tmp_path / "expected.dng"
    assert libdeclip_main(["declip", str(raw), "-o", str(expected), "-q", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_image(dng).pixels, read_image(expected).pixels)
    expected_jpeg = tmp_path / "expected.jpg"
    assert libdeclip_main(["declip", str(jpeg), "-o", str(expected_jpeg), "-q", "--device", "cpu"]) == 0
    assert repaired_jpeg.read_bytes() == expected_jpeg.read_bytes()
    # highlight reconstruction off, in the sidecar and in the library; the copied history's exposure
    sidecar = dng.with_name(dng.name + ".xmp")
    library = Path(str(results[0]["history"]))
    for history in (_xmp_history(sidecar), _dtstyle_plugins(library)):
        assert ("exposure", True) in history, history
        assert [on for op, on in history if op == "highlights"] == [False], history  # not the original's
    # the DNG's values are scaled down to fit what was recovered above white (its BaselineExposure
    # says by how much; darktable does not read it): the copied exposure is the original's +1 EV
    # plus as much, so the DNG renders as bright as the RAW (in the library, and in the sidecar
    # as darktable writes it again after the import)
    headroom = read_image(dng).raw.baseline_exposure - read_image(raw).raw.baseline_exposure
    assert headroom >= 1.0
    for history in (sidecar, library):
        assert _exposure_evs(history)[-1] == pytest.approx(1.0 + headroom), (history, _exposure_evs(history))
    # darktable's own rendering of the DNG keeps what libdeclip recovered above the original's white
    ours = _darktable_pfm(dng, sidecar, work)
    clip_xmp = work / "clip.xmp"
    clip_xmp.write_text(_HIGHLIGHTS_CLIP_XMP)
    clipped = _darktable_pfm(raw, clip_xmp, work)
    mask = read_image(raw).raw_mask
    assert mask is not None and ours.shape == clipped.shape
    region = mask.any(axis=2)
    unclipped = ~region & (clipped.max(axis=2) > 0.05)
    scale = np.median(clipped[unclipped] / np.maximum(ours[unclipped], 1e-6))  # to the clipped file's units
    cap = clipped[region].max(axis=0)  # the clipped file's white, per channel, after white balance
    above = ((ours[region] * scale) > cap * 1.02).any(axis=1)
    assert above.mean() > 0.5, above.mean()


def test_a_raw_repaired_without_its_history_is_brightened_by_the_dngs_headroom(tmp_path: Path) -> None:
    """With "copy history" off the DNG's history is the script's sidecar alone: highlight
    reconstruction off and an exposure that makes up for the values' scaling (the DNG's
    BaselineExposure, which darktable does not read)."""
    from benchmarks.raw_quality import _write_pair

    raw, _truth = _write_pair(SHARED_DATA / "raw" / "tinydng_colorchart.dng", None, None, 0.6, tmp_path)
    work = tmp_path / "dt"
    work.mkdir()
    results, log = run_harness(work, [raw], copy_history=False)
    assert len(results) == 1 and "error" not in results[0], (results, log[-3000:])
    dng = Path(str(results[0]["output"]))
    headroom = read_image(dng).raw.baseline_exposure - read_image(raw).raw.baseline_exposure
    sidecar = dng.with_name(dng.name + ".xmp")
    assert headroom >= 1.0 and _exposure_evs(sidecar) == pytest.approx([headroom])
    assert [op for op, _on in _xmp_history(sidecar)] == ["highlights", "exposure"]


def test_the_scripts_highlights_parameters_are_the_benchmarks() -> None:
    """The script's sidecar and benchmarks/_darktable.py write the same module parameters (one is
    Lua, the other Python, so each has its own copy): darktable's defaults, inpaint opposed at 1.0."""
    import re

    from benchmarks._darktable import _highlights_params

    lua = SCRIPT.read_text()
    parts = re.search(r'local HIGHLIGHTS_PARAMS = "([0-9a-f]+)"\s*\.\.\s*"([0-9a-f]+)"', lua)
    assert parts is not None
    assert parts.group(1) + parts.group(2) == _highlights_params("opposed", 1.0)
