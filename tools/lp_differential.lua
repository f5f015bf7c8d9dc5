-- tools/lp_differential.lua — a large differential search of line protocol
-- against the real influxd, outside the test suite (which runs a small one:
-- spec/lineproto_influx_spec.lua). Generated backslash-heavy lines go
-- straight to one influxd and through the real luagw binary to another; the
-- stored series, field types and rows are compared line by line, and each
-- line against fuzz/influx_model.c (spec/support/lpdiff.lua has the rules).
--
--   make all build/influx_model.so
--   luajit tools/lp_differential.lua [lines] [seed] [shown]
--   LUAGW_BIN=/path/to/other/luagw luajit tools/lp_differential.lua 40000
--
-- Prints the counts per class of line, the mismatches (the first `shown` of
-- each kind, default 20), and the lines that kill influxd 1.6.7 (never sent to it
-- directly): the first few of them are then sent, one at a time, to a
-- spare influxd to show that they do.
local root = arg[0]:match("^(.*)/tools/[^/]+$") or "."
package.path = root .. "/spec/?.lua;" .. package.path

local influxd = require("support.influxd")
local lpdiff = require("support.lpdiff")
local proc = require("support.proc")
local wait = require("support.wait")

local n, seed, shown = tonumber(arg[1] or 40000), tonumber(arg[2] or 1), tonumber(arg[3] or 20)

-- Does line kill a fresh influxd? Returns true, false, or nil when it
-- did not start.
local function kills(line)
  local db = influxd.start {}
  db:create_database("d")
  local st = db:write(line .. "\n", "d", { precision = "ns" })
  local dead = wait(function() return not db:running() end, 2) ~= nil
  db:destroy()
  return dead, st
end

local t0 = proc.now()
local bodies = lpdiff.corpus(n, seed)
local run = lpdiff.start { deliver_timeout = 30 }
local ok, err = pcall(function()
  local report = run:check(bodies)
  print(("lp_differential: %d lines (seed %d) in %.0f s, luagw %s"):format(n, seed,
    proc.now() - t0, os.getenv("LUAGW_BIN") or "gateway/luagw"))
  print(lpdiff.summary(report, shown))
  print(("influxd behind luagw: %s"):format(run.behind:running() and "alive" or "DEAD"))
  print(("lines that kill influxd (model): %d"):format(#report.crash_lines))
  for i, l in ipairs(report.crash_lines) do
    if i > 3 then break end
    local dead, st = kills(l)
    print(("  %q: influxd %s"):format(l, dead and "died" or ("answered " .. tostring(st))))
  end
end)
run:stop()
if not ok then
  io.stderr:write("lp_differential: ", tostring(err), "\n")
  os.exit(1)
end
