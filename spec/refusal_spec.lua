-- gateway/refusal.c: which lines of a write InfluxDB's refusal names, and
-- moving them to the end of the range in place, order kept on both sides.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

pcall(ffi.cdef, "int gw_refusal_partition(const char *error, char *data, uint32_t *ends, uint32_t lo, uint32_t hi);")

-- Partition lines[lo+1..hi] (1-based) of the given lines by error; returns
-- the lines in their new order and the count moved.
local function partition(error, lines, lo, hi)
  local text = table.concat(lines)
  local buf = ffi.new("char[?]", #text + 1)
  local ends = ffi.new("uint32_t[?]", #lines)
  ffi.copy(buf, text, #text)
  local off = 0
  for i, l in ipairs(lines) do off = off + #l; ends[i - 1] = off end
  local k = lib.gw_refusal_partition(error, buf, ends, lo or 0, hi or #lines)
  local out, prev = {}, 0
  for i = 0, #lines - 1 do
    out[#out + 1] = ffi.string(buf + prev, ends[i] - prev)
    prev = ends[i]
  end
  assert.equal(#text, prev)
  return out, k
end

local function conflict(field, meas, typ, have)
  return ('partial write: field type conflict: input field "%s" on measurement "%s" is type %s, already exists as type %s dropped=2')
    :format(field, meas, typ, have or "integer")
end

describe("refusal: the lines a conflict names", function()
  it("moves the lines with the named field of the named type on the named measurement, order kept", function()
    local lines = { "m v=1i 1\n", 'm v="a" 2\n', "n v=\"b\" 3\n", "m v=2i 4\n", 'm,t=x v="c",w=1 5\n', "m w=1i,v=3i 6\n" }
    local out, k = partition(conflict("v", "m", "string"), lines)
    assert.equal(2, k)
    assert.same({ "m v=1i 1\n", 'n v="b" 3\n', "m v=2i 4\n", "m w=1i,v=3i 6\n", 'm v="a" 2\n', 'm,t=x v="c",w=1 5\n' }, out)
  end)

  it("tells every type apart as InfluxDB does", function()
    local lines = { "m v=1i 1\n", "m v=1u 2\n", "m v=1.5 3\n", "m v=t 4\n", "m v=false 5\n", 'm v="s" 6\n', "m v=-2 7\n" }
    for typ, want in pairs { integer = { 1 }, unsigned = { 2 }, float = { 3, 7 }, boolean = { 4, 5 }, string = { 6 } } do
      local out, k = partition(conflict("v", "m", typ), lines)
      assert.equal(#want, k, typ)
      for i, idx in ipairs(want) do assert.equal(lines[idx], out[#lines - #want + i], typ) end
    end
  end)

  it("reads escaped names and quoted strings holding separators", function()
    local lines = {
      'my\\ meas,t\\=1=a\\,b f\\,x="q\\"u, o=t" 1\n', -- measurement "my meas", field "f,x": a string
      'my\\ meas,t=1 f\\,x=1i 2\n',
      'my\\ meas f\\,x="x",f=1i 3\n',
      'mymeas f\\,x="x" 4\n',
    }
    local out, k = partition(conflict("f,x", "my meas", "string"), lines)
    assert.equal(2, k)
    assert.same({ lines[2], lines[4], lines[1], lines[3] }, out)
  end)

  it("reads a backslash as influxd does: it pairs with the next byte, which stands alone only for , space = \"", function()
    local lines = { 'm a\\"b="x" 1\n', 'm a\\xb="y" 2\n', 'm a\\\\b="z" 3\n' }
    local out, k = partition(conflict('a"b', "m", "string"), lines)
    assert.equal(1, k)
    assert.equal(lines[1], out[3])
    out, k = partition(conflict("a\\xb", "m", "string"), lines)
    assert.equal(1, k)
    assert.equal(lines[2], out[3])
    out, k = partition(conflict("a\\\\b", "m", "string"), lines)
    assert.equal(1, k)
    assert.equal(lines[3], out[3])
  end)

  it("does not take a field of the same name inside a string value, or a tag of that name", function()
    local lines = { 'm s="v=\\"x\\"" 1\n', 'm,v=x s=1i 2\n', 'm v="y" 3\n' }
    local out, k = partition(conflict("v", "m", "string"), lines)
    assert.equal(1, k)
    assert.equal(lines[3], out[3])
  end)

  it("works inside a range and leaves the lines around it alone", function()
    local lines = { 'm v="a" 1\n', "m v=1i 2\n", 'm v="b" 3\n', "m v=2i 4\n", 'm v="c" 5\n' }
    local out, k = partition(conflict("v", "m", "string"), lines, 1, 4)
    assert.equal(1, k)
    assert.same({ 'm v="a" 1\n', "m v=1i 2\n", "m v=2i 4\n", 'm v="b" 3\n', 'm v="c" 5\n' }, out)
  end)

  it("moves the line 1.x quotes as unparsable", function()
    local lines = { "m v=1i 1\n", "m v= 2\n", "m v=3i 3\n" }
    local out, k = partition("partial write: unable to parse 'm v= 2': missing field value dropped=0", lines)
    assert.equal(1, k)
    assert.same({ lines[1], lines[3], lines[2] }, out)
    -- a prefix of a longer line is not that line
    out, k = partition("unable to parse 'm v=1i': bad", lines)
    assert.equal(0, k)
  end)

  it("names nothing: a message it does not know, a truncated one, or no line that matches", function()
    local lines = { "m v=1i 1\n", 'm v="a" 2\n' }
    for _, e in ipairs { "partial write: points beyond retention policy dropped=2", "", "timeout",
                         'partial write: field type conflict: input field "v" on measur',
                         conflict("v", "other", "string"), conflict("w", "m", "string") } do
      local out, k = partition(e, lines)
      assert.equal(0, k, e)
      assert.same(lines, out)
    end
  end)

  it("a NUL byte in a name neither ends the name nor matches", function()
    local lines = { "m a\0b=\"x\" 1\n", 'm a="y" 2\n' }
    local out, k = partition(conflict("a", "m", "string"), lines)
    assert.equal(1, k)
    assert.same({ lines[1], lines[2] }, out)
  end)
end)
