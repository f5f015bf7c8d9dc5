-- luagw.harness — run luagw's series scripts from a busted spec, exactly as
-- luagw runs them: the same C engine (gateway/libluagw.so through LuaJIT's
-- FFI), the same pipeline as POST /write — parse, limits, the scripts (sandbox,
-- type rules, chains, params, budget), the series declarations, the encoder —
-- so a point the spec sees stored is one luagw stores, and a point luagw
-- refuses is refused here with the same message.
--
--   local harness = require("luagw.harness")    -- lpath: scripts/?.lua
--   local h = harness.new {
--     dir = "scripts",                          -- scripts.dir (default "scripts"; a
--                                               -- relative one is from the working directory)
--     params = { deployment = { tags = { datacenter = "eu-1" } } },
--     series = { errors = { "errors.lua", "lib/owner.lua" } },   -- optional
--     timeout_ms = 50, memory_limit = "64MiB", on_error = "pass", -- optional
--     memo_entries = 65536, memo_verify = false,                 -- optional
--     declare = { requests = { tags = { status_code = { required = true } } } },
--                                  -- optional: the config's top-level `series:`
--     service = "luna-sender",     -- optional: top-level `service:` ($service)
--     listen = { max_tags = 16 },  -- optional: limits (listen.max_*)
--     version = 2,                 -- optional: InfluxDB 1 (default: unsigned
--                                  -- written as integers) or 2
--   }
--   -- or: harness.new { config = "config/luagw.yaml" }  (all of it: scripts,
--   --     declarations, service, limits, version)
--   local out = h:run { series = "requests", time = 1700000000.5,
--                       tags = { method = "get", resource = "/version" },
--                       fields = { execution_time = 0.01, count = 3 } }
--   out.points[1].tags.route         --> "GET:/version"
--   out.points[1].types.count        --> "integer"
--   out.errors, out.rejected         --> see below
--   h:close()
--
-- h:run(point or list of points) sends JSON, like POST /v1/points: a Lua
-- number without fraction is an integer field, others floats (harness.float(2)
-- forces a float, harness.int("9223372036854775807") an exact integer);
-- time is Unix seconds (microseconds kept), absent = now.
-- h:run_lines(text, precision) sends line protocol, like POST /write.
--
-- The result is what POST /v1/debug/transform answers, decoded:
--   points[i] = { series, time (seconds), time_ns (string, exact), tags,
--                 fields, types = { name = "float"|"integer"|"unsigned"|
--                 "string"|"boolean" }, line (line protocol, as stored), src
--                 (input index or line), scripts = { paths that ran } }
--     integer fields beyond +-2^53 are int64_t/uint64_t cdata (exact);
--   errors[i] = { src, series, script ("file:line"), kind ("error"|"timeout"|
--                 "memory"), message, action ("pass"|"drop") };
--   rejected[i] = { src, series, error, scripts } (a limit, a declaration,
--                 no fields left, not encodable: what /write refuses);
--   parse_error = { where, at, error, count } when the input itself was bad;
--   verdict = { status (204, 400 or 413), error, line or index, accepted,
--               rejected }: what /write would answer.
--
-- The library is found at $LUAGW_LIB; else, installed (`make install`, the
-- Debian package), where INSTALLED_LIB below says; else, in the source tree,
-- at gateway/libluagw.so beside this file's scripts/ directory (run `make`).
local ffi = require("ffi")
local cjson = require("cjson")

local M = {}

local function declared(f) return (pcall(f)) end

-- `make install` writes here the path of libluagw.so relative to the
-- directory it installs this file in, so the pair also works under DESTDIR.
local INSTALLED_LIB = nil

local function library()
  local src = debug.getinfo(1, "S").source:sub(2)
  if os.getenv("LUAGW_LIB") then return os.getenv("LUAGW_LIB") end
  if INSTALLED_LIB then return (src:match("^(.*)/[^/]+$") or ".") .. "/" .. INSTALLED_LIB end
  return (src:match("^(.*)/scripts/luagw/[^/]+$") or ".") .. "/gateway/libluagw.so"
