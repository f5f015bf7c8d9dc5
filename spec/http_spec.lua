-- What gateway/http.c answers whatever a client sends: never an empty 500
-- because of the client's bytes (paths, query parameters, headers and
-- bodies that are not UTF-8 are echoed safely, with the 4xx they deserve),
-- and POST /v1/debug/transform bounded in what it takes and what it keeps.
-- The real binary, raw requests over TCP (the bytes exactly as written).
local cjson = require("cjson")
local socket = require("socket")
local luagw = require("support.luagw")

local TOKEN = "answers-token"
local AUTH = "Authorization: Bearer " .. TOKEN .. "\r\n"

-- Send raw request bytes; status, headers (lower-case keys) and body.
local function raw(gw, text)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", gw.port))
  assert(c:send(text))
  local status = tonumber((c:receive("*l") or ""):match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  for line in function() return c:receive("*l") end do
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  local n = tonumber(headers["content-length"] or 0)
  local body = n > 0 and c:receive(n) or ""
  c:close()
  return status, headers, body
end

local function request(method, path, headers, body)
  body = body or ""
  return ("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n%s"):format(method, path,
    headers or "", #body, body)
end

-- The JSON error of an answer; fails unless it is JSON with an "error".
local function json_error(status, headers, body)
  assert.is_truthy((headers["content-type"] or ""):match("^application/json"), tostring(status) .. " " .. body)
  local ok, t = pcall(cjson.decode, body)
  assert.is_true(ok, "not JSON: " .. body)
  assert.is_string(t.error, body)
  return t
end

local function start()
  return luagw.start { config = { listen = { tokens = { TOKEN } }, log = { level = "error" },
                                  monitoring = { shutdown_timeout = 0 } } }
end

local function rss_mib(pid)
  local f = assert(io.open("/proc/" .. pid .. "/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

describe("answers to bytes that are not UTF-8", function()
  local gw
  lazy_setup(function() gw = start() end)
  lazy_teardown(function() if gw then gw:destroy() end end)

  it("a path: 404 naming it, escaped", function()
    for _, path in ipairs { "/x%ff", "/x\xff", "/write%ff" } do
      local st, h, body = raw(gw, request("GET", path))
      assert.equal(404, st, path)
      assert.equal("path: /" .. (path:match("^/(%a+)")) .. "\\xff not found", json_error(st, h, body).error)
    end
    local st, h, body = raw(gw, request("PUT", "/write%ff"))
    assert.equal(404, st)
    json_error(st, h, body)
  end)

  it("a long path of multi-byte characters: 404, cut between two characters", function()
    local st, h, body = raw(gw, request("GET", "/" .. ("%C3%A9"):rep(150)))
    assert.equal(404, st)
    local msg = json_error(st, h, body).error
    local k = select(2, msg:gsub("é", ""))
    assert.is_true(k >= 50 and k < 150, msg)
    assert.equal("path: /" .. ("é"):rep(k) .. "... not found", msg)
  end)

  it("a method not allowed: 405 with Allow, the method echoed safely", function()
    local st, h, body = raw(gw, request("DELETE", "/ping"))
    assert.equal(405, st)
    assert.equal("GET, HEAD", h.allow)
    assert.equal("method DELETE not allowed on /ping (allowed: GET, HEAD)", json_error(st, h, body).error)
  end)

  it("?precision=: 400 on both write endpoints", function()
    for _, path in ipairs { "/write?precision=%ff", "/api/v2/write?precision=%ff",
                            "/write?precision=" .. ("%C3%A9"):rep(40) } do
      local st, h, body = raw(gw, request("POST", path, AUTH, "m v=1"))
      assert.equal(400, st, path)
      assert.matches("^precision: unknown value", json_error(st, h, body).error)
    end
    local _, h, body = raw(gw, request("POST", "/api/v2/write?precision=%ff", AUTH, "m v=1"))
    assert.equal("invalid", json_error(400, h, body).code) -- what 2.x clients read
  end)

  it("Content-Type and Content-Encoding: 415", function()
    local st, h, body = raw(gw, request("POST", "/v1/points", AUTH .. "Content-Type: text/\xff\r\n", "{}"))
    assert.equal(415, st)
    assert.equal("Content-Type: text/\\xff is not supported here, send application/json", json_error(st, h, body).error)
    st, h, body = raw(gw, request("POST", "/write", AUTH .. "Content-Encoding: g\xffzip\r\n", "m v=1"))
    assert.equal(415, st)
    assert.equal("Content-Encoding: g\\xffzip is not supported (use gzip)", json_error(st, h, body).error)
  end)

  it("a rejected point quoting bytes that are not UTF-8: 400 that says why", function()
    for body, why in pairs {
      ["m v=1 12\xff"] = 'invalid timestamp "12\\xff"',
      ["m v=\xff"] = 'invalid value "\\xff"',
      ["m,t\xff=1,t\xff=2 v=1"] = 'duplicate tag "t\\xff"',
    } do
      local st, h, resp = raw(gw, request("POST", "/write", AUTH, body))
      assert.equal(400, st)
      assert.matches(why, json_error(st, h, resp).error, 1, true)
    end
    local st, h, resp = raw(gw, request("POST", "/write", AUTH, "ok v=1\nm v=1 12\xff"))
    assert.equal(400, st)
    local t = json_error(st, h, resp)
    assert.equal(1, t.accepted)
    assert.matches("^partial write: line 2: ", t.error)
  end)

  it("a series name that is not UTF-8 leaves /metrics readable", function()
    -- line protocol refuses such a series (InfluxDB 1.x cannot open its
    -- shard after a restart); a script may still make one, which the
    -- encoder refuses, and /metrics counts
    local st = raw(gw, request("POST", "/write", AUTH, "bytes\xff\xc3\xa9 v=1"))
    assert.equal(400, st)
    local dir = require("support.proc").tmpdir("luagw-scripts")
    local f = assert(io.open(dir .. "/renamed.lua", "w"))
    f:write([[return function(p) p.series = "bytes\255\195\169"; return p end]])
    f:close()
    local sgw = luagw.start { config = { scripts = { dir = dir }, monitoring = { shutdown_timeout = 0 } } }
    finally(function() sgw:destroy() end)
    st = raw(sgw, request("POST", "/write", "", "renamed v=1"))
    assert.equal(400, st)
    local _, _, body = raw(sgw, request("GET", "/metrics"))
    assert.is_truthy(body:find('luagw_series_points_received_total{series="bytes\\\\xffé"} 1', 1, true))
    assert.is_nil(body:find("\xff", 1, true))
  end)
end)

describe("answers that say what to do", function()
  local gw, gw2
  lazy_setup(function()
    gw = start()
    gw2 = luagw.start { config = { monitoring = { version = 2, host = "::1", port = 8099, use_ssl = true,
      organization = "luna-org", bucket = "b", token = "t", shutdown_timeout = 0 } } }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if gw2 then gw2:destroy() end
  end)

  it("Flux's query path: 404 naming the InfluxDB to send Flux to, whatever the method", function()
    local st, h, body = raw(gw, request("GET", "/api/v2/query?org=o"))
    assert.equal(404, st)
    assert.equal('path: /api/v2/query: luagw passes InfluxQL queries through (GET or POST /query), not Flux; ' ..
      ('send Flux to InfluxDB at http://127.0.0.1:%d (database "luna_monitoring")'):format(gw.config.monitoring.port),
      json_error(st, h, body).error)
    st, h, body = raw(gw2, request("POST", "/api/v2/query?org=o", "", '{"query":"from(bucket:\\"b\\")"}'))
    assert.equal(404, st)
    local t = json_error(st, h, body)
    assert.equal('path: /api/v2/query: luagw passes InfluxQL queries through (GET or POST /query), not Flux; ' ..
      'send Flux to InfluxDB at https://[::1]:8099 (organization "luna-org", bucket "b")', t.error)
    assert.same({ "not found", t.error }, { t.code, t.message }) -- what 2.x clients read
    st = raw(gw, request("PUT", "/query", "", "q=SHOW%20DATABASES"))
    assert.equal(405, st) -- /query itself is passed through: spec/query_spec.lua
    st = raw(gw, request("GET", "/queryx"))
    assert.equal(404, st)
  end)

  it("a gzip body without Content-Encoding: 415 saying to send it", function()
    local function gzip(times)
      local od = io.popen("printf 'm v=1\\n'" .. (" | gzip"):rep(times) .. " | od -An -v -tu1"):read("*a")
      local bytes = {}
      for n in od:gmatch("%d+") do bytes[#bytes + 1] = string.char(tonumber(n)) end
      return table.concat(bytes)
    end
    local gz = gzip(1)
    for _, path in ipairs { "/write", "/api/v2/write", "/v1/points" } do
      local st, h, body = raw(gw, request("POST", path, AUTH, gz))
      assert.equal(415, st, path)
      assert.equal("body looks gzip-compressed: send Content-Encoding: gzip with it (and compress it once)",
        json_error(st, h, body).error)
    end
    local st = raw(gw, request("POST", "/write", AUTH .. "Content-Encoding: gzip\r\n", gz))
    assert.equal(204, st)
    -- compressed twice
    st = raw(gw, request("POST", "/write", AUTH .. "Content-Encoding: gzip\r\n", gzip(2)))
    assert.equal(415, st)
  end)

  it("JSON posted to /write and line protocol to /v1/points: 400 saying where to post it, then why", function()
    local st, h, body = raw(gw, request("POST", "/write", AUTH, '{"series":"m","time":1700001600}'))
    assert.equal(400, st)
    local t = json_error(st, h, body)
    assert.equal('body looks like JSON: POST it to /v1/points with Content-Type: application/json; as line ' ..
      'protocol, line 1: column 15: tag ""time":1700001600}": missing "="', t.error)
    assert.same({ 0, 1 }, { t.accepted, t.rejected })
    st, h, body = raw(gw, request("POST", "/v1/points", AUTH .. "Content-Type: application/json\r\n",
      "requests,a=b v=1 1\n"))
    assert.equal(400, st)
    assert.equal("body looks like line protocol: POST it to /write or /api/v2/write; as JSON, invalid JSON at " ..
      "line 1 column 1: expected a value (an object, array, string, number, true, false or null), near " ..
      "'requests,a=b v=1 1\\x0a'", json_error(st, h, body).error)
    -- line protocol that starts like JSON is stored, and its errors are its own
    st = raw(gw, request("POST", "/write", AUTH, "[m] v=1\n{m} v=2\n"))
    assert.equal(204, st)
    st, h, body = raw(gw, request("POST", "/write", AUTH, "[m] v=1\n[m v\n"))
    assert.equal(400, st)
    assert.matches("^partial write: line 2: ", json_error(st, h, body).error)
  end)
end)

describe("POST /v1/debug/transform", function()
  local gw
  lazy_setup(function() gw = start() end)
  lazy_teardown(function() if gw then gw:destroy() end end)

  local function transform(body, headers)
    return raw(gw, request("POST", "/v1/debug/transform", AUTH .. (headers or ""), body))
  end

  it("takes up to 10,000 points; beyond, 413 with a JSON error before any work", function()
    local st, h, body = transform(("m v=1\n"):rep(10000) .. "\n# a comment\n\n")
    assert.equal(200, st)
    assert.equal(10000, #cjson.decode(body).points)
    st, h, body = transform(("m v=1\n"):rep(10001))
    assert.equal(413, st)
    assert.equal("body: more than 10000 points, the most /v1/debug/transform takes", json_error(st, h, body).error)
    -- a million points (the issue's 185 MB answer) is refused the same way
    st = transform(("m v=1\n"):rep(1000000))
    assert.equal(413, st)
    -- JSON: the elements of the array are counted, not what is inside them
    local one = '{"series":"m","tags":{"a":"[,{"},"fields":{"v":1,"w":2}}'
    local list = {}
    for i = 1, 10000 do list[i] = one end
    st, _, body = transform("[" .. table.concat(list, ",") .. "]", "Content-Type: application/json\r\n")
    assert.equal(200, st)
    assert.equal(10000, #cjson.decode(body).points)
    list[10001] = one
    st = transform("[" .. table.concat(list, ",") .. "]", "Content-Type: application/json\r\n")
    assert.equal(413, st)
  end)

  it("gives its memory back after large answers", function()
    gw:destroy()
    gw = start()
    local body = ('m,host=server01,region=eu value=0.64,count=12i,msg="hello" 1700000000000000000\n'):rep(10000)
    assert.equal(200, (transform("m v=1\n")))
    local before = rss_mib(gw.pid)
    for _ = 1, 3 do assert.equal(200, (transform(body))) end
    local after = rss_mib(gw.pid)
    -- Each answer is 3.4 MB; jansson's document of it and the worker's
    -- buffers took 60 MB more that stayed. (The sanitizers' allocators keep
    -- freed memory back: the bound is for the plain build.)
    if not os.getenv("LUAGW_CHILD_ASAN_OPTIONS") and not os.getenv("TSAN_OPTIONS") then
      assert.is_true(after - before < 40, ("RSS %.0f MiB -> %.0f MiB"):format(before, after))
    end
    assert.equal(204, (raw(gw, request("POST", "/write", AUTH, "m v=1"))))
  end)
end)
