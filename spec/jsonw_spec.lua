-- gateway/jsonw.c: JSON text written into a buffer (commas, nesting, string
-- escapes, numbers), read back by lua-cjson.
local core = require("support.core")
local cjson = require("cjson")
local ffi, lib = core.ffi, core.lib

pcall(ffi.cdef, [[
typedef struct {
  gw_buf_t *out; uint64_t more; uint64_t object; unsigned depth; int key_open; int err;
} gw_jsonw_t;
void gw_jsonw_init(gw_jsonw_t *w, gw_buf_t *out);
void gw_jsonw_begin_object(gw_jsonw_t *w);
void gw_jsonw_begin_array(gw_jsonw_t *w);
void gw_jsonw_end(gw_jsonw_t *w);
void gw_jsonw_key(gw_jsonw_t *w, const char *key);
void gw_jsonw_key_n(gw_jsonw_t *w, const char *key, size_t n);
void gw_jsonw_string(gw_jsonw_t *w, const char *s);
void gw_jsonw_string_n(gw_jsonw_t *w, const char *s, size_t n);
void gw_jsonw_string_cut(gw_jsonw_t *w, const char *s, size_t n, size_t max);
void gw_jsonw_int(gw_jsonw_t *w, int64_t v);
void gw_jsonw_uint(gw_jsonw_t *w, uint64_t v);
void gw_jsonw_double(gw_jsonw_t *w, double v);
void gw_jsonw_bool(gw_jsonw_t *w, int v);
void gw_jsonw_null(gw_jsonw_t *w);
void gw_jsonw_raw(gw_jsonw_t *w, const char *json, size_t n);
void gw_jsonw_member_string(gw_jsonw_t *w, const char *key, const char *s);
void gw_jsonw_member_int(gw_jsonw_t *w, const char *key, int64_t v);
void gw_jsonw_member_uint(gw_jsonw_t *w, const char *key, uint64_t v);
void gw_jsonw_member_double(gw_jsonw_t *w, const char *key, double v);
void gw_jsonw_member_bool(gw_jsonw_t *w, const char *key, int v);
int gw_jsonw_finish(gw_jsonw_t *w);
const char *gw_utf8_echo(char *out, size_t outlen, const char *s, size_t n);
]])
pcall(ffi.cdef, "void *malloc(size_t n);")

local ENOMEM, EINVAL = -12, -22

-- Run body(w) on a fresh writer; returns the text (or nil) and finish's code.
local function write(body)
  local buf = ffi.new("gw_buf_t[1]")
  local w = ffi.new("gw_jsonw_t[1]")
  lib.gw_jsonw_init(w, buf)
  body(w, buf)
  local rc = lib.gw_jsonw_finish(w)
  local text = rc == 0 and ffi.string(buf[0].data, buf[0].len) or nil
  if rc == 0 then assert.equal(0, buf[0].data[buf[0].len]) end -- NUL after the text
  lib.gw_buf_free(buf)
  return text, rc
end

