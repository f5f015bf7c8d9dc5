-- gateway/script.lua — the Lua half of the scripting engine (gateway/script.c).
--
-- Compiled into luagw as bytecode and run once in every worker's Lua state:
--   local run = chunk(setup, ctl)
-- It builds the sandbox, loads each script into its own environment, and
-- returns run(i, fresh), which script.c calls once per scripted point i
-- (fresh on a request's first call). run reads the point from C through the
-- FFI into one reused set of point tables (see TAGS below), calls the
-- point's chain of scripts, and writes what they return back into C
-- structures:
--   * tags and fields the script did not change are copied from the
--     incoming C point (slices of the request body);
--   * new strings are written as pointers into the Lua strings themselves,
--     which stay referenced from `anchor` until the request's next fresh
--     call, so the encoder (which runs before it) reads live memory.
-- Errors are not caught here: they unwind to script.c's lua_pcall, which
-- applies scripts.on_error to the point in progress (ctl.cur).
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
  uint32_t ntags; uint32_t nfields; uint32_t src; uint32_t lp_clean; gw_str_t lp_tail;
  const void *lp_pre;
} gw_point_t;
typedef struct { uint32_t first, n, status, steps, numbers, full; } gw_script_rec_t;
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
  gw_str_t req[5];
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
local rawget, rawset, getmetatable = rawget, rawset, getmetatable
local format = string.format

local ctl = cast("gw_script_ctl_t *", ctl_ud)
local int64_t, uint64_t = ffi.typeof("int64_t"), ffi.typeof("uint64_t")
local FLOAT, INT, UINT, STRING, BOOL = 0, 1, 2, 3, 4
local LP_CLEAN_EXTRA = 4 -- point.h GW_LP_CLEAN_EXTRA
local bor, band, rshift = bit.bor, bit.band, bit.rshift
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
local SAFE_MATH = pick(math, { "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh",
  "deg", "exp", "floor", "fmod", "frexp", "huge", "ldexp", "log", "log10", "max", "min", "modf",
  "pi", "pow", "rad", "random", "randomseed", "sin", "sinh", "sqrt", "tan", "tanh" })
local SAFE_BIT = pick(bit, { "arshift", "band", "bnot", "bor", "bswap", "bxor", "lshift", "rol",
  "ror", "rshift", "tobit", "tohex" })
