-- Real InfluxDB client libraries, with their defaults (only the URL and the
-- credentials set), writing through luagw into a real influxd:
--   Debian's python3-influxdb (1.x API: InfluxDBClient.write_points, HTTP
--   Basic auth carrying the ingest token as password);
--   @influxdata/influxdb-client from npm (2.x API: /api/v2/write with
--   "Authorization: Token T"), installed at test time (support/npm.lua).
--   Pending only when the npm registry cannot be reached.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local npm = require("support.npm")
local proc = require("support.proc")
local wait = require("support.wait")

local S = influxd.str
local TOKEN = "client-token-1"
local PYTHON = "/usr/bin/python3" -- Debian's, which has python3-influxdb
local sh = npm.sh -- (no sanitizer runtime preloaded into python, node... under make test-asan)

describe("real InfluxDB clients through luagw", function()
  local db = influxd.for_block { database = "luagw" }
  local gw, dir

  lazy_setup(function()
    dir = proc.tmpdir("luagw-clients")
    gw = luagw.start { influxd = db, config = {
      listen = { tokens = { TOKEN } },
      service = "luna-sender",
      include = luagw.ROOT .. "/config/series.yaml",
    } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
    proc.rmdir(dir)
  end)

  it("python3-influxdb (1.x API) writes points that influxd stores exactly", function()
    proc.write_file(dir .. "/write.py", ([[
from influxdb import InfluxDBClient
c = InfluxDBClient(host="127.0.0.1", port=%d, username="svc", password="%s", database="luagw")
ok = c.write_points([
    {"measurement": "requests", "time": "2023-11-14T22:13:20.123456Z",
     "tags": {"route": "GET:/version", "status_code": "200"},
     "fields": {"request_id": "py-1", "execution_time": 0.0125}},
    {"measurement": "subscription_error", "time": 1700000001000000000,
     "tags": {"error_code": "E7"}, "fields": {"count": 3}},
])
print("ok" if ok else "failed")
try:
    InfluxDBClient(host="127.0.0.1", port=%d, username="svc", password="wrong", database="luagw").write_points(
        [{"measurement": "requests", "fields": {"request_id": "x", "execution_time": 1.0},
          "tags": {"status_code": "200"}}])
    print("wrong password accepted")
except Exception as e:
    print("refused:", getattr(e, "code", e))
]]):format(gw.port, TOKEN, gw.port))
    local rc, out = sh(PYTHON .. " " .. dir .. "/write.py")
    assert.equal(0, rc, out)
    assert.matches("^ok\n", out)
    assert.matches("refused: 401", out, 1, true)
    local q = "SELECT * FROM requests WHERE request_id = 'py-1'"
    assert.is_true(wait(function() return #db:rows(q, "luagw") == 1 end, 10), "requests not stored")
    local r = db:rows(q, "luagw")[1]
    assert.equal("1700000000123456000", S(r.time))
    assert.equal("GET:/version", r.route)
    assert.equal("200", r.status_code)
    assert.equal("luna-sender", r.service) -- the declared default
    assert.equal(0.0125, r.execution_time)
    q = "SELECT * FROM subscription_error WHERE error_code = 'E7'"
    assert.is_true(wait(function() return #db:rows(q, "luagw") == 1 end, 10))
    assert.equal("3", S(db:rows(q, "luagw")[1].count))
    assert.equal("1700000001000000000", S(db:rows(q, "luagw")[1].time))
  end)

  it("@influxdata/influxdb-client (2.x API) writes points that influxd stores exactly", function()
    local mod, why = npm.ensure("@influxdata/influxdb-client", "@influxdata/influxdb-client@1")
    if not mod then
      pending(why)
      return
    end
    proc.write_file(dir .. "/write.js", ([[
const {InfluxDB, Point} = require(%q);
async function main() {
  const api = new InfluxDB({url: "http://127.0.0.1:%d", token: %q}).getWriteApi("luna", "luagw", "ns");
  api.writePoint(new Point("ws_requests").tag("account_id", "42")
    .floatField("transport_time", 0.25).stringField("request_id", "js-1").timestamp("1700000002000000007"));
  api.writePoint(new Point("redis_message").tag("chanel", "notify:42")
    .stringField("request_id", "js-2").timestamp("1700000003000000008"));
  await api.close();
  console.log("ok");
  const bad = new InfluxDB({url: "http://127.0.0.1:%d", token: "wrong"}).getWriteApi("luna", "luagw", "ns",
    {maxRetries: 0});
  bad.writePoint(new Point("ws_requests").floatField("transport_time", 1).stringField("request_id", "x"));
  try { await bad.close(); console.log("wrong token accepted"); }
  catch (e) { console.log("refused:", e.statusCode); }
}
main().catch((e) => { console.error(e); process.exit(1); });
]]):format(mod, gw.port, TOKEN, gw.port))
    local rc, out = sh("node " .. dir .. "/write.js")
    assert.equal(0, rc, out)
    assert.matches("^ok\n", out)
    assert.matches("refused: 401", out, 1, true)
    local q = "SELECT * FROM ws_requests WHERE request_id = 'js-1'"
    assert.is_true(wait(function() return #db:rows(q, "luagw") == 1 end, 10), "ws_requests not stored")
    local r = db:rows(q, "luagw")[1]
    assert.equal("1700000002000000007", S(r.time))
    assert.equal(0.25, r.transport_time)
    assert.equal("42", r.account_id)
    assert.equal("luna-sender", r.service)
    q = "SELECT * FROM redis_message WHERE request_id = 'js-2'"
    assert.is_true(wait(function() return #db:rows(q, "luagw") == 1 end, 10))
    assert.equal("notify:42", db:rows(q, "luagw")[1].chanel)
  end)
end)
