-- Who may connect (gateway/conns.c, the acceptor in gateway/http.c):
-- listen.max_connections enforced before libmicrohttpd sees a socket,
-- listen.max_connections_per_client, and listen.probe_connections kept for
-- /ping, /health and /metrics. The real binary under bursts of real TCP
-- connections on loopback; no InfluxDB behind it.
--
-- libmicrohttpd 0.9.75 hangs a worker for good when its own connection
-- limit is reached (a mutex left locked): the bursts below wedged both
-- workers, /health went unanswered and SIGTERM no longer ended luagw.
local cjson = require("cjson")
local socket = require("socket")
local luagw = require("support.luagw")
local wait = require("support.wait")

local TOKEN = "burst-token"

local function start(listen)
  listen.tokens = listen.tokens or { TOKEN }
  return luagw.start { config = { listen = listen, log = { level = "error" },
                                  monitoring = { shutdown_timeout = 0 } } }
end

-- A raw TCP connection to the gateway, from src (a loopback address) if given.
local function connect(gw, src)
  local c = assert(socket.tcp())
  if src then assert(c:bind(src, 0)) end
  c:settimeout(2)
  assert(c:connect("127.0.0.1", gw.port))
  return c
end

local function burst(gw, n, src)
  local t = {}
  for i = 1, n do t[i] = connect(gw, src) end
  return t
end

local function close_all(t)
  for _, c in ipairs(t) do c:close() end
end

-- True when the server closes c within timeout seconds.
local function closed_by_server(c, timeout)
  c:settimeout(timeout)
  local _, err = c:receive("*a")
  return err == nil or err == "closed"
end

-- One /metrics sample (nil when /metrics does not answer within 2 s).
local function metric(gw, name)
  local st, body = gw:get("/metrics", nil, 2)
  if st ~= 200 then return nil end
  return tonumber(body:match("\n" .. name:gsub("[%p]", "%%%0") .. " (%S+)"))
end

-- Wait until the acceptor has taken n more connections than before (each
-- look at /metrics is a connection of its own, counted too).
local function wait_accepted(gw, before, n)
  local looks = 0
  return wait(function()
    looks = looks + 1
    local v = metric(gw, "luagw_http_connections_accepted_total")
    return v and v >= before + n + looks
  end, 15)
end

-- GET /ping on c: the status line and whether the server closes after it.
local function ping(c)
  c:send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
  local line, closing = c:receive("*l"), false
  repeat
    local h = c:receive("*l")
    closing = closing or (h and h:lower() == "connection: close")
  until not h or h == ""
  return line, closing
end

-- An ordinary connection (not probe-only), once one is free: a connection
-- given back may take a moment to be counted out.
local function ordinary(gw)
  return wait(function()
    local c = connect(gw)
    local line, closing = ping(c)
    if line and line:match("^HTTP/1.1 204") and not closing then return c end
    c:close()
  end, 5)
end

local function health_answered(gw)
  local st = gw:get("/health", nil, 2)
  return st == 200 or st == 503, tostring(st)
end

describe("connection bursts", function()
  it("repeated bursts of idle connections beyond listen.max_connections leave /health, writes and SIGTERM working", function()
    local gw = start { threads = 2, max_connections = 64, max_connections_per_client = 0 }
    finally(function() gw:destroy() end)
    for _ = 1, 3 do
      local before = metric(gw, "luagw_http_connections_accepted_total")
      assert.is_not_nil(before, "no /metrics before the burst")
      local held = burst(gw, 150)
      assert.is_truthy(wait_accepted(gw, before, 150), "the burst was not taken in")
      -- while they are held, a probe gets one of the places kept for it
      assert.is_true(health_answered(gw))
      close_all(held)
    end
    -- Every connection the clients closed was given back (none left in
    -- CLOSE-WAIT, counted as open): only the one asking remains.
    assert.is_truthy(wait(function() return metric(gw, "luagw_http_connections") == 1 end, 10),
      "connections still counted open after the clients closed them")
    local st, body = gw:get("/health", nil, 2)
    assert.equal(200, st, body)
    assert.equal(204, (gw:post("/write", "burst v=1", { Authorization = "Bearer " .. TOKEN }, 2)))
    assert.equal(0, (gw:stop(10)), "SIGTERM did not end luagw")
  end)

  it("a flood of slow clients holding every connection leaves /health answerable", function()
    -- 200 clients trickle a header line each round (the issue's 200 at
    -- max_connections 200), 20 more than there is room for.
    local gw = start { threads = 2, max_connections = 200 }
    finally(function() gw:destroy() end)
    local before = metric(gw, "luagw_http_connections_accepted_total")
    local slow = burst(gw, 220, "127.0.0.2")
    for _, c in ipairs(slow) do c:send("POST /write HTTP/1.1\r\nHost: x\r\n") end
    assert.is_truthy(wait_accepted(gw, before, 220), "the flood was not taken in")
    -- Rounds of a header line from each, for longer than a probe place is
    -- held (2 s): /health answers in every round.
    local t0 = socket.gettime()
    local round = 0
    while socket.gettime() - t0 < 3 do
      round = round + 1
      for _, c in ipairs(slow) do c:send(("X-Slow-%d: y\r\n"):format(round)) end
      assert.is_true(health_answered(gw), "round " .. round)
      socket.sleep(0.25)
    end
    -- The 20 beyond the limit were closed: shut down after their 2 s, or
    -- to make room for the probes.
    local m = metric(gw, "luagw_http_connections")
    assert.is_true(m <= 200 + 16, tostring(m))
    close_all(slow)
    assert.equal(0, (gw:stop(10)))
  end)
end)

