-- make bench-delivery: what a bad point costs the points behind it, measured
-- against the real gateway/luagw and a real influxd on loopback
-- (docs/delivery.md, "Bounds"). Prints one line per case; takes about a
-- minute. Timings vary with the machine's load: run it a few times.
package.path = "spec/?.lua;" .. package.path
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local ports = require("support.ports")
local proc = require("support.proc")
local cjson = require("cjson")
local socket = require("socket")

local function ts(r, i) return ("%d%09d"):format(1700000000 + r, i) end
local function now() return socket.gettime() end

local db = influxd.start {}
db:create_database("luagw")

local function health(gw) return cjson.decode((select(2, gw:get("/health")))) end
local function write_requests()
  local _, body = require("support.http").get(db.url .. "/debug/vars")
  return cjson.decode(body:match('"httpd:[^"]*":%s*(%b{})')).values.writeReq
end

-- Poll until cond() holds; the time it took.
local function time_until(cond, limit)
  local t0 = now()
  while not cond() do
    if now() - t0 > limit then return nil end
    socket.sleep(0.002)
  end
  return now() - t0
end

local function report(name, fmt, ...)
  io.write(("%-58s "):format(name), fmt:format(...), "\n")
  io.flush()
end

-- A batch of n points with one point influxd answers 500 for (100 tags),
-- sent whole: the time from the request to every good point stored.
local function poison(n, spooled)
  local dir = proc.tmpdir("luagw-bench-spool")
  local meas = ("poison%d%s"):format(n, spooled and "s" or "")
  local gw = luagw.start { influxd = db, config = { spool = spooled and { dir = dir } or nil,
    monitoring = { batch_size = n, flushing_period = 0.001, buffer_limit = 10 * n } } }
  local tags = {}
  for i = 1, 99 do tags[i] = ("t%02d=x"):format(i) end
  local lines = {}
  for i = 1, n do lines[i] = ("%s,r=1 v=%di %s"):format(meas, i, ts(1, i)) end
  lines[math.floor(n / 3)] = ("%s,r=1,%s v=1i %s"):format(meas, table.concat(tags, ","), ts(1, 0))
  local req0 = write_requests()
  local t0 = now()
  assert(gw:post("/write", table.concat(lines, "\n")) == 204)
  local done = time_until(function()
    local h = health(gw)
    return h.points.written == n - 1 and h.dead_letter.points == 1
  end, 30)
  report(("poison point in a batch of %d%s"):format(n, spooled and ", spool" or ""),
    done and "good points stored %.3f s after the request; %d write requests"
      or "good points not stored after %.0f s; %d write requests", now() - t0, write_requests() - req0)
  gw:destroy()
  proc.rmdir(dir)
end

-- A body of refusals: pre written first, then lines in one request, until
-- InfluxDB has refused dropped points.
local function refusals(name, pre, lines, dropped)
  assert(db:write(table.concat(pre, "\n"), "luagw") == 204)
  local gw = luagw.start { influxd = db, config = { monitoring = { batch_size = 5000, flushing_period = 0.001 } } }
  local req0 = write_requests()
  assert(gw:post("/write", table.concat(lines, "\n")) == 204)
  local took = time_until(function() return health(gw).points.dropped == dropped end, 300)
  report(name, "settled in %.3f s; %d write requests", took or 1 / 0, write_requests() - req0)
  gw:destroy()
end

-- 9000 points alternating a field type conflict and a good point.
local function alternating()
  local lines = {}
  for i = 1, 9000 do
    lines[i] = i % 2 == 1 and ('alt,r=1 v="s" %s'):format(ts(1, i)) or ("alt,r=1 v=%di %s"):format(i, ts(1, i))
  end
  refusals("9000 points alternating a type conflict", { "alt,r=0 v=1i " .. ts(0, 1) }, lines, 4500)
end

-- 5000 points, 2500 of them each a conflict of its own kind (budget 84).
local function unrelated()
  local pre, lines = {}, {}
  for i = 1, 2500 do pre[i] = ("many f%d=1i %s"):format(i, ts(0, 1)) end
  for i = 1, 5000 do
    lines[i] = i % 2 == 1 and ('many,r=1 f%d="s" %s'):format((i + 1) / 2, ts(1, i)) or ("many,r=1 g=%di %s"):format(i, ts(1, i))
  end
  refusals("5000 points, 2500 unrelated conflicts (budget 84)", pre, lines, 2500)
end

-- InfluxDB unreachable; requests of 16 points with 60 KB strings until 503.
local function bytes_bound()
  local gw = luagw.start { config = { monitoring = { host = "127.0.0.1", port = ports.free(), database = "x",
    retry_max = 1, shutdown_timeout = 0 } } }
  local function rss()
    return tonumber((proc.read_file("/proc/" .. gw.pid .. "/status") or ""):match("VmRSS:%s*(%d+) kB")) / 1024
  end
  local r0, peak, value = rss(), 0, ("x"):rep(60000)
  for r = 1, 400 do
    local lines = {}
    for i = 1, 16 do lines[i] = ('big,r=%d s="%s" %s'):format(r, value, ts(r, i)) end
    local st = gw:post("/write", table.concat(lines, "\n"))
    peak = math.max(peak, rss())
    if st == 503 then break end
  end
  report("InfluxDB unreachable, 60 KB strings, default limits", "503 at %.1f MiB held; RSS %.0f MiB -> %.0f MiB",
    (health(gw).buffer.bytes or 0) / 1048576, r0, peak)
  gw:destroy()
end

poison(5000)
poison(5000, true)
poison(50000)
alternating()
unrelated()
bytes_bound()
db:destroy()
