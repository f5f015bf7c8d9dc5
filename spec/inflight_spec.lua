-- gateway/inflight.c through FFI: the account of the memory requests in
-- progress hold (takes in steps, caps, refusals, what is given back) against
-- a model of it, and the cost estimate's counts against a plain count.
-- spec/memory_spec.lua drives it through the real binary.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

pcall(ffi.cdef, [[
typedef struct gw_inflight gw_inflight_t;
typedef struct { uint64_t held, limit, peak, full, too_big; } gw_inflight_stats_t;
gw_inflight_t *gw_inflight_create(size_t limit);
void gw_inflight_destroy(gw_inflight_t *a);
int gw_inflight_take(gw_inflight_t *a, size_t *held, size_t want, size_t cap);
int gw_inflight_fits(gw_inflight_t *a, size_t n);
void gw_inflight_keep(gw_inflight_t *a, size_t *held, size_t keep);
int gw_inflight_ebbed(gw_inflight_t *a);
void gw_inflight_stats(gw_inflight_t *a, gw_inflight_stats_t *out);
size_t gw_inflight_cost(int json, const char *body, size_t len, size_t *most);
]])

local STEP = 64 * 1024
local OK, FULL, TOO_BIG = 0, 1, 2

local function account(limit)
  return ffi.gc(lib.gw_inflight_create(limit), lib.gw_inflight_destroy)
end

local function stats(a)
  local st = ffi.new("gw_inflight_stats_t")
  lib.gw_inflight_stats(a, st)
  return { held = tonumber(st.held), limit = tonumber(st.limit), peak = tonumber(st.peak),
           full = tonumber(st.full), too_big = tonumber(st.too_big) }
end

describe("the in-flight account (gateway/inflight.c, through FFI)", function()
  it("takes in steps of 64 KiB up to a cap, refuses what does not fit, like a model does", function()
    local limit = 10 * STEP + 123
    local a = account(limit)
    local holds = {}
    for i = 1, 40 do holds[i] = ffi.new("size_t[1]") end
    local model, peak, full, too_big = {}, 0, 0, 0
    local function total() local t = 0; for i = 1, 40 do t = t + (model[i] or 0) end; return t end
    math.randomseed(11)
    for _ = 1, 20000 do
      local i = math.random(1, 40)
      local held = model[i] or 0
      if math.random() < 0.3 then
        local keep = math.random() < 0.5 and 0 or math.random(0, held)
        lib.gw_inflight_keep(a, holds[i], keep)
        model[i] = math.min(held, keep)
      else
        local want = held + math.random(0, 3 * STEP)
        if math.random() < 0.02 then want = limit + math.random(1, 10) end
        local cap = math.random() < 0.5 and want + math.random(0, 2 * STEP) or 0
        local free = limit - total()
        local expect, got
        if want <= held then
          expect, got = OK, held
        elseif want > limit then
          expect, too_big = TOO_BIG, too_big + 1
        else
          local target = math.ceil(want / STEP) * STEP
          if want <= cap and target > cap then target = cap end
          if target > limit then target = want end
          if target - held <= free then got = target
          elseif want - held <= free then got = want
          else expect, full = FULL, full + 1 end
          expect = expect or OK
        end
        assert.equal(expect, lib.gw_inflight_take(a, holds[i], want, cap))
        if got then model[i] = got end
      end
      assert.equal(model[i] or 0, tonumber(holds[i][0]))
      peak = math.max(peak, total())
      local st = stats(a)
      assert.equal(total(), st.held)
      assert.is_true(st.held <= limit)
      assert.equal(peak, st.peak)
      assert.same({ full, too_big }, { st.full, st.too_big })
    end
    for i = 1, 40 do lib.gw_inflight_keep(a, holds[i], 0) end
    assert.equal(0, stats(a).held)
  end)

  it("tells what would fit without taking it", function()
    local a = account(1000)
    local h = ffi.new("size_t[1]")
    assert.equal(OK, lib.gw_inflight_take(a, h, 600, 600))
    assert.equal(OK, lib.gw_inflight_fits(a, 400))
    assert.equal(FULL, lib.gw_inflight_fits(a, 401))
    assert.equal(TOO_BIG, lib.gw_inflight_fits(a, 1001))
    assert.same({ 600, 1, 1 }, { stats(a).held, stats(a).full, stats(a).too_big })
  end)

  it("says once per surge when it has ebbed", function()
    local a = account(1000)
    local h = ffi.new("size_t[1]")
    assert.equal(0, lib.gw_inflight_ebbed(a))
    lib.gw_inflight_take(a, h, 500, 500) -- not above half
    lib.gw_inflight_keep(a, h, 0)
    assert.equal(0, lib.gw_inflight_ebbed(a))
    lib.gw_inflight_take(a, h, 501, 501)
    assert.equal(0, lib.gw_inflight_ebbed(a)) -- still held
    lib.gw_inflight_keep(a, h, 250)
    assert.equal(0, lib.gw_inflight_ebbed(a)) -- a quarter is not below it
    lib.gw_inflight_keep(a, h, 249)
    assert.equal(1, lib.gw_inflight_ebbed(a))
    assert.equal(0, lib.gw_inflight_ebbed(a))
  end)

  it("estimates from the body's bytes, pairs and lines (or members and objects), counted exactly", function()
    local function count(s, c)
      local n = 0
      for _ in s:gmatch(c) do n = n + 1 end
      return n
    end
    local most = ffi.new("size_t[1]")
    local alphabet = { "=", "\n", ":", "{", "a", ",", " ", "\xff", "\0" }
    math.randomseed(5)
    local lens = { 0, 1, 15, 16, 17, 255, 4080, 4096, 4097 }
    for _ = 1, 30 do lens[#lens + 1] = math.random(0, 9000) end
    lens[#lens + 1] = 300000 -- more than 255 blocks of 16 at once
    for _, len in ipairs(lens) do
      local t = {}
      for k = 1, len do t[k] = alphabet[math.random(1, #alphabet)] end
      local body = table.concat(t)
      local lp = tonumber(lib.gw_inflight_cost(0, body, #body, most))
      assert.equal(count(body, "\n") + 1, tonumber(most[0]))
      assert.equal(6 * len + 100 * count(body, "=") + 310 * (count(body, "\n") + 1), lp)
      local js = tonumber(lib.gw_inflight_cost(1, body, #body, most))
      assert.equal(count(body, "{"), tonumber(most[0]))
      assert.equal(6 * len + 220 * count(body, ":") + 128 * count(body, "{"), js)
    end
  end)
end)
