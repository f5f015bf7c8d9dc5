-- A server that answers HTTP requests with raw bytes chosen by the spec, run
-- as its own LuaJIT process: for answers no real InfluxDB gives (a NUL byte
-- in a header, a status line that is not HTTP, an answer cut short), which a
-- client must survive.
--
--   local raw = require("support.raw_http")
--   local srv = raw.start{ rules = { { match = "poison", answer = "HTTP/1.1 400 ..." } },
--                          default = "HTTP/1.1 204 No Content\r\n\r\n" }
--   srv.port, srv.url
--   srv:requests()  -- { {path=, body=, answered=<index of the rule, 0 = default>}, ... }
--   srv:stop()
--
-- Every request is read whole (Content-Length bodies); the first rule whose
-- `match` is a substring of the body gives the answer, else `default`. After
-- an answer the connection is closed when the rule says close = true, and
-- kept alive otherwise. It exits by itself after `lifetime` seconds (600) or
-- when the process that started it is gone.
local first, second = ...

local function serve(dir)
  local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  package.path = here .. "/../?.lua;" .. package.path
  local socket = require("socket")
  local cjson = require("cjson")
  local mono = require("support.proc").now
  local f = assert(io.open(dir .. "/config.json", "rb"))
  local cfg = cjson.decode(f:read("*a"))
  f:close()
  local log = assert(io.open(dir .. "/requests.jsonl", "ab"))
  local server = assert(socket.bind("127.0.0.1", cfg.port))
  local started = mono()
  server:settimeout(0.5)

  local function parent_alive()
    local p = io.open("/proc/" .. cfg.parent .. "/stat")
    if not p then return false end
    local s = p:read("*a") or ""
    p:close()
    local st = s:match("%) (%a)")
    return st ~= nil and st ~= "Z" and st ~= "X"
  end

  -- One request from c: path and body, or nil when the peer went away.
  local function read_request(c)
    local line = c:receive("*l")
    if not line then return nil end
    local path = line:match("^%u+ (%S+)") or "/"
    local len = 0
    while true do
      local h = c:receive("*l")
      if not h then return nil end
      if h == "" then break end
      local v = h:lower():match("^content%-length:%s*(%d+)")
      if v then len = tonumber(v) end
    end
    local body = len > 0 and c:receive(len) or ""
    if not body then return nil end
    return path, body
  end

  while mono() - started < (cfg.lifetime or 600) and parent_alive() do
    local c = server:accept()
    if c then
      c:settimeout(5)
      while true do
        local path, body = read_request(c)
        if not path then break end
        local idx, rule = 0, { answer = cfg.default }
        for i, r in ipairs(cfg.rules) do
          if body:find(r.match, 1, true) then idx, rule = i, r; break end
        end
        log:write(cjson.encode { path = path, body = body, answered = idx }, "\n")
        log:flush()
        c:send(rule.answer)
        if rule.close then break end
      end
      c:close()
    end
  end
  server:close()
  log:close()
end

if first == "--serve" then
  serve(second)
  os.exit(0)
end

local cjson = require("cjson")
local socket = require("socket")
local ports = require("support.ports")
local proc = require("support.proc")

local M = {}
local SCRIPT = debug.getinfo(1, "S").source:sub(2)
local Srv = {}
Srv.__index = Srv

-- opts: rules = { {match=, answer=, close=} }, default (raw answer), lifetime.
function M.start(opts)
  local self = setmetatable({}, Srv)
  self.dir = proc.tmpdir("luagw-raw")
  self.port = ports.free()
  self.url = "http://127.0.0.1:" .. self.port
  proc.write_file(self.dir .. "/config.json", cjson.encode {
    port = self.port, rules = opts.rules or {}, default = opts.default or "HTTP/1.1 204 No Content\r\n\r\n",
    lifetime = opts.lifetime or 600, parent = proc.getpid() })
  proc.write_file(self.dir .. "/requests.jsonl", "")
  self.pid = proc.spawn { argv = { os.getenv("LUAJIT") or "luajit", SCRIPT, "--serve", self.dir },
    stdout = self.dir .. "/server.log", stderr = "stdout", orphan_dir = self.dir }
  local deadline = proc.now() + 10
  while true do -- listening once a connection is accepted
    local c = socket.connect("127.0.0.1", self.port)
    if c then c:close(); break end
    if not proc.alive(self.pid) or proc.now() > deadline then
      local log = proc.read_file(self.dir .. "/server.log") or ""
      self:stop()
      error("raw_http did not start: " .. log, 2)
    end
    socket.sleep(0.02)
  end
  return self
end

function Srv:requests()
  local out = {}
  for l in (proc.read_file(self.dir .. "/requests.jsonl") or ""):gmatch("([^\n]+)\n") do
    out[#out + 1] = cjson.decode(l)
  end
  return out
end

function Srv:stop()
  if self.pid then proc.stop(self.pid, 5) end
  self.pid = nil
  if self.dir then proc.rmdir(self.dir) end
  self.dir = nil
end

return M
