-- gateway/typecheck.c: the field types of one request, checked point by
-- point (the first type of a series' field wins, as in influxd). Bodies are
-- parsed with gw_lp_parse; spec/compat_spec.lua checks the same against the
-- real influxd through the binary.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

for _, decl in ipairs({
  "int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns,"
    .. " gw_arena_t *a, gw_points_t *out, gw_result_t *res);",
  "typedef struct gw_typecheck gw_typecheck_t;",
  "gw_typecheck_t *gw_typecheck_create(void);",
  "void gw_typecheck_reset(gw_typecheck_t *tc);",
  "int gw_typecheck_point(gw_typecheck_t *tc, const gw_point_t *p, unsigned lp_flags, int kind,"
    .. " char *err, size_t errlen);",
  "void gw_typecheck_destroy(gw_typecheck_t *tc);",
}) do
  pcall(ffi.cdef, decl)
end

local NO_UINT, LINE, INDEX = 1, 0, 1
local ctx = core.context()
local tc = ffi.gc(lib.gw_typecheck_create(), lib.gw_typecheck_destroy)
local err = ffi.new("char[256]")

-- Check every point of body as one request: { rc, ... } per point, and the
-- first message. The body stays referenced while its points are checked.
local function check(body, flags, kind)
  ctx:reset()
  assert.equal(0, lib.gw_lp_parse(body, #body, 1, 0, ctx.arena, ctx.points, ctx.result))
  assert.equal(0, ctx.result[0].rejected, body)
  lib.gw_typecheck_reset(tc)
  local rcs, msg = {}, nil
  for i = 0, ctx.points[0].n - 1 do
    local rc = lib.gw_typecheck_point(tc, ctx.points[0].v + i, flags or 0, kind or LINE, err, 256)
    rcs[#rcs + 1] = rc
    if rc == 1 and not msg then msg = ffi.string(err) end
  end
  return rcs, msg
end

describe("gw_typecheck_point", function()
  it("keeps the first type of a field and refuses the points that give it another, naming the first", function()
    local rcs, msg = check("m v=42 1\nm v=42i 2\nm v=43 3\nm,t=x v=\"s\" 4\n")
    assert.same({ 0, 1, 0, 1 }, rcs)
    assert.equal('field "v" of series "m" is an integer, but a float at line 1 of this request ' ..
      "(InfluxDB refuses the point: field type conflict)", msg)
    -- the index of a JSON body
    local _, jmsg = check("m v=true\nm v=1u\n", 0, INDEX)
    assert.equal('field "v" of series "m" is an unsigned integer, but a boolean at index 1 of this request ' ..
      "(InfluxDB refuses the point: field type conflict)", jmsg)
  end)

  it("tells series and field keys apart, and every type from every other", function()
    assert.same({ 0, 0, 0, 0, 0 }, (check("a v=1\nb v=1i\na w=\"x\"\nb w=true\nab v=1u\n")))
    local values = { "1", "1i", "1u", '"s"', "t" }
    for i, x in ipairs(values) do
      for j, y in ipairs(values) do
        assert.same({ 0, i == j and 0 or 1 }, (check("m v=" .. x .. "\nm v=" .. y .. "\n")), x .. " then " .. y)
      end
    end
  end)

  it("checks unsigned integers as InfluxDB 1.x gets them: as integers", function()
    assert.same({ 0, 0, 1 }, (check("m v=1i\nm v=2u\nm v=3\n", NO_UINT)))
    assert.same({ 0, 1 }, (check("m v=1i\nm v=2u\n", 0)))
  end)

  it("remembers nothing of a refused point, and forgets a request at the reset", function()
    -- the refused second point's w does not count: the third point's w=1i stands
    assert.same({ 0, 1, 0, 0 }, (check("m v=1\nm v=1i,w=1\nm w=1i\nm v=2,w=2i\n")))
    assert.same({ 0 }, (check("m v=1i\n")))
  end)

  -- Bodies of many series, fields in changing orders, more than the
  -- checker remembers in order, and many requests in a row (its tables
  -- grow, then a reset takes a new generation): against a model.
  it("agrees with a model of the first type per series and key, over many requests", function()
    local seed = 20261207
    local function r(n) seed = seed * 48271 % 2147483647; return seed % n + 1 end
    local values = { "1", "1i", '"s"', "t" }
    local total, refused = 0, 0
    for req = 1, 60 do
      local nseries, nkeys = r(req % 3 == 0 and 300 or 6), r(req % 4 == 0 and 40 or 12)
      local lines, want, first = {}, {}, {}
      for i = 1, r(400) do
        local s, seen, f = "s" .. r(nseries), {}, {}
        for _ = 1, r(nkeys) do
          local k = "k" .. r(nkeys)
          if not seen[k] then
            seen[k] = true
            f[#f + 1] = { k, r(#values) }
          end
        end
        local ok = true
        for _, kv in ipairs(f) do
          local t = first[s .. "|" .. kv[1]]
          if t and t ~= kv[2] then ok = false end
        end
        if ok then
          for _, kv in ipairs(f) do first[s .. "|" .. kv[1]] = first[s .. "|" .. kv[1]] or kv[2] end
        end
        local text = {}
        for j, kv in ipairs(f) do text[j] = kv[1] .. "=" .. values[kv[2]] end
        lines[i] = s .. " " .. table.concat(text, ",")
        want[i] = ok and 0 or 1
        refused = refused + want[i]
      end
      total = total + #lines
      assert.same(want, (check(table.concat(lines, "\n"))), "request " .. req)
    end
    assert(refused > total / 10 and refused < total * 9 / 10, refused .. " of " .. total)
  end)
end)
