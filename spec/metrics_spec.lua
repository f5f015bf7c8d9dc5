-- GET /metrics (gateway/prom.c, per-series counters in gateway/metrics.c):
-- Prometheus text after known traffic through a real influxd.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local wait = require("support.wait")

local JSON = { ["Content-Type"] = "application/json" }

-- { ["name{labels}"] = number } from the exposition text; also checks that
-- every sample line has a # TYPE for its family.
local function parse(text)
  local samples, types = {}, {}
  for line in text:gmatch("[^\n]+") do
    local fam, typ = line:match("^# TYPE (%S+) (%S+)$")
    if fam then
      types[fam] = typ
    elseif not line:match("^#") then
      local key, v = line:match("^(%S+) (%S+)$")
      assert(key, "bad sample line: " .. line)
      local base = key:match("^[%w_:]+")
      local fam2 = types[base] and base or base:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
      assert(types[fam2], "no # TYPE for " .. base)
      samples[key] = tonumber(v)
    end
  end
  return samples, types
end

describe("GET /metrics", function()
  local db = influxd.for_block { database = "luagw" }
  local gw

  lazy_setup(function()
    gw = luagw.start { influxd = db, config = {
      series = { m_checked = { fields = { v = { type = "int", required = true } } } },
    } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
  end)

  local function scrape()
    local st, body, h = gw:get("/metrics")
    assert.equal(200, st)
    assert.matches("^text/plain; version=0.0.4", h["content-type"])
    return parse(body)
  end

  it("answers in Prometheus text format with build info and zeroed gauges", function()
    local m, types = scrape()
    assert.equal(1, m['luagw_build_info{version="0.1.0",influx_compat="1.8.10"}'])
    assert.equal("histogram", types.luagw_write_duration_seconds)
    assert.equal("histogram", types.luagw_batch_points)
    assert.equal("counter", types.luagw_series_points_received_total)
    assert.equal(0, m.luagw_buffer_points)
    assert.equal(0, m.luagw_spool_bytes)
    assert.equal(405, (gw:post("/metrics", "x")))
  end)

  it("counts points per series: received, accepted, rejected, written", function()
    local st = gw:post("/write", "m_a v=1i 1700000000000000001\nm_a v=2i 1700000000000000002\nm_b v=3i 1700000000000000003\n")
    assert.equal(204, st)
    st = gw:post("/v1/points", '[{"series":"m_checked","fields":{"v":1}},{"series":"m_checked","fields":{"v":"x"}},' ..
      '{"series":"m_checked","fields":{"w":1}}]', JSON)
    assert.equal(400, st)
    assert.is_true(wait(function()
      local m = scrape()
      return m['luagw_series_points_written_total{series="m_a"}'] == 2
        and m['luagw_series_points_written_total{series="m_checked"}'] == 1
    end, 10), "not written")
    local m = scrape()
    assert.equal(2, m['luagw_series_points_received_total{series="m_a"}'])
    assert.equal(2, m['luagw_series_points_accepted_total{series="m_a"}'])
    assert.equal(1, m['luagw_series_points_accepted_total{series="m_b"}'])
    assert.equal(1, m['luagw_series_points_written_total{series="m_b"}'])
    assert.equal(3, m['luagw_series_points_received_total{series="m_checked"}'])
    assert.equal(1, m['luagw_series_points_accepted_total{series="m_checked"}'])
    assert.equal(2, m['luagw_series_points_rejected_total{series="m_checked"}'])
    assert.equal(0, m['luagw_series_points_dropped_total{series="m_a"}'])
    assert.equal(4, m.luagw_points_written_total)
    assert.equal(2, m.luagw_points_rejected_total)
    assert.is_true(m.luagw_series_script_seconds_total ~= nil or
      m['luagw_series_script_seconds_total{series="m_a"}'] ~= nil)
  end)

  it("has write latency and batch size histograms and InfluxDB answers by status", function()
    local m = scrape()
    local writes = m['luagw_influx_responses_total{code="204"}']
    assert.is_true(writes >= 1)
    assert.equal(writes, m.luagw_write_duration_seconds_count)
    assert.equal(writes, m['luagw_write_duration_seconds_bucket{le="+Inf"}'])
    assert.is_true(m.luagw_write_duration_seconds_sum > 0)
    assert.equal(writes, m.luagw_batch_points_count)
    assert.equal(4, m.luagw_batch_points_sum) -- the four points written above
    -- buckets are cumulative
    assert.is_true(m['luagw_batch_points_bucket{le="1"}'] <= m['luagw_batch_points_bucket{le="10"}'])
    assert.equal(1, m.luagw_influx_up)
  end)

  it("counts points InfluxDB refuses for good as dropped, per series", function()
    -- a field type conflict: m_a.v is an integer in InfluxDB
    assert.equal(204, (gw:post("/write", "m_a v=1.5 1700000000000000009\n")))
    assert.is_true(wait(function()
      return scrape()['luagw_series_points_dropped_total{series="m_a"}'] == 1
    end, 10), "not dropped")
    local m = scrape()
    assert.is_true((m['luagw_influx_responses_total{code="400"}'] or 0) >= 1)
  end)

  it("counts script errors per series", function()
    local dir = gw.dir .. "/scripts"
    os.execute("mkdir -p " .. dir)
    local g2 = luagw.start { influxd = db, config = { scripts = { dir = dir } } }
    finally(function() g2:destroy() end)
    local f = assert(io.open(dir .. "/m_err.lua", "w"))
    f:write("return function(p) error('boom') end\n"); f:close()
    g2:signal("HUP")
    assert.is_true(wait(function() return g2:log():find("scripts reloaded") ~= nil end, 5))
    assert.equal(204, (g2:post("/write", "m_err v=1i 1700000000000000010\n")))
    local _, body = g2:get("/metrics")
    local m = parse(body)
    assert.equal(1, m['luagw_script_errors_total{series="m_err",kind="error"}'])
  end)

  it("gives script time only to series that have scripts", function()
    local dir = gw.dir .. "/timed_scripts"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/m_slow.lua", "w"))
    f:write("return function(p) local x = 0 for i = 1, 20000 do x = x + i end p.fields.x = x return p end\n")
    f:close()
    local g2 = luagw.start { influxd = db, config = { scripts = { dir = dir } } }
    finally(function() g2:destroy() end)
    local body = {}
    for i = 1, 50 do
      body[#body + 1] = ("m_slow v=%di %d\nm_plain v=%di %d"):format(i, 1700000000000000000 + i, i, 1700000000000000000 + i)
    end
    assert.equal(204, (g2:post("/write", table.concat(body, "\n") .. "\n")))
    local _, text = g2:get("/metrics")
    local m = parse(text)
    assert.equal(50, m['luagw_series_points_accepted_total{series="m_plain"}'])
    assert.is_true((m['luagw_series_script_seconds_total{series="m_slow"}'] or 0) > 0)
    assert.equal(0, m['luagw_series_script_seconds_total{series="m_plain"}'] or 0)
  end)

  it("counts memo hits, misses and evictions; a reload empties the cache", function()
    local dir = gw.dir .. "/memo_scripts"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/m_memo.lua", "w"))
    f:write("return memo(function(p) p.tags.dc = params.dc return p end)\n"); f:close()
    local g2 = luagw.start { influxd = db, config = { listen = { threads = 1 },
      scripts = { dir = dir, memo_entries = 4, params = { dc = "one" } } } }
    finally(function() g2:destroy() end)
    local function counts()
      local _, body = g2:get("/metrics")
      local m = parse(body)
      return { m['luagw_script_memo_total{result="hit"}'], m['luagw_script_memo_total{result="miss"}'],
               m.luagw_script_memo_evictions_total }
    end
    assert.same({ 0, 0, 0 }, counts())
    -- 6 shapes, each twice in a row: 6 misses, 6 hits; 2 evictions past 4 entries
    local lines = {}
    for i = 1, 12 do lines[i] = ("m_memo,k=%d v=1i 17000000000000001%02d"):format(math.floor((i - 1) / 2), i) end
    assert.equal(204, (g2:post("/write", table.concat(lines, "\n"))))
    assert.same({ 6, 6, 2 }, counts())
    local _, body = g2:post("/v1/debug/transform", "m_memo,k=5 v=1i 1")
    assert.matches("dc=one", body)
    assert.same({ 7, 6, 2 }, counts())
    -- new params: the cached dc=one must not outlive the reload
    local cfg = assert(io.open(g2.config_path)):read("*a")
    local out = assert(io.open(g2.config_path, "w"))
    out:write((cfg:gsub('"one"', '"two"'))); out:close()
    g2:signal("HUP")
    assert.is_true(wait(function() return g2:log():find("scripts reloaded") ~= nil end, 5))
    _, body = g2:post("/v1/debug/transform", "m_memo,k=5 v=1i 1")
    assert.matches("dc=two", body)
    assert.same({ 7, 7, 2 }, counts())
  end)

  it("counts exactly when series change at every point, more of them than a request tallies at once", function()
    -- pipeline.c tallies up to 16 series per request and flushes when full:
    -- 20 series interleaved, 3 rounds.
    local lines = {}
    for round = 1, 3 do
      for i = 1, 20 do
        lines[#lines + 1] = ("m_il%02d v=%di %d"):format(i, round, 1700000000000000000 + round * 100 + i)
      end
    end
    local st = gw:post("/write", table.concat(lines, "\n"))
    assert.equal(204, st)
    assert.is_true(wait(function()
      return scrape()['luagw_series_points_written_total{series="m_il20"}'] == 3
    end, 10), "not written")
    local m = scrape()
    for i = 1, 20 do
      local s = ('{series="m_il%02d"}'):format(i)
      assert.equal(3, m["luagw_series_points_received_total" .. s], s)
      assert.equal(3, m["luagw_series_points_accepted_total" .. s], s)
    end
  end)
end)

describe("the per-series table under a flood of new names", function()
  -- 1,100 junk names used to fill all 1,024 slots for good: every later
  -- series, declared ones too, counted as "(other)" until a restart.
  local db = influxd.for_block { database = "luagw" }
  local gw, dir

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/m_scripted.lua", "w"))
    f:write("return function(p) return p end\n")
    f:close()
    gw = luagw.start { influxd = db, config = {
      scripts = { dir = dir },
      series = { m_declared = { fields = { v = { type = "int" } } } },
    } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function scrape()
    local st, body = gw:get("/metrics")
    assert.equal(200, st)
    return parse(body), body
  end

  it("keeps counting declared and scripted series under their own names", function()
    assert.equal(204, (gw:post("/write", "m_early v=1i 1700000000000000001\n")))
    local junk = {}
    for i = 1, 3000 do junk[i] = ("junk%d v=1i 1700000000000000001"):format(i) end
    assert.equal(204, (gw:post("/write", table.concat(junk, "\n"))))
    local m, text = scrape()
    -- at most 1,024 names that are not pinned hold a slot; the rest is "(other)"
    local named = 0
    for _ in text:gmatch('\nluagw_series_points_received_total{series="junk%d+"}') do named = named + 1 end
    assert.equal(1023, named) -- m_early took the first
    assert.equal(3000 - 1023, m['luagw_series_points_received_total{series="(other)"}'])
    -- the pinned series are counted under their own names, through delivery
    assert.equal(204, (gw:post("/write", "m_declared v=7i 1700000000000000002\nm_scripted v=8i 1700000000000000002\n")))
    assert.equal(204, (gw:post("/write", "m_early v=2i 1700000000000000003\n")))
    assert.is_true(wait(function()
      m = scrape()
      return m['luagw_series_points_written_total{series="m_declared"}'] == 1
        and m['luagw_series_points_written_total{series="m_scripted"}'] == 1
    end, 10), "not written under their own names")
    assert.equal(1, m['luagw_series_points_received_total{series="m_declared"}'])
    assert.equal(1, m['luagw_series_points_accepted_total{series="m_scripted"}'])
    assert.equal(2, m['luagw_series_points_received_total{series="m_early"}'])
    -- a name first seen now waits for an idle slot (60 s): "(other)" meanwhile
    assert.equal(204, (gw:post("/write", "m_late v=1i 1700000000000000004\n")))
    m = scrape()
    assert.is_nil(m['luagw_series_points_received_total{series="m_late"}'])
    assert.equal(3000 - 1023 + 1, m['luagw_series_points_received_total{series="(other)"}'])
  end)
end)

describe("the per-series table (gateway/metrics.c, through FFI)", function()
  -- The library's table is this process's: other specs' names may be in it
  -- already, so this looks only at names of its own.
  local core = require("support.core")
  local ffi, lib = core.ffi, core.lib
  pcall(ffi.cdef, [[
  typedef struct {
    uint32_t state, hash, len, used, pinned; double idle_since; char name[112]; uint64_t v[6];
  } gw_series_slot_t;
  gw_series_slot_t *gw_series_slot(const char *name, size_t n);
  int gw_series_pin(const char *name, size_t n);
  void gw_series_set_clock(double (*now)(void));
  ]])

  local function slot_name(name)
    local s = lib.gw_series_slot(name, #name)
    return ffi.string(s.name, s.len), s
  end

  it("renames a slot idle for 60 s to a new name, never a pinned or a busy one", function()
    jit.off(true, true) -- the clock below is a Lua callback
    local t = 1000
    local clock = ffi.cast("double (*)(void)", function() return t end)
    finally(function() lib.gw_series_set_clock(nil); clock:free(); jit.on(true, true) end)
    lib.gw_series_set_clock(clock)
    assert.equal(0, lib.gw_series_pin("ffi_pinned", 10))
    -- fill every slot for names that are not pinned
    local n = 0
    while slot_name(("ffi_flood%d"):format(n)) ~= "(other)" do
      n = n + 1
      assert.is_true(n <= 1024, "the table takes more than 1,024 names")
    end
    assert.equal("(other)", (slot_name("ffi_late")))
    assert.equal("ffi_pinned", (slot_name("ffi_pinned")))
    -- A slot is renamed once nobody used it for 60 s after the clock hand
    -- last looked at it. One flood name stays in use; 61 s on, a lap of the
    -- hand (each new name placed moves it 4 slots) looks at every slot ...
    t = t + 30
    assert.equal("ffi_flood3", (slot_name("ffi_flood3"))) -- one is used all along
    t = t + 31
    for i = 1, 300 do slot_name(("ffi_lap%d"):format(i)) end
    -- ... and 61 s later the others are renamed
    t = t + 30
    assert.equal("ffi_flood3", (slot_name("ffi_flood3")))
    t = t + 31
    for i = 1, 150 do
      assert.equal(("ffi_new%d"):format(i), (slot_name(("ffi_new%d"):format(i))))
    end
    local name, s = slot_name("ffi_late")
    assert.equal("ffi_late", name)
    assert.equal(0, tonumber(s.v[0])) -- counters from zero
    assert.equal("ffi_new1", (slot_name("ffi_new1"))) -- found again, without the lock
    assert.equal("ffi_flood3", (slot_name("ffi_flood3"))) -- used: kept
    assert.equal("ffi_pinned", (slot_name("ffi_pinned"))) -- pinned: kept
    local gone = 0
    for i = 0, n - 1 do
      if slot_name(("ffi_flood%d"):format(i)) == "(other)" then gone = gone + 1 end
    end
    assert.is_true(gone >= 151, tostring(gone))
    -- a name over 111 bytes counts as "(other)"
    assert.equal("(other)", (slot_name(("x"):rep(112))))
    assert.equal(-1, lib.gw_series_pin(("x"):rep(112), 112))
  end)
end)
