-- gateway/batch.c: the bounded queue between ingest and output.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

-- One declaration at a time: another spec may have declared some already.
for _, decl in ipairs {
  "typedef struct { uint64_t seq; uint64_t off; uint32_t skip; } gw_spool_pos_t;",
  "typedef struct gw_spool gw_spool_t;",
  [[typedef struct {
    const char *dir; uint64_t max_bytes; uint64_t segment_bytes; int fsync; double fsync_interval;
    int drop_oldest;
  } gw_spool_opts_t;]],
  "gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen);",
  [[typedef struct gw_batch {
    gw_buf_t data; uint32_t npoints; double opened_at; struct gw_batch *next;
    gw_buf_t ends; gw_spool_pos_t end;
  } gw_batch_t;]],
  "typedef struct gw_queue gw_queue_t;",
  "gw_queue_t *gw_queue_create(uint32_t batch_size, uint32_t buffer_limit, double flushing_period);",
  "void gw_queue_set_drop_oldest(gw_queue_t *q, int on);",
  "void gw_queue_use_spool(gw_queue_t *q, gw_spool_t *spool);",
  "int gw_queue_push(gw_queue_t *q, const char *lines, size_t len, const uint32_t *ends, uint32_t npoints);",
  "gw_batch_t *gw_queue_take(gw_queue_t *q, double deadline);",
  "void gw_queue_release(gw_queue_t *q, gw_batch_t *b);",
  "void gw_queue_abandon(gw_queue_t *q, gw_batch_t *b, uint32_t done);",
  "void gw_queue_close(gw_queue_t *q);",
  "uint64_t gw_queue_points(gw_queue_t *q);",
  "uint64_t gw_queue_bytes(gw_queue_t *q);",
  "void gw_queue_set_limit_bytes(gw_queue_t *q, uint64_t limit);",
  "void gw_queue_destroy(gw_queue_t *q);",
  "double gw_clock_mono(void);",
} do pcall(ffi.cdef, decl) end

local FULL, CLOSED, TOO_BIG = 1, 2, 3