---------------------------------------------------------------------------
-- The point handed to scripts: one `point`, `point.tags` and `point.fields`
-- table per worker state, refilled for every point (a fresh table costs
-- LuaJIT about 1,000 instructions to build and collect; three per point was
-- most of a script's cost). tags and fields carry a protected metatable whose
-- __newindex records the keys a script adds, so writing a point back needs
-- no traversal: an original tag or field that still holds the value it was
-- handed is copied from the C point as it came, and only what changed or was
-- added is written from Lua. docs/scripts.md: the tables belong to the call.

-- Every point starts from a clean slate, whatever its predecessor's script
-- did to the three tables. The metatables see every assignment of a new
-- key; what they cannot see are raw writes: rawset, and table.insert,
-- remove, sort and clear (integer keys, or everything, without
-- metamethods). The sandbox's versions of these note a raw write to one of
-- the three tables: such a point is written back in full, and the tables
-- are wiped before the next point (call_chain, slow). Nothing else a
-- script can reach writes to a table it did not create.

local TAGS, FIELDS, PT = {}, {}, {}

-- The request, as scripts see it (their second argument): one table per
-- request, made when its first point runs; read-only for scripts.
local REQ_KEYS = { "token", "client", "db", "rp", "path" }
local REQ
local function read_only() error("req is read-only", 2) end
local function request(c)
  local t = {}
  for k = 1, #REQ_KEYS do
    local s = c.req[k - 1]
    if s.p ~= nil then t[REQ_KEYS[k]] = ffi_string(s.p, s.n) end
  end
  return setmetatable({}, { __index = t, __newindex = read_only, __metatable = false })
end
local TADD, FADD = {}, {}       -- keys added by the script, in order (may repeat)
local ntadd, nfadd = 0, 0
local pt_extra = false          -- PT holds keys besides series, time, tags, fields
local untracked = false         -- TAGS or FIELDS took a raw write

setmetatable(TAGS, { __metatable = false, __newindex = function(t, k, v)
  rawset(t, k, v)
  ntadd = ntadd + 1
  TADD[ntadd] = k
end })
setmetatable(FIELDS, { __metatable = false, __newindex = function(t, k, v)
  rawset(t, k, v)
  nfadd = nfadd + 1
  FADD[nfadd] = k
end })
-- A key a script adds to the point itself (say point.seen = true) must not
-- reach the next point: rare, so PT is cleared only then (begin).
setmetatable(PT, { __metatable = false, __newindex = function(t, k, v)
  rawset(t, k, v)
  pt_extra = true
end })

-- A raw write to t is about to happen: note it if t is a point table.
local function note_raw(t)
  if t == TAGS or t == FIELDS then untracked = true elseif t == PT then pt_extra = true end
end

-- rawset on the point's tags or fields is an assignment all the same.
local function sandbox_rawset(t, k, v)
  if t == TAGS or t == FIELDS then
    if rawget(t, k) == nil then
      t[k] = v
      return t
    end
  elseif t == PT then
    pt_extra = true
  end
  return rawset(t, k, v)
end

local SAFE_TABLE = pick(table, { "concat", "maxn" })
do
  local insert, remove, sort = table.insert, table.remove, table.sort
  SAFE_TABLE.insert = function(t, ...) note_raw(t) insert(t, ...) end
  SAFE_TABLE.remove = function(t, ...) note_raw(t) return (remove(t, ...)) end
  SAFE_TABLE.sort = function(t, ...) note_raw(t) sort(t, ...) end
  SAFE_TABLE.clear = function(t) note_raw(t) tclear(t) end
  SAFE_TABLE.new = tnew
end

local SAFE_BASE = pick(_G, { "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "unpack", "xpcall", "rawequal", "rawget",
  "setmetatable", "getmetatable" })
SAFE_BASE.rawset = sandbox_rawset
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

-- memo(f): f's effect depends only on the point's series, tags (keys and
-- values), field keys and params, so luagw may run f once per such shape
-- and apply what it did in C to the later points of that shape (memo.h,
-- docs/scripts.md). f itself is returned, marked: called directly (a spec,
-- another script) it is the plain function.
local memoized = setmetatable({}, { __mode = "k" })
local function memo(f)
  if type(f) ~= "function" then error("memo: expected a function, got a " .. type(f), 2) end
  memoized[f] = true
  return f
end

-- A fresh environment per script: changes a script makes to its globals or
-- to its copies of the libraries stay its own.
local function new_env(info)
  local env = copy(SAFE_BASE)
  env.string, env.table, env.math, env.bit = copy(SAFE_STRING), copy(SAFE_TABLE), copy(SAFE_MATH), copy(SAFE_BIT)
  env.os = copy(SAFE_OS)
  env.log = { info = setup.c.log_info, warn = setup.c.log_warn, error = setup.c.log_error }
  env.params = deepcopy(setup.params)
  env.int, env.now, env.memo = int, now, memo
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
      if type(f) ~= "string" then f = info.path .. ": error object is a " .. type(f)
      elseif f:sub(1, #info.path + 1) ~= info.path .. ":" then f = info.path .. ": " .. f end
      error(f, 0)
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

-- memo_chains[cid]: every script of chain cid returned memo(f), so the
-- chain's effect may be cached by shape (script_run.c).
local chain_steps, chain_series, chain_fn1, chain_id1, memo_chains = {}, {}, {}, {}, {}
for cid, ch in ipairs(setup.chains) do
  local all_memo = #ch.ids > 0
  for _, id in ipairs(ch.ids) do all_memo = all_memo and memoized[fns[id]] == true end
  memo_chains[cid] = all_memo
  chain_steps[cid] = ch.ids
  chain_series[cid] = ch.series or false
  -- A chain of one script (the common case) is called without a loop.
  chain_fn1[cid] = #ch.ids == 1 and fns[ch.ids[1]] or false
  chain_id1[cid] = #ch.ids == 1 and ch.ids[1] or 0
end

---------------------------------------------------------------------------
-- Reading points

-- An unsigned integer as the nearest number, exactly as C's (double)u:
-- script.c tells an untouched field by that equality. LuaJIT's compiled
-- conversion of a uint64_t at or beyond 2^63 rounds twice (through a
-- negative int64_t and back up by 2^64) and could land one step off: such
-- a value is halved keeping its low bit (rounding to odd), converted from
-- below 2^63 (rounded once) and doubled (exactly).
local U63 = ffi.new("uint64_t", 0x8000000000000000ULL)
local function uint_number(u)
  if u < U63 then return tonumber(u) end
  return tonumber(bor(rshift(u, 1), band(u, 1))) * 2
end

local function read_field(f)
  local ty = f.type
  if ty == FLOAT then return f.v.f
  elseif ty == INT then return tonumber(f.v.i)
  elseif ty == STRING then return ffi_string(f.v.s.p, f.v.s.n)
  elseif ty == BOOL then return f.v.b ~= 0
  end
  return uint_number(f.v.u)
end

---------------------------------------------------------------------------
-- Writing results back. Numbers go back as NUMBER: script.c resolves them
-- against the point's original fields (an integer stays one when integral;
-- an untouched one is copied exactly), which keeps scans out of this loop.

local NUMBER = 99
local anchor, nanchor = {}, 0           -- strings C points into, until the next run
local nnumbers = 0                      -- fields written as NUMBER (script.c types them)
local wrote_full = false                -- the point's results were written in full (emit)

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

-- The output point for r (a point table) from input point p: a slot in
-- ctl.out with series and time set (from p when r keeps series_in and tin),
-- and whether it kept both. The caller fills tags and fields, then counts
-- it in c.nout.
local function head(r, p, series_in, tin)
  local c = ctl
  local k = c.nout
  if k >= c.outcap then
    if c.grow(c, 0, 0) ~= 0 then error("out of memory", 0) end
  end
  local o = c.out[k]
  local s = rawget(r, "series")
  if s == series_in then
    o.series = p.series
  else
    if type(s) ~= "string" or #s == 0 then bad("point.series must be a non-empty string, got %s", type(s)) end
    o.series.p = s
    o.series.n = #s
    local na = nanchor + 1
    anchor[na] = s
    nanchor = na
  end
  local t = rawget(r, "time")
  if t == tin or t == nil then
    o.time_ns = p.time_ns
  else
    if type(t) ~= "number" or t ~= t or t >= 9.2e9 or t <= -9.2e9 then
      bad("point.time must be Unix seconds (a number), got %s", tostring(t))
    end
    o.time_ns = floor(t * 1e9 + 0.5)
  end
  o.src = p.src
  o.lp_clean = 0 -- the encoder must not trust the input's text (run_point may restore it)
  return o, s == series_in and (t == tin or t == nil)
end

-- Write tag value v (not nil) at ct[n]; its key is the C slice key when
-- given, else the Lua string k. Returns the next free index.
local function put_tag(ct, n, key, k, v)
  if type(v) ~= "string" then v = tag_string(v, k) end
  local nv = #v
  if nv == 0 then return n end
  local tg = ct[n]
  local na = nanchor + 1
  if key then
    tg.key = key
  else
    if type(k) ~= "string" or #k == 0 then bad("tag keys must be non-empty strings, got %s", tostring(k)) end
    tg.key.p = k; tg.key.n = #k
    anchor[na] = k; na = na + 1
  end
  tg.val.p = v; tg.val.n = nv
  anchor[na] = v
  nanchor = na
  return n + 1
end

local nchanged = 0 -- original fields written with a new value (put_field with key)

local function put_field(cf, n, key, k, v)
  local f = cf[n]
  local na = nanchor
  if key then
    f.key = key
    nchanged = nchanged + 1
  else
    if type(k) ~= "string" or #k == 0 then bad("field keys must be non-empty strings, got %s", tostring(k)) end
    f.key.p = k; f.key.n = #k
    na = na + 1; anchor[na] = k
  end
  local tv = type(v)
  if tv == "number" then
    f.type = NUMBER; f.v.f = v
    nnumbers = nnumbers + 1
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
    bad("field %q: a %s cannot be a field value", tostring(k), tv)
  end
  nanchor = na
  return n + 1
end

-- Write r, a point table, in full.
local function emit(r, p, series_in, tin)
  local c = ctl
  local o = head(r, p, series_in, tin)
  local tags = rawget(r, "tags")
  local tstart = c.ntags
  if tags ~= nil then
    if type(tags) ~= "table" then bad("point.tags must be a table, got %s", type(tags)) end
    for key, v in next, tags do
      if c.ntags >= c.tagcap then
        if c.grow(c, 1, tstart) ~= 0 then error("out of memory", 0) end
        tstart = 0
      end
      c.ntags = put_tag(c.tags, c.ntags, nil, key, v)
    end
  end
  local fields = rawget(r, "fields")
  local fstart = c.nfields
  if fields ~= nil then
    if type(fields) ~= "table" then bad("point.fields must be a table, got %s", type(fields)) end
    for key, v in next, fields do
      if c.nfields >= c.fieldcap then
        if c.grow(c, 2, fstart) ~= 0 then error("out of memory", 0) end
        fstart = 0
      end
      c.nfields = put_field(c.fields, c.nfields, nil, key, v)
    end
  end
  o.tags = c.tags + tstart
  o.ntags = c.ntags - tstart
  o.fields = c.fields + fstart
  o.nfields = c.nfields - fstart
  c.nout = c.nout + 1
end

-- Emit what a chain returned: a point, a list of points, or nothing.
local function emit_result(r, pt, p, series_in, tin)
  if r == pt then return emit(r, p, series_in, tin) end
  if not r then return end
  if type(r) ~= "table" then
    bad("expected the point, a list of points, nil or false, got a %s", type(r))
  end
  if rawget(r, "series") ~= nil then return emit(r, p, series_in, tin) end
  local n = #r
  if n == 0 and next(r) ~= nil then
    bad("a point table needs series; a list needs points at 1..n")
  end
  if n > MAX_EMIT then bad("%d points emitted for one point, at most %d", n, MAX_EMIT) end
  for j = 1, n do
    local x = r[j]
    if type(x) ~= "table" or rawget(x, "series") == nil then
      bad("list item %d: expected a point table with series, got %s", j, type(x))
    end
    emit(x, p, series_in, tin)
  end
end

-- Run one script over a point or over each point of a list.
local function step(f, r, pt, seq)
  if r == pt or (type(r) == "table" and rawget(r, "series") ~= nil) then
    seq[0] = seq[0] + 1
    return f(r, REQ)
  end
  if type(r) ~= "table" then
    bad("expected the point, a list of points, nil or false, got a %s", type(r))
  end
  local out, n = {}, 0
  for j = 1, #r do
    local x = r[j]
    if type(x) ~= "table" or rawget(x, "series") == nil then
      bad("list item %d: expected a point table with series, got %s", j, type(x))
    end
    seq[0] = seq[0] + 1
    local y = f(x, REQ)
    if y then
      if type(y) == "table" and rawget(y, "series") == nil then
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
-- The reused point, written back as a difference (see TAGS above)

local cur_series, cur_time       -- the point in progress as handed to the script
local dirty = false              -- TAGS/FIELDS may hold a failed point's keys

local function wipe()
  tclear(TAGS)
  tclear(FIELDS)
  ntadd, nfadd = 0, 0
  dirty = false
  untracked = false
end

-- Start a point: the reused tables are empty; fill PT's scalar keys.
local function begin(p, cid)
  if dirty then wipe() end
  dirty = true
  local series = chain_series[cid] or ffi_string(p.series.p, p.series.n)
  local tin = tonumber(p.time_ns) / 1e9
  cur_series, cur_time = series, tin
  local pt = PT
  if pt_extra then tclear(pt); pt_extra = false end
  rawset(pt, "series", series)
  rawset(pt, "time", tin)
  rawset(pt, "tags", TAGS)
  rawset(pt, "fields", FIELDS)
end

-- Run the point's chain on PT. Returns what the chain returned, the number
-- of scripts run, and whether the result can be written back as a
-- difference: PT itself, its tables in place, and no raw write to them
-- (which the metatables did not see: see TAGS above).
local function call_chain(cid)
  local c, pt = ctl, PT
  local seq = c.seq
  local r, ran
  local f1 = chain_fn1[cid]
  if f1 then
    c.script = chain_id1[cid]
    seq[0] = seq[0] + 1
    r = f1(pt, REQ)
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
  local fast = r == pt and not untracked and rawget(pt, "tags") == TAGS and rawget(pt, "fields") == FIELDS
  return r, ran, fast
end

-- Room for need more tags (what 1) or fields (2) in ctl's arrays: the
-- array and its first free index. (No loop on the way: see run_point.)
local function grow_for(c, what, need)
  while (what == 1 and c.ntags + need > c.tagcap) or (what == 2 and c.nfields + need > c.fieldcap) do
    if c.grow(c, what, what == 1 and c.ntags or c.nfields) ~= 0 then error("out of memory", 0) end
  end
end

local function room(what, need)
  local c = ctl
  if what == 1 then
    if c.ntags + need > c.tagcap then grow_for(c, 1, need) end
    return c.tags, c.ntags
  end
  if c.nfields + need > c.fieldcap then grow_for(c, 2, need) end
  return c.fields, c.nfields
end

-- The tags (fields) the script added, after the originals; each is
-- cleared as it is read, which also skips an original the script removed
-- and set again (already written) and a key added twice.
local function added(t, keys, nkeys, put, arr, n)
  if nkeys == 0 then return n end
  for a = 1, nkeys do
    local k = keys[a]
    local v = rawget(t, k)
    if v ~= nil then
      n = put(arr, n, nil, k, v)
      rawset(t, k, nil)
    end
  end
  return n
end

-- After a point written back as a difference: every key read and cleared.
local function finish(o, ct, t0, t1, cf, f0, f1)
  local c = ctl
  c.ntags = t1
  c.nfields = f1
  o.tags = ct + t0
  o.ntags = t1 - t0
  o.fields = cf + f0
  o.nfields = f1 - f0
  c.nout = c.nout + 1
  dirty = false
end

-- The slow path: a list, a new table, a replaced tags table...: written
-- back in full by emit_result; the reused tables start over.
local function slow(r, p)
  wrote_full = true
  emit_result(r, PT, p, cur_series, cur_time)
  wipe()
end

---------------------------------------------------------------------------
-- One point: fill the reused tables, run the chain, write back. Filling and
-- writing back are straight-line code generated per number of tags and
-- fields: loops of two to five iterations whose count changes from point to
-- point are what LuaJIT's tracer handles worst (it keeps trying to unroll
-- them into the request loop's trace, gives up, and now and then the whole
-- loop fell back to the interpreter: 4x the instructions). Beyond
-- MAX_UNROLL entries, one loop takes the counts as arguments.
--
-- The generated functions are cached by shape: fillers[nt * SHAPES + nf]
-- for nt, nf < SHAPES (mixed radix: one slot per shape, no two shapes
-- share one) and writers[count] for count < SHAPES. Nothing else is cached,
-- so the caches hold at most SHAPES^2 + SHAPES functions whatever the
-- points look like.

