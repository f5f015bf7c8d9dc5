-- Bounded polling for specs.
--   local wait = require("support.wait")
--   local v = wait.wait_until(function() return #f2:lines() >= 3 end, 5)
--   assert(v, "lines did not arrive")
--   -- or: require("support.wait")(fn, timeout)
-- fn is called until it returns a truthy value (returned) or timeout seconds
-- (default 5) pass: then returns nil, "timed out after N s". Errors raised by
-- fn propagate.
local socket = require("socket")
local proc = require("support.proc")

local M = {}

function M.wait_until(fn, timeout, interval)
  timeout = timeout or 5
  interval = interval or 0.02
  local deadline = proc.now() + timeout
  while true do
    local v = fn()
    if v then return v end
    if proc.now() >= deadline then
      return nil, ("timed out after %g s"):format(timeout)
    end
    socket.sleep(interval)
  end
end

M.sleep = socket.sleep
M.now = proc.now

return setmetatable(M, { __call = function(_, ...) return M.wait_until(...) end })