end

local lib = ffi.load(library())
M.lib = lib

if not declared(function() return ffi.typeof("gw_harness_t") end) then
  ffi.cdef "typedef struct gw_harness gw_harness_t;"
end
if not declared(function() return ffi.typeof("gw_script_stats_t") end) then
  ffi.cdef [[
typedef struct {
  char *series;
  uint64_t count[3];
  char last_script[160];
  char last_message[256];
  int64_t last_ns;
} gw_script_stat_t;
typedef struct {
  uint64_t total[3];
  gw_script_stat_t *series;
  size_t n;
} gw_script_stats_t;]]
end
if not declared(function() return ffi.typeof("gw_str_t") end) then
  ffi.cdef "typedef struct { const char *p; size_t n; } gw_str_t;"
end
if not declared(function() return ffi.typeof("gw_script_req_t") end) then
  ffi.cdef "typedef struct gw_script_req { gw_str_t token, client, db, rp, path; } gw_script_req_t;"
end
if not declared(function() return ffi.typeof("gw_memo_stats_t") end) then
  ffi.cdef [[
typedef struct {
  uint64_t hits, misses, uncacheable, evictions, verified, mismatches;
} gw_memo_stats_t;]]
end
for name, decl in pairs {
  gw_harness_open = "gw_harness_t *gw_harness_open(const char *path, char *err, size_t errlen);",
  gw_harness_run = "int gw_harness_run(gw_harness_t *h, int format, const char *body, size_t len, int64_t ns_per_unit, char **json);",
  gw_harness_close = "void gw_harness_close(gw_harness_t *h);",
  gw_script_stats_snapshot = "int gw_script_stats_snapshot(gw_script_stats_t *out);",
  gw_script_stats_free = "void gw_script_stats_free(gw_script_stats_t *st);",
  gw_harness_set_req = "void gw_harness_set_req(gw_harness_t *h, const gw_script_req_t *req);",
  gw_memo_stats = "void gw_memo_stats(gw_memo_stats_t *out);",
} do
  if not declared(function() return lib[name] end) then ffi.cdef(decl) end
end
if not declared(function() return ffi.C.free end) then ffi.cdef "void free(void *p);" end

local FLOAT = setmetatable({}, { __mode = "k" })

-- A float field even when the value is integral: harness.float(2).
function M.float(v)
  local box = { value = v }
  FLOAT[box] = true
  return box
end

-- An exact integer field: harness.int(5) or harness.int("9223372036854775807")
-- (an unsigned one above INT64_MAX).
function M.int(v)
  if type(v) == "string" then
    local n = assert(v:match("^%s*([+-]?%d+)%s*$"), "harness.int: not an integer: " .. v)
    return M.exact(n)
  end
  assert(type(v) == "number" and v == math.floor(v), "harness.int: not an integer: " .. tostring(v))
  return ffi.new("int64_t", v)
end

---------------------------------------------------------------------------
-- JSON in (numbers written so that their type survives)

local function json_string(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local b = c:byte()
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t" elseif c == "\r" then return "\\r"
    elseif b >= 128 then return c
    else return ("\\u%04x"):format(b) end
  end) .. '"'
end

