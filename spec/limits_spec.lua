-- Limits that hold against hostile clients and bodies (docs/hardening.md):
-- the listen.max_* keys of gateway/config_table.c, enforced in
-- gateway/pipeline.c (bodies, points) and gateway/http*.c (connections,
-- headers, timeouts). The real binary, no InfluxDB behind it: accepted
-- points only wait in the buffer.
local cjson = require("cjson")
local socket = require("socket")
local http = require("support.http")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")

local function start(listen)
  -- shutdown_timeout 0: nothing is behind it, so do not try to flush at exit
  return luagw.start { config = { listen = listen, log = { level = "error" },
                                  monitoring = { shutdown_timeout = 0 } } }
end

local function err_of(body)
  local ok, t = pcall(cjson.decode, body or "")
  return ok and type(t) == "table" and t.error or tostring(body)
end

-- A raw TCP connection to the gateway.
local function connect(gw)
  local c = assert(socket.tcp())
  c:settimeout(2)
  assert(c:connect("127.0.0.1", gw.port))
  return c
end

-- True when the server has closed c (within timeout seconds).
local function closed_by_server(c, timeout)
  c:settimeout(timeout)
  local _, err, partial = c:receive("*a")
  return err == "closed" or (err == nil) or (partial ~= nil and err == "closed")
end

describe("limits on bodies", function()
  local gw
  lazy_setup(function()
    gw = start { max_points = 3, max_line_bytes = 1024, max_tags = 2, max_fields = 2,
                 max_key_bytes = 64, max_value_bytes = 64 }
  end)
  lazy_teardown(function() if gw then gw:destroy() end end)

  it("listen.max_points: a body with more points gets 413 and nothing of it is taken", function()
    assert.equal(204, (gw:post("/write", "m v=1\nm v=2\nm v=3\n")))
    local st, body = gw:post("/write", "m v=1\nm v=2\nm v=3\nm v=4\n")
    assert.equal(413, st)
    assert.matches("4 points, more than listen.max_points %(3%)", err_of(body))
    st, body = gw:post("/v1/points", cjson.encode {
      { series = "m", fields = { v = 1 } }, { series = "m", fields = { v = 2 } },
      { series = "m", fields = { v = 3 } }, { series = "m", fields = { v = 4 } } })
    assert.equal(413, st)
    assert.matches("listen.max_points", err_of(body))
    local _, h = gw:get("/health")
    assert.equal(3, cjson.decode(h).buffer.points)
  end)

  it("listen.max_line_bytes: a body with a longer line gets 413, naming the line", function()
    local long = "m s=\"" .. ("x"):rep(1100) .. "\""
    local st, body = gw:post("/write", "m v=1\n" .. long .. "\n")
    assert.equal(413, st)
    assert.matches("line 2: longer than listen.max_line_bytes %(1024%)", err_of(body))
    assert.equal(204, (gw:post("/write", ("m v=1\n"):rep(3))))
  end)

  it("listen.max_tags and max_fields: such a point is rejected, the others go on", function()
    local st, body = gw:post("/write", "m,a=1,b=2 v=1\nm,a=1,b=2,c=3 v=1\n")
    assert.equal(400, st)
    local r = cjson.decode(body)
    assert.equal(1, r.accepted)
    assert.equal(1, r.rejected)
    assert.matches("line 2: 3 tags, more than listen.max_tags %(2%)", r.error)
    st, body = gw:post("/write", "m a=1,b=2,c=3\n")
    assert.equal(400, st)
    assert.matches("3 fields, more than listen.max_fields %(2%)", err_of(body))
    st, body = gw:post("/v1/points", cjson.encode { series = "m", tags = { a = "1", b = "2", c = "3" },
      fields = { v = 1 } })
    assert.equal(400, st)
    assert.matches("listen.max_tags", err_of(body))
  end)

  it("listen.max_key_bytes and max_value_bytes: such a point is rejected", function()
    local k65, v65 = ("k"):rep(65), ("v"):rep(65)
    local cases = {
      { k65 .. " v=1", "series name of 65 bytes, longer than listen.max_key_bytes %(64%)" },
      { "m," .. k65 .. "=1 v=1", "tag key of 65 bytes" },
      { "m " .. k65 .. "=1", "field key of 65 bytes" },
      { "m,t=" .. v65 .. " v=1", "tag value of 65 bytes, longer than listen.max_value_bytes %(64%)" },
      { "m s=\"" .. v65 .. "\"", "string field value of 65 bytes" },
    }
    for _, c in ipairs(cases) do
      local st, body = gw:post("/write", c[1])
      assert.equal(400, st, c[1])
      assert.matches(c[2], err_of(body))
    end
    assert.equal(204, (gw:post("/write", ("k"):rep(64) .. ",t=" .. ("v"):rep(64) .. " s=\"" .. ("v"):rep(64) .. "\"")))
  end)
end)

