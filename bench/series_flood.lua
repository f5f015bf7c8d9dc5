-- bench/series_flood.lua — does a flood of new series names slow ingest?
-- (the per-series table of gateway/metrics.c). Loopback only, about 20 s.
--
--   luajit bench/series_flood.lua            (after make; LUAGW_BIN to choose)
--
-- Starts luagw without an InfluxDB (accepted points wait in the buffer),
-- times 300,000-point line-protocol bodies (best of 3) before and after one
-- body of 1,100 new names, and prints one line per body.
package.path = "spec/?.lua;" .. package.path
local socket = require("socket")
local luagw = require("support.luagw")

local gw = luagw.start { config = { log = { level = "error" },
  monitoring = { shutdown_timeout = 0, buffer_limit = 100000000 } } }

local function body(name_of)
  local t = {}
  for i = 1, 300000 do t[i] = ("%s v=%di"):format(name_of(i), i) end
  return table.concat(t, "\n")
end

local function best_of_3(b)
  local best = math.huge
  for _ = 1, 3 do
    local t0 = socket.gettime()
    local st = gw:post("/write", b, nil, 60)
    assert(st == 204, "status " .. tostring(st))
    best = math.min(best, socket.gettime() - t0)
  end
  return best
end

local bodies = {
  { "one series", body(function() return "cpu" end) },
  { "40 series, changing at every point", body(function(i) return "s" .. i % 40 end) },
}
local results = {}
for _, b in ipairs(bodies) do results[#results + 1] = { b[1] .. ", before", best_of_3(b[2]) } end
local junk = {}
for i = 1, 1100 do junk[i] = ("junk%d v=1i"):format(i) end
assert(gw:post("/write", table.concat(junk, "\n")) == 204)
for _, b in ipairs(bodies) do results[#results + 1] = { b[1] .. ", after", best_of_3(b[2]) } end
results[#results + 1] = { "40 new series, changing at every point, after",
  best_of_3(body(function(i) return "t" .. i % 40 end)) }
results[#results + 1] = { "300,000 new names, after", best_of_3(body(function(i) return "u" .. i end)) }
gw:destroy()
for _, r in ipairs(results) do print(("%-48s %.3f s"):format(r[1], r[2])) end
