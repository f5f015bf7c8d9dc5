-- gateway/sender.c: the answer table and one batch's delivery (splitting on
-- 413, isolating refused points, telling an InfluxDB that is down from one
-- that fails on some points only), driven through the FFI with a fake
-- InfluxDB written in Lua; and the real client (gateway/influx.c) against a
-- raw HTTP server that answers what InfluxDB should never answer.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib
local jit = require("jit")
local socket = require("socket")

pcall(ffi.cdef, [[
typedef struct { long status; int kind; double retry_after; char error[512]; } gw_influx_answer_t;
typedef struct gw_delivery {
  int (*write)(void *ud, const char *body, size_t len, gw_influx_answer_t *ans);
  int (*sleep)(void *ud, double secs);
  void (*reject)(void *ud, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to,
                 long status, int reason, const char *why);
  int (*own)(void *ud, char **data, uint32_t **ends);
  void *ud; double retry_max; unsigned seed; size_t byte_cap; double slow;
  uint64_t requests; uint64_t delivered; uint64_t rejected; uint64_t probes;
  uint32_t probe_len; int no_series; char probe[512];
} gw_delivery_t;
int gw_delivery_run(gw_delivery_t *d, char *data, uint32_t *ends, uint32_t n, uint32_t *done);
int gw_delivery_classify(long status, const char *error, long *dropped);
uint32_t gw_delivery_budget(uint32_t n);
]])

local ACT = { [0] = "delivered", "partial", "rejected", "too_large", "refused", "throttled", "retry" }
local KIND = { http = 0, none = 1, unreadable = 2 }
local REASON = { [0] = "refused", "too_large", "server_error", "no_answer", "unreadable_answer", "unresolved" }

local function classify(status, err)
  local d = ffi.new("long[1]")
  local a = lib.gw_delivery_classify(status, err, d)
  return ACT[a], tonumber(d[0])
end

-- n points "m,id=<i> v=<i>i <i>"; the ids in bad get a string field (a type
-- conflict for the fake server), named v unless bad[i] is a field name;
-- the ids in poison get a tag p=1 (the fake fails on them, see fake());
-- pad makes lines longer.
local function batch(n, bad, pad, poison)
  local parts, ends, off = {}, ffi.new("uint32_t[?]", n), 0
  poison = poison or {}
  for i = 1, n do
    local l = bad[i] and ('m,id=%d %s="oops%s" %d\n'):format(i, type(bad[i]) == "string" and bad[i] or "v",
        pad or "", i)
      or poison[i] and ("m,id=%d,p=1 v=%di %d\n"):format(i, i, i)
      or ("m,id=%d v=%di%s %d\n"):format(i, i, pad and (',p="' .. pad .. '"') or "", i)
    parts[i] = l
    off = off + #l
    ends[i - 1] = off
  end
  return table.concat(parts), ends
end

