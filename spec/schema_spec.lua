-- gateway/schema.c: series declarations (config/series.yaml, docs/series.md),
-- checked after the scripts and before encoding, end to end against influxd.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")
local cjson = require("cjson")

local JSON = { ["Content-Type"] = "application/json" }
local S = influxd.str
local SERIES_YAML = luagw.ROOT .. "/config/series.yaml"
local BIN = os.getenv("LUAGW_BIN") or (luagw.ROOT .. "/gateway/luagw")

local function run(args)
  local p = io.popen(table.concat(args, " ") .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

describe("series declarations", function()
  local db, gw
  local function rows(q) return db:rows(q, "luagw") end

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    gw = luagw.start { influxd = db, config = {
      service = "luna-sender",
      include = SERIES_YAML,
    } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
  end)

  it("loads the five shipped declarations", function()
    assert.matches("series declarations loaded.-series=5", gw:log())
  end)

  it("stores a field-less subscription_error with the default field count=1i and service", function()
    local st, body = gw:post("/v1/points",
      '{"series":"subscription_error","time":1700000100,"tags":{"error_code":"E1"}}', JSON)
    assert.equal(204, st, body)
    local q = "SELECT * FROM subscription_error WHERE error_code = 'E1'"
    assert.is_true(wait(function() return #rows(q) == 1 end, 10), "not stored")
    local r = rows(q)[1]
    assert.equal("1", S(r.count))
    assert.equal("luna-sender", r.service)
    assert.same({ count = "integer" }, db:field_types("subscription_error", "luagw"))
  end)

  it("keeps what the point has over a default", function()
    assert.equal(204, (gw:post("/write", 'subscription_error,error_code=E2,service=other count=7i 1700000101000000000')))
    local q = "SELECT * FROM subscription_error WHERE error_code = 'E2'"
    assert.is_true(wait(function() return #rows(q) == 1 end, 10))
    assert.equal("7", S(rows(q)[1].count))
    assert.equal("other", rows(q)[1].service)
  end)

  it("rejects a point missing a required key with a 400 naming series, key and rule", function()
    local st, body = gw:post("/write",
      'requests,route=GET:/v request_id="a",execution_time=0.1 1700000102000000000\n' ..
      'requests,route=GET:/v,status_code=200 request_id="b",execution_time=0.1 1700000102000000001\n')
    assert.equal(400, st)
    local doc = cjson.decode(body)
    assert.equal(1, doc.accepted)
    assert.equal(1, doc.rejected)
    assert.equal(1, doc.line)
    assert.matches('series "requests": tag "status_code": required but missing', doc.error, 1, true)
    local st2, body2 = gw:post("/v1/points",
      '{"series":"ws_requests","tags":{},"fields":{"transport_time":0.1}}', JSON)
    assert.equal(400, st2)
    assert.matches('series "ws_requests": field "request_id": required but missing', cjson.decode(body2).error, 1, true)
  end)

  it("rejects a field of the wrong type and stores an integer as a declared float", function()
    local st, body = gw:post("/v1/points",
      '{"series":"requests","tags":{"status_code":500},"fields":{"request_id":"c","execution_time":"slow"}}', JSON)
    assert.equal(400, st)
    assert.matches('series "requests": field "execution_time": must be a float, got a string',
      cjson.decode(body).error, 1, true)
    st, body = gw:post("/v1/points", '{"series":"requests","time":1700000103,"tags":{"status_code":201},' ..
      '"fields":{"request_id":"d","execution_time":2}}', JSON)
    assert.equal(204, st, body)
    local q = "SELECT * FROM requests WHERE status_code = '201'"
    assert.is_true(wait(function() return #rows(q) == 1 end, 10))
    assert.equal("luna-sender", rows(q)[1].service)
    assert.equal("float", db:field_types("requests", "luagw").execution_time)
  end)

  it("lets undeclared series pass as they are (and still needs a field)", function()
    assert.equal(204, (gw:post("/write", "free_form,a=b x=1i 1700000104000000000")))
    local st, body = gw:post("/v1/points", '{"series":"heartbeat","tags":{"a":"b"}}', JSON)
    assert.equal(400, st)
    assert.matches("at least one field", cjson.decode(body).error)
  end)
end)

describe("series declarations in the config", function()
  local dir
  before_each(function() dir = proc.tmpdir("luagw-schema") end)
  after_each(function() proc.rmdir(dir) end)

  local function check(text, extra)
    proc.write_file(dir .. "/luagw.yaml", text)
    if extra then proc.write_file(dir .. "/extra.yaml", extra) end
    return run { BIN, "--check-config", "-c", dir .. "/luagw.yaml" }
  end

  it("the shipped config/luagw.yaml includes series.yaml and checks ok", function()
    local rc, out = run { BIN, "--check-config", "-c", luagw.ROOT .. "/config/luagw.yaml" }
    assert.equal(0, rc, out)
  end)

  it("reports a bad declaration with the included file, line, column and key", function()
    local rc, out = check("include: extra.yaml\n", "series:\n  requests:\n    fields:\n      x: {type: flot}\n")
    assert.equal(1, rc)
    assert.matches("extra.yaml:4:17: series.requests.fields.x.type: must be one of float", out, 1, true)
    rc, out = check("series:\n  r:\n    tags:\n      t: {requird: true}\n")
    assert.equal(1, rc)
    assert.matches("luagw.yaml:4:20: series.r.tags.t.requird: unknown key", out, 1, true)
    rc, out = check("series:\n  r:\n    fields:\n      n: {type: int, default: 1.5}\n")
    assert.equal(1, rc)
    assert.matches("series.r.fields.n.default: not a valid int value", out, 1, true)
  end)

  it("refuses a missing include and an include loop", function()
    local rc, out = check("include: nope.yaml\n")
    assert.equal(1, rc)
    assert.matches("nope.yaml: cannot open", out, 1, true)
    rc, out = check("include: luagw.yaml\n")
    assert.equal(1, rc)
    assert.matches("nested more than 8 levels", out, 1, true)
  end)
end)

describe("many declared series in one body", function()
  -- schema.c remembers the last 8 declarations a worker found: 12 series
  -- interleaved, each with its own rule, must each meet their own.
  local gw
  lazy_setup(function()
    local series = {}
    for i = 1, 12 do
      series["s" .. i] = { tags = { ["t" .. i] = { required = true } }, fields = { ["v" .. i] = { type = "int" } } }
    end
    gw = luagw.start { config = { series = series, monitoring = { shutdown_timeout = 0 } } }
  end)
  lazy_teardown(function() if gw then gw:destroy() end end)

  it("checks each point against its own series' declaration", function()
    local lines = {}
    for round = 1, 2 do
      for i = 1, 12 do
        -- round 1: as declared; round 2: the tag of the next series instead
        local tag = round == 1 and ("t" .. i) or ("t" .. (i % 12 + 1))
        lines[#lines + 1] = ("s%d,%s=x v%d=%di %d"):format(i, tag, i, i, 1700000600000000000 + round * 100 + i)
      end
    end
    local st, body = gw:post("/write", table.concat(lines, "\n"))
    assert.equal(400, st)
    local doc = cjson.decode(body)
    assert.same({ 12, 12, 13 }, { doc.accepted, doc.rejected, doc.line })
    assert.matches('series "s1": tag "t1": required but missing', doc.error, 1, true)
    st, body = gw:post("/write", "s7,t7=x v7=1.5 1700000600000000999")
    assert.equal(400, st)
    assert.matches('series "s7": field "v7": must be an int, got a float', cjson.decode(body).error, 1, true)
  end)
end)
