-- gateway/fanout.c: the bounded buffer between ingest and the outputs:
-- destinations, shared batches, lanes per database, per-output limits.
local core = require("support.core")
local proc = require("support.proc")
local ffi, lib = core.ffi, core.lib

for _, decl in ipairs {
  "typedef struct gw_fanout gw_fanout_t;",
  [[typedef struct {
    const char *name; uint32_t batch_size; uint32_t buffer_limit; uint64_t buffer_limit_bytes;
    double flushing_period; int drop_oldest; int passthrough; int uses_rp; const char *database; const char *rp;
    uint32_t max_databases; const char *spool_dir; uint64_t spool_max_bytes; int fsync; double fsync_interval;
  } gw_fanout_output_t;]],
  "typedef struct { uint64_t outputs; gw_str_t db, rp; int forced; } gw_fanout_dest_t;",
  [[typedef struct {
    gw_fanout_dest_t dest; const char *lines; size_t len; const uint32_t *ends; uint32_t npoints;
  } gw_fanout_part_t;]],
  [[typedef struct {
    const char *data; const uint32_t *ends; uint32_t npoints; int writable; const char *db, *rp;
    void **state; void *lane_;
  } gw_fanout_job_t;]],
  [[typedef struct {
    uint64_t points, bytes; uint64_t limit_points; uint64_t limit_bytes; uint64_t overflowed;
    uint32_t lanes, parked; int spooled; uint64_t damaged, appends, syncs;
  } gw_fanout_stats_t;]],
  "typedef struct { const char *db, *rp; uint64_t points; double parked_for; } gw_fanout_lane_t;",
  [[gw_fanout_t *gw_fanout_create(const gw_fanout_output_t *outputs, int n, void (*lane_free)(void *state),
    char *err, size_t errlen);]],
  "int gw_fanout_push(gw_fanout_t *f, const gw_fanout_part_t *parts, int nparts, uint64_t *full);",
  "int gw_fanout_take(gw_fanout_t *f, int o, double deadline, gw_fanout_job_t *job);",
  "void gw_fanout_done(gw_fanout_t *f, int o, gw_fanout_job_t *job);",
  "void gw_fanout_park(gw_fanout_t *f, int o, gw_fanout_job_t *job, double until);",
  "void gw_fanout_abandon(gw_fanout_t *f, int o, gw_fanout_job_t *job, uint32_t done);",
  "void gw_fanout_close(gw_fanout_t *f);",
  "int gw_fanout_finished(gw_fanout_t *f, int o);",
  "void gw_fanout_stats(gw_fanout_t *f, int o, gw_fanout_stats_t *st);",
  "void gw_fanout_each_lane(gw_fanout_t *f, int o, void (*fn)(const gw_fanout_lane_t *l, void *ud), void *ud);",
  "void gw_fanout_set_idle(gw_fanout_t *f, double group_idle, double lane_idle);",
  "uint32_t gw_fanout_groups(gw_fanout_t *f);",
  "void gw_fanout_destroy(gw_fanout_t *f);",
  "double gw_clock_mono(void);",
} do pcall(ffi.cdef, decl) end

local FULL, CLOSED, TOO_BIG, LANES = 1, 2, 3, 4
local MiB = 1024 * 1024
local keep = {} -- strings the output descriptions point to, for the run

