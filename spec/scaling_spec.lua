-- Several luagw instances behind Debian's HAProxy, as docs/scaling.md sets
-- them up: each with its own spool, HAProxy checking /health. One instance
-- is killed under a steady load and started again: the clients, retrying as
-- the InfluxDB client libraries do, are answered by the other meanwhile,
-- and every point a client got a 204 for ends up in InfluxDB (at least
-- once: duplicates are counted apart). With InfluxDB down, the check for
-- spooling instances (/health's "ready") keeps both in and nothing is lost,
-- where `expect status 200` takes both out. A rolling restart with
-- listen.drain_seconds refuses no request even to clients that never retry.
-- The throughput through HAProxy with one instance and with two is printed
-- (measured here, never asserted: timings belong in `make bench`).
local cjson = require("cjson")
local haproxy = require("support.haproxy")
local http = require("support.http")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")

local ROOT = luagw.ROOT
local POINTS, INTERVAL, CLIENTS = 100, 0.02, 3 -- per client: 50 bodies/s, 5,000 points/s

local function health(gw)
  local st, body = gw:get("/health", nil, 2)
  return st and cjson.decode(body) or nil
end

-- An instance writing to db with its own spool (an absolute dir, so that a
-- restart finds it); port: the one it had before a restart.
local function instance(db, spool, config, port)
  local base = { spool = { dir = spool } }
  if port then base.listen = { port = port } end
  return luagw.start { influxd = db, config = luagw.merge(base, config or {}) }
end

local Clients = {}
Clients.__index = Clients

local function start_clients(lb, dir, retry)
  local self = setmetatable({ dir = dir, list = {} }, Clients)
  for c = 1, CLIENTS do
    local out = ("%s/client%d.log"):format(dir, c)
    local pid = proc.spawn { argv = { "luajit", ROOT .. "/spec/support/retry_client.lua", "port=" .. lb.port,
      "client=" .. c, "points=" .. POINTS, "interval=" .. INTERVAL, "out=" .. out, "stop=" .. dir .. "/stop",
      "retry=" .. (retry and 1 or 0) }, stdout = out .. ".stderr", stderr = "stdout", cwd = ROOT }
    self.list[c] = { pid = pid, out = out }
  end
  return self
end

-- What the clients wrote so far: acked bodies per client, counts, failures.
function Clients:tally()
  local t = { acked = {}, nacked = 0, retries = 0, failed = 0, fails = {}, why = {}, done = 0 }
  for c, cl in ipairs(self.list) do
    t.acked[c] = {}
    for line in (proc.read_file(cl.out) or ""):gmatch("[^\n]+") do
      local ev, b, why = line:match("^(%a+) (%d+) ?(.*)$")
      if ev == "ack" then
        t.acked[c][tonumber(b)] = true
        t.nacked = t.nacked + 1
      elseif ev == "retry" then
        t.retries = t.retries + 1
        t.why[why] = (t.why[why] or 0) + 1
      elseif ev == "fail" then
        t.failed = t.failed + 1
        t.fails[#t.fails + 1] = ("client %d: %s"):format(c, line)
      elseif line:match("^done ") then
        t.done = t.done + 1
      end
    end
  end
  return t
end

function Clients:wait_acks(n, timeout)
  return wait(function() return self:tally().nacked >= n end, timeout or 20) ~= nil
end

-- Stop (each finishes its body in hand, retrying it if it retries) and wait.
function Clients:stop()
  proc.write_file(self.dir .. "/stop", "")
  for _, cl in ipairs(self.list) do
    if proc.wait(cl.pid, 45) == nil then proc.stop(cl.pid, 1) end
  end
  return self:tally()
end

function Clients:kill()
  for _, cl in ipairs(self.list) do proc.stop(cl.pid, 1) end
end

-- The seqs InfluxDB holds for client c, as a set.
local function stored(db, c)
  local st, body = http.post(db.url .. "/query", http.query {
    db = "luagw", q = ("SELECT seq FROM scale WHERE client = '%d'"):format(c) },
    { ["Content-Type"] = "application/x-www-form-urlencoded" }, 60)
  assert(st == 200, body)
  local doc = cjson.decode(body)
  local set, n = {}, 0
  local series = doc.results[1].series
  for _, v in ipairs(series and series[1].values or {}) do
    if not set[v[2]] then n = n + 1 end
    set[v[2]] = true
  end
  return set, n
end

-- Acknowledged points not in InfluxDB, and the number acknowledged, stored
-- in all (distinct) and stored without an acknowledgement.
local function compare(db, acked)
  local missing, nacked, nstored, unacked = 0, 0, 0, 0
  for c = 1, CLIENTS do
    local set, n = stored(db, c)
    local mine = {}
    nstored = nstored + n
    for b in pairs(acked[c] or {}) do
      for seq = b * POINTS, b * POINTS + POINTS - 1 do
        nacked = nacked + 1
        mine[seq] = true
        if not set[seq] then missing = missing + 1 end
      end
    end
    for seq in pairs(set) do if not mine[seq] then unacked = unacked + 1 end end
  end
  return { missing = missing, acked = nacked, stored = nstored, unacked = unacked }
end

-- Points InfluxDB was asked to write since it started, duplicates included.
local function point_requests(db)
  local v = db:query("SHOW STATS FOR 'write'")
  local s = v.results[1].series[1]
  for i, col in ipairs(s.columns) do
    if col == "pointReq" then return s.values[1][i] end
  end
end

-- Every instance's buffer (memory and spool) empty: all delivered.
local function all_delivered(gws)
  for _, gw in ipairs(gws) do
    local h = health(gw)
    if not h or h.buffer.points ~= 0 then return false end
  end
  return true
end

local function why_text(t)
  local parts = {}
  for why, n in pairs(t.why) do parts[#parts + 1] = ("%s: %d"):format(why, n) end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

describe("two instances behind HAProxy", function()
  local db, dir, lb, clients, gws
  before_each(function()
    db = influxd.start { database = "luagw" }
    dir = proc.tmpdir("luagw-scaling")
    gws = {}
  end)
  after_each(function()
    if clients then clients:kill() end
    if lb then lb:destroy() end
    for _, gw in pairs(gws) do gw:destroy() end
    db:destroy()
    proc.rmdir(dir)
    clients, lb = nil, nil
  end)

  it("one is SIGKILLed under a steady load and started again: the clients are answered by the other, "
    .. "every acknowledged point is stored", function()
    -- a sends nothing to InfluxDB before it is killed (its batches may wait
    -- 60 s): every point it acknowledged is then in its spool only.
    gws.a = instance(db, dir .. "/spool-a", { monitoring = { flushing_period = 60, batch_size = 1000000 } })
    gws.b = instance(db, dir .. "/spool-b")
    lb = haproxy.start { servers = { a = gws.a.port, b = gws.b.port } }
    assert.is_true(lb:wait_state("a", "UP"), lb:log())
    assert.is_true(lb:wait_state("b", "UP"), lb:log())

    clients = start_clients(lb, dir, true)
    assert.is_true(clients:wait_acks(60), "the clients are not answered")
    assert.is_truthy(wait(function()
      local a, b = health(gws.a), health(gws.b)
      return a and b and a.points.accepted >= 1000 and b.points.accepted >= 1000
    end, 20), "both instances should take points")

    local b_accepted = health(gws.b).points.accepted
    assert.is_true(proc.kill(gws.a.pid, "KILL"))
    local killed_at = proc.now()
    assert.is_truthy(gws.a:wait_exit(10))
    local before = clients:tally()
    assert.is_true(lb:wait_state("a", "DOWN"), lb:log())
    assert.is_true(clients:wait_acks(before.nacked + 150), "the clients are not answered while a is down")
    local during = clients:tally()
    for c = 1, CLIENTS do
      local n = 0
      for b in pairs(during.acked[c]) do if not before.acked[c][b] then n = n + 1 end end
      assert.is_true(n > 0, ("client %d got no answer while a was down"):format(c))
    end

    -- Once b has written what it had taken when a died, the points
    -- acknowledged until then that InfluxDB lacks are a's: in its spool.
    assert.is_truthy(wait(function() return health(gws.b).points.written >= b_accepted end, 20))
    local held = compare(db, before.acked)
    assert.is_true(held.missing > 0, "a held no acknowledged point when it was killed: the spec proves nothing")

    -- Started again on its spool (batches no longer held back).
    gws.a:destroy()
    gws.a = instance(db, dir .. "/spool-a", nil, gws.a.port)
    assert.is_true(lb:wait_state("a", "UP"), lb:log())
    assert.is_truthy(wait(function() return health(gws.a).points.accepted > 0 end, 20),
      "a takes no points after its restart")
    local down_for = proc.now() - killed_at

    local t = clients:stop()
    assert.equal(CLIENTS, t.done)
    assert.same({}, t.fails)
    assert.is_truthy(wait(function() return all_delivered { gws.a, gws.b } end, 60), "not everything was delivered")
    local r = compare(db, t.acked)
    local requested = point_requests(db)
    print(("\nscaling: SIGKILL of one of two instances under %d points/s (down %.1f s): %d points acknowledged, "
      .. "%d lost; %d of them were only in the killed instance's spool until it restarted; %d stored in all "
      .. "(%d never acknowledged); InfluxDB was asked to write %d points: %d duplicates (at least once); "
      .. "client retries: %d (%s)")
      :format(CLIENTS * POINTS / INTERVAL, down_for, r.acked, r.missing, held.missing, r.stored, r.unacked,
        requested, requested - r.stored, t.retries, why_text(t)))
    assert.equal(0, r.missing)
  end)

  it("InfluxDB down: `expect status 200` takes both out; the check docs/scaling.md gives for spools keeps them "
    .. "in, and every acknowledged point is stored once InfluxDB is back", function()
    local config = { monitoring = { retry_max = 0.5, timeout = 1 } }
    gws.a = instance(db, dir .. "/spool-a", config)
    gws.b = instance(db, dir .. "/spool-b", config)
    local servers = { a = gws.a.port, b = gws.b.port }
    lb = haproxy.start { servers = servers, expect = { "rstatus ^(200|503)$", [[string '"ready":true']] } }
    local strict = haproxy.start { servers = servers }
    finally(function() strict:destroy() end)
    for _, name in ipairs { "a", "b" } do
      assert.is_true(lb:wait_state(name, "UP"), lb:log())
      assert.is_true(strict:wait_state(name, "UP"), strict:log())
    end
    db:stop()
    clients = start_clients(lb, dir, true)
    -- Both instances answer /health 503 ("influxdb unreachable") once they
    -- have tried to write: HAProxy's checks see that 503.
    assert.is_truthy(wait(function()
      local rows = lb:servers()
      return rows.a and rows.b and rows.a.check_code == "503" and rows.b.check_code == "503"
    end, 20), "the checks never saw /health's 503")
    local rows = lb:servers()
    assert.equal("UP", rows.a.status)
    assert.equal("UP", rows.b.status)
    assert.is_true(strict:wait_state("a", "DOWN"), strict:log())
    assert.is_true(strict:wait_state("b", "DOWN"), strict:log())
    local acks = clients:tally().nacked
    assert.is_true(clients:wait_acks(acks + 100), "the clients are not answered while InfluxDB is down")
    assert.equal(0, #clients:tally().fails)

    db:start_again()
    local t = clients:stop()
    assert.same({}, t.fails)
    assert.is_truthy(wait(function() return all_delivered { gws.a, gws.b } end, 60), "not everything was delivered")
    local r = compare(db, t.acked)
    print(("\nscaling: InfluxDB down behind two instances (spooling): %d points acknowledged, %d lost"):format(
      r.acked, r.missing))
    assert.equal(0, r.missing)
    assert.is_true(strict:wait_state("a", "UP"), strict:log())
  end)

  -- A rolling restart: each instance in turn gets SIGTERM and comes back.
  -- Clients that never retry see a failure for any request the gateway
  -- tier refused.
  local function rolling_restart(drain_seconds)
    local config = { listen = { drain_seconds = drain_seconds } }
    gws.a = instance(db, dir .. "/spool-a", config)
    gws.b = instance(db, dir .. "/spool-b", config)
    lb = haproxy.start { servers = { a = gws.a.port, b = gws.b.port } }
    assert.is_true(lb:wait_state("a", "UP"), lb:log())
    assert.is_true(lb:wait_state("b", "UP"), lb:log())
    clients = start_clients(lb, dir, false)
    assert.is_true(clients:wait_acks(60), "the clients are not answered")
    for _, name in ipairs { "a", "b" } do
      local gw = gws[name]
      local acks = clients:tally().nacked
      assert.is_true(gw:signal("TERM"))
      assert.is_true(lb:wait_state(name, "DOWN"), lb:log())
      assert.equal(0, gw:wait_exit(30))
      gw:destroy()
      gws[name] = instance(db, dir .. "/spool-" .. name, config, gw.port)
      assert.is_true(lb:wait_state(name, "UP"), lb:log())
      assert.is_truthy(wait(function() return health(gws[name]).points.accepted > 0 end, 20))
      assert.is_true(clients:wait_acks(acks + 30))
    end
    local t = clients:stop()
    assert.equal(CLIENTS, t.done)
    assert.is_truthy(wait(function() return all_delivered { gws.a, gws.b } end, 60), "not everything was delivered")
    return t, compare(db, t.acked)
  end

  it("a rolling restart with listen.drain_seconds refuses nothing, even to clients that never retry", function()
    local t, r = rolling_restart(2)
    print(("\nscaling: rolling restart of two instances, drain_seconds 2: %d requests, %d refused; "
      .. "%d points acknowledged, %d lost"):format(t.nacked + t.failed, t.failed, r.acked, r.missing))
    assert.same({}, t.fails)
    assert.equal(0, r.missing)
  end)

  it("the same rolling restart without a drain (for comparison): acknowledged points are kept", function()
    local t, r = rolling_restart(0)
    print(("\nscaling: rolling restart of two instances, drain_seconds 0: %d requests, %d refused (%s); "
      .. "%d points acknowledged, %d lost"):format(t.nacked + t.failed, t.failed,
      t.fails[1] or "none", r.acked, r.missing))
    assert.equal(0, r.missing)
  end)
end)

describe("throughput through HAProxy", function()
  local sink, sink_dir, gws, lb
  local BIN = ROOT .. "/bench/results/bin"

  local function sink_lines()
    local st, body = http.get(("http://127.0.0.1:%d/count"):format(sink.port), nil, 5)
    return st == 200 and cjson.decode(body).lines or -1
  end

  before_each(function()
    local p = io.popen("cd " .. proc.quote(ROOT) .. " && env -u LD_PRELOAD make --no-print-directory "
      .. "bench/results/bin/load bench/results/bin/sink 2>&1; echo rc=$?")
    local out = p:read("*a"); p:close()
    assert(out:match("rc=0%s*$"), out)
    sink_dir = proc.tmpdir("luagw-sink")
    sink = { pid = proc.spawn { argv = { BIN .. "/sink" }, stdout = sink_dir .. "/out", stderr = "stdout" } }
    sink.port = tonumber(wait(function() return (proc.read_file(sink_dir .. "/out") or ""):match("port (%d+)") end, 10))
    assert.is_number(sink.port)
    gws = {}
  end)
  after_each(function()
    if lb then lb:destroy() end
    for _, gw in pairs(gws) do gw:destroy() end
    proc.stop(sink.pid, 5)
    proc.rmdir(sink_dir)
    lb = nil
  end)

  -- bench/load at its maximum (8 keep-alive connections, 1,000-point line
  -- protocol bodies) against port for 3 s: its key=value line as a table.
  local function load(port)
    local code, out = proc.run({ BIN .. "/load", "-p", tostring(port), "-c", "8", "-d", "3" }, 60)
    assert.equal(0, code, out)
    local t = {}
    for k, v in out:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
    return t
  end

  it("prints points/s with one instance and with two (and without HAProxy)", function()
    local config = { monitoring = { port = sink.port, database = "bench" } }
    gws.a = luagw.start { config = luagw.merge({ spool = { dir = sink_dir .. "/spool-a" } }, config) }
    gws.b = luagw.start { config = luagw.merge({ spool = { dir = sink_dir .. "/spool-b" } }, config) }
    local figures, acked = {}, 0
    local runs = { { "one instance without HAProxy" }, { "one instance", { a = gws.a.port } },
      { "two instances", { a = gws.a.port, b = gws.b.port } } }
    for _, run in ipairs(runs) do
      local r
      if run[2] then
        lb = haproxy.start { servers = run[2] }
        for name in pairs(run[2]) do assert.is_true(lb:wait_state(name, "UP"), lb:log()) end
        r = load(lb.port)
        lb:destroy()
        lb = nil
      else
        r = load(gws.a.port)
      end
      assert.equal(0, r.errors)
      assert.equal(0, r.status_400 + r.status_other)
      assert.is_true(r.points > 0)
      acked = acked + r.points
      figures[#figures + 1] = ("%s %.0f points/s (p50 %s ms, p99 %s ms, %d × 503)"):format(run[1], r.points_per_s,
        r.p50_ms, r.p99_ms, r.status_503)
      -- Everything acknowledged reaches the sink before the next run.
      assert.is_truthy(wait(function() return sink_lines() >= acked end, 60),
        ("the sink counted %d of %d points"):format(sink_lines(), acked))
    end
    print("\nscaling: line protocol, spool on, 8 connections, 3 s each, everything on this machine's cores: "
      .. table.concat(figures, "; "))
    assert.equal(acked, sink_lines())
  end)
end)
