-- gateway/script.lua — the Lua half of the scripting engine (gateway/script.c).
--
-- Compiled into luagw as bytecode and run once in every worker's Lua state:
--   local run = chunk(setup, ctl)
-- It builds the sandbox, loads each script into its own environment, and
-- returns run(start, fresh), which script.c calls once per request (and again
-- from the next point after an error). run reads the request's points from C
-- through the FFI, builds one Lua table per point, calls the point's chain of
-- scripts, and writes what they return back into C structures:
--   * strings the script did not change are written back as the original
--     slices of the request body;
--   * new strings are written as pointers into the Lua strings themselves,
--     which stay referenced from `anchor` until the next run, so the encoder
--     (which runs before the next run) reads live memory.
-- Errors are not caught here: they unwind to script.c's lua_pcall, which
-- applies scripts.on_error to the point in progress (ctl.cur) and calls run
-- again from the next point. This keeps pcall out of the hot loop.
local ffi = require("ffi")
local bit = require("bit")
local tnew = require("table.new")
local tclear = require("table.clear")

local setup, ctl_ud = ...

ffi.cdef [[
typedef struct { const char *p; size_t n; } gw_str_t;
typedef struct { gw_str_t key; gw_str_t val; } gw_tag_t;
typedef struct {
  gw_str_t key; int type;
  union { double f; int64_t i; uint64_t u; int b; gw_str_t s; } v;
} gw_field_t;
typedef struct {
  gw_str_t series; int64_t time_ns; gw_tag_t *tags; gw_field_t *fields;
  uint32_t ntags; uint32_t nfields; uint32_t src;
} gw_point_t;
typedef struct { uint32_t first, n, status, steps; } gw_script_rec_t;
typedef struct gw_script_ctl {
  gw_point_t *inp;
  const uint16_t *chain;
  gw_script_rec_t *rec;
  gw_point_t *out;
  gw_tag_t *tags;
  gw_field_t *fields;
  volatile uint32_t *seq;
  int (*grow)(struct gw_script_ctl *c, int what, uint32_t keep_from);
  uint32_t nin, cur, script, nout, committed, outcap;
  uint32_t ntags, tagcap, nfields, fieldcap;
} gw_script_ctl_t;
struct gw_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct gw_timespec *ts);
long long strtoll(const char *s, char **end, int base);
unsigned long long strtoull(const char *s, char **end, int base);
]]

local C = ffi.C
local ffi_string, istype, cast = ffi.string, ffi.istype, ffi.cast
local floor, huge = math.floor, math.huge
local type, next, tostring, tonumber, error, pairs, ipairs, select, setmetatable, pcall =
      type, next, tostring, tonumber, error, pairs, ipairs, select, setmetatable, pcall
local format = string.format

local ctl = cast("gw_script_ctl_t *", ctl_ud)
local int64_t, uint64_t = ffi.typeof("int64_t"), ffi.typeof("uint64_t")
local FLOAT, INT, UINT, STRING, BOOL = 0, 1, 2, 3, 4
local MAX_EMIT = setup.max_emit
local TWO63 = 2 ^ 63

-- Layout check: script.c compares these with its own sizeof/offsetof.
local layout = {
  point = ffi.sizeof("gw_point_t"), tag = ffi.sizeof("gw_tag_t"), field = ffi.sizeof("gw_field_t"),
  ctl = ffi.sizeof("gw_script_ctl_t"), rec = ffi.sizeof("gw_script_rec_t"),
  field_v = ffi.offsetof("gw_field_t", "v"), point_src = ffi.offsetof("gw_point_t", "src"),
  ctl_nin = ffi.offsetof("gw_script_ctl_t", "nin"),
}

---------------------------------------------------------------------------
-- The sandbox

-- int(n): an Influx integer. Numbers must be integral and fit 64 bits;
-- strings are parsed exactly (beyond 2^53 too); int() values pass through.
local endp = ffi.new("char *[1]")
local function int(n)
  local t = type(n)
  if t == "number" then
    if n ~= floor(n) or n >= TWO63 or n < -TWO63 then
      error("int: " .. tostring(n) .. " is not an integer that fits in 64 bits", 2)
    end
    return int64_t(n)
  elseif t == "string" then
    local s = n:match("^%s*([+-]?%d+)%s*$")
    if s then
      ffi.errno(0)
      local v = C.strtoll(s, endp, 10)
      if ffi.errno() == 0 then return int64_t(v) end
      if s:sub(1, 1) ~= "-" then
        ffi.errno(0)
        local u = C.strtoull(s, endp, 10)
        if ffi.errno() == 0 then return uint64_t(u) end
      end
    end
    error("int: " .. format("%q", n:sub(1, 40)) .. " is not an integer that fits in 64 bits", 2)
  elseif t == "cdata" and (istype(int64_t, n) or istype(uint64_t, n)) then
    return n
  end
  error("int: expected a number or a string of digits, got " .. t, 2)
