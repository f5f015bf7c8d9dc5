-- gateway/sender.c: the answer table and one batch's delivery (splitting on
-- 413, bisecting to isolate refused points, retrying), driven through the
-- FFI with a fake InfluxDB written in Lua.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib
local jit = require("jit")

pcall(ffi.cdef, [[
typedef struct { long status; double retry_after; char error[512]; } gw_influx_answer_t;
typedef struct gw_delivery {
  int (*write)(void *ud, const char *body, size_t len, gw_influx_answer_t *ans);
  int (*sleep)(void *ud, double secs);
  void (*reject)(void *ud, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to,
                 long status, const char *why);
  void *ud; double retry_max; unsigned seed; size_t byte_cap;
  uint64_t requests; uint64_t delivered; uint64_t rejected;
} gw_delivery_t;
int gw_delivery_run(gw_delivery_t *d, const char *data, const uint32_t *ends, uint32_t n, uint32_t *done);
int gw_delivery_classify(long status, const char *error, long *dropped);
]])

local ACT = { [0] = "delivered", "partial", "rejected", "too_large", "refused", "throttled", "retry" }

local function classify(status, err)
  local d = ffi.new("long[1]")
  local a = lib.gw_delivery_classify(status, err, d)
  return ACT[a], tonumber(d[0])
end

-- n points "m,id=<i> v=<i>i <i>"; the ids in bad get a string field (a type
-- conflict for the fake server); pad makes lines longer.
local function batch(n, bad, pad)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  for i = 1, n do
    local l = bad[i] and ('m,id=%d v="oops%s" %d\n'):format(i, pad or "", i)
      or ("m,id=%d v=%di%s %d\n"):format(i, i, pad and (',p="' .. pad .. '"') or "", i)
    parts[i] = l
    off = off + #l
    ends[i - 1] = off
  end
  return table.concat(parts), ends
end

