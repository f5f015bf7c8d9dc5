-- End to end: outputs:, routes: and tenants (docs/outputs.md) with the real
-- binary in front of two real influxd and the 2.x fake.
local influxd = require("support.influxd")
local fake = require("support.fake_influx2")
local luagw = require("support.luagw")
local wait = require("support.wait")
local http = require("support.http")
local proc = require("support.proc")
local cjson = require("cjson")

local OMIT = luagw.OMIT

-- The seed's five series, one point each, as line protocol.
local SEED = {
  'requests,route=GET:/version,service=luna-sender,status_code=200 execution_time=0.0123,request_id="4f1c-01" 1700000000123456000',
  'errors,error_code=11,route=POST:/subscribe,service=luna-sender,status_code=500 request_id="4f1c-02" 1700000001500000000',
  "subscription_error,error_code=E42,service=luna-sender count=1i 1700000002000000000",
  'ws_requests,account_id=42,service=luna-sender request_id="4f1c-04",transport_time=0.25 1700000003000001000',
  'redis_message,chanel=notify:42,service=luna-sender request_id="4f1c-05" 1700000004999999000',
}
local SERIES = { "requests", "errors", "subscription_error", "ws_requests", "redis_message" }

local function output(db, extra)
  local o = { host = "127.0.0.1", port = db.port, database = "luagw", flushing_period = 0.1, retry_max = 0.5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Start luagw with outputs (and routes, tokens...) in place of monitoring:.
local function start(cfg)
  cfg.monitoring = OMIT
  return luagw.start { config = cfg }
end

local function count(db, series, database)
  return db:count(series, database or "luagw")
end

local function total(db, database)
  local n = 0
  for _, s in ipairs(SERIES) do n = n + count(db, s, database) end
  return n
end

local function health(gw)
  local st, body = gw:get("/health")
  return st, cjson.decode(body)
end

local function metric(gw, name, output)
  local _, body = gw:get("/metrics")
  local v = body:match(name .. '{output="' .. output .. '"} (%d+)')
  return tonumber(v)
end

describe("outputs: two real influxd", function()
  local a, b

  lazy_setup(function()
    a = influxd.start {}
    b = influxd.start {}
    for _, db in ipairs { a, b } do
      db:create_database("luagw")
      db:create_database("other")
    end
  end)

  lazy_teardown(function()
    if a then a:destroy() end
    if b then b:destroy() end
  end)

  before_each(function()
    for _, db in ipairs { a, b } do
      for _, name in ipairs { "luagw", "other" } do
        db:drop_database(name)
        db:create_database(name)
      end
    end
  end)

  it("HA: the seed's five series are stored exactly in both", function()
    local gw = start { outputs = { primary = output(a), replica = output(b) } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write", table.concat(SEED, "\n"))))
    for _, db in ipairs { a, b } do
      assert(wait(function() return total(db) == 5 end, 10), "not all five stored")
      local r = db:rows("SELECT * FROM requests", "luagw")[1]
      assert.equal("4f1c-01", r.request_id)
      assert.equal(0.0123, r.execution_time)
      assert.equal("1700000000123456000", influxd.str(r.time))
      assert.same({ count = "integer" }, db:field_types("subscription_error", "luagw"))
    end
    assert(wait(function() return select(2, health(gw)).outputs.replica.written == 5 end, 5))
    assert.equal("ok", select(2, health(gw)).outputs.primary.state)
  end)

  it("HA: a point both refuse (type conflict) is dead-lettered on each; the rest of the shared batch is stored", function()
    local gw = start { outputs = { primary = output(a), replica = output(b) } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write", "conf v=1i 1")))
    assert(wait(function() return count(a, "conf") == 1 and count(b, "conf") == 1 end, 10))
    local lines = { 'conf v="text" 2' }
    for i = 1, 50 do lines[#lines + 1] = ("fine v=%di %d"):format(i, i) end
    assert.equal(204, (gw.post("/write", table.concat(lines, "\n"))))
    assert(wait(function() return count(a, "fine") == 50 and count(b, "fine") == 50 end, 10))
    local h = assert(wait(function()
      local _, doc = health(gw)
      return doc.outputs.primary.dead_lettered == 1 and doc.outputs.replica.dead_lettered == 1
        and doc.outputs.primary.written == 51 and doc.outputs.replica.written == 51 and doc
    end, 10), "dead letters and writes not counted per output")
    assert.equal(0, h.outputs.primary.overflowed)
    assert.equal(1, count(a, "conf"))
    assert.equal(1, count(b, "conf"))
  end)

  it("replica stopped 10 s under steady load: the primary keeps storing, the replica catches up, 0 lost",
    function()
      local gw = start { outputs = { primary = output(a), replica = output(b) } }
      finally(function() gw:destroy(); b:start_again() end)
      local sent, t0, n = 0, wait.now(), 0
      local function send()
        n = n + 1
        local lines = {}
        for i = 1, 20 do
          lines[i] = ("steady,run=ha v=%di 1700000000%09d"):format(i, n * 1000 + i)
        end
        assert.equal(204, (gw.post("/write", table.concat(lines, "\n"))))
        sent = sent + 20
      end
      b:stop()
      local lagged, saw_down = 0, false
      local history = {} -- { time, points sent by then }
      while wait.now() - t0 < 10 do
        send()
        history[#history + 1] = { wait.now(), sent }
        -- The primary has stored every point sent flushing_period (0.1 s)
        -- + 1 s ago.
        local due = 0
        for _, hp in ipairs(history) do if hp[1] <= wait.now() - 1.1 then due = hp[2] end end
        if a:count("steady", "luagw") < due then lagged = lagged + 1 end
        local st, h = health(gw)
        if h.outputs.replica.state == "down" then
          saw_down = true
          assert.equal(200, st) -- the primary takes every point
        end
        wait.sleep(0.1)
      end
      assert.equal(0, lagged)
      assert.is_true(saw_down, "/health never showed the replica down")
      assert.equal(0, metric(gw, "luagw_output_up", "replica"))
      assert.equal(1, metric(gw, "luagw_output_up", "primary"))
      assert(wait(function() return a:count("steady", "luagw") == sent end, 5), "primary short")
      local t_back = wait.now()
      b:start_again()
      assert(wait(function()
        local ok, c = pcall(b.count, b, "steady", "luagw")
        return ok and c == sent
      end, 30), "the replica did not catch up")
      print(("\n  HA outage: %d points sent in 10 s; replica caught up %.1f s after restart"):format(
        sent, wait.now() - t_back))
      local _, h = health(gw)
      assert.is_true(h.outputs.replica.failed > 0)
      assert(wait(function() return select(2, health(gw)).outputs.primary.written == sent end, 5))
    end)

  it("routes by series, tag, token and database; first match wins", function()
    local gw = start {
      outputs = { primary = output(a, { passthrough = true }), replica = output(b, { passthrough = true }) },
      listen = { tokens = { { name = "ops", token = "ops-secret" }, "plain-secret" } },
      routes = {
        { match = { series = { "requests" } }, to = { "primary" } },
        { match = { tags = { team = { "blue" } } }, to = { "replica" } },
        { match = { token = { "ops" } }, to = { "replica" } },
        { match = { db = { "other" } }, to = { "primary" } },
        { to = { "primary", "replica" } },
      },
    }
    finally(function() gw:destroy() end)
    local plain = { Authorization = "Token plain-secret" }
    local ops = { Authorization = "Token ops-secret" }
    assert.equal(204, (gw.post("/write", table.concat(SEED, "\n"), plain)))
    assert.equal(204, (gw.post("/write", "tagged,team=blue v=1i 1\ntagged,team=red v=2i 2", plain)))
    assert.equal(204, (gw.post("/write", "by_token v=1i 1", ops)))
    assert.equal(204, (gw.post("/write?db=other", "by_db v=1i 1", plain)))
    local want = {
      { a, "requests", 1 }, { b, "requests", 0 },  -- series: [requests] -> primary only
      { a, "errors", 1 }, { b, "errors", 1 },      -- the catch-all
      { a, "tagged", 1 }, { b, "tagged", 2 },      -- team=blue -> replica, team=red -> both
      { a, "by_token", 0 }, { b, "by_token", 1 },  -- token ops -> replica
    }
    assert(wait(function()
      for _, w in ipairs(want) do if count(w[1], w[2]) ~= w[3] then return false end end
      return count(a, "by_db", "other") == 1
    end, 10), "routed points missing")
    for _, w in ipairs(want) do assert.equal(w[3], count(w[1], w[2]), w[2]) end
    assert.equal(0, count(b, "by_db", "other"))
  end)

  it("?db= lands in that database on passthrough outputs; passthrough: false keeps its own", function()
    local gw = start { outputs = { primary = output(a, { passthrough = true }), replica = output(b) } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write?db=other", "placed v=1i 1")))
    assert.equal(204, (gw.post("/write", "placed v=2i 2")))
    assert.equal(204, (gw.post("/v1/points?db=other", '{"series":"placed","time":3,"fields":{"v":3}}',
      { ["Content-Type"] = "application/json" })))
    assert(wait(function()
      return count(a, "placed", "other") == 2 and count(a, "placed", "luagw") == 1 and count(b, "placed") == 3
    end, 10))
    assert.equal(0, count(b, "placed", "other"))
  end)

  it("monitoring: alone takes passthrough too", function()
    local gw = luagw.start { influxd = a, config = { monitoring = { passthrough = true } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write?db=other", "mono v=1i 1")))
    assert.equal(204, (gw.post("/write", "mono v=2i 2")))
    assert(wait(function() return count(a, "mono", "other") == 1 and count(a, "mono") == 1 end, 10))
  end)

  it("503 names the full output; /health is 503 only when a route has no output able to take points", function()
    local ports = require("support.ports")
    local gw = start {
      outputs = {
        primary = output(a),
        replica = { host = "127.0.0.1", port = ports.free(), database = "luagw", flushing_period = 0.1,
                    retry_max = 0.5, batch_size = 10, buffer_limit = 20 },
      },
      routes = { { match = { series = { "solo" } }, to = { "primary" } }, { to = { "primary", "replica" } } },
    }
    finally(function() gw:destroy() end)
    local body20 = {}
    for i = 1, 20 do body20[i] = ("full v=%di %d"):format(i, i) end
    assert.equal(204, (gw.post("/write", table.concat(body20, "\n"))))
    local st, body = gw.post("/write", "full v=99i 99")
    assert.equal(503, st)
    local doc = cjson.decode(body)
    assert.same({ "replica" }, doc.outputs_full)
    assert.matches("buffer full on output replica", doc.error)
    -- Points routed to the primary alone are still taken.
    assert.equal(204, (gw.post("/write", "solo v=1i 1")))
    assert(wait(function() return count(a, "full") == 20 and count(a, "solo") == 1 end, 10))
    -- Every route has an output that takes points: 200, the replica listed as full.
    local hs, h = health(gw)
    assert.equal(200, hs)
    assert.equal("full", h.outputs.replica.state)
    assert.equal("ok", h.outputs.primary.state)
    -- The primary down too: route 1 has no output left, 503.
    a:stop()
    finally(function() a:start_again() end)
    assert.equal(204, (gw.post("/write", "solo v=2i 2")))
    assert(wait(function() return (health(gw)) == 503 end, 10), "/health stayed 200 with every output down")
    hs, h = health(gw)
    assert.equal("down", h.outputs.primary.state)
    assert.matches("some route has no output", table.concat(h.problems, " "))
  end)

  it("a database that does not exist holds back only its own points", function()
    local gw = start { outputs = { primary = output(a, { passthrough = true }) } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write?db=missing", "held v=1i 1")))
    assert.equal(204, (gw.post("/write?db=other", "flows v=1i 1")))
    assert.equal(204, (gw.post("/write", "flows v=2i 2")))
    assert(wait(function() return count(a, "flows", "other") == 1 and count(a, "flows") == 1 end, 10))
    local held = wait(function()
      local _, h = health(gw)
      local hb = h.outputs.primary.held_back
      return #hb > 0 and hb
    end, 10)
    assert(held, "/health did not name the held-back database")
    assert.equal("missing", held[1].database)
    -- More points for the others keep flowing meanwhile.
    assert.equal(204, (gw.post("/write?db=other", "flows v=3i 3")))
    assert(wait(function() return count(a, "flows", "other") == 2 end, 10))
    a:create_database("missing")
    assert(wait(function() return count(a, "held", "missing") == 1 end, 15), "held points never arrived")
  end)

  it("tokens: 401 unknown, 403 outside its databases, its tags over the client's, its default database", function()
    local gw = start {
      outputs = { primary = output(a, { passthrough = true }) },
      listen = { tokens = {
        { name = "billing", token = "bill-secret", tags = { tenant = "billing" }, databases = { "other", "luagw" } },
      } },
    }
    finally(function() gw:destroy() end)
    local auth = { Authorization = "Token bill-secret" }
    assert.equal(401, (gw.post("/write", "t v=1i 1", { Authorization = "Token nope" })))
    local st, body = gw.post("/write?db=elsewhere", "t v=1i 1", auth)
    assert.equal(403, st)
    assert.matches('may not write to database \\"elsewhere\\"', body)
    assert.equal(204, (gw.post("/write", "t,tenant=spoofed v=1i 1", auth))) -- default: other
    assert.equal(204, (gw.post("/write?db=luagw", "t v=2i 2", auth)))
    assert(wait(function() return count(a, "t", "other") == 1 and count(a, "t", "luagw") == 1 end, 10))
    assert.equal("billing", a:rows("SELECT * FROM t", "other")[1].tenant)
  end)

  it("scripts see the request as req: token name, client, database, path", function()
    local dir = proc.tmpdir("luagw-req")
    finally(function() proc.rmdir(dir) end)
    proc.write_file(dir .. "/who.lua", [[
return function(point, req)
  point.tags.by = req.token or "none"
  point.tags.client = req.client
  point.tags.db = req.db or "none"
  point.tags.path = req.path
  if pcall(function() req.token = "x" end) then point.tags.writable = "yes" end
  return point
end
]])
    local gw = start {
      outputs = { primary = output(a, { passthrough = true }) },
      listen = { tokens = { { name = "ops", token = "ops-secret" }, "plain-secret" } },
      scripts = { dir = dir },
    }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write?db=other", "who v=1i 1", { Authorization = "Token ops-secret" })))
    assert.equal(204, (gw.post("/api/v2/write?bucket=luagw&org=x", "who v=2i 2", { Authorization = "Token plain-secret" })))
    assert(wait(function() return count(a, "who", "other") == 1 and count(a, "who", "luagw") == 1 end, 10))
    local r1 = a:rows("SELECT * FROM who", "other")[1]
    assert.same({ "ops", "127.0.0.1", "other", "/write" }, { r1.by, r1.client, r1.db, r1.path })
    assert.is_nil(r1.writable)
    local r2 = a:rows("SELECT * FROM who", "luagw")[1]
    assert.same({ "none", "luagw", "/api/v2/write" }, { r2.by, r2.db, r2.path })
  end)

  it("SIGHUP reloads routes and tokens, all or nothing", function()
    local cfg = {
      outputs = { primary = output(a), replica = output(b) },
      listen = { tokens = { { name = "one", token = "tok-1" } } },
      routes = { { match = { token = { "one" } }, to = { "primary" } }, { to = { "replica" } } },
    }
    local gw = start(cfg)
    finally(function() gw:destroy() end)
    local function reload(c)
      local before = select(2, gw:log():gsub("scripts reloaded", "")) + select(2, gw:log():gsub("reload failed", ""))
      c.listen.port, c.monitoring = gw.port, nil
      proc.write_file(gw.config_path, luagw.yaml(c))
      assert.is_true(gw:signal("HUP"))
      assert(wait(function()
        return select(2, gw:log():gsub("scripts reloaded", "")) + select(2, gw:log():gsub("reload failed", "")) > before
      end, 5), "no reload logged")
    end
    assert.equal(204, (gw.post("/write", "hup v=1i 1", { Authorization = "Token tok-1" })))
    assert(wait(function() return count(a, "hup") == 1 end, 10))
    -- New token, new route: the old token is refused, the new one goes where the new route says.
    reload { outputs = cfg.outputs, listen = { tokens = { { name = "two", token = "tok-2" } } },
             routes = { { match = { token = { "two" } }, to = { "replica" } }, { to = { "primary" } } } }
    assert.equal(401, (gw.post("/write", "hup v=2i 2", { Authorization = "Token tok-1" })))
    assert.equal(204, (gw.post("/write", "hup v=3i 3", { Authorization = "Token tok-2" })))
    assert(wait(function() return count(b, "hup") == 1 end, 10))
    -- A route to an output that is not running: refused, the running set stays.
    reload { outputs = { primary = output(a), replica = output(b), third = output(b, { database = "x" }) },
             listen = { tokens = { { name = "two", token = "tok-2" } } },
             routes = { { to = { "third" } } } }
    assert.matches("reload failed.*no output is named 'third'", gw:log())
    assert.equal(204, (gw.post("/write", "hup v=4i 4", { Authorization = "Token tok-2" })))
    assert(wait(function() return count(b, "hup") == 2 end, 10))
    assert.equal(1, count(a, "hup"))
  end)

  it("the debug transform and the busted harness hand scripts req too", function()
    local dir = proc.tmpdir("luagw-req2")
    finally(function() proc.rmdir(dir) end)
    proc.write_file(dir .. "/who.lua", [[
return function(point, req)
  point.tags.by = req.token or "none"
  point.tags.db = req.db or "none"
  point.tags.path = req.path or "none"
  return point
end
]])
    local gw = start {
      outputs = { primary = output(a, { passthrough = true }) },
      listen = { tokens = { { name = "ops", token = "ops-secret" } } },
      scripts = { dir = dir },
    }
    finally(function() gw:destroy() end)
    local st, body = gw.post("/v1/debug/transform?db=other", "who v=1i 1", { Authorization = "Token ops-secret" })
    assert.equal(200, st)
    local p = cjson.decode(body).points[1]
    assert.same({ by = "ops", db = "other", path = "/v1/debug/transform" }, p.tags)
    local harness = require("luagw.harness")
    local h = assert(harness.new { dir = dir })
    finally(function() h:close() end)
    local out = h:run_lines("who v=1i 1", "ns", { token = "billing", db = "b1", path = "/write" })
    assert.same({ by = "billing", db = "b1", path = "/write" }, out.points[1].tags)
    assert.same({ by = "none", db = "none", path = "none" }, h:run_lines("who v=1i 1").points[1].tags)
  end)

  it("/query reads from the first output", function()
    local gw = start { outputs = { primary = output(a), replica = output(b) } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write", "readback v=7i 1")))
    assert(wait(function() return count(a, "readback") == 1 end, 10))
    local st, body = gw.get("/query?" .. http.query { db = "luagw", q = "SELECT v FROM readback" })
    assert.equal(200, st)
    assert.equal(7, cjson.decode(body).results[1].series[1].values[1][2])
  end)

  it("/query reads from the output that owns the database it names", function()
    b:create_database("rdb")
    local gw = start { outputs = { primary = output(a), replica = output(b, { database = "rdb" }) },
      routes = { { match = { series = { "only_replica" } }, to = { "replica" } }, { to = { "primary" } } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write", "only_replica v=9i 1")))
    assert(wait(function() return count(b, "only_replica", "rdb") == 1 end, 10))
    local st, body = gw.get("/query?" .. http.query { db = "rdb", q = "SELECT v FROM only_replica" })
    assert.equal(200, st)
    assert.equal(9, cjson.decode(body).results[1].series[1].values[1][2])
    -- the same name on the first output holds nothing: the answer came from the replica
    assert.equal(0, count(a, "only_replica", "luagw"))
  end)

  it("/query: a token limited to some databases reads only those", function()
    local gw = start { outputs = { primary = output(a) },
      listen = { tokens = { { name = "billing", token = "bill-secret", databases = { "luagw" } }, "ops-secret" } } }
    finally(function() gw:destroy() end)
    local q = "SHOW MEASUREMENTS"
    local st = gw.get("/query?" .. http.query { db = "luagw", q = q }, { Authorization = "Token bill-secret" })
    assert.equal(200, st)
    local body
    st, body = gw.get("/query?" .. http.query { db = "_internal", q = q }, { Authorization = "Token bill-secret" })
    assert.equal(403, st)
    assert.truthy(body:find("_internal", 1, true))
    st = gw.get("/query?" .. http.query { q = "SHOW DATABASES" }, { Authorization = "Token bill-secret" })
    assert.equal(403, st)
    st = gw.post("/query", http.query { db = "_internal", q = q },
      { Authorization = "Token bill-secret", ["Content-Type"] = "application/x-www-form-urlencoded" })
    assert.equal(403, st)
    st = gw.get("/query?" .. http.query { db = "_internal", q = q }, { Authorization = "Token ops-secret" })
    assert.equal(200, st)
    st = gw.get("/query?" .. http.query { db = "luagw", q = q }, { Authorization = "Token wrong" })
    assert.equal(401, st)
  end)

  it("kill -9 with a spool per output, then restart: every acknowledged point reaches both", function()
    local dir = proc.tmpdir("luagw-outspool")
    finally(function() proc.rmdir(dir) end)
    local cfg = { outputs = {
      primary = output(a, { spool = { dir = dir .. "/primary" } }),
      replica = output(b, { spool = { dir = dir .. "/replica" } }),
    } }
    b:stop()
    local gw = start(cfg)
    local acked = 0
    for i = 1, 30 do
      if gw.post("/write", ("spooled v=%di %d"):format(i, i)) == 204 then acked = acked + 1 end
    end
    assert.equal(30, acked)
    assert(wait(function() return count(a, "spooled") == 30 end, 10))
    gw:signal("KILL")
    gw:wait_exit(5)
    gw:destroy()
    b:start_again()
    local gw2 = start(cfg)
    finally(function() gw2:destroy() end)
    assert(wait(function()
      local ok, c = pcall(count, b, "spooled")
      return ok and c == 30
    end, 20), "the replica's spool was not delivered after the restart")
    assert.equal(30, count(a, "spooled"))
  end)

  it("config: monitoring: with outputs:, and a route to an unknown output, are refused with file:line:column", function()
    local g = luagw.start { raw_config = "monitoring:\n  port: 1\noutputs:\n  a: {port: 2}\n", wait = false }
    finally(function() g:destroy() end)
    assert.equal(1, (g:wait_exit(5)))
    assert.matches(":2:%d+: monitoring: monitoring: and outputs: do not go together", g:log())
    local g2 = luagw.start { raw_config = "outputs:\n  a: {port: 2}\nroutes:\n  - to: [b]\n", wait = false }
    finally(function() g2:destroy() end)
    assert.equal(1, (g2:wait_exit(5)))
    assert.matches(":4:%d+: routes%[0%]%.to: no output is named \"b\"", g2:log())
  end)
end)

describe("outputs: configuration errors name file:line:column", function()
  local cases = {
    { "outputs:\n  a: {port: 2, colour: red}\n", ":2:%d+: outputs%.a%.colour: unknown key" },
    { "outputs:\n  'a b': {port: 2}\n", ':2:%d+: "outputs%.a b": an output\'s name' },
    { "outputs:\n  a: {port: 2, batch_size: 10, buffer_limit: 5}\n", "outputs%.a%.buffer_limit: must be at least batch_size" },
    { "outputs:\n  a: {port: 2, version: 2, bucket: ''}\n", "outputs%.a%.bucket: must not be empty with version 2" },
    { "outputs:\n  a: {port: 2, spool: {dir: /tmp/x}}\n  b: {port: 3, spool: {dir: /tmp/x}}\n",
      ":3:%d+: outputs%.b%.spool%.dir: /tmp/x is already the spool of output a" },
    { "outputs:\n  a: {port: 2, dead_letter: /tmp/d1}\n  b: {port: 3, dead_letter: /tmp/d2}\n",
      "outputs%.b%.dead_letter: dead letters go to one file" },
    { "outputs:\n  a: {port: 2}\nroutes:\n  - to: [a]\n  - match: {series: [x]}\n    to: [a]\n",
      ":5:%d+: routes%[1%]" },
    { "listen:\n  tokens:\n    - {token: t, tags: {tenant: x}}\n", ":3:%d+: listen%.tokens%[0%]" },
    { "listen:\n  tokens:\n    - {name: a, token: t}\n    - {name: a, token: u}\n", ":4:%d+: listen%.tokens%[1%]" },
  }
  for i, c in ipairs(cases) do
    it(("case %d: %s"):format(i, c[2]), function()
      local g = luagw.start { raw_config = c[1], wait = false }
      finally(function() g:destroy() end)
      assert.equal(1, (g:wait_exit(5)))
      assert.matches(c[2], g:log())
    end)
  end
end)

describe("outputs: a 1.x and a 2.x at once", function()
  local a, f2

  lazy_setup(function()
    a = influxd.start {}
    a:create_database("luagw")
    f2 = fake.start { org = "luna", bucket = "luna_monitoring", token = "t2", buckets = { "other" } }
  end)

  lazy_teardown(function()
    if a then a:destroy() end
    if f2 then f2:stop() end
  end)

  it("mirrors the seed to both; ?bucket= lands in that bucket on the 2.x output", function()
    local gw = start { outputs = {
      v1 = output(a),
      v2 = { version = 2, host = "127.0.0.1", port = f2.port, organization = "luna", bucket = "luna_monitoring",
             token = "t2", passthrough = true, flushing_period = 0.1 },
    } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw.post("/write", table.concat(SEED, "\n"))))
    assert.equal(204, (gw.post("/api/v2/write?bucket=other&org=luna", "in_other v=1i 1")))
    assert(wait(function() return #f2:lines() == 5 and total(a) == 5 end, 10))
    assert(wait(function() return #f2:lines("other") == 1 end, 10))
    assert.equal(1, count(a, "in_other"))  -- v1 has no passthrough: its own database
    local got = {}
    for _, l in ipairs(f2:lines()) do got[#got + 1] = l end
    table.sort(got)
    local want = {}
    for _, l in ipairs(SEED) do want[#want + 1] = l end
    table.sort(want)
    assert.same(want, got)
  end)
end)