local MAX_UNROLL = 24
local SHAPES = MAX_UNROLL + 1
local OK, OV, FK, FV = {}, {}, {}, {}   -- the originals: key and value strings

local function fill_loop(ptg, pfl, tags, fields, nt, nf)
  for j = 0, nt - 1 do
    local t = ptg[j]
    local k, v = ffi_string(t.key.p, t.key.n), ffi_string(t.val.p, t.val.n)
    OK[j + 1], OV[j + 1] = k, v
    rawset(tags, k, v)
  end
  for j = 0, nf - 1 do
    local f = pfl[j]
    local k, v = ffi_string(f.key.p, f.key.n), read_field(f)
    FK[j + 1], FV[j + 1] = k, v
    rawset(fields, k, v)
  end
end

-- Write back count tags (or fields) of the point in progress: t the reused
-- table, keys/vals the originals handed to the script, src the incoming C
-- array, arr[n] the first free output entry, put put_tag or put_field.
-- Each key is cleared once read. Returns the next free index.
local function write_loop(t, keys, vals, src, arr, n, put, count)
  for j = 0, count - 1 do
    local k = keys[j + 1]
    local v = rawget(t, k)
    if v == vals[j + 1] then arr[n] = src[j]; n = n + 1
    elseif v ~= nil then n = put(arr, n, src[j].key, k, v) end
    rawset(t, k, nil)
  end
  return n