-- A fake InfluxDB. mode: "v1" (400 partial write, the good points stored),
-- "v2_422" (the same with 422), "v2_parse" (400, nothing stored), "v1_parse"
-- (1.x's "unable to parse ... dropped=0", good ones stored). Its conflict
-- message names the first bad line's field, as InfluxDB does. max_body: 413
-- beyond. poison: a status for any body holding a line tagged p=1 (as
-- influxd 1.6.7 answers 500 for a point with 100 tags): nothing of that body
-- is stored; "none" and "unreadable" stand for those answer kinds.
-- outage(f, text): called for every write, probes included; a status (or
-- "none"/"unreadable") fails the write as if InfluxDB were down. script:
-- answers to give first, { {status, retry_after, error} }, probes included.
local function fake(mode, o)
  o = o or {}
  local f = { stored = {}, order = {}, writes = {}, rejected = {}, sleeps = {}, requests = 0, sizes = {},
              bodies = {}, script = o.script or {}, give_up_after = o.give_up_after }
  local function answer(ans, status, err)
    if status == "none" or status == "unreadable" then
      ans.kind, ans.status = KIND[status], status == "unreadable" and 400 or 0
      ffi.copy(ans.error, err or (status == "none" and "Connection refused" or "Nul byte in header"))
      return 1
    end
    ans.kind, ans.status = KIND.http, status
    if err then ffi.copy(ans.error, err) end
    return (status >= 200 and status < 300) and 0 or 1
  end
  f.write = ffi.cast("int (*)(void *, const char *, size_t, gw_influx_answer_t *)", function(_, body, len, ans)
    f.requests = f.requests + 1
    f.sizes[#f.sizes + 1] = tonumber(len)
    local text = ffi.string(body, len)
    f.bodies[#f.bodies + 1] = text
    ans.retry_after = -1
    ffi.fill(ans.error, 512)
    local s = table.remove(f.script, 1)
    if s then
      if s[2] then ans.retry_after = s[2] end
      return answer(ans, s[1], s[3] or "injected")
    end
    local down = o.outage and o.outage(f, text)
    if down then return answer(ans, down, "injected outage") end
    if o.max_body and #text > o.max_body then return answer(ans, 413, "Request Entity Too Large") end
    if o.poison and text:find(",p=1 ", 1, true) then return answer(ans, o.poison, "Internal Server Error") end
    local good, nbad, first = {}, 0, nil
    for line in text:gmatch("[^\n]+") do
      local field = line:match('^m,id=%d+ ([^=]+)="oops')
      if field then nbad = nbad + 1; first = first or field else good[#good + 1] = line end
    end
    if nbad > 0 and mode == "v2_parse" then
      return answer(ans, 400, "unable to parse 'm,id=1 v=...': invalid field format")
    end
    for _, line in ipairs(good) do
      local id = tonumber(line:match("^m,id=(%d+)"))
      f.stored[id] = (f.stored[id] or 0) + 1
      f.order[#f.order + 1] = id
    end
    if nbad == 0 then return answer(ans, 204) end
    if mode == "v1_parse" then
      return answer(ans, 400, "partial write: unable to parse 'm,id=1 v=': missing field value dropped=0")
    end
    return answer(ans, mode == "v2_422" and 422 or 400,
      ('%spartial write: field type conflict: input field "%s" on measurement "m" is type string, already exists as type integer dropped=%d')
        :format(mode == "v2_422" and "failure writing points to database: " or "", first, nbad))
  end)
  f.sleep = ffi.cast("int (*)(void *, double)", function(_, secs)
    f.sleeps[#f.sleeps + 1] = secs
    if f.give_up_after and #f.sleeps >= f.give_up_after then return 1 end
    return 0
  end)
  f.reject = ffi.cast("void (*)(void *, const char *, const uint32_t *, uint32_t, uint32_t, long, int, const char *)",
    function(_, lines, ends, from, to, status, reason, why)
      for i = from, to - 1 do
        local a = i == 0 and 0 or ends[i - 1]
        local line = ffi.string(lines + a, ends[i] - a)
        f.rejected[#f.rejected + 1] = { id = tonumber(line:match("^m,id=(%d+)")), status = tonumber(status),
          reason = REASON[reason], why = ffi.string(why) }
      end
    end)
  f.d = ffi.new("gw_delivery_t")
  f.d.write, f.d.sleep, f.d.reject = f.write, f.sleep, f.reject
  f.d.retry_max = o.retry_max or 30
  f.d.seed = 42
  -- The batch is handed over in writable memory (the sender may reorder it).
  function f:run(text, ends, n)
    local done = ffi.new("uint32_t[1]")
    local buf = ffi.new("char[?]", #text + 1)
    local e = ffi.new("uint32_t[?]", n)
    ffi.copy(buf, text, #text)
    ffi.copy(e, ends, 4 * n)
    local rc = lib.gw_delivery_run(self.d, buf, e, n, done)
    return rc, done[0]
  end
  function f:free() self.write:free(); self.sleep:free(); self.reject:free() end
  return f
end

-- The sorted ids of the rejected points.
local function ids(list)
  local t = {}
  for _, r in ipairs(list) do t[#t + 1] = r.id end
  table.sort(t)
  return t
end

-- How many ids were stored (at least once).
local function stored_count(st)
  local n = 0
  for _ in pairs(st) do n = n + 1 end
  return n
end
local count = stored_count

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

  it("sends a clean batch in one request", function()
    f = fake("v1")
    local text, ends = batch(100, {})
    assert.same({ 0, 100 }, { f:run(text, ends, 100) })
    assert.equal(1, f.requests)
    assert.equal(100, stored_count(f.stored))
  end)

  it("shared lines: own() is asked for a copy before the first rewrite; the shared bytes stay as they were", function()
    f = fake("v1")
    local n = 2000
    local text, ends = batch(n, { [77] = true, [1500] = true })
    local shared = ffi.new("char[?]", #text + 1)
    local shared_ends = ffi.new("uint32_t[?]", n)
    ffi.copy(shared, text, #text)
    ffi.copy(shared_ends, ends, 4 * n)
    local copy, copy_ends, calls = ffi.new("char[?]", #text + 1), ffi.new("uint32_t[?]", n), 0
    local own = ffi.cast("int (*)(void *, char **, uint32_t **)", function(_, data, e)
      calls = calls + 1
      ffi.copy(copy, data[0], #text)
      ffi.copy(copy_ends, e[0], 4 * n)
      data[0], e[0] = copy, copy_ends
      return 0
    end)
    finally(function() own:free() end)
    f.d.own = own
    local done = ffi.new("uint32_t[1]")
    assert.equal(0, lib.gw_delivery_run(f.d, shared, shared_ends, n, done))
    assert.equal(n, done[0])
    assert.same({ 77, 1500 }, ids(f.rejected))
    assert.equal(n - 2, stored_count(f.stored))
    assert.equal(1, calls)
    assert.equal(text, ffi.string(shared, #text))
    for i = 0, n - 1 do assert.equal(ends[i], shared_ends[i]) end
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

  it("while InfluxDB is down, whatever it answers, keeps the points and waits as the table says", function()
    -- every write fails, probes included, until the eighth
    f = fake("v1", { retry_max = 5, script = {
      { 503, 2, "unavailable" },   -- 1: Retry-After 2
      { 429, 60, "slow down" },    -- 2: Retry-After 60, capped at retry_max
      { "none" },                  -- 3: no answer: the probe asks whether InfluxDB is up...
      { 500, nil, "boom" },        -- 4: ...the probe fails: down, back off
      { 502, nil, "bad gateway" }, -- 5
      { "unreadable" },            -- 6: the probe's answer cannot be read: down
      { 404, nil, 'database not found: "x"' } } }) -- 7: configuration: the slow pace at once
    local text, ends = batch(10, {})
    assert.same({ 0, 10 }, { f:run(text, ends, 10) })
    assert.equal(10, stored_count(f.stored))
    assert.equal(8, f.requests)
    assert.equal(2, tonumber(f.d.probes))
    assert.same({ "", "" }, { f.bodies[4], f.bodies[6] }) -- nothing stored yet: the probe is an empty write
    assert.equal(5, #f.sleeps)
    assert.equal(2, f.sleeps[1])
    assert.equal(5, f.sleeps[2])
    -- backoff with jitter: 0.1 s * 2^attempt (attempts counted from 0), 50% to 100% of it
    assert.is_true(f.sleeps[3] >= 0.2 and f.sleeps[3] <= 0.4, f.sleeps[3])
    assert.is_true(f.sleeps[4] >= 0.4 and f.sleeps[4] <= 0.8, f.sleeps[4])
    assert.equal(5, f.sleeps[5])
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

  it("names: the lines InfluxDB's conflict message names are moved apart, so a bad client costs a few requests", function()
    -- 9000 points alternating a wrong type and a good point (one kind of conflict)
    f = fake("v1")
    local bad = {}
    for i = 1, 9000, 2 do bad[i] = true end
    local text, ends = batch(9000, bad)
    assert.same({ 0, 9000 }, { f:run(text, ends, 9000) })
    assert.equal(4500, #f.rejected)
    assert.equal(4500, stored_count(f.stored))
    assert.equal("refused", f.rejected[1].reason)
    -- the whole batch, then the good ones (stored again, unchanged), then the bad ones refused together
    assert.equal(3, f.requests)
    -- the good points keep their order
    local last = 0
    for k = 4501, #f.order do assert.is_true(f.order[k] > last); last = f.order[k] end
  end)

  it("bounds the requests of a batch full of unrelated refusals, and loses nothing InfluxDB took", function()
    -- 2500 bad points among 5000, each a conflict of its own kind: the
    -- message names one at a time, so naming saves nothing here
    f = fake("v1")
    local bad, nbad = {}, 0
    for i = 1, 5000, 2 do bad[i] = "f" .. i; nbad = nbad + 1 end
    local text, ends = batch(5000, bad)
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    local budget = lib.gw_delivery_budget(5000)
    assert.equal(84, budget)
    -- past the budget every range left on the stack is sent once more at most
    assert.is_true(f.requests <= budget + 2 * log2ceil(5000) + 2, f.requests .. " requests")
    -- the good ones are all stored (1.x keeps them in a partial write); the
    -- counts are InfluxDB's
    assert.equal(2500, stored_count(f.stored))
    assert.equal(2500, tonumber(f.d.delivered))
    assert.equal(nbad, tonumber(f.d.rejected))
    -- every bad point is in the dead letter, isolated or in a range not looked into
    local given, unresolved = {}, 0
    for _, r in ipairs(f.rejected) do
      given[r.id] = true
      if r.reason == "unresolved" then
        unresolved = unresolved + 1
        assert.matches("^%d+ of these %d+ points refused, the others stored; not looked into: partial write", r.why)
      end
    end
    for i in pairs(bad) do assert.is_true(given[i], "bad point " .. i .. " missing from the dead letter") end
    assert.is_true(unresolved > 0)
  end)

  it("the budget does not apply where InfluxDB stored nothing (2.x parse errors): every good point still stored", function()
    f = fake("v2_parse")
    local bad = {}
    for i = 1, 400, 4 do bad[i] = "g" .. i end
    local text, ends = batch(400, bad)
    assert.same({ 0, 400 }, { f:run(text, ends, 400) })
    assert.equal(300, stored_count(f.stored))
    assert.equal(100, #f.rejected)
  end)
end)

describe("a point InfluxDB fails on alone", function()
  local f
  after_each(function() if f then f:free(); f = nil end end)

  it("(500 every time, like influxd's 100-tag point) is isolated at once and given up; the rest stored in order", function()
    f = fake("v1", { poison = 500 })
    local text, ends = batch(5000, {}, nil, { [3210] = true })
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    assert.same({ 3210 }, ids(f.rejected))
    assert.equal("server_error", f.rejected[1].reason)
    assert.equal(500, f.rejected[1].status)
    assert.equal(4999, count(f.stored))
    -- a 500 stores nothing: only the probe line is stored again
    local extra = 0
    for _, times in pairs(f.stored) do extra = extra + times - 1 end
    assert.is_true(extra <= tonumber(f.d.probes), extra)
    local last = 0
    for _, id in ipairs(f.order) do
      assert.is_true(id > last or f.stored[id] > 1, "order")
      last = math.max(last, id)
    end
    assert.same({}, f.sleeps) -- InfluxDB is up: nothing to wait for
    -- per level a failing half, a stored half, and at most one probe; then
    -- the point alone twice, each time after a probe
    local levels = log2ceil(5000)
    assert.is_true(f.requests <= 1 + 3 * levels + 4, f.requests .. " requests")
    assert.is_true(tonumber(f.d.probes) >= 2)
  end)

  it("with no answer or an unreadable answer the same way, under its own reason", function()
    for _, kind in ipairs { "none", "unreadable" } do
      f = fake("v1", { poison = kind })
      local text, ends = batch(64, {}, nil, { [1] = true, [40] = true })
      assert.same({ 0, 64 }, { f:run(text, ends, 64) })
      assert.same({ 1, 40 }, ids(f.rejected))
      assert.equal(kind == "none" and "no_answer" or "unreadable_answer", f.rejected[1].reason)
      assert.equal(62, count(f.stored))
      f:free(); f = nil
    end
  end)

  it("the probe is the last line InfluxDB stored, sent again", function()
    f = fake("v1", { poison = 500 })
    local text, ends = batch(8, {}, nil, { [8] = true })
    assert.same({ 0, 8 }, { f:run(text, ends, 8) })
    assert.same({ 8 }, ids(f.rejected))
    local probes = 0
    for _, b in ipairs(f.bodies) do
      if b == "m,id=7 v=7i 7\n" or b == "m,id=5 v=5i 5\n" then probes = probes + 1 end
    end
    assert.is_true(probes >= 1)
    assert.equal(8, #f.order) -- 7 points, and a probe line stored once more
  end)

  it("while every real write fails (disk full) but an empty write succeeds, waits and gives nothing up", function()
    f = fake("v1", { give_up_after = 12 })
    local text, ends = batch(100, {})
    assert.same({ 0, 100 }, { f:run(text, ends, 100) }) -- learns a probe line
    local o = f.d.probe_len
    assert.is_true(o > 0)
    f:free()
    -- from now on everything but the empty write fails
    f = fake("v1", { give_up_after = 12, outage = function(_, body) return body ~= "" and 500 or nil end })
    ffi.copy(f.d.probe, "m,id=1 v=1i 1\n")
    f.d.probe_len = o
    local rc = f:run(text, ends, 100)
    assert.equal(1, rc)
    assert.same({}, f.rejected)
    assert.equal(12, #f.sleeps)
  end)

  it("before anything was stored, a point failing alone while only an empty write succeeds waits, then goes", function()
    -- the very first batch is one poison point: nothing but the empty write
    -- proves InfluxDB is up, so it is waited for about UNPROVEN_WAIT (10 s) first
    f = fake("v1", { poison = 500, retry_max = 30 })
    local text, ends = batch(1, {}, nil, { [1] = true })
    assert.same({ 0, 1 }, { f:run(text, ends, 1) })
    assert.same({ 1 }, ids(f.rejected))
    local waited = 0
    for _, w in ipairs(f.sleeps) do waited = waited + w end
    assert.is_true(waited >= 10 and waited < 30, waited)
    -- the same point with a good one stored before is given up at once
    f:free()
    f = fake("v1", { poison = 500 })
    ffi.copy(f.d.probe, "m,id=2 v=2i 2\n")
    f.d.probe_len = #"m,id=2 v=2i 2\n"
    assert.same({ 0, 1 }, { f:run(text, ends, 1) })
    assert.same({ 1 }, ids(f.rejected))
    assert.same({}, f.sleeps)
  end)

  it("InfluxDB going down in the middle of an isolation: the rest waits, nothing more is given up", function()
    local n = 0
    f = fake("v1", { poison = 500, give_up_after = 3, outage = function()
      n = n + 1
      if n > 6 then return "none" end
    end })
    local text, ends = batch(1000, {}, nil, { [999] = true })
    assert.equal(1, (f:run(text, ends, 1000)))
    assert.same({}, f.rejected)
    assert.equal(3, #f.sleeps)
  end)

  it("that times out: a slow failure cuts the range 16 ways, so few slow requests stand between the good points", function()
    local slow_ones = 0
    f = fake("v1", { poison = "none", outage = function(_, body)
      if body:find(",p=1 ", 1, true) then slow_ones = slow_ones + 1; socket.sleep(0.002) end
    end })
    f.d.slow = 0.001
    local text, ends = batch(5000, {}, nil, { [4321] = true })
    assert.same({ 0, 5000 }, { f:run(text, ends, 5000) })
    assert.same({ 4321 }, ids(f.rejected))
    assert.equal("no_answer", f.rejected[1].reason)
    assert.equal(4999, count(f.stored))
    -- ceil(log16(5000)) = 4 levels, then the point alone twice; halving would take 13 + 2
    assert.is_true(slow_ones <= 4 + 2, slow_ones .. " slow requests")
  end)

  it("a 503 for one batch is waited for PATIENCE times, then isolated like a 500", function()
    f = fake("v1", { poison = 503 })
    local text, ends = batch(16, {}, nil, { [5] = true })
    assert.same({ 0, 16 }, { f:run(text, ends, 16) })
    assert.same({ 5 }, ids(f.rejected))
    assert.equal(2, #f.sleeps)
    assert.equal(15, count(f.stored))
  end)
end)

describe("the real client (gateway/influx.c) against answers InfluxDB should never give", function()
  local raw = require("support.raw_http")
  local proc = require("support.proc")
  for _, decl in ipairs {
    "void *gw_config_load(const char *path, char *err, size_t errlen);",
    "void gw_config_free(void *cfg);",
    "void *gw_influx_create(const void *cfg, char *err, size_t errlen);",
    "int gw_influx_write(void *c, const char *body, size_t len, gw_influx_answer_t *ans);",
    "void gw_influx_destroy(void *c);",
  } do pcall(ffi.cdef, decl) end

  local NUL_HEADER = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n" ..
    'X-Influxdb-Error: partial write: field type conflict: input field "a\0" on measurement "n" is type string\r\n' ..
    "Content-Length: 2\r\n\r\n{}"
  local OK = "HTTP/1.1 204 No Content\r\n\r\n"
  local srv, cfg, client, dir

  local function start(rules)
    srv = raw.start { rules = rules, default = OK }
    dir = proc.tmpdir("luagw-rawcfg")
    proc.write_file(dir .. "/c.yaml", ("monitoring:\n  host: 127.0.0.1\n  port: %d\n  database: luagw\n  timeout: 2\n")
      :format(srv.port))
    local err = ffi.new("char[512]")
    cfg = lib.gw_config_load(dir .. "/c.yaml", err, 512)
    assert(cfg ~= nil, ffi.string(err))
    client = lib.gw_influx_create(cfg, err, 512)
    assert(client ~= nil, ffi.string(err))
  end

  after_each(function()
    if client ~= nil then lib.gw_influx_destroy(client) end
    if cfg ~= nil then lib.gw_config_free(cfg) end
    if srv then srv:stop() end
    if dir then proc.rmdir(dir) end
    client, cfg, srv, dir = nil, nil, nil, nil
  end)

  local last_error
  local function write(body)
    local a = ffi.new("gw_influx_answer_t")
    local rc = lib.gw_influx_write(client, body, #body, a)
    last_error = ffi.string(a.error)
    return rc, tonumber(a.kind), tonumber(a.status)
  end

  it("tells an answer it cannot read from no answer, and goes on with the next write", function()
    start {
      { match = "nul", answer = NUL_HEADER },
      { match = "notttp", answer = "SSH-2.0-OpenSSH_9.2\r\n", close = true },
      { match = "short", answer = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", close = true },
      { match = "silent", answer = "", close = true },
    }
    local rc, kind, status = write("m,k=nul v=1i 1\n")
    assert.same({ 1, KIND.unreadable, 400 }, { rc, kind, status })
    assert.matches("Nul byte", last_error)
    assert.same({ 0, KIND.http, 204 }, { write("m v=1i 1\n") })
    for _, b in ipairs { "notttp", "short" } do
      rc, kind = write("m,k=" .. b .. " v=1i 1\n")
      assert.same({ 1, KIND.unreadable }, { rc, kind }, b)
    end
    rc, kind = write("m,k=silent v=1i 1\n")
    assert.same({ 1, KIND.none }, { rc, kind })
    assert.same({ 0, KIND.http, 204 }, { write("m v=1i 2\n") })
  end)

  it("delivering through it: the point answered with a NUL byte in a header is isolated, the others stored", function()
    start { { match = "k=nul", answer = NUL_HEADER } }
    local lines, ends, off = {}, ffi.new("uint32_t[40]"), 0
    for i = 1, 40 do
      lines[i] = (i == 23 and "m,k=nul,id=%d v=1i %d\n" or "m,id=%d v=1i %d\n"):format(i, i)
      off = off + #lines[i]
      ends[i - 1] = off
    end
    local text = table.concat(lines)
    local buf = ffi.new("char[?]", #text)
    ffi.copy(buf, text, #text)
    local rejected, sleeps = {}, 0
    local d = ffi.new("gw_delivery_t")
    local cb_sleep = ffi.cast("int (*)(void *, double)", function() sleeps = sleeps + 1; return 0 end)
    local cb_reject = ffi.cast("void (*)(void *, const char *, const uint32_t *, uint32_t, uint32_t, long, int, const char *)",
      function(_, data, e, from, to, _, reason)
        for i = from, to - 1 do
          local a = i == 0 and 0 or e[i - 1]
          rejected[#rejected + 1] = { line = ffi.string(data + a, e[i] - a), reason = REASON[reason] }
        end
      end)
    finally(function() cb_sleep:free(); cb_reject:free() end)
    d.write = ffi.cast("int (*)(void *, const char *, size_t, gw_influx_answer_t *)", lib.gw_influx_write)
    d.sleep, d.reject, d.ud, d.retry_max = cb_sleep, cb_reject, client, 1
    local done = ffi.new("uint32_t[1]")
    assert.equal(0, lib.gw_delivery_run(d, buf, ends, 40, done))
    assert.equal(40, done[0])
    assert.same({ { line = lines[23], reason = "unreadable_answer" } }, rejected)
    assert.equal(0, sleeps)
    -- every other line reached the server in a request it answered 204
    local got = {}
    for _, r in ipairs(srv:requests()) do
      if r.answered == 0 then for l in r.body:gmatch("[^\n]+\n") do got[l] = true end end
    end
    for i, l in ipairs(lines) do
      if i ~= 23 then assert.is_true(got[l] ~= nil, l) end
    end
  end)
end)
