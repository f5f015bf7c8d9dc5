-- InfluxDB fidelity by class of input (docs/compatibility.md): bodies of
-- each class straight to the real influxd 1.6.7 and through the real luagw
-- binary (no scripts, default limits) to another, the stored series, field
-- types and rows compared line by line (spec/support/lpdiff.lua). Every case
-- names its class (a row of docs/compatibility.md) and what must happen:
--   stored         luagw stores exactly what influxd stores (with `via`,
--                  luagw gets another spelling that luagw takes on purpose:
--                  CRLF, `u` integers, precision=us)
--   refused        neither stores anything of it
--   luagw_refused  influxd stores it, luagw refuses it on purpose (400
--                  naming the line)
-- A failure prints the class, the body and what each side stored.
local cjson = require("cjson")
local lpdiff = require("support.lpdiff")

local P, T = lpdiff.prefix, lpdiff.ts

-- A case: class, expectation, the line (TS is the line's own time), and
-- options: lines = a function of the id giving the body's lines instead;
-- status = what luagw must answer (400 for luagw_refused);
-- via = what luagw gets ({ text = f(id) or TS-template, precision = ... });
-- precision; model = false (the model of influxd reads one line at a time,
-- in nanoseconds: not for bodies whose lines depend on each other).
local function C(class, expect, line, o)
  o = o or {}
  return { class = class, expect = expect, line = line, o = o }
end

local function fill(tmpl, i) return (tmpl:gsub("TS", T(i))) end

local function many(n, fmt)
  local t = {}
  for k = 1, n do t[k] = fmt:format(k) end
  return table.concat(t, ",")
end

-- A time in another shard than the others' (a year later).
local FAR = "1731536000000000000"

-- The id's line at its own time plus d nanoseconds.
local function at(i, d) return (tostring(lpdiff.T0 + i * 100 + d):gsub("LL$", "")) end

local CASES = {
  -- floats: every spelling influxd takes, and those it refuses
  C("float spellings", "stored", "m a=1.,b=.5,c=-.5,d=1e5,e=1E+05,f=1e-5,g=-0,h=-0.0,i=00.5,j=007,k=1e05,l=1.e5 TS"),
  C("float spellings", "stored", "m a=1e-400,b=4.9e-324,c=1.7976931348623157e308,d=0.1000000000000000055511151231257827 TS"),
  C("float spellings", "stored", "m a=12345678901234567890,b=1.0e+0,c=5e-324 TS"),
  C("float refused", "refused", "m v=+1 TS"), C("float refused", "refused", "m v=inf TS"),
  C("float refused", "refused", "m v=NaN TS"), C("float refused", "refused", "m v=-Inf TS"),
  C("float refused", "refused", "m v=1e309 TS"), C("float refused", "refused", "m v=1e TS"),
  C("float refused", "refused", "m v=1.2.3 TS"), C("float refused", "refused", "m v=--1 TS"),
  C("float refused", "refused", "m v=- TS"), C("float refused", "refused", "m v=. TS"),
  C("float refused", "refused", "m v=-.e1 TS"), C("float refused", "refused", "m v=0x10 TS"),
  C("float refused", "refused", "m v=1_0 TS"), C("float refused", "refused", "m v=1ee5 TS"),
  -- integers
  C("integer spellings", "stored", "m a=1i,b=-9223372036854775808i,c=9223372036854775807i,d=01i,e=-0i,f=00i TS"),
  C("integer refused", "refused", "m v=9223372036854775808i TS"), C("integer refused", "refused", "m v=-9223372036854775809i TS"),
  C("integer refused", "refused", "m v=1.5i TS"), C("integer refused", "refused", "m v=1e3i TS"),
  C("integer refused", "refused", "m v=+1i TS"), C("integer refused", "refused", "m v=1I TS"),
  C("integer refused", "refused", "m v=-i TS"), C("integer refused", "refused", "m v=1ii TS"),
  -- unsigned: influxd 1.6.7 refuses `u`; luagw takes it and writes `i`
  C("u integers", "stored", "m v=1i,w=9223372036854775807i TS", { via = { text = "m v=1u,w=9223372036854775807u TS" } }),
  C("u integers", "refused", "m v=9223372036854775808u TS"),
  C("u integers", "refused", "m v=-1u TS"), C("u integers", "refused", "m v=1U TS"),
  -- booleans
  C("boolean spellings", "stored", "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE TS"),
  C("boolean refused", "refused", "m v=tRUE TS"), C("boolean refused", "refused", "m v=yes TS"),
  C("boolean refused", "refused", "m v=TrUe TS"), C("boolean refused", "refused", "m v=truex TS"),
  -- strings
  C("strings", "stored", 'm a="",b="a\\\\b",c="a\\nb",d="a\\"b",e="a b,c=d",f="\\\\",g="x\ty" TS'),
  C("strings", "stored", 'm v="two\nlines" TS'),
  C("strings refused", "refused", "m v='x' TS"),
  C("text after a string", "luagw_refused", 'm v="x"y TS'),
  C("text after a string", "luagw_refused", 'm v="x""y" TS'),
  -- timestamps
  C("timestamps", "stored", "m v=1"),
  C("timestamps", "stored", "m v=1 -1"), C("timestamps", "stored", "m v=1 0"),
  C("timestamps", "stored", "m v=1 -9223372036854775806"), C("timestamps", "stored", "m v=1 9223372036854775806"),
  C("timestamps", "stored", "m v=1 00TS"), C("timestamps", "stored", "m v=1 -0"),
  C("timestamps refused", "refused", "m v=1 -9223372036854775807"), C("timestamps refused", "refused", "m v=1 9223372036854775807"),
  C("timestamps refused", "refused", "m v=1 +TS"), C("timestamps refused", "refused", "m v=1 1.7e18"),
  C("timestamps refused", "refused", "m v=1 TSi"), C("timestamps refused", "refused", "m v=1 0x10"),
  C("timestamps refused", "refused", "m v=1 TS 5"),
  -- precision
  C("precision", "stored", "m v=1 1700000000", { precision = "s" }),
  C("precision", "stored", "m v=1 1700000000123", { precision = "ms" }),
  C("precision", "stored", "m v=1 1700000000123456", { precision = "u" }),
  C("precision", "stored", "m v=1 1700000000123456789", { precision = "n" }),
  C("precision", "stored", "m v=1 28333333", { precision = "m" }),
  C("precision", "stored", "m v=1 472222", { precision = "h" }),
  C("precision", "stored", "m v=1 -1", { precision = "s" }),
  C("precision", "stored", "m v=1 2562047", { precision = "h" }),
  C("precision", "stored", "m v=1", { precision = "s" }),
  C("precision refused", "refused", "m v=1 9300000000", { precision = "s" }),
  C("precision refused", "refused", "m v=1 2562048", { precision = "h" }),
  -- influxd 1.6.7 reads us and µ as nanoseconds; luagw as microseconds (as 2.x)
  C("precision us", "stored", "m v=1 1700000000123456", { precision = "u", via = { precision = "us" } }),
  C("precision us", "stored", "m v=1 1700000000123456", { precision = "u", via = { precision = "\194\181" } }),
  -- influxd 1.6.7 reads an unknown precision as nanoseconds; luagw refuses it (as 1.8 and 2.x)
  C("precision unknown", "luagw_refused", "m v=1 1700000000123456789", { precision = "x" }),
  C("precision unknown", "luagw_refused", "m v=1 1700000000", { precision = "sec" }),
  -- whitespace
  C("whitespace", "stored", "m  v=1 TS"), C("whitespace", "stored", "m v=1  TS"),
  C("whitespace", "stored", "m v=1 TS "), C("whitespace", "stored", "m v=1   "),
  C("whitespace", "stored", "m \tv=1 TS"), C("whitespace", "stored", "m v=1 \tTS"),
  C("whitespace", "stored", "m,t=a  v=1 TS"), C("whitespace", "stored", "m\v v=1 TS"),
  C("whitespace", "stored", "x", { lines = function(i) return " " .. P(i) .. "m v=1 " .. T(i) end }),
  C("whitespace", "stored", "x", { lines = function(i) return "  \t " .. P(i) .. "m v=1 " .. T(i) end }),
  C("whitespace refused", "refused", "m v=1\tTS"), C("whitespace refused", "refused", "m\tv=1 TS"),
  C("whitespace refused", "refused", "m v=1 TS\t"), C("whitespace refused", "refused", "m v=1, w=2 TS"),
  C("whitespace refused", "refused", "m v=1 ,w=2 TS"), C("whitespace refused", "refused", "m v =1 TS"),
  C("whitespace refused", "refused", "m v= 1 TS"), C("whitespace refused", "refused", "m, v=1 TS"),
  C("whitespace refused", "refused", "m v=1\v TS"),
  -- blank lines and comments
  C("blank lines", "stored", "x", { lines = function(i) return { "", "   ", "\t", P(i) .. "m v=1 " .. T(i), "", "" } end }),
  C("comments", "stored", "x", { lines = function(i) return { "#", "# x", "  # y", "\t#z", P(i) .. "m v=1 " .. T(i) } end }),
  C("comments refused", "refused", "m v=1 TS # trailing"),
  C("comments refused", "refused", "x", { lines = function(i) return { "# c\\", P(i) .. "m v=1 " .. T(i) } end }),
  -- line ends: CRLF taken on purpose, a CR alone is a byte of the line
  C("CRLF", "stored", "x", { lines = function(i) return { P(i) .. "m v=1 " .. T(i), P(i) .. "m w=2 " .. T(i) } end,
    via = { text = function(i) return P(i) .. "m v=1 " .. T(i) .. "\r\n" .. P(i) .. "m w=2 " .. T(i) .. "\r\n" end },
    model = false }),
  C("CRLF", "stored", "x", { lines = function(i) return { "", P(i) .. "m v=1 " .. T(i) } end,
    via = { text = function(i) return "\r\n" .. P(i) .. "m v=1 " .. T(i) end } }),
  C("CR", "stored", "m\r v=1 TS"), C("CR", "stored", 'm v="a\rb" TS'), C("CR", "stored", "m,t=a\r v=1 TS"),
  C("CR refused", "refused", "m v=1\r TS"),
  -- unicode
  C("unicode", "stored", 'mé日本,tä😀=vö\226\128\174 fü="ä 😀",\226\128\168=1 TS'),
  C("unicode", "stored", "m\239\187\191 v=1 TS"),
  C("unicode", "stored", "x", { lines = function(i) return "\239\187\191" .. P(i) .. "m v=1 " .. T(i) end, model = false }),
  C("invalid UTF-8 in tags and strings", "stored", 'm,t=\255,\254=a v="\255\254",w="\195" TS'),
  -- (in a shard of their own, made by the warm-up: influxd answers 500 to
  -- such a name in the request that makes its shard, and once it holds one,
  -- some later writes to the shard get 500, "proto: ... invalid UTF-8")
  C("invalid UTF-8 in a series or field key", "luagw_refused", "m\255 v=1 " .. FAR, { model = false }),
  C("invalid UTF-8 in a series or field key", "luagw_refused", "m\192\128 v=1 " .. FAR, { model = false }),
  C("invalid UTF-8 in a series or field key", "luagw_refused", "m\237\160\128 v=1 " .. FAR, { model = false }),
  C("invalid UTF-8 in a series or field key", "luagw_refused", "m v=1,\255=2 " .. FAR, { model = false }),
  -- escapes and names
  C("escapes", "stored", "m,t=a\\tb v=1 TS"), C("escapes", "stored", "m\\ x,t\\ x=a v\\ x=1 TS"),
  C("escapes", "stored", 'm,t="x",\"u\"=y "v"=1 TS'), C("escapes", "stored", "m,t==b v=1 TS"),
  C("escapes refused", "refused", "m,t=a=b v=1 TS"), C("escapes refused", "refused", "m,t=\\\\ v=1 TS"),
  C("escapes refused", "refused", "m,t=a\\ v=1 TS"), C("escapes refused", "refused", "m,t= v=1 TS"),
  C("escapes refused", "refused", "m,t=,u=a v=1 TS"), C("escapes refused", "refused", "m v=1,=2 TS"),
  C("names", "stored", "m,_time=a,_field=b v=1,Time=2,_measurement=3 TS"),
  C("names refused", "refused", "m,time=x v=1 TS"),
  -- limits: the defaults refuse nothing influxd stores but names over
  -- max_key_bytes (1 KiB) and strings over max_value_bytes (64 KiB)
  C("tags per point", "stored", "m," .. many(256, "t%04d=v") .. " v=1 TS"),
  C("tags per point", "stored", "m," .. many(257, "t%04d=v") .. " v=1 TS"),
  C("tags per point", "stored", "m," .. many(1000, "t%04d=v") .. " v=1 TS"),
  C("fields per point", "stored", "m " .. many(1025, "f%04d=1i") .. " TS"),
  C("fields per point", "stored", "m " .. many(5000, "f%04d=1i") .. " TS"),
  C("names over max_key_bytes", "luagw_refused", ("m"):rep(1100) .. " v=1 TS"),
  C("names over max_key_bytes", "luagw_refused", "m " .. ("f"):rep(1100) .. "=1 TS"),
  C("strings over max_value_bytes", "luagw_refused", 'm v="' .. ("s"):rep(70000) .. '" TS'),
  C("series key over 64 KiB", "refused", ("m"):rep(65600) .. " v=1 TS"),
  C("series key over 64 KiB", "refused", "m,t=" .. ("v"):rep(65530) .. " f=1 TS"),
  -- a field given two types in one request: influxd keeps the first type
  -- and refuses the points of the other (the shard exists: see the warm-up)
  C("field type conflict", "stored", "x", { model = false, status = 400, lines = function(i)
    local j = lpdiff.id()
    return { P(i) .. "m v=1 " .. at(i, 1), P(i) .. "m v=2i " .. at(i, 2), P(i) .. "m,t=a v=3 " .. at(i, 3),
      P(j) .. "x v=1 " .. T(j) }
  end }),
  C("field type conflict", "stored", "x", { model = false, status = 400, lines = function(i)
    return { P(i) .. 'm v="a",w=1 ' .. at(i, 1), P(i) .. "m w=2i " .. at(i, 2), P(i) .. "m v=true,w=3 " .. at(i, 3),
      P(i) .. "m w=4 " .. at(i, 4) }
  end }),
  -- (an unsigned value is written as an integer to 1.x: no conflict)
  C("field type conflict", "stored", "x", { model = false, status = 204, lines = function(i)
    return { P(i) .. "m v=1i " .. at(i, 1), P(i) .. "m v=2i " .. at(i, 2) }
  end, via = { text = function(i) return P(i) .. "m v=1i " .. at(i, 1) .. "\n" .. P(i) .. "m v=2u " .. at(i, 2) end } }),
}

-- JSON through luagw, against the line protocol that says the same.
local function J(class, expect, line, json)
  return { class = class, expect = expect, line = line, json = json, o = {} }
end
local JSON_CASES = {
  J("JSON numbers", "stored", "m a=1i,b=1,c=100,d=-0,e=0i TS", '{"fields":{"a":1,"b":1.0,"c":1e2,"d":-0.0,"e":-0}}'),
  J("JSON numbers", "stored", "m a=-9223372036854775808i,b=1.7976931348623157e+308 TS",
    '{"fields":{"a":-9223372036854775808,"b":1.7976931348623157e308}}'),
  J("JSON strings", "stored", 'm,t=é v="a\\"b\\\\c\nd😀",w="a\tb" TS', '{"tags":{"t":"\\u00e9"},"fields":{"v":"a\\"b\\\\c\\nd\\ud83d\\ude00","w":"a\\tb"}}'),
  J("JSON tags", "stored", "m,a=200,b=true,c=1.5,d=1 v=1i TS", '{"tags":{"a":200,"b":true,"c":1.5,"d":1.0,"e":""},"fields":{"v":1}}'),
  J("JSON escapes", "stored", 'm\\ x\\,y,t\\ k=a\\,b\\=c f\\ \\=\\,\\"=1i TS', '{"series":"SER x,y","tags":{"t k":"a,b=c"},"fields":{"f =,\\"":1}}'),
  J("JSON repeated keys", "stored", "m,t=b v=2i TS", '{"tags":{"t":"a","t":"b"},"fields":{"v":1,"v":2}}'),
  J("JSON time field", "stored", "m v=1i TS", '{"fields":{"v":1,"time":5}}'),
  J("JSON refused", "refused", "m v=1e309 TS", '{"fields":{"v":1e309}}'),
  J("JSON refused", "refused", "m,time=x v=1i TS", '{"tags":{"time":"x"},"fields":{"v":1}}'),
  J("JSON series key over 64 KiB", "refused", "m,t=" .. ("v"):rep(65530) .. " f=1i TS",
    '{"tags":{"t":"' .. ("v"):rep(65530) .. '"},"fields":{"f":1}}'),
  J("JSON unsigned over int64", "refused", "m v=9223372036854775808u TS", '{"fields":{"v":9223372036854775808}}'),
  J("JSON null field", "luagw_refused", "m v=1i,w=2i TS", '{"fields":{"v":1,"w":2,"x":null}}'),
}

-- The body of case c, with its id (and its JSON, series and time filled in).
local function body_of(c)
  local i = lpdiff.id()
  local b = { class = c.class, precision = c.o.precision, model = c.o.model }
  local l = c.o.lines and c.o.lines(i) or P(i) .. fill(c.line, i)
  b.lines = type(l) == "table" and l or { l }
  if c.o.via then
    local v = c.o.via.text
    b.via = { precision = c.o.via.precision,
      text = type(v) == "function" and v(i) or v and P(i) .. fill(v, i) or table.concat(b.lines, "\n") }
  end
  if c.json then
    local j = c.json
    if not j:find('"series"') then j = j:gsub("^{", '{"series":"SER",') end
    if c.line:find("TS") then j = j:gsub("^{", ('{"time":"%s",'):format(lpdiff.rfc3339(i))) end
    b.json = j:gsub("SER", P(i) .. "m")
  end
  return b, i
end

describe("InfluxDB fidelity, by class of input, against the real influxd 1.6.7", function()
  local run, report, bodies = nil, nil, {}

  lazy_setup(function()
    run = lpdiff.start()
    -- the shard of the cases' times exists before them, as it does on a
    -- live database (influxd refuses the whole of a request that gives a
    -- field two types when the request creates the shard)
    local warm = lpdiff.fixed({ { "warm-up", function(i) return P(i) .. "w v=1 " .. T(i) end },
      { "warm-up", function(i) return P(i) .. "w v=1 " .. FAR end } })
    for _, c in ipairs(CASES) do bodies[#bodies + 1] = { body_of(c) } end
    for _, c in ipairs(JSON_CASES) do bodies[#bodies + 1] = { body_of(c) } end
    local all = { warm[1], warm[2] }
    for _, b in ipairs(bodies) do all[#all + 1] = b[1] end
    report = run:check(all)
  end)

  lazy_teardown(function()
    if run then run:stop() end
  end)

  local function each(list, offset)
    for n, c in ipairs(list) do
      it(("%s: %s"):format(c.class, c.expect), function()
        local b, id = bodies[offset + n][1], bodies[offset + n][2]
        local got = report.by_id[id]
        local text = b.json or b.via and b.via.text or table.concat(b.lines, "\n")
        local function mis()
          local out = {}
          for _, m in ipairs(report.mismatches) do
            if m.id == id then out[#out + 1] = ("[%s] %s"):format(m.kind, m.detail) end
          end
          return table.concat(out, "\n")
        end
        assert(got == c.expect, ("class %q: %q\n  %s, not %s (influxd %s, luagw %s)\n%s"):format(c.class,
          text:sub(1, 300), tostring(got), c.expect, tostring(b.direct), tostring(b.luagw), mis()))
        local status = c.o.status or c.expect == "luagw_refused" and 400
        assert(not status or b.luagw == status, ("class %q: luagw answered %s, not %d (influxd %s)"):format(c.class,
          tostring(b.luagw), status or 0, tostring(b.direct)))
      end)
    end
  end
  each(CASES, 0)
  each(JSON_CASES, #CASES)

  it("delivers everything it acknowledged: nothing dead-lettered, nothing left", function()
    assert.same({ 0, 0 }, { report.dropped, report.undelivered }, lpdiff.summary(report, 5))
  end)
end)

describe("what luagw answers where it differs on purpose", function()
  local luagw = require("support.luagw")
  local gw

  lazy_setup(function()
    gw = luagw.start { config = { monitoring = { host = "127.0.0.1", port = 9 } } }
  end)

  lazy_teardown(function()
    if gw then gw:destroy() end
  end)

  local function post(path, body, headers)
    local st, text = gw:post(path, body, headers)
    return st, text and text ~= "" and cjson.decode(text) or {}
  end

  it("names the line of a field given another type, and the line that gave the first", function()
    local st, r = post("/write", "m v=1 1\nm v=2i 2\nm v=3 3\n")
    assert.equal(400, st)
    assert.same({ 2, 1, 2 }, { r.accepted, r.rejected, r.line })
    assert.equal('partial write: line 2: field "v" of series "m" is an integer, but a float at line 1 of this request ' ..
      "(InfluxDB refuses the point: field type conflict)", r.error)
    st, r = post("/v1/points", '[{"series":"m","fields":{"v":"a"}},{"series":"m","fields":{"v":true}}]',
      { ["Content-Type"] = "application/json" })
    assert.equal(400, st)
    assert.equal('partial write: index 1: field "v" of series "m" is a boolean, but a string at index 0 of this ' ..
      "request (InfluxDB refuses the point: field type conflict)", r.error)
  end)

  it("refuses an unknown precision, naming the ones it takes", function()
    local st, r = post("/write?precision=sec", "m v=1 1\n")
    assert.equal(400, st)
    assert.equal('precision: unknown value "sec" (use ns, us, ms, s, m or h)', r.error)
  end)

  it("names the limit a point breaks, and the UTF-8 a name lacks", function()
    local st, r = post("/write", ("m"):rep(1100) .. " v=1\nm \255=1\n")
    assert.equal(400, st)
    assert.equal(2, r.rejected)
    assert.matches("line 1: a series name of 1100 bytes, longer than listen.max_key_bytes %(1024%)", r.error)
    st, r = post("/write", "m \255=1\n")
    assert.equal('line 1: column 3: field key "\\xff" is not valid UTF-8 (InfluxDB 1.x cannot open a shard ' ..
      "holding such a name after a restart)", r.error)
  end)
end)
