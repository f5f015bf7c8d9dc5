-- Delivery guarantees under faults: the real gateway/luagw in
-- front of a real influxd (or the fake 2.x server), loopback only, every
-- loop bounded. Each case counts the points sent, acknowledged (2xx to the
-- client) and stored (per request, by its tag r), and checks that exactly the
-- acknowledged requests are stored, each whole. The fault matrix is printed
-- at the end and kept in docs/delivery.md.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local fake2 = require("support.fake_influx2")
local http = require("support.http")
local ports = require("support.ports")
local proc = require("support.proc")
local wait = require("support.wait")
local socket = require("socket")
local cjson = require("cjson")

local K = 50                       -- points per request
-- A unique timestamp per point: second 1700000000 + r, nanosecond i. Built
-- as text: such numbers are beyond a double's exact integers.
local function ts(r, i) return ("%d%09d"):format(1700000000 + r, i) end
local MATRIX = {}

-- A steady client: one request of k points every interval seconds; each
-- request has its own tag r, so what is stored can be told per request.
local function new_load(gw, meas, k)
  return { gw = gw, meas = meas, k = k or K, next = 1, sent = 0, acked = 0, status = {},
           acked_r = {}, unknown_r = {} }
end

local function body_of(L, r)
  local lines = {}
  for i = 1, L.k do lines[i] = ("%s,r=%d v=%di %s"):format(L.meas, r, i, ts(r, i)) end
  return table.concat(lines, "\n")
end

local function step(L)
  local r = L.next
  L.next = r + 1
  local st = L.gw:post("/write", body_of(L, r), nil, 10)
  L.sent = L.sent + L.k
  L.status[st or "none"] = (L.status[st or "none"] or 0) + 1
  if st == 204 then
    L.acked = L.acked + L.k
    L.acked_r[r] = true
  end
  return st
end

local function run_for(L, seconds, interval)
  local stop = socket.gettime() + seconds
  while socket.gettime() < stop do
    local t0 = socket.gettime()
    step(L)
    local rest = interval - (socket.gettime() - t0)
    if rest > 0 then socket.sleep(rest) end
  end
end

-- Points stored per request, from InfluxDB: { [r] = count }, and the total.
local function stored_by_r(db, meas)
  local per, total = {}, 0
  for _, s in ipairs(db:series(('SELECT COUNT(v) FROM "%s" GROUP BY r'):format(meas), "luagw")) do
    local n = s.rows[1] and s.rows[1].count or 0
    per[tonumber(s.tags.r)] = n
    total = total + n
  end
  return per, total
end

-- The same from the fake 2.x server (which logs a line again when luagw
-- sends it again): distinct points only.
local function stored_by_r_fake(f2, meas)
  local per, total, seen = {}, 0, {}
  for _, l in ipairs(f2:lines()) do
    local r = l:match("^" .. meas .. ",r=(%d+) ")
    if r and not seen[l] then
      seen[l] = true
      r = tonumber(r)
      per[r] = (per[r] or 0) + 1
      total = total + 1
    end
  end
  return per, total
end

-- Every acknowledged request stored whole, every refused one not at all;
-- a request whose answer was lost (unknown_r) is stored whole or not at all.
local function check_exact(L, per)
  for r = 1, L.next - 1 do
    local n = per[r] or 0
    if L.acked_r[r] then
      assert.equal(L.k, n, ("request %d was acknowledged, %d of %d points stored"):format(r, n, L.k))
    elseif L.unknown_r[r] then
      assert.is_true(n == 0 or n == L.k, ("request %d (answer lost): %d points stored"):format(r, n))
    else
      assert.equal(0, n, ("request %d was refused (%s), yet %d points stored"):format(r, tostring(L.status), n))
    end
  end
end

