-- gateway/lp_parse.c, lp_encode.c, lp_names.c: InfluxDB 1.x line protocol parser and encoder.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

-- Each declaration on its own, so that another spec declaring the same
-- function in this busted run does not make the others fail.
for _, decl in ipairs({
  "int gw_lp_precision(const char *name, int64_t *ns_per_unit);",
  "int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns,"
    .. " gw_arena_t *a, gw_points_t *out, gw_result_t *res);",
  "int gw_lp_encode(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen);",
}) do
  pcall(ffi.cdef, decl)
end

local NO_UINT = 1
local NOW = 1700000000123456789LL
local FT = { float = 0, int = 1, uint = 2, string = 3, bool = 4 }

local ctx = core.context()

-- Parse body (a Lua string, or a cdata buffer with its length) and return
-- the points as tables, the result as a table, and the raw points.
local function parse(body, ns_per_unit, len)
  ctx:reset()
  local rc = lib.gw_lp_parse(body, len or #body, ns_per_unit or 1, NOW, ctx.arena,
                             ctx.points, ctx.result)
  assert.are.equal(0, rc)
  local pts = {}
  for i = 0, ctx.points[0].n - 1 do pts[#pts + 1] = core.point_table(ctx.points[0].v[i]) end
  return pts, core.result_table(ctx.result[0]), ctx.points[0]
end

-- Parse a body that must hold exactly one good point.
local function one(body, ns_per_unit)
  local pts, res = parse(body, ns_per_unit)
  assert.are.same({ 1, 0, false }, { #pts, res.rejected, res.has_error }, body:sub(1, 80))
  return pts[1]
end

-- Parse a body holding one bad line; return its message.
local function bad(body)
  local pts, res = parse(body)
  assert.are.equal(0, #pts, body:sub(1, 80))
  assert.are.equal(1, res.rejected, body:sub(1, 80))
  assert.are.equal("line", res.where_kind)
  return res.msg
end

-- Encode a raw point; returns rc, the text appended, the error message.
local function encode(p, flags)
  local out = ffi.new("gw_buf_t[1]")
  local err = ffi.new("char[256]")
  local rc = lib.gw_lp_encode(out, p, flags or 0, err, 256)
  local text = out[0].data ~= nil and ffi.string(out[0].data, out[0].len) or ""
  lib.gw_buf_free(out)
  return rc, text, ffi.string(err)
end

-- Parse one line and encode its point back.
local function roundtrip(line, flags)
  local _, res, raw = parse(line)
  assert.are.equal(0, res.rejected, res.msg)
  assert.are.equal(1, raw.n)
  local rc, text, err = encode(raw.v[0], flags)
  assert.are.equal(0, rc, err)
  return text
end

-- Build a gw_point_t for the encoder. spec: {series=, time=, tags={{k,v}...},
-- fields={{k, type, value}...}}. The Lua strings it points at stay alive as
-- long as the point does.
local anchors = setmetatable({}, { __mode = "k" })
local function mkpoint(spec)
  local keep = {}
  local function s(str)
    keep[#keep + 1] = str
    local v = ffi.new("gw_str_t")
    v.p, v.n = str, #str
    return v
  end
  local p = ffi.new("gw_point_t")
  p.series = s(spec.series or "m")
  p.time_ns = spec.time or 0
  local tags, fields = spec.tags or {}, spec.fields or { { "f", "float", 1 } }
  local ta = ffi.new("gw_tag_t[?]", math.max(#tags, 1))
  for i, t in ipairs(tags) do
    ta[i - 1].key, ta[i - 1].val = s(t[1]), s(t[2])
  end
  local fa = ffi.new("gw_field_t[?]", math.max(#fields, 1))
  for i, f in ipairs(fields) do
    local d = fa[i - 1]
    d.key = s(f[1])
    d.type = type(f[2]) == "number" and f[2] or FT[f[2]]
    if f[2] == "float" then d.v.f = f[3]
    elseif f[2] == "int" then d.v.i = f[3]
    elseif f[2] == "uint" then d.v.u = f[3]
    elseif f[2] == "string" then d.v.s = s(f[3])
    elseif f[2] == "bool" then d.v.b = f[3] and 1 or 0 end
  end
  p.tags, p.ntags, p.fields, p.nfields = ta, #tags, fa, #fields
  keep.ta, keep.fa = ta, fa
  anchors[p] = keep
  return p
end

local function bits(x)
  local u = ffi.new("union { double d; uint64_t u; }")
  u.d = x
  return tostring(u.u)
end

local function ordered_keys(raw_point)
  local tk, fk = {}, {}
  for i = 0, raw_point.ntags - 1 do tk[#tk + 1] = core.str(raw_point.tags[i].key) end
  for i = 0, raw_point.nfields - 1 do fk[#fk + 1] = core.str(raw_point.fields[i].key) end
  return tk, fk
end

describe("gw_lp_precision", function()
  local units = {
    [""] = 1, n = 1, ns = 1, u = 1000, us = 1000, ["\xc2\xb5"] = 1000,
    ms = 1000000, s = 1000000000, m = 60000000000, h = 3600000000000,
  }
  for name, ns in pairs(units) do
    it(("maps %q to %d ns"):format(name, ns), function()
      local v = ffi.new("int64_t[1]", -7)
      assert.are.equal(0, lib.gw_lp_precision(name, v))
      assert.are.equal(tostring(ffi.new("int64_t", ns)), tostring(v[0]))
    end)
  end

  it("treats NULL as nanoseconds", function()
    local v = ffi.new("int64_t[1]", -7)
    assert.are.equal(0, lib.gw_lp_precision(nil, v))
    assert.are.equal("1LL", tostring(v[0]))
  end)

  it("rejects unknown names and leaves the output alone", function()
    for _, name in ipairs({ "x", "S", "MS", "sec", "nanoseconds", "n ", " s", "hh" }) do
      local v = ffi.new("int64_t[1]", -7)
      assert.are.equal(-1, lib.gw_lp_precision(name, v), name)
      assert.are.equal("-7LL", tostring(v[0]))
    end
  end)
end)

describe("gw_lp_parse", function()
  describe("points", function()
    it("parses measurement, tags, fields and time, in input order", function()
      local pts, res, raw = parse("cpu,zone=b,host=a usage=0.5,count=3i,name=\"x\",up=true 1234\n")
      assert.are.equal(0, res.rejected)
      assert.are.same({
        series = "cpu", time_ns = pts[1].time_ns, src = 1,
        tags = { zone = "b", host = "a" },
        fields = { usage = 0.5, count = pts[1].fields.count, name = "x", up = true },
        types = { usage = "float", count = "int", name = "string", up = "bool" },
      }, pts[1])
      assert.are.equal("3LL", tostring(pts[1].fields.count))
      assert.are.equal("1234LL", tostring(pts[1].time_ns))
      local tk, fk = ordered_keys(raw.v[0])
      assert.are.same({ "zone", "host" }, tk)
      assert.are.same({ "usage", "count", "name", "up" }, fk)
    end)

    it("gives lines without a timestamp the time of receipt", function()
      assert.are.equal(tostring(NOW), tostring(one("m f=1").time_ns))
      assert.are.equal(tostring(NOW), tostring(one("m f=1   ").time_ns))
    end)

    it("numbers points by their 1-based line", function()
      local pts = parse("a f=1\nb f=2\n\nc f=3")
      assert.are.same({ 1, 2, 4 }, { pts[1].src, pts[2].src, pts[3].src })
      assert.are.same({ "a", "b", "c" }, { pts[1].series, pts[2].series, pts[3].series })
    end)

    it("handles a point with many tags and fields (beyond the per-call scratch)", function()
      local t, f = {}, {}
      for i = 1, 200 do
        t[#t + 1] = ("t%03d=v%d"):format(i, i)
        f[#f + 1] = ("f%03d=%di"):format(i, i)
      end
      local _, res, raw = parse("m," .. table.concat(t, ",") .. " " .. table.concat(f, ",") .. " 1\nn g=1")
      assert.are.equal(0, res.rejected)
      assert.are.equal(2, raw.n)
      local p = raw.v[0]
      assert.are.same({ 200, 200 }, { p.ntags, p.nfields })
      assert.are.equal("t200", core.str(p.tags[199].key))
      assert.are.equal("v200", core.str(p.tags[199].val))
      assert.are.equal("f200", core.str(p.fields[199].key))
      assert.are.equal("200LL", tostring(p.fields[199].v.i))
      assert.are.equal("n", core.str(raw.v[1].series))
    end)

    it("borrows unescaped strings from the body and unescapes the others elsewhere", function()
      local s = 'm\\ x,k=v,e\\=k=v s="plain",t="q\\"d" 1'
      local buf = ffi.new("char[?]", #s)
      ffi.copy(buf, s, #s)
      local _, res, raw = parse(buf, 1, #s)
      assert.are.equal(0, res.rejected)
      local lo, hi = ffi.cast("uintptr_t", buf), ffi.cast("uintptr_t", buf) + #s
      local function inside(str) local a = ffi.cast("uintptr_t", str.p) return a >= lo and a < hi end
      local p = raw.v[0]
      assert.is_false(inside(p.series))         -- "m\ x" -> "m x"
      assert.is_true(inside(p.tags[0].key))     -- k
      assert.is_true(inside(p.tags[0].val))     -- v
      assert.is_false(inside(p.tags[1].key))    -- e\=k
      assert.is_true(inside(p.fields[0].v.s))   -- plain
      assert.is_false(inside(p.fields[1].v.s))  -- q\"d
      assert.are.equal('q"d', core.str(p.fields[1].v.s))
    end)

    it("never reads past len (the body is not NUL-terminated)", function()
      local function parse_prefix(s, n)
        local buf = ffi.new("char[?]", #s)
        ffi.copy(buf, s, #s)
        return parse(buf, 1, n)
      end
      local pts = parse_prefix("m f=1 59", 7)
      assert.are.equal("5LL", tostring(pts[1].time_ns))
      pts = parse_prefix("m f=12", 5)
      assert.are.equal(1, pts[1].fields.f)
      pts = parse_prefix("m f=tX", 5)
      assert.is_true(pts[1].fields.f)
      local _, res = parse_prefix('m s="ab"', 7)
      assert.are.equal(1, res.rejected)
      assert.are.equal('column 5: field "s": unterminated string', res.msg)
      pts = parse_prefix("m,t=a\\ f=1", 6) -- ends right after a backslash
      assert.are.equal(0, #pts)
      pts = parse_prefix("", 0)
      assert.are.equal(0, #pts)
    end)
  end)

  describe("field values", function()
    local floats = {
      ["1"] = 1, ["-1.5"] = -1.5, ["1e3"] = 1000, ["1E3"] = 1000, ["1e+3"] = 1000,
      ["2.5e-3"] = 0.0025, ["1."] = 1, [".5"] = 0.5, ["-.5"] = -0.5, ["007"] = 7,
      ["0.000"] = 0, ["1e308"] = 1e308, ["1e-400"] = 0, ["123456789.125"] = 123456789.125,
    }
    for text, want in pairs(floats) do
      it(("accepts float %s"):format(text), function()
        local p = one("m f=" .. text)
        assert.are.equal("float", p.types.f)
        assert.are.equal(want, p.fields.f)
      end)
    end

    it("keeps the sign of -0", function()
      local p = one("m f=-0")
      assert.are.equal(bits(-0.0), bits(p.fields.f))
      assert.are.equal(bits(0.0), bits(one("m f=0").fields.f))
    end)

    it("reads floats bit-exact, including ones needing 17 digits", function()
      for _, text in ipairs({
        "0.30000000000000004", "0.1", "1e-300", "5e-324", "4.9406564584124654e-324",
        "1.7976931348623157e308", "2.2250738585072014e-308", "2.2250738585072009e-308",
        "9007199254740993", "3.141592653589793238462643383279", "123456789012345678901234567890",
        "0.000000000000000000000000000001", "1.00000000000000011102230246251565404236316680908203125",
        "-8.98846567431158e307", "1e23", "8.41e21", "5e-10",
        -- 17 digits above 2^53: (double)m / 10^k would round twice and miss
        "45232329436.829845", "39235614.140976203", "4.5937549369220910", "921908698593.12580",
      }) do
        local p = one("m f=" .. text)
        assert.are.equal(bits(tonumber(text)), bits(p.fields.f), text)
      end
    end)

    it("reads plain decimals at the edges of the one-pass fast path bit-exact", function()
      local texts = { "-0.0", "0.000", "000123.4500", ".5", "5.", "-.5", "9007199254740992",
                      "9007199254740993.0", "900719925474099.3", "1234567890123456789.5",
                      "0.0000000000000000000001", "0.00000000000000000000001", "1.0000000000000000000001",
                      "0000000000000000000000000.1", "12345678901234567890", "-4503599627370497.5" }
      for n = 1, 24 do
        texts[#texts + 1] = ("9"):rep(n)
        texts[#texts + 1] = "0." .. ("3"):rep(n)
        texts[#texts + 1] = ("7"):rep(n) .. ".25"
      end
      for _, text in ipairs(texts) do
        local p = one("m f=" .. text)
        assert.are.equal(bits(tonumber(text)), bits(p.fields.f), text)
      end
    end)

    it("reads integers at the int64 limits exactly", function()
      local p = one("m a=-9223372036854775808i,b=9223372036854775807i,c=0i,d=-0i,e=007i")
      assert.are.equal("-9223372036854775808LL", tostring(p.fields.a))
      assert.are.equal("9223372036854775807LL", tostring(p.fields.b))
      assert.are.equal("0LL", tostring(p.fields.c))
      assert.are.equal("0LL", tostring(p.fields.d))
      assert.are.equal("7LL", tostring(p.fields.e))
      assert.are.equal("int", p.types.a)
    end)

    it("reads unsigned integers up to uint64 max exactly", function()
      local p = one("m a=18446744073709551615u,b=0u")
      assert.are.equal("18446744073709551615ULL", tostring(p.fields.a))
      assert.are.equal("0ULL", tostring(p.fields.b))
      assert.are.equal("uint", p.types.a)
    end)

    it("reads every boolean spelling", function()
      for _, t in ipairs({ "t", "T", "true", "True", "TRUE" }) do
        local p = one("m b=" .. t)
        assert.are.equal("bool", p.types.b)
        assert.is_true(p.fields.b, t)
      end
      for _, f in ipairs({ "f", "F", "false", "False", "FALSE" }) do
        assert.is_false(one("m b=" .. f).fields.b, f)
      end
    end)

    it("reads strings, empty ones and ones with commas, spaces and equals", function()
      local p = one('m a="",b="x, y=z",c="é\\n" 5')
      assert.are.same({ a = "", b = "x, y=z", c = "é\\n" }, p.fields)
      assert.are.equal("5LL", tostring(p.time_ns))
    end)

    it("reads a string spanning lines and keeps counting lines after it", function()
      local pts, res = parse('a f=1\nb s="one\ntwo\r\nthree",x=1i 7\nc f=2\n')
      assert.are.equal(0, res.rejected)
      assert.are.equal(3, #pts)
      assert.are.equal("one\ntwo\r\nthree", pts[2].fields.s)
      assert.are.equal(2, pts[2].src)
      assert.are.equal("7LL", tostring(pts[2].time_ns))
      assert.are.equal(5, pts[3].src)
    end)

    local bad_values = {
      ["+1"] = 'invalid value "+1"', ["NaN"] = 'invalid value "NaN"',
      ["nan"] = 'invalid value "nan"', ["Inf"] = 'invalid value "Inf"',
      ["inf"] = 'invalid value "inf"', ["-inf"] = 'invalid number "-inf"',
      ["-Inf"] = 'invalid number "-Inf"', ["-nan"] = 'invalid number "-nan"',
      ["infinity"] = 'invalid value "infinity"', ["abc"] = 'invalid value "abc"',
      ["1.2.3"] = 'invalid number "1.2.3"', ["."] = 'invalid number "."',
      ["-"] = 'invalid number "-"', ["-."] = 'invalid number "-."',
      ["1e"] = 'invalid number "1e"', ["1e+"] = 'invalid number "1e+"',
      ["e5"] = 'invalid value "e5"', ["0x10"] = 'invalid number "0x10"',
      ["1_000"] = 'invalid number "1_000"', ["1-2"] = 'invalid number "1-2"',
      ["1i5"] = 'invalid number "1i5"', ["1.5i"] = 'invalid number "1.5i"',
      ["1e3i"] = 'invalid number "1e3i"', ["1.0u"] = 'invalid number "1.0u"',
      ["i"] = 'invalid value "i"', ["-i"] = 'invalid number "-i"',
      ["1ii"] = 'invalid number "1ii"', ["1iu"] = 'invalid number "1iu"',
      ["1e400"] = 'float out of range "1e400"', ["-1e400"] = 'float out of range "-1e400"',
      ["9223372036854775808i"] = 'integer out of range "9223372036854775808i"',
      ["-9223372036854775809i"] = 'integer out of range "-9223372036854775809i"',
      ["99999999999999999999999i"] = 'integer out of range "99999999999999999999999i"',
      ["18446744073709551616u"] = 'unsigned integer out of range "18446744073709551616u"',
      ["-1u"] = 'unsigned integer cannot be negative "-1u"',
      ["-0u"] = 'unsigned integer cannot be negative "-0u"',
      ["tru"] = 'invalid boolean "tru"', ["yes"] = 'invalid value "yes"',
      ["tRUE"] = 'invalid boolean "tRUE"', ["Falsey"] = 'invalid boolean "Falsey"',
      ["fals"] = 'invalid boolean "fals"', ["TRue"] = 'invalid boolean "TRue"',
    }
    for text, want in pairs(bad_values) do
      it(("rejects %s as a value"):format(text), function()
        assert.are.equal('column 5: field "f": ' .. want, bad("m f=" .. text))
      end)
    end
  end)

  describe("escapes", function()
    it("unescapes comma, space, equals and quote in a measurement, and nothing else", function()
      -- InfluxDB 1.x reads the name with escape.Unescape
      local p = one('a\\,b\\ c\\=d\\"e\\x f=1')
      assert.are.equal('a,b c=d"e\\x', p.series)
    end)

    it("unescapes comma, equals and space in tag keys, tag values and field keys", function()
      local p = one("m,k\\,\\=\\ 1=v\\,\\=\\ 2 f\\,\\=\\ 3=1")
      assert.are.same({ ["k,= 1"] = "v,= 2" }, p.tags)
      assert.are.same({ ["f,= 3"] = 1 }, p.fields)
    end)

    it("keeps a backslash before any other byte, in every position", function()
      local p = one("a\\b,k\\x=c:\\path f\\y=\"q\\w\\n\" 1")
      assert.are.equal("a\\b", p.series)
      assert.are.same({ ["k\\x"] = "c:\\path" }, p.tags)
      assert.are.same({ ["f\\y"] = "q\\w\\n" }, p.fields)
    end)

    it("reads a doubled backslash in a name as a backslash that escapes what follows", function()
      -- as InfluxDB 1.x: the second backslash escapes the comma...
      local p = one("m,t=a\\\\,b,u=c f=1")
      assert.are.same({ t = "a\\,b", u = "c" }, p.tags)
      -- ...so an equals sign after it is inside the value, and unescaped
      assert.are.equal('column 10: tag "t": unescaped "=" in value "a\\\\,u=b"', bad("m,t=a\\\\,u=b f=1"))
    end)

    it("unescapes quote and backslash in string values", function()
      local p = one([[m s="say \"hi\" \\o/",t="\\",u="\\\"" 1]])
      assert.are.equal([[say "hi" \o/]], p.fields.s)
      assert.are.equal([[\]], p.fields.t)
      assert.are.equal([[\"]], p.fields.u)
    end)

    it("ends a string at a quote after an even run of backslashes", function()
      local p = one([[m s="a\\\\",n=1i]])
      assert.are.equal([[a\\]], p.fields.s)
      assert.are.equal("1LL", tostring(p.fields.n))
    end)

    -- InfluxDB's field scanner pairs a backslash with any byte; its key
    -- scanners only look at the byte before a delimiter.
    it("pairs a backslash with any byte in a field key, and unescapes , space = and quote", function()
      local p = one([[m a\\\,b=1,q\"=2,c\x\\d=3]])
      assert.are.same({ ["a\\\\,b"] = 1, ['q"'] = 2, ["c\\x\\\\d"] = 3 }, p.fields)
      -- a doubled backslash before a comma leaves the comma to end the key
      assert.are.equal('column 3: field "a\\\\": missing "="', bad([[m a\\,b=1]]))
      assert.are.equal('column 3: field "a\\\\": missing "="', bad([[m a\\ b=1]]))
    end)

    it("refuses the names influxd would read otherwise, and says why", function()
      for _, c in ipairs({
        -- influxd's readers take the '=' after the pair for escaped; this one kills influxd 1.6.7
        { [[m \ b\\="\\t =" 1]], 'column 3: field key " b\\\\" ends with a backslash' },
        { [[m k\\="=" 1]], 'column 3: field key "k\\\\" ends with a backslash' },
        -- stored by influxd, never read back
        { [[a\\,b v=1]], [[column 1: series "a\,b" has a backslash before ',', ' ', '=' or '"' (InfluxDB 1.x stores such a series but cannot read it back)]] },
        { [[a\\"b v=1]], [[column 1: series "a\"b" has a backslash before ',', ' ', '=' or '"' (InfluxDB 1.x stores such a series but cannot read it back)]] },
        -- influxd's line splitter would take the space for the end of the series
        { [[m,t=a\\ b v=1]], [[column 5: tag "a\ b" has an odd run of backslashes before a space (InfluxDB 1.x would split the line there)]] },
        { [[m,t\\ =a v=1]], [[column 3: tag "t\ " has an odd run of backslashes before a space (InfluxDB 1.x would split the line there)]] },
      }) do
        assert.are.equal(c[2], bad(c[1]))
      end
    end)

    it("unescapes a measurement's = and quote, and keeps what influxd keeps", function()
      assert.are.equal('a=b"c', one([[a\=b\"c v=1]]).series)
      assert.are.same({ t = [[a\"b]] }, one([[m,t=a\"b v=1]]).tags)
      assert.are.same({ t = [[a\,b]] }, one([[m,t=a\\,b v=1]]).tags)
      assert.are.same({ ["k\\\\\\\\ "] = "v" }, one([[m,k\\\\\ =v f=1]]).tags) -- an even run before the space
    end)

    it("reads a tag value that starts with '=' as influxd does", function()
      assert.are.same({ t = "=x", u = "=" }, one("m,t==x,u== v=1").tags)
    end)
  end)

  describe("what influxd keeps of a line", function()
    it("keeps the last value of a field key given twice, the types being the same", function()
      local pts, res, raw = parse('m v=1,w="a",v=2,w="b",v=3 1\n')
      assert.are.equal(0, res.rejected)
      assert.are.same({ v = 3, w = "b" }, pts[1].fields)
      assert.are.equal(2, raw.v[0].nfields)
      assert.are.equal(0, raw.v[0].lp_clean) -- written from its values
      -- among many fields too
      local f = {}
      for i = 1, 40 do f[#f + 1] = ("f%d=%di"):format(i, i) end
      local p = one("m " .. table.concat(f, ",") .. ",f7=0i,f40=1i")
      assert.are.equal("0LL", tostring(p.fields.f7))
      assert.are.equal("1LL", tostring(p.fields.f40))
      assert.are.same('column 1: field "f7" has values of two types (InfluxDB refuses the point: field type conflict)',
        bad("m " .. table.concat(f, ",") .. ",f7=0"))
    end)

    it("drops a field named time and keeps the others, as influxd does", function()
      local pts, res, raw = parse("m time=1,v=2,time=\"x\" 5\n")
      assert.are.equal(0, res.rejected)
      assert.are.same({ v = 2 }, pts[1].fields)
      assert.are.equal(0, raw.v[0].lp_clean)
      -- still a value influxd would read
      assert.are.equal('column 8: field "time": invalid value "x"', bad("m time=x,v=2"))
    end)

    it("refuses a NUL byte in every name and string value, and skips it as a blank", function()
      for _, c in ipairs({
        { "m\0x v=1", "column 2: NUL byte in the series" },
        { "m,t\0=a v=1", "column 4: NUL byte in a tag key" },
        { "m,t=a\0 v=1", 'column 6: NUL byte in the value of tag "t"' },
        { "m,t=a,u=b\0c v=1", 'column 10: NUL byte in the value of tag "u"' },
        { "m f\0=1", "column 4: NUL byte in a field key" },
        { "m f=\"a\0b\"", 'column 5: field "f": NUL byte in a string value' },
        { "m f=\"a\\\"\0\"", 'column 5: field "f": NUL byte in a string value' },
      }) do
        assert.are.equal(c[2], bad(c[1]))
      end
      assert.are.same({ f = 1 }, one("\0m \0f=1 \0").fields)
    end)

    it("refuses a series or field key that is not UTF-8, and takes any bytes in tags and strings", function()
      local why = "is not valid UTF-8 (InfluxDB 1.x cannot open a shard holding such a name after a restart)"
      for _, c in ipairs({
        { "m\255 v=1", 'column 1: series "m\255" ' .. why },
        { "abc\195 v=1", 'column 1: series "abc\195" ' .. why },           -- cut short
        { "m\192\128 v=1", 'column 1: series "m\192\128" ' .. why },        -- overlong
        { "m\237\160\128 v=1", 'column 1: series "m\237\160\128" ' .. why }, -- a surrogate
        { "m\244\144\128\128 v=1", 'column 1: series "m\244\144\128\128" ' .. why }, -- beyond U+10FFFF
        { "m\\,x\255 v=1", 'column 1: series "m,x\255" ' .. why },      -- unescaped
        { "m,t=a \255=1", 'column 7: field key "\255" ' .. why },
        { "m v=1,w\\\255=1", 'column 7: field key "w\\\255" ' .. why }, -- a backslash pairs with it
        { "m v=1,\195\169\255=1", 'column 7: field key "\195\169\255" ' .. why },
      }) do
        assert.are.equal(c[2], bad(c[1]))
      end
      -- valid UTF-8 anywhere, and any bytes in tags and string values
      local p = one("m\195\169\\\226\130\172,t\255=\254 f\\\195\169=\"\255\",\240\159\152\128=1i")
      assert.are.equal("m\195\169\\\226\130\172", p.series)
      assert.are.same({ ["t\255"] = "\254" }, p.tags)
      assert.are.same({ ["f\\\195\169"] = "\255", ["\240\159\152\128"] = 1LL }, p.fields)
      -- past 16 bytes, where the scan goes a block at a time
      assert.are.equal(('x'):rep(20) .. "\195\169", one(('x'):rep(20) .. "\195\169 v=1").series)
      assert.are.equal('column 1: series "' .. ('x'):rep(20) .. '\255" ' .. why, bad(('x'):rep(20) .. "\255 v=1"))
    end)
  end)

  describe("timestamps", function()
    local units = { 1, 1000, 1000000, 1000000000, 60000000000, 3600000000000 }
    for _, ns in ipairs(units) do
      it(("scales by %d ns per unit"):format(ns), function()
        local p = one("m f=1 3", ns)
        assert.are.equal(tostring(3LL * ns), tostring(p.time_ns))
        p = one("m f=1 -2", ns)
        assert.are.equal(tostring(-2LL * ns), tostring(p.time_ns))
      end)
    end

    it("accepts InfluxDB's whole range and nothing beyond", function()
      assert.are.equal("9223372036854775806LL", tostring(one("m f=1 9223372036854775806").time_ns))
      assert.are.equal("-9223372036854775806LL", tostring(one("m f=1 -9223372036854775806").time_ns))
      for _, t in ipairs({ "9223372036854775807", "-9223372036854775807", "-9223372036854775808",
                           "9223372036854775808", "99999999999999999999999" }) do
        assert.are.equal(('column 7: timestamp out of range "%s" (InfluxDB stores 1677-09-21 to 2262-04-11)'):format(t),
                         bad("m f=1 " .. t))
      end
    end)

    it("rejects timestamps that overflow once scaled", function()
      assert.are.equal("9223369200000000000LL", tostring(one("m f=1 2562047", 3600000000000).time_ns))
      local _, res = parse("m f=1 2562048", 3600000000000)
      assert.are.equal(1, res.rejected)
      assert.matches("timestamp out of range \"2562048\"", res.msg, 1, true)
      _, res = parse("m f=1 -9223372037", 1000000000)
      assert.are.equal(1, res.rejected)
    end)

    it("tolerates several spaces or tabs before the timestamp and spaces after it", function()
      assert.are.equal("42LL", tostring(one("m f=1 \t  42   ").time_ns))
      assert.are.equal("42LL", tostring(one("m  \t f=1 42").time_ns))
    end)
  end)

  describe("lines", function()
    it("skips comments, blank and whitespace-only lines", function()
      local pts, res = parse("# head\n\n   \n\t\n  # indented comment f=1\nm f=1\n#m f=2\n")
      assert.are.equal(0, res.rejected)
      assert.are.equal(1, #pts)
      assert.are.equal(6, pts[1].src)
    end)

    it("strips CR before LF, and at the end of the body", function()
      local pts, res = parse("a f=1 1\r\nb,t=x s=\"v\"\r\n\r\nc f=t\r")
      assert.are.equal(0, res.rejected)
      assert.are.equal(3, #pts)
      assert.are.equal("1LL", tostring(pts[1].time_ns))
      assert.are.same({ t = "x" }, pts[2].tags)
      assert.are.equal("v", pts[2].fields.s)
      assert.is_true(pts[3].fields.f)
      assert.are.same({ 1, 2, 4 }, { pts[1].src, pts[2].src, pts[3].src })
    end)

    it("skips leading spaces, tabs and NULs, as InfluxDB does", function()
      local p = one(" \t\0m f=1")
      assert.are.equal("m", p.series)
      local pts, res = parse("\0\0\0\n\t\nm f=1")
      assert.are.same({ 1, 0, 3 }, { #pts, res.rejected, pts[1].src })
    end)

    it("joins a line to the next after an odd run of backslashes, as influxd does", function()
      local pts, res = parse("m\\\nx v=1 1\ny v=2 2\nz,t=a\\\\\nq v=3\n")
      assert.are.same({ "y", "q" }, { pts[1].series, pts[2].series })
      assert.are.same({ 3, 5 }, { pts[1].src, pts[2].src }) -- lines keep their numbers
      assert.are.equal(2, res.rejected)
      assert.are.equal([[column 1: series "m\?x" contains a newline]], res.msg)
      -- in a string value the pair is kept
      assert.are.equal("a\\\nb", one('m s="a\\\nb"').fields.s)
    end)

    it("ends a comment, a bad line and a line starting with a space where influxd does", function()
      -- a comment with x=" runs to the next quote; a bad line's string too
      local pts, res = parse('# c x="q\nm v=1\n"\nn v=2\nbad x="a\nb v=3\n" junk\nok v=4\n')
      assert.are.same({ "n", "ok" }, { pts[1].series, pts[2].series })
      assert.are.equal(1, res.rejected)
      -- a leading space makes influxd read the quote in the series as opening a string
      pts, res = parse('  m="x v=1\nn v=2\n"\no v=3\n')
      assert.are.same({ "o" }, { pts[1] and pts[1].series })
      assert.matches("^column 1: InfluxDB 1.x would read this line differently", res.msg)
      -- without the quote the leading space changes nothing
      assert.are.equal("m=x", one("  m=x v=1").series)
    end)

    it("skips tabs and NULs before the field set and the timestamp, as InfluxDB does", function()
      local p = one("m \t\0f=1 \0\t7")
      assert.are.same({ f = 1 }, p.fields)
      assert.are.equal("7LL", tostring(p.time_ns))
    end)
  end)

  describe("bad lines", function()
    local cases = {
      { ",t=a f=1", "column 1: missing measurement" },
      { "  ,t=a f=1", "column 3: missing measurement" },
      { "m", "column 2: missing fields" },
      { "m,t=a", "column 6: missing fields" },
      { "m ", "column 3: missing fields" },
      { "m,t=a  \t", "column 9: missing fields" },
      { "m,=a f=1", "column 3: missing tag key" },
      { "m, f=1", "column 3: missing tag key" },
      { "m,t f=1", 'column 3: tag "t": missing "="' },
      { "m,t", 'column 3: tag "t": missing "="' },
      { "m,t= f=1", 'column 5: tag "t": missing value' },
      { "m,t=,u=b f=1", 'column 5: tag "t": missing value' },
      { "m,t=a=b f=1", 'column 6: tag "t": unescaped "=" in value "a=b"' },
      { "m,t=a,t=b f=1", 'column 7: duplicate tag "t"' },
      { "m,time=a f=1", 'column 3: tag key "time" is not allowed (InfluxDB cannot store it)' },
      { "m =1", "column 3: missing field key" },
      { "m f=1,=2", "column 7: missing field key" },
      { "m f=1,", "column 7: missing field key" },
      { "m f=1,,g=2", "column 7: missing field key" },
      { "m f", 'column 3: field "f": missing "="' },
      { "m f,g=1", 'column 3: field "f": missing "="' },
      { "m f=", 'column 5: field "f": missing value' },
      { "m f=,g=1", 'column 5: field "f": missing value' },
      { "m f= 1", 'column 5: field "f": missing value' },
      { 'm f="a"b', 'column 8: field "f": unexpected text after string "b"' },
      { 'm f="a""b"', 'column 8: field "f": unexpected text after string ""b""' },
      { "m f=1,f=2i", 'column 7: field "f" has values of two types (InfluxDB refuses the point: field type conflict)' },
      { "m f=1,g=2,f=\"x\"", 'column 11: field "f" has values of two types (InfluxDB refuses the point: field type conflict)' },
      { "m time=1", 'column 3: field "time" is dropped, as InfluxDB drops it, and the point has no other field' },
      { "m time=1,time=2i", 'column 3: field "time" is dropped, as InfluxDB drops it, and the point has no other field' },
      { "m f=1 12a", 'column 7: invalid timestamp "12a"' },
      { "m f=1 1.5", 'column 7: invalid timestamp "1.5"' },
      { "m f=1 -", 'column 7: invalid timestamp "-"' },
      { "m f=1 --1", 'column 7: invalid timestamp "--1"' },
      { "m f=1 +1", 'column 7: invalid timestamp "+1"' },
      { "m f=1 1\t", 'column 7: invalid timestamp "1?"' },
      { "m f=1 1 2", 'column 9: unexpected text after timestamp "2"' },
      { "m f=1 1 x y", 'column 9: unexpected text after timestamp "x y"' },
      { "m f=" .. ("x"):rep(60), 'column 5: field "f": invalid value "' .. ("x"):rep(40) .. '..."' },
      { "m f=\1\127", 'column 5: field "f": invalid value "??"' },
    }
    for _, c in ipairs(cases) do
      it(("rejects %q"):format(c[1]), function()
        -- the bad line sits between two good ones, which must survive
        local pts, res = parse("a f=1\n" .. c[1] .. "\nb f=2\n")
        assert.are.equal(2, #pts)
        assert.are.same({ "a", "b" }, { pts[1].series, pts[2].series })
        assert.are.same({ 1, 3 }, { pts[1].src, pts[2].src })
        assert.are.same({ 1, true, "line", 2 }, { res.rejected, res.has_error, res.where_kind, res.where })
        assert.are.equal(c[2], res.msg)
      end)
    end

    it("does not cut a UTF-8 character when it truncates a quote", function()
      local msg = bad("m f=" .. ("x"):rep(39) .. "é" .. ("y"):rep(10))
      assert.are.equal('column 5: field "f": invalid value "' .. ("x"):rep(39) .. '..."', msg)
    end)

    it("rejects a series key longer than InfluxDB's 65535 bytes", function()
      -- measurement + "#!~#" + field key, as InfluxDB counts it
      assert.are.equal(1, #parse(("m"):rep(65530) .. " f=1"))
      assert.are.equal("column 65532: series key longer than 65535 bytes", bad(("m"):rep(65530) .. " ff=1"))
      assert.are.equal(1, #parse(("m"):rep(65526) .. ",t=v f=1"))
      assert.are.equal("column 65533: series key longer than 65535 bytes", bad(("m"):rep(65527) .. ",t=v f=1"))
    end)

    it("counts every bad line, keeps the first message, parses the good ones", function()
      local pts, res = parse("a f=1\nb\nc f=2\nd f=x\n,e f=1\nf f=3")
      assert.are.equal(3, #pts)
      assert.are.same({ 1, 3, 6 }, { pts[1].src, pts[2].src, pts[3].src })
      assert.are.same({ 3, 2, "column 2: missing fields" }, { res.rejected, res.where, res.msg })
    end)

    it("lets an unterminated string run to the end of the body, as InfluxDB does", function()
      local pts, res = parse('a f=1\nb s="open\nc f=2\nd f=3')
      assert.are.equal(1, #pts)
      assert.are.same({ 1, 2, 'column 5: field "s": unterminated string' },
                      { res.rejected, res.where, res.msg })
    end)

    it("skips a bad line's multi-line string whole and keeps counting lines", function()
      local pts, res = parse('a f=1\nb,t= s="x\ny",n=1\nc f=2\nd s="p\nq" 1x\ne f=3')
      assert.are.equal(3, #pts)
      assert.are.same({ "a", "c", "e" }, { pts[1].series, pts[2].series, pts[3].series })
      assert.are.same({ 1, 4, 7 }, { pts[1].src, pts[2].src, pts[3].src })
      assert.are.same({ 2, 2, 'column 5: tag "t": missing value' }, { res.rejected, res.where, res.msg })
    end)

    it("reports columns from the start of the line, leading blanks included", function()
      assert.are.equal('column 12: field "g": invalid value "x"', bad("  \tm f=1,g=x"))
    end)
  end)
end)

-- The parser reads 8 digits and 16 bytes at a time, never past the body:
-- every length and position, with bodies in exact-size heap blocks so that
-- ASan (make test-asan) sees any read beyond them.
pcall(ffi.cdef, "void *malloc(size_t n);")
pcall(ffi.cdef, "void free(void *p);")
describe("gw_lp_parse, word at a time", function()
  local function exact(body)
    local buf = ffi.gc(ffi.cast("char *", ffi.C.malloc(math.max(#body, 1))), ffi.C.free)
    ffi.copy(buf, body, #body)
    return buf
  end
  local function parse_exact(body)
    return parse(exact(body), 1, #body)
  end
  local digits = "12345678901234567890"

  it("reads timestamps of every length, and refuses a non-digit at every position", function()
    for n = 1, 19 do
      local t = digits:sub(1, n)
      local pts, res = parse_exact("m f=1 " .. t)
      assert.are.equal(0, res.rejected, t)
      assert.are.equal(t .. "LL", tostring(pts[1].time_ns))
      pts = parse_exact("m f=1 -" .. t)
      assert.are.equal("-" .. t .. "LL", tostring(pts[1].time_ns))
      for at = 1, n do
        -- (a NUL first would be whitespace before the timestamp)
        for _, c in ipairs({ "x", "/", ":", at > 1 and "\0" or "+", "\255" }) do
          local bad_t = t:sub(1, at - 1) .. c .. t:sub(at + 1)
          local _, r = parse_exact("m f=1 " .. bad_t)
          assert.are.equal(1, r.rejected, bad_t)
          assert.matches("^column 7: invalid timestamp", r.msg)
        end
      end
    end
    local _, r = parse_exact("m f=1 " .. digits .. "x")
    assert.matches("^column 7: invalid timestamp", r.msg)
    _, r = parse_exact("m f=1 " .. digits)
    assert.matches("^column 7: timestamp out of range", r.msg)
  end)

  it("reads integers of every digit count", function()
    for n = 1, 20 do
      local v = digits:sub(1, n)
      local pts, res = parse_exact("m u=" .. v .. "u")
      assert.are.equal(0, res.rejected, v)
      assert.are.equal(v .. "ULL", tostring(pts[1].fields.u))
      if n <= 18 then
        pts = parse_exact("m i=-" .. v .. "i,j=" .. v .. "i")
        assert.are.equal("-" .. v .. "LL", tostring(pts[1].fields.i))
        assert.are.equal(v .. "LL", tostring(pts[1].fields.j))
      end
    end
    local _, r = parse_exact("m u=" .. digits .. "0u")
    assert.matches("unsigned integer out of range", r.msg)
  end)

  it("finds an escape or a delimiter at every position of names of every length", function()
    local letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for n = 1, 40 do
      for at = 1, n do
        local name = letters:sub(1, n)
        local raw = name:sub(1, at - 1) .. "\\ " .. name:sub(at + 1)
        local plain = name:sub(1, at - 1) .. " " .. name:sub(at + 1)
        local raw_k = name:sub(1, at - 1) .. "\\=" .. name:sub(at + 1)
        local plain_k = name:sub(1, at - 1) .. "=" .. name:sub(at + 1)
        local str = name:sub(1, at - 1) .. '\\"' .. name:sub(at + 1)
        local pts, res = parse_exact(raw .. "," .. raw_k .. "=" .. raw_k .. " " .. raw_k .. '="' .. str .. '"')
        assert.are.equal(0, res.rejected, res.msg)
        assert.are.equal(plain, pts[1].series)
        assert.are.equal(plain_k, pts[1].tags[plain_k])
        assert.are.equal(name:sub(1, at - 1) .. '"' .. name:sub(at + 1), pts[1].fields[plain_k])
        -- An unescaped delimiter at the same place ends the name there.
        pts, res = parse_exact(name:sub(1, at - 1) .. ",k=" .. name .. " f=1")
        if at == 1 then
          assert.are.equal("column 1: missing measurement", res.msg)
        else
          assert.are.equal(0, res.rejected, res.msg)
          assert.are.equal(name:sub(1, at - 1), pts[1].series)
          assert.are.equal(name, pts[1].tags.k)
        end
      end
    end
  end)

  it("parses every prefix of a line, each ending at the end of its buffer", function()
    local line = 'requests,service=luna-sender,route=GET:/api/users/{id},status_code=200 '
      .. 'request_id="2c74965f-0000",execution_time=0.042262,n=12i,s="a\\"b" 1700000001000000000'
    local whole = parse_exact(line)
    assert.are.equal(1, #whole)
    for n = 1, #line do
      local pts, res = parse_exact(line:sub(1, n))
      assert.are.equal(1, #pts + res.rejected, n)
      -- (two, unless the first copy ends in an open string, which runs on)
      pts, res = parse_exact(line:sub(1, n) .. "\n" .. line:sub(1, n) .. "\r")
      assert.is_true(#pts + res.rejected >= 1, n)
    end
    local pts = parse_exact("")
    assert.are.equal(0, #pts)
  end)

  it("finds the closing quote at every position, across lines", function()
    for n = 0, 40 do
      local text = ("x"):rep(n)
      local pts, res = parse_exact('m s="' .. text .. '"')
      assert.are.equal(0, res.rejected)
      assert.are.equal(text, pts[1].fields.s)
      pts, res = parse_exact('m s="' .. text .. '\n' .. text .. '",t=1i 5\nm f=1')
      assert.are.equal(0, res.rejected, res.msg)
      assert.are.equal(text .. "\n" .. text, pts[1].fields.s)
      assert.are.same({ 1, 3 }, { pts[1].src, pts[2].src })
      _, res = parse_exact('m s="' .. text)
      assert.matches('unterminated string$', res.msg)
    end
  end)
end)

describe("gw_lp_encode", function()
  describe("round trips", function()
    local canonical = {
      "cpu,host=a,region=eu-west usage=0.5,count=3i,ok=true,msg=\"hi\" 1700000000000000000\n",
      "m u=18446744073709551615u,z=0u 0\n",
      "m a=-9223372036854775808i,b=9223372036854775807i -1\n",
      "m a=0.30000000000000004,b=1e-300,c=5e-324,d=1.7976931348623157e+308,e=-0,f=100 1\n",
      "m a=2.2250738585072014e-308,b=1e+21,c=100000000000000000000,d=0.000001,e=1e-7 1\n",
      "m a=-1.5,b=123456789012345680,c=0.1,d=4.35,e=9007199254740992 1\n",
      "m b=false,c=true 1\n",
      "m s=\"a\nb\" 1\n",
      "we\\,ird\\ name=x,k\\,\\=\\ 1=v\\,\\=\\ 2 f\\,\\=\\ k=\"a\\\"b\\\\c\" 1\n",
      "a\\b,k\\x=v\\y f\\z=\"q\\\\w\" 1\n",
      "m,t=a\\\\,b f=1 1\n",
      "m\"q,t\"=\"v f\"=\"\" -9223372036854775806\n",
      "\\ lead f=1 9223372036854775806\n",
    }
    for _, line in ipairs(canonical) do
      it(("reproduces %q byte for byte"):format(line), function()
        assert.are.equal(line, roundtrip(line))
      end)
    end

    it("writes floats that read back bit-exact", function()
      for _, v in ipairs({ 0.1 + 0.2, 1 / 3, 2 / 3, 1e-300, 5e-324, 1.7976931348623157e308,
                           2 ^ 53 + 2, 123.456, 6.02214076e23, -1e-7, 2 ^ -1074 * 3, math.pi }) do
        local rc, text = encode(mkpoint({ fields = { { "f", "float", v } } }))
        assert.are.equal(0, rc)
        local num = text:match("^m f=(%S+) 0\n$")
        assert.is_truthy(num, text)
        assert.are.equal(bits(v), bits(tonumber(num)), text)
        assert.are.equal(bits(v), bits(one("m f=" .. num).fields.f), text)
      end
    end)

    it("normalises what it parses: sorted tags, canonical numbers, scaled time", function()
      local _, _, raw
      local out = {}
      for _, line in ipairs({ "m,b=2,a=1,B=0,aa=3 f=1.,g=T,h=1e3,i=.5,j=007i 2" }) do
        _, _, raw = parse(line, 1000)
        local rc, text = encode(raw.v[0])
        assert.are.equal(0, rc)
        out[#out + 1] = text
      end
      assert.are.same({ "m,B=0,a=1,aa=3,b=2 f=1,g=true,h=1000,i=0.5,j=7i 2000\n" }, out)
    end)
  end)

  describe("tags", function()
    it("sorts tags bytewise, in place", function()
      local p = mkpoint({ tags = { { "b", "2" }, { "a", "1" }, { "B", "0" }, { "aa", "3" }, { "_", "u" } } })
      local rc, text = encode(p)
      assert.are.equal(0, rc)
      assert.are.equal("m,B=0,_=u,a=1,aa=3,b=2 f=1 0\n", text)
      local keys = {}
      for i = 0, p.ntags - 1 do keys[#keys + 1] = core.str(p.tags[i].key) end
      assert.are.same({ "B", "_", "a", "aa", "b" }, keys)
    end)

    it("sorts keys bytewise whatever their shared prefixes and lengths", function()
      local keys = { "abcd1", "abce", "abcd", "abc", "ab\255\1x", "ab\128", "zzzz", "\255xyz1",
                     "Abcd", "abcd\1", "a", "abcdabcd", "abcdabce", "b\1\1\1", "b\1\1" }
      local tags = {}
      for i, k in ipairs(keys) do tags[i] = { k, "v" } end
      local p = mkpoint({ tags = tags })
      assert.are.equal(0, (encode(p)))
      local want, got = {}, {}
      for i, k in ipairs(keys) do want[i] = k end
      table.sort(want)
      for i = 0, p.ntags - 1 do got[#got + 1] = core.str(p.tags[i].key) end
      assert.are.same(want, got)
    end)

    it("omits tags with an empty value", function()
      local rc, text = encode(mkpoint({ tags = { { "a", "" }, { "b", "x" }, { "c", "" } } }))
      assert.are.equal(0, rc)
      assert.are.equal("m,b=x f=1 0\n", text)
    end)

    it("escapes what must be escaped, and only that", function()
      local rc, text = encode(mkpoint({
        series = [[a,b c=d"e\f]],
        tags = { { [[k,= "\x]], [[v,= "\y]] } },
        fields = { { [[f,= "\z]], "string", 's,= "\\\n' } },
        time = 5,
      }))
      assert.are.equal(0, rc)
      assert.are.equal([[a\,b\ c=d"e\f,k\,\=\ "\x=v\,\=\ "\y f\,\=\ \"\z="s,= \"\\]] .. '\n" 5\n', text)
    end)
  end)

  describe("values", function()
    it("writes each type", function()
      local rc, text = encode(mkpoint({ fields = {
        { "i", "int", -42LL }, { "u", "uint", 42ULL }, { "s", "string", "x" },
        { "t", "bool", true }, { "f", "bool", false }, { "x", "float", -2.5 },
      }, time = -7 }))
      assert.are.equal(0, rc)
      assert.are.equal('m i=-42i,u=42u,s="x",t=true,f=false,x=-2.5 -7\n', text)
    end)

    it("writes unsigned as integers under GW_LP_NO_UINT, up to INT64_MAX", function()
      local rc, text = encode(mkpoint({ fields = { { "u", "uint", 9223372036854775807ULL } } }), NO_UINT)
      assert.are.equal(0, rc)
      assert.are.equal("m u=9223372036854775807i 0\n", text)
      local err
      rc, text, err = encode(mkpoint({ fields = { { "u", "uint", 9223372036854775808ULL } } }), NO_UINT)
      assert.are.equal(1, rc)
      assert.are.equal("", text)
      assert.are.equal('series "m": field "u": unsigned 9223372036854775808 is too large for an integer (the target has no unsigned type)', err)
    end)
  end)

  describe("errors", function()
    local cases = {
      { "NaN", { fields = { { "f", "float", 0 / 0 } } }, 'series "m": field "f" is NaN, which InfluxDB cannot store' },
      { "+Inf", { fields = { { "f", "float", math.huge } } }, 'series "m": field "f" is infinite, which InfluxDB cannot store' },
      { "-Inf", { fields = { { "f", "float", -math.huge } } }, 'series "m": field "f" is infinite, which InfluxDB cannot store' },
      { "no fields", { fields = {} }, 'series "m": a point needs at least one field' },
      { "empty series", { series = "" }, 'series "" is empty' },
      { "series with a newline", { series = "a\nb" }, 'series "a?b" contains a newline' },
      { "series ending in a backslash", { series = "a\\" }, 'series "a\\" ends with a backslash' },
      { "series starting with #", { series = "#m" }, "series \"#m\" cannot start with '#'" },
      { "series starting with a tab", { series = "\tm" }, 'series "?m" cannot start with a tab' },
      { "series starting with a NUL", { series = "\0m" }, 'series "?m" contains a NUL byte' },
      { "field key starting with a tab", { fields = { { "g", "int", 1LL }, { "\tf", "int", 1LL } } }, 'series "m": field key "?f" cannot start with a tab' },
      { "field key starting with a NUL", { fields = { { "\0f", "int", 1LL } } }, 'series "m": field key "?f" contains a NUL byte' },
      { "tag key time", { tags = { { "time", "x" } } }, 'series "m": tag key "time" is not allowed' },
      { "field key time", { fields = { { "time", "int", 1LL } } }, 'series "m": field key "time" is not allowed' },
      { "empty tag key", { tags = { { "", "x" } } }, 'series "m": tag key "" is empty' },
      { "empty field key", { fields = { { "", "bool", true } } }, 'series "m": field key "" is empty' },
      { "duplicate tag", { tags = { { "a", "1" }, { "b", "2" }, { "a", "3" } } }, 'series "m": duplicate tag "a"' },
      { "duplicate field", { fields = { { "a", "int", 1LL }, { "b", "int", 1LL }, { "a", "bool", true } } }, 'series "m": duplicate field "a"' },
      { "newline in a tag key", { tags = { { "a\n", "1" } } }, 'series "m": tag key "a?" contains a newline' },
      { "newline in a tag value", { tags = { { "a", "1\n2" } } }, 'series "m": value of tag "a" contains a newline' },
      { "backslash ending a tag value", { tags = { { "a", "x\\" } } }, 'series "m": value of tag "a" ends with a backslash' },
      { "backslash ending a tag key", { tags = { { "a\\", "x" } } }, 'series "m": tag key "a\\" ends with a backslash' },
      { "newline in a field key", { fields = { { "f\n", "int", 1LL } } }, 'series "m": field key "f?" contains a newline' },
      { "backslash ending a field key", { fields = { { "f\\", "int", 1LL } } }, 'series "m": field key "f\\" ends with a backslash' },
      { "series with a backslash before a comma", { series = "a\\,b" }, [[series "a\,b" has a backslash before ',', ' ', '=' or '"' (InfluxDB 1.x stores such a series but cannot read it back)]] },
      { "series with a backslash before a quote", { series = 'a\\"' }, [[series "a\"" has a backslash before ',', ' ', '=' or '"' (InfluxDB 1.x stores such a series but cannot read it back)]] },
      { "tag value with a backslash before a space", { tags = { { "t", "a\\ b" } } }, [[series "m": value of tag "t" has an odd run of backslashes before a space (InfluxDB 1.x would split the line there)]] },
      { "field key with a backslash before a comma", { fields = { { "a\\,b", "int", 1LL } } }, [[series "m": field key "a\,b" has an odd run of backslashes before ',', ' ' or '=' (InfluxDB 1.x would read another key)]] },
      { "field key with three backslashes before =", { fields = { { "a\\\\\\=", "int", 1LL } } }, [[series "m": field key "a\\\=" has an odd run of backslashes before ',', ' ' or '=' (InfluxDB 1.x would read another key)]] },
      { "NUL in a tag value", { tags = { { "t", "a\0" } } }, 'series "m": value of tag "t" contains a NUL byte' },
      { "NUL in a string value", { fields = { { "s", "string", "a\0b" } } }, 'series "m": field "s": the string contains a NUL byte' },
      { "series key too long with a field key", { tags = { { "t", ("v"):rep(65530) } } }, [[series "m": its series key and field key "f" take 65539 bytes, more than InfluxDB's 65535]] },
      { "series key too long with a long escaped field key", { tags = { { "t", ("v"):rep(65000) } }, fields = { { "g", "int", 1LL }, { ("a b"):rep(200), "string", "x y" } } }, [[series "m": its series key and field key "a\ ba\ ba\ ba\ ba\ ba\ ba\ ba\ ba\ ba\ b..." take 65808 bytes, more than InfluxDB's 65535]] },
      { "series that is not UTF-8", { series = "m\255" }, 'series "m\255" is not valid UTF-8 (InfluxDB 1.x cannot open a shard holding such a name after a restart)' },
      { "field key that is not UTF-8", { fields = { { "f\192\175", "int", 1LL } } }, 'series "m": field key "f\192\175" is not valid UTF-8 (InfluxDB 1.x cannot open a shard holding such a name after a restart)' },
      { "unknown type", { fields = { { "f", 9, nil } } }, 'series "m": field "f" has unknown type 9' },
      { "time beyond InfluxDB's range", { time = 9223372036854775807LL }, 'series "m": time 9223372036854775807 is outside InfluxDB\'s range' },
      { "time below InfluxDB's range", { time = -9223372036854775807LL }, 'series "m": time -9223372036854775807 is outside InfluxDB\'s range' },
    }
    for _, c in ipairs(cases) do
      it(("refuses %s and leaves out unchanged"):format(c[1]), function()
        local out = ffi.new("gw_buf_t[1]")
        local err = ffi.new("char[256]")
        assert.are.equal(0, lib.gw_lp_encode(out, mkpoint({ fields = { { "g", "int", 1LL } } }), 0, err, 256))
        local before = ffi.string(out[0].data, out[0].len)
        assert.are.equal(1, lib.gw_lp_encode(out, mkpoint(c[2]), 0, err, 256))
        assert.are.equal(c[3], ffi.string(err))
        assert.are.equal(before, ffi.string(out[0].data, out[0].len))
        lib.gw_buf_free(out)
      end)
    end

    it("writes a series key of InfluxDB's 65535 bytes at most, with each field key", function()
      local rc, text = encode(mkpoint({ tags = { { "t", ("v"):rep(65526) } }, fields = { { "f", "string", ("s"):rep(70000) } } }))
      assert.are.equal(0, rc)
      assert.are.equal(65526 + 70000 + 12, #text)
      -- what the parser says of the same line
      assert.are.equal("column 65533: series key longer than 65535 bytes",
        bad("m,t=" .. ("v"):rep(65527) .. " f=1"))
    end)

    it("ignores a bad key on a tag it omits for its empty value", function()
      local rc, text = encode(mkpoint({ tags = { { "time", "" }, { "", "" } } }))
      assert.are.equal(0, rc)
      assert.are.equal("m f=1 0\n", text)
    end)

    it("allows a newline inside a string value", function()
      local rc, text = encode(mkpoint({ fields = { { "s", "string", "a\nb" } } }))
      assert.are.equal(0, rc)
      assert.are.equal('m s="a\nb" 0\n', text)
    end)

    it("appends to what the buffer holds", function()
      local out = ffi.new("gw_buf_t[1]")
      local err = ffi.new("char[256]")
      for i = 1, 100 do
        assert.are.equal(0, lib.gw_lp_encode(out, mkpoint({ series = "s" .. i, time = i }), 0, err, 256))
      end
      local text = ffi.string(out[0].data, out[0].len)
      lib.gw_buf_free(out)
      local n = 0
      for series, t in text:gmatch("(s%d+) f=1 (%d+)\n") do
        n = n + 1
        assert.are.equal("s" .. n, series)
        assert.are.equal(tostring(n), t)
      end
      assert.are.equal(100, n)
    end)
  end)

  -- The writers work 8 and 16 bytes at a time: every length and every
  -- position of a special byte, against a byte-by-byte model.
  describe("word-at-a-time writers", function()
    local function digits(n) -- "1", "12", ..., "12345678901234567890"
      return ("12345678901234567890"):sub(1, n)
    end

    it("writes integers and times of every digit count", function()
      for n = 1, 20 do
        local u = digits(n)
        local nines = ("9"):rep(n)
        for _, text in ipairs({ u, nines, "1" .. ("0"):rep(n - 1) }) do
          local v = ffi.new("uint64_t", 0) + 0ULL
          for c in text:gmatch("%d") do v = v * 10ULL + (c:byte() - 48) end
          local rc, line = encode(mkpoint({ fields = { { "u", "uint", v } } }))
          if #text < 20 or text <= "18446744073709551615" then
            assert.are.equal(0, rc)
            assert.are.equal("m u=" .. text .. "u 0\n", line)
          end
          if n <= 18 or (n == 19 and text <= "9223372036854775806") then
            local i = ffi.new("int64_t", v)
            rc, line = encode(mkpoint({ fields = { { "i", "int", -i } }, time = i }))
            assert.are.equal(0, rc)
            assert.are.equal("m i=-" .. text .. "i " .. text .. "\n", line)
            rc, line = encode(mkpoint({ fields = { { "i", "int", i } }, time = -i }))
            assert.are.equal("m i=" .. text .. "i -" .. text .. "\n", line)
          end
        end
      end
      local rc, line = encode(mkpoint({ fields = { { "z", "int", 0LL }, { "x", "float", 12345678 } } }))
      assert.are.equal(0, rc)
      assert.are.equal("m z=0i,x=12345678 0\n", line)
    end)

    local function model(s, special)
      return (s:gsub("[" .. special .. "]", "\\%0"))
    end

    it("escapes a special byte at every position of names of every length", function()
      for n = 1, 40 do
        for at = 1, n do
          for _, c in ipairs({ " ", ",", "=", '"' }) do
            local name = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"):sub(1, n)
            name = name:sub(1, at - 1) .. c .. name:sub(at + 1)
            local rc, line = encode(mkpoint({
              series = "s" .. name, tags = { { "k" .. name, "v" .. name } },
              fields = { { "f" .. name, "string", name .. '\\"' } },
            }))
            assert.are.equal(0, rc, name)
            assert.are.equal("s" .. model(name, ", ") .. ",k" .. model(name, ",= ") .. "=v"
                             .. model(name, ",= ") .. " f" .. model(name, ',= "') .. '="'
                             .. model(name .. '\\"', '"\\') .. '" 0\n', line)
          end
        end
      end
    end)

    it("finds a newline or a backslash at every position", function()
      for n = 1, 40 do
        for at = 1, n do
          local name = ("x"):rep(at - 1) .. "\n" .. ("x"):rep(n - at)
          local rc, _, err = encode(mkpoint({ tags = { { "k", "v" }, { "t", name } } }))
          assert.are.equal(1, rc)
          assert.are.equal('series "m": value of tag "t" contains a newline', err)
          rc, _, err = encode(mkpoint({ fields = { { "g", "int", 1LL }, { name, "int", 1LL } } }))
          assert.are.equal(1, rc)
          assert.matches('^series "m": field key "x*%?x*" contains a newline$', err)
          name = name:gsub("\n", "\\")
          local line
          rc, line, err = encode(mkpoint({ series = name }))
          if at == n then
            assert.are.equal(1, rc)
            assert.matches("ends with a backslash$", err)
          else
            assert.are.equal(0, rc, err)
            assert.are.equal(name .. " f=1 0\n", line)
          end
        end
      end
    end)

    it("does not sort the tags of a point whose series it refuses", function()
      local p = mkpoint({ series = "a\nb", tags = { { "b", "2" }, { "a", "1" } } })
      assert.are.equal(1, (encode(p)))
      assert.are.same({ "b", "a" }, { core.str(p.tags[0].key), core.str(p.tags[1].key) })
    end)
  end)
end)

-- Points the parser marks clean (point.h, GW_LP_CLEAN) are written from
-- their text: names copied without checks, tags as "key=value" slices in
-- sorted order, the field set (and a nanosecond time) as written. Each case
-- is compared with the same point written the long way (lp_clean = 0).
describe("gw_lp_encode, clean points", function()
  local CLEAN, TIME = 1, 2

  local function exact(body)
    local buf = ffi.gc(ffi.cast("char *", ffi.C.malloc(math.max(#body, 1))), ffi.C.free)
    ffi.copy(buf, body, #body)
    return buf
  end

  -- Parse line (in an exact-size block) and return the raw point, its flags
  -- and its tail; the block lives as long as the caller keeps `keep`.
  local function parsed(line, ns_per_unit, now)
    ctx:reset()
    local buf = exact(line)
    assert.are.equal(0, lib.gw_lp_parse(buf, #line, ns_per_unit or 1, now or NOW, ctx.arena,
                                        ctx.points, ctx.result))
    assert.are.equal(0, ctx.result[0].rejected, ffi.string(ctx.result[0].err_msg))
    assert.are.equal(1, ctx.points[0].n, line)
    local p = ctx.points[0].v[0]
    local tail = p.lp_clean ~= 0 and ffi.string(p.lp_tail.p, p.lp_tail.n) or nil
    return p, p.lp_clean, tail, buf
  end

  -- Encode line's point as it comes and the long way; returns both texts
  -- and the flags.
  local function both(line, ns_per_unit, flags)
    local p, clean, tail, keep = parsed(line, ns_per_unit)
    local copy = ffi.new("gw_point_t", p)
    copy.lp_clean = 0
    local rc, fast = encode(p, flags)
    assert.are.equal(0, rc, line)
    local rc2, slow = encode(copy, flags)
    assert.are.equal(0, rc2, line)
    local _ = keep
    return fast, slow, clean, tail
  end

  it("checks the series key again when a script or a declaration added tags to a clean point", function()
    local p, _, _, keep = parsed("m,a=1 f=1 1700000000000000000")
    local tags = ffi.new("gw_tag_t[2]")
    local long = ("v"):rep(65530)
    tags[0] = p.tags[0]
    tags[1].key.p, tags[1].key.n = "t", 1
    tags[1].val.p, tags[1].val.n = long, #long
    p.tags, p.ntags, p.lp_clean = tags, 2, bit.bor(p.lp_clean, 4) -- GW_LP_CLEAN_EXTRA
    local rc, _, msg = encode(p)
    assert.are.equal(1, rc)
    assert.are.equal([[series "m": its series key and field key "f" take 65543 bytes, more than InfluxDB's 65535]], msg)
    tags[1].val.n = 65520 -- within: written with the added tag
    rc = encode(p)
    assert.are.equal(0, rc)
    local _ = { keep, long }
  end)

  it("copies the field set and a nanosecond time, and sorts the tags", function()
    local line = 'cpu,zone=b,host=a,Z=c usage=0.5,count=3i,s="x, y=z",up=true,n=false 1700000000000000000'
    local fast, slow, clean, tail = both(line)
    assert.are.equal(CLEAN + TIME, clean)
    assert.are.equal('usage=0.5,count=3i,s="x, y=z",up=true,n=false 1700000000000000000', tail)
    assert.are.equal('cpu,Z=c,host=a,zone=b usage=0.5,count=3i,s="x, y=z",up=true,n=false 1700000000000000000\n', fast)
    assert.are.equal(slow, fast)
  end)

  it("sorts the tags in place, as the long way does", function()
    local p, clean, _, keep = parsed("m,b=2,a=1,c=3 f=1 5")
    assert.are.equal(CLEAN + TIME, clean)
    assert.are.equal("m,a=1,b=2,c=3 f=1 5\n", select(2, encode(p)))
    assert.are.same({ "a", "b", "c" }, (ordered_keys(p)))
    local _ = keep
  end)

  it("writes the time itself when the line has none, or another precision, or other spacing", function()
    local cases = {
      { "m,t=v f=1", 1, CLEAN, "f=1", "m,t=v f=1 1700000000123456789\n" },
      { "m,t=v f=1   ", 1, CLEAN, "f=1", "m,t=v f=1 1700000000123456789\n" },
      { "m f=1 5", 1000, CLEAN, "f=1", "m f=1 5000\n" },
      { "m f=1 5", 1000000000, CLEAN, "f=1", "m f=1 5000000000\n" },
      { "m f=1 5", 3600000000000, CLEAN, "f=1", "m f=1 18000000000000\n" },
      { "m f=1  5", 1, CLEAN, "f=1", "m f=1 5\n" },
      { "m f=1 \t5", 1, CLEAN, "f=1", "m f=1 5\n" },
      { "m f=1 007", 1, CLEAN, "f=1", "m f=1 7\n" },
      { "m f=1 -0", 1, CLEAN, "f=1", "m f=1 0\n" },
      { "m f=1 0", 1, CLEAN + TIME, "f=1 0", "m f=1 0\n" },
      { "m f=1 -5", 1, CLEAN + TIME, "f=1 -5", "m f=1 -5\n" },
      { "m f=1 5   ", 1, CLEAN + TIME, "f=1 5", "m f=1 5\n" },
      { "m f=1 5\r\n", 1, CLEAN + TIME, "f=1 5", "m f=1 5\n" },
      { "m f=1\r\n", 1, CLEAN, "f=1", "m f=1 1700000000123456789\n" },
      { "m f=1 -9223372036854775806", 1, CLEAN + TIME, "f=1 -9223372036854775806", "m f=1 -9223372036854775806\n" },
    }
    for _, c in ipairs(cases) do
      local fast, slow, clean, tail = both(c[1], c[2])
      assert.are.same({ c[3], c[4], c[5] }, { clean, tail, fast }, c[1])
      assert.are.equal(slow, fast, c[1])
    end
  end)

  it("refuses a time of receipt outside InfluxDB's range, as the long way does", function()
    local p, clean, _, keep = parsed("m f=1", 1, 9223372036854775807LL)
    assert.are.equal(CLEAN, clean)
    local rc, text, err = encode(p)
    assert.are.same({ 1, "", "series \"m\": time 9223372036854775807 is outside InfluxDB's range" }, { rc, text, err })
    local _ = keep
  end)

  it("copies values already spelled as the encoder spells them", function()
    for _, v in ipairs({ "0", "-0", "1", "-7", "100", "0.5", "-0.5", "0.000001", "-0.000123", "4.35", "0.1",
                         "123456789012345", "12345678.9012345", "999999999999999", "0.042262",
                         "0i", "1i", "-1i", "-9223372036854775808i", "9223372036854775807i",
                         "true", "false", '""', '"a b,c=d"', '"a\nb"' }) do
      local line = "m,t=v f=" .. v .. ",g=1 1"
      local fast, slow, clean, tail = both(line)
      assert.are.equal(CLEAN + TIME, clean, line)
      assert.are.equal("f=" .. v .. ",g=1 1", tail)
      assert.are.equal("m,t=v f=" .. v .. ",g=1 1\n", fast)
      assert.are.equal(slow, fast, line)
    end
  end)

  it("writes other spellings the long way, canonical", function()
    for _, c in ipairs({
      { "1.0", "1" }, { "1.", "1" }, { ".5", "0.5" }, { "-.5", "-0.5" }, { "0.50", "0.5" }, { "-0.0", "-0" },
      { "01", "1" }, { "00.5", "0.5" }, { "1e3", "1000" }, { "1E-7", "1e-7" }, { "0.0000001", "1e-7" },
      { "1234567890123456", "1234567890123456" }, { "0.1234567890123456", "0.1234567890123456" },
      { "12345678901234567890", "12345678901234567000" },
      { "007i", "7i" }, { "-0i", "0i" }, { "00i", "0i" },
      { "t", "true" }, { "T", "true" }, { "True", "true" }, { "TRUE", "true" },
      { "f", "false" }, { "F", "false" }, { "False", "false" }, { "FALSE", "false" },
      { '"a\\"b"', '"a\\"b"' }, { '"a\\\\b"', '"a\\\\b"' }, { '"a\\b"', '"a\\\\b"' },
    }) do
      local line = "m f=" .. c[1] .. " 1"
      local fast, slow, clean = both(line)
      assert.are.equal(0, clean, line)
      assert.are.equal("m f=" .. c[2] .. " 1\n", fast, line)
      assert.are.equal(slow, fast, line)
    end
  end)

  it("keeps the client's digits where Grisu2 would write a longer form of the same float", function()
    local fast, slow, clean = both("m f=0.163896 1")
    assert.are.equal(CLEAN + TIME, clean)
    assert.are.equal("m f=0.163896 1\n", fast)
    assert.are.equal("m f=0.16389599999999999 1\n", slow)
    assert.are.equal(bits(0.163896), bits(one("m f=0.16389599999999999").fields.f))
  end)

  it("copies at most 15 significant digits, which read back as the same float", function()
    local seed = 12345
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    for _ = 1, 2000 do
      local digits = {}
      for i = 1, 1 + rnd(15) do digits[i] = tostring(i == 1 and 1 + rnd(9) or rnd(10)) end
      local s = table.concat(digits)
      local at = rnd(#s + 6) - 5 -- point position: up to five zeros after "0."
      local text
      if at <= 0 then text = "0." .. ("0"):rep(-at) .. s else text = s:sub(1, at) .. (at < #s and "." .. s:sub(at + 1) or "") end
      if not text:find("%.") or text:sub(-1) ~= "0" then
        local p, clean, _, keep = parsed("m f=" .. text .. " 1")
        assert.are.equal(CLEAN + TIME, clean, text)
        local rc, out = encode(p)
        assert.are.equal(0, rc)
        assert.are.equal("m f=" .. text .. " 1\n", out)
        assert.are.equal(bits(tonumber(text)), bits(p.fields[0].v.f), text)
        local _ = keep
      end
    end
  end)

  it("writes unsigned values the long way, as integers under GW_LP_NO_UINT", function()
    local fast, slow, clean = both("m,t=v u=5u,f=1 1")
    assert.are.equal(0, clean)
    assert.are.same({ "m,t=v u=5u,f=1 1\n", slow }, { fast, fast })
    fast, slow, clean = both("m,t=v u=5u,f=1 1", 1, NO_UINT)
    assert.are.equal(0, clean)
    assert.are.same({ "m,t=v u=5i,f=1 1\n", slow }, { fast, fast })
    local p, _, _, keep = parsed("m u=9223372036854775808u 1")
    local rc, _, err = encode(p, NO_UINT)
    assert.are.equal(1, rc)
    assert.matches("unsigned 9223372036854775808 is too large", err, 1, true)
    local _ = keep
  end)

  it("writes names with escapes the long way", function()
    for _, c in ipairs({
      { "a\\ b f=1 1", "a\\ b f=1 1\n" },
      { "a\\,b f=1 1", "a\\,b f=1 1\n" },
      { "a\\b f=1 1", "a\\b f=1 1\n" },
      { "m,k\\ x=v f=1 1", "m,k\\ x=v f=1 1\n" },
      { "m,k=v\\=x f=1 1", "m,k=v\\=x f=1 1\n" },
      { "m,k=v\\\\x f=1 1", "m,k=v\\\\x f=1 1\n" },
      { "m f\\,g=1 1", "m f\\,g=1 1\n" },
      { "m g=1,f\\ =2 1", "m g=1,f\\ =2 1\n" },
    }) do
      local fast, slow, clean = both(c[1])
      assert.are.equal(0, clean, c[1])
      assert.are.equal(c[2], fast, c[1])
      assert.are.equal(slow, fast, c[1])
    end
  end)

  it("leaves a field key after a comma that starts with a tab to the long way, which refuses it", function()
    local p, clean, _, keep = parsed("m g=1,\tf=2 1")
    assert.are.equal(0, clean)
    local rc, _, err = encode(p)
    assert.are.equal(1, rc)
    assert.matches("cannot start with a tab", err)
    local _ = keep
  end)

  it("copies tags of every length and many tags (sorted beyond the insertion sort)", function()
    local tags = {}
    for i = 40, 1, -1 do tags[#tags + 1] = ("k%02d=%s"):format(i, ("v"):rep(i)) end
    local line = "m," .. table.concat(tags, ",") .. " f=1 1"
    local fast, slow, clean = both(line)
    assert.are.equal(CLEAN + TIME, clean)
    assert.are.equal(slow, fast)
    table.sort(tags)
    assert.are.equal("m," .. table.concat(tags, ",") .. " f=1 1\n", fast)
    for n = 1, 40 do
      local name = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"):sub(1, n)
      local l = name .. ",b" .. name .. "=" .. name .. ",a=" .. name .. " " .. name .. '="' .. name .. '" 1'
      local f2, s2, c2 = both(l)
      assert.are.equal(CLEAN + TIME, c2)
      assert.are.equal(name .. ",a=" .. name .. ",b" .. name .. "=" .. name .. " " .. name .. '="' .. name .. '" 1\n', f2)
      assert.are.equal(s2, f2)
    end
  end)

  it("copies a string spanning lines and counts the lines", function()
    local _, res, raw = parse('m s="a\nb",f=1 1\nn f=2 2')
    assert.are.equal(0, res.rejected)
    assert.are.same({ 1, 3 }, { raw.v[0].src, raw.v[1].src })
    assert.are.equal(CLEAN + TIME, raw.v[0].lp_clean)
    assert.are.equal('m s="a\nb",f=1 1\n', select(2, encode(raw.v[0])))
    assert.are.equal("n f=2 2\n", select(2, encode(raw.v[1])))
  end)

  it("writes every prefix of a clean line that parses as the long way does", function()
    local line = 'cpu,zone=b,host=a usage=0.5,count=3i,s="x",up=true 1700000000000000000'
    for n = 1, #line do
      ctx:reset()
      local body = line:sub(1, n)
      local buf = exact(body)
      assert.are.equal(0, lib.gw_lp_parse(buf, n, 1, NOW, ctx.arena, ctx.points, ctx.result))
      if ctx.points[0].n == 1 then
        local p = ctx.points[0].v[0]
        local copy = ffi.new("gw_point_t", p)
        copy.lp_clean = 0
        local rc, fast = encode(p)
        local rc2, slow = encode(copy)
        assert.are.same({ 0, 0 }, { rc, rc2 }, body)
        assert.are.equal(slow, fast, body)
      end
    end
  end)
end)