local function str(s) return (write(function(w) lib.gw_jsonw_string_n(w, s, #s) end)) end
local function num(v) return (write(function(w) lib.gw_jsonw_double(w, v) end)) end

-- What a reader gets back from a string: s with each byte of an invalid
-- UTF-8 sequence as the text \xHH, computed here apart from the C.
local function expected(s)
  local out, i = {}, 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 1 or (c >= 0xc2 and c <= 0xdf) and 2 or (c >= 0xe0 and c <= 0xef) and 3
      or (c >= 0xf0 and c <= 0xf4) and 4 or nil
    local ok = n and i + n - 1 <= #s
    if ok and n > 1 then
      local cp = c % (2 ^ (7 - n))
      for k = i + 1, i + n - 1 do
        local b = s:byte(k)
        if b < 0x80 or b > 0xbf then ok = false break end
        cp = cp * 64 + b % 64
      end
      local min = ({ 0, 0x80, 0x800, 0x10000 })[n]
      ok = ok and cp >= min and cp <= 0x10ffff and not (cp >= 0xd800 and cp <= 0xdfff)
    end
    if ok then
      out[#out + 1] = s:sub(i, i + n - 1)
      i = i + n
    else
      out[#out + 1] = ("\\x%02x"):format(c)
      i = i + 1
    end
  end
  return table.concat(out)
end

describe("gw_jsonw structure", function()
  it("puts commas and colons between members and elements, at any depth", function()
    local text = write(function(w)
      lib.gw_jsonw_begin_object(w)
      lib.gw_jsonw_member_int(w, "a", 1)
      lib.gw_jsonw_key(w, "b")
      lib.gw_jsonw_begin_array(w)
      lib.gw_jsonw_int(w, 2)
      lib.gw_jsonw_begin_object(w)
      lib.gw_jsonw_end(w)
      lib.gw_jsonw_begin_array(w)
      lib.gw_jsonw_end(w)
      lib.gw_jsonw_null(w)
      lib.gw_jsonw_end(w)
      lib.gw_jsonw_member_bool(w, "c", 1)
      lib.gw_jsonw_member_bool(w, "d", 0)
      lib.gw_jsonw_member_string(w, "e", "x")
      lib.gw_jsonw_member_string(w, "f", nil)
      lib.gw_jsonw_member_uint(w, "g", ffi.new("uint64_t", 0) - 1)
      lib.gw_jsonw_member_double(w, "h", 0.5)
      lib.gw_jsonw_key(w, "i")
      lib.gw_jsonw_raw(w, '{"k":[1]}', 9)
      lib.gw_jsonw_end(w)
    end)
    assert.equal('{"a":1,"b":[2,{},[],null],"c":true,"d":false,"e":"x","f":null,'
      .. '"g":18446744073709551615,"h":0.5,"i":{"k":[1]}}', text)
  end)

  it("writes a lone value as a document, and appends to what the buffer holds", function()
    assert.equal('"x"', str("x"))
    assert.equal("-9223372036854775808", (write(function(w) lib.gw_jsonw_int(w, -0x7fffffffffffffffLL - 1) end)))
    local buf = ffi.new("gw_buf_t[1]")
    local w = ffi.new("gw_jsonw_t[1]")
    buf[0].data = ffi.C.malloc(8)
    buf[0].cap, buf[0].len = 8, 3
    ffi.copy(buf[0].data, "ab\n", 3)
    lib.gw_jsonw_init(w, buf)
    lib.gw_jsonw_begin_array(w)
    lib.gw_jsonw_bool(w, 1)
    lib.gw_jsonw_end(w)
    assert.equal(0, lib.gw_jsonw_finish(w))
    assert.equal("ab\n[true]", ffi.string(buf[0].data, buf[0].len))
    lib.gw_buf_free(buf)
    assert.is_nil((write(function() end))) -- nothing written is no document
  end)

  it("refuses misuse, once, at the end: the later calls do nothing", function()
    local cases = {
      function(w) lib.gw_jsonw_begin_object(w); lib.gw_jsonw_int(w, 1) end,       -- value without key
      function(w) lib.gw_jsonw_begin_array(w); lib.gw_jsonw_key(w, "k") end,      -- key in an array
      function(w) lib.gw_jsonw_key(w, "k") end,                                   -- key at the top
      function(w) lib.gw_jsonw_end(w) end,                                        -- end without begin
      function(w) lib.gw_jsonw_begin_object(w) end,                               -- left open
      function(w) lib.gw_jsonw_begin_object(w); lib.gw_jsonw_key(w, "k"); lib.gw_jsonw_end(w) end,
      function(w) lib.gw_jsonw_begin_object(w); lib.gw_jsonw_key(w, "k"); lib.gw_jsonw_key(w, "l") end,
      function(w) lib.gw_jsonw_int(w, 1); lib.gw_jsonw_int(w, 2) end,             -- two documents
      function(w) lib.gw_jsonw_string_cut(w, "abc", 3, 2) end,                    -- no room for ...
      function(w) for _ = 1, 64 do lib.gw_jsonw_begin_array(w) end end,           -- too deep
    }
    for i, body in ipairs(cases) do
      local text, rc = write(function(w)
        body(w)
        lib.gw_jsonw_int(w, 7) -- ignored after the error
        assert.equal(EINVAL, w[0].err, "case " .. i)
      end)
      assert.is_nil(text, "case " .. i)
      assert.equal(EINVAL, rc, "case " .. i)
    end
    -- 63 levels are allowed
    local deep = write(function(w)
      for _ = 1, 63 do lib.gw_jsonw_begin_array(w) end
      for _ = 1, 63 do lib.gw_jsonw_end(w) end
    end)
    assert.equal(("["):rep(63) .. ("]"):rep(63), deep)
  end)

  it("reports a buffer that cannot grow once, at the end", function()
    local buf = ffi.new("gw_buf_t[1]")
    local huge = 0xffffffffffffffffULL -- SIZE_MAX (a cast of -1 from a Lua number gives 2^63)
    buf[0].len, buf[0].cap = huge, huge -- any growth overflows: -ENOMEM, nothing written
    local w = ffi.new("gw_jsonw_t[1]")
    lib.gw_jsonw_init(w, buf)
    lib.gw_jsonw_begin_object(w)
    lib.gw_jsonw_member_string(w, "a", "b")
    lib.gw_jsonw_member_double(w, "d", 1.5)
    lib.gw_jsonw_end(w)
    assert.equal(ENOMEM, lib.gw_jsonw_finish(w))
    assert.equal(huge, buf[0].len)
  end)
end)

describe("gw_jsonw strings", function()
  it("escapes quotes, backslashes and control characters the JSON way", function()
    assert.equal([["q\"b\\s/"]], str('q"b\\s/'))
    assert.equal([["\n\r\t\b\f\u0000\u001f\u0001"]], str("\n\r\t\b\f\0\31\1"))
    assert.equal('"\127"', str("\127")) -- DEL is valid JSON as it is
  end)

  it("keeps valid UTF-8 and writes invalid bytes as \\xHH text, as gw_utf8_echo does", function()
    assert.equal('"é€😀"', str("é€😀"))
    assert.equal([["a\\xc3b"]], str("a\xc3b"))
    assert.equal([["\\xed\\xa0\\x80"]], str("\xed\xa0\x80"))
    assert.equal([["\\xff\\xfe"]], str("\xff\xfe"))
    assert.equal([["\\xc0\\xaf"]], str("\xc0\xaf"))
    -- the same text gw_utf8_echo makes of it, for bytes that are not controls
    local s = "x\xf4\x90\x80\x80y\xe2\x82"
    local out = ffi.new("char[64]")
    assert.equal(ffi.string(lib.gw_utf8_echo(out, 64, s, #s)), cjson.decode(str(s)))
  end)

  it("escapes keys as strings", function()
    local text = write(function(w)
      lib.gw_jsonw_begin_object(w)
      lib.gw_jsonw_key_n(w, 'k"\xff\n', 4)
      lib.gw_jsonw_int(w, 1)
      lib.gw_jsonw_end(w)
    end)
    assert.equal([[{"k\"\\xff\n":1}]], text)
  end)

  it("reads back through cjson: random bytes, random characters", function()
    math.randomseed(14)
    local pool = { "a", "Z", " ", '"', "\\", "/", "\n", "\0", "\31", "\127", "é", "€", "😀", "\xff",
                   "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\x80" }
    for _ = 1, 2000 do
      local parts = {}
      for i = 1, math.random(0, 24) do
        parts[i] = math.random() < 0.5 and string.char(math.random(0, 255)) or pool[math.random(#pool)]
      end
      local s = table.concat(parts)
      local text = str(s)
      assert.equal(expected(s), cjson.decode(text), ("%q"):format(s))
      assert.is_nil(text:find("[%z\1-\31]"), "a raw control character in " .. text)
    end
  end)

  it("cuts a long string between characters, with ... after it", function()
    local function cut(s, max)
      return (write(function(w) lib.gw_jsonw_string_cut(w, s, #s, max) end))
    end
    assert.equal('"abcdef"', cut("abcdef", 6))   -- fits whole
    assert.equal('"abc..."', cut("abcdefg", 6))  -- 3 + 3
    assert.equal('"..."', cut("€€", 3))          -- not one whole character fits beside ...
    assert.equal('"a..."', cut("a€€", 6))        -- € takes 3: a + ... only
    assert.equal('"a€€b"', cut("a€€b", 8))
    assert.equal('"a€..."', cut("a€€b", 7))
    assert.equal('"\\\\xff..."', cut("\xff\xff", 7)) -- an invalid byte counts four
    assert.equal('"\\n\\"..."', cut('\n"abcdef', 5)) -- escapes count as what they decode to
    -- whatever the cut, the text decodes to at most max and to a prefix of the whole
    math.randomseed(15)
    for _ = 1, 500 do
      local parts = {}
      for i = 1, math.random(0, 20) do parts[i] = ({ "a", "é", "€", "😀", "\xff", "\n" })[math.random(6)] end
      local s, max = table.concat(parts), math.random(3, 30)
      local got = cjson.decode(cut(s, max))
      local whole = expected(s)
      assert.is_true(#got <= max or got == whole)
      if got ~= whole then
        assert.equal("...", got:sub(-3))
        assert.equal(whole:sub(1, #got - 3), got:sub(1, -4))
      end
      local echo = ffi.new("char[?]", max + 1)
      if not s:find("\n") then -- gw_utf8_echo writes controls as \xHH; otherwise the same cut
        assert.equal(ffi.string(lib.gw_utf8_echo(echo, max + 1, s, #s)), got)
      end
    end
  end)
end)

describe("gw_jsonw numbers", function()
  it("writes integers exactly and non-finite doubles as null", function()
    assert.equal("0", (write(function(w) lib.gw_jsonw_int(w, 0) end)))
    assert.equal("-1", (write(function(w) lib.gw_jsonw_int(w, -1) end)))
    assert.equal("9223372036854775807", (write(function(w) lib.gw_jsonw_int(w, 0x7fffffffffffffffLL) end)))
    assert.equal("null", num(0 / 0))
    assert.equal("null", num(math.huge))
    assert.equal("null", num(-math.huge))
  end)

  it("writes doubles as JavaScript does", function()
    assert.equal("0.1", num(0.1))
    assert.equal("-0", num(-0.0))
    assert.equal("123", num(123))
    assert.equal("1.5e-7", num(1.5e-7))
    assert.equal("0.000001", num(1e-6))
    assert.equal("1e+21", num(1e21))
    assert.equal("100000000000000000000", num(1e20))
    assert.equal("5e-324", num(5e-324))
    assert.equal("1.7976931348623157e+308", num(1.7976931348623157e308))
  end)

  -- The fewest significant digits that read back as v (%.Ng, N = 1..17).
  local function shortest(v)
    for p = 1, 17 do
      if tonumber(("%." .. p .. "g"):format(v)) == v then return p end
    end
  end

  local function digits(text)
    local m = text:gsub("^%-", ""):gsub("e.*$", ""):gsub("%.", ""):gsub("^0+", "")
    return #m:gsub("0+$", "") > 0 and #m:gsub("0+$", "") or 1
  end

  -- grisu2 finds the fewest digits for all but a few doubles in a thousand
  -- (then one or two more, never over 17): measured here, not assumed.
  it("reads back bit-exact through cjson, nearly always in the fewest digits", function()
    math.randomseed(16)
    local bits = ffi.new("union { double d; uint64_t u; uint32_t w[2]; }")
    local n, longer = 0, 0
    for i = 1, 20000 do
      local v
      if i % 2 == 0 then
        -- any bits but a NaN's or an infinity's (exponent all ones): a NaN
        -- read into a Lua number may carry a payload LuaJIT takes for a tag
        local hi = math.random(0, 2 ^ 32 - 1)
        if math.floor(hi / 2 ^ 20) % 2048 == 2047 then hi = hi - 2 ^ 20 end
        bits.w[0], bits.w[1] = math.random(0, 2 ^ 32 - 1), hi
        v = bits.d
      else
        v = (math.random() - 0.5) * 10 ^ math.random(-30, 30)
      end
      do
        local text = num(v)
        local back = cjson.decode(text)
        bits.d = back
        local got = bits.u
        bits.d = v
        assert.equal(tostring(bits.u), tostring(got), text)
        local d, best = digits(text), shortest(v)
        assert.is_true(d >= best and d <= 17, text)
        n, longer = n + 1, longer + (d > best and 1 or 0)
      end
    end
    assert.is_true(longer < n / 100, longer .. " of " .. n .. " longer than the shortest")
  end)
end)
