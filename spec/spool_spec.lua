-- gateway/spool.c: records on disk, checksums, recovery, acks, segments.
local core = require("support.core")
local proc = require("support.proc")
local ffi, lib = core.ffi, core.lib

-- One declaration at a time: another spec may have declared some already.
for _, decl in ipairs {
  "typedef struct gw_spool gw_spool_t;",
  [[typedef struct {
    const char *dir; uint64_t max_bytes; uint64_t segment_bytes; int fsync; double fsync_interval;
    int drop_oldest;
  } gw_spool_opts_t;]],
  "typedef struct { uint64_t seq; uint64_t off; uint32_t skip; } gw_spool_pos_t;",
  "gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen);",
  "int gw_spool_append(gw_spool_t *s, const char *lines, size_t len, const uint32_t *ends, uint32_t npoints);",
  [[int gw_spool_read(gw_spool_t *s, gw_buf_t *data, gw_buf_t *ends, uint32_t max, uint32_t *got,
                      gw_spool_pos_t *end);]],
  "int gw_spool_unread(gw_spool_t *s);",
  "void gw_spool_ack(gw_spool_t *s, const gw_spool_pos_t *pos, uint32_t npoints);",
  "void gw_spool_close(gw_spool_t *s);",
  "uint64_t gw_spool_points(gw_spool_t *s);",
  "uint64_t gw_spool_bytes(gw_spool_t *s);",
  "uint64_t gw_spool_corrupt(gw_spool_t *s);",
  "void gw_spool_destroy(gw_spool_t *s);",
} do pcall(ffi.cdef, decl) end

local FULL, CLOSED, TOO_BIG = 1, 2, 3
local SEG_HDR, REC_HDR = 16, 16
local FSYNC = { batch = 0, interval = 1, never = 2 }

