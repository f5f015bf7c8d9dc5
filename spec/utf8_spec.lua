-- gateway/utf8.c: text a client sent, made safe to echo in an answer
-- (valid UTF-8 kept, invalid bytes and control characters as \xHH, cut
-- between characters).
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

ffi.cdef [[
size_t gw_utf8_char(const unsigned char *s, const unsigned char *e);
const char *gw_utf8_echo(char *out, size_t outlen, const char *s, size_t n);
]]

local function echo(s, size)
  local out = ffi.new("char[?]", size or 256)
  return ffi.string(lib.gw_utf8_echo(out, size or 256, s, #s))
end

local function char_len(s)
  local p = ffi.cast("const unsigned char *", s)
  return tonumber(lib.gw_utf8_char(p, p + #s))
end

-- Is s valid UTF-8 (as jansson reads it)? Checked here apart from the C.
local function valid(s)
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 1 or (c >= 0xc2 and c <= 0xdf) and 2 or (c >= 0xe0 and c <= 0xef) and 3
      or (c >= 0xf0 and c <= 0xf4) and 4 or nil
    if not n or i + n - 1 > #s then return false end
    for k = i + 1, i + n - 1 do
      local b = s:byte(k)
      if b < 0x80 or b > 0xbf then return false end
    end
    i = i + n
  end
  return true
end

describe("gw_utf8_char", function()
  it("takes whole characters and refuses what jansson refuses", function()
    assert.equal(1, char_len("a"))
    assert.equal(2, char_len("é"))
    assert.equal(3, char_len("€"))
    assert.equal(4, char_len("\xf0\x9f\x98\x80"))
    for _, bad in ipairs { "\xff", "\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                           "\xc3", "\xe2\x82", "\xc3a" } do
      assert.equal(0, char_len(bad), ("%q"):format(bad))
    end
  end)
end)

describe("gw_utf8_echo", function()
  it("keeps valid text as it is", function()
    assert.equal("path /é€😀 ok", echo("path /é€😀 ok"))
  end)

  it("writes invalid bytes and control characters as \\xHH", function()
    assert.equal("/x\\xff", echo("/x\xff"))
    assert.equal("a\\xc3b", echo("a\xc3b"))               -- a lead byte without its continuation
    assert.equal("\\xed\\xa0\\x80", echo("\xed\xa0\x80")) -- a surrogate
    assert.equal("t\\x00\\x0a\\x7f", echo("t\0\n\127"))
  end)

  it("cuts between characters and says so, always in the buffer", function()
    local e = ("é"):rep(150)
    local out = echo(e, 64)
    assert.is_true(#out <= 63)
    assert.is_true(valid(out))
    assert.equal(("é"):rep(30) .. "...", out)
    -- an escape is never cut either
    out = echo(("\xff"):rep(40), 32)
    assert.equal(("\\xff"):rep(7) .. "...", out)
    -- what fits exactly is not cut
    assert.equal(("a"):rep(15), echo(("a"):rep(15), 16))
  end)

  it("gives valid UTF-8 for any bytes", function()
    math.randomseed(12)
    for _ = 1, 2000 do
      local t = {}
      for i = 1, math.random(0, 40) do t[i] = string.char(math.random(0, 255)) end
      local s = table.concat(t)
      local out = echo(s, math.random(8, 64))
      assert.is_true(valid(out), ("%q"):format(s))
    end
  end)
end)
