-- End to end: the real gateway/luagw with series scripts, in front of a real
-- influxd. What scripts add, drop and emit is read back from InfluxDB.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")
local http = require("support.http")
local keepalive = require("support.keepalive")
local socket = require("socket")
local cjson = require("cjson")

local JSON = { ["Content-Type"] = "application/json" }
local S = influxd.str

-- A scripts directory of its own: files = { ["name.lua"] = source }.
local function scripts_dir(files)
  local dir = proc.tmpdir("luagw-scripts")
  for name, src in pairs(files) do proc.write_file(dir .. "/" .. name, src) end
  return dir
end

describe("series scripts end to end", function()
  local db = influxd.for_block { database = "luagw" }

  -- A gateway with the scripts files = { ["name.lua"] = source } and config
  -- (merged), started for the enclosing describe and destroyed after it:
  -- call the returned function for it.
  local function gateway_with(files, config)
    local gw, dir
    lazy_setup(function()
      dir = scripts_dir(files)
      gw = luagw.start { influxd = db, config = luagw.merge({ scripts = { dir = dir } }, config) }
    end)
    lazy_teardown(function()
      if gw then gw:destroy() end
      if dir then proc.rmdir(dir) end
    end)
    return function() return gw end
  end

  local function rows(q) return db:rows(q, "luagw") end
  local function settle(q, n)
    assert.is_true(wait(function() return #rows(q) == n end, 10), q .. ": expected " .. n .. " rows")
    return rows(q)
  end

  describe("with the shipped scripts", function()
    local gw

    lazy_setup(function()
      gw = luagw.start { influxd = db, config = { scripts = {
        dir = luagw.ROOT .. "/scripts",
        params = { deployment = { tags = { datacenter = "eu-1", environment = "production" },
          fields = { release = "2026.11.1", instance = 3 } } },
      } } }
    end)
    lazy_teardown(function() if gw then gw:destroy() end end)

    it("subscription_error gets the deployment's tags and fields (it has no fields of its own)", function()
      local st, body = gw:post("/v1/points",
        '{"series":"subscription_error","time":1700000100,"tags":{"service":"luna-sender","error_code":"E42"}}', JSON)
      assert.equal(204, st, body)
      local r = settle("SELECT * FROM subscription_error WHERE error_code = 'E42'", 1)[1]
      assert.equal("eu-1", r.datacenter)
      assert.equal("production", r.environment)
      assert.equal("luna-sender", r.service)
      assert.equal("2026.11.1", r.release)
      assert.equal(3, r.instance)
      assert.equal("1700000100000000000", S(r.time))
      local types = db:field_types("subscription_error", "luagw")
      assert.equal("integer", types.instance)
      assert.equal("string", types.release)
    end)

    it("requests and errors get route = METHOD:resource when they have none", function()
      local body = table.concat({
        'requests,service=luna-sender,method=get,resource=/version request_id="e2e-1",execution_time=0.01 1700000101000000000',
        'errors,service=luna-sender,method=post,resource=/subscribe,status_code=500 request_id="e2e-2" 1700000102000000000',
        'requests,service=luna-sender,route=GET:/kept,method=get,resource=/other request_id="e2e-3" 1700000103000000000',
      }, "\n")
      assert.equal(204, (gw:post("/write", body)))
      local r = settle("SELECT * FROM requests WHERE request_id = 'e2e-1'", 1)[1]
      assert.equal("GET:/version", r.route)
      assert.equal(0.01, r.execution_time)
      r = settle("SELECT * FROM errors WHERE request_id = 'e2e-2'", 1)[1]
      assert.equal("POST:/subscribe", r.route)
      r = settle("SELECT * FROM requests WHERE request_id = 'e2e-3'", 1)[1]
      assert.equal("GET:/kept", r.route)
    end)
  end)

  describe("with scripts of its own", function()
    local gw, dir

    lazy_setup(function()
      dir = scripts_dir {
        ["dropme.lua"] = [[return function(p) if p.tags.keep ~= "yes" then return nil end return p end]],
        ["split.lua"] = [[return function(p)
            local copy = { series = "split_copy", tags = { from = "split" }, fields = { n = int(2) } }
            return { p, copy }
          end]],
        ["exactv.lua"] = [[return function(p) p.tags.seen = "yes"; return p end]],
        ["loop.lua"] = [[return function(p) if p.tags.loop then while true do end end p.tags.ok = "yes"; return p end]],
        ["boom.lua"] = "return function(p)\n  p.tags.x = 'y'\n  error('kaboom')\nend\n",
        ["probe.lua"] = [[
          local function reach(f) local ok, v = pcall(f) return ok and v ~= nil and v ~= false end
          return function(p)
            local f = p.fields
            f.io = reach(function() return io end)
            f.os_execute = reach(function() return os.execute end)
            f.ffi = reach(function() return ffi or require end)
            f.debug = reach(function() return debug end)
            f.load = reach(function() return load or loadstring or dofile or loadfile end)
            f.dump = reach(function() return string.dump or ("").dump end)
            f.getfenv0 = reach(function() return getfenv(0) end)
            f.string_mt = reach(function() return getmetatable("") end)
            return p
          end]],
      }
      gw = luagw.start { influxd = db, config = { listen = { threads = 2 }, scripts = {
        dir = dir, timeout_ms = 1500 } } }
    end)
    lazy_teardown(function()
      if gw then gw:destroy() end
      if dir then proc.rmdir(dir) end
    end)

    it("a script drops points by returning nil", function()
      assert.equal(204, (gw:post("/write", "dropme,keep=yes v=1i 1700000200000000000\ndropme,keep=no v=2i 1700000200000000001")))
      assert.equal(204, (gw:post("/write", "marker,after=drop v=1i 1700000200000000002")))
      settle("SELECT * FROM marker WHERE after = 'drop'", 1)
      local r = settle("SELECT * FROM dropme", 1)
      assert.equal("yes", r[1].keep)
    end)

    it("a script fans a point out into several", function()
      assert.equal(204, (gw:post("/write", "split,id=1 v=1i 1700000201000000000")))
      local r = settle("SELECT * FROM split_copy", 1)[1]
      assert.equal("split", r.from)
      assert.equal(2, r.n)
      assert.equal("1700000201000000000", S(r.time))
      settle("SELECT * FROM split", 1)
    end)

    it("integers, int64 extremes and ns times survive a script that does not touch them", function()
      local st = gw:post("/write",
        "exactv big=9223372036854775807i,small=-9223372036854775808i,n=42i,f=0.30000000000000004 1700000202123456789")
      assert.equal(204, st)
      local r = settle("SELECT * FROM exactv", 1)[1]
      assert.equal("yes", r.seen)
      assert.equal("1700000202123456789", S(r.time))
      assert.equal("9223372036854775807", S(r.big))
      assert.equal("-9223372036854775808", S(r.small))
      assert.equal(42, r.n)
      assert.equal(0.1 + 0.2, r.f)
      local types = db:field_types("exactv", "luagw")
      assert.equal("integer", types.big)
      assert.equal("integer", types.n)
      assert.equal("float", types.f)
    end)

    it("stops `while true do end`, passes the point on, and keeps answering meanwhile", function()
      -- Send the stuck request on a connection of its own, not reading yet.
      local c = assert(socket.connect("127.0.0.1", gw.port))
      local body = "loop,loop=1 v=1i 1700000203000000000"
      c:send(("POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body))
      local t0 = socket.gettime()
      -- Meanwhile the other worker answers, well before the stuck call's budget (1.5 s) is spent.
      socket.sleep(0.2)
      local st = http.get(gw.url .. "/ping", nil, 1)
      assert.equal(204, st, "luagw did not answer while a script was stuck")
      assert.equal(204, (http.post(gw.url .. "/write", "loop,other=1 v=2i 1700000203000000001", nil, 1)))
      -- The stuck call is stopped within a generous multiple of its budget.
      c:settimeout(15)
      local status = c:receive("*l")
      c:close()
      assert.is_truthy(status and status:find(" 204 "), tostring(status))
      assert.is_true(socket.gettime() - t0 < 15)
      local r = settle("SELECT * FROM loop WHERE \"loop\" = '1'", 1)[1]
      assert.is_nil(r.ok) -- on_error pass: as it came in
      r = settle("SELECT * FROM loop WHERE other = '1'", 1)[1]
      assert.equal("yes", r.ok)
      assert.matches('msg="script timeout" series="loop" script=[^ ]*loop%.lua', gw:log())
    end)

    it("counts an erroring script per series and logs it with file:line", function()
      assert.equal(204, (gw:post("/write", "boom v=1i 1700000204000000000\nboom v=2i 1700000204000000001")))
      local r = settle("SELECT * FROM boom", 2)
      assert.is_nil(r[1].x) -- the point as it came in
      local _, hbody = gw:get("/health")
      local health = cjson.decode(hbody)
      assert.equal(2, health.scripts.series.boom.errors)
      assert.matches('msg="script error" series="boom" script=[^ ]*boom%.lua:3 error="kaboom"', gw:log())
    end)

    it("scripts reach none of io, os.execute, ffi, debug, load, string.dump, getfenv(0)", function()
      assert.equal(204, (gw:post("/write", "probe v=1i 1700000205000000000")))
      local r = settle("SELECT * FROM probe", 1)[1]
      for _, k in ipairs { "io", "os_execute", "ffi", "debug", "load", "dump", "getfenv0", "string_mt" } do
        assert.equal(false, r[k], k .. " is reachable")
      end
    end)

    it("POST /v1/debug/transform shows what the scripts do and forwards nothing", function()
      local function points() return cjson.decode((select(2, gw:get("/health")))).points end
      local before = points()
      local st, body = gw:post("/v1/debug/transform", '{"series":"split","time":1700000206,"tags":{"id":"dbg"},"fields":{"v":1}}', JSON)
      assert.equal(200, st, body)
      local doc = cjson.decode(body)
      assert.equal(2, #doc.points)
      assert.equal("split", doc.points[1].series)
      assert.equal("split_copy", doc.points[2].series)
      assert.equal("integer", doc.points[2].types.n)
      assert.matches("split%.lua$", doc.points[1].scripts[1])
      assert.equal("split_copy,from=split n=2i 1700000206000000000", doc.points[2].line)
      st, body = gw:post("/v1/debug/transform", "boom v=1i 1", {})
      doc = cjson.decode(body)
      assert.equal("error", doc.errors[1].kind)
      assert.equal("kaboom", doc.errors[1].message)
      -- Nothing of either was queued, so nothing reaches InfluxDB.
      local after = points()
      assert.equal(before.received, after.received)
      assert.equal(before.accepted, after.accepted)
      assert.equal(0, #rows("SELECT * FROM split WHERE id = 'dbg'"))
      assert.equal(1, #rows("SELECT * FROM split_copy"))
    end)
  end)

  -- A script's driver caches code per point shape (tags x fields): points
  -- of very different shapes in one body, on one connection, must each be
  -- stored as sent. (Once two shapes shared a cache slot, and this two-line
  -- body killed luagw with SIGSEGV.)
  describe("bodies that mix point shapes", function()
    local gateway = gateway_with({
      ["shape.lua"] = "return function(p) return p end",
      ["_all.lua"] = "return function(p) return p end",
    }, { listen = { threads = 1 } })

    local function fields(n, from)
      local f = {}
      for i = 0, n - 1 do f[#f + 1] = ("f%d=%di"):format(i, (from or 0) + i) end
      return table.concat(f, ",")
    end

    it("1 tag and 1 field, then 0 tags and 257 fields, in one body: stored, luagw alive", function()
      local gw = gateway()
      local st, body = gw:post("/write", "shape,t=a v=1i 1700000400000000000\nshape " .. fields(257)
        .. " 1700000400000000001")
      assert.equal(204, st, body)
      assert.is_true(gw:running())
      local r = settle("SELECT * FROM shape WHERE time >= 1700000400000000000 AND time < 1700000401000000000", 2)
      assert.equal("a", r[1].t)
      assert.equal(1, r[1].v)
      assert.equal(0, r[2].f0)
      assert.equal(256, r[2].f256)
      assert.is_nil(r[2].t)
    end)

    it("every shape from 0 to 30 tags and 1 to 300 fields, both formats, on one keep-alive connection", function()
      local gw = gateway()
      local c = keepalive.open(gw.port)
      finally(function() c:close() end)
      local lines, points, n = {}, {}, 0
      for _, nt in ipairs { 0, 1, 2, 5, 24, 25, 30 } do
        for _, nf in ipairs { 1, 2, 24, 25, 257, 300 } do
          n = n + 1
          local tags = { "id=" .. n }
          for i = 1, nt - 1 do tags[#tags + 1] = ("t%d=x%d"):format(i, i) end
          local series = n % 2 == 0 and "shape" or "other"
          lines[#lines + 1] = ("%s,%s %s %d"):format(series, table.concat(tags, ","), fields(nf, n),
            1700000410000000000 + n)
          local jt, jf = { id = "j" .. n }, {}
          for i = 1, nt - 1 do jt["t" .. i] = "y" .. i end
          for i = 0, nf - 1 do jf["f" .. i] = n + i end
          points[#points + 1] = { series = series, time = 1700000420 + n, tags = jt, fields = jf }
        end
      end
      -- Each body twice, reversed the second time: a shape seen first or second.
      local reversed = {}
      for i = #lines, 1, -1 do reversed[#reversed + 1] = lines[i]:gsub("id=", "id=r") end
      assert.equal(204, (c:post("/write", table.concat(lines, "\n"))))
      assert.equal(204, (c:post("/write", table.concat(reversed, "\n"))))
      assert.equal(204, (c:post("/v1/points", cjson.encode(points), JSON)))
      assert.is_true(gw:running())
      local q = "SELECT * FROM %s WHERE time >= 1700000410000000000 AND time < 1700000500000000000"
      local total = #settle(q:format("shape"), 3 * n / 2) + #settle(q:format("other"), 3 * n / 2)
      assert.equal(3 * n, total)
      -- The widest points, whole: 30 tags, 300 fields.
      local r = settle("SELECT * FROM shape WHERE id = '42'", 1)[1]
      assert.equal("x29", r.t29)
      assert.equal(42, r.f0)
      assert.equal(42 + 299, r.f299)
      r = settle("SELECT * FROM shape WHERE id = 'j42'", 1)[1]
      assert.equal("y29", r.t29)
      assert.equal(42 + 299, r.f299)
    end)
  end)

  -- Each worker hands its scripts the same point tables, refilled per point.
  -- Whatever a script does to them (writes no metamethod sees included),
  -- the next point starts from a clean slate: other requests, other series.
  describe("the reused point tables", function()
    -- One worker: every request meets the same tables.
    local gateway = gateway_with({
        ["ins_tag.lua"] = [[return function(p) table.insert(p.tags, 2, "x") return p end]],
        ["ins_field.lua"] = [[return function(p) table.insert(p.fields, 2, 7) return p end]],
        ["mark.lua"] = [[return function(p) rawset(p, "mark", "yes") return p end]],
        ["seen.lua"] = [[return function(p) p.seen = "yes" return p end]],
        ["copy.lua"] = [[return function(p)
            p.tags.copied = "yes"
            return { series = p.series, tags = p.tags, fields = p.fields }
          end]],
        -- Every key it is handed, sorted, as fields of the point.
        ["clean.lua"] = [[
          local function keys(t)
            local k = {}
            for x in pairs(t) do k[#k + 1] = tostring(x) end
            table.sort(k)
            return table.concat(k, ",")
          end
          return function(p)
            local t, f, pt = keys(p.tags), keys(p.fields), keys(p)
            p.fields.seen_tags, p.fields.seen_fields, p.fields.seen_point = t, f, pt
            return p
          end]],
    }, { listen = { threads = 1 } })

    it("table.insert, rawset and new keys on them reach no later point (one keep-alive connection)", function()
      local gw = gateway()
      local c = keepalive.open(gw.port)
      finally(function() c:close() end)
      local t, n = 1700000500000000000, 0
      local function line(series)
        n = n + 1
        return ("%s,id=%d v=1i %d"):format(series, n, t + n)
      end
      for _, dirt in ipairs { "ins_tag", "ins_field", "mark", "seen", "copy" } do
        assert.equal(204, (c:post("/write", line(dirt))))
        assert.equal(204, (c:post("/write", line("clean"))))
        assert.equal(204, (c:post("/v1/points", ('{"series":"clean","time":%d,"tags":{"id":"j%d"},"fields":{"v":1}}')
          :format(1700000600 + n, n), JSON)))
        -- And within one body.
        assert.equal(204, (c:post("/write", line(dirt) .. "\n" .. line("clean") .. "\n" .. line(dirt))))
      end
      local cleans = settle("SELECT * FROM clean", 15)
      for _, r in ipairs(cleans) do
        assert.equal("id", r.seen_tags, "point " .. r.id)
        assert.equal("v", r.seen_fields, "point " .. r.id)
        assert.equal("fields,series,tags,time", r.seen_point, "point " .. r.id)
      end
      -- What the scripts returned: integer keys are a bad return value (the
      -- point passes as it came); the copy keeps its change.
      for _, r in ipairs(settle("SELECT * FROM ins_tag", 3)) do assert.equal(1, r.v) end
      for _, r in ipairs(settle("SELECT * FROM ins_field", 3)) do assert.is_nil(r["2"]) end
      for _, r in ipairs(settle("SELECT * FROM mark", 3)) do assert.is_nil(r.mark) end
      for _, r in ipairs(settle("SELECT * FROM copy", 3)) do assert.equal("yes", r.copied) end
      assert.matches('series="ins_tag" .*error="bad return value: tag keys must be non%-empty strings, got 2"',
        gw:log())
      assert.is_nil(gw:log():find('series="copy"', 1, true))
    end)
  end)

  describe("SIGHUP", function()
    local gw, dir

    lazy_setup(function()
      dir = scripts_dir { ["hup.lua"] = [[return function(p) p.tags.version = "one"; return p end]] }
      gw = luagw.start { influxd = db, config = { scripts = { dir = dir } } }
    end)
    lazy_teardown(function()
      if gw then gw:destroy() end
      if dir then proc.rmdir(dir) end
    end)

    local function version_of(id)
      assert.equal(204, (gw:post("/write", ("hup,id=%s v=1i %d"):format(id, 1700000300000000000 + #id))))
      return settle(("SELECT * FROM hup WHERE id = '%s'"):format(id), 1)[1].version
    end

    it("reloads the scripts; a broken script keeps the old one in force", function()
      assert.equal("one", version_of("a"))
      proc.write_file(dir .. "/hup.lua", [[return function(p) p.tags.version = "two" return p end]])
      assert.is_true(gw:signal("HUP"))
      assert.is_truthy(wait(function() return gw:log():find("scripts reloaded", 1, true) end, 5))
      assert.equal("two", version_of("bb"))
      -- Broken: the reload is refused, "two" stays.
      proc.write_file(dir .. "/hup.lua", [[return function(p) p.tags.version = "three" return p]])
      assert.is_true(gw:signal("HUP"))
      assert.is_truthy(wait(function() return gw:log():find("reload failed", 1, true) end, 5))
      assert.matches("reload failed, the running scripts stay.*hup%.lua:1:", gw:log())
      assert.equal("two", version_of("ccc"))
      assert.is_true(gw:running())
    end)
  end)

  it("luagw refuses to start with a script that does not load", function()
    local dir = scripts_dir { ["bad.lua"] = "return 42" }
    local gw = luagw.start { influxd = db, wait = false, config = { scripts = { dir = dir } } }
    local code = gw:wait_exit(10)
    assert.equal(1, code)
    assert.matches("bad%.lua: must return a function", gw:log())
    gw:destroy()
    proc.rmdir(dir)
  end)
end)
