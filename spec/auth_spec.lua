-- listen.tokens (gateway/http.c): ingest needs a token in any of the ways
-- InfluxDB clients send credentials; 401 JSON otherwise; off when empty.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local http = require("support.http")
local mime = require("mime")
local wait = require("support.wait")
local cjson = require("cjson")

local T1, T2 = "tok-ABC-123", "second-token"

describe("ingest tokens", function()
  local db = influxd.for_block { database = "luagw" }
  local gw

  lazy_setup(function()
    gw = luagw.start { influxd = db, config = { listen = { tokens = { T1, T2 } } } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
  end)

  local n = 0
  local function line()
    n = n + 1
    return ("auth v=%di 1700000000%09d"):format(n, n)
  end

  it("refuses a request without a token with 401 JSON, on every ingest endpoint", function()
    for _, path in ipairs { "/write", "/api/v2/write", "/v1/points", "/v1/debug/transform" } do
      local st, body, h = gw:post(path, path == "/v1/points" and '{"series":"a","fields":{"v":1}}' or line(),
        path == "/v1/points" and { ["Content-Type"] = "application/json" } or nil)
      assert.equal(401, st, path)
      assert.matches("^application/json", h["content-type"])
      assert.matches("unauthorized", cjson.decode(body).error)
    end
    local _, body = gw:post("/api/v2/write", line())
    assert.equal("unauthorized", cjson.decode(body).code) -- what 2.x clients read
  end)

  it("refuses a wrong token, a prefix of a token and a token with extra bytes", function()
    for _, auth in ipairs { "Bearer wrong", "Bearer " .. T1:sub(1, -2), "Bearer " .. T1 .. "x", "Token ",
                            "Bearer", "Digest " .. T1, "Basic " .. mime.b64("user:nope"), "Basic !!!" } do
      assert.equal(401, (gw:post("/write", line(), { Authorization = auth })), auth)
    end
    assert.equal(401, (gw:post("/write?u=x&p=nope", line())))
    -- u/p query parameters count on /write only
    assert.equal(401, (gw:post("/api/v2/write?u=x&p=" .. T1, line())))
  end)

  it("accepts Bearer, Token, Basic (token as password) and ?p= on /write, any configured token", function()
    local before = n
    assert.equal(204, (gw:post("/write", line(), { Authorization = "Bearer " .. T1 })))
    assert.equal(204, (gw:post("/api/v2/write", line(), { Authorization = "Token " .. T2 })))
    assert.equal(204, (gw:post("/write", line(), { Authorization = "token " .. T1 })))
    assert.equal(204, (gw:post("/write", line(), { Authorization = "Basic " .. mime.b64("anyone:" .. T2) })))
    assert.equal(204, (gw:post("/write?db=x&u=anyone&p=" .. http.urlencode(T1), line())))
    assert.equal(204, (gw:post("/v1/points", '{"series":"auth","fields":{"v":99}}',
      { ["Content-Type"] = "application/json", Authorization = "Bearer " .. T1 })))
    local want = n - before + 1
    assert.is_true(wait(function() return db:count("auth", "luagw") == want end, 10), tostring(db:count("auth", "luagw")) .. " of " .. want)
  end)

  it("leaves /ping, /health and /metrics open", function()
    assert.equal(204, (gw:get("/ping")))
    assert.equal(200, (gw:get("/health")))
    assert.equal(200, (gw:get("/metrics")))
  end)

  it("is off without tokens", function()
    local open = luagw.start { influxd = db }
    finally(function() open:destroy() end)
    assert.equal(204, (open:post("/write", line())))
  end)

  it("refuses a token list that is not a list of non-empty strings", function()
    local g = luagw.start { raw_config = "listen:\n  tokens: [a, \"\"]\n", wait = false }
    finally(function() g:destroy() end)
    assert.equal(1, (g:wait_exit(5)))
    assert.matches("2:15: listen.tokens%[1%]: a token must not be empty", g:log())
  end)
end)
