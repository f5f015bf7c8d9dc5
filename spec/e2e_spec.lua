-- End to end: the real gateway/luagw binary in front of a real influxd.
-- Points of each seed series go in as JSON and as line protocol and are read
-- back from InfluxDB with exact tags, field values, field types and times.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local wait = require("support.wait")
local http = require("support.http")
local cjson = require("cjson")

local JSON = { ["Content-Type"] = "application/json" }
local S = influxd.str

local function health(gw)
  local _, body = gw:get("/health")
  return cjson.decode(body)
end

-- The five series of the monitored service (see DEVELOPERS.md), one point each.
local SEED = {
  { series = "requests", time = "1700000000.123456", ns = "1700000000123456000",
    tags = { service = "luna-sender", route = "GET:/version", status_code = 200 },
    fields = { request_id = "4f1c-01", execution_time = 0.0123 },
    lp = 'requests,route=GET:/version,service=luna-sender,status_code=200 execution_time=0.0123,request_id="4f1c-01"',
    types = { request_id = "string", execution_time = "float" } },
  { series = "errors", time = "1700000001.5", ns = "1700000001500000000",
    tags = { service = "luna-sender", route = "POST:/subscribe", status_code = 500, error_code = 11 },
    fields = { request_id = "4f1c-02" },
    lp = 'errors,error_code=11,route=POST:/subscribe,service=luna-sender,status_code=500 request_id="4f1c-02"',
    types = { request_id = "string" } },
  { series = "subscription_error", time = "1700000002", ns = "1700000002000000000",
    -- no fields of its own: deployments add them; here the client sends one
    tags = { service = "luna-sender", error_code = "E42" },
    fields = { count = 1 },
    lp = "subscription_error,error_code=E42,service=luna-sender count=1i",
    types = { count = "integer" } },
  { series = "ws_requests", time = "1700000003.000001", ns = "1700000003000001000",
    tags = { service = "luna-sender", account_id = 42 },
    fields = { transport_time = 0.25, request_id = "4f1c-04" },
    lp = 'ws_requests,account_id=42,service=luna-sender request_id="4f1c-04",transport_time=0.25',
    types = { transport_time = "float", request_id = "string" } },
  { series = "redis_message", time = "1700000004.999999", ns = "1700000004999999000",
    tags = { service = "luna-sender", chanel = "notify:42" },
    fields = { request_id = "4f1c-05" },
    lp = 'redis_message,chanel=notify:42,service=luna-sender request_id="4f1c-05"',
    types = { request_id = "string" } },
}

-- JSON text of a seed point with its time written verbatim (not via a double).
local function seed_json(p, extra_tag)
  local tags = {}
  for k, v in pairs(p.tags) do tags[k] = v end
  tags.via = extra_tag
  return ('{"series":%s,"time":%s,"tags":%s,"fields":%s}'):format(
    cjson.encode(p.series), p.time, cjson.encode(tags), cjson.encode(p.fields))
end

local function rows(db, q) return db:rows(q, "luagw") end

