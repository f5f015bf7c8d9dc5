-- Memory is bounded in bytes, whatever clients send (docs/hardening.md,
-- "Memory budget"): the real binary under everything clients can send at
-- once, InfluxDB unreachable so nothing drains. The bodies held while they
-- arrive, their inflation and their processing come out of
-- listen.max_inflight_bytes (gateway/inflight.c, gateway/http.c); what does
-- not fit is answered 503 (or 413 when it never could) with a JSON error,
-- and /health and small writes are still answered.
--
-- Before the account, the attack below took luagw to 1,376 MiB, and it
-- kept 1,366 MiB afterwards: every connection kept what it had been sent
-- (up to 16 MiB each), and each worker processed 16 MiB bodies that take
-- 280 MB apiece.
local cjson = require("cjson")
local socket = require("socket")
local http = require("support.http")
local luagw = require("support.luagw")
local ports = require("support.ports")
local proc = require("support.proc")
local wait = require("support.wait")

local MiB = 1024 * 1024
local LIMIT = 512 * MiB -- the issue's bound on the whole process, default limits
-- Sanitizer builds keep freed memory in quarantine and shadow every byte:
-- the RSS bound is for the real thing; the rest holds for every build.
local SANITIZED = os.getenv("LUAGW_CHILD_ASAN_OPTIONS") or os.getenv("TSAN_OPTIONS")

-- VmRSS and VmHWM (the peak) of pid, in bytes.
local function rss(pid)
  local s = proc.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+) kB") or 0) * 1024, tonumber(s:match("VmHWM:%s*(%d+) kB") or 0) * 1024
end

---------------------------------------------------------------------------
-- Many requests at once from one LuaJIT process: each a non-blocking
-- socket, a list of pieces to send (a piece may be repeated: bodies of
-- 16 MiB are one string sent many times) and the answer read as it comes.

local CHUNK = 64 * 1024