-- n lines "p<i> f=<i>i\n" from first on, with their end offsets.
local function lines(first, n, pad)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  for i = 0, n - 1 do
    local l = ("p%d f=%di%s\n"):format(first + i, first + i, pad or "")
    parts[#parts + 1] = l
    off = off + #l
    ends[i] = off
  end
  return table.concat(parts), ends
end

local function append(s, first, n, pad)
  local text, ends = lines(first, n, pad)
  return lib.gw_spool_append(s, text, #text, ends, n), #text
end

local function open(dir, o)
  o = o or {}
  local opts = ffi.new("gw_spool_opts_t", {
    dir = dir, max_bytes = o.max_bytes or 64 * 1024 * 1024, segment_bytes = o.segment_bytes or 0,
    fsync = FSYNC[o.fsync or "never"], fsync_interval = 0.05, drop_oldest = o.drop_oldest and 1 or 0 })
  local err = ffi.new("char[256]")
  local s = lib.gw_spool_open(opts, err, 256)
  if s == nil then return nil, ffi.string(err) end
  return s
end

-- Read everything there is, max points at a time: the ids in order, and
-- checks that every end offset closes a line.
local function read_all(s, max, ack)
  local data, ends = ffi.new("gw_buf_t[1]"), ffi.new("gw_buf_t[1]")
  local got, pos = ffi.new("uint32_t[1]"), ffi.new("gw_spool_pos_t[1]")
  local ids = {}
  repeat
    data[0].len, ends[0].len = 0, 0
    assert.equal(0, lib.gw_spool_read(s, data, ends, max or 1000, got, pos))
    local n = got[0]
    local e = ffi.cast("uint32_t *", ends[0].data)
    local text = n > 0 and ffi.string(data[0].data, data[0].len) or ""
    local prev = 0
    for i = 0, n - 1 do
      assert.equal("\n", text:sub(e[i], e[i]))
      ids[#ids + 1] = tonumber(text:sub(prev + 1, e[i]):match("^p(%d+) "))
      prev = e[i]
    end
    assert.equal(prev, #text)
    if n > 0 and ack ~= false then lib.gw_spool_ack(s, pos, n) end
  until n == 0
  lib.gw_buf_free(data); lib.gw_buf_free(ends)
  return ids, pos[0]
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

local function segments(dir)
  local p = io.popen("ls " .. proc.quote(dir))
  local out = {}
  for name in p:lines() do if name:match("%.seg$") then out[#out + 1] = name end end
  p:close()
  table.sort(out)
  return out
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end"); f:close()
  return n
end

-- Overwrite bytes of a file at a 0-based offset.
local function poke(path, off, bytes)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", off); f:write(bytes); f:close()
end

describe("spool", function()
  local dir, s
  before_each(function() dir = proc.tmpdir("luagw-spool") end)
  after_each(function()
    if s ~= nil then lib.gw_spool_destroy(s); s = nil end
    proc.rmdir(dir)
  end)

  it("gives back what was appended, in order, in pieces of any size, and counts it", function()
    s = assert(open(dir))
    for r = 0, 9 do assert.equal(0, (append(s, r * 7 + 1, 7))) end
    assert.equal(70, tonumber(lib.gw_spool_points(s)))
    assert.equal(1, lib.gw_spool_unread(s))
    -- 3 at a time cuts records in the middle; the positions carry the skip
    assert.same(range(1, 70), (read_all(s, 3)))
    assert.equal(0, lib.gw_spool_unread(s))
    assert.equal(0, tonumber(lib.gw_spool_points(s)))
  end)

  it("lays records out as documented: a 16-byte header, the lines, then the ends", function()
    s = assert(open(dir))
    local rc, len = append(s, 1, 3)
    assert.equal(0, rc)
    lib.gw_spool_destroy(s); s = nil
    local seg = dir .. "/" .. segments(dir)[1]
    local bytes = proc.read_file(seg)
    assert.equal("luagwsp1", bytes:sub(1, 8))
    assert.equal(SEG_HDR + REC_HDR + len + 4 * 3, #bytes)
    assert.equal("\xa5\xf7\x52\x4c", bytes:sub(17, 20)) -- record magic
    assert.equal("p1 f=1i\n", bytes:sub(33, 40))
  end)

  it("refuses a record that could never fit, one that does not fit now, and appends after close", function()
    s = assert(open(dir, { max_bytes = 1024 * 1024 }))
    assert.equal(TOO_BIG, (append(s, 1, 1, ("x"):rep(1024 * 1024))))
    local n = 0
    while true do
      local rc = append(s, n * 100 + 1, 100, ("y"):rep(100))
      if rc ~= 0 then assert.equal(FULL, rc); break end
      n = n + 1
      assert.is_true(n < 1000)
    end
    assert.is_true(tonumber(lib.gw_spool_bytes(s)) <= 1024 * 1024)
    assert.is_true(n > 50)
    -- reading and acking frees the room again
    read_all(s, 1000)
    assert.equal(0, (append(s, 1, 100, ("y"):rep(100))))
    lib.gw_spool_close(s)
    assert.equal(CLOSED, (append(s, 1, 1)))
  end)

  it("rotates segments and deletes each once everything in it is acked", function()
    s = assert(open(dir, { segment_bytes = 4096 }))
    for r = 0, 39 do assert.equal(0, (append(s, r * 10 + 1, 10, ("z"):rep(30)))) end
    local before = segments(dir)
    assert.is_true(#before >= 5, #before .. " segments")
    -- read and ack only the first half
    local ids = read_all(s, 200)
    assert.same(range(1, 400), ids)
    local after = segments(dir)
    assert.equal(1, #after) -- only the active one is left
    assert.equal(before[#before], after[1])
  end)

  it("delivers what an earlier run left first, from the acked point on (even inside a record)", function()
    s = assert(open(dir))
    for r = 0, 4 do assert.equal(0, (append(s, r * 10 + 1, 10))) end
    -- take 25 (two and a half records) and ack them, then "crash"
    local data, ends = ffi.new("gw_buf_t[1]"), ffi.new("gw_buf_t[1]")
    local got, pos = ffi.new("uint32_t[1]"), ffi.new("gw_spool_pos_t[1]")
    assert.equal(0, lib.gw_spool_read(s, data, ends, 25, got, pos))
    assert.equal(25, got[0])
    assert.equal(5, pos[0].skip)
    lib.gw_spool_ack(s, pos, 25)
    -- read 10 more without acking: they must come again
    data[0].len, ends[0].len = 0, 0
    assert.equal(0, lib.gw_spool_read(s, data, ends, 10, got, pos))
    lib.gw_buf_free(data); lib.gw_buf_free(ends)
    lib.gw_spool_destroy(s)
    s = assert(open(dir))
    assert.equal(25, tonumber(lib.gw_spool_points(s)))
    assert.equal(0, (append(s, 51, 5))) -- new points go after the old ones
    assert.same(range(26, 55), (read_all(s, 7)))
    assert.equal(0, tonumber(lib.gw_spool_corrupt(s)))
  end)

  it("skips a record torn at the end of a segment (kill -9 mid-write) and says so", function()
    s = assert(open(dir))
    for r = 0, 2 do assert.equal(0, (append(s, r * 10 + 1, 10))) end
    lib.gw_spool_destroy(s); s = nil
    local seg = dir .. "/" .. segments(dir)[1]
    local size = file_size(seg)
    os.execute(("truncate -s %d %s"):format(size - 7, proc.quote(seg)))
    s = assert(open(dir))
    assert.equal(1, tonumber(lib.gw_spool_corrupt(s)))
    assert.equal(20, tonumber(lib.gw_spool_points(s)))
    assert.same(range(1, 20), (read_all(s)))
  end)

  it("skips a record damaged in the middle (a flipped bit) and delivers the ones after it", function()
    s = assert(open(dir))
    for r = 0, 2 do assert.equal(0, (append(s, r * 10 + 1, 10))) end
    lib.gw_spool_destroy(s); s = nil
    local seg = dir .. "/" .. segments(dir)[1]
    local bytes = proc.read_file(seg)
    local second = bytes:find("p11 ", 1, true) -- inside the second record's lines
    poke(seg, second - 1 + 1, "2") -- "p11" -> "p21": a plausible line, but the CRC knows
    s = assert(open(dir))
    assert.equal(1, tonumber(lib.gw_spool_corrupt(s)))
    local ids = read_all(s)
    local want = range(1, 10)
    for i = 21, 30 do want[#want + 1] = i end
    assert.same(want, ids)
  end)

  it("resynchronises after a damaged length field, never replaying garbage", function()
    s = assert(open(dir))
    for r = 0, 3 do assert.equal(0, (append(s, r * 10 + 1, 10))) end
    lib.gw_spool_destroy(s); s = nil
    local seg = dir .. "/" .. segments(dir)[1]
    -- the first record's len field: now claims far more than it has
    poke(seg, SEG_HDR + 4, "\255\255\0\0")
    s = assert(open(dir))
    assert.equal(1, tonumber(lib.gw_spool_corrupt(s)))
    assert.same(range(11, 40), (read_all(s)))
  end)

  it("with overflow drop_oldest, drops the oldest segments to make room, and counts them", function()
    s = assert(open(dir, { max_bytes = 1024 * 1024, drop_oldest = true }))
    local total = 0
    for r = 0, 299 do
      assert.equal(0, (append(s, r * 100 + 1, 100, ("w"):rep(100))))
      total = total + 100
    end
    assert.is_true(tonumber(lib.gw_spool_bytes(s)) <= 1024 * 1024)
    local held = tonumber(lib.gw_spool_points(s))
    assert.is_true(held < total)
    local ids = read_all(s, 5000)
    assert.equal(held, #ids)
    -- what is left is the newest, without gaps
    assert.equal(total, ids[#ids])
    assert.same(range(total - #ids + 1, total), ids)
  end)

  it("refuses a second process on the same directory", function()
    s = assert(open(dir))
    local s2, err = open(dir)
    assert.is_nil(s2)
    assert.matches("in use by another luagw process", err)
  end)

  it("with fsync batch and interval, appends still go through and survive reopening", function()
    for _, mode in ipairs { "batch", "interval" } do
      s = assert(open(dir, { fsync = mode }))
      assert.equal(0, (append(s, 1, 10)))
      lib.gw_spool_destroy(s)
      s = assert(open(dir))
      assert.same(range(1, 10), (read_all(s)))
      lib.gw_spool_destroy(s); s = nil
    end
  end)
end)