end

local ts = ffi.new("struct gw_timespec")
local function now()
  C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function pick(src, names)
  local t = {}
  for _, k in ipairs(names) do t[k] = src[k] end
  return t
end

local SAFE_STRING = pick(string, { "byte", "char", "find", "format", "gmatch", "gsub", "len",
  "lower", "match", "rep", "reverse", "sub", "upper" })
local SAFE_TABLE = pick(table, { "concat", "insert", "maxn", "remove", "sort" })
SAFE_TABLE.new, SAFE_TABLE.clear = tnew, tclear
local SAFE_MATH = pick(math, { "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh",
  "deg", "exp", "floor", "fmod", "frexp", "huge", "ldexp", "log", "log10", "max", "min", "modf",
  "pi", "pow", "rad", "random", "randomseed", "sin", "sinh", "sqrt", "tan", "tanh" })
local SAFE_BIT = pick(bit, { "arshift", "band", "bnot", "bor", "bswap", "bxor", "lshift", "rol",
  "ror", "rshift", "tobit", "tohex" })
local SAFE_BASE = pick(_G, { "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "unpack", "xpcall", "rawequal", "rawget", "rawset",
  "setmetatable", "getmetatable" })
local SAFE_OS = { time = setup.c.os_time, date = setup.c.os_date, clock = os.clock }

-- Strings index the safe string table, never the real one (which has
-- string.dump), and getmetatable("") reveals nothing.
do
  local smt = getmetatable("")
  smt.__index = pick(SAFE_STRING, { "byte", "char", "find", "format", "gmatch", "gsub", "len",
    "lower", "match", "rep", "reverse", "sub", "upper" })
  smt.__metatable = false
end

