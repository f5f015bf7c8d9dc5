-- One HTTP/1.1 keep-alive connection, for specs that send several requests
-- on the same connection, as real clients do (support.http opens one per
-- request).
--
--   local keepalive = require("support.keepalive")
--   local c = keepalive.open(gw.port)             -- 127.0.0.1
--   local status, body, headers = c:post("/write", body, { ["Content-Type"] = "application/json" })
--   c:request("GET", "/ping")                     --> the same three
--   c:close()
--
-- Answers are read by their Content-Length (or chunked). A failure (the
-- server closed the connection, a timeout) raises an error naming the
-- request, so a spec sees at once that the connection did not survive.
local socket = require("socket")

local M = {}
local Conn = {}
Conn.__index = Conn

function M.open(port, host, timeout)
  local s = assert(socket.tcp())
  s:settimeout(timeout or 10)
  assert(s:connect(host or "127.0.0.1", port))
  return setmetatable({ sock = s, n = 0 }, Conn)
end

local function recv(self, pattern, what)
  local v, err = self.sock:receive(pattern)
  if not v then
    error(("keep-alive request %d (%s): %s"):format(self.n, what, tostring(err)), 3)
  end
  return v
end

local function read_body(self, headers, what)
  if headers["content-length"] then
    local n = tonumber(headers["content-length"])
    return n > 0 and recv(self, n, what) or ""
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts = {}
    while true do
      local n = tonumber(recv(self, "*l", what):match("^%x+"), 16)
      if n == 0 then break end
      parts[#parts + 1] = recv(self, n, what)
      recv(self, "*l", what)
    end
    repeat local l = recv(self, "*l", what) until l == ""
    return table.concat(parts)
  end
  return ""
end

-- Send one request and read its answer: status, body, headers (lower case).
function Conn:request(method, path, body, headers)
  self.n = self.n + 1
  local what = method .. " " .. path
  local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. tostring(v) end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  local ok, err = self.sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  if not ok then error(("keep-alive request %d (%s): %s"):format(self.n, what, err), 2) end
  local status = tonumber(recv(self, "*l", what):match("^HTTP/1%.1 (%d%d%d)"))
  local h = {}
  while true do
    local l = recv(self, "*l", what)
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  local b = (status == 204 or status == 304 or method == "HEAD") and "" or read_body(self, h, what)
  if (h.connection or ""):lower() == "close" then
    error(("keep-alive request %d (%s): the server closed the connection (status %s)"):format(self.n, what,
      tostring(status)), 2)
  end
  return status, b, h
end

function Conn:post(path, body, headers)
  return self:request("POST", path, body, headers)
end

function Conn:close()
  self.sock:close()
end

return M
