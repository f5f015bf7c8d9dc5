-- POST /v1/debug/transform and the busted harness say what /write does
-- (gateway/trace.c, gateway/pipeline.c): the same bodies go to the real
-- luagw's /write (or /v1/points), to its /v1/debug/transform, and to a
-- harness opened on the same config file; the verdict of the debug answer is
-- /write's status and body, the harness answers the debug answer byte for
-- byte, and the lines of the debug answer, written straight into influxd,
-- store the rows that /write stored through luagw.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")
local harness = require("luagw.harness")
local cjson = require("cjson")

local JSON = { ["Content-Type"] = "application/json" }

-- Scripts of every kind of outcome, beside the shipped requests.lua.
local SCRIPTS = {
  ["requests.lua"] = assert(proc.read_file(luagw.ROOT .. "/scripts/requests.lua")),
  -- three points of one
  ["fan.lua"] = [[return function(p)
    local out = {}
    for i = 1, 3 do
      out[i] = { series = p.series, time = p.time, tags = { i = tostring(i), src = p.tags.src }, fields = p.fields }
    end
    return out end]],
  ["gone.lua"] = "return function(p) return nil end",
  -- an error on the points tagged boom (on_error: pass)
  ["boom.lua"] = [[return function(p) if p.tags.boom then error("kaboom") end p.tags.seen = "yes" return p end]],
  -- no fields left: refused, as InfluxDB cannot store it
  ["strip.lua"] = "return function(p) p.fields = {} return p end",
  -- more tags than listen.max_tags once the script ran
  ["wide.lua"] = [[return function(p) for i = 1, 9 do p.tags["w" .. i] = "x" end return p end]],
}

local CONFIG = {
  service = "luna-sender",
  include = luagw.ROOT .. "/config/series.yaml",
  listen = { max_tags = 8, max_value_bytes = 64, max_points = 40 },
}

-- The bodies: { name, body, json = true for /v1/points }.
local BODIES = {
  { "a requests point without status_code (refused by its declaration)",
    'requests,method=get,resource=/version request_id="x" 1700000000000000000' },
  { "subscription_error without fields (its declaration adds count=1i and service)",
    '{"series":"subscription_error","time":1700000001,"tags":{"error_code":"E42"}}', json = true },
  { "several series: scripts, declarations, limits, fan-out, drop, errors",
    table.concat({
      'requests,method=post,resource=/send,status_code=200 request_id="a",execution_time=0.25 1700000002000000000',
      'requests,method=get,resource=/v request_id="b",execution_time=1 1700000002000000001',
      "fan,src=l3 v=1i,f=0.1 1700000002000000002",
      "gone,src=l4 v=1i 1700000002000000003",
      "boom,boom=1 v=1i 1700000002000000004",
      "boom,src=l6 v=2i 1700000002000000005",
      "strip,src=l7 v=1i 1700000002000000006",
      "wide,src=l8 v=1i 1700000002000000007",
      "plain,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9 v=1i 1700000002000000008",
      "plain,long=" .. ("x"):rep(65) .. " v=1i 1700000002000000009",
      'ws_requests,src=l11 request_id="c",transport_time=0.1 1700000002000000010',
      "plain,src=l12 u=7u,t=true,s=\"q\\\"uote\" 1700000002000000011",
    }, "\n") },
  { "a JSON body of the same kinds",
    cjson.encode {
      { series = "fan", time = 1700000003, tags = { src = "j0" }, fields = { v = 1 } },
      { series = "boom", time = 1700000003, tags = { boom = "1" }, fields = { v = 1 } },
      { series = "requests", time = 1700000003, tags = { method = "put", resource = "/j", status_code = "201" },
        fields = { request_id = "j2", execution_time = 0.5 } },
      { series = "errors", time = 1700000003, tags = { status_code = "500" }, fields = { request_id = "j3" } },
      { series = "plain", time = 1700000003.25, tags = { src = "j4" }, fields = { f = 2.5 } },
    }, json = true },
  { "a bad line among good ones", "plain,src=p1 v=1i 1700000004000000000\nplain,src=p2 v= 1\nboom,src=p3 v=3i 1700000004000000002" },
  { "names that are not UTF-8 (echoed as \\xHH)", "plain,src=\255\254 v=1i 1700000005000000000" },
  { "more than listen.max_points (413, nothing stored)",
    (function()
      local t = {}
      for i = 1, 41 do t[i] = ("plain,src=m%d v=1i %d"):format(i, 1700000006000000000 + i) end
      return table.concat(t, "\n")
    end)() },
  { "a field given two types in one request (the later point refused)",
    'typed,src=t1 x=1i 1700000007000000000\ntyped,src=t2 x="s" 1700000007000000001\ntyped,src=t3 x=2i 1700000007000000002' },
  -- (y, not x: a query over every measurement reads a field of one name with one type)
  { "a field given two types in one JSON request",
    cjson.encode {
      { series = "typed_json", time = 1700000008, tags = { src = "j0" }, fields = { y = "s" } },
      { series = "typed_json", time = 1700000008, tags = { src = "j1" }, fields = { y = 1.5 } },
    }, json = true },
  -- requests.lua returns memo(f): after the first point of a shape, the
  -- rest are answered from the memo cache (the harness's, the worker's)
  { "requests points of two shapes, repeated (memo cache hits)",
    (function()
      local t = {}
      for i = 1, 8 do
        t[i] = ('requests,method=%s,resource=/m,status_code=200 request_id="m%d",execution_time=%d.5 17000000090000000%02d')
          :format(i % 2 == 0 and "get" or "post", i, i, i)
      end
      return table.concat(t, "\n")
    end)() },
}

