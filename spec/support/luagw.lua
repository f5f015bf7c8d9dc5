-- Run the real gateway binary (gateway/luagw -c FILE) for end-to-end specs.
--
--   local luagw = require("support.luagw")
--   local gw = luagw.start{ influxd = db, database = "luagw",      -- or fake2 = f2
--                           config = { scripts = { dir = "..." } } }
--   gw.url, gw.port, gw.pid, gw.dir, gw.config_path, gw.config
--   gw.post("/write", body, headers)  --> status, body, headers (support.http)
--   gw.get("/ping")                   --> status, body, headers
--   gw:log()                          --> stdout+stderr so far
--   gw:signal("HUP")                  --> true if sent
--   gw:wait_exit(5)                   --> exit code (128+signo if killed), signal name; nil on timeout
--   gw:stop()                         --> SIGTERM, bounded wait, SIGKILL; exit code, signal name
--   gw:destroy()                      --> stop + remove the temp dir
--
-- opts:
--   config = nested table merged over the defaults (luagw.OMIT removes a key)
--   influxd = a support.influxd instance: monitoring version 1, host/port
--   database = monitoring.database (default "luagw" with influxd)
--   fake2 = a support.fake_influx2 instance: monitoring version 2, org/bucket/token
--   raw_config = YAML text written as is (listen.port is then not managed)
--   wait = false: do not wait for /ping (e.g. for a config that must fail)
--   start_timeout = seconds to wait for /ping (default 10)
--   bin (default $LUAGW_BIN or <repo>/gateway/luagw), args = extra argv,
--   env = { NAME = value|false }, cwd (default the repo root)
-- Defaults: listen 127.0.0.1:<free port>, monitoring.flushing_period 0.1,
-- log.level "info". The gateway expands ${NAME}, ${NAME:-x} and $$ in string
-- values, so write "$$" for a literal "$" followed by "$" or "{".
local socket = require("socket")
local http = require("support.http")
local ports = require("support.ports")
local proc = require("support.proc")

local M = {}
M.OMIT = setmetatable({}, { __tostring = function() return "luagw.OMIT" end })

-- The repo root, from this file's path (spec/support/luagw.lua).
local function repo_root()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/spec/support/[^/]+$") or "."
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd"); local cwd = p:read("*l"); p:close()
    dir = (dir == "." or dir == "") and cwd or (cwd .. "/" .. dir:gsub("^%./", ""))
  end
  return dir
end
M.ROOT = repo_root()

---------------------------------------------------------------------------
-- A small YAML emitter for nested tables of scalars and lists.

local function yaml_scalar(v)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
      elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
      elseif c == "\r" then return "\\r"
      else return ("\\x%02X"):format(c:byte()) end
    end) .. '"'
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "number" then
    if v ~= v then return ".nan" end
    if v == math.huge then return ".inf" elseif v == -math.huge then return "-.inf" end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
    local s = ("%.15g"):format(v)
    if tonumber(s) ~= v then s = ("%.17g"):format(v) end
    return s
  elseif t == "cdata" then
    return (tostring(v):gsub("U?LL$", ""))
  elseif v == nil then
    return "null"
  end
  error("yaml: cannot emit a " .. t)