local function request(gw, head, pieces)
  local c = assert(socket.tcp())
  c:settimeout(2)
  assert(c:connect("127.0.0.1", gw.port))
  c:settimeout(0)
  local q = { { s = head, n = 1 } }
  for _, p in ipairs(pieces or {}) do q[#q + 1] = p end
  return { sock = c, q = q, at = 1, sent = 0, inbuf = {}, t0 = proc.now() }
end

-- The head of a POST with a Content-Length.
local function post_head(path, length, headers)
  local h = { ("POST %s HTTP/1.1\r\nHost: luagw\r\nContent-Length: %d\r\n"):format(path, length) }
  for k, v in pairs(headers or {}) do h[#h + 1] = k .. ": " .. v .. "\r\n" end
  h[#h + 1] = "\r\n"
  return table.concat(h)
end

-- A body of length bytes made of line repeated (and cut to fit).
local function lines_of(line, length)
  local chunk = line:rep(math.max(1, math.floor(CHUNK / #line)))
  local n = math.floor(length / #chunk)
  local rest = length - n * #chunk
  local pieces = { { s = line:rep(math.ceil(rest / #line) + 1):sub(1, rest), n = 1 } }
  if n > 0 then table.insert(pieces, 1, { s = chunk, n = n }) end
  return pieces
end

-- Send what the socket takes now, up to budget bytes (nil: all). Returns
-- the bytes sent; marks r.gone when the peer went away.
local function pump_send(r, budget)
  local sent = 0
  while r.q[r.at] and not r.gone and (not budget or sent < budget) do
    local p = r.q[r.at]
    local s = p.s
    if budget and #s - (p.off or 0) > budget - sent then s = s:sub(1, (p.off or 0) + budget - sent) end
    local last, err, partial = r.sock:send(s, (p.off or 0) + 1)
    local upto = last or partial or (p.off or 0)
    sent = sent + upto - (p.off or 0)
    p.off = upto
    if upto >= #p.s then
      p.off, p.n = 0, p.n - 1
      if p.n == 0 then r.at = r.at + 1 end
    end
    if err == "closed" then r.gone = true end
    if err then break end
  end
  r.sent = r.sent + sent
  return sent
end

-- Read what has arrived; parse the answer once it is whole.
local function pump_read(r)
  if r.status or r.closed then return end
  local data, err, partial = r.sock:receive(65536)
  local got = data or partial
  if got and #got > 0 then r.inbuf[#r.inbuf + 1] = got end
  if err == "closed" then r.closed = true end
  local text = table.concat(r.inbuf)
  local head_end = text:find("\r\n\r\n", 1, true)
  if head_end then
    local len = tonumber(text:sub(1, head_end):lower():match("content%-length:%s*(%d+)") or 0)
    if #text >= head_end + 3 + len then
      r.status = tonumber(text:match("^HTTP/1%.%d (%d+)"))
      r.body = text:sub(head_end + 4, head_end + 3 + len)
      r.headers = text:sub(1, head_end)
      r.took = proc.now() - r.t0
    end
  end
end

local function done(r) return r.status ~= nil or r.closed or r.gone end

-- Drive rs until stop() is true or timeout seconds pass, sampling the
-- gateway's RSS; each r sends at most r.rate bytes per round when set.
local function drive(gw, rs, stop, timeout, peak)
  local t_end = proc.now() + timeout
  while proc.now() < t_end do
    local moved = 0
    for _, r in ipairs(rs) do
      if not done(r) then
        moved = moved + pump_send(r, r.rate)
        pump_read(r)
      end
    end
    peak.rss = math.max(peak.rss, (rss(gw.pid)))
    if stop() then return true end
    if moved == 0 then socket.sleep(0.005) end
  end
  return false
end

local function json_error(r)
  local ok, t = pcall(cjson.decode, r.body or "")
  assert.is_true(ok and type(t) == "table" and type(t.error) == "string",
    ("status %s, not a JSON error: %s"):format(tostring(r.status), tostring(r.body)))
  assert.matches("application/json", r.headers:lower(), 1, true)
  return t.error
end

local function health(gw)
  local st, body = gw.get("/health")
  return st, st and cjson.decode(body)
end

-- Wait until all of rs are answered (or gone); false after timeout seconds.
local function settle(gw, rs, timeout, peak)
  return drive(gw, rs, function()
    for _, r in pairs(rs) do if not done(r) then return false end end
    return true
  end, timeout or 20, peak or { rss = 0 })
end

local function small(listen)
  listen.threads = 1
  return luagw.start { config = { listen = listen, log = { level = "error" },
    monitoring = { host = "127.0.0.1", port = ports.free(), shutdown_timeout = 0 } } }
end

local function inflight(gw) return select(2, health(gw)).inflight end

describe("listen.max_inflight_bytes", function()
  it("a body holds what has arrived; one that finds no room is read to its end and answered 503; "
    .. "the room comes back when its client goes away", function()
    local gw = small { max_body_bytes = "1MiB", max_inflight_bytes = "2MiB" }
    finally(function() gw:destroy() end)
    local sparse = 'm s="' .. ("z"):rep(1000) .. '"\n'
    -- two clients announce 1 MiB and send 900 KiB: they hold that, in 64 KiB steps
    local c1 = request(gw, post_head("/write", MiB), lines_of(sparse, 900 * 1024))
    local c2 = request(gw, post_head("/write", MiB), lines_of(sparse, 900 * 1024))
    drive(gw, { c1, c2 }, function() return c1.at > #c1.q and c2.at > #c2.q end, 10, { rss = 0 })
    assert.is_true(wait(function() return inflight(gw).bytes >= 1800 * 1024 end, 5))
    assert.is_true(inflight(gw).bytes <= 2 * MiB)
    -- no room for another 1 MiB: a client waiting for 100 Continue is told at once
    local c3 = request(gw, post_head("/write", MiB, { Expect = "100-continue" }))
    -- one that sends its body right away is read to the end, then told
    local c4 = request(gw, post_head("/write", 512 * 1024), lines_of(sparse, 512 * 1024))
    assert.is_true(settle(gw, { c3, c4 }))
    for _, r in ipairs { c3, c4 } do
      assert.equal(503, r.status, tostring(r.body))
      assert.matches("Retry-After: 1", r.headers, 1, true)
      assert.equal("requests in progress hold all of listen.max_inflight_bytes (2097152): nothing of this "
        .. "body was accepted, retry later", json_error(r))
    end
    assert.equal(#c3.q[1].s, c3.sent)
    assert.equal(512 * 1024 + #c4.q[1].s, c4.sent)
    -- small writes still fit
    assert.equal(204, (gw.post("/write", "m v=1")))
    -- the clients go away mid-body: what they held is given back
    c1.sock:close()
    c2.sock:close()
    assert.is_true(wait(function() return inflight(gw).bytes == 0 end, 5))
    assert.equal(204, (gw.post("/write", sparse:rep(100))))
    local st = inflight(gw)
    assert.equal(0, st.bytes)
    assert.is_true(st.peak <= 2 * MiB)
    assert.equal(2, st.refused)
  end)

  it("processing takes room by an estimate made before parsing: a body that alone would need more than "
    .. "the limit gets 413, one that fits is processed and gives it back", function()
    local gw = small { max_body_bytes = "1MiB", max_inflight_bytes = "8MiB" }
    finally(function() gw:destroy() end)
    local fields = {}
    for i = 1, 200 do fields[i] = ("f%d=1i"):format(i) end
    local dense = ("m " .. table.concat(fields, ",") .. "\n"):rep(100) -- 130 KB, 20,000 fields
    local st, body = gw.post("/write", dense:rep(6)) -- 790 KB: about 14 MiB to process
    assert.equal(413, st)
    assert.matches("^body: taking it in needs about %d+ MiB of memory, more than listen.max_inflight_bytes "
      .. "%(8388608%) holds for all requests: send smaller bodies$", cjson.decode(body).error)
    assert.equal(204, (gw.post("/write", dense)))
    local h = inflight(gw)
    assert.equal(0, h.bytes)
    assert.is_true(h.peak > 2 * MiB and h.peak <= 8 * MiB, tostring(h.peak)) -- 130 KB took about 2.5 MiB
    assert.equal(1, h.refused)
  end)

  it("gzip: the inflation takes room as it grows", function()
    local gw = small { max_body_bytes = "4MiB", max_inflight_bytes = "4MiB" }
    finally(function() gw:destroy() end)
    local bomb = http.gzip(("m v=1\n"):rep(700000)) -- 4.2 MB inflated, from 20 KB
    local st, body = gw.post("/write", bomb, { ["Content-Encoding"] = "gzip" })
    assert.equal(413, st)
    assert.matches("more than listen.max_inflight_bytes (4194304)", cjson.decode(body).error, 1, true)
    assert.equal(0, inflight(gw).bytes)
    assert.equal(204, (gw.post("/write", http.gzip(("m v=1\n"):rep(100)), { ["Content-Encoding"] = "gzip" })))
    -- /metrics has the account
    local _, text = gw.get("/metrics")
    assert.matches("\nluagw_http_inflight_bytes 0\n", text, 1, true)
    assert.matches("\nluagw_http_inflight_limit_bytes 4194304\n", text, 1, true)
    assert.matches('\nluagw_http_inflight_refused_total{reason="too_big"} 1\n', text, 1, true)
  end)

  it("a body of more points than listen.max_points is refused before it is parsed", function()
    local gw = small { max_points = 1000 }
    finally(function() gw:destroy() end)
    local st, body = gw.post("/write", ("m v=1\n"):rep(1001) .. "# a comment\n\n")
    assert.equal(413, st)
    assert.equal("body: 1001 points, more than listen.max_points (1000)", cjson.decode(body).error)
    assert.equal(204, (gw.post("/write", ("m v=1\n"):rep(1000) .. "# a comment\n\n")))
  end)
end)

describe("memory under attack (default limits, InfluxDB unreachable)", function()
  it("stays under 512 MB; what does not fit is answered 503 or 413, /health and small writes are answered", function()
    local gw = luagw.start { config = {
      -- all attackers share 127.0.0.1: this stands for many client addresses
      listen = { max_connections_per_client = 0 },
      log = { level = "error" },
      monitoring = { host = "127.0.0.1", port = ports.free(), retry_max = 1, shutdown_timeout = 0 } } }
    finally(function() gw:destroy() end)
    local _, hwm0 = rss(gw.pid)
    local peak = { rss = 0 }
    local t0 = proc.now()

    -- 1. The buffer, nearly full of large strings (it is bounded on its
    -- own: monitoring.buffer_limit_bytes, 128 MiB): 116 requests of 16
    -- points with 60 KB strings.
    local value = ("x"):rep(60000)
    for i = 1, 116 do
      local lines = {}
      for k = 1, 16 do lines[k] = ('big,r=%d s="%s" %d'):format(i, value, 1700000000000000000 + k) end
      assert.equal(204, (gw.post("/write", table.concat(lines, "\n"))))
    end
    local _, h = health(gw)
    assert.is_true(h.buffer.bytes > 100 * MiB, tostring(h.buffer.bytes))

    -- 2. At once: two 16 MiB bodies of dense scripted points (about 280 MB
    -- each to process), gzip bombs (16 MiB of one-field lines, 2.8 million
    -- points, from 50 KB), a 4 MiB body that is not JSON (jansson describes
    -- the error), a debug transform of 10,000 points; meanwhile /health and
    -- small writes are answered.
    local fields = {}
    for i = 1, 1000 do fields[i] = ("a%d=1"):format(i) end
    local dense = "requests,method=get,resource=/x " .. table.concat(fields, ",") .. "\n"
    local bomb = http.gzip(("m v=1\n"):rep(math.floor(16 * MiB / 6)))
    local pt = '{"series":"m","fields":{"v":1}}'
    local notjson = "[" .. (pt .. ","):rep(math.floor(4 * MiB / (#pt + 1))) .. "]"
    local debug = ('m,host=a v=1,w="x"\n'):rep(10000)
    local wave = {
      dense1 = request(gw, post_head("/write", 16 * MiB), lines_of(dense, 16 * MiB)),
      dense2 = request(gw, post_head("/write", 16 * MiB), lines_of(dense, 16 * MiB)),
      notjson = request(gw, post_head("/v1/points", #notjson, { ["Content-Type"] = "application/json" }),
        { { s = notjson, n = 1 } }),
      debug = request(gw, post_head("/v1/debug/transform", #debug), { { s = debug, n = 1 } }),
    }
    for i = 1, 4 do
      wave["bomb" .. i] = request(gw, post_head("/write", #bomb, { ["Content-Encoding"] = "gzip" }),
        { { s = bomb, n = 1 } })
    end
    local probes = {}
    local function probe()
      local s0 = proc.now()
      local st = gw.get("/health")
      local wst, wbody = gw.post("/write", ("small v=%di"):format(#probes))
      probes[#probes + 1] = { health = st, write = wst, body = wbody, took = proc.now() - s0 }
    end
    local function all_done(rs)
      for _, r in pairs(rs) do if not done(r) then return false end end
      return true
    end
    local list = {}
    for _, r in pairs(wave) do list[#list + 1] = r end
    assert.is_true(drive(gw, list, function()
      if #probes < 3 then probe() end
      return all_done(list) and #probes >= 3
    end, 90, peak), "the requests were not all answered")
    -- VmRSS as polled while the requests go on, and VmHWM: the kernel's
    -- own peak, which polling could miss
    local function bounded(when)
      local _, hwm = rss(gw.pid)
      if not SANITIZED then
        assert.is_true(peak.rss < LIMIT, ("RSS %d MiB %s"):format(peak.rss / MiB, when))
        assert.is_true(hwm < LIMIT, ("peak RSS %d MiB %s"):format(hwm / MiB, when))
      end
    end
    bounded("after the dense bodies, bombs and debug transform")
    assert.equal(200, wave.debug.status, tostring(wave.debug.body))
    assert.equal(10000, #cjson.decode(wave.debug.body).points)
    -- a 16 MiB body of dense points would take about 280 MB to process
    for _, name in ipairs { "dense1", "dense2", "notjson" } do
      assert.is_true(wave[name].status == 413 or wave[name].status == 503, name .. ": " .. tostring(wave[name].status))
      assert.matches("listen.max_inflight_bytes", json_error(wave[name]), 1, true)
    end
    -- the bombs are inflated within the account, then counted: 413
    for i = 1, 4 do
      local r = wave["bomb" .. i]
      assert.is_true(r.status == 413 or r.status == 503, "bomb: " .. tostring(r.status))
      local e = json_error(r)
      assert.is_truthy(e:find("listen.max_points", 1, true) or e:find("listen.max_inflight_bytes", 1, true), e)
    end

    -- 3. 160 connections announce 16 MiB bodies and send 3 MiB each at
    -- once (480 MiB in all), then trickle; two clients that wait for 100
    -- Continue announce 16 MiB more.
    local sparse = 'm s="' .. ("y"):rep(4000) .. '"\n'
    local uploads = {}
    for i = 1, 160 do
      uploads[i] = request(gw, post_head("/write", 16 * MiB), lines_of(sparse, 16 * MiB))
    end
    drive(gw, uploads, function()
      for _, r in ipairs(uploads) do if r.sent < 3 * MiB and not done(r) then return false end end
      return true
    end, 60, peak)
    bounded("with 160 bodies of 16 MiB on their way")
    for _, r in ipairs(uploads) do r.rate = 1024 end -- from now on 1 KiB a round
    local continues = {
      request(gw, post_head("/write", 16 * MiB, { Expect = "100-continue" })),
      request(gw, post_head("/api/v2/write", 16 * MiB, { Expect = "100-continue" })),
    }
    local all = {}
    for _, r in ipairs(uploads) do all[#all + 1] = r end
    for _, r in ipairs(continues) do all[#all + 1] = r end
    local n0 = #probes
    assert.is_true(drive(gw, all, function()
      if #probes < n0 + 3 then probe() end
      return all_done(continues) and #probes >= n0 + 3
    end, 30, peak), "no answer to the clients waiting for 100 Continue")
    for _, r in ipairs(continues) do
      assert.equal(503, r.status)
      assert.matches("Retry-After: 1", r.headers, 1, true)
      assert.matches("listen.max_inflight_bytes", json_error(r), 1, true)
      assert.equal(#r.q[1].s, r.sent) -- not a byte of the body was sent
    end
    for _, p in ipairs(probes) do
      assert.is_true(p.health == 200 or p.health == 503, tostring(p.health))
      assert.is_true(p.write == 204 or p.write == 503, tostring(p.write) .. " " .. tostring(p.body))
      if p.write == 503 then assert.matches("max_inflight_bytes", cjson.decode(p.body).error, 1, true) end
      assert.is_true(p.took < 2, ("/health and a write took %.2f s"):format(p.took))
    end

    -- 4. Four uploads send the rest of their bodies: refused, with a JSON
    -- error, none kept.
    local rest = {}
    for i = 1, 4 do uploads[i].rate = nil; rest[i] = uploads[i] end
    assert.is_true(drive(gw, rest, function() return all_done(rest) end, 60, peak))
    for _, r in ipairs(rest) do
      assert.equal(503, r.status, tostring(r.body))
      assert.matches("listen.max_inflight_bytes", json_error(r), 1, true)
    end
    local _, during = health(gw)
    assert.is_true(during.inflight.peak <= during.inflight.limit)
    assert.is_true(during.inflight.refused > 0)

    -- 5. The others go away mid-body: everything they held is given back.
    for _, r in ipairs(uploads) do r.sock:close() end
    assert.is_true(wait(function() local _, hh = health(gw); return hh.inflight.bytes == 0 end, 10))
    assert.equal(204, (gw.post("/write", "small v=1i")))

    local now, hwm = rss(gw.pid)
    print(("\n  memory attack: peak RSS %d MiB (VmHWM; polled VmRSS at most %d MiB; %d MiB before, %d MiB "
      .. "after), inflight peak %d MiB of %d, %d refused, %.1f s"):format(hwm / MiB, peak.rss / MiB, hwm0 / MiB,
      now / MiB, during.inflight.peak / MiB, during.inflight.limit / MiB, during.inflight.refused, proc.now() - t0))
    bounded("at the end")
  end)
end)