local function row(case, sent, acked, stored, note)
  MATRIX[#MATRIX + 1] = { case, sent, acked, stored, note or "" }
end

-- The points the log says overflow dropped, summed over its lines.
local function logged_drops(log)
  local n = 0
  for k in log:gmatch('dropped the oldest points[^\n]* points=(%d+)') do n = n + tonumber(k) end
  return n
end

local function health(gw)
  local st, body = gw:get("/health")
  local doc = cjson.decode(body)
  -- 503 exactly when something is wrong (spec/ops_spec.lua)
  assert.equal(doc.status == "fail" and 503 or 200, st)
  return doc
end

-- Nothing left to deliver: what the buffer or the spool holds is written
-- (or refused for good), so whatever reaches InfluxDB has reached it.
local function drained(gw)
  return wait(function() return health(gw).buffer.points == 0 end, 15)
end

local function influx_stats(db)
  local _, body = http.get(db.url .. "/debug/vars")
  return cjson.decode(body:match('"httpd:[^"]*":%s*(%b{})')).values
end

local function segments(dir)
  local p = io.popen("ls " .. proc.quote(dir))
  local out = {}
  for name in p:lines() do if name:match("%.seg$") then out[#out + 1] = dir .. "/" .. name end end
  p:close()
  table.sort(out)
  return out
end

describe("delivery under faults", function()
  local db = influxd.for_block { database = "luagw" }

  lazy_teardown(function()
    if #MATRIX > 0 then
      local out = { "", "| case | sent | acknowledged | stored | note |", "|---|---:|---:|---:|---|" }
      for _, r in ipairs(MATRIX) do
        out[#out + 1] = ("| %s | %d | %d | %d | %s |"):format(r[1], r[2], r[3], r[4], r[5])
      end
      io.stderr:write(table.concat(out, "\n"), "\n")
    end
  end)

  it("influxd stopped for 20 s under steady load: refused requests get 503, the acknowledged ones all arrive", function()
    local gw = luagw.start { influxd = db, config = { monitoring = {
      buffer_limit = 10000, batch_size = 1000, flushing_period = 0.2, retry_max = 1 } } }
    finally(function() gw:destroy(); if not db:running() then db:start_again() end end)
    local L = new_load(gw, "outage")
    run_for(L, 3, 0.05)
    db:stop()
    local down = socket.gettime()
    run_for(L, 20, 0.05)
    db:start_again()
    local outage = socket.gettime() - down
    run_for(L, 3, 0.05)
    local ok = wait(function() return select(2, stored_by_r(db, "outage")) == L.acked end, 30)
    local per, stored = stored_by_r(db, "outage")
    assert.is_true(ok ~= nil, ("stored %d, acknowledged %d"):format(stored, L.acked))
    check_exact(L, per)
    assert.is_true((L.status[503] or 0) > 0, "the buffer never filled")
    assert.is_true((L.status[204] or 0) > 0)
    assert.equal(L.sent, L.acked + (L.status[503] or 0) * K)
    assert.is_true(outage >= 20)
    row("influxd down 20 s, memory buffer of 10k points", L.sent, L.acked, stored,
      ("%d requests answered 503"):format(L.status[503]))
  end)

  it("a point influxd fails on every time (100 tags: 500) among 5000 good ones: they are stored, it is dead-lettered, /health is back to pass", function()
    for _, spooled in ipairs { false, true } do
      local meas = spooled and "poison_spool" or "poison"
      local dir = proc.tmpdir("luagw-spool-poison")
      local dead = os.tmpname()
      finally(function() proc.rmdir(dir); os.remove(dead) end)
      local gw = luagw.start { influxd = db, config = { spool = spooled and { dir = dir } or nil,
        monitoring = { batch_size = 5000, flushing_period = 0.2, dead_letter = dead } } }
      finally(function() gw:destroy() end)
      -- 20 requests of 250 points; request 7 also carries the poison point
      local tags = {}
      for i = 1, 99 do tags[i] = ("t%02d=x"):format(i) end
      local poison = ("%s,r=7,%s v=1i %s"):format(meas, table.concat(tags, ","), ts(7, 999))
      local L = new_load(gw, meas, 250)
      local t0 = socket.gettime()
      for r = 1, 20 do
        L.next = r + 1
        local body = body_of(L, r) .. (r == 7 and "\n" .. poison or "")
        assert.equal(204, (gw:post("/write", body)))
        L.acked_r[r], L.acked, L.sent = true, L.acked + 250, L.sent + 250
      end
      assert.is_true(wait(function()
        local h = health(gw)
        return h.points.written == 5000 and h.dead_letter.points == 1
      end, 30))
      local took = socket.gettime() - t0
      local per, stored = stored_by_r(db, meas)
      check_exact(L, per)
      local h = health(gw)
      assert.equal("pass", h.status)
      assert.equal(1, h.dead_letter.reasons.server_error.points)
      assert.equal(1, h.dead_letter.reasons.server_error.series[meas])
      local text = proc.read_file(dead)
      assert.matches("status=500 reason=server_error", text)
      assert.is_truthy(text:find(poison .. "\n", 1, true))
      assert.matches("influx fails on part of a batch while it takes other writes", gw:log())
      row(("one 100-tag point (500 every time) among 5000 good ones%s"):format(spooled and ", spool on" or ""),
        5001, 5001, stored, ("1 dead-lettered (server_error); all stored %.2f s after the first request"):format(took))
    end
  end)

  it("influxd stopped for 10 s under steady load: nothing dead-lettered, nothing lost", function()
    local gw = luagw.start { influxd = db, config = { monitoring = {
      batch_size = 1000, flushing_period = 0.2, retry_max = 1 } } }
    finally(function() gw:destroy(); if not db:running() then db:start_again() end end)
    local L = new_load(gw, "down10")
    run_for(L, 2, 0.05)
    db:stop()
    run_for(L, 10, 0.05)
    db:start_again()
    run_for(L, 2, 0.05)
    assert.equal(L.sent, L.acked)
    local ok = wait(function() return select(2, stored_by_r(db, "down10")) == L.acked end, 30)
    local per, stored = stored_by_r(db, "down10")
    assert.is_true(ok ~= nil, ("stored %d, acknowledged %d"):format(stored, L.acked))
    check_exact(L, per)
    local h = health(gw)
    assert.equal(0, h.dead_letter.points)
    assert.equal(0, h.points.dropped)
    assert.equal("pass", h.status)
    row("influxd stopped 10 s under steady load", L.sent, L.acked, stored, "0 dead-lettered, 0 lost")
  end)

  it("luagw SIGKILLed under steady load with the spool on: restarted, it delivers what it acknowledged", function()
    local dir = proc.tmpdir("luagw-spool-kill")
    finally(function() proc.rmdir(dir) end)
    local cfg = { spool = { dir = dir }, monitoring = { batch_size = 1000, flushing_period = 0.5, retry_max = 1 } }
    local gw = luagw.start { influxd = db, config = cfg }
    finally(function() gw:destroy() end)
    local before = influx_stats(db).pointsWrittenOK
    local L = new_load(gw, "killed")
    run_for(L, 3, 0.02)
    -- one more request, in flight when the kill comes: its answer is lost
    local r = L.next
    L.next = r + 1
    local body = body_of(L, r)
    local c = assert(socket.connect("127.0.0.1", gw.port))
    c:send(("POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"):format(#body, body))
    gw:signal("KILL")
    assert.equal(137, gw:wait_exit(5))
    c:close()
    L.sent = L.sent + K
    L.unknown_r[r] = true
    local per_kill, at_kill = stored_by_r(db, "killed")
    -- (the request in flight is not among the acknowledged ones, stored or not)
    assert.is_true(at_kill - (per_kill[r] or 0) < L.acked, "nothing was left in the spool to recover")
    local gw2 = luagw.start { influxd = db, config = cfg }
    finally(function() gw2:destroy() end)
    L.gw = gw2
    run_for(L, 1, 0.02)
    assert.is_true(wait(function() return select(2, stored_by_r(db, "killed")) >= L.acked end, 20))
    assert.is_true(drained(gw2))
    local per, stored = stored_by_r(db, "killed")
    check_exact(L, per)
    assert.is_true(stored == L.acked or stored == L.acked + K)
    assert.matches("spool: recovered points from an earlier run", gw2:log())
    local resent = influx_stats(db).pointsWrittenOK - before - stored
    row("luagw SIGKILLed under load, spool on, restarted", L.sent, L.acked, stored,
      ("stored at the kill %d; in-flight request %s; points sent twice %d"):format(at_kill,
        (per[r] or 0) > 0 and "stored" or "not stored", resent))
  end)

  it("one type-conflicting point in a batch of 5000: 4999 stored, the bad one dead-lettered", function()
    -- w is an integer in the shard the points go to: luagw, which sees no
    -- other type of w in the request (it refuses those itself), cannot know
    assert.equal(204, (db:write("conflict,r=0 v=1i,w=1i " .. ts(0, 1), "luagw")))
    local dead = os.tmpname()
    finally(function() os.remove(dead) end)
    local gw = luagw.start { influxd = db, config = { monitoring = {
      batch_size = 5000, flushing_period = 0.2, dead_letter = dead } } }
    finally(function() gw:destroy() end)
    local lines = {}
    for i = 1, 5000 do
      lines[i] = i == 2345 and ('conflict,r=1 w="not an integer" %s'):format(ts(1, i))
        or ("conflict,r=1 v=%di %s"):format(i, ts(1, i))
    end
    local req0 = influx_stats(db).writeReq
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    -- bisection may refuse the bad point before the other halves are sent
    assert.is_true(wait(function()
      local p = health(gw).points
      return p.dropped == 1 and p.written == 4999
    end, 10))
    local per = stored_by_r(db, "conflict")
    assert.equal(4999, per[1])
    local h = health(gw)
    assert.equal(1, h.dead_letter.series.conflict)
    assert.equal(4999, h.points.written)
    local requests = influx_stats(db).writeReq - req0
    assert.is_true(requests <= 1 + 2 * 13, requests .. " write requests")
    local text = proc.read_file(dead)
    assert.matches('^# %d%d%d%d%-%d%d%-%d%dT[^\n]* status=400 reason=refused error="partial write: field type conflict', text)
    assert.matches('\nconflict,r=1 w="not an integer" ' .. ts(1, 2345) .. "\n$", text)
    assert.matches("influx refused points for good", gw:log())
    row("one type conflict in a batch of 5000", 5000, 5000, 4999,
      ("1 dead-lettered; %d write requests to isolate it"):format(requests))
  end)

  it("9000 points alternating a type conflict and a good point: a few requests, not a bisection per point", function()
    -- w is an integer in the shard the points go to (field types are per
    -- shard), which luagw cannot know
    assert.equal(204, (db:write("alt,r=0 v=1i,w=1i " .. ts(0, 1), "luagw")))
    local gw = luagw.start { influxd = db, config = { monitoring = { batch_size = 5000, flushing_period = 0.2 } } }
    finally(function() gw:destroy() end)
    local lines = {}
    for i = 1, 9000 do
      lines[i] = i % 2 == 1 and ('alt,r=1 w="s%d" %s'):format(i, ts(1, i)) or ("alt,r=1 v=%di %s"):format(i, ts(1, i))
    end
    local req0 = influx_stats(db).writeReq
    local t0 = socket.gettime()
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    -- another client's points, right behind: they must not wait for a bisection
    local other = {}
    for i = 1, 100 do other[i] = ("alt,r=2 v=%di %s"):format(i, ts(2, i)) end
    assert.equal(204, (gw:post("/write", table.concat(other, "\n"))))
    assert.is_true(wait(function()
      local p = health(gw).points
      return p.dropped == 4500 and p.written == 4600
    end, 30))
    local took = socket.gettime() - t0
    local per = stored_by_r(db, "alt")
    assert.equal(4500, per[1])
    assert.equal(100, per[2])
    local requests = influx_stats(db).writeReq - req0
    -- two batches of 5000 and 4000 (and the 100): each the whole, the named lines, the rest
    assert.is_true(requests <= 8, requests .. " write requests")
    assert.equal(4500, health(gw).dead_letter.reasons.refused.points)
    -- the first refusal is logged at once, the rest within 10 s of it on the timer
    assert.is_true(wait(function()
      local n = 0
      for k in gw:log():gmatch('influx refused points for good" points=(%d+)') do n = n + tonumber(k) end
      return n == 4500
    end, 15), gw:log())
    row("9000 points alternating a type conflict and a good one", 9100, 9100, 4600,
      ("4500 dead-lettered; %d write requests; all settled %.2f s after the first request"):format(requests, took))
  end)

  it("a batch full of unrelated conflicts costs at most its budget of requests, and stores every good point", function()
    -- 2500 integer fields, then a body where every other point writes one of them as a string
    local pre = {}
    for i = 1, 2500 do pre[i] = ("many f%d=1i %s"):format(i, ts(0, 1)) end
    assert.equal(204, (db:write(table.concat(pre, "\n"), "luagw")))
    local gw = luagw.start { influxd = db, config = { monitoring = { batch_size = 5000, flushing_period = 0.2 } } }
    finally(function() gw:destroy() end)
    local lines = {}
    for i = 1, 5000 do
      lines[i] = i % 2 == 1 and ('many,r=1 f%d="s" %s'):format((i + 1) / 2, ts(1, i)) or ("many,r=1 g=%di %s"):format(i, ts(1, i))
    end
    local req0 = influx_stats(db).writeReq
    local t0 = socket.gettime()
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    assert.is_true(wait(function()
      local p = health(gw).points
      return p.dropped == 2500 and p.written == 2500
    end, 30))
    local took = socket.gettime() - t0
    local requests = influx_stats(db).writeReq - req0
    assert.equal(2500, db:rows('SELECT COUNT(g) FROM "many" WHERE r = \'1\'', "luagw")[1].count)
    -- the budget (84 for 5000 points), then one request per range left (at most 13 deep)
    assert.is_true(requests <= 84 + 13 + 1, requests .. " write requests")
    local dl = health(gw).dead_letter.reasons
    assert.is_true(dl.unresolved.points > 0)
    assert.matches("partial writes taken as counted", gw:log())
    row("5000 points, 2500 of them each a conflict of its own (bisection budget)", 5000, 5000, 2500,
      ("%d write requests (budget 84); %d dead-lettered as refused, %d in unresolved ranges; %.2f s"):format(
        requests, dl.refused and dl.refused.points or 0, dl.unresolved.points, took))
  end)

  it("influxd with a small max-body-size: 413 splits batches, all stored; a point too large alone is dead-lettered", function()
    local small = influxd.start { max_body_size = 20000 }
    finally(function() small:destroy() end)
    small:create_database("luagw")
    local gw = luagw.start { influxd = small, config = { monitoring = { batch_size = 5000, flushing_period = 0.2 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "split", 5000)
    local req0 = influx_stats(small).writeReq
    assert.equal(204, step(L))
    assert.is_true(wait(function() return select(2, stored_by_r(small, "split")) == 5000 end, 15))
    local first = influx_stats(small).writeReq - req0
    -- the next batch is cut to the size InfluxDB took, without a 413
    local err0 = influx_stats(small).clientError
    assert.equal(204, step(L))
    assert.is_true(wait(function() return select(2, stored_by_r(small, "split")) == 10000 end, 15))
    assert.equal(err0, influx_stats(small).clientError)
    local big = ('split,r=99 v=1i,blob="%s" %s'):format(("x"):rep(30000), ts(99, 1))
    assert.equal(204, (gw:post("/write", big)))
    assert.is_true(wait(function() return health(gw).points.dropped == 1 end, 10))
    local per, stored = stored_by_r(small, "split")
    check_exact(L, per)
    assert.is_nil(per[99])
    assert.equal(1, health(gw).dead_letter.series.split)
    row("influxd max-body-size 20 kB (413), 2 batches of 5000", L.sent, L.acked, stored,
      ("first batch: %d requests; second: no 413; a 30 kB point dead-lettered"):format(first))
  end)

  it("InfluxDB answering 503 with Retry-After: clients get 503 from luagw, nothing acknowledged is lost", function()
    local f2 = fake2.start {}
    finally(function() f2:stop() end)
    local gw = luagw.start { fake2 = f2, config = { monitoring = {
      buffer_limit = 2000, batch_size = 500, flushing_period = 0.1, retry_max = 5 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "throttled", 100)
    run_for(L, 1, 0.05)
    -- six refusals, each slow (0.3 s) and asking for 1 s of patience
    f2:fail_next(6, 503, nil, 1, 0.3)
    run_for(L, 8, 0.05)
    local ok = wait(function() return select(2, stored_by_r_fake(f2, "throttled")) == L.acked end, 20)
    local per, stored = stored_by_r_fake(f2, "throttled")
    assert.is_true(ok ~= nil, ("stored %d, acknowledged %d"):format(stored, L.acked))
    check_exact(L, per)
    assert.is_true((L.status[503] or 0) > 0, "no backpressure reached the client")
    -- Retry-After was honoured: no hot loop against the failing server. A
    -- probe (an empty write, or one line) may follow a batch's third 503.
    local t, probes = {}, 0
    for _, r in ipairs(f2:requests()) do
      if r.injected and r.content_length > 200 then t[#t + 1] = r.time
      elseif r.injected then probes = probes + 1 end
    end
    assert.equal(6, #t + probes)
    assert.is_true(probes <= 2, probes .. " probes")
    for i = 2, #t do assert.is_true(t[i] - t[i - 1] >= 1.2, ("retry after %.2f s"):format(t[i] - t[i - 1])) end
    row("InfluxDB 2.x answering 503 + Retry-After 1 s, 6 times", L.sent, L.acked, stored,
      ("%d requests answered 503 by luagw"):format(L.status[503]))
  end)

  it("a corrupted spool file: luagw starts, skips the bad record with a log line, delivers the rest", function()
    local dir = proc.tmpdir("luagw-spool-bad")
    finally(function() proc.rmdir(dir) end)
    -- first run: InfluxDB unreachable, so everything stays in the spool
    local gw = luagw.start { config = { spool = { dir = dir }, monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", retry_max = 1 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "damaged")
    for _ = 1, 10 do assert.equal(204, step(L)) end
    gw:signal("KILL")
    gw:wait_exit(5)
    local seg = segments(dir)[1]
    local bytes = proc.read_file(seg)
    local at = assert(bytes:find("damaged,r=5 v=17i", 1, true))
    local f = assert(io.open(seg, "r+b"))
    f:seek("set", at + 14); f:write("9"); f:close() -- v=17i -> v=19i: plausible, but not what was written
    local gw2 = luagw.start { influxd = db, config = { spool = { dir = dir } } }
    finally(function() gw2:destroy() end)
    assert.is_true(wait(function() return select(2, stored_by_r(db, "damaged")) == 9 * K end, 15))
    assert.is_true(drained(gw2))
    local per, stored = stored_by_r(db, "damaged")
    assert.is_nil(per[5])
    L.acked_r[5] = nil
    check_exact(L, per)
    assert.matches("spool: damaged record skipped[^\n]*offset=", gw2:log())
    assert.equal(1, health(gw2).buffer.spool.damaged_records)
    row("spool record damaged on disk (byte changed), restart", L.sent, L.acked, stored,
      "the damaged request's 50 points skipped, logged; the rest delivered")
  end)

  it("SIGTERM: new requests get 503, the gateway exits 0; without a spool it says how many points are lost", function()
    local gw = luagw.start { config = { monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", shutdown_timeout = 1.5, retry_max = 0.2 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "term")
    for _ = 1, 3 do assert.equal(204, step(L)) end
    gw:signal("TERM")
    -- listen.drain_seconds is 0: /health says "stopping" once ingest answers 503
    assert.is_true(wait(function() return health(gw).stopping end, 5))
    local st, body = gw:post("/write", body_of(L, 99))
    assert.equal(503, st)
    assert.matches("shutting down", cjson.decode(body).error)
    assert.equal(0, gw:wait_exit(10))
    assert.matches('stopped with points undelivered: they are lost" points=150', gw:log())
  end)

  it("SIGTERM with the spool on: what is left stays in the spool and is delivered on the next start", function()
    local dir = proc.tmpdir("luagw-spool-term")
    finally(function() proc.rmdir(dir) end)
    local gw = luagw.start { config = { spool = { dir = dir }, monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", shutdown_timeout = 0.5, retry_max = 0.2 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "termspool")
    for _ = 1, 4 do assert.equal(204, step(L)) end
    gw:signal("TERM")
    assert.equal(0, gw:wait_exit(10))
    assert.matches('kept in the spool for the next start" points=200', gw:log())
    local gw2 = luagw.start { influxd = db, config = { spool = { dir = dir } } }
    finally(function() gw2:destroy() end)
    assert.is_true(wait(function() return select(2, stored_by_r(db, "termspool")) == 200 end, 10))
    local per, stored = stored_by_r(db, "termspool")
    check_exact(L, per)
    row("SIGTERM while InfluxDB is unreachable, spool on, restart", L.sent, L.acked, stored,
      "exit 0; 200 points kept in the spool, delivered by the next run")
  end)

  it("spool full: 503 with nothing taken; after a restart every acknowledged point arrives", function()
    local dir = proc.tmpdir("luagw-spool-full")
    finally(function() proc.rmdir(dir) end)
    local gw = luagw.start { config = { spool = { dir = dir, max_bytes = "1MiB" }, monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", retry_max = 0.2, shutdown_timeout = 0 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "spoolfull", 1000) -- about 45 kB a request
    local refused
    for _ = 1, 60 do
      local st = step(L)
      if st == 503 then refused = true; break end
      assert.equal(204, st)
    end
    assert.is_true(refused, "the spool never filled")
    local st, body = gw:post("/write", body_of(L, 999))
    assert.equal(503, st)
    assert.matches("spool full", cjson.decode(body).error)
    assert.is_true(health(gw).buffer.spool.bytes <= 1024 * 1024)
    gw:signal("TERM")
    assert.equal(0, gw:wait_exit(10))
    local gw2 = luagw.start { influxd = db, config = { spool = { dir = dir, max_bytes = "1MiB" } } }
    finally(function() gw2:destroy() end)
    assert.is_true(wait(function() return select(2, stored_by_r(db, "spoolfull")) == L.acked end, 15))
    local per, stored = stored_by_r(db, "spoolfull")
    check_exact(L, per)
    row("spool full (max_bytes 1 MiB) while InfluxDB is unreachable, restart", L.sent, L.acked, stored,
      "503 once full, nothing of that body kept; the rest delivered after the restart")
  end)

  it("the buffer is bounded in bytes: InfluxDB unreachable, 60 KB strings, default limits: 503 at buffer_limit_bytes, memory held", function()
    local MiB = 1024 * 1024
    local gw = luagw.start { config = { monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", retry_max = 1, shutdown_timeout = 0 } } }
    finally(function() gw:destroy() end)
    local function rss()
      local kb = (proc.read_file("/proc/" .. gw.pid .. "/status") or ""):match("VmRSS:%s*(%d+) kB")
      return tonumber(kb) * 1024
    end
    local rss0 = rss()
    local value = ("x"):rep(60000)
    local acked, refused = 0, 0
    for r = 1, 400 do -- about 1 MB a request: 400 MB would be sent without a byte bound
      local lines = {}
      for i = 1, 16 do lines[i] = ('big,r=%d s="%s" %s'):format(r, value, ts(r, i)) end
      local st, body = gw:post("/write", table.concat(lines, "\n"))
      if st == 503 then
        assert.matches("buffer_limit_bytes = 134217728", cjson.decode(body).error)
        refused = refused + 1
        if refused == 3 then break end
      else
        assert.equal(204, st)
        acked = acked + 16
      end
    end
    assert.equal(3, refused)
    local h = health(gw)
    assert.equal(128 * MiB, h.buffer.limit_bytes)
    assert.is_true(h.buffer.bytes <= 128 * MiB, h.buffer.bytes)
    assert.is_true(h.buffer.bytes > 126 * MiB, h.buffer.bytes) -- full to within a request
    assert.equal(acked, h.buffer.points)
    assert.matches("buffer full", table.concat(h.problems, " "), 1, true)
    local grown = rss() - rss0
    -- sanitizer builds keep freed memory in quarantine: the bound is for the real thing
    if not os.getenv("LUAGW_CHILD_ASAN_OPTIONS") then
      assert.is_true(rss() < 400 * MiB, ("RSS %d MiB"):format(rss() / MiB))
    end
    row("InfluxDB unreachable, 16 x 60 KB strings a request, default buffer_limit_bytes 128 MiB", acked + 3 * 16,
      acked, 0, ("503 at %d MiB held; RSS %d MiB -> %d MiB"):format(h.buffer.bytes / MiB, rss0 / MiB,
        (rss0 + grown) / MiB))
  end)

  it("overflow drop_oldest: the oldest waiting points make room, counted on /health", function()
    local gw = luagw.start { influxd = db, config = { monitoring = {
      buffer_limit = 100, batch_size = 50, flushing_period = 0.1, retry_max = 0.5, overflow = "drop_oldest" } } }
    finally(function() gw:destroy(); if not db:running() then db:start_again() end end)
    db:stop()
    local L = new_load(gw, "dropold")
    step(L)
    -- the sender holds request 1 and retries it
    assert.is_true(wait(function() return gw:log():find("will retry", 1, true) ~= nil end, 5))
    for _ = 2, 4 do assert.equal(204, step(L)) end
    local h = health(gw)
    assert.equal(100, h.points.overflowed)
    db:start_again()
    assert.is_true(wait(function() return select(2, stored_by_r(db, "dropold")) == 100 end, 15))
    local per, stored = stored_by_r(db, "dropold")
    assert.same({ [1] = 50, [4] = 50 }, per)
    -- the first drop is logged at once; the second, within 10 s of it, on
    -- the timer: no burst goes unlogged
    assert.is_true(wait(function() return logged_drops(gw:log()) == 100 end, 15), gw:log())
    row("overflow: drop_oldest, buffer 100, influxd down", L.sent, L.acked, stored,
      "requests 2 and 3 dropped by policy (points.overflowed = 100)")
  end)

  it("overflow drop_oldest with the spool: what was dropped since the last log line is logged at shutdown", function()
    local dir = proc.tmpdir("luagw-spool-dropold")
    finally(function() proc.rmdir(dir) end)
    local gw = luagw.start { config = { spool = { dir = dir, max_bytes = "1MiB" }, monitoring = {
      host = "127.0.0.1", port = ports.free(), database = "luagw", overflow = "drop_oldest", shutdown_timeout = 0 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "spooldrop", 1000)
    for _ = 1, 60 do assert.equal(204, step(L)) end -- about 45 kB each: 2.7 MB into 1 MiB
    local overflowed = health(gw).points.overflowed
    assert.is_true(overflowed > 1000, overflowed)
    gw:signal("TERM")
    assert.equal(0, gw:wait_exit(10))
    assert.equal(overflowed, logged_drops(gw:log()))
  end)

  it("a missing database (404): keeps the points, /health says fail, delivers once it exists", function()
    local gw = luagw.start { influxd = db, database = "later", config = { monitoring = { retry_max = 0.3 } } }
    finally(function() gw:destroy() end)
    local L = new_load(gw, "later")
    assert.equal(204, step(L))
    assert.is_true(wait(function() return health(gw).influx.refusing == 404 end, 10))
    local h = health(gw)
    assert.equal("fail", h.status)
    assert.equal(K, h.buffer.points)
    assert.matches("influx refuses writes: check monitoring settings", gw:log())
    db:create_database("later")
    assert.is_true(wait(function() return health(gw).status == "pass" end, 10))
    local per = {}
    for _, s in ipairs(db:series('SELECT COUNT(v) FROM "later" GROUP BY r', "later")) do
      per[tonumber(s.tags.r)] = s.rows[1].count
    end
    assert.same({ [1] = K }, per)
    row("database missing (404) until created", L.sent, L.acked, K, "/health status fail meanwhile")
  end)

  it("2.x partial write (422): the bad point isolated, the rest stored", function()
    local f2 = fake2.start {}
    finally(function() f2:stop() end)
    local gw = luagw.start { fake2 = f2, config = { monitoring = { batch_size = 1000, flushing_period = 0.2 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "p422,r=0 v=1i,w=1i " .. ts(0, 1))))
    assert.is_true(wait(function() return #f2:lines() == 1 end, 10))
    local lines = {}
    for i = 1, 1000 do
      -- (w is an integer already: luagw, which sees no other type of it in
      -- the request, cannot know)
      lines[i] = i == 700 and ('p422,r=1 w="x" %s'):format(ts(1, i)) or ("p422,r=1 v=%di %s"):format(i, ts(1, i))
    end
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    assert.is_true(wait(function() return health(gw).points.dropped == 1 end, 10))
    local per = stored_by_r_fake(f2, "p422")
    assert.equal(999, per[1])
    local writes = 0
    for _, r in ipairs(f2:requests()) do if r.path == "/api/v2/write" then writes = writes + 1 end end
    assert.is_true(writes <= 2 + 2 * 10, writes .. " writes")
    row("2.x: one type conflict in a batch of 1000 (422)", 1000, 1000, 999,
      ("1 dead-lettered; %d write requests"):format(writes - 1))
  end)
end)