end

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function sorted_keys(t)
  local keys = {}
  for k, v in pairs(t) do if v ~= M.OMIT then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function emit(t, indent, out)
  local pad = (" "):rep(indent)
  if is_list(t) then
    for _, v in ipairs(t) do
      if type(v) == "table" and next(v) ~= nil then
        local sub = {}
        emit(v, indent + 2, sub)
        sub[1] = pad .. "- " .. sub[1]:sub(indent + 3)
        for _, l in ipairs(sub) do out[#out + 1] = l end
      elseif type(v) == "table" then
        out[#out + 1] = pad .. "- {}"
      else
        out[#out + 1] = pad .. "- " .. yaml_scalar(v)
      end
    end
    return out
  end
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    local key = tostring(k)
    if not key:match("^[%w_%.%-]+$") then key = yaml_scalar(key) end
    if type(v) == "table" and next(v) == nil then
      out[#out + 1] = pad .. key .. ": {}"
    elseif type(v) == "table" then
      out[#out + 1] = pad .. key .. ":"
      emit(v, indent + 2, out)
    else
      out[#out + 1] = pad .. key .. ": " .. yaml_scalar(v)
    end
  end
  return out
end

-- YAML text for a nested table (keys sorted, strings double-quoted).
function M.yaml(t)
  return table.concat(emit(t, 0, {}), "\n") .. "\n"
end

local function merge(dst, src)
  for k, v in pairs(src or {}) do
    if type(v) == "table" and v ~= M.OMIT and not is_list(v) and next(v) ~= nil
       and type(dst[k]) == "table" then
      merge(dst[k], v)
    elseif v == M.OMIT then
      dst[k] = nil
    else
      dst[k] = v
    end
  end
  return dst
end
M.merge = merge

---------------------------------------------------------------------------

local Gw = {}
Gw.__index = Gw
local live = {}
local tmpdirs = {} -- removed at exit unless destroyed before

function M.defaults(port)
  return {
    listen = { address = "127.0.0.1", port = port },
    -- Without influxd/fake2 InfluxDB is a port where nothing listens, never
    -- the default 8086, where a server of `make run` might answer.
    monitoring = { flushing_period = 0.1, port = ports.free() },
    log = { level = "info" },
  }
end

function M.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Gw)
  self.bin = opts.bin or os.getenv("LUAGW_BIN") or (M.ROOT .. "/gateway/luagw")
  if not self.bin:find("/") then
    -- a bare name is looked up in PATH by execvp
  elseif not io.open(self.bin) then
    error(("luagw binary %s not found (run `make`)"):format(self.bin), 2)
  end
  self.dir = proc.tmpdir("luagw-gw")
  tmpdirs[self.dir] = true
  self.config_path = self.dir .. "/luagw.yaml"
  self.log_path = self.dir .. "/luagw.log"
  if opts.raw_config then
    self.port = opts.port
    proc.write_file(self.config_path, opts.raw_config)
  else
    local cfg = M.defaults(ports.free())
    if opts.influxd then
      merge(cfg, { monitoring = { storage_type = "influx", version = 1, host = "127.0.0.1",
        port = opts.influxd.port, database = opts.database or "luagw" } })
    elseif opts.fake2 then
      merge(cfg, { monitoring = { storage_type = "influx", version = 2, host = "127.0.0.1",
        port = opts.fake2.port, organization = opts.fake2.org, bucket = opts.fake2.bucket,
        token = opts.fake2.token } })
    end
    merge(cfg, opts.config)
    self.config = cfg
    self.port = cfg.listen and tonumber(cfg.listen.port)
    proc.write_file(self.config_path, M.yaml(cfg))
  end
  if self.port then
    local host = (self.config and self.config.listen and self.config.listen.address) or "127.0.0.1"
    if host == "0.0.0.0" or host == "" or host == "::" then host = "127.0.0.1" end
    self.url = "http://" .. host .. ":" .. self.port
  end
  local argv = { self.bin, "-c", self.config_path }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  self.argv = argv
  self.pid = proc.spawn { argv = argv, stdout = self.log_path, stderr = "stdout",
    env = opts.env, cwd = opts.cwd or M.ROOT, orphan_dir = self.dir }
  live[self] = true

  -- Bound helpers: gw.post(path, body, headers) and gw:post(...) both work.
  self.post = function(a, ...)
    if a == self then return Gw.post(self, ...) end
    return Gw.post(self, a, ...)
  end
  self.get = function(a, ...)
    if a == self then return Gw.get(self, ...) end
    return Gw.get(self, a, ...)
  end

  if opts.wait ~= false and self.url then
    local deadline = proc.now() + (opts.start_timeout or 10)
    local fail
    while true do
      if http.get(self.url .. "/ping", nil, 0.5) == 204 then break end
      if not proc.alive(self.pid) then
        local code, sig = proc.wait(self.pid, 1)
        fail = ("luagw exited (code %s%s) before answering /ping"):format(tostring(code), sig and (", SIG" .. sig) or "")
        break
      end
      if proc.now() >= deadline then fail = "luagw did not answer /ping in time"; break end
      socket.sleep(0.02)
    end
    if fail then
      proc.stop(self.pid, 5)
      live[self] = nil
      local msg = ("%s (config %s); log tail:\n%s\nconfig:\n%s"):format(fail, self.config_path,
        proc.tail(self.log_path, 30), proc.read_file(self.config_path) or "")
      proc.rmdir(self.dir); tmpdirs[self.dir] = nil
      error(msg, 2)
    end
  end
  return self
end

function Gw:post(path, body, headers, timeout)
  return http.post(self.url .. path, body, headers, timeout)
end

function Gw:get(path, headers, timeout)
  return http.get(self.url .. path, headers, timeout)
end

function Gw:request(o)
  local r = {}
  for k, v in pairs(o) do r[k] = v end
  r.url = self.url .. (o.path or "/")
  return http.request(r)
end

function Gw:log() return proc.read_file(self.log_path) or "" end

function Gw:running() return self.pid ~= nil and proc.alive(self.pid) end

function Gw:signal(name) return proc.kill(self.pid, name) end

function Gw:wait_exit(timeout)
  local code, sig = proc.wait(self.pid, timeout or 10)
  if code == nil then return nil end
  live[self] = nil
  return code, sig
end

function Gw:stop(timeout)
  local code, sig
  if self.pid then code, sig = proc.stop(self.pid, timeout or 10) end
  live[self] = nil
  return code, sig
end

function Gw:destroy()
  local code, sig = self:stop()
  if self.dir then proc.rmdir(self.dir); tmpdirs[self.dir] = nil end
  self.dir = nil
  return code, sig
end

M._sentinel = newproxy(true)
local function cleanup()
  for gw in pairs(live) do pcall(gw.destroy, gw) end
  for d in pairs(tmpdirs) do proc.rmdir(d) end
  tmpdirs = {}
end
getmetatable(M._sentinel).__gc = cleanup
M.stop_all = cleanup

return M
