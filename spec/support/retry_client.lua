-- A steady InfluxDB 1.x writer for spec/scaling_spec.lua, run as a process
-- of its own so that several write at once:
--
--   luajit spec/support/retry_client.lua port=P client=1 points=100 interval=0.02 \
--          out=FILE stop=FILE retry=1 [host=127.0.0.1] [max_seconds=120]
--
-- Every `interval` seconds it POSTs a body of `points` points to
-- /write?db=luagw on one keep-alive connection (reopened after an error):
--   scale,client=C seq=<n>i <ts>   n = 0, 1, 2, ... over all its bodies,
-- ts unique per (client, n): seconds 1700000000 + 1000*C, nanoseconds n.
--
-- retry=1 retries a body the way the InfluxDB client libraries do: after a
-- connection error, 429 or 5xx it waits (Retry-After when given, else
-- exponential backoff from 50 ms to 1 s with jitter) and sends the same body
-- again, for up to 30 s; 204 acknowledges it; any other status fails it.
-- retry=0 sends each body once.
--
-- It appends one line per event to `out` (flushed at once, so the spec can
-- follow): "ack B", "retry B <why>", "fail B <why>"; and at the end
-- "done bodies=N acked=N retries=N failed=N". It stops when the file `stop`
-- exists (after finishing the body in hand), or after max_seconds.
local socket = require("socket")

local o = { host = "127.0.0.1", max_seconds = "120", retry = "1" }
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  assert(k, "key=value expected: " .. a)
  o[k] = v
end
local port, client, npoints = assert(tonumber(o.port)), assert(tonumber(o.client)), assert(tonumber(o.points))
local interval, retry = assert(tonumber(o.interval)), o.retry == "1"
local out = assert(io.open(assert(o.out), "a"))
local PATH = "/write?db=luagw&precision=ns"
local RETRY_FOR, MIN_DELAY, MAX_DELAY = 30, 0.05, 1

local function note(s)
  out:write(s, "\n")
  out:flush()
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local conn
local function close()
  if conn then conn:close() end
  conn = nil
end

-- One request on the keep-alive connection: status, Retry-After; or nil, why.
local function post(body)
  if not conn then
    conn = socket.tcp()
    conn:settimeout(10)
    local ok, err = conn:connect(o.host, port)
    if not ok then close(); return nil, "connect " .. tostring(err) end
    conn:setoption("tcp-nodelay", true)
  end
  local ok, err = conn:send(("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
    .. "Content-Length: %d\r\n\r\n"):format(PATH, o.host, port, #body) .. body)
  if not ok then close(); return nil, "send " .. tostring(err) end
  local line
  line, err = conn:receive("*l")
  if not line then close(); return nil, "receive " .. tostring(err) end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local len, closing, retry_after
  while true do
    local h = conn:receive("*l")
    if not h then close(); return nil, "headers cut" end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    k = k and k:lower()
    if k == "content-length" then len = tonumber(v)
    elseif k == "connection" and v:lower():find("close", 1, true) then closing = true
    elseif k == "retry-after" then retry_after = tonumber(v)
    elseif k == "transfer-encoding" then close(); return nil, "chunked answer" end
  end
  if status == 204 then len = 0 end -- no body, whatever the headers say
  if len and len > 0 and not conn:receive(len) then close(); return nil, "body cut" end
  if not len then conn:receive("*a"); closing = true end
  if closing then close() end
  if not status then return nil, "bad status line " .. line end
  return status, retry_after
end

local function body_of(b)
  local lines, base = {}, b * npoints
  local sec = 1700000000 + 1000 * client
  for i = 0, npoints - 1 do
    lines[#lines + 1] = ("scale,client=%d seq=%di %d%09d"):format(client, base + i, sec, base + i)
  end
  return table.concat(lines, "\n")
end

-- Send body b until it is acknowledged (or, with retry=0, once).
local counts = { bodies = 0, acked = 0, retries = 0, failed = 0 }
local function send(b)
  local body, attempt, give_up = body_of(b), 0, socket.gettime() + RETRY_FOR
  while true do
    local status, extra = post(body)
    if status == 204 then
      counts.acked = counts.acked + 1
      return note("ack " .. b)
    end
    local why = status and ("status " .. status) or extra
    local retriable = not status or status == 429 or status >= 500
    if not retry or not retriable or socket.gettime() >= give_up then
      counts.failed = counts.failed + 1
      return note("fail " .. b .. " " .. why)
    end
    counts.retries = counts.retries + 1
    note("retry " .. b .. " " .. why)
    local delay = status and extra or math.min(MAX_DELAY, MIN_DELAY * 2 ^ attempt) * (0.5 + math.random())
    attempt = attempt + 1
    socket.sleep(delay)
  end
end

math.randomseed(client * 7919 + os.time())
local start = socket.gettime()
local b = 0
while not exists(o.stop) and socket.gettime() - start < tonumber(o.max_seconds) do
  local due = start + b * interval
  local now = socket.gettime()
  if due > now then socket.sleep(due - now) end
  counts.bodies = counts.bodies + 1
  send(b)
  b = b + 1
end
close()
note(("done bodies=%d acked=%d retries=%d failed=%d"):format(counts.bodies, counts.acked, counts.retries,
  counts.failed))
out:close()