local function json_number(v, as_float)
  if v ~= v or v == math.huge or v == -math.huge then error("harness: cannot send " .. tostring(v)) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return as_float and ("%d.0"):format(v) or ("%d"):format(v)
  end
  local s = ("%.17g"):format(v)
  if as_float and not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function json_value(v, is_field)
  local t = type(v)
  if t == "string" then return json_string(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then return json_number(v, false) end
  if t == "cdata" then return (tostring(v):gsub("U?LL$", "")) end
  if t == "table" and FLOAT[v] then return json_number(v.value, true) end
  error("harness: cannot send a " .. t .. (is_field and " as a field value" or ""))
end

local function json_object(t, is_field)
  local keys, parts = {}, {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = json_string(k) .. ":" .. json_value(t[k], is_field) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function json_time(v)
  if type(v) == "string" then return json_string(v) end
  if v == math.floor(v) then return ("%d"):format(v) end
  return ("%.6f"):format(v)
end

local function point_json(p)
  local parts = { '"series":' .. json_string(assert(p.series, "harness: a point needs series")) }
  if p.time ~= nil then parts[#parts + 1] = '"time":' .. json_time(p.time) end
  parts[#parts + 1] = '"tags":' .. json_object(p.tags, false)
  parts[#parts + 1] = '"fields":' .. json_object(p.fields, true)
  return "{" .. table.concat(parts, ",") .. "}"
end

---------------------------------------------------------------------------
-- The config file the harness writes (JSON is YAML)

local function yaml_value(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 then
      local parts = {}
      for _, x in ipairs(v) do parts[#parts + 1] = yaml_value(x) end
      return "[" .. table.concat(parts, ", ") .. "]"
    end
    local keys, parts = {}, {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = json_string(k) .. ": " .. yaml_value(v[k]) end
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif t == "string" then
    return json_string(v)
  elseif t == "number" then
    return json_number(v, false)
  elseif t == "boolean" then
    return v and "true" or "false"
  end
  error("harness: cannot write a " .. t .. " into the config")
end

if not declared(function() return ffi.C.getcwd end) then
  ffi.cdef "char *getcwd(char *buf, size_t size);"
end

-- The config is written to a temporary file, and luagw takes a relative
-- scripts.dir beside its config file: anchor it to the working directory.
local function absolute(dir)
  if dir:sub(1, 1) == "/" then return dir end
  local buf = ffi.new("char[4096]")
  assert(ffi.C.getcwd(buf, 4096) ~= nil, "harness: getcwd failed")
  return ffi.string(buf) .. "/" .. dir
end

local function write_config(o)
  local s = { dir = absolute(o.dir or "scripts") }
  for _, k in ipairs { "timeout_ms", "memory_limit", "on_error", "memo_entries", "memo_verify", "params", "series" } do
    if o[k] ~= nil then s[k] = o[k] end
  end
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write("scripts: ", yaml_value(s), "\n")
  if o.declare then f:write("series: ", yaml_value(o.declare), "\n") end
  if o.service then f:write("service: ", yaml_value(o.service), "\n") end
  if o.listen then f:write("listen: ", yaml_value(o.listen), "\n") end
  if o.version then
    f:write("monitoring: ", yaml_value { version = o.version, organization = "harness", bucket = "harness" }, "\n")
  end
  f:close()
  return path
end

---------------------------------------------------------------------------

local H = {}
H.__index = H

if not declared(function() return ffi.C.strtoll end) then
  ffi.cdef "long long strtoll(const char *s, char **end, int base);"
end
if not declared(function() return ffi.C.strtoull end) then
  ffi.cdef "unsigned long long strtoull(const char *s, char **end, int base);"
end

-- A decimal integer string as int64_t, or uint64_t above INT64_MAX.
function M.exact(text)
  local digits = text:gsub("^[+-]", ""):gsub("^0+(%d)", "%1")
  if text:sub(1, 1) == "-" or #digits < 19 or (#digits == 19 and digits <= "9223372036854775807") then
    return ffi.new("int64_t", ffi.C.strtoll(text, nil, 10))
  end
  return ffi.new("uint64_t", ffi.C.strtoull(text, nil, 10))
end

local function decode(text)
  local doc = cjson.decode(text)
  for _, p in ipairs(doc.points) do
    for k, s in pairs(p.exact or {}) do p.fields[k] = M.exact(s) end
  end
  return doc
end

function M.new(o)
  o = o or {}
  local path, tmp = o.config, nil
  if not path then
    path = write_config(o)
    tmp = path
  end
  local err = ffi.new("char[1024]")
  local s = lib.gw_harness_open(path, err, 1024)
  if tmp then os.remove(tmp) end
  if s == nil then return nil, ffi.string(err) end
  return setmetatable({ s = ffi.gc(s, lib.gw_harness_close) }, H)
end

-- req (a table of strings: token, client, db, rp, path) as the C struct
-- scripts see; the strings stay referenced by the struct's owner table.
local function req_struct(req)
  local r = ffi.new("gw_script_req_t")
  for _, k in ipairs { "token", "client", "db", "rp", "path" } do
    local v = req[k]
    if v ~= nil then r[k].p, r[k].n = v, #v end
  end
  return r
end

local function transform(self, format, body, ns_per_unit, req)
  local out = ffi.new("char *[1]")
  local r = req and req_struct(req)
  lib.gw_harness_set_req(self.s, r)
  local rc = lib.gw_harness_run(self.s, format, body, #body, ns_per_unit, out)
  lib.gw_harness_set_req(self.s, nil)
  assert(rc ~= 2, "harness: the scripts made more than 1,000,000 points")
  assert(rc == 0, "harness: out of memory")
  local text = ffi.string(out[0])
  ffi.C.free(out[0])
  return decode(text), text
end

-- Run one point or a list of points (Lua tables, see above); req (optional)
-- is what the scripts see as their second argument: { token =, client =,
-- db =, rp =, path = }.
function H:run(points, req)
  if points.series then points = { points } end
  local parts = {}
  for i, p in ipairs(points) do parts[i] = point_json(p) end
  return transform(self, 1, "[" .. table.concat(parts, ",") .. "]", 1, req)
end

-- Run a JSON body as POST /v1/points would receive it.
function H:run_json(body, req) return transform(self, 1, body, 1, req) end

local PRECISION = { n = 1, ns = 1, u = 1000, us = 1000, ms = 1000000, s = 1000000000,
  m = 60000000000, h = 3600000000000 }

-- Run line protocol as POST /write would receive it (precision: ns by default).
function H:run_lines(text, precision, req)
  local mult = PRECISION[precision or "ns"] or error("harness: unknown precision " .. tostring(precision))
  return transform(self, 0, text, mult, req)
end

-- Shorthand: the transformed points of one input point.
function H:points(p) return self:run(p).points end

function H:close()
  if self.s then
    lib.gw_harness_close(ffi.gc(self.s, nil))
    self.s = nil
  end
end

-- Failed script calls of this process (all harnesses and luagw's own engine):
-- { total = { errors, timeouts, memory }, series = { [name] = { errors,
-- timeouts, memory, last = { script, message, at (Unix seconds) } } } }.
function M.stats()
  local st = ffi.new("gw_script_stats_t")
  assert(lib.gw_script_stats_snapshot(st) == 0, "harness: out of memory")
  local function counts(c)
    return { errors = tonumber(c[0]), timeouts = tonumber(c[1]), memory = tonumber(c[2]) }
  end
  local t = { total = counts(st.total), series = {} }
  for i = 0, tonumber(st.n) - 1 do
    local s = st.series[i]
    local row = counts(s.count)
    row.last = { script = ffi.string(s.last_script), message = ffi.string(s.last_message),
                 at = tonumber(s.last_ns) / 1e9 }
    t.series[ffi.string(s.series)] = row
  end
  lib.gw_script_stats_free(st)
  return t
end

-- The memo cache's counts of this process (all harnesses and luagw's own
-- engine; memo.h): { hits, misses, uncacheable, evictions, verified,
-- mismatches }. Specs compare two readings.
function M.memo_stats()
  local st = ffi.new("gw_memo_stats_t")
  lib.gw_memo_stats(st)
  local t = {}
  for _, k in ipairs { "hits", "misses", "uncacheable", "evictions", "verified", "mismatches" } do
    t[k] = tonumber(st[k])
  end
  return t
end

return M
