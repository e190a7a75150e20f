--[[
  libdeclip.lua: repair clipped highlights and shadows of the selected images with libdeclip

  Select images in the lighttable and press "declip" in the libdeclip panel (or its keyboard
  shortcut). By default libdeclip repairs each image's source file, what the camera recorded:
  a camera RAW becomes a linear DNG beside it (<name>_declip.dng) with a sidecar
  (<name>_declip.dng.xmp) that turns darktable's highlight reconstruction off for it, so the
  recovered values above white reach the rest of the pipe; any other file (JPEG, PNG, TIFF, WebP,
  AVIF, HEIC) is repaired into the same format beside it. The result is imported, grouped with
  the original and given its tags, rating and colour labels; with "copy history" on (default) the
  original's history stack is applied to it too, less highlight reconstruction and the sensor-level
  modules that do not apply to a demosaiced DNG.

  The preference "repair: darktable's rendering" (and the export module's target "declip with
  libdeclip", whatever the preference) repairs what darktable renders instead: the image exported
  through its whole history as a 16- or 32-bit TIFF, repaired and imported as <name>_declip.tif.

  INSTALLATION
    * script_manager: add this file to a lua-scripts folder (for example contrib/) and start it
      in the script manager; or
    * copy it to ~/.config/darktable/lua/ and add `require "libdeclip"` to
      ~/.config/darktable/luarc.
  Needs libdeclip (`pip install libdeclip`); set the command's path in the preferences
  (lua options) when `libdeclip` is not on the PATH.

  Written for the darktable Lua API 9.x (darktable 4.2 to 5.x).
]]

local dt = require "darktable"

local MODULE = "libdeclip"
local API_MIN = {9, 0, 0}

-- gettext-ready strings (darktable's own domain, as lua-scripts do)
local gettext = dt.gettext
local function _(msg)
  return gettext and gettext.dgettext and gettext.dgettext("darktable", msg) or msg
end

local function api_at_least(version)
  local major, minor, patch = dt.configuration.api_version_string:match("(%d+)%.(%d+)%.(%d+)")
  local have = {tonumber(major), tonumber(minor), tonumber(patch)}
  for i = 1, 3 do
    if have[i] ~= version[i] then return have[i] > version[i] end
  end
  return true
end

if not api_at_least(API_MIN) then
  dt.print_error(MODULE .. ": needs darktable Lua API 9.0 or later")
  return
end

local M = {}  -- the functions, also for the tests

-- ---------------------------------------------------------------------------------- preferences

local gui = dt.configuration.has_gui
local SOURCE, RENDERING = "source file", "darktable's rendering"
local DEFAULTS = {command = "libdeclip", fit = "compress", device = "auto", model = "automatic",
                  suffix = "_declip", bpp = "16", repair = SOURCE, copy_history = true}

local function preference(key, kind)
  if gui then
    local value = dt.preferences.read(MODULE, key, kind)
    if value ~= nil and value ~= "" then return value end
  end
  return DEFAULTS[key]
end

-- Preferences belong to darktable's GUI (lua options); a Lua program using darktable in library
-- mode gets the defaults (registering them there would wait for a GUI forever). Registered once the
-- commands below are defined: the model list is asked of the libdeclip command.
local function register_preferences()
  dt.preferences.register(MODULE, "repair", "enum", _("libdeclip: repair"),
    _("the source file (a camera RAW becomes a linear DNG with darktable's highlight reconstruction "
      .. "off) or darktable's rendering of the image (a TIFF through its whole history)"),
    DEFAULTS.repair, SOURCE, RENDERING)
  dt.preferences.register(MODULE, "copy_history", "bool", _("libdeclip: copy history"),
    _("apply the original's history stack to the repaired source file, less highlight reconstruction"),
    DEFAULTS.copy_history)
  dt.preferences.register(MODULE, "command", "string", _("libdeclip: command"),
    _("the libdeclip command, or a full path to it"), DEFAULTS.command)
  dt.preferences.register(MODULE, "fit", "enum", _("libdeclip: range"),
    _("what happens to values recovered beyond the range"), DEFAULTS.fit, "compress", "clamp", "float")
  dt.preferences.register(MODULE, "device", "enum", _("libdeclip: device"),
    _("where the network runs"), DEFAULTS.device, "auto", "cpu", "cuda")
  -- The list is read when darktable starts: a model installed later shows after a restart.
  local models = M.model_names(preference("command", "string"))
  dt.preferences.register(MODULE, "model", "enum", _("libdeclip: model"),
    _("the network: automatic (DeclipNet v2 in the precision of the device that runs it) or one "
      .. "that 'libdeclip models' lists"), DEFAULTS.model, table.unpack(models))
  dt.preferences.register(MODULE, "suffix", "string", _("libdeclip: output suffix"),
    _("added to the file name of the repaired image"), DEFAULTS.suffix)
  dt.preferences.register(MODULE, "bpp", "enum", _("libdeclip: export bit depth"),
    _("bit depth of the TIFF handed to libdeclip"), DEFAULTS.bpp, "16", "32")
end

function M.options()
  return {
    repair = preference("repair", "enum") == RENDERING and "rendering" or "source",
    copy_history = preference("copy_history", "bool"),
    command = preference("command", "string"),
    fit = preference("fit", "enum"),
    device = preference("device", "enum"),
    model = preference("model", "enum"),
    suffix = preference("suffix", "string"),
    bpp = tonumber(preference("bpp", "enum")) or 16,
  }
end

-- ------------------------------------------------------------------------------------ commands

local windows = dt.configuration.running_os == "windows"

-- One argument for the shell, taken literally whatever it holds (spaces, quotes, $, ;, `, non-ASCII).
function M.quote(arg)
  arg = tostring(arg)
  if windows then
    -- cmd.exe: inside double quotes only " and % are special; double the quotes, and break %
    -- out of the quotes so that no variable is expanded.
    return '"' .. arg:gsub('"', '""'):gsub("%%", '"%%"') .. '"'
  end
  -- POSIX sh: inside single quotes nothing is special; a single quote ends, is escaped, restarts
  return "'" .. arg:gsub("'", "'\\''") .. "'"
end

function M.command_line(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = M.quote(a) end
  local line = table.concat(parts, " ")
  if windows then line = '"' .. line .. '"' end  -- cmd /c strips one pair of outer quotes
  return line
end

-- "automatic", then the models `libdeclip models --names` lists (only "automatic" when the command
-- does not answer).
function M.model_names(command)
  local names = {"automatic"}
  local pipe = io.popen(M.command_line({command, "models", "--names"}))
  if pipe then
    for line in pipe:lines() do
      local name = line:match("^%s*(%S+)%s*$")
      if name then names[#names + 1] = name end
    end
    pipe:close()
  end
  return names
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function split_path(path)
  local folder, name = path:match("^(.*)[/\\]([^/\\]+)$")
  if not folder then return ".", path end
  return folder, name
end

local function stem(name)
  return name:match("^(.*)%.[^.]*$") or name
end

-- A free name for the output beside the original: photo_declip.tif, photo_declip_2.tif, ...
-- ``ext``: its extension (default tif); ``with_sidecar``: NAME.xmp must be free as well.
function M.output_path(image, suffix, ext, with_sidecar)
  ext = ext or "tif"
  local base = image.path .. "/" .. stem(image.filename) .. suffix
  local path, n = base .. "." .. ext, 2
  while exists(path) or (with_sidecar and exists(path .. ".xmp")) do
    path = base .. "_" .. n .. "." .. ext
    n = n + 1
  end
  return path
end

-- Camera RAW suffixes libdeclip reads (libdeclip.io.RAW_SUFFIXES; tests/test_darktable.py checks
-- that the two lists agree).
local RAW_SUFFIXES = {}
for s in ("3fr ari arw bay cr2 cr3 crw dcr dcs dng erf fff iiq k25 kdc mef mos mrw nef nrw orf pef ptx "
          .. "raf raw rw2 rwl rwz sr2 srf srw x3f"):gmatch("%S+") do
  RAW_SUFFIXES[s] = true
end
M.RAW_SUFFIXES = RAW_SUFFIXES

-- Whether darktable reads ``image`` as a camera RAW. darktable sets ``is_raw`` once it has loaded
-- the file; an image only imported (the library mode of a script) may not have it yet: the suffix.
function M.is_raw(image)
  local ext = (image.filename:match("%.([^.]+)$") or ""):lower()
  return image.is_raw or RAW_SUFFIXES[ext] == true
end

-- Run libdeclip on a TIFF; returns true, or false and a message.
function M.run_libdeclip(input, output, opts)
  local argv = {opts.command, "declip", input, "-o", output, "--fit", opts.fit, "--device", opts.device, "-q"}
  if opts.model and opts.model ~= "automatic" then
    argv[#argv + 1] = "--model"
    argv[#argv + 1] = opts.model
  end
  local status = dt.control.execute(M.command_line(argv))
  if status ~= 0 then
    return false, string.format(_("libdeclip failed on %s (exit status %s)"), input, tostring(status))
  end
  if not exists(output) then
    return false, string.format(_("libdeclip wrote no output for %s"), input)
  end
  return true
end

-- ------------------------------------------------------------------------------- one image

local function copy_metadata(from, to)
  for _i, tag in ipairs(dt.tags.get_tags(from)) do
    if not tostring(tag.name):match("^darktable|") then dt.tags.attach(tag, to) end
  end
  to.rating = from.rating
  for _i, label in ipairs({"red", "yellow", "green", "blue", "purple"}) do to[label] = from[label] end
  to:group_with(from.group_leader)
end

-- ``dt_iop_highlights_params_t`` version 4 (darktable 4.2 to 5.x) with darktable's defaults
-- (inpaint opposed, clipping threshold 1.0), little-endian: mode 5, blendL 1, blendC 0, strength 0,
-- clip 1, noise 0, iterations 30, scales 6, candidating 0.4, combine 2, recovery 0, solid colour 0.
-- The module is written disabled, so the parameters only say which version they are.
local HIGHLIGHTS_PARAMS = "050000000000803f00000000000000000000803f000000001e00000006000000cdcccc3e"
                          .. "000000400000000000000000"

-- The DNG's BaselineExposure (tag 50730 in the first IFD of a classic TIFF) in EV; 0 when the file
-- has none or is not a TIFF (many camera RAW formats are not).
function M.baseline_exposure(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local result = 0
  local head = f:read(8)
  local e = head and #head == 8 and ({II = "<", MM = ">"})[head:sub(1, 2)]
  if e and string.unpack(e .. "I2", head, 3) == 42 then
    f:seek("set", string.unpack(e .. "I4", head, 5))
    local count = f:read(2)
    count = count and #count == 2 and string.unpack(e .. "I2", count) or 0
    local entries = f:read(12 * count) or ""
    for i = 0, math.min(count, #entries // 12) - 1 do
      local tag, kind, n, at = string.unpack(e .. "I2I2I4I4", entries, 12 * i + 1)
      if tag == 50730 and kind == 10 and n == 1 then  -- one SRATIONAL, stored at ``at``
        f:seek("set", at)
        local value = f:read(8)
        if value and #value == 8 then
          local num, den = string.unpack(e .. "i4i4", value)
          if den ~= 0 then result = num / den end
        end
        break
      end
    end
  end
  f:close()
  return result
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function history_item(num, operation, enabled, version, params, name, priority)
  return string.format('     <rdf:li darktable:num="%d" darktable:operation="%s" darktable:enabled="%d"\n'
    .. '      darktable:modversion="%d" darktable:params="%s"\n'
    .. '      darktable:multi_name="%s" darktable:multi_priority="%d"/>\n',
    num, operation, enabled and 1 or 0, version, params, name, priority)
end

-- The sidecar of a declipped DNG (darktable reads NAME.xmp when it imports NAME): a history that
-- turns highlight reconstruction off and, when libdeclip scaled the values down to fit what it
-- recovered above white under the DNG's white level (``headroom_ev`` > 0, which the DNG's
-- BaselineExposure says and darktable does not read), an exposure that brightens by as much, so
-- the DNG looks as the original does. It is the module's first instance: a second one
-- (multi_priority 1) rendered darker still in darktable 4.2. A copied history's exposure replaces
-- it, with the headroom added (M.add_exposure). darktable applies its automatic presets (the
-- workflow's exposure and tone mapper) on the first opening, as for any new image.
function M.dng_sidecar(headroom_ev)
  local items = {history_item(0, "highlights", false, 4, HIGHLIGHTS_PARAMS, "", 0)}
  if headroom_ev > 0.001 then
    -- ``dt_iop_exposure_params_t`` version 6: manual mode, black 0, exposure, deflicker
    -- percentile 50 and target -4 EV (unused in manual mode), no camera exposure bias
    local exposure = hex(string.pack("<iffffi", 0, 0.0, headroom_ev, 50.0, -4.0, 0))
    items[2] = history_item(1, "exposure", true, 6, exposure, "", 0)
  end
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    .. '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">\n'
    .. ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    .. '  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/"\n'
    .. string.format('    darktable:xmp_version="5" darktable:auto_presets_applied="0" '
                     .. 'darktable:history_end="%d">\n', #items)
    .. '   <darktable:history>\n    <rdf:Seq>\n' .. table.concat(items)
    .. '    </rdf:Seq>\n   </darktable:history>\n  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n'
end

-- Write ``text`` to ``path`` through a temporary file beside it, renamed once complete.
local function write_file(path, text)
  local tmp = path .. ".part"
  local f, err = io.open(tmp, "wb")
  if not f then return false, err end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp) return false, werr end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then os.remove(tmp) return false, rerr end
  return true
end

-- Modules of a history that are not copied onto a repaired source file: highlight reconstruction
-- (the recovered values must reach the pipe) and the sensor-level modules, whose parameters belong
-- to the original's photosites (black and white points, the mosaic) and which a demosaiced linear
-- DNG does not run.
M.NOT_COPIED = {highlights = true, rawprepare = true, demosaic = true, rawdenoise = true,
                hotpixels = true, cacorrect = true}

-- darktable 4.2 crashes deleting a style when it has no GUI (it updates the GUI's shortcuts): a
-- Lua program using darktable in library mode keeps the two scratch styles of each copy.
local function delete_style(style)
  if gui then dt.styles.delete(style) end
end

local function find_style(name)
  for i = 1, #dt.styles do
    if dt.styles[i].name == name then return dt.styles[i] end
  end
  return nil
end

-- A .dtstyle ``<plugin>`` block of the exposure module (``dt_iop_exposure_params_t`` v6, its
-- parameters as plain hex: darktable compresses only large ones) with ``ev`` added to its exposure
-- (the float at byte 8); other blocks, and parameters in another form, as they are.
function M.add_exposure(block, ev)
  if ev <= 0.001 or block:match("<operation>(.-)</operation>") ~= "exposure"
      or block:match("<multi_priority>(.-)</multi_priority>") ~= "0" then
    return block
  end
  local params = block:match("<op_params>(%x+)</op_params>")
  if not params or #params ~= 48 then return block end
  local bytes = params:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  local exposure = string.unpack("<f", bytes, 9)
  bytes = bytes:sub(1, 8) .. string.pack("<f", exposure + ev) .. bytes:sub(13)
  return (block:gsub("<op_params>%x+</op_params>", "<op_params>" .. hex(bytes) .. "</op_params>", 1))
end

-- Apply ``from``'s history stack to ``to``, less the modules of M.NOT_COPIED: through a darktable
-- style (the Lua API has no history copy): created from ``from``, exported, its items filtered in
-- the .dtstyle file, imported again, applied (appended to ``to``'s history), then deleted.
-- ``headroom_ev`` (see M.dng_sidecar) is added to the copied exposure, which replaces the
-- sidecar's. Returns the number of items applied, or nil and a message.
function M.copy_history(from, to, headroom_ev)
  local scratch = os.tmpname()  -- a name nobody else gets, in the temporary folder
  os.remove(scratch)
  local folder, unique = split_path(scratch)
  local name, filtered = "libdeclip-" .. unique, "libdeclip-" .. unique .. "-copy"
  local style = dt.styles.create(from, name, "libdeclip: history to copy")
  if not style then return nil, _("could not read the original's history") end
  local count = #style
  local applied, message = 0, nil
  if count > 0 then
    dt.styles.export(style, folder, true)
    local exported = folder .. "/" .. name .. ".dtstyle"
    local f = io.open(exported, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    os.remove(exported)
    local head, body, tail = text:match("^(.-<style>)(.*)(</style>.*)$")
    if not head then
      message = _("darktable exported the history in an unknown form")
    else
      local kept = {}
      for block in body:gmatch("<plugin>.-</plugin>") do
        if not M.NOT_COPIED[block:match("<operation>(.-)</operation>") or ""] then
          kept[#kept + 1] = M.add_exposure(block, headroom_ev or 0)
        end
      end
      if #kept > 0 then
        head = head:gsub("<name>.-</name>", "<name>" .. filtered .. "</name>", 1)
        local path = folder .. "/" .. filtered .. ".dtstyle"
        local wrote, err = write_file(path, head .. table.concat(kept) .. tail)
        if wrote then
          dt.styles.import(path)
          os.remove(path)
          local copy = find_style(filtered)
          if copy then
            dt.styles.apply(copy, to)
            delete_style(copy)
            applied = #kept
          else
            message = _("darktable did not import the filtered history")
          end
        else
          message = err
        end
      end
    end
  end
  delete_style(style)
  if message then return nil, message end
  return applied
end

-- Repair ``image``'s source file (see the top of this file). Returns the new image, or nil and a
-- message.
function M.declip_source(image, opts)
  local source = image.path .. "/" .. image.filename
  local raw = M.is_raw(image)
  local ext = raw and "dng" or (image.filename:match("%.([^.]+)$") or "tif")
  local output = M.output_path(image, opts.suffix, ext, raw)
  local ok, message = M.run_libdeclip(source, output, opts)
  if not ok then return nil, message end
  local headroom = raw and M.baseline_exposure(output) - M.baseline_exposure(source) or 0
  if raw then
    local wrote, err = write_file(output .. ".xmp", M.dng_sidecar(headroom))
    if not wrote then
      os.remove(output)
      return nil, string.format(_("could not write the sidecar of %s (%s)"), output, tostring(err))
    end
  end
  local new = dt.database.import(output)
  if not new then return nil, string.format(_("could not import %s"), output) end
  copy_metadata(image, new)
  if opts.copy_history and not gui and api_at_least({9, 4, 0}) then
    -- darktable 5 waits for ever creating a style without its GUI (a Lua program using it in
    -- library mode): the repair stands, the history is not copied there.
    dt.print_error(MODULE .. ": " .. string.format(_("history of %s not copied: darktable 5 copies "
      .. "styles in its GUI only"), image.filename))
  elseif opts.copy_history then
    local applied, err = M.copy_history(image, new, headroom)
    if not applied then  -- the repair stands; say why the edits did not come along
      dt.print_error(MODULE .. ": " .. string.format(_("history of %s not copied: %s"), image.filename, err))
    end
  end
  return new
end

-- Declip ``image``: its source file (``opts.repair`` "source", the default), or darktable's
-- rendering of it. ``exported``: a TIFF already exported by darktable (the export storage): that
-- rendering is repaired. Returns the new image (and, for a rendering, the export's path when
-- ``opts.keep_export``), or nil and a message.
function M.declip_image(image, opts, exported)
  if exported or opts.repair == "rendering" then return M.declip_rendering(image, opts, exported) end
  return M.declip_source(image, opts)
end

-- Export ``image`` at full size, declip it, import and group the result. ``exported``: a TIFF
-- already exported by darktable (the export storage), else this exports one. Returns the new
-- image (and the export's path when ``opts.keep_export``), or nil and a message.
function M.declip_rendering(image, opts, exported)
  local tmp = exported
  if not tmp then
    local base = os.tmpname()  -- creates the file: a name nobody else gets
    os.remove(base)
    tmp = base .. ".tif"
    local fmt = dt.new_format("tiff")
    fmt.bpp = opts.bpp
    fmt.max_width, fmt.max_height = 0, 0
    fmt:write_image(image, tmp)  -- returns false in 4.2 on success: check the file
    if not exists(tmp) then
      return nil, string.format(_("could not export %s"), image.filename)
    end
  end
  local output = M.output_path(image, opts.suffix)
  local ok, message = M.run_libdeclip(tmp, output, opts)
  if not opts.keep_export then os.remove(tmp) end
  if not ok then return nil, message end
  local new = dt.database.import(output)
  if not new then return nil, string.format(_("could not import %s"), output) end
  copy_metadata(image, new)
  return new, opts.keep_export and tmp or nil
end

-- Declip ``images`` one after the other; ``job`` (a darktable job, GUI only) shows progress and
-- can be cancelled between images. Returns the new images and the failures' messages.
function M.declip_images(images, opts, job)
  local done, failures = {}, {}
  for i, image in ipairs(images) do
    if job and not job.valid then break end  -- cancelled
    local new, message = M.declip_image(image, opts)
    if new then
      done[#done + 1] = new
    else
      failures[#failures + 1] = message
      dt.print_error(MODULE .. ": " .. message)
      dt.print(message)
    end
    if job and job.valid then job.percent = i / #images end  -- a cancelled job is gone
  end
  return done, failures
end

-- What the panel says the button repairs (the "repair" preference).
function M.mode_text()
  return M.options().repair == "rendering" and _("repairs: darktable's rendering")
    or _("repairs: the source file")
end

function M.declip_selection()
  local images = dt.gui.action_images
  if #images == 0 then
    dt.print(_("select the images to declip"))
    return
  end
  local job = dt.gui.create_job(_("declipping"), true, function(job) job.valid = false end)
  local done, failures = M.declip_images(images, M.options(), job)
  if job.valid then job.valid = false end
  dt.print(string.format(_("declipped %d of %d images"), #done, #images) ..
           (#failures > 0 and (": " .. failures[1]) or ""))
end

-- ------------------------------------------------------------------------------ darktable hooks

local registered = false  -- the GUI hooks exist (GUI mode only)

-- export storage: darktable exports with the format chosen in the export module, we declip
local function store(storage, image, format, filename, number, total, high_quality, extra)
  local new, message = M.declip_image(image, M.options(), filename)
  if not new then dt.print(message) end
end

-- The shortcut and the export target; registered again by restart after destroy.
local function register_hooks()
  dt.register_event(MODULE, "shortcut", function() M.declip_selection() end, _("declip selected images"))
  dt.register_storage(MODULE, _("declip with libdeclip"), store, nil,
    function(storage, format) return format.extension == "tif" end)
end

-- The panel, the shortcut and the export target exist in darktable's GUI only; in library mode
-- (a Lua program using darktable, as the tests do) registering them would wait for a GUI forever.
local function install()
  if not gui then return end
  register_preferences()
  M.mode_label = dt.new_widget("label") {label = M.mode_text()}
  M.button = dt.new_widget("button") {
    label = _("declip"),
    tooltip = _("repair clipped highlights and shadows of the selected images"),
    clicked_callback = function()
      M.mode_label.label = M.mode_text()  -- the preference may have changed since
      M.declip_selection()
    end,
  }
  dt.register_lib(MODULE, _("libdeclip"), true, false,
    {[dt.gui.views.lighttable] = {"DT_UI_CONTAINER_PANEL_RIGHT_CENTER", 700}},
    dt.new_widget("box") {
      orientation = "vertical",
      M.mode_label,
      M.button,
    })
  register_hooks()
  registered = true
end

local function destroy()
  if not registered then return end
  dt.gui.libs[MODULE].visible = false
  dt.destroy_event(MODULE, "shortcut")
  dt.destroy_storage(MODULE)
end

local function restart()
  if not registered then return end
  dt.gui.libs[MODULE].visible = true
  register_hooks()
end

install()

local script_data = {}
script_data.metadata = {
  name = "libdeclip",
  purpose = _("repair clipped highlights and shadows with libdeclip"),
  author = "libdeclip contributors",
  help = "https://github.com/libdeclip/libdeclip#darktable",
}
script_data.destroy = destroy
script_data.destroy_method = "hide"
script_data.restart = restart
script_data.show = restart
script_data.libdeclip = M  -- for tests and other scripts
return script_data