end

local function gen(src, ...)
  return assert(load(src, "=driver"))(...)
end

local fillers, writers = {}, {}

-- The filler of points of nt tags and nf fields, called as
-- f(ptg, pfl, tags, fields, nt, nf).
local function filler(nt, nf)
  if nt >= SHAPES or nf >= SHAPES then return fill_loop end
  local key = nt * SHAPES + nf
  local f = fillers[key]
  if f then return f end
  local b = { "local ffi_string, read_field, rawset, OK, OV, FK, FV = ...",
    "return function(ptg, pfl, tags, fields)", "local t, k, v" }
  for j = 0, nt - 1 do
    b[#b + 1] = ("t = ptg[%d]; k, v = ffi_string(t.key.p, t.key.n), ffi_string(t.val.p, t.val.n); "
      .. "OK[%d], OV[%d] = k, v; rawset(tags, k, v)"):format(j, j + 1, j + 1)
  end
  for j = 0, nf - 1 do
    b[#b + 1] = ("t = pfl[%d]; k, v = ffi_string(t.key.p, t.key.n), read_field(t); "
      .. "FK[%d], FV[%d] = k, v; rawset(fields, k, v)"):format(j, j + 1, j + 1)
  end
  b[#b + 1] = "end"
  f = gen(table.concat(b, "\n"), ffi_string, read_field, rawset, OK, OV, FK, FV)
  fillers[key] = f
  return f
end

-- The writer of count entries, called as
-- f(t, keys, vals, src, arr, n, put, count).
local function writer(count)
  if count >= SHAPES then return write_loop end
  local f = writers[count]
  if f then return f end
  local b = { "local rawget, rawset = ...", "return function(t, keys, vals, src, arr, n, put)", "local k, v" }
  for j = 0, count - 1 do
    b[#b + 1] = ("k = keys[%d]; v = rawget(t, k); if v == vals[%d] then arr[n] = src[%d]; n = n + 1 "
      .. "elseif v ~= nil then n = put(arr, n, src[%d].key, k, v) end; rawset(t, k, nil)"):format(j + 1, j + 1, j, j)
  end
  b[#b + 1] = "return n end"
  f = gen(table.concat(b, "\n"), rawget, rawset)
  writers[count] = f
  return f
end

local function run_point(p, cid)
  begin(p, cid)
  local nt, nf = p.ntags, p.nfields
  local ptg, pfl = p.tags, p.fields
  local tags, fields = TAGS, FIELDS
  filler(nt, nf)(ptg, pfl, tags, fields, nt, nf)
  local r, ran, fast = call_chain(cid)
  if not fast then slow(r, p) return ran end
  local o, same = head(PT, p, cur_series, cur_time)
  local ct, t0 = room(1, nt + ntadd)
  local n = writer(nt)(tags, OK, OV, ptg, ct, t0, put_tag, nt)
  n = added(tags, TADD, ntadd, put_tag, ct, n)
  ntadd = 0
  local cf, f0 = room(2, nf + nfadd)
  local changes = nchanged
  local m = writer(nf)(fields, FK, FV, pfl, cf, f0, put_field, nf)
  -- Series, time and every field as they came (tags may differ, entries
  -- may be added): the encoder still copies the line's text for what it
  -- holds (lp_encode.c encode_clean), and writes the rest.
  if same and m - f0 == nf and nchanged == changes and p.lp_clean ~= 0 then
    o.lp_clean = bor(p.lp_clean, LP_CLEAN_EXTRA)
    o.lp_tail = p.lp_tail
  end
  m = added(fields, FADD, nfadd, put_field, cf, m)
  nfadd = 0
  finish(o, ct, t0, n, cf, f0, m)
  return ran
end

---------------------------------------------------------------------------
-- The per-request loop

-- Run point i (script.c calls this once per scripted point; fresh on the
-- request's first call).
local function run(i, fresh)
  local c = ctl
  if fresh then
    REQ = request(c)
    if nanchor > 65536 then anchor = {} else tclear(anchor) end
    nanchor = 0
    -- Between points the tables are empty (finish, slow) or marked dirty
    -- (a failed point). A key left by a write nobody noted would stop
    -- here, at a request's start, at the latest.
    if next(TAGS) ~= nil or next(FIELDS) ~= nil then wipe() end
  end
  -- What C hands over is checked before it is used (the caller checked the
  -- points' counts and sizes against the limits: pipeline.c).
  if i >= c.nin then error(format("internal error: point %d of %d", i, c.nin), 0) end
  c.cur = i
  local p, cid = c.inp[i], c.chain[i]
  if not chain_steps[cid] or (p.ntags ~= 0 and p.tags == nil) or (p.nfields ~= 0 and p.fields == nil) then
    error(format("internal error: point %d: chain %d, %d tags, %d fields", i, cid, p.ntags, p.nfields), 0)
  end
  local first = c.nout
  nnumbers = 0
  wrote_full = false
  local ran = run_point(p, cid)
  local rc = c.rec[i]
  rc.first = first
  rc.n = c.nout - first
  rc.steps = ran
  rc.numbers = nnumbers
  rc.full = wrote_full and 1 or 0
  rc.status = 1
  c.committed = c.nout
end

return run, layout, lines, memo_chains