describe("connection limits", function()
  it("listen.max_connections_per_client: one client's connections beyond it are closed at accept; others are served", function()
    local gw = start { max_connections = 64, max_connections_per_client = 8 }
    finally(function() gw:destroy() end)
    local mine = burst(gw, 8, "127.0.0.2")
    local extra = connect(gw, "127.0.0.2")
    assert.is_true(closed_by_server(extra, 2))
    extra:close()
    -- another address is served meanwhile, and the first eight still are
    assert.equal(204, (gw:post("/write", "m v=1", { Authorization = "Bearer " .. TOKEN }, 2)))
    assert.matches("^HTTP/1.1 204", (ping(mine[1])))
    assert.equal(1, metric(gw, 'luagw_http_connections_closed_total{reason="refused_per_client"}'))
    local _, body = gw:get("/health")
    assert.equal(1, cjson.decode(body).connections.refused_per_client)
    -- a freed one is taken again
    mine[2]:close()
    assert.is_truthy(wait(function()
      local c = connect(gw, "127.0.0.2")
      local line = ping(c)
      c:close()
      return line and line:match("^HTTP/1.1 204")
    end, 5))
    close_all(mine)
  end)

  it("beyond listen.max_connections a connection may ask only the probes, and is closed soon", function()
    local gw = start { threads = 1, max_connections = 2, probe_connections = 2, max_connections_per_client = 0 }
    finally(function() gw:destroy() end)
    local a, b = assert(ordinary(gw)), assert(ordinary(gw))
    -- a third: ingest gets a 503 that says why, and the connection closes
    local c = connect(gw)
    c:send("POST /write HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. TOKEN .. "\r\nContent-Length: 5\r\n\r\nm v=1")
    local answer = c:receive("*a")
    assert.matches("^HTTP/1.1 503", answer)
    assert.matches("\r\nConnection: close\r\n", answer)
    assert.matches("listen.max_connections = 2", cjson.decode(answer:match("\r\n\r\n(.*)$")).error, 1, true)
    c:close()
    -- the probes are answered on such a connection, then it closes
    for _, path in ipairs { "/ping", "/health", "/metrics" } do
      local p = connect(gw)
      p:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local got = p:receive("*a")
      assert.is_truthy(got and got:match("^HTTP/1.1 20[04]"), path)
      p:close()
    end
    -- one that asks nothing is closed after its time
    local idle = connect(gw)
    assert.is_true(closed_by_server(idle, 6))
    idle:close()
    assert.is_true(metric(gw, 'luagw_http_connections_closed_total{reason="expired"}') >= 1)
    -- the two ordinary connections serve anything all along
    a:send("POST /write HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. TOKEN .. "\r\nContent-Length: 5\r\n\r\nm v=1")
    assert.matches("^HTTP/1.1 204", a:receive("*l"))
    a:close()
    b:close()
  end)

  it("probe places taken by idle connections go to the next probe", function()
    local gw = start { threads = 1, max_connections = 2, probe_connections = 2, max_connections_per_client = 0 }
    finally(function() gw:destroy() end)
    local before = metric(gw, "luagw_http_connections_accepted_total")
    local held = burst(gw, 6) -- 2 ordinary, 2 probe places, 2 more push out the oldest idle ones
    assert.is_truthy(wait_accepted(gw, before, 6))
    local st = gw:get("/ping", nil, 2)
    assert.equal(204, st)
    assert.is_true(metric(gw, 'luagw_http_connections_closed_total{reason="evicted"}') >= 2)
    close_all(held)
  end)
end)

describe("the connection account (gateway/conns.c, through FFI)", function()
  local core = require("support.core")
  local ffi, lib = core.ffi, core.lib
  pcall(ffi.cdef, [[
  typedef struct { int max, per_client, probes; double probe_seconds; int max_fd; } gw_conns_limits_t;
  typedef struct {
    uint64_t accepted, open, probes, refused, refused_client, expired, evicted;
  } gw_conns_stats_t;
  typedef struct gw_conns gw_conns_t;
  gw_conns_t *gw_conns_create(const gw_conns_limits_t *lim);
  void gw_conns_destroy(gw_conns_t *cs);
  int gw_conns_admit(gw_conns_t *cs, int fd, const void *addr, double now, const char **why);
  int gw_conns_started(gw_conns_t *cs, int fd);
  void gw_conns_closed(gw_conns_t *cs, int fd);
  void gw_conns_stats(gw_conns_t *cs, gw_conns_stats_t *out);
  struct luagw_spec_sockaddr_in { uint16_t family; uint16_t port; uint8_t addr[4]; uint8_t zero[8]; };
  struct luagw_spec_sockaddr_in6 { uint16_t family; uint16_t port; uint32_t flow; uint8_t addr[16]; uint32_t scope; };
  ]])

  local function v4(a, b)
    local s = ffi.new("struct luagw_spec_sockaddr_in")
    s.family, s.addr[0], s.addr[1], s.addr[2], s.addr[3] = 2, 10, 0, a, b
    return s
  end

  it("counts each client's connections, opened and closed in any order, like a model does", function()
    -- Sockets here are only numbers: no probe places, so none is touched.
    local cs = ffi.gc(lib.gw_conns_create(ffi.new("gw_conns_limits_t", { 300, 3, 0, 2, 4096 })),
      lib.gw_conns_destroy)
    local why = ffi.new("const char *[1]")
    local open, per, total = {}, {}, 0 -- fd -> client; client -> count
    math.randomseed(7)
    for _ = 1, 20000 do
      local fd = math.random(3, 600)
      if open[fd] then
        lib.gw_conns_closed(cs, fd)
        per[open[fd]] = per[open[fd]] - 1
        open[fd], total = nil, total - 1
      else
        local client = math.random(1, 150)
        local want = (per[client] or 0) >= 3 and 0 or total >= 300 and 0 or 1
        local got = lib.gw_conns_admit(cs, fd, v4(math.floor(client / 256), client % 256), 0, why)
        assert.equal(want, got, ("client %d with %d"):format(client, per[client] or 0))
        if got == 1 then
          assert.equal(1, lib.gw_conns_started(cs, fd))
          open[fd], per[client], total = client, (per[client] or 0) + 1, total + 1
        end
      end
    end
    local st = ffi.new("gw_conns_stats_t")
    lib.gw_conns_stats(cs, st)
    assert.equal(total, tonumber(st.open))
  end)

  it("counts an IPv6 /64 as one client, an IPv4-mapped address as its IPv4 one", function()
    local cs = ffi.gc(lib.gw_conns_create(ffi.new("gw_conns_limits_t", { 100, 2, 0, 2, 64 })),
      lib.gw_conns_destroy)
    local why = ffi.new("const char *[1]")
    local function v6(bytes)
      local s = ffi.new("struct luagw_spec_sockaddr_in6")
      s.family = 10
      for i, b in ipairs(bytes) do s.addr[i - 1] = b end
      return s
    end
    local net = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1 }
    local function host(h) local t = { unpack(net) }; for i = 9, 15 do t[i] = 0 end; t[16] = h; return v6(t) end
    assert.equal(1, lib.gw_conns_admit(cs, 10, host(1), 0, why))
    assert.equal(1, lib.gw_conns_admit(cs, 11, host(2), 0, why))
    assert.equal(0, lib.gw_conns_admit(cs, 12, host(3), 0, why)) -- the same /64
    assert.equal("listen.max_connections_per_client", ffi.string(why[0]))
    local mapped = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 9 }
    assert.equal(1, lib.gw_conns_admit(cs, 13, v6(mapped), 0, why))
    assert.equal(1, lib.gw_conns_admit(cs, 14, v4(0, 9), 0, why))
    assert.equal(0, lib.gw_conns_admit(cs, 15, v4(0, 9), 0, why)) -- 10.0.0.9 both times
    lib.gw_conns_closed(cs, 13)
    assert.equal(1, lib.gw_conns_admit(cs, 15, v4(0, 9), 0, why))
  end)
end)
