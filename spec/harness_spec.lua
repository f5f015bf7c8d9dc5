-- Specs for the spec harness itself: support.influxd (a real influxd),
-- support.fake_influx2 (a fake 2.x write endpoint), support.luagw (with a
-- stub binary), support.http, support.proc and support.wait.
-- Loopback only; every process is stopped by PID in the teardowns.
local ffi = require("ffi")
local cjson = require("cjson")
local socket = require("socket")
local http = require("support.http")
local proc = require("support.proc")
local ports = require("support.ports")
local wait = require("support.wait")
local influxd = require("support.influxd")
local fake = require("support.fake_influx2")
local luagw = require("support.luagw")

-- TCP sockets that pid listens on, as { {addr=hex, port=n, loopback=bool} }.
local function listening(pid)
  local inodes = {}
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  for l in p:lines() do
    local ino = l:match("socket:%[(%d+)%]")
    if ino then inodes[ino] = true end
  end
  p:close()
  local out = {}
  for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local s = proc.read_file(file) or ""
    for line in s:gmatch("[^\n]+") do
      local f = {}
      for w in line:gmatch("%S+") do f[#f + 1] = w end
      local addr, port = (f[2] or ""):match("^(%x+):(%x+)$")
      local st, ino = f[4], f[10]
      if addr and st == "0A" and inodes[ino] then
        local lo = (#addr == 8 and addr:sub(7, 8) == "7F")
          or addr == "00000000000000000000000001000000"
          or (#addr == 32 and addr:sub(1, 24) == "0000000000000000FFFF0000" and addr:sub(31, 32) == "7F")
        out[#out + 1] = { addr = addr, port = tonumber(port, 16), loopback = lo }
      end
    end
  end
  return out
end

local started_pids = {}

describe("support.http", function()
  it("gzip round-trips through zlib and matches gzip(1)", function()
    local s = string.rep("cpu,host=a usage=1.5 1700000000000000000\n", 200)
    local g = http.gzip(s)
    assert.is_true(#g < #s)
    assert.equal(0x1f, g:byte(1)); assert.equal(0x8b, g:byte(2))
    assert.equal(s, http.gunzip(g))
    local tmp = os.tmpname()
    proc.write_file(tmp, g)
    local code, out = proc.run({ "gzip", "-dc", tmp })
    os.remove(tmp)
    assert.equal(0, code)
    assert.equal(s, out)
    local d, err = http.gunzip("not gzip")
    assert.is_nil(d)
    assert.matches("gzip", err)
  end)

  it("reports a refused connection as nil status", function()
    local port = ports.free()
    local st, err = http.get("http://127.0.0.1:" .. port .. "/ping", nil, 1)
    assert.is_nil(st)
    assert.matches("refused", err)
  end)
end)

describe("support.proc", function()
  it("reports exit codes and signals of its children", function()
    local pid = proc.spawn { argv = { "sh", "-c", "exit 7" } }
    assert.equal(7, (proc.wait(pid, 5)))
    pid = proc.spawn { argv = { "sleep", "30" } }
    assert.is_true(proc.alive(pid))
    local code, sig = proc.stop(pid, 5)
    assert.equal(128 + 15, code)
    assert.equal("TERM", sig)
    assert.is_false(proc.alive(pid))
  end)

  it("kills with SIGKILL what ignores SIGTERM, within the bound", function()
    local pid = proc.spawn { argv = { "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done" } }
    socket.sleep(0.2)
    local t0 = socket.gettime()
    local code, sig = proc.stop(pid, 0.5)
    assert.equal("KILL", sig)
    assert.equal(137, code)
    assert.is_true(socket.gettime() - t0 < 4)
  end)
end)

describe("support.wait", function()
  it("returns the first truthy value, or nil after the timeout", function()
    local n = 0
    assert.equal(3, wait.wait_until(function() n = n + 1; return n >= 3 and n end, 2, 0.001))
    local t0 = socket.gettime()
    local v, err = wait(function() return false end, 0.2)
    assert.is_nil(v)
    assert.matches("timed out", err)
    assert.is_true(socket.gettime() - t0 < 1)
  end)
end)

describe("support.influxd", function()
  local db

  lazy_setup(function()
    db = influxd.start { database = "h" }
    started_pids[#started_pids + 1] = db.pid
  end)

  lazy_teardown(function()
    if db then db:destroy() end
  end)

  it("runs on free loopback ports with its data in a temp dir", function()
    assert.is_number(db.port)
    assert.not_equal(8086, db.port)
    assert.equal("http://127.0.0.1:" .. db.port, db.url)
    assert.equal(204, (http.get(db.url .. "/ping")))
    assert.matches("^/tmp/luagw%-influxd%.", db.dir)
    local conf = proc.read_file(db.dir .. "/influxdb.conf")
    assert.matches("reporting%-enabled = false", conf)
    assert.matches('store%-enabled = false', conf)
    for line in conf:gmatch("[^\n]+") do
      local a = line:match('bind%-address = "([^"]*)"')
      if a and not line:match("127%.0%.0%.1:0") then assert.matches("^127%.0%.0%.1:%d+$", a) end
      local d = line:match('^%s*[%w-]*dir = "([^"]*)"')
      if d then assert.equal(db.dir, d:sub(1, #db.dir)) end
    end
    local ls = listening(db.pid)
    assert.is_true(#ls >= 2) -- HTTP and RPC
    for _, l in ipairs(ls) do
      assert.is_true(l.loopback, "influxd listens on a non-loopback address " .. l.addr)
    end
    -- no _internal database (monitor store disabled)
    local names = {}
    for _, r in ipairs(db:rows("SHOW DATABASES")) do names[r.name] = true end
    assert.is_true(names.h)
    assert.is_nil(names._internal)
  end)

  it("reads back exact ns timestamps, int64 extremes and field types", function()
    local body = 'm,host=a i=9223372036854775807i,n=-9223372036854775808i,f=1.5,s="x y",b=true 1700000000123456789\n'
      .. "m,host=b i=1i,n=-1i,f=2,s=\"z\",b=false 1700000000123456790"
    local st, resp = http.request { method = "POST", url = db.url .. "/write?db=h&precision=ns",
      body = body, headers = { ["Content-Type"] = "text/plain; charset=utf-8" } }
    assert.equal(204, st, resp)
    local rows = db:rows('SELECT * FROM m ORDER BY time', "h")
    assert.equal(2, #rows)
    local r = rows[1]
    assert.equal("cdata", type(r.time))
    assert.equal(1700000000123456789LL, r.time)
    assert.equal("1700000000123456789", influxd.str(r.time))
    assert.equal(9223372036854775807LL, r.i)
    assert.equal("9223372036854775807", influxd.str(r.i))
    assert.equal("-9223372036854775808", influxd.str(r.n))
    assert.equal(1.5, r.f)
    assert.equal("x y", r.s)
    assert.equal(true, r.b)
    assert.equal("a", r.host)
    assert.equal(1700000000123456790LL, rows[2].time)
    assert.equal(1, rows[2].i)
    assert.equal(false, rows[2].b)
    assert.same({ i = "integer", n = "integer", f = "float", s = "string", b = "boolean" },
      db:field_types("m", "h"))
    assert.same({ host = true }, db:tag_keys("m", "h"))
  end)

  it("accepts a gzip'd body", function()
    local st = http.post(db.url .. "/write?db=h", http.gzip("gz v=42i 1000000000000000001"),
      { ["Content-Encoding"] = "gzip" })
    assert.equal(204, st)
    local rows = db:rows("SELECT v FROM gz", "h")
    assert.equal(1, #rows)
    assert.equal(1000000000000000001LL, rows[1].time)
    assert.equal(42, rows[1].v)
  end)

  it("keeps the data across stop and start_again on the same port", function()
    local port, pid = db.port, db.pid
    db:stop()
    assert.is_false(proc.alive(pid))
    assert.is_nil((http.get(db.url .. "/ping", nil, 1)))
    db:start_again()
    started_pids[#started_pids + 1] = db.pid
    assert.equal(port, db.port)
    assert.not_equal(pid, db.pid)
    local rows = db:rows("SELECT * FROM m ORDER BY time", "h")
    assert.equal(2, #rows)
    assert.equal(9223372036854775807LL, rows[1].i)
    assert.equal(1700000000123456789LL, rows[1].time)
  end)

  -- What Debian's influxd 1.6.7 does; the gateway's v1 output must cope.
  it("rejects unsigned fields (no `u` suffix in 1.6) with 400", function()
    local st, body = db:write("u f=1u 1", "h")
    assert.equal(400, st)
    assert.matches("invalid number", body)
  end)

  it("answers a type conflict against stored data with 400 partial write, keeping the good points", function()
    assert.equal(204, (db:write("c f=1i 1", "h")))
    local st, body = db:write({ "c f=2i 2", "c f=2.5 3", "c f=3i 4" }, "h")
    assert.equal(400, st)
    local msg = cjson.decode(body).error
    assert.matches('^partial write: field type conflict: input field "f" on measurement "c" is type float, already exists as type integer dropped=1$', msg)
    local times = {}
    for _, r in ipairs(db:rows("SELECT f FROM c ORDER BY time", "h")) do times[#times + 1] = influxd.str(r.time) end
    assert.same({ "1", "2", "4" }, times)
  end)

  it("answers an in-batch conflict in a shard that has data with 400 partial write", function()
    assert.equal(204, (db:write("other x=1i 10", "h")))
    local st, body = db:write({ "c2 f=1i 11", "c2 f=1.5 12", "c2 f=3i 13" }, "h")
    assert.equal(400, st)
    assert.matches("^partial write: field type conflict: .* dropped=1$", cjson.decode(body).error)
    assert.equal(2, db:count("c2", "h"))
  end)

  it("answers an in-batch conflict that creates a new shard with 400 and stores nothing", function()
    -- 2001-01-01: no shard group there yet
    local st, body = db:write({ "c3 f=1i 978307200000000000", "c3 f=1.5 978307200000000001" }, "h")
    assert.equal(400, st)
    assert.equal("field type conflict", cjson.decode(body).error)
    assert.equal(0, db:count("c3", "h"))
  end)

  it("checks field types per shard: other shards may hold another type", function()
    assert.equal(204, (db:write("c4 f=1i 20", "h")))
    assert.equal(204, (db:write("c4 f=1.5 1278307200000000000", "h"))) -- 2010, another shard group
    assert.equal(2, db:count("c4", "h"))
  end)

  it("answers a parse error with 400 and stores the other lines", function()
    local st, body = db:write({ "p f=1i 1", "p f= 2", "p f=3i 3" }, "h")
    assert.equal(400, st)
    assert.matches("^partial write: unable to parse 'p f= 2': missing field value dropped=0$", cjson.decode(body).error)
    assert.equal(2, db:count("p", "h"))
  end)

  it("honours max_body_size (413)", function()
    local small = influxd.start { max_body_size = 100, database = "s" }
    started_pids[#started_pids + 1] = small.pid
    local ok, err = pcall(function()
      local st = small:write(string.rep("m f=1i 1\n", 50), "s")
      assert.equal(413, st)
      assert.equal(204, (small:write("m f=1i 1", "s")))
    end)
    small:destroy()
    assert.is_nil(small.dir)
    assert(ok, err)
  end)
end)

describe("support.influxd JSON decoding", function()
  it("keeps integers beyond 2^53 exact", function()
    local v = influxd.decode('{"a":[1700000000123456789,-9223372036854775808,18446744073709551615,'
      .. '1.5,12,"123456789012345678",-12345678901234567000,1e300,[9007199254740993]]}')
    local a = v.a
    assert.equal(1700000000123456789LL, a[1])
    assert.equal("-9223372036854775808", influxd.str(a[2]))
    assert.equal("18446744073709551615", influxd.str(a[3]))
    assert.equal(1.5, a[4])
    assert.equal("number", type(a[5]))
    assert.equal("123456789012345678", a[6])
    assert.equal("number", type(a[7])) -- beyond int64: a float from Go's encoder
    assert.equal(1e300, a[8])
    assert.equal(9007199254740993LL, a[9][1])
  end)
end)

describe("support.fake_influx2", function()
  local f2
  local function write(q, body, headers)
    local h = { Authorization = "Token secret" }
    for k, v in pairs(headers or {}) do h[k] = v end
    if headers and headers.Authorization == false then h.Authorization = nil end
    local st, b = http.post(f2.url .. "/api/v2/write?" .. q, body, h)
    return st, b ~= "" and cjson.decode(b) or nil
  end

  lazy_setup(function()
    f2 = fake.start { org = "luna", bucket = "b", token = "secret" }
    started_pids[#started_pids + 1] = f2.pid
  end)

  lazy_teardown(function()
    if f2 then f2:stop() end
  end)

  before_each(function() f2:clear() end)

  it("answers /ping 204, /health 200 and 404 JSON elsewhere", function()
    assert.equal(204, (http.get(f2.url .. "/ping")))
    local st, body = http.get(f2.url .. "/health")
    assert.equal(200, st)
    assert.equal("pass", cjson.decode(body).status)
    st, body = http.get(f2.url .. "/write?db=x")
    assert.equal(404, st)
    assert.equal("not found", cjson.decode(body).code)
    st = http.get(f2.url .. "/api/v2/write?org=luna&bucket=b", { Authorization = "Token secret" })
    assert.equal(405, st)
    for _, l in ipairs(listening(f2.pid)) do assert.is_true(l.loopback) end
  end)

  it("rejects a missing or wrong token with 401", function()
    local st, j = write("org=luna&bucket=b", "m f=1i 1", { Authorization = false })
    assert.equal(401, st)
    assert.same({ code = "unauthorized", message = "unauthorized access" }, j)
    st, j = write("org=luna&bucket=b", "m f=1i 1", { Authorization = "Token wrong" })
    assert.equal(401, st)
    st = write("org=luna&bucket=b", "m f=1i 1", { Authorization = "Bearer secret" })
    assert.equal(401, st)
    assert.same({}, f2:lines())
  end)

  it("rejects a missing org with 400 and a wrong org or bucket with 404", function()
    local st, j = write("bucket=b", "m f=1i 1")
    assert.equal(400, st)
    assert.equal("invalid", j.code)
    st, j = write("org=nope&bucket=b", "m f=1i 1")
    assert.equal(404, st)
    assert.same({ code = "not found", message = 'organization name "nope" not found' }, j)
    st, j = write("orgID=ffffffffffffffff&bucket=b", "m f=1i 1")
    assert.equal(404, st)
    st, j = write("org=luna", "m f=1i 1")
    assert.equal(404, st)
    assert.equal("bucket not found", j.message)
    st, j = write("org=luna&bucket=other", "m f=1i 1")
    assert.equal(404, st)
    assert.equal('bucket "other" not found', j.message)
    assert.same({}, f2:lines())
  end)

  it("rejects a bad precision with 400 and accepts ns|us|ms|s", function()
    local st, j = write("org=luna&bucket=b&precision=h", "m f=1i 1")
    assert.equal(400, st)
    assert.matches("precision", j.message)
    for _, p in ipairs { "ns", "us", "ms", "s" } do
      assert.equal(204, (write("org=luna&bucket=b&precision=" .. p, "m f=1i 1")))
    end
  end)

  it("accepts plain and gzip'd bodies and records the lines in order", function()
    assert.equal(204, (write("org=luna&bucket=b", "cpu,host=a v=1i 1\ncpu,host=b v=2i 2\n")))
    assert.equal(204, (write("orgID=" .. f2.org_id .. "&bucket=b",
      http.gzip('cpu,host=c v=3i 3\n# a comment\n\nmem s="a \\"b\\"",u=7u 4'),
      { ["Content-Encoding"] = "gzip" })))
    assert.same({ "cpu,host=a v=1i 1", "cpu,host=b v=2i 2", "cpu,host=c v=3i 3", 'mem s="a \\"b\\"",u=7u 4' },
      f2:lines())
    local pts = f2:points()
    assert.equal("c", pts[3].tags.host)
    assert.same({ type = "string", value = 'a "b"' }, pts[4].fields.s)
    assert.same({ type = "unsigned", value = "7" }, pts[4].fields.u)
    assert.equal("4", pts[4].time)
    local reqs = f2:requests()
    assert.equal(2, #reqs)
    assert.equal("POST", reqs[2].method)
    assert.equal("/api/v2/write", reqs[2].path)
    assert.equal("gzip", reqs[2].content_encoding)
    assert.equal("Token secret", reqs[2].authorization)
    assert.equal(f2.org_id, reqs[2].query.orgID)
    assert.equal(204, reqs[2].status)
  end)

  it("rejects a corrupt gzip body and a bad line with 400, storing nothing", function()
    local st = write("org=luna&bucket=b", "m f=1i 1", { ["Content-Encoding"] = "gzip" })
    assert.equal(400, st)
    local j
    st, j = write("org=luna&bucket=b", "m f=1i 1\nm f= 2\n")
    assert.equal(400, st)
    assert.equal("unable to parse 'm f= 2': missing field value", j.message)
    st = write("org=luna&bucket=b", "m f=9223372036854775808i 1")
    assert.equal(400, st)
    assert.same({}, f2:lines())
  end)

  it("drops only the type-conflicting points (422)", function()
    assert.equal(204, (write("org=luna&bucket=b", "t f=1i 1")))
    local st, j = write("org=luna&bucket=b", "t f=2i 2\nt f=2.5 3\nt f=3i 4")
    assert.equal(422, st)
    assert.matches("partial write: field type conflict", j.message)
    assert.matches("dropped=1", j.message)
    assert.same({ "t f=1i 1", "t f=2i 2", "t f=3i 4" }, f2:lines())
  end)

  it("keeps connections alive and honours Expect: 100-continue", function()
    local c = assert(socket.connect("127.0.0.1", f2.port))
    c:settimeout(3)
    local function req(body, expect)
      local head = ("POST /api/v2/write?org=luna&bucket=b HTTP/1.1\r\nHost: x\r\nAuthorization: Token secret\r\n"
        .. "Content-Length: %d\r\n%s\r\n"):format(#body, expect and "Expect: 100-continue\r\n" or "")
      assert(c:send(head))
      if expect then
        assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
        assert.equal("", c:receive("*l"))
      end
      assert(c:send(body))
      local status = c:receive("*l")
      repeat local l = c:receive("*l") until l == "" or l == nil
      return status
    end
    assert.matches("^HTTP/1.1 204", req("k f=1i 1"))
    assert.matches("^HTTP/1.1 204", req("k f=2i 2", true))
    c:close()
    assert.same({ "k f=1i 1", "k f=2i 2" }, f2:lines())
  end)

  it("answers injected failures, then recovers", function()
    f2:fail_next(2, 503, nil, 1)
    local st = write("org=luna&bucket=b", "r f=1i 1")
    assert.equal(503, st)
    assert.equal(503, (write("org=luna&bucket=b", "r f=1i 1")))
    assert.equal(204, (write("org=luna&bucket=b", "r f=1i 1")))
    assert.same({ "r f=1i 1" }, f2:lines())
  end)

  it("exits by itself after its lifetime", function()
    local short = fake.start { lifetime = 1 }
    started_pids[#started_pids + 1] = short.pid
    local ok = wait(function() return not short:running() end, 5)
    short:stop()
    assert.truthy(ok)
  end)
end)

describe("support.luagw (with a stub binary)", function()
  local stub

  lazy_setup(function()
    -- Stands in for gateway/luagw: reads listen.port from -c FILE, answers
    -- 204 to everything, exits 0 on SIGTERM (default action would be 143).
    stub = os.tmpname()
    proc.write_file(stub, [[#!/usr/bin/env luajit
local socket = require("socket")
local f = assert(io.open(arg[2])); local cfg = f:read("*a"); f:close()
local port = tonumber(cfg:match("listen:.-port: (%d+)"))
io.stdout:write("stub up on ", port, " level=", cfg:match('level: "(%a+)"'), "\n"); io.stdout:flush()
local srv = assert(socket.bind("127.0.0.1", port))
while true do
  local c = srv:accept()
  c:settimeout(2)
  local l = c:receive("*l") or ""
  repeat local h = c:receive("*l") until h == "" or h == nil
  if l:find("/exit", 1, true) then c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c:close(); os.exit(5) end
  c:send("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
  c:close()
end
]])
    os.execute("chmod +x " .. stub)
  end)

  lazy_teardown(function() os.remove(stub) end)

  it("emits YAML with quoted strings and nested tables", function()
    local y = luagw.yaml { monitoring = { token = 'a"b\\c', flushing_period = 0.1, gzip = true, port = 8086 },
      scripts = { dir = "x y" }, list = { "a", 2 } }
    assert.equal(table.concat({
      "list:", '  - "a"', "  - 2",
      "monitoring:", "  flushing_period: 0.1", "  gzip: true", "  port: 8086", '  token: "a\\"b\\\\c"',
      "scripts:", '  dir: "x y"', "" }, "\n"), y)
  end)

  it("starts the binary on a free port, waits for /ping and stops it by PID", function()
    local db = { port = 1 } -- only .port is used for the monitoring section
    local gw = luagw.start { bin = stub, influxd = db, config = { log = { level = "debug" } } }
    started_pids[#started_pids + 1] = gw.pid
    assert.equal("http://127.0.0.1:" .. gw.port, gw.url)
    assert.equal(204, (gw.post("/write", "m f=1")))
    assert.equal(204, (gw:get("/ping")))
    assert.matches("stub up on " .. gw.port .. " level=debug", gw:log())
    local cfg = proc.read_file(gw.config_path)
    assert.matches("flushing_period: 0.1", cfg)
    assert.matches('database: "luagw"', cfg)
    assert.matches("version: 1", cfg)
    assert.is_true(gw:signal("TERM"))
    assert.equal(143, (gw:wait_exit(5)))
    assert.is_false(gw:running())
    gw:destroy()
  end)

  it("reports the exit code, and a start that fails with its log", function()
    local gw = luagw.start { bin = stub }
    started_pids[#started_pids + 1] = gw.pid
    gw.post("/exit", "")
    assert.equal(5, (gw:wait_exit(5)))
    gw:destroy()
    local ok, err = pcall(luagw.start, { bin = "/bin/false", start_timeout = 3 })
    assert.is_false(ok)
    assert.matches("exited %(code 1%)", err)
  end)
end)

describe("the harness at the end", function()
  it("left no process running", function()
    for _, pid in ipairs(started_pids) do
      assert.is_false(proc.alive(pid), "pid " .. pid .. " still alive")
    end
  end)
end)