-- The per-point limits hold before a point reaches a script (the engine
-- trusts a point's counts) and for whatever a script returns, on every path:
-- a line-protocol point the parser vouched for included.
describe("limits and scripts", function()
  local gw, dir
  local JSON = { ["Content-Type"] = "application/json" }

  lazy_setup(function()
    dir = proc.tmpdir("luagw-limits-scripts")
    for name, src in pairs {
      ["add_s.lua"] = [[return function(p) p.fields.s = string.rep("a", 100000) return p end]],
      ["add_t.lua"] = [[return function(p) p.tags.big = string.rep("b", 100000) return p end]],
      ["add_f.lua"] = [[return function(p) for i = 1, 4 do p.fields["f" .. i] = i end return p end]],
      ["add_k.lua"] = [[return function(p) p.tags[string.rep("k", 65)] = "v" return p end]],
      ["set_t.lua"] = [[return function(p) p.tags.t = string.rep("c", 100000) return p end]],
      ["wide.lua"] = [[return function(p)
          p.tags.a, p.tags.b = string.rep("a", 40000), string.rep("b", 40000)
          return p
        end]],
      ["trim.lua"] = [[return function(p)
          for k in pairs(p.tags) do if k ~= "t" then p.tags[k] = nil end end
          error("trim.lua ran")
        end]],
    } do proc.write_file(dir .. "/" .. name, src) end
    gw = luagw.start { config = { listen = { max_tags = 4, max_fields = 4, max_key_bytes = 64,
      max_value_bytes = 80000 }, scripts = { dir = dir }, log = { level = "error" },
      monitoring = { shutdown_timeout = 0 } } }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if dir then proc.rmdir(dir) end
  end)

  local function buffered()
    local _, h = gw:get("/health")
    return cjson.decode(h).buffer.points
  end

  it("what a script adds is refused as it is from a client, line protocol and JSON alike", function()
    local cases = {
      { "add_s", "string field value of 100000 bytes, longer than listen.max_value_bytes %(80000%)" },
      { "add_t", "tag value of 100000 bytes, longer than listen.max_value_bytes" },
      { "set_t", "tag value of 100000 bytes, longer than listen.max_value_bytes" },
      { "add_f", "5 fields, more than listen.max_fields %(4%)" },
      { "add_k", "tag key of 65 bytes, longer than listen.max_key_bytes %(64%)" },
      -- Each tag within the limits, the series key beyond what InfluxDB stores.
      { "wide", "series key longer than 65535 bytes" },
    }
    local before = buffered()
    for _, c in ipairs(cases) do
      local st, body = gw:post("/write", c[1] .. ",t=x v=1i 1700000000000000000")
      assert.equal(400, st, c[1] .. " (line protocol): " .. tostring(body))
      local lp = cjson.decode(body)
      assert.matches("line 1: .*" .. c[2], lp.error)
      st, body = gw:post("/v1/points", cjson.encode { series = c[1], time = 1700000000, tags = { t = "x" },
        fields = { v = 1 } }, JSON)
      assert.equal(400, st, c[1] .. " (JSON): " .. tostring(body))
      local js = cjson.decode(body)
      assert.matches(c[2], js.error)
      assert.equal(lp.error:gsub("^line 1: ", ""), js.error:gsub("^index 0: ", ""))
    end
    assert.equal(before, buffered())
  end)

  it("a point beyond the limits never reaches its script", function()
    -- trim.lua would bring the tags within max_tags, and fails when it runs.
    local st, body = gw:post("/write", "trim,t=1,a=1,b=1,c=1,d=1 v=1i\ntrim,t=2 v=1i")
    assert.equal(400, st)
    local r = cjson.decode(body)
    assert.equal(1, r.accepted)
    assert.matches("line 1: 5 tags, more than listen.max_tags %(4%)", r.error)
    local _, h = gw:get("/health")
    assert.equal(1, cjson.decode(h).scripts.series.trim.errors) -- the point within them only
  end)
end)

describe("cost of many tags or fields", function()
  -- Duplicate checks and the encoder's tag sort were pairwise: a line of
  -- 50,000 tags took 4 s of a worker (10^9 key comparisons), a 16 MiB body
  -- hours. Now they sort beyond a few dozen keys.
  local function many(prefix, n, sep, fmt)
    local t = {}
    for i = 1, n do t[i] = fmt:format(i) end
    return prefix .. table.concat(t, sep)
  end

  -- Not a timing bound (machines and their load differ): how the time grows.
  -- From n to 4n items pairwise work grows 16x; a sort about 4.5x. The best of five runs of each, taken in turns so that a
  -- busy spell of the machine hits both, plus 50 ms for a round trip's jitter.
  local function assert_not_quadratic(run, small, large, what)
    local t1, t4 = math.huge, math.huge
    for _ = 1, 5 do
      local t0 = socket.gettime()
      run(small)
      t1 = math.min(t1, socket.gettime() - t0)
      t0 = socket.gettime()
      run(large)
      t4 = math.min(t4, socket.gettime() - t0)
    end
    assert.is_true(t4 < 12 * t1 + 0.05, ("%s: %.3f s for n, %.3f s for 4n"):format(what, t1, t4))
  end

  it("a line protocol line of 50,000 tags or fields is refused quickly", function()
    local gw = start { max_tags = 65535, max_fields = 65535 }
    finally(function() gw:destroy() end)
    for _, make in ipairs {
      function(n) return many("m,", n, ",", "t%d=v") .. " v=1" end,
      function(n) return many("m ", n, ",", "f%d=1") end,
      function(n) return many("m,", n, ",", "t%d=v") .. ",t1=v v=1" end, -- a duplicate among many
    } do
      local small, large = make(12500), make(50000)
      assert_not_quadratic(function(body)
        local st = gw:post("/write", body, nil, 60)
        assert.is_true(st == 204 or st == 400, tostring(st))
      end, small, large, large:sub(1, 12))
    end
    local st, body = gw:post("/write", many("m,", 100, ",", "t%d=v") .. ",t7=v v=1")
    assert.equal(400, st)
    assert.matches('duplicate tag "t7"', err_of(body))
    st, body = gw:post("/write", many("m ", 100, ",", "f%d=1") .. ",f7=2i")
    assert.equal(400, st)
    assert.matches('field "f7" has values of two types', err_of(body))
  end)

  it("the encoder sorts 60,000 tags (a JSON body through /v1/debug/transform) in n log n", function()
    local harness = require("luagw.harness")
    local h = assert(harness.new { dir = "/nonexistent", listen = { max_tags = 65535, max_fields = 65535 } })
    finally(function() h:close() end)
    local function body(n)
      return '{"series":"m",' .. many('"tags":{', n, ",", '"t%d":"v"') .. '},'
        .. many('"fields":{', n, ",", '"f%d":1') .. "}}"
    end
    -- (such a point is refused for its series key, longer than InfluxDB's
    -- 64 KiB, once its tags are sorted and written)
    assert_not_quadratic(function(b)
      local r = h:run_json(b)
      assert.equal(1, #r.rejected)
      assert.matches("series key", r.rejected[1].error)
    end, body(15000), body(60000), "60,000 tags and fields")
  end)
end)

describe("limits on clients", function()
  it("listen.max_connections: a connection beyond it is closed at once (no probe places); a freed slot serves again", function()
    local gw = start { threads = 1, max_connections = 2, probe_connections = 0 }
    finally(function() gw:destroy() end)
    -- A connection that got an answer holds a place (the one of start()'s
    -- /ping may take a moment to be given back).
    local function ping(c)
      c:send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
      local line = c:receive("*l")
      repeat local h = c:receive("*l") until not h or h == ""
      return line and line:match("^HTTP/1.1 204")
    end
    local function served()
      local c = connect(gw)
      if ping(c) then return c end
      c:close()
    end
    local a = assert(wait(served, 5))
    local b = assert(wait(served, 5))
    local c = connect(gw) -- the kernel accepts; luagw closes it
    assert.is_true(closed_by_server(c, 2))
    c:close()
    -- a and b still work
    assert.is_truthy(ping(a))
    a:close()
    b:close()
    assert.equal(204, (wait(function() return (gw:post("/write", "m v=1")) == 204 and 204 end, 5)))
  end)

  it("listen.max_header_bytes: headers that do not fit are refused; the gateway serves on", function()
    local gw = start { threads = 1, max_header_bytes = 8192 }
    finally(function() gw:destroy() end)
    local st = gw:post("/write", "m v=1", { ["X-Padding"] = ("p"):rep(16 * 1024) })
    -- libmicrohttpd answers 431 (older versions 413) or drops the connection
    assert.is_true(st == nil or st == 431 or st == 413, tostring(st))
    assert.equal(204, (gw:post("/write", "m v=1", { ["X-Padding"] = ("p"):rep(2 * 1024) })))
  end)

  it("slowloris: clients that trickle headers hold no worker, and idle ones are closed after connection_timeout", function()
    local gw = start { threads = 1, connection_timeout = 1 }
    finally(function() gw:destroy() end)
    local slow = {}
    for i = 1, 20 do
      slow[i] = connect(gw)
      slow[i]:send("POST /write HTTP/1.1\r\nHost: x\r\n")
    end
    -- While they trickle (a header byte each, every 0.1 s), the single worker
    -- answers everybody else at once.
    local t0 = proc.now()
    for round = 1, 10 do
      for _, c in ipairs(slow) do c:send("X") end
      local s0 = proc.now()
      assert.equal(204, (gw:post("/write", "m v=" .. round, nil, 2)))
      assert.is_true(proc.now() - s0 < 0.5, "a request waited behind the trickling clients")
      socket.sleep(0.1)
    end
    assert.is_true(proc.now() - t0 < 6)
    -- A connection that goes quiet mid-header is closed after the timeout.
    local idle = connect(gw)
    idle:send("POST /write HTTP/1.1\r\nHo")
    local i0 = proc.now()
    assert.is_true(closed_by_server(idle, 5))
    assert.is_true(proc.now() - i0 < 4)
    for _, c in ipairs(slow) do c:close() end
    idle:close()
  end)

  it("gzip bodies: every member is read, a zlib stream too; trailing or cut bytes are a 400", function()
    local gw = start { max_body_bytes = 1024 * 1024 }
    finally(function() gw:destroy() end)
    local gz = { ["Content-Encoding"] = "gzip" }
    -- A bad last line makes the answer a 400 that counts what was accepted.
    local function accepted(body)
      local st, resp = gw:post("/write", body, gz)
      assert.equal(400, st)
      return cjson.decode(resp).accepted, err_of(resp)
    end
    local two = http.gzip("m v=1\nm v=2\n") .. http.gzip("m v=3\nm v=4\nbad\n")
    assert.equal(4, (accepted(two)))
    assert.equal(2, (accepted(http.gzip("m v=1\nm v=2\nbad\n", 6, 15)))) -- zlib wrapper
    local big = ("m v=1\n"):rep(150000) .. "bad\n" -- 900 KB inflated, 16x its gzip
    assert.equal(150000, (accepted(http.gzip(big, 9))))
    for _, broken in ipairs { http.gzip("m v=1\n") .. "junk", http.gzip("m v=1\n"):sub(1, -3) } do
      local st, resp = gw:post("/write", broken, gz)
      assert.equal(400, st)
      assert.equal("body: invalid gzip data", err_of(resp))
    end
    -- The bound is exact: max_body_bytes inflated is accepted, one more is not.
    local line = "m v=1\n"
    local exact = line:rep(math.floor(1024 * 1024 / #line))
    exact = exact .. ("#"):rep(1024 * 1024 - #exact - 1) .. "\n"
    assert.equal(1024 * 1024, #exact)
    assert.equal(204, (gw:post("/write", http.gzip(exact), gz)))
    assert.equal(413, (gw:post("/write", http.gzip(exact .. "\n"), gz)))
  end)

  it("a gzip bomb gets 413: the inflated size is bounded by listen.max_body_bytes", function()
    local gw = start { max_body_bytes = 1024 * 1024 }
    finally(function() gw:destroy() end)
    local bomb = http.gzip(("m v=1\n"):rep(8 * 1024 * 1024 / 6)) -- 8 MiB inflated
    assert.is_true(#bomb < 64 * 1024)
    local st, body = gw:post("/write", bomb, { ["Content-Encoding"] = "gzip" })
    assert.equal(413, st)
    assert.matches("after gzip inflation", err_of(body))
    assert.is_true(gw:running())
    assert.equal(204, (gw:post("/write", http.gzip("m v=1\n"), { ["Content-Encoding"] = "gzip" })))
  end)
end)