describe("luagw end to end with a real influxd", function()
  local db = influxd.for_block { database = "luagw" }
  local gw

  lazy_setup(function()
    gw = luagw.start { influxd = db, config = { monitoring = { flushing_period = 0.2 } } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
  end)

  it("answers /ping with 204 and an InfluxDB version header, /health with JSON", function()
    local st, _, h = gw:get("/ping")
    assert.equal(204, st)
    assert.is_truthy(h["x-influxdb-version"])
    local st2, body = gw:get("/health")
    assert.equal(200, st2)
    local doc = cjson.decode(body)
    assert.equal("luagw", doc.name)
    assert.is_number(doc.points.accepted)
  end)

  it("stores each seed series posted as JSON with exact tags, values, types and times", function()
    local parts = {}
    for _, p in ipairs(SEED) do parts[#parts + 1] = seed_json(p, "json") end
    local st, body = gw:post("/v1/points", "[" .. table.concat(parts, ",") .. "]", JSON)
    assert.equal(204, st, body)
    for _, p in ipairs(SEED) do
      local q = ("SELECT * FROM %q WHERE via = 'json'"):format(p.series)
      assert.is_true(wait(function() return #rows(db, q) == 1 end, 10), p.series .. " not stored")
      local r = rows(db, q)[1]
      assert.equal(p.ns, S(r.time))
      for k, v in pairs(p.tags) do assert.equal(tostring(v), r[k], p.series .. " tag " .. k) end
      for k, v in pairs(p.fields) do assert.equal(S(v), S(r[k]), p.series .. " field " .. k) end
      assert.same(p.types, db:field_types(p.series, "luagw"))
    end
  end)

  it("stores each seed series posted as line protocol with exact values and ns times", function()
    local lines = {}
    for _, p in ipairs(SEED) do
      -- via=lp sorts after the other tags here only by luck of names: luagw sorts anyway
      lines[#lines + 1] = p.lp:gsub(" ", ",via=lp ", 1) .. " " .. p.ns
    end
    local st, body = gw:post("/write?db=ignored", table.concat(lines, "\n") .. "\n")
    assert.equal(204, st, body)
    for _, p in ipairs(SEED) do
      local q = ("SELECT * FROM %q WHERE via = 'lp'"):format(p.series)
      assert.is_true(wait(function() return #rows(db, q) == 1 end, 10), p.series .. " not stored")
      local r = rows(db, q)[1]
      assert.equal(p.ns, S(r.time))
      for k, v in pairs(p.tags) do assert.equal(tostring(v), r[k]) end
      for k, v in pairs(p.fields) do assert.equal(S(v), S(r[k])) end
    end
  end)

  it("keeps int64 extremes, floats bit-exact, booleans, escapes and unsigned (as integer on 1.x)", function()
    local body = table.concat({
      'exactvals,host=a\\ b\\,c\\=d big=9223372036854775807i,small=-9223372036854775808i,f=0.30000000000000004,tiny=5e-324,yes=T,no=false,s="say \\"hi\\" \\\\ ok",u=18446744073709551615u 1700000005000000001',
      'exactvals,host=e u=12345u 1700000005000000002',
    }, "\n")
    local st, resp = gw:post("/write", body)
    -- 18446744073709551615u cannot be written to InfluxDB 1.x: that line is rejected, with a message
    assert.equal(400, st)
    local doc = cjson.decode(resp)
    assert.equal(1, doc.line)
    assert.equal(1, doc.accepted)
    assert.matches("unsigned", doc.error)
    st = gw:post("/write", (body:gsub(",u=18446744073709551615u", "")))
    assert.equal(204, st)
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM exactvals") == 2 end, 10))
    local r = rows(db, "SELECT * FROM exactvals WHERE host = 'a b,c=d'")[1]
    assert.equal("1700000005000000001", S(r.time))
    assert.equal("9223372036854775807", S(r.big))
    assert.equal("-9223372036854775808", S(r.small))
    assert.equal(0.1 + 0.2, r.f)
    assert.equal(5e-324, r.tiny)
    assert.equal(true, r.yes)
    assert.equal(false, r.no)
    assert.equal('say "hi" \\ ok', r.s)
    local r2 = rows(db, "SELECT u FROM exactvals WHERE host = 'e'")[1]
    assert.equal(12345, r2.u)
    assert.equal("integer", db:field_types("exactvals", "luagw").u)
  end)

  it("scales line protocol timestamps by precision", function()
    local cases = { { "s", "1700000006", "1700000006000000000" }, { "ms", "1700000006001", "1700000006001000000" },
      { "u", "1700000006000002", "1700000006000002000" }, { "ns", "1700000006000000003", "1700000006000000003" },
      { "m", "28333333", "1699999980000000000" }, { "h", "472222", "1699999200000000000" } }
    for i, c in ipairs(cases) do
      local st = gw:post("/write?precision=" .. c[1], ("prec,case=%d v=%di %s"):format(i, i, c[2]))
      assert.equal(204, st, c[1])
    end
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM prec") == #cases end, 10))
    for i, c in ipairs(cases) do
      local r = rows(db, ("SELECT * FROM prec WHERE \"case\" = '%d'"):format(i))[1]
      assert.equal(c[3], S(r.time), "precision " .. c[1])
    end
    local st, body = gw:post("/write?precision=weeks", "prec v=1i 1")
    assert.equal(400, st)
    assert.matches("precision", cjson.decode(body).error)
  end)

  it("gives points without a time the time of receipt", function()
    local before = os.time()
    local st = gw:post("/v1/points", '{"series":"notime","fields":{"v":1}}', JSON)
    assert.equal(204, st)
    assert.equal(204, (gw:post("/write", "notime,lp=1 v=2i")))
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM notime") == 2 end, 10))
    for _, r in ipairs(rows(db, "SELECT * FROM notime")) do
      local secs = tonumber(r.time / 1000000000LL)
      assert.is_true(math.abs(secs - before) <= 5, "time " .. S(r.time))
    end
  end)

  it("stores the good points of a mixed body and names the first bad line", function()
    local body = table.concat({
      "mixed,k=1 v=1i 1700000007000000001",
      "mixed,k=2 v=oops 1700000007000000002",
      "# a comment",
      "",
      "mixed,k=3 v=3i 1700000007000000003",
      "mixed,k=4 1700000007000000004",
    }, "\n")
    local st, resp = gw:post("/write", body)
    assert.equal(400, st)
    local doc = cjson.decode(resp)
    assert.equal(2, doc.line)
    assert.equal(2, doc.accepted)
    assert.equal(2, doc.rejected)
    assert.matches("^partial write: line 2: ", doc.error)
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM mixed") == 2 end, 10))
    local ks = {}
    for _, r in ipairs(rows(db, "SELECT * FROM mixed")) do ks[#ks + 1] = r.k end
    table.sort(ks)
    assert.same({ "1", "3" }, ks)
  end)

  it("stores the good points of a mixed JSON array and names the first bad index", function()
    local st, resp = gw:post("/v1/points", cjson.encode {
      { series = "mixedj", tags = { k = "0" }, fields = { v = 1 } },
      { series = "mixedj", tags = { k = "1" }, fields = { v = { nested = true } } },
      { series = "mixedj", tags = { k = "2" }, fields = { v = 2 } },
      { series = "mixedj", tags = { k = "3" } }, -- no fields at all
    }, JSON)
    assert.equal(400, st)
    local doc = cjson.decode(resp)
    assert.equal(1, doc.index)
    assert.equal(2, doc.accepted)
    assert.equal(2, doc.rejected)
    assert.matches("fields.v", doc.error)
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM mixedj") == 2 end, 10))
  end)

  it("rejects a point that has no fields with a clear message", function()
    -- An undeclared series: a declared default field (subscription_error's
    -- count=1i in config/series.yaml) would fill it in; spec/schema_spec.lua.
    local st, resp = gw:post("/v1/points", '{"series":"heartbeat","tags":{"error_code":"E1"}}', JSON)
    assert.equal(400, st)
    local doc = cjson.decode(resp)
    assert.equal(0, doc.accepted)
    assert.matches("at least one field", doc.error)
  end)

  it("accepts gzip bodies on every ingest endpoint", function()
    local gz = { ["Content-Encoding"] = "gzip" }
    assert.equal(204, (gw:post("/write", http.gzip("gz,via=v1 v=1i 1700000008000000001"), gz)))
    assert.equal(204, (gw:post("/api/v2/write?org=x&bucket=y", http.gzip("gz,via=v2 v=2i 1700000008000000002"), gz)))
    assert.equal(204, (gw:post("/v1/points", http.gzip('{"series":"gz","tags":{"via":"json"},"fields":{"v":3}}'),
      { ["Content-Encoding"] = "gzip", ["Content-Type"] = "application/json" })))
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM gz") == 3 end, 10))
    local st = gw:post("/write", "not gzip at all", gz)
    assert.equal(400, st)
  end)

  it("answers 404, 405, 413 and 415 with a JSON error", function()
    local st, body = gw:post("/nope", "x")
    assert.equal(404, st); assert.is_string(cjson.decode(body).error)
    local st2, _, h2 = gw:get("/write")
    assert.equal(405, st2); assert.equal("POST", h2.allow)
    st = gw:post("/v1/points", "{}", { ["Content-Type"] = "text/plain" })
    assert.equal(415, st)
    st = gw:post("/write", "x v=1", { ["Content-Encoding"] = "br" })
    assert.equal(415, st)
  end)
end)

describe("luagw limits and batching", function()
  local db = influxd.for_block { database = "luagw" }

  it("answers 413 for a body over listen.max_body_bytes, also after gzip inflation", function()
    local gw = luagw.start { influxd = db, config = { listen = { max_body_bytes = 4096 } } }
    finally(function() gw:destroy() end)
    local big = ("big v=1i\n"):rep(1000) -- 9000 bytes
    local st, body = gw:post("/write", big)
    assert.equal(413, st)
    assert.matches("max_body_bytes", cjson.decode(body).error)
    -- compresses to far below the limit, inflates above it
    st = gw:post("/write", http.gzip(big), { ["Content-Encoding"] = "gzip" })
    assert.equal(413, st)
    assert.equal(204, (gw:post("/write", ("big v=1i\n"):rep(100))))
  end)

  it("sends a partial batch after flushing_period, not before", function()
    local gw = luagw.start { influxd = db, config = { monitoring = { flushing_period = 1.5, batch_size = 1000 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "period v=1i")))
    wait.sleep(0.5)
    assert.equal(0, #rows(db, "SELECT * FROM period"))
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM period") == 1 end, 5))
  end)

  it("sends a full batch at once, without waiting for flushing_period", function()
    local gw = luagw.start { influxd = db, config = { monitoring = { flushing_period = 60, batch_size = 10 } } }
    finally(function() gw:destroy() end)
    local lines = {}
    for i = 1, 25 do lines[i] = ("full,i=%d v=%di"):format(i, i) end
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM full") == 20 end, 5))
    -- the two batches written and let go; the last 5 wait for the period
    assert.is_true(wait(function() return health(gw).buffer.points == 5 end, 5))
    assert.equal(20, #rows(db, "SELECT * FROM full"))
  end)

  it("flushes what it holds on SIGTERM and exits 0", function()
    local gw = luagw.start { influxd = db, config = { monitoring = { flushing_period = 60 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "onterm v=1i\nonterm v=2i 1")))
    gw:signal("TERM")
    assert.equal(0, gw:wait_exit(10))
    assert.equal(2, #rows(db, "SELECT * FROM onterm"))
  end)

  it("answers 503 with Retry-After when the buffer is full, accepting nothing of that body", function()
    -- influxd down: nothing drains, so the buffer fills up
    local gw = luagw.start { influxd = db, config = { monitoring = { buffer_limit = 10, batch_size = 5, shutdown_timeout = 0.5 } } }
    finally(function() gw:destroy() end)
    db:stop()
    finally(function() if not db:running() then db:start_again() end end)
    assert.equal(204, (gw:post("/write", ("full503 v=1i\n"):rep(8))))
    local st, body, h = gw:post("/write", "full503 v=1i\nfull503 v=2i\nfull503 v=3i")
    assert.equal(503, st)
    assert.equal("1", h["retry-after"])
    assert.matches("buffer", cjson.decode(body).error)
    st = gw:post("/write", ("x v=1i\n"):rep(11))
    assert.equal(413, st) -- can never fit
  end)

  it("keeps points while influxd is down and delivers them when it is back", function()
    local gw = luagw.start { influxd = db, config = { monitoring = { retry_max = 0.5 } } }
    finally(function() gw:destroy() end)
    if db:running() then db:stop() end
    local lines = {}
    for i = 1, 50 do lines[i] = ("outage,i=%d v=%di %d"):format(i, i, 1700000009000000000 + i) end
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    assert.is_true(wait(function() return gw:log():find("will retry", 1, true) ~= nil end, 5), gw:log())
    db:start_again()
    assert.is_true(wait(function() return #rows(db, "SELECT * FROM outage") == 50 end, 15))
  end)
end)

describe("luagw writing to an InfluxDB 2.x API", function()
  local fake = require("support.fake_influx2")

  it("posts to /api/v2/write with org, bucket, ns precision and the token", function()
    local f2 = fake.start { org = "luna", bucket = "luna_monitoring", token = "s3cret" }
    finally(function() f2:stop() end)
    local gw = luagw.start { fake2 = f2, config = { monitoring = { flushing_period = 0.1 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/v1/points", seed_json(SEED[1], "v2"), JSON)))
    assert.equal(204, (gw:post("/write", "v2m,a=1 u=5u,f=1.5 1700000010000000000")))
    assert.is_true(wait(function() return #f2:lines() == 2 end, 10))
    local lines = f2:lines()
    table.sort(lines)
    -- tags sorted by key; fields in the order they came
    assert.matches('^requests,route=GET:/version,service=luna%-sender,status_code=200,via=v2 ', lines[1])
    assert.matches(' 1700000000123456000$', lines[1])
    assert.matches('execution_time=0.0123[, ]', lines[1])
    assert.matches('request_id="4f1c%-01"[, ]', lines[1])
    -- 2.x has unsigned integers: they pass as they are
    assert.equal("v2m,a=1 u=5u,f=1.5 1700000010000000000", lines[2])
    local n = 0
    for _, r in ipairs(f2:requests()) do
      if r.method ~= "POST" then goto continue end
      n = n + 1
      assert.equal("/api/v2/write", r.path)
      assert.equal("luna", r.query.org)
      assert.equal("luna_monitoring", r.query.bucket)
      assert.equal("ns", r.query.precision)
      assert.equal("Token s3cret", r.authorization)
      assert.equal(204, r.status)
      ::continue::
    end
    assert.is_true(n >= 1)
  end)

  it("keeps retrying, not dropping, while the server refuses the token", function()
    local f2 = fake.start { org = "luna", bucket = "b", token = "right" }
    finally(function() f2:stop() end)
    local gw = luagw.start { fake2 = { port = f2.port, org = "luna", bucket = "b", token = "wrong" },
      config = { monitoring = { retry_max = 0.3, shutdown_timeout = 0.5 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "auth v=1i")))
    local function writes()
      local w = {}
      for _, r in ipairs(f2:requests()) do if r.path == "/api/v2/write" then w[#w + 1] = r end end
      return w
    end
    assert.is_true(wait(function() return #writes() >= 3 end, 10))
    for _, r in ipairs(writes()) do assert.equal(401, r.status) end
    assert.equal(0, #f2:lines())
    local _, body = gw:get("/health")
    assert.equal(1, cjson.decode(body).buffer.points)
    assert.matches("check monitoring settings", gw:log())
  end)
end)

describe("luagw command line", function()
  local proc = require("support.proc")
  local bin = os.getenv("LUAGW_BIN") or "gateway/luagw"

  it("--check-config exits 0 on the shipped config and 1 with file:line:column on a bad one", function()
    local code, out = proc.run { bin, "--check-config", "-c", "config/luagw.yaml" }
    assert.equal(0, code, out)
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "w"))
    f:write("listen:\n  port: 8080\n  prot: 1\n")
    f:close()
    local bcode, bout = proc.run { bin, "--check-config", "-c", path }
    assert.equal(1, bcode)
    assert.matches(path:gsub("%p", "%%%0") .. ":3:3: listen.prot: unknown key", bout)
  end)

  it("refuses to start on a bad config, naming the place", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "w"))
    f:write("monitoring:\n  batch_size: lots\n")
    f:close()
    local code, out = proc.run { bin, "-c", path }
    assert.equal(1, code)
    assert.matches(":2:15: monitoring.batch_size:", out)
  end)
end)