local function cstr(s) keep[#keep + 1] = s; return s end

-- An output description: defaults of monitoring:, overridden by o.
local function output(o)
  return {
    name = cstr(o.name or "out"), batch_size = o.batch_size or 3, buffer_limit = o.buffer_limit or 100,
    buffer_limit_bytes = o.buffer_limit_bytes or 128 * MiB, flushing_period = o.period or 3600,
    drop_oldest = o.drop_oldest and 1 or 0, passthrough = o.passthrough and 1 or 0, uses_rp = o.uses_rp and 1 or 0,
    database = cstr(o.database or "own"), rp = cstr(o.rp or ""), max_databases = o.max_databases or 8,
    spool_dir = o.spool and cstr(o.spool) or nil, spool_max_bytes = o.spool_max_bytes or 64 * MiB, fsync = 2,
    fsync_interval = 1,
  }
end

local function create(outs)
  local arr = ffi.new("gw_fanout_output_t[?]", #outs)
  for i, o in ipairs(outs) do arr[i - 1] = output(o) end
  local err = ffi.new("char[512]")
  local f = lib.gw_fanout_create(arr, #outs, nil, err, 512)
  assert(f ~= nil, ffi.string(err))
  return f
end

-- n lines "<tag><i> f=<i>i\n" from first on, and their ends.
local function lines(first, n, tag)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  for i = 0, n - 1 do
    local l = ("%s%d f=%di\n"):format(tag or "p", first + i, first + i)
    parts[#parts + 1] = l
    off = off + #l
    ends[i] = off
  end
  return table.concat(parts), ends
end

-- A part for outputs (a list of indexes), first..first+n-1, dest options d.
local function part(outputs, first, n, d)
  d = d or {}
  local mask = 0ULL
  for _, o in ipairs(outputs) do mask = bit.bor(mask, bit.lshift(1ULL, o)) end
  local s, ends = lines(first, n, d.tag)
  keep[#keep + 1] = s; keep[#keep + 1] = ends
  local p = ffi.new("gw_fanout_part_t")
  p.dest.outputs = mask
  if d.db then keep[#keep + 1] = d.db; p.dest.db.p, p.dest.db.n = d.db, #d.db end
  if d.rp then keep[#keep + 1] = d.rp; p.dest.rp.p, p.dest.rp.n = d.rp, #d.rp end
  p.dest.forced = d.forced and 1 or 0
  p.lines, p.len, p.ends, p.npoints = s, #s, ends, n
  return p
end

-- Push parts; returns rc and the list of outputs said full.
local function push(f, ...)
  local ps = { ... }
  local arr = ffi.new("gw_fanout_part_t[?]", #ps)
  for i, p in ipairs(ps) do arr[i - 1] = p end
  local full = ffi.new("uint64_t[1]")
  local rc = lib.gw_fanout_push(f, arr, #ps, full)
  local outs = {}
  for o = 0, 63 do if bit.band(bit.rshift(full[0], o), 1ULL) ~= 0ULL then outs[#outs + 1] = o end end
  return rc, outs
end

local function take(f, o, wait)
  local job = ffi.new("gw_fanout_job_t")
  if lib.gw_fanout_take(f, o, lib.gw_clock_mono() + (wait or 0.2), job) == 0 then return nil end
  return job
end

local function body(job) return ffi.string(job.data, job.ends[job.npoints - 1]) end
local function db(job) return job.db ~= nil and ffi.string(job.db) or nil end

local function stats(f, o)
  local st = ffi.new("gw_fanout_stats_t")
  lib.gw_fanout_stats(f, o, st)
  return st
end

local function held(f, o) return tonumber(stats(f, o).points) end

describe("fanout", function()
  local f
  after_each(function() if f ~= nil then lib.gw_fanout_destroy(f); f = nil end end)

  describe("one output in memory", function()
    it("seals a batch once it holds batch_size points, splitting a request at point boundaries", function()
      f = create { { batch_size = 3 } }
      assert.equal(0, (push(f, part({ 0 }, 1, 2))))
      assert.equal(0, (push(f, part({ 0 }, 3, 5))))
      local j1 = take(f, 0)
      assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\n", body(j1))
      assert.equal(1, j1.writable)
      lib.gw_fanout_done(f, 0, j1)
      local j2 = take(f, 0)
      assert.equal("p4 f=4i\np5 f=5i\np6 f=6i\n", body(j2))
      lib.gw_fanout_done(f, 0, j2)
      assert.is_nil(take(f, 0, 0.2)) -- the seventh waits for flushing_period (an hour)
      assert.equal(1, held(f, 0))
    end)

    it("hands over a partial batch once flushing_period has passed", function()
      f = create { { batch_size = 1000, period = 0.15 } }
      assert.equal(0, (push(f, part({ 0 }, 1, 2))))
      local t0 = lib.gw_clock_mono()
      local j = take(f, 0, 5)
      assert.is_not_nil(j)
      local waited = lib.gw_clock_mono() - t0
      assert.is_true(waited >= 0.1 and waited < 2, tostring(waited))
      assert.equal(2, j.npoints)
    end)

    it("refuses a request that does not fit whole, and takes it once room is free", function()
      f = create { { batch_size = 5, buffer_limit = 10 } }
      assert.equal(0, (push(f, part({ 0 }, 1, 8))))
      local rc, full = push(f, part({ 0 }, 9, 3))
      assert.equal(FULL, rc)
      assert.same({ 0 }, full)
      assert.equal(8, held(f, 0))
      local j = take(f, 0)
      lib.gw_fanout_done(f, 0, j)
      assert.equal(0, (push(f, part({ 0 }, 9, 3))))
      assert.equal(6, held(f, 0))
    end)

    it("says TOO_BIG for more points, or bytes, than the output could ever hold", function()
      f = create { { buffer_limit = 10, buffer_limit_bytes = MiB } }
      local rc, full = push(f, part({ 0 }, 1, 11))
      assert.equal(TOO_BIG, rc)
      assert.same({ 0 }, full)
      local big = ffi.new("gw_fanout_part_t")
      local s = ("x"):rep(MiB) .. "\n"
      local ends = ffi.new("uint32_t[1]", #s)
      big.dest.outputs, big.lines, big.len, big.ends, big.npoints = 1, s, #s, ends, 1
      assert.equal(TOO_BIG, (push(f, big)))
      assert.equal(0, held(f, 0))
    end)

    it("on close, hands over the open batch at once, then refuses pushes and ends", function()
      f = create { { batch_size = 100 } }
      assert.equal(0, (push(f, part({ 0 }, 1, 4))))
      lib.gw_fanout_close(f)
      assert.equal(CLOSED, (push(f, part({ 0 }, 5, 1))))
      local t0 = lib.gw_clock_mono()
      local j = take(f, 0, 5)
      assert.is_true(lib.gw_clock_mono() - t0 < 1)
      assert.equal(4, j.npoints)
      assert.equal(0, lib.gw_fanout_finished(f, 0))
      lib.gw_fanout_done(f, 0, j)
      assert.equal(1, lib.gw_fanout_finished(f, 0))
      assert.is_nil(take(f, 0, 5))
    end)

    it("keeps FIFO order across many batches, requests and reused buffers", function()
      f = create { { batch_size = 7, buffer_limit = 100000 } }
      local want, got, n = {}, {}, 0
      for r = 1, 200 do
        local k = r % 5 + 1
        assert.equal(0, (push(f, part({ 0 }, n + 1, k))))
        for i = n + 1, n + k do want[#want + 1] = ("p%d f=%di\n"):format(i, i) end
        n = n + k
        if r % 3 == 0 then
          local j = take(f, 0, 0.01)
          if j then got[#got + 1] = body(j); lib.gw_fanout_done(f, 0, j) end
        end
      end
      lib.gw_fanout_close(f)
      for j in function() return take(f, 0, 1) end do got[#got + 1] = body(j); lib.gw_fanout_done(f, 0, j) end
      assert.equal(table.concat(want), table.concat(got))
      assert.equal(0, held(f, 0))
    end)

    it("carries each point's end offset with the batch, across request boundaries", function()
      f = create { { batch_size = 5 } }
      push(f, part({ 0 }, 1, 2)); push(f, part({ 0 }, 3, 3))
      local j = take(f, 0)
      local text, prev = body(j), 0
      for i = 0, 4 do
        assert.equal(("p%d f=%di\n"):format(i + 1, i + 1), text:sub(prev + 1, j.ends[i]))
        prev = j.ends[i]
      end
    end)

    it("with drop_oldest, makes room by dropping the oldest waiting points, not those being sent", function()
      f = create { { batch_size = 2, buffer_limit = 6, drop_oldest = true } }
      assert.equal(0, (push(f, part({ 0 }, 1, 6))))
      local sending = take(f, 0) -- p1, p2
      assert.equal(0, (push(f, part({ 0 }, 7, 2)))) -- drops p3, p4
      assert.equal(2, tonumber(stats(f, 0).overflowed))
      lib.gw_fanout_done(f, 0, sending)
      local got = {}
      lib.gw_fanout_close(f)
      for j in function() return take(f, 0, 1) end do got[#got + 1] = body(j); lib.gw_fanout_done(f, 0, j) end
      assert.equal("p5 f=5i\np6 f=6i\np7 f=7i\np8 f=8i\n", table.concat(got))
    end)

    it("counts what abandon leaves as undelivered", function()
      f = create { { batch_size = 4 } }
      push(f, part({ 0 }, 1, 4))
      local j = take(f, 0)
      lib.gw_fanout_abandon(f, 0, j, 1)
      assert.equal(3, held(f, 0))
    end)

    it("bounds the bytes held: FULL when a request's bytes do not fit", function()
      f = create { { batch_size = 1000, buffer_limit = 100000, buffer_limit_bytes = MiB } }
      local s = ("y"):rep(100000) .. "\n"
      local ends = ffi.new("uint32_t[1]", #s)
      local p = ffi.new("gw_fanout_part_t")
      p.dest.outputs, p.lines, p.len, p.ends, p.npoints = 1, s, #s, ends, 1
      for _ = 1, 10 do assert.equal(0, (push(f, p))) end
      assert.equal(FULL, (push(f, p)))
      assert.equal(10 * (#s + 4), tonumber(stats(f, 0).bytes))
    end)

    it("seals a batch at 8 MiB of lines whatever batch_size says; a larger point gets one of its own", function()
      f = create { { batch_size = 100000, buffer_limit = 100000, buffer_limit_bytes = 64 * MiB } }
      local s = ("z"):rep(3 * MiB) .. "\n"
      local ends = ffi.new("uint32_t[1]", #s)
      local p = ffi.new("gw_fanout_part_t")
      p.dest.outputs, p.lines, p.len, p.ends, p.npoints = 1, s, #s, ends, 1
      for _ = 1, 3 do assert.equal(0, (push(f, p))) end
      local j = take(f, 0)
      assert.equal(2, j.npoints)
    end)
  end)

  describe("several outputs", function()
    it("shares one copy of the points between outputs they all go to, until the last is done", function()
      f = create { { name = "primary", batch_size = 4 }, { name = "replica", batch_size = 4 } }
      assert.equal(0, (push(f, part({ 0, 1 }, 1, 4))))
      local a, b = take(f, 0), take(f, 1)
      assert.equal(a.data, b.data) -- the same bytes, not a copy
      assert.equal(0, a.writable)
      assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\np4 f=4i\n", body(a))
      lib.gw_fanout_done(f, 0, a)
      assert.equal(0, held(f, 0))
      assert.equal(4, held(f, 1))
      assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\np4 f=4i\n", body(b))
      lib.gw_fanout_done(f, 1, b)
      assert.equal(0, held(f, 1))
    end)

    it("batches a shared destination by the smallest batch_size and flushing_period of its outputs", function()
      f = create { { batch_size = 2, period = 3600 }, { batch_size = 10, period = 0.1 } }
      push(f, part({ 0, 1 }, 1, 3))
      local a = take(f, 0, 0.05)
      assert.equal(2, a.npoints)
      lib.gw_fanout_done(f, 0, a)
      local b = take(f, 0, 3) -- the second batch is sealed by the other output's period
      assert.equal(1, b.npoints)
    end)

    it("keeps a slow output's backlog from the others: each takes its own batches", function()
      f = create { { batch_size = 2 }, { batch_size = 2 } }
      for i = 1, 5 do assert.equal(0, (push(f, part({ 0, 1 }, 2 * i - 1, 2)))) end
      for _ = 1, 5 do local j = take(f, 0); lib.gw_fanout_done(f, 0, j) end
      assert.equal(0, held(f, 0))
      assert.equal(10, held(f, 1)) -- output 1 has not taken one yet
      assert.is_nil(take(f, 0, 0.05))
    end)

    it("refuses a request whole when one of its outputs is full, saying which, and keeps nothing", function()
      f = create { { name = "a", buffer_limit = 100 }, { name = "b", buffer_limit = 4 } }
      assert.equal(0, (push(f, part({ 1 }, 1, 3))))
      local rc, full = push(f, part({ 0 }, 10, 2), part({ 0, 1 }, 20, 2))
      assert.equal(FULL, rc)
      assert.same({ 1 }, full)
      assert.equal(0, held(f, 0))
      assert.equal(3, held(f, 1))
      assert.equal(0, (push(f, part({ 0 }, 10, 2))))
      assert.equal(2, held(f, 0))
    end)

    it("makes room on a drop_oldest output without touching the others", function()
      f = create { { batch_size = 2, buffer_limit = 4, drop_oldest = true }, { batch_size = 2, buffer_limit = 100 } }
      assert.equal(0, (push(f, part({ 0, 1 }, 1, 4))))
      assert.equal(0, (push(f, part({ 0, 1 }, 5, 2))))
      assert.equal(4, held(f, 0))
      assert.equal(2, tonumber(stats(f, 0).overflowed))
      assert.equal(6, held(f, 1))
      local got = {}
      for j in function() return take(f, 1, 0.05) end do got[#got + 1] = body(j); lib.gw_fanout_done(f, 1, j) end
      assert.equal(3, #got) -- output 1 has every point
      assert.equal("p3 f=3i\np4 f=4i\n", body(take(f, 0)))
    end)

    it("routes each part to its own outputs in one request", function()
      f = create { { batch_size = 2 }, { batch_size = 2 } }
      assert.equal(0, (push(f, part({ 0 }, 1, 2, { tag = "a" }), part({ 1 }, 1, 2, { tag = "b" }))))
      assert.equal("a1 f=1i\na2 f=2i\n", body(take(f, 0)))
      assert.equal("b1 f=1i\nb2 f=2i\n", body(take(f, 1)))
    end)
  end)

  describe("databases", function()
    it("gives each database named on a passthrough output a lane of its own; others use their own", function()
      f = create { { name = "pt", batch_size = 2, passthrough = true, database = "own" }, { name = "fixed", batch_size = 2 } }
      assert.equal(0, (push(f, part({ 0, 1 }, 1, 2, { db = "x", tag = "x" }), part({ 0, 1 }, 1, 2, { db = "own", tag = "o" }),
        part({ 0, 1 }, 1, 2, { tag = "n" }))))
      local seen = {}
      for j in function() return take(f, 0, 0.05) end do
        seen[#seen + 1] = (db(j) or "(own)") .. ":" .. body(j):sub(1, 2)
        lib.gw_fanout_done(f, 0, j)
      end
      table.sort(seen)
      assert.same({ "(own):n1", "(own):o1", "x:x1" }, seen)
      local fixed = {}
      for j in function() return take(f, 1, 0.05) end do fixed[#fixed + 1] = db(j) or "(own)"; lib.gw_fanout_done(f, 1, j) end
      assert.same({ "(own)", "(own)", "(own)" }, fixed)
      assert.equal(2, stats(f, 0).lanes)
      assert.equal(1, stats(f, 1).lanes)
    end)

    it("uses a script's database (forced) on every output, passthrough or not", function()
      f = create { { batch_size = 1 }, { batch_size = 1, passthrough = true } }
      push(f, part({ 0, 1 }, 1, 1, { db = "audit", forced = true }))
      assert.equal("audit", db(take(f, 0)))
      assert.equal("audit", db(take(f, 1)))
    end)

    it("keeps retention policies apart on 1.x outputs only", function()
      f = create { { batch_size = 1, passthrough = true, uses_rp = true, rp = "" }, { batch_size = 1, passthrough = true } }
      push(f, part({ 0, 1 }, 1, 1, { db = "d", rp = "week" }), part({ 0, 1 }, 2, 1, { db = "d" }))
      local a1, a2 = take(f, 0), nil
      lib.gw_fanout_done(f, 0, a1)
      a2 = take(f, 0)
      assert.same({ "week", "" }, { ffi.string(a1.rp), a2.rp ~= nil and ffi.string(a2.rp) or "" })
      assert.equal(3, stats(f, 0).lanes) -- own, d/week, d
      assert.equal(1, take(f, 1).rp == nil and 1 or 0)
      assert.equal(2, stats(f, 1).lanes) -- d, own
    end)

    it("refuses a new database beyond max_databases, saying which output, while known ones flow", function()
      f = create { { batch_size = 1, passthrough = true, max_databases = 2 }, { batch_size = 1 } }
      assert.equal(0, (push(f, part({ 0, 1 }, 1, 1, { db = "a" }))))
      local rc, full = push(f, part({ 0, 1 }, 2, 1, { db = "b" }))
      assert.equal(LANES, rc)
      assert.same({ 0 }, full)
      assert.equal(0, (push(f, part({ 0, 1 }, 3, 1, { db = "a" }))))
      assert.equal(2, held(f, 1)) -- nothing of the refused one
    end)

    it("parks one database while the others flow, then hands its batch out again", function()
      f = create { { batch_size = 1, passthrough = true } }
      push(f, part({ 0 }, 1, 1, { db = "missing", tag = "m" }), part({ 0 }, 1, 3, { db = "there", tag = "t" }))
      local order = {}
      local j = take(f, 0)
      while j and db(j) ~= "missing" do lib.gw_fanout_done(f, 0, j); order[#order + 1] = body(j); j = take(f, 0) end
      local parked = body(j)
      lib.gw_fanout_park(f, 0, j, lib.gw_clock_mono() + 0.3)
      assert.equal(1, stats(f, 0).parked)
      for k in function() return take(f, 0, 0.05) end do order[#order + 1] = body(k); lib.gw_fanout_done(f, 0, k) end
      assert.equal(3, #order)
      local again = take(f, 0, 2)
      assert.equal(parked, body(again))
      assert.equal("missing", db(again))
      lib.gw_fanout_done(f, 0, again)
      assert.equal(0, held(f, 0))
    end)

    it("serves lanes in turn", function()
      f = create { { batch_size = 1, passthrough = true } }
      push(f, part({ 0 }, 1, 3, { db = "a", tag = "a" }), part({ 0 }, 1, 3, { db = "b", tag = "b" }))
      local seq = {}
      for j in function() return take(f, 0, 0.05) end do seq[#seq + 1] = db(j); lib.gw_fanout_done(f, 0, j) end
      assert.same({ "a", "b", "a", "b", "a", "b" }, seq)
    end)

    it("retires destinations and lanes nobody used for a while", function()
      f = create { { batch_size = 1, passthrough = true } }
      lib.gw_fanout_set_idle(f, 0.05, 0.1)
      push(f, part({ 0 }, 1, 1, { db = "a" }))
      assert.equal(1, lib.gw_fanout_groups(f))
      lib.gw_fanout_done(f, 0, take(f, 0))
      assert.is_nil(take(f, 0, 0.5))
      assert.equal(0, lib.gw_fanout_groups(f))
      assert.equal(1, stats(f, 0).lanes) -- its own lane stays
    end)
  end)

  describe("with spools", function()
    local dirs = {}
    local function dir()
      local d = proc.tmpdir("luagw-fanout")
      dirs[#dirs + 1] = d
      return d
    end
    teardown(function() for _, d in ipairs(dirs) do os.execute("rm -rf " .. d) end end)

    it("appends to each spooled output's spool and reads it back; memory outputs share a batch", function()
      local d = dir()
      f = create { { name = "disk", batch_size = 10, period = 0.05, spool = d }, { name = "mem", batch_size = 4 } }
      assert.equal(0, (push(f, part({ 0, 1 }, 1, 4))))
      assert.is_true(stats(f, 0).spooled == 1 and tonumber(stats(f, 0).appends) == 1)
      local a = take(f, 0, 2)
      assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\np4 f=4i\n", body(a))
      assert.equal(1, a.writable)
      lib.gw_fanout_done(f, 0, a)
      assert.equal(0, held(f, 0))
      assert.equal("p1 f=1i\np2 f=2i\np3 f=3i\np4 f=4i\n", body(take(f, 1)))
    end)

    it("keeps each database's points in a spool of its own, found again after a restart", function()
      local d = dir()
      local desc = { { name = "disk", batch_size = 10, period = 0.05, spool = d, passthrough = true, database = "own" } }
      f = create(desc)
      assert.equal(0, (push(f, part({ 0 }, 1, 2, { db = "a b/c", tag = "x" }), part({ 0 }, 1, 1, { tag = "o" }))))
      lib.gw_fanout_destroy(f)
      assert.is_not_nil(io.open(d .. "/databases/a%20b%2Fc/ack") or io.open(d .. "/databases/a%20b%2Fc/lock"))
      f = create(desc)
      assert.equal(2, stats(f, 0).lanes)
      local got = {}
      for j in function() return take(f, 0, 0.3) end do
        got[#got + 1] = (db(j) or "(own)") .. "=" .. body(j)
        lib.gw_fanout_done(f, 0, j)
      end
      table.sort(got)
      assert.same({ "(own)=o1 f=1i\n", "a b/c=x1 f=1i\nx2 f=2i\n" }, got)
    end)

    it("refuses a request when a spooled output's spools are full, and keeps nothing in memory outputs", function()
      local d = dir()
      f = create { { name = "disk", spool = d, spool_max_bytes = MiB }, { name = "mem", buffer_limit = 100000 } }
      local s = ("w"):rep(300000) .. "\n"
      local ends = ffi.new("uint32_t[1]", #s)
      local p = ffi.new("gw_fanout_part_t")
      p.dest.outputs, p.lines, p.len, p.ends, p.npoints = 3, s, #s, ends, 1
      local rc, full
      for _ = 1, 6 do rc, full = push(f, p); if rc ~= 0 then break end end
      assert.equal(FULL, rc)
      assert.same({ 0 }, full)
      local mem = held(f, 1)
      assert.is_true(mem >= 1 and mem <= 3, tostring(mem))
      assert.equal(tonumber(stats(f, 0).appends), mem)
    end)
  end)
end)
