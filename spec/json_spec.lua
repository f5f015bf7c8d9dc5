-- gateway/json.c: the body of POST /v1/points.
local core = require("support.core")
local ffi = core.ffi

ffi.cdef [[
int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,
                  gw_points_t *out, gw_result_t *res);
void *malloc(size_t n);
void free(void *p);
]]

local NOW = 1234567890123456789LL

-- Parse a body of Z's several times the size of the last one. jansson's
-- per-thread region is reused from its start, so a point string that still
-- pointed into the freed DOM would now read Z's.
local function scribble(n)
  local ctx = core.context()
  local junk = '{"series": "' .. ("Z"):rep(8 * n + 64) .. '"}'
  core.lib.gw_json_parse(junk, #junk, 0, ctx.arena, ctx.points, ctx.result)
  ctx:free()
end

-- Parse body from a malloc'd buffer of exactly its size (so that ASan sees a
-- read past the end), then wipe the buffer and the DOM's memory before
-- looking at the points: a string that borrowed either would show.
local function parse(body, now)
  local ctx = core.context()
  local n = #body
  local buf = ffi.C.malloc(n > 0 and n or 1)
  ffi.copy(buf, body, n)
  local rc = core.lib.gw_json_parse(buf, n, now or NOW, ctx.arena, ctx.points, ctx.result)
  ffi.fill(buf, n, 0x58)
  ffi.C.free(buf)
  scribble(n)
  local pts = {}
  for i = 0, ctx.points[0].n - 1 do pts[#pts + 1] = core.point_table(ctx.points[0].v[i]) end
  local res = core.result_table(ctx.result[0])
  ctx:free()
  return rc, pts, res
end

-- A body holding one good point: that point.
local function one(body)
  local rc, pts, res = parse(body)
  assert.equal(0, rc)
  assert.equal("", res.msg)
  assert.equal(0, res.rejected)
  assert.equal(1, #pts)
  return pts[1]
end

-- A lone point that is rejected: the message.
local function bad(body)
  local rc, pts, res = parse(body)
  assert.equal(0, rc)
  assert.equal(0, #pts)
  assert.equal(1, res.rejected)
  assert.equal("index", res.where_kind)
  assert.equal(0, res.where)
  return res.msg
end

-- A body rejected as a whole: the message.
local function bad_body(body)
  local rc, pts, res = parse(body)
  assert.equal(0, rc)
  assert.equal(0, #pts)
  assert.equal(1, res.rejected)
  assert.equal("body", res.where_kind)
  return res.msg
end

-- A point with the given JSON as its time, tags or fields.
local function with_time(t) return ('{"series": "s", "time": %s, "fields": {"v": 1}}'):format(t) end
local function with_tags(t) return ('{"series": "s", "tags": %s, "fields": {"v": 1}}'):format(t) end
local function with_fields(f) return ('{"series": "s", "fields": %s}'):format(f) end

local function ns(x) return tostring(x) end -- int64 cdata -> "123LL"

-- assert.matches takes no message (its third argument is a start index).
local function matches(pattern, s, what)
  assert(s:match(pattern), ("%s: %q does not match %q"):format(what, s, pattern))
end

describe("gw_json_parse", function()
  describe("a lone point", function()
    it("reads the documented example", function()
      local p = one([[{"series": "requests", "time": 1700000000.123456,
        "tags": {"route": "GET:/version", "status_code": 200},
        "fields": {"request_id": "4f1c", "execution_time": 0.0123}}]])
      assert.equal("requests", p.series)
      assert.equal("1700000000123456000LL", ns(p.time_ns))
      assert.same({ route = "GET:/version", status_code = "200" }, p.tags)
      assert.same({ request_id = "string", execution_time = "float" }, p.types)
      assert.equal("4f1c", p.fields.request_id)
      assert.equal(0.0123, p.fields.execution_time)
      assert.equal(0, p.src)
    end)

    it("takes now_ns when time is absent", function()
      assert.equal(ns(NOW), ns(one('{"series": "s", "fields": {"v": 1}}').time_ns))
    end)

    it("accepts a point without fields, tags or time (a later stage judges)", function()
      local p = one('{"series": "s"}')
      assert.equal("s", p.series)
      assert.same({}, p.fields)
      assert.same({}, p.tags)
      assert.same({}, one('{"series": "s", "fields": {}, "tags": {}}').fields)
    end)

    it("takes null tags and fields as none (what Go writes for a nil map)", function()
      local p = one('{"series": "s", "tags": null, "fields": null}')
      assert.same({}, p.tags)
      assert.same({}, p.fields)
    end)

    it("keys may come in any order", function()
      local p = one('{"fields": {"v": 2}, "tags": {"t": "x"}, "time": 5, "series": "s"}')
      assert.equal("s", p.series)
      assert.equal("5000000000LL", ns(p.time_ns))
      assert.equal("x", p.tags.t)
    end)

    it("unescapes strings and keeps UTF-8", function()
      local p = one([[{"series": "caf\u00e9 \"q\"", "tags": {"k\\": "a\nb"},
        "fields": {"s": "\ud83d\ude00 tab\t"}}]])
      assert.equal('café "q"', p.series)
      assert.equal("a\nb", p.tags["k\\"])
      assert.equal("\240\159\152\128 tab\t", p.fields.s)
    end)
  end)

  describe("time", function()
    it("reads integer seconds", function()
      assert.equal("1700000000000000000LL", ns(one(with_time("1700000000")).time_ns))
      assert.equal("0LL", ns(one(with_time("0")).time_ns))
      assert.equal("-86400000000000LL", ns(one(with_time("-86400")).time_ns))
    end)

    it("keeps a microsecond fraction exactly", function()
      local cases = {
        ["1700000000.123456"] = "1700000000123456000LL",
        ["1700000000.000001"] = "1700000000000001000LL",
        ["1700000000.999999"] = "1700000000999999000LL",
        ["1699999999.5"] = "1699999999500000000LL",
        ["0.000001"] = "1000LL",
        ["-1.5"] = "-1500000000LL",
        ["-0.000001"] = "-1000LL",
        ["4102444800.000007"] = "4102444800000007000LL", -- 2100-01-01
        ["1.7e9"] = "1700000000000000000LL",
        ["17000000001234560e-7"] = "1700000000123456000LL",
      }
      for t, want in pairs(cases) do
        assert.equal(want, ns(one(with_time(t)).time_ns), t)
      end
    end)

    it("keeps every microsecond of a second exactly", function()
      -- Naive t * 1e9 gets many of these wrong by a few hundred ns.
      for us = 0, 999999, 7919 do
        local t = ("1700000000.%06d"):format(us)
        local want = ("1700000000%06d000LL"):format(us)
        assert.equal(want, ns(one(with_time(t)).time_ns), t)
      end
    end)

    it("rounds digits beyond the microsecond (a double cannot hold them)", function()
      assert.equal("1700000000123457000LL", ns(one(with_time("1700000000.1234567")).time_ns))
      assert.equal("1700000000123457000LL", ns(one(with_time("17000000001234567e-7")).time_ns))
    end)

    it("reads RFC 3339 with Z", function()
      assert.equal("1700000000000000000LL", ns(one(with_time('"2023-11-14T22:13:20Z"')).time_ns))
    end)

    it("reads RFC 3339 with an offset and nanoseconds", function()
      -- 22:13:20+02:00 is 20:13:20Z, two hours before 1700000000.
      assert.equal("1699992800123456789LL",
        ns(one(with_time('"2023-11-14T22:13:20.123456789+02:00"')).time_ns))
      -- 22:13:20.5-05:30 is 03:43:20.5Z the next day.
      assert.equal("1700019800500000000LL", ns(one(with_time('"2023-11-14T22:13:20.5-05:30"')).time_ns))
      assert.equal("1700000000000000000LL", ns(one(with_time('"2023-11-14T22:13:20-00:00"')).time_ns))
    end)

    it("accepts lower-case t and z", function()
      assert.equal("1700000000000001000LL", ns(one(with_time('"2023-11-14t22:13:20.000001z"')).time_ns))
    end)

    it("reads dates before 1970 and leap days", function()
      assert.equal("-1000000000LL", ns(one(with_time('"1969-12-31T23:59:59Z"')).time_ns))
      assert.equal("1709164800000000000LL", ns(one(with_time('"2024-02-29T00:00:00Z"')).time_ns))
      assert.equal("951782400000000000LL", ns(one(with_time('"2000-02-29T00:00:00Z"')).time_ns))
    end)

    it("reaches both ends of int64 nanoseconds", function()
      assert.equal("9223372036854775807LL",
        ns(one(with_time('"2262-04-11T23:47:16.854775807Z"')).time_ns))
      assert.equal("-9223372036854775808LL",
        ns(one(with_time('"1677-09-21T00:12:43.145224192Z"')).time_ns))
    end)

    it("rejects null", function()
      assert.matches("^time: null is not a time", bad(with_time("null")))
    end)

    it("rejects other types", function()
      assert.matches("^time: a boolean is not a time", bad(with_time("true")))
      assert.matches("^time: an object is not a time", bad(with_time("{}")))
      assert.matches("^time: an array is not a time", bad(with_time("[1]")))
    end)

    it("rejects numbers out of range", function()
      assert.matches("^time: 9223372037 is out of range", bad(with_time("9223372037")))
      assert.matches("^time: .* is out of range", bad(with_time("1e10")))
      assert.matches("^time: .* is out of range", bad(with_time("-1e10")))
      assert.matches("^time: 18446744073709551616 is out of range", bad(with_time("18446744073709551616")))
    end)

    it("rejects RFC 3339 times out of range", function()
      assert.matches('^time: "2262%-04%-11T23:47:16.854775808Z" is out of range',
        bad(with_time('"2262-04-11T23:47:16.854775808Z"')))
      assert.matches("out of range", bad(with_time('"1677-01-01T00:00:00Z"')))
      assert.matches("out of range", bad(with_time('"9999-12-31T23:59:59Z"')))
    end)

    it("rejects strings that are not RFC 3339", function()
      for _, t in ipairs({ '"yesterday"', '""', '"2023-11-14"', '"2023-11-14T22:13:20"',
        '"2023-11-14 22:13:20Z"', '"2023-11-14T22:13:20.Z"', '"2023-11-14T22:13:20+0200"',
        '"2023-11-14T22:13:20Z "', '"2023-1-14T22:13:20Z"', '"1700000000"' }) do
        matches("^time: .* is not an RFC 3339 time", bad(with_time(t)), t)
      end
    end)

    it("rejects impossible dates and clock times", function()
      assert.matches("month out of range", bad(with_time('"2023-13-01T00:00:00Z"')))
      assert.matches("day out of range", bad(with_time('"2023-02-29T00:00:00Z"')))
      assert.matches("day out of range", bad(with_time('"1900-02-29T00:00:00Z"')))
      assert.matches("day out of range", bad(with_time('"2023-04-31T00:00:00Z"')))
      assert.matches("hour, minute or second", bad(with_time('"2023-11-14T24:00:00Z"')))
      assert.matches("hour, minute or second", bad(with_time('"2016-12-31T23:59:60Z"')))
      assert.matches("offset out of range", bad(with_time('"2023-11-14T22:13:20+24:00"')))
    end)

    it("rejects more than 9 fractional digits", function()
      assert.matches("more than 9 fractional digits", bad(with_time('"2023-11-14T22:13:20.1234567891Z"')))
    end)
  end)

  describe("tags", function()
    it("keeps strings", function()
      assert.same({ route = "GET:/version", host = "a b,c=d" },
        one(with_tags('{"route": "GET:/version", "host": "a b,c=d"}')).tags)
    end)

    it("writes integers as their text, never 200.0", function()
      local p = one(with_tags('{"status_code": 200, "neg": -3, "zero": 0, "max": 9223372036854775807}'))
      assert.same({ status_code = "200", neg = "-3", zero = "0", max = "9223372036854775807" }, p.tags)
    end)

    it("writes integers beyond int64 as their text", function()
      local p = one(with_tags('{"u": 18446744073709551615, "huge": -123456789012345678901234567890}'))
      assert.same({ u = "18446744073709551615", huge = "-123456789012345678901234567890" }, p.tags)
    end)

    it("writes fractions in their shortest exact form", function()
      local p = one(with_tags('{"a": 1.5, "b": 0.1, "c": -2.25, "d": 1e3, "e": 1.0, "f": 1e-7}'))
      assert.same({ a = "1.5", b = "0.1", c = "-2.25", d = "1000", e = "1", f = "1e-07" }, p.tags)
    end)

    it("writes booleans as true and false", function()
      assert.same({ ok = "true", no = "false" }, one(with_tags('{"ok": true, "no": false}')).tags)
    end)

    it("drops a tag whose value is the empty string", function()
      local p = one(with_tags('{"a": "", "b": "x", "c": ""}'))
      assert.same({ b = "x" }, p.tags)
    end)

    it("rejects null, objects and arrays, naming the tag", function()
      assert.equal("tags.route: null is not a tag value (string, number or boolean)",
        bad(with_tags('{"ok": 1, "route": null}')))
      assert.matches("^tags.route: an object is not a tag value", bad(with_tags('{"route": {}}')))
      assert.matches("^tags.route: an array is not a tag value", bad(with_tags('{"route": ["a"]}')))
    end)

    it("rejects a tag named time", function()
      assert.matches("^tags.time: InfluxDB cannot store", bad(with_tags('{"time": "x"}')))
    end)

    it("rejects tags that are not an object", function()
      assert.matches("^tags: an array is not an object of tags", bad(with_tags('["a"]')))
      assert.matches("^tags: a string is not an object of tags", bad(with_tags('"a=b"')))
    end)
  end)

  describe("fields", function()
    it("reads every value type", function()
      local p = one(with_fields('{"i": 42, "n": -7, "f": 0.5, "one": 1.0, "e": 1e3, "s": "x", ' ..
        '"empty": "", "t": true, "no": false}'))
      assert.same({ i = "int", n = "int", f = "float", one = "float", e = "float", s = "string",
        empty = "string", t = "bool", no = "bool" }, p.types)
      assert.equal("42LL", tostring(p.fields.i))
      assert.equal("-7LL", tostring(p.fields.n))
      assert.equal(0.5, p.fields.f)
      assert.equal(1.0, p.fields.one)
      assert.equal(1000, p.fields.e)
      assert.equal("x", p.fields.s)
      assert.equal("", p.fields.empty)
      assert.is_true(p.fields.t)
      assert.is_false(p.fields.no)
    end)

    it("keeps int64 max and min exactly", function()
      local p = one(with_fields('{"max": 9223372036854775807, "min": -9223372036854775808, ' ..
        '"big": 9007199254740993}'))
      assert.same({ max = "int", min = "int", big = "int" }, p.types)
      assert.equal("9223372036854775807LL", tostring(p.fields.max))
      assert.equal("-9223372036854775808LL", tostring(p.fields.min))
      assert.equal("9007199254740993LL", tostring(p.fields.big)) -- 2^53 + 1: a double loses it
    end)

    it("makes integers beyond int64 unsigned", function()
      local p = one(with_fields('{"u": 9223372036854775808, "umax": 18446744073709551615, "i": 5}'))
      assert.same({ u = "uint", umax = "uint", i = "int" }, p.types)
      assert.equal("9223372036854775808ULL", tostring(p.fields.u))
      assert.equal("18446744073709551615ULL", tostring(p.fields.umax))
      assert.equal("5LL", tostring(p.fields.i))
    end)

    it("rejects integers beyond uint64 and below int64", function()
      assert.equal("fields.u: 18446744073709551616 is out of range (int64 or uint64)",
        bad(with_fields('{"u": 18446744073709551616}')))
      assert.matches("^fields.n: %-9223372036854775809 is out of range",
        bad(with_fields('{"n": -9223372036854775809}')))
    end)

    it("rejects null, objects and arrays, naming the field", function()
      assert.equal("fields.execution_time: null is not a field value (number, string or boolean)",
        bad(with_fields('{"request_id": "x", "execution_time": null}')))
      assert.matches("^fields.o: an object is not a field value", bad(with_fields('{"o": {"a": 1}}')))
      assert.matches("^fields.a: an array is not a field value", bad(with_fields('{"a": [1, 2]}')))
    end)

    it("drops a field named time and keeps the others, as InfluxDB does", function()
      -- (counted in luagw_time_fields_dropped_total: spec/lineproto_influx_spec.lua)
      local p = one(with_fields('{"time": 1, "v": 2, "time": "x"}'))
      assert.same({ v = 2 }, p.fields)
      -- a point left without fields is for a later stage to judge, as any
      assert.same({}, one(with_fields('{"time": true}')).fields)
      -- its value must still be a field value
      assert.matches("^fields.time: null is not a field value", bad(with_fields('{"time": null}')))
    end)

    it("takes the last value of a repeated key in fields and in tags", function()
      local p = one('{"series": "s", "tags": {"a": "1", "b": "2", "a": "3"},'
        .. ' "fields": {"v": 1, "w": true, "v": "x", "v": 2.5}}')
      assert.same({ a = "3", b = "2" }, p.tags)
      assert.same({ v = 2.5, w = true }, p.fields)
      assert.same({ v = "float", w = "bool" }, p.types)
      -- a tag whose last value is empty is no tag; an empty one before is overwritten
      assert.same({ b = "y" }, one(with_tags('{"a": "x", "b": "y", "a": ""}')).tags)
      assert.same({ a = "x" }, one(with_tags('{"a": "", "a": "x"}')).tags)
      -- escaped spellings are the same key
      assert.same({ a = 2 }, one(with_fields([[{"a": 1, "\u0061": 2}]])).fields)
    end)

    it("takes the last value among many keys, whatever the order", function()
      local keys = {}
      for i = 1, 40 do keys[#keys + 1] = ('"k%d": %d'):format(i, i) end
      keys[#keys + 1] = '"k17": 0'
      keys[#keys + 1] = '"k3": "s"'
      local p = one(with_fields("{" .. table.concat(keys, ", ") .. "}"))
      local n = 0
      for _ in pairs(p.fields) do n = n + 1 end
      assert.equal(40, n)
      assert.equal(0, p.fields.k17)
      assert.equal("s", p.fields.k3)
      assert.equal(40, p.fields.k40)
    end)

    it("rejects a point whose own keys repeat, with its index", function()
      local rc, pts, res = parse('[{"series": "a", "fields": {"v": 1}},'
        .. ' {"series": "b", "series": "c", "fields": {"v": 1}}, {"series": "d", "fields": {"v": 1}}]')
      assert.equal(0, rc)
      assert.equal(2, #pts)
      assert.same({ 1, "index", 1, "series: the key appears twice in the point" },
        { res.rejected, res.where_kind, res.where, res.msg })
      assert.equal("fields: the key appears twice in the point",
        bad('{"series": "s", "fields": {"v": 1}, "fields": {"w": 2}}'))
    end)

    it("rejects fields that are not an object", function()
      assert.matches("^fields: a number is not an object of fields", bad(with_fields("1")))
      assert.matches("^fields: a number is not an object of fields", bad(with_fields("-99999999999999999999")))
    end)
  end)

  describe("the point object", function()
    it("rejects an unknown key, naming it", function()
      assert.matches("^seris: unknown key", bad('{"seris": "s", "series": "s", "fields": {"v": 1}}'))
      assert.matches("^tag: unknown key", bad('{"series": "s", "tag": {}}'))
    end)

    it("rejects a missing, empty or non-string series", function()
      assert.matches("^series: missing", bad('{"fields": {"v": 1}}'))
      assert.matches("^series: must not be empty", bad('{"series": "", "fields": {"v": 1}}'))
      assert.matches("^series: a number is not a series name", bad('{"series": 5}'))
      assert.matches("^series: null is not a series name", bad('{"series": null}'))
      assert.matches("^series: a number is not a series name", bad('{"series": 99999999999999999999}'))
    end)

    it("cuts long keys in messages", function()
      local msg = bad('{"' .. ("k"):rep(300) .. '": 1}')
      assert.equal(("k"):rep(64) .. ": unknown key (a point has series, time, tags and fields)", msg)
    end)
  end)

  describe("an array", function()
    it("sets src to each point's index", function()
      local rc, pts, res = parse('[{"series": "a"}, {"series": "b"}, {"series": "c"}]')
      assert.equal(0, rc)
      assert.equal(0, res.rejected)
      assert.equal(3, #pts)
      for i, name in ipairs({ "a", "b", "c" }) do
        assert.equal(name, pts[i].series)
        assert.equal(i - 1, pts[i].src)
      end
    end)

    it("parses an empty array to no points and no error", function()
      local rc, pts, res = parse("[]")
      assert.equal(0, rc)
      assert.equal(0, #pts)
      assert.is_false(res.has_error)
    end)

    it("keeps the good points around bad ones and reports the first bad one", function()
      local rc, pts, res = parse([[[
        {"series": "g0", "fields": {"v": 1}},
        {"series": "b1", "fields": {"execution_time": null}},
        {"series": "g2", "tags": {"t": 1}},
        {"series": "b3", "colour": "red"},
        "not a point",
        {"series": "g5", "time": 1}
      ] ]])
      assert.equal(0, rc)
      assert.equal(3, #pts)
      assert.same({ "g0", "g2", "g5" }, { pts[1].series, pts[2].series, pts[3].series })
      assert.same({ 0, 2, 5 }, { pts[1].src, pts[2].src, pts[3].src })
      assert.equal(3, res.rejected)
      assert.equal("index", res.where_kind)
      assert.equal(1, res.where)
      assert.equal("fields.execution_time: null is not a field value (number, string or boolean)", res.msg)
    end)

    it("rejects an element that is not an object by its index", function()
      local rc, pts, res = parse('[{"series": "a"}, 42, null, [], {"series": "b"}]')
      assert.equal(0, rc)
      assert.equal(2, #pts)
      assert.equal(3, res.rejected)
      assert.equal("index", res.where_kind)
      assert.equal(1, res.where)
      assert.equal("a point must be an object, not a number", res.msg)
      -- a number beyond int64 is still a number, though it takes another path
      rc, pts, res = parse('[99999999999999999999, {"series": "b"}]')
      assert.equal(1, #pts)
      assert.equal("a point must be an object, not a number", res.msg)
    end)

    it("keeps good points when one has an integer beyond uint64", function()
      -- jansson fails the whole document on such an integer: this takes the
      -- placeholder path. The strings hold digits and escaped quotes that
      -- must not be taken for numbers.
      local rc, pts, res = parse([[[
        {"series": "a", "fields": {"u": 18446744073709551615, "s": "x \"12345678901234567890\" 99999999999999999999"}},
        {"series": "b", "fields": {"u": 18446744073709551616}},
        {"series": "c", "tags": {"id": 99999999999999999999}, "fields": {"f": 1e300, "i": -9223372036854775808}}
      ] ]])
      assert.equal(0, rc)
      assert.equal(2, #pts)
      assert.equal("18446744073709551615ULL", tostring(pts[1].fields.u))
      assert.equal('x "12345678901234567890" 99999999999999999999', pts[1].fields.s)
      assert.equal("99999999999999999999", pts[2].tags.id)
      assert.equal("-9223372036854775808LL", tostring(pts[2].fields.i))
      assert.equal(1e300, pts[2].fields.f)
      assert.same({ 0, 2 }, { pts[1].src, pts[2].src })
      assert.equal(1, res.rejected)
      assert.equal(1, res.where)
      assert.matches("^fields.u: 18446744073709551616 is out of range", res.msg)
    end)

    it("parses many points (past the allocation region)", function()
      local parts = {}
      for i = 0, 19999 do
        parts[#parts + 1] = ('{"series": "s%d", "time": %d.000%03d, "tags": {"k": %d}, "fields": {"v": %d, "s": "%s"}}')
            :format(i % 7, 1700000000 + i, i % 1000, i, i * 3, ("x"):rep(i % 50))
      end
      local body = "[" .. table.concat(parts, ",") .. "]"
      for _ = 1, 2 do -- the second parse runs with a grown region
        local rc, pts, res = parse(body)
        assert.equal(0, rc)
        assert.equal(0, res.rejected)
        assert.equal(20000, #pts)
        for _, i in ipairs({ 0, 1, 4999, 12345, 19999 }) do
          local p = pts[i + 1]
          assert.equal(i, p.src)
          assert.equal("s" .. (i % 7), p.series)
          assert.equal(("%d000%03d000LL"):format(1700000000 + i, i % 1000), ns(p.time_ns))
          assert.equal(tostring(i), p.tags.k)
          assert.equal(tostring(i * 3) .. "LL", tostring(p.fields.v))
          assert.equal(("x"):rep(i % 50), p.fields.s)
        end
      end
    end)
  end)

  describe("a body that is not points", function()
    it("names line and column of a syntax error", function()
      assert.equal("invalid JSON at line 3 column 2: expected a key (a string) after ',', near 'x}'",
        bad_body('{\n "series": "a",\n x}'))
    end)

    it("rejects an empty body and trailing garbage", function()
      assert.equal("the body is empty (expected a point object or an array of them)", bad_body(""))
      assert.equal("invalid JSON at line 2 column 2: expected a value (an object, array, string, number, true, false "
        .. "or null), at the end of the body", bad_body(" \n "))
      assert.equal("invalid JSON at line 1 column 17: expected the end of the body after its value, near 'x'",
        bad_body('{"series": "a"} x'))
      assert.matches("^invalid JSON at line 1 column 18: expected a value .*, near ']'", bad_body('[{"series": "a"},]'))
    end)

    it("rejects a top-level scalar or null", function()
      assert.equal("the body must be a point object or an array of them, not a number", bad_body("42"))
      assert.equal("the body must be a point object or an array of them, not null", bad_body("null"))
      assert.equal("the body must be a point object or an array of them, not a string", bad_body('"x"'))
      assert.equal("the body must be a point object or an array of them, not a number",
        bad_body("18446744073709551616"))
    end)

    it("rejects what JSON does not have", function()
      for _, v in ipairs({ "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "0x10", "'a'" }) do
        matches("^invalid JSON at line 1 column %d+: ", bad_body(with_fields('{"v": ' .. v .. '}')), v)
      end
    end)

    it("rejects a real number that overflows a double", function()
      assert.matches("^invalid JSON.*real number overflow", bad_body(with_fields('{"v": 1e999}')))
      -- also when the body takes the placeholder path
      assert.matches("^invalid JSON.*real number overflow",
        bad_body(with_fields('{"u": 18446744073709551615, "v": 1e999}')))
    end)

    it("rejects invalid UTF-8 and control characters", function()
      assert.equal([[invalid JSON at line 1 column 13: invalid UTF-8 in a string, near '\xff"}']],
        bad_body('{"series": "\255"}'))
      assert.matches("^invalid JSON at line 1 column 14: control character in a string .*near '\\x09b\"}'",
        bad_body('{"series": "a\tb"}'))
    end)

    it("rejects the point, not the body, for a NUL byte (\\u0000) in a name or value", function()
      local cases = {
        { '{"series": "a\\u0000", "fields": {"v": 1}}', "series: the name holds a NUL byte (\\u0000), which luagw refuses" },
        { '{"series": "s", "tags": {"t": "\\u0000"}, "fields": {"v": 1}}', "tags.t: the value holds a NUL byte (\\u0000), which luagw refuses" },
        { '{"series": "s", "tags": {"t\\u0000": "x"}, "fields": {"v": 1}}', "tags: a key holds a NUL byte (\\u0000), which luagw refuses" },
        { '{"series": "s", "fields": {"f": "a\\u0000b"}}', "fields.f: the value holds a NUL byte (\\u0000), which luagw refuses" },
        { '{"series": "s", "fields": {"\\u0000": 1}}', "fields: a key holds a NUL byte (\\u0000), which luagw refuses" },
        { '{"series": "s", "ser\\u0000ies": 1}', "point: a key holds a NUL byte (\\u0000), which luagw refuses" },
      }
      for _, c in ipairs(cases) do
        local rc, pts, res = parse('[{"series": "ok", "fields": {"v": 1}}, ' .. c[1] .. ']')
        assert.equal(0, rc)
        assert.equal(1, #pts, c[1])
        assert.same({ 1, "index", 1, c[2] }, { res.rejected, res.where_kind, res.where, res.msg })
      end
      -- also in a body with integers beyond int64; and where nothing keeps it
      local rc, pts = parse('[{"series": "s", "fields": {"u": 18446744073709551615,\n "s": "caf\195\169\\u0000"}},'
        .. '{"series": "t", "fields": {"v": 1}}]')
      assert.same({ 0, 1, "t" }, { rc, #pts, pts[1].series })
      -- an escaped backslash before u0000 is no NUL
      local p = one('{"series": "s", "fields": {"u": 18446744073709551615, "s": "\\\\u0000"}}')
      assert.equal("\\u0000", p.fields.s)
    end)

    it("describes a body error after a \\u0000 key", function()
      assert.equal("invalid JSON at line 1 column 22: expected ':' after a key, at the end of the body",
        bad_body('[{"s\\u0000": 1}, {"a"'))
    end)

    it("rejects an integer beyond int64 where a key belongs", function()
      assert.equal("invalid JSON at line 1 column 2: expected a key (a string) or '}', near '18446744073709551615: 1}'",
        bad_body('{18446744073709551615: 1}'))
      assert.equal("invalid JSON at line 1 column 17: expected a key (a string) after ',', near '18446744073709551615}'",
        bad_body('{"series": "s", 18446744073709551615}'))
    end)

    it("reports a syntax error after an integer beyond int64 where it is", function()
      -- Same column as with an int64 of the same width.
      local big = bad_body('[{"series": "s", "fields": {"u": 18446744073709551615}} x]')
      assert.equal(bad_body('[{"series": "s", "fields": {"u": -1000000000000000000}} x]'), big)
      assert.equal("invalid JSON at line 1 column 57: expected ',' or ']' after a value in an array, near 'x]'", big)
      assert.equal("invalid JSON at line 2 column 2: expected a value (an object, array, string, number, true, false "
        .. "or null), near 'x]'",
        bad_body('[{"series": "s", "fields": {"u": 18446744073709551615}},\n x]'))
    end)
  end)

  -- gateway/json.c reads JSON with its own tokenizer: strings 16 bytes at a
  -- time, numbers digit by digit with a fast path for doubles, duplicate keys
  -- behind a one-word filter. These pin what it must do exactly as jansson
  -- and YAJL (which it replaced) did, and what it says of each body error:
  -- what is wrong, the line and column of the first byte that is not JSON,
  -- and the text there.
  describe("the tokenizer", function()
    it("reads strings of every length, with UTF-8 at every offset", function()
      for n = 0, 40 do
        local s = ("a"):rep(n)
        assert.equal(s, one(with_fields(('{"s": "%s"}'):format(s))).fields.s)
        for _, ch in ipairs({ "\195\169", "\226\130\172", "\240\159\152\128", "\127" }) do
          local u = ("a"):rep(n) .. ch .. "b"
          assert.equal(u, one(with_fields(('{"s": "%s"}'):format(u))).fields.s)
        end
      end
    end)

    it("reads every escape, at the start, middle and end of short and long strings", function()
      local pairs_ = { { [[\"]], '"' }, { [[\\]], "\\" }, { [[\/]], "/" }, { [[\b]], "\b" },
        { [[\f]], "\f" }, { [[\n]], "\n" }, { [[\r]], "\r" }, { [[\t]], "\t" },
        { [[\u0041]], "A" }, { [[\u00e9]], "\195\169" }, { [[\u20AC]], "\226\130\172" },
        { [[\uD83D\uDE00]], "\240\159\152\128" } }
      for _, e in ipairs(pairs_) do
        for _, pad in ipairs({ "", "x", ("y"):rep(20) }) do
          for _, form in ipairs({ "%s%s", "%2$s%1$s%2$s", "%2$s%1$s" }) do
            local raw = form:gsub("%%2%$s", pad):gsub("%%1%$s", e[1]):gsub("%%s%%s", e[1] .. pad)
            local want = form:gsub("%%2%$s", pad):gsub("%%1%$s", e[2]):gsub("%%s%%s", e[2] .. pad)
            local p = one(('{"series": "s", "tags": {"%s": "v"}, "fields": {"s": "%s"}}'):format(raw, raw))
            assert.equal(want, p.fields.s)
            assert.equal("v", p.tags[want])
          end
        end
      end
    end)

    it("compares keys unescaped: an escaped key can name time or repeat a key", function()
      assert.equal("tags.time: InfluxDB cannot store a tag named time",
        bad([[{"series": "s", "tags": {"ti\u006de": "x"}}]]))
      assert.equal("series: the key appears twice in the point",
        bad([[{"series":"s","\u0073eries":"t","fields":{"a":1}}]]))
    end)

    it("rejects bad escapes, lone surrogates and strings cut short", function()
      local cases = {
        { [[{"series": "s\ud800"}]], [[line 1 column 14: invalid Unicode escape: a high surrogate (\uD800 to ]]
          .. [[\uDBFF) not followed by a low one (\uDC00 to \uDFFF), near '\ud800"}']] },
        { [[{"series": "s\ud800x"}]], [[line 1 column 14: invalid Unicode escape: a high surrogate (\uD800 to ]]
          .. [[\uDBFF) not followed by a low one (\uDC00 to \uDFFF), near '\ud800x"}']] },
        { [[{"series": "s\ud800\u0041"}]], [[line 1 column 14: invalid Unicode escape: a high surrogate (\uD800 to ]]
          .. [[\uDBFF) not followed by a low one (\uDC00 to \uDFFF), near '\ud800\u0041"}']] },
        { [[{"series": "s\udc00"}]], [[line 1 column 14: invalid Unicode escape: a low surrogate (\uDC00 to \uDFFF) ]]
          .. [[without a high one before it, near '\udc00"}']] },
        { [[{"series": "\u12G4"}]], [[line 1 column 13: invalid escape: \u takes four hex digits, near '\u12G4"}']] },
        { [[{"series": "\q"}]], [[line 1 column 13: invalid escape (JSON has \" \\ \/ \b \f \n \r \t and \uXXXX), ]]
          .. [[near '\q"}']] },
        { [[{"series": "abc]], [[line 1 column 12: unterminated string (no closing quote before the end of the body), ]]
          .. [[near '"abc']] },
        { [[{"series": "abc\]], [[line 1 column 12: unterminated string (no closing quote before the end of the ]]
          .. [[body), near '"abc\']] },
        { [[{"series":"s"} "abc]], [[line 1 column 16: expected the end of the body after its value, near '"abc']] },
      }
      for _, c in ipairs(cases) do assert.equal("invalid JSON at " .. c[2], bad_body(c[1])) end
    end)

    it("rejects UTF-8 that is cut short, overlong, a surrogate or beyond U+10FFFF", function()
      assert.equal([[invalid JSON at line 1 column 15: invalid UTF-8 in a string, near '\xc3']],
        bad_body('{"series": "ab\195'))
      for _, b in ipairs({ "\192\175", "\237\160\128", "\244\144\128\128", "\255" }) do
        local hex = b:gsub(".", function(c) return ("\\x%02x"):format(c:byte()) end)
        assert.equal(("invalid JSON at line 1 column 13: invalid UTF-8 in a string, near '%s\"}'"):format(hex),
          bad_body('{"series": "' .. b .. '"}'))
      end
    end)

    it("reads every number form to what strtod gives", function()
      local forms = { "0", "-0", "7", "-7", "0.5", "-0.5", "1.0", "1e5", "1E5", "1e+5", "1e-5",
        "-1.5E-3", "0.1e1", "1700000000.123456", "0.0123", "123456789012345.6",
        "9007199254740993.0", "12345678901234567890.5", "1e22", "1e23", "1.5e-22", "1.5e-23",
        "2.2250738585072011e-308", "4.9e-324", "1e-400", "1.7976931348623157e308",
        "0.30000000000000004", "123456789012345678e-5", "0.000000000000000000001" }
      for _, t in ipairs(forms) do
        local p = one(with_fields(('{"v": %s}'):format(t)))
        if t:find("[.eE]") then
          assert.equal("float", p.types.v)
          assert.equal(tonumber(t), p.fields.v, t)
        else
          assert.equal("int", p.types.v)
          assert.equal((t == "-0" and "0" or t) .. "LL", tostring(p.fields.v))
        end
      end
      assert.equal("9223372036854775807LL", tostring(one(with_fields('{"v": 9223372036854775807}')).fields.v))
      assert.equal("1234567890123456789LL", tostring(one(with_fields('{"v": 1234567890123456789}')).fields.v))
      assert.equal("12345678901234567890ULL", tostring(one(with_fields('{"v": 12345678901234567890}')).fields.v))
    end)

    it("reads time numbers in every form", function()
      local cases = { { "1700000000.5", "1700000000500000000LL" }, { "-1.5", "-1500000000LL" },
        { "1700000000.1234567", "1700000000123457000LL" }, { "1e9", "1000000000000000000LL" },
        { "1700000000.000001e0", "1700000000000001000LL" }, { "0.000001", "1000LL" },
        { "8589934591.5", "8589934591500000000LL" }, { "8589934592.5", "8589934592500000000LL" } }
      for _, c in ipairs(cases) do assert.equal(c[2], ns(one(with_time(c[1])).time_ns), c[1]) end
    end)

    it("rejects numbers JSON does not have, wherever they stop", function()
      local value = "expected a value (an object, array, string, number, true, false or null)"
      local cases = { { "[-", "1 column 2: invalid number: a digit must follow '-', near '-'" },
        { "[1.", "1 column 2: invalid number: a digit must follow '.', near '1.'" },
        { "[1e", "1 column 2: invalid number: its exponent has no digit, near '1e'" },
        { "[1e+", "1 column 2: invalid number: its exponent has no digit, near '1e+'" },
        { "[01]", "1 column 3: expected ',' or ']' after a value in an array, near '1]'" },
        { "[.5]", "1 column 2: " .. value .. ", near '.5]'" }, { "[+1]", "1 column 2: " .. value .. ", near '+1]'" },
        { "[1", "1 column 3: expected ',' or ']' after a value in an array, at the end of the body" },
        { "[1e400]", "1 column 2: real number overflow, near '1e400]'" },
        { "[-1e400]", "1 column 2: real number overflow, near '-1e400]'" },
        { "tru", "1 column 1: invalid literal (true, false or null expected), near 'tru'" },
        { "nul", "1 column 1: invalid literal (true, false or null expected), near 'nul'" },
        { '{"a"', "1 column 5: expected ':' after a key, at the end of the body" },
        { '{"a":', "1 column 6: " .. value .. ", at the end of the body" } }
      for _, c in ipairs(cases) do assert.equal("invalid JSON at line " .. c[2], bad_body(c[1])) end
    end)

    it("finds repeated keys whatever the filter says, and ignores them in values it skips", function()
      -- same length, first and last byte: one filter bit, two keys
      local p = one(with_fields('{"axb": 1, "ayb": 2, "azb": 3}'))
      assert.same({ axb = "int", ayb = "int", azb = "int" }, p.types)
      assert.same({ axb = 3, ayb = 2 }, one(with_fields('{"axb": 1, "ayb": 2, "axb": 3}')).fields)
      -- an unknown key rejects the point; repeats inside its value change nothing
      assert.matches("^x: unknown key", bad('{"series":"s","x":{"a":1,"a":2}}'))
      local keys = {}
      for i = 1, 40 do keys[#keys + 1] = ('"k%d": %d'):format(i, i) end
      assert.equal(40, #(function() local t = {} for k in pairs(one(with_fields("{" .. table.concat(keys, ", ") .. "}")).fields) do t[#t + 1] = k end return t end)())
    end)

    it("nests 2048 deep and no deeper, as jansson", function()
      local rc, pts, res = parse(("["):rep(2048) .. ("]"):rep(2048))
      assert.equal(0, rc)
      assert.equal("index", res.where_kind) -- a point must be an object: read, not a body error
      assert.matches("^invalid JSON at line 1 column 2049: nested deeper than 2048 arrays and objects",
        bad_body(("["):rep(2049) .. ("]"):rep(2049)))
      assert.matches("maximum parsing depth reached",
        bad_body('{"series": "s", "x": ' .. ("["):rep(2048) .. ("]"):rep(2048) .. "}"))
    end)

    it("takes the four JSON white spaces anywhere, and nothing else", function()
      local p = one(' \t\r\n{ \t\r\n"series" \t\r\n: \t\r\n"s" \t\r\n, \t\r\n"fields" \t\r\n:' ..
        ' \t\r\n{ \t\r\n"v" \t\r\n: \t\r\n1 \t\r\n} \t\r\n} \t\r\n')
      assert.equal("s", p.series)
      assert.equal([[invalid JSON at line 1 column 4: expected a value (an object, array, string, number, true, ]]
        .. [[false or null), near '\x0b2]']], bad_body("[1,\v2]"))
      assert.equal([[invalid JSON at line 1 column 34: expected ',' or '}' after a value in an object, near '\x0c}']],
        bad_body('{"series":"s","time":1700000000.5\f}'))
    end)

    it("says where, in lines and characters, also for a NUL jansson would skip", function()
      for _, c in ipairs({ { "[1\0]", [[1 column 3: expected ',' or ']' after a value in an array, near '\x00]']] },
        { "1\0", [[1 column 2: expected the end of the body after its value, near '\x00']] },
        { "[1,\ntrue\0]", [[2 column 5: expected ',' or ']' after a value in an array, near '\x00]']] },
        { '{"series": "\195\169",\n"tags": {},\n "x": tru}',
          "3 column 7: invalid literal (true, false or null expected), near 'tru}'" },
        { '{"series":"s"} x', "1 column 16: expected the end of the body after its value, near 'x'" } }) do
        assert.equal("invalid JSON at line " .. c[2], bad_body(c[1]))
      end
    end)

    it("keeps no string in the body, also for reals as tags and escaped keys", function()
      local p = one([[{"series": "s", "tags": {"f": 1.5, "i": -0, "b": true, "e\u0301": "x"},
        "fields": {"k\n": "v", "n": 2}}]])
      assert.same({ f = "1.5", i = "0", b = "true", ["e\204\129"] = "x" }, p.tags)
      assert.equal("v", p.fields["k\n"])
    end)
  end)
end)

-- The one member influx.c reads from InfluxDB's error answers.
describe("gw_json_member_string", function()
  pcall(ffi.cdef, [[
  int gw_json_member_string(const char *doc, size_t len, const char *key, gw_arena_t *a, gw_str_t *out);
  ]])

  local function member(doc, key)
    local arena = ffi.gc(core.lib.gw_arena_create(4096), core.lib.gw_arena_destroy)
    local out = ffi.new("gw_str_t[1]")
    local rc = core.lib.gw_json_member_string(doc, #doc, key, arena, out)
    if rc ~= 0 then return rc end
    return ffi.string(out[0].p, out[0].n)
  end

  it("finds a top-level string member, unescaped, past values of any kind", function()
    assert.equal("partial write: field type conflict", member('{"error":"partial write: field type conflict"}', "error"))
    assert.equal('a "quoted" \\ é\n😀', member([[{"error": "a \"quoted\" \\ \u00e9\n\ud83d\ude00"}]], "error"))
    assert.equal("m", member([[ { "code" : "invalid", "n": -1.5e3, "t": true, "o": {"message": "no", "x": [1, "}", {"a": ","}]},
      "a": ["message", ","], "message" : "m" } ]], "message"))
    assert.equal("", member('{"error":""}', "error"))
    assert.equal("a\0b", member('{"error":"a\\u0000b"}', "error"))
  end)

  it("refuses what has no such string at the top", function()
    for _, doc in ipairs { "", "null", '"error"', '["error", "x"]', '{"error": 1}', '{"o": {"error": "x"}}',
                          '{"error": "cut', '{"a": 1 "error": "x"}', '{"error" "x"}', "<html>error</html>",
                          '{"a": "\\q", "error": "x"}' } do
      assert.equal(-1, member(doc, "error"), doc)
    end
  end)
end)