-- A fake InfluxDB. mode: "v1" (400 partial write, the good points stored),
-- "v2_422" (the same with 422), "v2_parse" (400, nothing stored), "v1_parse"
-- (1.x's "unable to parse ... dropped=0", good ones stored). max_body: 413
-- beyond. script: answers to give first, { {status, retry_after, error} }.
local function fake(mode, o)
  o = o or {}
  local f = { stored = {}, writes = {}, rejected = {}, sleeps = {}, requests = 0, sizes = {},
              script = o.script or {}, give_up_after = o.give_up_after }
  f.write = ffi.cast("int (*)(void *, const char *, size_t, gw_influx_answer_t *)", function(_, body, len, ans)
    f.requests = f.requests + 1
    f.sizes[#f.sizes + 1] = tonumber(len)
    local text = ffi.string(body, len)
    ans.retry_after = -1
    ffi.fill(ans.error, 512)
    local s = table.remove(f.script, 1)
    if s then
      ans.status = s[1]
      if s[2] then ans.retry_after = s[2] end
      ffi.copy(ans.error, s[3] or "injected")
      return (s[1] >= 200 and s[1] < 300) and 0 or 1
    end
    if o.max_body and #text > o.max_body then
      ans.status = 413
      ffi.copy(ans.error, "Request Entity Too Large")
      return 1
    end
    local good, nbad = {}, 0
    for line in text:gmatch("[^\n]+") do
      if line:find('"oops', 1, true) then nbad = nbad + 1 else good[#good + 1] = line end
    end
    if nbad > 0 and mode == "v2_parse" then
      ans.status = 400
      ffi.copy(ans.error, "unable to parse 'm,id=1 v=...': invalid field format")
      return 1
    end
    for _, line in ipairs(good) do
      local id = tonumber(line:match("^m,id=(%d+) "))
      f.stored[id] = (f.stored[id] or 0) + 1
    end
    if nbad == 0 then ans.status = 204; return 0 end
    if mode == "v1_parse" then
      ans.status = 400
      ffi.copy(ans.error, "partial write: unable to parse 'm,id=1 v=': missing field value dropped=0")
    else
      ans.status = mode == "v2_422" and 422 or 400
      ffi.copy(ans.error, ('%spartial write: field type conflict: input field "v" on measurement "m" is type string, already exists as type integer dropped=%d')
        :format(mode == "v2_422" and "failure writing points to database: " or "", nbad))
    end
    return 1
  end)
  f.sleep = ffi.cast("int (*)(void *, double)", function(_, secs)
    f.sleeps[#f.sleeps + 1] = secs
    if f.give_up_after and #f.sleeps >= f.give_up_after then return 1 end
    return 0
  end)
  f.reject = ffi.cast("void (*)(void *, const char *, const uint32_t *, uint32_t, uint32_t, long, const char *)",
    function(_, lines, ends, from, to, status, why)
      for i = from, to - 1 do
        local a = i == 0 and 0 or ends[i - 1]
        local line = ffi.string(lines + a, ends[i] - a)
        f.rejected[#f.rejected + 1] = { id = tonumber(line:match("^m,id=(%d+) ")), status = tonumber(status),
          why = ffi.string(why) }
      end
    end)
  f.d = ffi.new("gw_delivery_t")
  f.d.write, f.d.sleep, f.d.reject = f.write, f.sleep, f.reject
  f.d.retry_max = o.retry_max or 30
  f.d.seed = 42
  function f:run(text, ends, n)
    local done = ffi.new("uint32_t[1]")
    local rc = lib.gw_delivery_run(self.d, text, ends, n, done)
    return rc, done[0]
  end
  function f:free() self.write:free(); self.sleep:free(); self.reject:free() end
  return f
end

local function log2ceil(n) return math.ceil(math.log(n) / math.log(2)) end

describe("the answer table", function()
  it("maps each InfluxDB answer to what the sender does", function()
    assert.equal("delivered", (classify(204)))
    assert.equal("delivered", (classify(200)))
    assert.same({ "partial", 2 }, { classify(400,
      'partial write: field type conflict: input field "v" on measurement "m" is type string, already exists as type integer dropped=2') })
    assert.same({ "partial", 1 }, { classify(422,
      "failure writing points to database: partial write: points beyond retention policy dropped=1") })
    -- 1.x says "partial write" for unparsable lines but leaves them out of the count
    assert.same({ "rejected", -1 }, { classify(400,
      "partial write: unable to parse 'm v=': missing field value dropped=0") })
    assert.same({ "rejected", -1 }, { classify(400, "unable to parse 'm v=': missing field value") })
    assert.same({ "rejected", -1 }, { classify(422, "unprocessable entity") })
    for _, st in ipairs { 401, 403, 404 } do assert.equal("refused", (classify(st, "x"))) end
    assert.equal("too_large", (classify(413, "Request Entity Too Large")))
    assert.equal("throttled", (classify(429, "")))
    assert.equal("throttled", (classify(503, "")))
    for _, st in ipairs { 0, 500, 502, 504, 418, 301 } do assert.equal("retry", (classify(st, "")), st) end
  end)
end)

describe("delivering one batch", function()
  local f
  after_each(function() if f then f:free(); f = nil end end)

  local function ids(list)
    local t = {}
    for _, r in ipairs(list) do t[#t + 1] = r.id end
    table.sort(t)
    return t
  end

  local function stored_count(st)
    local n = 0
    for _ in pairs(st) do n = n + 1 end
    return n
  end

  it("sends a clean batch in one request", function()
    f = fake("v1")
    local text, ends = batch(100, {})
    assert.same({ 0, 100 }, { f:run(text, ends, 100) })
    assert.equal(1, f.requests)
    assert.equal(100, stored_count(f.stored))
  end)

  it("1.x partial write: isolates the one bad point of 5000 in O(log n) requests; the rest is stored", function()
    f = fake("v1")
    local text, ends = batch(5000, { [3777] = true })
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    assert.same({ 3777 }, ids(f.rejected))
    assert.equal(400, f.rejected[1].status)
    assert.matches("field type conflict", f.rejected[1].why)
    assert.equal(4999, stored_count(f.stored))
    assert.is_true(f.requests <= 1 + 2 * log2ceil(5000), f.requests .. " requests")
    assert.equal(4999, tonumber(f.d.delivered))
    assert.equal(1, tonumber(f.d.rejected))
    assert.same({}, f.sleeps) -- no waiting: a refused point is not a failure
  end)

  it("2.x: a parse error refuses the whole request; bisection stores every good point exactly once", function()
    f = fake("v2_parse")
    local bad = { [1] = true, [2500] = true, [4999] = true }
    local text, ends = batch(5000, bad)
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    assert.same({ 1, 2500, 4999 }, ids(f.rejected))
    assert.equal(4997, stored_count(f.stored))
    for id, times in pairs(f.stored) do assert.equal(1, times, "id " .. id) end
    assert.is_true(f.requests <= 1 + 2 * 3 * log2ceil(5000), f.requests .. " requests")
  end)

  it("2.x 422 and 1.x's unparsable-line answer are bisected the same way", function()
    for _, mode in ipairs { "v2_422", "v1_parse" } do
      f = fake(mode)
      local text, ends = batch(1000, { [10] = true, [11] = true })
      assert.same({ 0, 1000 }, { f:run(text, ends, 1000) })
      assert.same({ 10, 11 }, ids(f.rejected), mode)
      assert.equal(998, stored_count(f.stored))
      f:free(); f = nil
    end
  end)

  it("a partial write that dropped every point refuses them all without bisecting", function()
    f = fake("v1")
    local bad = {}
    for i = 1, 64 do bad[i] = true end
    local text, ends = batch(64, bad)
    assert.same({ 0, 64 }, { f:run(text, ends, 64) })
    assert.equal(64, #f.rejected)
    assert.equal(1, f.requests)
  end)

  it("413: splits in halves until InfluxDB takes them, then remembers the size", function()
    f = fake("v1", { max_body = 20000 })
    local text, ends = batch(5000, {})
    assert.is_true(#text > 5 * 20000)
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    assert.equal(5000, stored_count(f.stored))
    for id, times in pairs(f.stored) do assert.equal(1, times, "id " .. id) end
    local first = f.requests
    assert.is_true(first <= 2 * math.ceil(#text / 10000) + 2 * log2ceil(#text / 20000), first .. " requests")
    -- the next batch is cut to the learned size up front: no 413 at all
    f.sizes = {}
    f.requests = 0
    f.stored = {}
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    for _, n in ipairs(f.sizes) do assert.is_true(n <= 20000, n .. " bytes") end
    assert.equal(5000, stored_count(f.stored))
  end)

  it("413 for a single point: refuses just that point", function()
    f = fake("v1", { max_body = 2000 })
    local text, ends = batch(3, {})
    local big = ('m,id=4 v=4i,p="%s" 4\n'):format(("x"):rep(3000))
    local all = text .. big
    local e = ffi.new("uint32_t[4]", ends[0], ends[1], ends[2], #all)
    assert.same({ 0, 4 }, { f:run(all, e, 4) })
    assert.same({ 4 }, ids(f.rejected))
    assert.equal(413, f.rejected[1].status)
    assert.equal(3, stored_count(f.stored))
  end)

  it("keeps the points through 503, no answer, 500 and 404, waiting as the table says", function()
    f = fake("v1", { retry_max = 5, script = {
      { 503, 2, "unavailable" }, { 429, 60, "slow down" }, { 0, nil, "Connection refused" },
      { 500, nil, "boom" }, { 502, nil, "bad gateway" }, { 404, nil, 'database not found: "x"' } } })
    local text, ends = batch(10, {})
    assert.same({ 0, 10 }, { f:run(text, ends, 10) })
    assert.equal(10, stored_count(f.stored))
    assert.equal(7, f.requests)
    assert.equal(6, #f.sleeps)
    assert.equal(2, f.sleeps[1])          -- Retry-After
    assert.equal(5, f.sleeps[2])          -- Retry-After 60, capped at retry_max
    -- backoff with jitter: 0.1 s * 2^attempt (attempts counted from 0), 50% to 100% of it
    assert.is_true(f.sleeps[3] >= 0.2 and f.sleeps[3] <= 0.4, f.sleeps[3])
    assert.is_true(f.sleeps[4] >= 0.4 and f.sleeps[4] <= 0.8, f.sleeps[4])
    assert.is_true(f.sleeps[5] >= 0.8 and f.sleeps[5] <= 1.6, f.sleeps[5])
    assert.equal(5, f.sleeps[6])          -- a configuration problem: the slow pace at once
    assert.same({}, f.rejected)
  end)

  it("gives the batch up when sleep says so (shutdown), telling how much was dealt with", function()
    -- the first half is stored, then the server goes away and shutdown comes
    f = fake("v1", { give_up_after = 1, script = { { 204 }, { 503, 1, "gone" } } })
    local text, ends = batch(100, {})
    f.d.byte_cap = #text - 1 -- sent as two halves
    local rc, done = f:run(text, ends, 100)
    assert.equal(1, rc)
    assert.is_true(done > 0 and done < 100, done)
    assert.equal(tonumber(f.d.delivered), done)
    assert.equal(1, #f.sleeps)
    assert.equal(2, f.requests)
  end)
end)
