-- Free loopback TCP ports: bind 127.0.0.1:0, read the port, close.
--   local ports = require("support.ports")
--   local p = ports.free()          -- one port
--   local a, b = ports.free(2)      -- several distinct ports
local socket = require("socket")

local M = {}
local handed = {} -- ports already given out by this process

local function one()
  for _ = 1, 50 do
    local s = assert(socket.tcp())
    s:setoption("reuseaddr", true)
    local ok, err = s:bind("127.0.0.1", 0)
    if not ok then s:close(); error("ports.free: bind failed: " .. tostring(err)) end
    local _, port = s:getsockname()
    s:close()
    port = tonumber(port)
    if port and not handed[port] then handed[port] = true; return port end
  end
  error("ports.free: no free port found")
end

function M.free(n)
  n = n or 1
  local t = {}
  for i = 1, n do t[i] = one() end
  return unpack(t)
end

-- True if something accepts connections on 127.0.0.1:port.
function M.listening(port, host)
  local s = socket.tcp()
  s:settimeout(0.5)
  local ok = s:connect(host or "127.0.0.1", port)
  s:close()
  return ok ~= nil
end

return M