-- n lines "p<i> f=<i>i\n" starting at first, with their end offsets.
local function lines(first, n)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  for i = 0, n - 1 do
    local l = ("p%d f=%di\n"):format(first + i, first + i)
    parts[#parts + 1] = l
    off = off + #l
    ends[i] = off
  end
  local s = table.concat(parts)
  return s, ends, n
end

local function push(q, first, n)
  local s, ends = lines(first, n)
  return lib.gw_queue_push(q, s, #s, ends, n)
end

local function body(b) return ffi.string(b.data.data, b.data.len) end

-- n points of about size bytes each ("b<i> s=\"xxx...\"\n"), from first on.
local function big(q, first, n, size)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  for i = 0, n - 1 do
    local l = ('b%d s="%s"\n'):format(first + i, ("x"):rep(size))
    parts[#parts + 1] = l
    off = off + #l
    ends[i] = off
  end
  local s = table.concat(parts)
  return lib.gw_queue_push(q, s, #s, ends, n), #s + 4 * n
end

local MiB = 1024 * 1024

-- Close q and take every batch left, releasing each: fn(b) sees it first.
local function drain(q, fn)
  lib.gw_queue_close(q)
  local b = lib.gw_queue_take(q, 0)
  while b ~= nil do
    fn(b)
    lib.gw_queue_release(q, b)
    b = lib.gw_queue_take(q, 0)
  end
end

-- The batch's points, cut at its ends[]: each must be one whole line.
local function points(b)
  local e = ffi.cast("uint32_t *", b.ends.data)
  local text, out, prev = body(b), {}, 0
  assert.equal(b.npoints * 4, tonumber(b.ends.len))
  for i = 0, b.npoints - 1 do
    out[#out + 1] = text:sub(prev + 1, e[i])
    prev = e[i]
  end
  assert.equal(#text, prev)
  return out
end

describe("batch queue", function()
  local q
  after_each(function() if q ~= nil then lib.gw_queue_destroy(q); q = nil end end)

  it("seals a batch as soon as it holds batch_size points, splitting a request at point boundaries", function()
    q = lib.gw_queue_create(3, 100, 3600)
    assert.equal(0, push(q, 1, 2))
    assert.equal(0, push(q, 3, 5)) -- 7 points: batches of 3, 3 and an open 1
    local b1 = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    assert.equal(3, b1.npoints)
    assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\n", body(b1))
    local b2 = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    assert.equal("p4 f=4i\np5 f=5i\np6 f=6i\n", body(b2))
    -- the last point waits for flushing_period (an hour here): take times out
    assert.is_true(lib.gw_queue_take(q, lib.gw_clock_mono() + 0.2) == nil)
    assert.equal(7, tonumber(lib.gw_queue_points(q)))
    lib.gw_queue_release(q, b1); lib.gw_queue_release(q, b2)
    assert.equal(1, tonumber(lib.gw_queue_points(q)))
  end)

  it("hands over a partial batch once flushing_period has passed", function()
    q = lib.gw_queue_create(1000, 10000, 0.15)
    assert.equal(0, push(q, 1, 2))
    local t0 = lib.gw_clock_mono()
    local b = lib.gw_queue_take(q, t0 + 5)
    assert.is_not_nil(b)
    assert.equal(2, b.npoints)
    -- not before the period (the batch opened just before t0)
    assert.is_true(lib.gw_clock_mono() - t0 >= 0.1)
    lib.gw_queue_release(q, b)
  end)

  it("refuses a whole request that does not fit under buffer_limit, and accepts again once room is freed", function()
    q = lib.gw_queue_create(4, 10, 3600)
    assert.equal(0, push(q, 1, 8))
    assert.equal(FULL, push(q, 9, 3)) -- 8 + 3 > 10: nothing of it is taken
    assert.equal(8, tonumber(lib.gw_queue_points(q)))
    assert.equal(0, push(q, 9, 2))     -- exactly at the limit
    assert.equal(FULL, push(q, 11, 1))
    local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 1)
    assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\np4 f=4i\n", body(b))
    lib.gw_queue_release(q, b)
    assert.equal(0, push(q, 11, 1))
  end)

  it("says TOO_BIG for a request larger than buffer_limit could ever hold", function()
    q = lib.gw_queue_create(4, 10, 3600)
    assert.equal(TOO_BIG, push(q, 1, 11))
    assert.equal(0, tonumber(lib.gw_queue_points(q)))
  end)

  it("on close, hands over the open batch at once, then refuses pushes and ends", function()
    q = lib.gw_queue_create(100, 1000, 3600)
    assert.equal(0, push(q, 1, 5))
    lib.gw_queue_close(q)
    assert.equal(CLOSED, push(q, 6, 1))
    local b = lib.gw_queue_take(q, 0)
    assert.equal(5, b.npoints)
    lib.gw_queue_release(q, b)
    assert.is_true(lib.gw_queue_take(q, 0) == nil)
    assert.equal(0, tonumber(lib.gw_queue_points(q)))
  end)

  it("keeps FIFO order across many batches and reused buffers", function()
    q = lib.gw_queue_create(7, 100000, 3600)
    local seen, n = {}, 0
    for r = 0, 49 do
      assert.equal(0, push(q, r * 13 + 1, 13))
      while true do
        local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.01)
        if b == nil then break end
        for id in body(b):gmatch("p(%d+) ") do n = n + 1; seen[n] = tonumber(id) end
        lib.gw_queue_release(q, b)
      end
    end
    lib.gw_queue_close(q)
    local b = lib.gw_queue_take(q, 0)
    while b ~= nil do
      for id in body(b):gmatch("p(%d+) ") do n = n + 1; seen[n] = tonumber(id) end
      lib.gw_queue_release(q, b)
      b = lib.gw_queue_take(q, 0)
    end
    assert.equal(650, n)
    for i = 1, 650 do assert.equal(i, seen[i]) end
  end)

  it("carries each point's end offset with the batch, across request boundaries", function()
    q = lib.gw_queue_create(4, 100, 3600)
    assert.equal(0, push(q, 1, 3))
    assert.equal(0, push(q, 4, 3))
    local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    assert.same({ "p1 f=1i\n", "p2 f=2i\n", "p3 f=3i\n", "p4 f=4i\n" }, points(b))
    lib.gw_queue_release(q, b)
  end)

  it("with overflow drop_oldest, makes room by dropping the oldest waiting points, not the one being sent", function()
    q = lib.gw_queue_create(4, 12, 3600)
    lib.gw_queue_set_drop_oldest(q, 1)
    assert.equal(0, push(q, 1, 10)) -- sealed 1-4 and 5-8, open 9-10
    local sending = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    assert.equal("p1 f=1i\n", points(sending)[1])
    assert.equal(0, push(q, 11, 6)) -- 10 + 6 > 12: 5-8 go, the oldest waiting
    assert.equal(12, tonumber(lib.gw_queue_points(q)))
    lib.gw_queue_release(q, sending)
    lib.gw_queue_close(q)
    local seen = {}
    local b = lib.gw_queue_take(q, 0)
    while b ~= nil do
      for id in body(b):gmatch("p(%d+) ") do seen[#seen + 1] = tonumber(id) end
      lib.gw_queue_release(q, b)
      b = lib.gw_queue_take(q, 0)
    end
    assert.same({ 9, 10, 11, 12, 13, 14, 15, 16 }, seen)
    -- a request that could never fit is still refused
    assert.equal(TOO_BIG, push(q, 1, 13))
  end)

  it("abandon at shutdown keeps the points not dealt with counted as undelivered", function()
    q = lib.gw_queue_create(10, 100, 3600)
    assert.equal(0, push(q, 1, 10))
    local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    lib.gw_queue_abandon(q, b, 4)
    assert.equal(6, tonumber(lib.gw_queue_points(q)))
  end)

  it("bounds the bytes held too: FULL when a request's bytes do not fit, TOO_BIG when they never could", function()
    q = lib.gw_queue_create(1000, 1000000, 3600)
    lib.gw_queue_set_limit_bytes(q, 100000)
    local rc, n1 = big(q, 1, 4, 20000)
    assert.equal(0, rc)
    assert.equal(n1, tonumber(lib.gw_queue_bytes(q)))
    assert.equal(FULL, (big(q, 5, 2, 20000))) -- 8 points, far below buffer_limit, but 120 kB
    assert.equal(n1, tonumber(lib.gw_queue_bytes(q)))
    assert.equal(0, (big(q, 5, 1, 15000)))
    assert.equal(TOO_BIG, (big(q, 10, 1, 100001)))
    drain(q, function(b) assert.equal(5, b.npoints) end)
    assert.equal(0, tonumber(lib.gw_queue_bytes(q)))
    assert.equal(0, tonumber(lib.gw_queue_points(q)))
  end)

  it("seals a batch at 8 MiB of lines whatever batch_size says; a larger point gets a batch of its own", function()
    q = lib.gw_queue_create(5000, 1000000, 3600)
    assert.equal(0, (big(q, 1, 20, MiB - 100))) -- 20 points of about 1 MiB
    assert.equal(0, (big(q, 21, 1, 9 * MiB)))
    local counts = {}
    drain(q, function(b)
      counts[#counts + 1] = b.npoints
      assert.is_true(b.npoints == 1 or tonumber(b.data.len) <= 8 * MiB, tonumber(b.data.len))
      -- what a batch holds is what it is counted for: no slack kept beyond a quarter
      assert.is_true(tonumber(b.data.cap) <= tonumber(b.data.len) * 1.25 + 65536)
    end)
    assert.same({ 8, 8, 4, 1 }, counts)
  end)

  it("with overflow drop_oldest, drops by bytes as well", function()
    q = lib.gw_queue_create(1, 1000000, 3600)
    lib.gw_queue_set_limit_bytes(q, 100000)
    lib.gw_queue_set_drop_oldest(q, 1)
    for i = 1, 4 do assert.equal(0, (big(q, i, 1, 20000))) end
    local sending = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
    assert.equal(0, (big(q, 5, 2, 20000))) -- 120 kB: the oldest waiting go, not the one being sent
    assert.is_true(tonumber(lib.gw_queue_bytes(q)) <= 100000)
    lib.gw_queue_release(q, sending)
    local seen = {}
    drain(q, function(b) for id in body(b):gmatch("b(%d+) ") do seen[#seen + 1] = tonumber(id) end end)
    assert.same({ 4, 5, 6 }, seen) -- 1 was sent; 2 and 3 made room
  end)

  describe("over a spool", function()
    local proc = require("support.proc")
    local dir
    local function spooled(batch_size, period)
      local opts = ffi.new("gw_spool_opts_t", { dir = dir, max_bytes = 64 * 1024 * 1024, fsync = 2 })
      local err = ffi.new("char[256]")
      local s = lib.gw_spool_open(opts, err, 256)
      assert(s ~= nil, ffi.string(err))
      local qq = lib.gw_queue_create(batch_size, 10, period) -- buffer_limit does not apply
      lib.gw_queue_use_spool(qq, s)
      return qq
    end
    before_each(function() dir = proc.tmpdir("luagw-qspool") end)
    after_each(function()
      if q ~= nil then lib.gw_queue_destroy(q); q = nil end
      proc.rmdir(dir)
    end)

    it("reads batches back from the spool in order and acks them on release", function()
      q = spooled(4, 3600)
      assert.equal(0, push(q, 1, 3))
      assert.equal(0, push(q, 4, 7)) -- 10 points: more than buffer_limit, fine with a spool
      assert.equal(10, tonumber(lib.gw_queue_points(q)))
      local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
      assert.same({ "p1 f=1i\n", "p2 f=2i\n", "p3 f=3i\n", "p4 f=4i\n" }, points(b))
      lib.gw_queue_release(q, b)
      assert.equal(6, tonumber(lib.gw_queue_points(q)))
      b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
      assert.equal("p5 f=5i\n", points(b)[1])
      lib.gw_queue_release(q, b)
      -- the last 2 wait for flushing_period (an hour), or for close
      assert.is_true(lib.gw_queue_take(q, lib.gw_clock_mono() + 0.2) == nil)
      lib.gw_queue_close(q)
      assert.equal(CLOSED, push(q, 11, 1))
      b = lib.gw_queue_take(q, 0)
      assert.same({ "p9 f=9i\n", "p10 f=10i\n" }, points(b))
      lib.gw_queue_release(q, b)
      assert.is_true(lib.gw_queue_take(q, 0) == nil)
      assert.equal(0, tonumber(lib.gw_queue_points(q)))
    end)

    it("hands over a partial batch after flushing_period", function()
      q = spooled(1000, 0.15)
      assert.equal(0, push(q, 1, 2))
      local t0 = lib.gw_clock_mono()
      local b = lib.gw_queue_take(q, t0 + 5)
      assert.is_not_nil(b)
      assert.equal(2, b.npoints)
      assert.is_true(lib.gw_clock_mono() - t0 >= 0.1)
      lib.gw_queue_release(q, b)
    end)

    it("reads batches of at most 8 MiB of lines back from the spool", function()
      q = spooled(5000, 3600)
      for i = 1, 3 do assert.equal(0, (big(q, i * 10, 6, MiB - 100))) end
      -- a batch full by size is handed over at once, not after flushing_period (an hour)
      local first = lib.gw_queue_take(q, lib.gw_clock_mono() + 2)
      assert.is_true(first ~= nil)
      assert.equal(8, first.npoints)
      lib.gw_queue_release(q, first)
      local counts = {}
      drain(q, function(b)
        counts[#counts + 1] = b.npoints
        assert.is_true(tonumber(b.data.len) <= 8 * MiB, tonumber(b.data.len))
      end)
      assert.same({ 8, 2 }, counts)
    end)

    it("keeps an abandoned batch in the spool for the next run", function()
      q = spooled(5, 3600)
      assert.equal(0, push(q, 1, 5))
      local b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
      lib.gw_queue_abandon(q, b, 2)
      lib.gw_queue_destroy(q)
      q = spooled(5, 3600)
      assert.equal(5, tonumber(lib.gw_queue_points(q)))
      b = lib.gw_queue_take(q, lib.gw_clock_mono() + 0.5)
      assert.equal("p1 f=1i\n", points(b)[1])
      lib.gw_queue_release(q, b)
    end)
  end)
end)