describe("the debug transform and the harness agree with /write", function()
  local db, gw, h, dir
  local answers = {} -- name -> { status, body, debug text, debug doc }

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    db:create_database("direct")
    dir = proc.tmpdir("luagw-trace")
    for name, src in pairs(SCRIPTS) do proc.write_file(dir .. "/" .. name, src) end
    gw = luagw.start { influxd = db, config = luagw.merge({ scripts = { dir = dir } }, CONFIG) }
    h = assert(harness.new { config = gw.config_path })
    for _, case in ipairs(BODIES) do
      local name, body = case[1], case[2]
      local st, wbody = gw:post(case.json and "/v1/points" or "/write", body, case.json and JSON or nil)
      local dst, dtext = gw:post("/v1/debug/transform", body, case.json and JSON or nil)
      local hdoc, htext
      if case.json then hdoc, htext = h:run_json(body) else hdoc, htext = h:run_lines(body) end
      answers[name] = { status = st, body = wbody, debug_status = dst, text = dtext, harness = htext, hdoc = hdoc,
                        doc = dst == 200 and cjson.decode(dtext) or nil }
    end
  end)

  lazy_teardown(function()
    if h then h:close() end
    if gw then gw:destroy() end
    if db then db:destroy() end
    if dir then proc.rmdir(dir) end
  end)

  it("a requests point missing status_code: the debug answer shows /write's 400 and its rejection", function()
    local a = answers[BODIES[1][1]]
    assert.equal(400, a.status)
    assert.equal(400, a.doc.verdict.status)
    local want = 'series "requests": tag "status_code": required but missing'
    assert.equal("line 1: " .. want, cjson.decode(a.body).error)
    assert.equal("line 1: " .. want, a.doc.verdict.error)
    assert.equal(0, #a.doc.points)
    assert.equal(1, #a.doc.rejected)
    assert.equal(want, a.doc.rejected[1].error)
    assert.same({ dir .. "/requests.lua" }, a.doc.rejected[1].scripts)
  end)

  it("a subscription_error point: the debug answer shows count=1i and service, as stored", function()
    local a = answers[BODIES[2][1]]
    assert.equal(204, a.status)
    assert.equal(204, a.doc.verdict.status)
    local p = a.doc.points[1]
    assert.equal("subscription_error,error_code=E42,service=luna-sender count=1i 1700000001000000000", p.line)
    assert.equal(1, p.fields.count)
    assert.equal("integer", p.types.count)
    assert.equal("luna-sender", p.tags.service)
  end)

  it("every verdict is /write's status and JSON body", function()
    for _, case in ipairs(BODIES) do
      local a = answers[case[1]]
      if a.status == 413 then
        -- Refused whole before any work: by the debug endpoint too, in the same words.
        assert.equal(413, a.debug_status, case[1])
        assert.equal(a.body, a.text, case[1])
      else
        assert.equal(200, a.debug_status, case[1])
      end
      local verdict = a.status == 413 and a.hdoc.verdict or a.doc.verdict
      assert.equal(a.status, verdict.status, case[1])
      if a.status ~= 204 then
        local w = cjson.decode(a.body)
        for _, k in ipairs { "error", "line", "index", "accepted", "rejected" } do
          assert.equal(w[k], verdict[k], case[1] .. ": " .. k)
        end
      end
    end
    -- The mixed body: what each kind of outcome became.
    local doc = answers[BODIES[3][1]].doc
    assert.equal(400, doc.verdict.status)
    assert.equal(8, doc.verdict.accepted) -- 1 requests, 3 fan, 2 boom, 1 ws_requests, 1 plain
    assert.equal(5, doc.verdict.rejected)
    local errors = {}
    for _, r in ipairs(doc.rejected) do errors[r.src] = r.error end
    assert.matches('tag "status_code": required but missing', errors[2])
    assert.matches("at least one field", errors[7])
    assert.equal("10 tags, more than listen.max_tags (8)", errors[8])
    assert.equal("9 tags, more than listen.max_tags (8)", errors[9])
    assert.equal("a tag value of 65 bytes, longer than listen.max_value_bytes (64)", errors[10])
    assert.equal(1, #doc.errors)
    assert.same({ action = "pass", kind = "error", message = "kaboom", script = dir .. "/boom.lua:1",
      series = "boom", src = 5 }, doc.errors[1])
    assert.equal("body: 41 points, more than listen.max_points (40)", answers[BODIES[7][1]].hdoc.verdict.error)
  end)

  it("a field given two types in one request: the debug answer refuses the point /write refuses", function()
    -- body index -> the refused point's src (line, or JSON index) and the points kept
    for i, want in pairs { [8] = { src = 2, kept = 2, field = "x" }, [9] = { src = 1, kept = 1, field = "y" } } do
      local a, name = answers[BODIES[i][1]], BODIES[i][1]
      assert.equal(400, a.status, name)
      assert.equal(400, a.doc.verdict.status, name)
      assert.equal(cjson.decode(a.body).error, a.doc.verdict.error, name)
      assert.truthy(a.doc.verdict.error:find(('field "%s"'):format(want.field), 1, true), name)
      assert.equal(1, #a.doc.rejected, name)
      assert.equal(want.src, a.doc.rejected[1].src, name)
      assert.equal(want.kept, #a.doc.points, name)
    end
  end)

  it("memo'd requests points: the cache's answers are the script's, in the debug answer as stored", function()
    local a = answers[BODIES[#BODIES][1]]
    assert.equal(204, a.status)
    assert.equal(8, #a.doc.points)
    for i, p in ipairs(a.doc.points) do
      local m = i % 2 == 0 and "get" or "post"
      assert.equal(m:upper() .. ":/m", p.tags.route)
      assert.equal(("requests,method=%s,resource=/m,route=%s:/m,service=luna-sender,status_code=200 "
        .. 'request_id="m%d",execution_time=%d.5 17000000090000000%02d'):format(m, m:upper(), i, i, i), p.line)
    end
  end)

  it("the harness answers what the debug transform answers, byte for byte", function()
    for _, case in ipairs(BODIES) do
      local a = answers[case[1]]
      if a.doc then assert.equal(a.text, a.harness, case[1]) end
    end
  end)

  it("numbers read the same in the JSON as in the line; names that are not UTF-8 are echoed, not dropped", function()
    local text = answers[BODIES[3][1]].text
    assert.truthy(text:find('"transport_time":0.1}', 1, true))
    assert.truthy(text:find("transport_time=0.1 ", 1, true))
    assert.is_nil(text:find("0.10000000000000001", 1, true))
    local p = answers[BODIES[6][1]].doc.points[1]
    assert.equal("\\xff\\xfe", p.tags.src)
    assert.truthy(p.line:find("src=\\xff\\xfe", 1, true))
  end)

  it("the lines of the debug answer store the rows /write stored", function()
    local lines = {}
    for _, case in ipairs(BODIES) do
      for _, p in ipairs(answers[case[1]].hdoc.points) do lines[#lines + 1] = p.line end
    end
    -- (the non-UTF-8 line is echoed, not raw: it goes as /write got it)
    for i, l in ipairs(lines) do lines[i] = l:gsub("\\xff\\xfe", "\255\254") end
    assert.equal(204, (db:write(table.concat(lines, "\n"), "direct")))
    local function all(database)
      local out = {}
      for _, s in ipairs(db:series("SELECT * FROM /.*/ GROUP BY *", database)) do
        out[#out + 1] = s
      end
      return out
    end
    local function count(database)
      local n = 0
      for _, s in ipairs(all(database)) do n = n + #s.rows end
      return n
    end
    assert.is_true(wait(function() return count("luagw") == #lines end, 10),
      ("luagw stored %d rows, the debug answers %d lines"):format(count("luagw"), #lines))
    assert.same(all("direct"), all("luagw"))
    for _, m in ipairs { "requests", "fan", "boom", "plain", "ws_requests", "subscription_error", "errors", "typed",
      "typed_json" } do
      assert.same(db:field_types(m, "direct"), db:field_types(m, "luagw"), m)
    end
  end)
end)