local function copy(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

local function deepcopy(v)
  if type(v) ~= "table" then return v end
  local r = {}
  for k, x in pairs(v) do r[k] = deepcopy(x) end
  return r
end

-- A fresh environment per script: changes a script makes to its globals or
-- to its copies of the libraries stay its own.
local function new_env(info)
  local env = copy(SAFE_BASE)
  env.string, env.table, env.math, env.bit = copy(SAFE_STRING), copy(SAFE_TABLE), copy(SAFE_MATH), copy(SAFE_BIT)
  env.os = copy(SAFE_OS)
  env.log = { info = setup.c.log_info, warn = setup.c.log_warn, error = setup.c.log_error }
  env.params = deepcopy(setup.params)
  env.int, env.now = int, now
  env._G = env
  env._VERSION = _VERSION
  env.SCRIPT = info.path
  return env
end

---------------------------------------------------------------------------
-- Loading the scripts

local fns, where, lines = {}, {}, {}
do
  local seq = ctl.seq
  for id, info in ipairs(setup.scripts) do
    ctl.script = id
    seq[0] = seq[0] + 1
    if info.source:byte(1) == 27 then
      error(info.path .. ": is LuaJIT bytecode (binary); scripts are loaded from Lua source only", 0)
    end
    local chunk, err = load(info.source, "@" .. info.path, "t", new_env(info))
    if not chunk then error(err, 0) end
    local ok, f = pcall(chunk)
    if not ok then
      error(type(f) == "string" and f or (info.path .. ": error object is a " .. type(f)), 0)
    end
    if type(f) ~= "function" then
      error(info.path .. ": must return a function (return function(point) ... end), returned "
        .. (f == nil and "nothing" or "a " .. type(f)), 0)
    end
    fns[id] = f
    local d = debug.getinfo(f, "S")
    where[id] = info.path .. ":" .. (d.linedefined or 0)
    lines[id] = d.linedefined or 0
  end
end

local chain_steps, chain_series, chain_fn1, chain_id1 = {}, {}, {}, {}
for cid, ch in ipairs(setup.chains) do
  chain_steps[cid] = ch.ids
  chain_series[cid] = ch.series or false
  -- A chain of one script (the common case) is called without a loop.
  chain_fn1[cid] = #ch.ids == 1 and fns[ch.ids[1]] or false
  chain_id1[cid] = #ch.ids == 1 and ch.ids[1] or 0
end

---------------------------------------------------------------------------
-- Reading points: one straight-line maker per (number of tags, number of
-- fields), generated on first use. Loops of two or three iterations are what
-- LuaJIT's tracer handles worst; straight-line code it compiles whole.

local MAX_UNROLL = 24

local function read_field(f)
  local ty = f.type
  if ty == FLOAT then return f.v.f
  elseif ty == INT then return tonumber(f.v.i)
  elseif ty == STRING then return ffi_string(f.v.s.p, f.v.s.n)
  elseif ty == BOOL then return f.v.b ~= 0
  end
  return tonumber(f.v.u)
end

local function make_loop(p)
  local nt, nf = p.ntags, p.nfields
  local tags = tnew(0, nt + 2)
  local ptags = p.tags
  for j = 0, nt - 1 do
    local tg = ptags[j]
    tags[ffi_string(tg.key.p, tg.key.n)] = ffi_string(tg.val.p, tg.val.n)
  end
  local fields = tnew(0, nf + 2)
  local pfields = p.fields
  for j = 0, nf - 1 do
    local f = pfields[j]
    fields[ffi_string(f.key.p, f.key.n)] = read_field(f)
  end
  return tags, fields
end

local makers = {}

local function maker(nt, nf)
  local m = makers[nt * 256 + nf]
  if m then return m end
  if nt > MAX_UNROLL or nf > MAX_UNROLL then
    m = make_loop
  else
    local b = { "local ffi_string, tnew, read_field = ...", "return function(p)",
      ("local tags, fields = tnew(0, %d), tnew(0, %d)"):format(nt + 2, nf + 2),
      "local pt, pf = p.tags, p.fields" }
    for j = 0, nt - 1 do
      b[#b + 1] = ("do local t = pt[%d]; tags[ffi_string(t.key.p, t.key.n)] = ffi_string(t.val.p, t.val.n) end"):format(j)
    end
    for j = 0, nf - 1 do
      b[#b + 1] = ("do local f = pf[%d]; fields[ffi_string(f.key.p, f.key.n)] = read_field(f) end"):format(j)
    end
    b[#b + 1] = "return tags, fields end"
    m = assert(load(table.concat(b, "\n"), "=maker"))(ffi_string, tnew, read_field)
  end
  makers[nt * 256 + nf] = m
  return m
end

---------------------------------------------------------------------------
-- Writing results back. Numbers go back as NUMBER: script.c resolves them
-- against the point's original fields (an integer stays one when integral;
-- an untouched one is copied exactly), which keeps scans out of this loop.

local NUMBER = 99
local anchor, nanchor = {}, 0           -- strings C points into, until the next run

local function bad(fmt, ...)
  error(where[ctl.script] .. ": bad return value: " .. format(fmt, ...), 0)
end

local function tag_string(v, k)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == huge or v == -huge then bad("tag %q: %s cannot be a tag value", k, tostring(v)) end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    local s = format("%.15g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    return s
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "cdata" and (istype(int64_t, v) or istype(uint64_t, v)) then
    return (tostring(v):gsub("U?LL$", ""))
  end
  bad("tag %q: a %s cannot be a tag value (use a string, number or boolean)", tostring(k), t)
end

local function emit(r, p, series_in, tin)
  local c = ctl
  local k = c.nout
  if k >= c.outcap then
    if c.grow(c, 0, 0) ~= 0 then error("out of memory", 0) end
  end
  local o = c.out[k]
  local na = nanchor

  local s = r.series
  if s == series_in then
    o.series = p.series
  else
    if type(s) ~= "string" or #s == 0 then bad("point.series must be a non-empty string, got %s", type(s)) end
    o.series.p = s
    o.series.n = #s
    na = na + 1; anchor[na] = s
  end

  local t = r.time
  if t == tin or t == nil then
    o.time_ns = p.time_ns
  else
    if type(t) ~= "number" or t ~= t or t >= 9.2e9 or t <= -9.2e9 then
      bad("point.time must be Unix seconds (a number), got %s", tostring(t))
    end
    o.time_ns = floor(t * 1e9 + 0.5)
  end

  local tags = r.tags
  local tstart = c.ntags
  if tags ~= nil then
    if type(tags) ~= "table" then bad("point.tags must be a table, got %s", type(tags)) end
    for key, v in next, tags do
      if type(v) ~= "string" then
        v = tag_string(v, key)
      end
      local nv = #v
      if nv > 0 then
        if type(key) ~= "string" or #key == 0 then bad("tag keys must be non-empty strings, got %s", tostring(key)) end
        local j = c.ntags
        if j >= c.tagcap then
          if c.grow(c, 1, tstart) ~= 0 then error("out of memory", 0) end
          tstart = 0
          j = c.ntags
        end
        local tg = c.tags[j]
        tg.key.p = key; tg.key.n = #key
        tg.val.p = v; tg.val.n = nv
        c.ntags = j + 1
        anchor[na + 1] = key; anchor[na + 2] = v; na = na + 2
      end
    end
  end

  local fields = r.fields
  local fstart = c.nfields
  if fields ~= nil then
    if type(fields) ~= "table" then bad("point.fields must be a table, got %s", type(fields)) end
    for key, v in next, fields do
      if type(key) ~= "string" or #key == 0 then bad("field keys must be non-empty strings, got %s", tostring(key)) end
      local j = c.nfields
      if j >= c.fieldcap then
        if c.grow(c, 2, fstart) ~= 0 then error("out of memory", 0) end
        fstart = 0
        j = c.nfields
      end
      local f = c.fields[j]
      f.key.p = key; f.key.n = #key
      na = na + 1; anchor[na] = key
      local tv = type(v)
      if tv == "number" then
        f.type = NUMBER; f.v.f = v
      elseif tv == "string" then
        f.type = STRING; f.v.s.p = v; f.v.s.n = #v
        na = na + 1; anchor[na] = v
      elseif tv == "boolean" then
        f.type = BOOL; f.v.b = v and 1 or 0
      elseif tv == "cdata" and istype(int64_t, v) then
        f.type = INT; f.v.i = v
      elseif tv == "cdata" and istype(uint64_t, v) then
        f.type = UINT; f.v.u = v
      else
        bad("field %q: a %s cannot be a field value", key, tv)
      end
      c.nfields = j + 1
    end
  end
  nanchor = na
  o.tags = c.tags + tstart
  o.ntags = c.ntags - tstart
  o.fields = c.fields + fstart
  o.nfields = c.nfields - fstart
  o.src = p.src
  c.nout = k + 1
end

-- Emit what a chain returned: a point, a list of points, or nothing.
local function emit_result(r, pt, p, series_in, tin)
  if r == pt then return emit(r, p, series_in, tin) end
  if not r then return end
  if type(r) ~= "table" then
    bad("expected the point, a list of points, nil or false, got a %s", type(r))
  end
  if r.series ~= nil then return emit(r, p, series_in, tin) end
  local n = #r
  if n == 0 and next(r) ~= nil then
    bad("a point table needs series; a list needs points at 1..n")
  end
  if n > MAX_EMIT then bad("%d points emitted for one point, at most %d", n, MAX_EMIT) end
  for j = 1, n do
    local x = r[j]
    if type(x) ~= "table" or x.series == nil then
      bad("list item %d: expected a point table with series, got %s", j, type(x))
    end
    emit(x, p, series_in, tin)
  end
end

-- Run one script over a point or over each point of a list.
local function step(f, r, pt, seq)
  if r == pt or (type(r) == "table" and r.series ~= nil) then
    seq[0] = seq[0] + 1
    return f(r)
  end
  if type(r) ~= "table" then
    bad("expected the point, a list of points, nil or false, got a %s", type(r))
  end
  local out, n = {}, 0
  for j = 1, #r do
    local x = r[j]
    if type(x) ~= "table" or x.series == nil then
      bad("list item %d: expected a point table with series, got %s", j, type(x))
    end
    seq[0] = seq[0] + 1
    local y = f(x)
    if y then
      if type(y) == "table" and y.series == nil then
        for q = 1, #y do n = n + 1; out[n] = y[q] end
      else
        n = n + 1; out[n] = y
      end
      if n > MAX_EMIT then bad("more than %d points emitted for one point", MAX_EMIT) end
    end
  end
  return out
end

---------------------------------------------------------------------------
-- The per-request loop

local function run(start, fresh)
  local c = ctl
  if fresh then
    if nanchor > 65536 then anchor = {} else tclear(anchor) end
    nanchor = 0
  end
  local inp, chain_of, recs, seq = c.inp, c.chain, c.rec, c.seq
  for i = start, c.nin - 1 do
    local cid = chain_of[i]
    if cid ~= 0 then
      c.cur = i
      local p = inp[i]
      local tags, fields = maker(p.ntags, p.nfields)(p)
      local series = chain_series[cid] or ffi_string(p.series.p, p.series.n)
      local tin = tonumber(p.time_ns) / 1e9
      local pt = { series = series, time = tin, tags = tags, fields = fields }

      local r, ran
      local f1 = chain_fn1[cid]
      if f1 then
        c.script = chain_id1[cid]
        seq[0] = seq[0] + 1
        r = f1(pt)
        ran = 1
      else
        local steps = chain_steps[cid]
        r = pt
        ran = 0
        for s = 1, #steps do
          local id = steps[s]
          c.script = id
          ran = s
          r = step(fns[id], r, pt, seq)
          if not r then break end
        end
      end

      local first = c.nout
      emit_result(r, pt, p, series, tin)
      local rc = recs[i]
      rc.first = first
      rc.n = c.nout - first
      rc.steps = ran
      rc.status = 1
      c.committed = c.nout
    end
  end
end

return run, layout, lines
