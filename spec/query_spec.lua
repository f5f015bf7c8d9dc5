-- GET and POST /query passed through to InfluxDB (gateway/query.c,
-- gateway/target.c): against a real influxd, the answer is InfluxDB's own,
-- byte for byte, also when it is larger than the ring it streams through
-- and when InfluxDB sends it in chunks; luagw's token stays in luagw and the
-- output's credentials go to InfluxDB; a client that goes away mid-answer
-- costs nothing; InfluxDB down is a 502 naming it. Real clients: Debian's
-- influx CLI (influxdb-client) and npm's influx (node-influx), each writing
-- and reading back through luagw.
local cjson = require("cjson")
local http = require("support.http")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local npm = require("support.npm")
local proc = require("support.proc")
local socket = require("socket")
local wait = require("support.wait")

local TOKEN = "query-token-1"

local function get(base, path, headers)
  return http.get(base .. path, headers, 20)
end

-- The same query straight to influxd and through luagw: both answers.
local function both(db, gw, path, headers)
  local st1, b1 = get(db.url, path)
  local st2, b2, h2 = get(gw.url, path, headers)
  return st1, b1, st2, b2, h2
end

describe("/query through luagw", function()
  local db, gw, AUTH

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    db:create_database("other")
    gw = luagw.start { influxd = db, config = { listen = { tokens = { TOKEN } } } }
    AUTH = { Authorization = "Bearer " .. TOKEN }
    local lines = {}
    for i = 1, 3000 do
      lines[i] = ("big,host=h%d,region=eu-west-%d value=%d.5,text=\"row %d of the large answer\" 1700000000%09d")
        :format(i % 7, i % 3, i, i, i)
    end
    assert.equal(204, (db:write(table.concat(lines, "\n"), "luagw")))
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
  end)

  it("answers SHOW DATABASES and a SELECT exactly as InfluxDB does, with its headers", function()
    local st1, b1, st2, b2, h2 = both(db, gw, "/query?q=SHOW+DATABASES", AUTH)
    assert.equal(200, st1)
    assert.equal(st1, st2)
    assert.equal(b1, b2)
    assert.matches('"luagw"', b2)
    assert.matches("^application/json", h2["content-type"])
    assert.is_truthy(h2["request-id"])
    st1, b1, st2, b2 = both(db, gw, "/query?db=luagw&epoch=ns&q=" .. http.urlencode("SELECT * FROM big LIMIT 5"), AUTH)
    assert.equal(200, st2)
    assert.equal(b1, b2)
  end)

  it("streams an answer far larger than its ring, and InfluxDB's chunks, unchanged", function()
    local q = http.urlencode("SELECT * FROM big")
    local st1, b1, st2, b2 = both(db, gw, "/query?db=luagw&q=" .. q, AUTH)
    assert.equal(200, st2)
    assert.is_true(#b1 > 4 * 64 * 1024, #b1 .. " bytes only")
    assert.equal(#b1, #b2)
    assert.equal(b1, b2)
    st1, b1, st2, b2 = both(db, gw, "/query?db=luagw&chunked=true&chunk_size=500&q=" .. q, AUTH)
    assert.equal(200, st2)
    assert.equal(b1, b2)
    local n = 0
    for line in b2:gmatch("[^\n]+") do
      n = n + 1
      assert.is_table(cjson.decode(line).results)
    end
    assert.equal(6, n) -- 3000 rows in chunks of 500
  end)

  it("POST with a form body (as Grafana sends), and InfluxDB's errors as they are", function()
    local body = "db=luagw&q=" .. http.urlencode("SELECT count(value) FROM big")
    local st, b = http.post(gw.url .. "/query", body,
      { Authorization = AUTH.Authorization, ["Content-Type"] = "application/x-www-form-urlencoded" }, 20)
    assert.equal(200, st, b)
    assert.equal(3000, cjson.decode(b).results[1].series[1].values[1][2])
    st, b = http.post(gw.url .. "/query", http.gzip(body), { Authorization = AUTH.Authorization,
      ["Content-Type"] = "application/x-www-form-urlencoded", ["Content-Encoding"] = "gzip" }, 20)
    assert.equal(415, st)
    assert.matches("Content-Encoding: gzip is not taken on /query", cjson.decode(b).error, 1, true)
    local st1, b1, st2, b2, h2 = both(db, gw, "/query?db=luagw&q=SELEC+nonsense", AUTH)
    assert.equal(400, st1)
    assert.equal(400, st2)
    assert.equal(b1, b2)
    assert.matches("error parsing query", h2["x-influxdb-error"], 1, true)
    st1, b1, st2, b2 = both(db, gw, "/query?db=nosuchdb&q=" .. http.urlencode("SELECT * FROM big"), AUTH)
    assert.equal(st1, st2)
    assert.equal(b1, b2)
    assert.matches("database not found", b2, 1, true)
  end)

  it("needs a token like writes: Bearer, Basic, ?u=&p=; 401 without", function()
    local q = "/query?q=SHOW+DATABASES"
    local st, b = get(gw.url, q)
    assert.equal(401, st)
    assert.matches("unauthorized", cjson.decode(b).error)
    assert.equal(401, (get(gw.url, q, { Authorization = "Bearer nope" })))
    assert.equal(401, (get(gw.url, q .. "&u=x&p=nope")))
    assert.equal(200, (get(gw.url, q .. "&u=x&p=" .. TOKEN)))
    assert.equal(200, (get(gw.url, q, { Authorization = "Basic " .. require("mime").b64("x:" .. TOKEN) })))
    st = http.post(gw.url .. "/query", "q=SHOW+DATABASES", { ["Content-Type"] = "application/x-www-form-urlencoded" })
    assert.equal(401, st)
  end)

  it("answers the rest of the gateway while a client that went away mid-answer is cut off", function()
    for _ = 1, 3 do
      local s = socket.tcp()
      s:settimeout(5)
      assert(s:connect("127.0.0.1", gw.port))
      s:send("GET /query?db=luagw&q=" .. http.urlencode("SELECT * FROM big") .. " HTTP/1.1\r\nHost: x\r\n" ..
        "Authorization: Bearer " .. TOKEN .. "\r\n\r\n")
      assert.matches("^HTTP/1.1 200", s:receive("*l"))
      s:close()
    end
    assert.equal(204, (get(gw.url, "/ping")))
    local st, b = get(gw.url, "/query?q=SHOW+DATABASES", AUTH)
    assert.equal(200, st, b)
    assert.is_true(proc.alive(gw.pid))
  end)
end)

describe("/query with InfluxDB's authentication on", function()
  local db, gw

  lazy_setup(function()
    db = influxd.start { auth_enabled = true }
    local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    -- With auth on, the first user may be created without credentials.
    assert.equal(200, (http.post(db.url .. "/query", "q=" ..
      http.urlencode("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES"), form)))
    assert.equal(200, (http.post(db.url .. "/query?u=admin&p=secret", "q=" ..
      http.urlencode('CREATE DATABASE "luagw"'), form)))
    gw = luagw.start { influxd = db, config = { listen = { tokens = { TOKEN } },
      monitoring = { user = "admin", password = "secret" } } }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
  end)

  it("sends the output's credentials, never the client's token", function()
    -- influxd takes u and p before Basic auth: were luagw's token passed
    -- on as p, it would answer 401.
    local st, b = get(gw.url, "/query?q=SHOW+DATABASES&u=reader&p=" .. TOKEN)
    assert.equal(200, st, b)
    assert.matches('"luagw"', b)
    -- The token in the URL; u and p in the form body are dropped too.
    st, b = http.post(gw.url .. "/query?u=reader&p=" .. TOKEN, "u=reader&p=not-influxs&q=SHOW+DATABASES",
      { ["Content-Type"] = "application/x-www-form-urlencoded" }, 20)
    assert.equal(200, st, b)
    assert.matches('"luagw"', b)
    assert.equal(401, (get(db.url, "/query?q=SHOW+DATABASES&u=reader&p=" .. TOKEN))) -- as said above
  end)
end)

describe("/query with InfluxDB down", function()
  it("answers 502 naming the InfluxDB that did not answer", function()
    local db = influxd.start {}
    local gw = luagw.start { influxd = db }
    finally(function() gw:destroy(); db:destroy() end)
    db:stop()
    local st, b = get(gw.url, "/query?q=SHOW+DATABASES")
    assert.equal(502, st)
    assert.matches(("query: InfluxDB at http://127.0.0.1:%d did not answer"):format(db.port), cjson.decode(b).error,
      1, true)
  end)
end)

describe("/query against an InfluxDB that never answers", function()
  -- Debian's influxd cannot be made to hang: a socket that takes
  -- connections and never answers stands in for it.
  it("runs 32 queries at most, answers 503 beyond, and 502 when the connections drop", function()
    local hang = assert(socket.tcp())
    assert(hang:bind("127.0.0.1", 0))
    assert(hang:listen(128))
    local _, port = hang:getsockname()
    local gw = luagw.start { config = { monitoring = { host = "127.0.0.1", port = port, database = "luagw" } } }
    local clients, held = {}, {}
    -- Take the gateway's connections to the stand-in until it holds n.
    local function hold(n)
      hang:settimeout(0.1)
      return wait.wait_until(function()
        local c = hang:accept()
        if c then held[#held + 1] = c end
        return #held >= n
      end, 10, 0)
    end
    -- A query on a connection of its own: the status, or nil when none
    -- came within wait seconds (the connection is then closed).
    local function try(wait_s)
      local c = socket.tcp()
      c:settimeout(wait_s)
      assert(c:connect("127.0.0.1", gw.port))
      c:send("GET /query?q=SHOW+DATABASES HTTP/1.1\r\nHost: x\r\n\r\n")
      local line = c:receive("*l")
      c:close()
      return line and tonumber(line:match("^HTTP/1%.1 (%d+)"))
    end
    finally(function()
      for _, c in ipairs(clients) do c:close() end
      for _, c in ipairs(held) do c:close() end
      hang:close()
      gw:destroy()
    end)
    for i = 1, 32 do
      local c = socket.tcp()
      c:settimeout(10)
      assert(c:connect("127.0.0.1", gw.port))
      c:send("GET /query?q=SHOW+DATABASES&n=" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      clients[i] = c
    end
    assert.is_truthy(hold(32), "the 32 queries did not reach InfluxDB")
    assert.equal(503, try(5))
    local st, b = get(gw.url, "/query?q=SHOW+DATABASES")
    assert.equal(503, st)
    assert.matches("too many queries in progress (32)", cjson.decode(b).error, 1, true)
    assert.equal(204, (get(gw.url, "/ping")))
    -- A client that goes away while InfluxDB has not answered frees its
    -- place: a new query waits (no 503) instead.
    table.remove(clients, 1):close()
    assert.is_truthy(wait.wait_until(function() return try(1) == nil end, 10, 0.1),
      "the place of a client gone was not freed")
    -- The stand-in goes away: every waiting query ends with a 502.
    for _, c in ipairs(held) do c:close() end
    hang:close()
    for _, c in ipairs(clients) do
      local line = c:receive("*l")
      assert.equal("HTTP/1.1 502 Bad Gateway", line)
    end
  end)
end)

describe("InfluxDB clients reading through luagw", function()
  local db, gw, dir

  lazy_setup(function()
    dir = proc.tmpdir("luagw-query-clients")
    db = influxd.start {}
    db:create_database("luagw")
    gw = luagw.start { influxd = db }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
    proc.rmdir(dir)
  end)

  it("Debian's influx CLI: SHOW DATABASES, an INSERT and a SELECT of it", function()
    local function influx(args)
      local rc, out = npm.sh("influx -host 127.0.0.1 -port " .. gw.port .. " " .. args)
      assert.equal(0, rc, out)
      return out
    end
    assert.matches("luagw", influx("-execute 'SHOW DATABASES'"))
    influx("-database luagw -execute 'INSERT cli_points,host=a value=42i 1700000000000000000'")
    local rows = wait.wait_until(function()
      local out = influx("-database luagw -format json -precision rfc3339 -execute 'SELECT * FROM cli_points'")
      local t = cjson.decode(out)
      return t.results[1].series and t.results[1].series[1]
    end, 10, 0.2)
    assert.is_truthy(rows, "cli_points not read back")
    assert.same({ "time", "host", "value" }, rows.columns)
    assert.same({ "2023-11-14T22:13:20Z", "a", 42 }, rows.values[1])
  end)

  it("npm's influx (node-influx): writePoints, then getDatabaseNames and query", function()
    local mod, why = npm.ensure("influx", "influx@5")
    if not mod then
      pending(why)
      return
    end
    proc.write_file(dir .. "/read.js", ([[
const Influx = require(%q);
const influx = new Influx.InfluxDB({host: "127.0.0.1", port: %d, database: "luagw"});
async function main() {
  await influx.writePoints([
    {measurement: "node_points", tags: {host: "n1"}, fields: {value: 7}, timestamp: new Date(1700000001000)},
    {measurement: "node_points", tags: {host: "n2"}, fields: {value: 8}, timestamp: new Date(1700000002000)},
  ]);
  console.log("databases:", JSON.stringify(await influx.getDatabaseNames()));
  for (let i = 0; i < 50; i++) {
    const rows = await influx.query("SELECT * FROM node_points ORDER BY time");
    if (rows.length === 2) {
      console.log("rows:", JSON.stringify(rows.map((r) => [r.time.toISOString(), r.host, r.value])));
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("node_points not read back");
}
main().catch((e) => { console.error(e); process.exit(1); });
]]):format(mod, gw.port))
    local rc, out = npm.sh("node " .. proc.quote(dir .. "/read.js"))
    assert.equal(0, rc, out)
    assert.matches('databases: %[[^\n]*"luagw"', out)
    assert.matches('rows: [["2023-11-14T22:13:21.000Z","n1",7],["2023-11-14T22:13:22.000Z","n2",8]]', out, 1, true)
  end)
end)
