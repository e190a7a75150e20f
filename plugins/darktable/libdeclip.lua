--[[
  libdeclip.lua: repair clipped highlights and shadows of the selected images with libdeclip

  Select images in the lighttable and press "declip" in the libdeclip panel (or its keyboard
  shortcut, or choose the "declip with libdeclip" target in the export module). Each image is
  exported at full size as a 16- or 32-bit float TIFF, repaired by the `libdeclip` command,
  imported beside the original, grouped with it, and given its tags, rating and colour labels.
  The temporary export is removed.

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
local DEFAULTS = {command = "libdeclip", fit = "compress", device = "auto", model = "automatic",
                  suffix = "_declip", bpp = "16"}

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
function M.output_path(image, suffix)
  local base = image.path .. "/" .. stem(image.filename) .. suffix
  local path, n = base .. ".tif", 2
  while exists(path) do
    path = base .. "_" .. n .. ".tif"
    n = n + 1
  end
  return path
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

-- Export ``image`` at full size, declip it, import and group the result. ``exported``: a TIFF
-- already exported by darktable (the export storage), else this exports one. Returns the new
-- image (and the export's path when ``opts.keep_export``), or nil and a message.
function M.declip_image(image, opts, exported)
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
  M.button = dt.new_widget("button") {
    label = _("declip"),
    tooltip = _("repair clipped highlights and shadows of the selected images"),
    clicked_callback = function() M.declip_selection() end,
  }
  dt.register_lib(MODULE, _("libdeclip"), true, false,
    {[dt.gui.views.lighttable] = {"DT_UI_CONTAINER_PANEL_RIGHT_CENTER", 700}},
    dt.new_widget("box") {
      orientation = "vertical",
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
