-- A fake InfluxDB 2.x write endpoint, run as its own LuaJIT process.
--
-- Debian's InfluxDB 1.6 has no /api/v2/write, so version-2 output is tested
-- against this server, which checks what a real 2.x server checks:
--   * only POST /api/v2/write (else 404 {"code":"not found",...}); GET/HEAD
--     /ping -> 204, GET /health -> 200 JSON (as 2.x does)
--   * Authorization: Token <token> (401 unauthorized access), checked first
--   * org or orgID (400 if neither, 404 if unknown), bucket (404 if missing
--     or unknown: the bucket, and those of opts.buckets), precision
--     ns|us|ms|s if present (400 otherwise)
--   * Content-Encoding gzip (400 on a bad stream), identity, else 415
--   * line protocol parsed; any bad line rejects the whole request (400,
--     nothing stored); field type conflicts drop those points only (422,
--     the rest stored), like 2.x's partial writes
--   * 204 on success; keep-alive, Expect: 100-continue, chunked bodies
-- It exits by itself after its lifetime (default 600 s) or when the process
-- that started it is gone.
--
-- From a spec:
--   local fake = require("support.fake_influx2")
--   local f2 = fake.start{ org = "luna", bucket = "b", token = "secret" }
--   f2.url, f2.port, f2.pid, f2.org_id, f2.dir
--   f2:lines()      -- accepted line-protocol lines, in arrival order
--   f2:lines(b)     -- the same for bucket b (one of opts.buckets)
--   f2:points()     -- the same, parsed: { measurement=, tags={}, fields={k={type=,value=}}, time= }
--   f2:requests()   -- { {method=, path=, query={}, authorization=, content_encoding=,
--                   --    content_type=, content_length=, status=, response=, lines=, time=} }
--   f2:fail_next(n, status, body, retry_after) -- next n writes answer status
--   f2:clear()      -- forget lines and requests
--   f2:stop()       -- SIGTERM by PID (bounded), rm -rf its temp dir
local first, second = ...

local M = {}

---------------------------------------------------------------------------
-- Line protocol (shared by the server and the spec side).

local INT_MAX, UINT_MAX = "9223372036854775807", "18446744073709551615"
local function le(a, b) return #a < #b or (#a == #b and a <= b) end
local function int_ok(s) -- s: -?digits
  local neg = s:sub(1, 1) == "-"
  local d = s:gsub("^-", ""):gsub("^0+(%d)", "%1")
  return le(d, neg and "9223372036854775808" or INT_MAX)
end

local function unescape(s, chars)
  return (s:gsub("\\([" .. chars .. "])", "%1"))
end

-- Scan from i to the first unescaped char in `stops`; returns text, index.
local function scan(s, i, stops)
  local j = i
  local n = #s
  while j <= n do
    local c = s:sub(j, j)
    if c == "\\" and j < n then j = j + 2
    elseif stops:find(c, 1, true) then break
    else j = j + 1 end
  end
  return s:sub(i, j - 1), j
end

-- Parse one line. Returns a point table, or nil and a reason.
function M.parse_line(line)
  local n = #line
  local m, i = scan(line, 1, ", ")
  if m == "" then return nil, "missing measurement" end
  local p = { measurement = unescape(m, ", "), tags = {}, fields = {}, field_order = {} }
  while line:sub(i, i) == "," do
    local k, v
    k, i = scan(line, i + 1, "=, ")
    if line:sub(i, i) ~= "=" then return nil, "missing tag value" end
    if k == "" then return nil, "missing tag key" end
    v, i = scan(line, i + 1, ", =")
    if v == "" or line:sub(i, i) == "=" then return nil, "missing tag value" end
    p.tags[unescape(k, ",= ")] = unescape(v, ",= ")
  end
  if i > n then return nil, "missing fields" end
  while line:sub(i, i) == " " do i = i + 1 end
  if i > n then return nil, "missing fields" end
  while true do
    local k
    k, i = scan(line, i, "=, ")
    if line:sub(i, i) ~= "=" then return nil, "missing fields" end
    if k == "" then return nil, "missing field key" end
    k = unescape(k, ",= ")
    i = i + 1
    local f
    if line:sub(i, i) == '"' then
      local j = i + 1
      local buf = {}
      while true do
        if j > n then return nil, "unbalanced quotes" end
        local c = line:sub(j, j)
        if c == "\\" and (line:sub(j + 1, j + 1) == '"' or line:sub(j + 1, j + 1) == "\\") then
          buf[#buf + 1] = line:sub(j + 1, j + 1); j = j + 2
        elseif c == '"' then break
        else buf[#buf + 1] = c; j = j + 1 end
      end
      f = { type = "string", value = table.concat(buf) }
      i = j + 1
    else
      local v
      v, i = scan(line, i, ", ")
      if v == "" then return nil, "missing field value" end
      if v:match("^-?%d+i$") then
        if not int_ok(v:sub(1, -2)) then return nil, "unable to parse integer " .. v:sub(1, -2) .. ": value out of range" end
        f = { type = "integer", value = v:sub(1, -2) }
      elseif v:match("^%d+u$") then
        if not le(v:sub(1, -2):gsub("^0+(%d)", "%1"), UINT_MAX) then
          return nil, "unable to parse unsigned " .. v:sub(1, -2) .. ": value out of range"
        end
        f = { type = "unsigned", value = v:sub(1, -2) }
      elseif v == "t" or v == "T" or v == "true" or v == "True" or v == "TRUE" then
        f = { type = "boolean", value = true }
      elseif v == "f" or v == "F" or v == "false" or v == "False" or v == "FALSE" then
        f = { type = "boolean", value = false }
      elseif (v:match("^[-+]?%d+%.?%d*$") or v:match("^[-+]?%.%d+$") or
              v:match("^[-+]?%d+%.?%d*[eE][-+]?%d+$") or v:match("^[-+]?%.%d+[eE][-+]?%d+$")) then
        local x = tonumber(v)
        if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil, "invalid number" end
        f = { type = "float", value = x }
      elseif v:match("^[-+%d.]") then
        return nil, "invalid number"
      else
        return nil, "invalid boolean"
      end
    end
    if p.fields[k] == nil then p.field_order[#p.field_order + 1] = k end
    p.fields[k] = f
    local c = line:sub(i, i)
    if c == "," then i = i + 1
    elseif c == " " or c == "" then break
    else return nil, "invalid field format" end
  end
  while line:sub(i, i) == " " do i = i + 1 end
  if i <= n then
    local ts = line:sub(i):gsub("%s+$", "")
    if not ts:match("^-?%d+$") or not int_ok(ts) then return nil, "bad timestamp" end
    p.time = ts
  end
  return p
end

-- Split a body into lines (no empty lines, no comments, \r stripped).
function M.split_lines(body)
  local out = {}
  for l in (body .. "\n"):gmatch("([^\n]*)\n") do
    l = l:gsub("\r$", "")
    local t = l:gsub("^%s+", "")
    if t ~= "" and t:sub(1, 1) ~= "#" then out[#out + 1] = t end
  end
  return out
end

---------------------------------------------------------------------------
-- The server process.

local function serve(dir)
  local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  package.path = here .. "/../?.lua;" .. package.path
  local socket = require("socket")
  local cjson = require("cjson")
  local http = require("support.http")
  local mono = require("support.proc").now
  cjson.encode_invalid_numbers(true)

  local function readf(p)
    local f = io.open(p, "rb"); if not f then return nil end
    local s = f:read("*a"); f:close(); return s
  end
  local cfg = cjson.decode(assert(readf(dir .. "/config.json")))
  local started = mono()
  local lifetime = tonumber(cfg.lifetime) or 600
  local parent = tonumber(cfg.parent)

  local lines_f = { [cfg.bucket] = assert(io.open(dir .. "/lines.txt", "ab")) }
  for _, b in ipairs(cfg.buckets or {}) do lines_f[b] = assert(io.open(dir .. "/lines-" .. b .. ".txt", "ab")) end
  local req_f = assert(io.open(dir .. "/requests.jsonl", "ab"))
  local types = {} -- bucket \0 measurement \0 field -> type

  local REASON = {
    [100] = "Continue", [200] = "OK", [204] = "No Content", [400] = "Bad Request",
    [401] = "Unauthorized", [404] = "Not Found", [405] = "Method Not Allowed",
    [413] = "Request Entity Too Large", [415] = "Unsupported Media Type",
    [422] = "Unprocessable Entity", [429] = "Too Many Requests",
    [500] = "Internal Server Error", [503] = "Service Unavailable",
  }

  local function urldecode(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end
  local function parse_query(qs)
    local t = {}
    for part in (qs or ""):gmatch("[^&]+") do
      local k, v = part:match("^([^=]*)=?(.*)$")
      k = urldecode(k)
      if t[k] == nil then t[k] = urldecode(v) end
    end
    return t
  end
  local function jerr(code, msg) return cjson.encode({ code = code, message = msg }) end

  local function send(c, status, headers, body)
    body = body or ""
    local h = { ("HTTP/1.1 %d %s\r\n"):format(status, REASON[status] or "Status") }
    headers = headers or {}
    if body ~= "" and not headers["Content-Type"] then
      headers["Content-Type"] = "application/json; charset=utf-8"
    end
    headers["X-Influxdb-Version"] = "v2.7.0-fake"
    headers["X-Influxdb-Build"] = "OSS"
    headers["Date"] = os.date("!%a, %d %b %Y %H:%M:%S GMT")
    if status ~= 204 and status ~= 100 then headers["Content-Length"] = tostring(#body) end
    for k, v in pairs(headers) do h[#h + 1] = k .. ": " .. v .. "\r\n" end
    h[#h + 1] = "\r\n"
    if status ~= 204 then h[#h + 1] = body end
    local data = table.concat(h)
    c:settimeout(5)
    local i = 1
    while i <= #data do
      local sent, err, last = c:send(data, i)
      if not sent then
        if err ~= "timeout" then break end
        i = (last or i - 1) + 1
      else i = sent + 1 end
    end
    c:settimeout(0)
  end

  -- Failure injection from the spec side (control.json).
  local function injected()
    local s = readf(dir .. "/control.json")
    if not s then return nil end
    local ok, ctl = pcall(cjson.decode, s)
    if not ok or type(ctl) ~= "table" or (tonumber(ctl.count) or 0) <= 0 then
      os.remove(dir .. "/control.json"); return nil
    end
    ctl.count = ctl.count - 1
    if ctl.count <= 0 then os.remove(dir .. "/control.json")
    else
      local f = io.open(dir .. "/control.json.tmp", "wb"); f:write(cjson.encode(ctl)); f:close()
      os.rename(dir .. "/control.json.tmp", dir .. "/control.json")
    end
    return ctl
  end

  local function handle_write(req, log)
    local q = req.query
    -- 1. authentication
    local auth = req.headers["authorization"]
    log.authorization = auth
    if auth == nil or auth ~= "Token " .. cfg.token then
      return 401, jerr("unauthorized", "unauthorized access")
    end
    -- 2. request decoding: precision, bucket, org (as in 2.x's write handler)
    local precision = q.precision
    if precision ~= nil and precision ~= "" and precision ~= "ns" and precision ~= "us"
       and precision ~= "ms" and precision ~= "s" then
      return 400, jerr("invalid", "invalid precision; valid precision units are ns, us, ms, and s")
    end
    -- org takes precedence over orgID when both are given (as in 2.x)
    if q.org and q.org ~= "" then
      if q.org ~= cfg.org then
        return 404, jerr("not found", ('organization name "%s" not found'):format(q.org))
      end
    elseif q.orgID and q.orgID ~= "" then
      if not q.orgID:match("^%x+$") or #q.orgID ~= 16 then
        return 400, jerr("invalid", "id must have a length of 16 bytes")
      end
      if q.orgID ~= cfg.org_id then return 404, jerr("not found", "organization not found") end
    else
      return 400, jerr("invalid", "Please provide either orgID or org")
    end
    if q.bucket == nil or q.bucket == "" then return 404, jerr("not found", "bucket not found") end
    if not lines_f[q.bucket] then
      return 404, jerr("not found", ('bucket "%s" not found'):format(q.bucket))
    end
    -- 3. body
    local body = req.body
    local enc = (req.headers["content-encoding"] or ""):lower()
    if enc == "gzip" then
      local d, err = http.gunzip(body)
      if not d then return 400, jerr("invalid", err) end
      body = d
    elseif enc ~= "" and enc ~= "identity" then
      return 415, jerr("unsupported media type", ("Content-Encoding %s not supported"):format(enc))
    end
    log.decoded_bytes = #body
    -- 4. line protocol: any parse error rejects the request
    local lines = M.split_lines(body)
    local points = {}
    for idx, l in ipairs(lines) do
      local p, why = M.parse_line(l)
      if not p then
        log.bad_line = idx
        return 400, jerr("invalid", ("unable to parse '%s': %s"):format(l, why))
      end
      points[idx] = p
    end
    -- 5. field types: conflicting points are dropped, the rest stored (422)
    local accepted, dropped, conflict = {}, 0, nil
    for idx, p in ipairs(points) do
      local bad
      local pending = {}
      for _, k in ipairs(p.field_order) do
        local key = q.bucket .. "\0" .. p.measurement .. "\0" .. k
        local have = types[key] or pending[key]
        if have and have ~= p.fields[k].type then
          bad = ('field type conflict: input field "%s" on measurement "%s" is type %s, already exists as type %s')
            :format(k, p.measurement, p.fields[k].type, have)
          break
        end
        pending[key] = p.fields[k].type
      end
      if bad then
        dropped = dropped + 1; conflict = conflict or bad
      else
        for key, ty in pairs(pending) do types[key] = ty end
        accepted[#accepted + 1] = lines[idx]
      end
    end
    for _, l in ipairs(accepted) do lines_f[q.bucket]:write(l, "\n") end
    lines_f[q.bucket]:flush()
    log.lines = #accepted
    if dropped > 0 then
      return 422, jerr("unprocessable entity",
        ("failure writing points to database: partial write: %s dropped=%d"):format(conflict, dropped))
    end
    return 204
  end

  local function route(req)
    local log = {
      time = socket.gettime(), method = req.method, path = req.path, query = req.query,
      authorization = req.headers["authorization"],
      content_encoding = req.headers["content-encoding"],
      content_type = req.headers["content-type"],
      content_length = #req.body, user_agent = req.headers["user-agent"],
    }
    local status, body, headers
    if (req.method == "GET" or req.method == "HEAD") and req.path == "/ping" then
      status = 204
    elseif req.method == "GET" and req.path == "/health" then
      status, body = 200, cjson.encode({ name = "influxdb", message = "ready for queries and writes",
        status = "pass", checks = cjson.empty_array or {}, version = "v2.7.0-fake", commit = "fake" })
    elseif req.path == "/api/v2/write" and req.method == "POST" then
      local ctl = injected()
      if ctl then
        if tonumber(ctl.delay) then socket.sleep(tonumber(ctl.delay)) end
        status = tonumber(ctl.status) or 503
        body = ctl.body or jerr("internal error", "injected failure")
        if ctl.retry_after then headers = { ["Retry-After"] = tostring(ctl.retry_after) } end
        log.injected = true
      else
        status, body = handle_write(req, log)
      end
    elseif req.path == "/api/v2/write" then
      status, body = 405, jerr("method not allowed", ("allow: POST"))
    else
      status, body = 404, jerr("not found", "path not found")
    end
    log.status = status
    log.response = body
    req_f:write(cjson.encode(log), "\n")
    req_f:flush()
    return status, headers, body
  end

  -- One coroutine per connection.
  local function connection(c)
    local buf = ""
    local function fill()
      while true do
        local data, err, partial = c:receive(65536)
        local got = data or partial
        if got and #got > 0 then buf = buf .. got; return true end
        if err == "closed" then return false end
        coroutine.yield()
      end
    end
    local function read_line()
      while true do
        local i = buf:find("\r\n", 1, true)
        if i then local l = buf:sub(1, i - 1); buf = buf:sub(i + 2); return l end
        if #buf > 65536 then return nil end
        if not fill() then return nil end
      end
    end
    local function read_n(n)
      local parts, have = {}, 0
      if #buf > 0 then
        local take = buf:sub(1, n); parts[1] = take; have = #take; buf = buf:sub(n + 1)
      end
      while have < n do
        local data, err, partial = c:receive(math.min(n - have, 1048576))
        local got = data or partial
        if got and #got > 0 then parts[#parts + 1] = got; have = have + #got
        elseif err == "closed" then return nil
        else coroutine.yield() end
      end
      return table.concat(parts)
    end
    while true do
      local rl = read_line()
      if not rl then return end
      if rl ~= "" then
        local method, target, ver = rl:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
        if not method then send(c, 400, { Connection = "close" }, jerr("invalid", "bad request line")); return end
        local headers = {}
        while true do
          local l = read_line()
          if not l then return end
          if l == "" then break end
          local k, v = l:match("^([^:]+):%s*(.-)%s*$")
          if k then
            k = k:lower()
            headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
          end
        end
        local path, qs = target:match("^([^?]*)%??(.*)$")
        local req = { method = method, path = path, query = parse_query(qs), headers = headers, body = "" }
        if (headers["expect"] or ""):lower() == "100-continue" then
          c:settimeout(5); c:send("HTTP/1.1 100 Continue\r\n\r\n"); c:settimeout(0)
        end
        if (headers["transfer-encoding"] or ""):lower():find("chunked") then
          local parts = {}
          while true do
            local sz = read_line()
            if not sz then return end
            local n = tonumber(sz:match("^%x+"), 16)
            if not n then send(c, 400, { Connection = "close" }, jerr("invalid", "bad chunk")); return end
            if n == 0 then
              repeat local t = read_line() until t == nil or t == ""
              break
            end
            local d = read_n(n); if not d then return end
            parts[#parts + 1] = d
            if read_line() == nil then return end
          end
          req.body = table.concat(parts)
        elseif headers["content-length"] then
          local n = tonumber(headers["content-length"])
          if not n or n < 0 then send(c, 400, { Connection = "close" }, jerr("invalid", "bad Content-Length")); return end
          if n > 64 * 1024 * 1024 then send(c, 413, { Connection = "close" }, jerr("request too large", "body too large")); return end
          req.body = read_n(n)
          if not req.body then return end
        end
        local conn_h = (headers["connection"] or ""):lower()
        local close = conn_h:find("close") ~= nil or (ver == "1.0" and not conn_h:find("keep%-alive"))
        local status, rh, body = route(req)
        rh = rh or {}
        if close then rh.Connection = "close" end
        if method == "HEAD" then body = "" end
        send(c, status, rh, body)
        if close then return end
      end
    end
  end

  local server = assert(socket.bind("127.0.0.1", tonumber(cfg.port)))
  server:settimeout(0)
  local conns = {} -- socket -> coroutine
  local function parent_alive()
    if not parent then return true end
    local f = io.open("/proc/" .. parent .. "/stat")
    if not f then return false end
    local s = f:read("*a") or ""; f:close()
    local st = s:match("%) (%a)")
    return st ~= nil and st ~= "Z" and st ~= "X"
  end
  local last_check = 0
  while true do
    local now = mono()
    if now - started > lifetime then break end
    if now - last_check > 1 then
      last_check = now
      if not parent_alive() then break end
    end
    local rset = { server }
    for c in pairs(conns) do rset[#rset + 1] = c end
    local readable = socket.select(rset, nil, 0.5)
    if readable[server] then
      while true do
        local c = server:accept()
        if not c then break end
        c:settimeout(0)
        c:setoption("tcp-nodelay", true)
        conns[c] = coroutine.create(connection)
        readable[c] = true
      end
    end
    for c, co in pairs(conns) do
      if readable[c] then
        local ok, err = coroutine.resume(co, c)
        if not ok then io.stderr:write("fake_influx2: ", tostring(err), "\n") end
        if coroutine.status(co) == "dead" then c:close(); conns[c] = nil end
      end
    end
  end
  server:close()
  for c in pairs(conns) do c:close() end
  lines_f:close(); req_f:close()
end

if first == "--serve" then
  serve(second)
  os.exit(0)
end

---------------------------------------------------------------------------
-- The spec side.

local socket = require("socket")
local cjson = require("cjson")
local http = require("support.http")
local ports = require("support.ports")
local proc = require("support.proc")

local SCRIPT = debug.getinfo(1, "S").source:sub(2)
M.LUAJIT = os.getenv("LUAJIT") or "luajit"

local Fake = {}
Fake.__index = Fake
local live = {}

-- opts: org, bucket, token, org_id (16 hex chars), buckets (more buckets that
-- exist), lifetime (s, default 600), start_timeout (s, default 10).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Fake)
  self.org = opts.org or "luna"
  self.bucket = opts.bucket or "b"
  self.token = opts.token or "secret"
  self.org_id = opts.org_id or "0123456789abcdef"
  self.dir = proc.tmpdir("luagw-fake2")
  self.port = ports.free()
  self.url = "http://127.0.0.1:" .. self.port
  self.log_path = self.dir .. "/server.log"
  proc.write_file(self.dir .. "/config.json", cjson.encode {
    org = self.org, bucket = self.bucket, token = self.token, org_id = self.org_id,
    buckets = opts.buckets or cjson.empty_array,
    port = self.port, lifetime = opts.lifetime or 600, parent = proc.getpid(),
  })
  proc.write_file(self.dir .. "/lines.txt", "")
  for _, b in ipairs(opts.buckets or {}) do proc.write_file(self.dir .. "/lines-" .. b .. ".txt", "") end
  proc.write_file(self.dir .. "/requests.jsonl", "")
  self.pid = proc.spawn { argv = { M.LUAJIT, SCRIPT, "--serve", self.dir },
    stdout = self.log_path, stderr = "stdout", orphan_dir = self.dir }
  local deadline = proc.now() + (opts.start_timeout or 10)
  local fail
  while true do
    if http.get(self.url .. "/ping", nil, 0.5) == 204 then break end
    if not proc.alive(self.pid) then fail = "fake_influx2 exited before answering /ping"; break end
    if proc.now() >= deadline then fail = "fake_influx2 did not answer /ping in time"; break end
    socket.sleep(0.02)
  end
  if fail then
    proc.stop(self.pid, 2)
    local tail = proc.tail(self.log_path, 20)
    proc.rmdir(self.dir)
    error(fail .. "; log:\n" .. tail, 2)
  end
  live[self] = true
  return self
end

function Fake:lines(bucket)
  local s = proc.read_file(self.dir .. (bucket and bucket ~= self.bucket and "/lines-" .. bucket or "/lines") .. ".txt") or ""
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

function Fake:points()
  local out = {}
  for _, l in ipairs(self:lines()) do out[#out + 1] = assert(M.parse_line(l)) end
  return out
end

function Fake:requests()
  local s = proc.read_file(self.dir .. "/requests.jsonl") or ""
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do
    if l ~= "" then out[#out + 1] = cjson.decode(l) end
  end
  return out
end

-- The next n POST /api/v2/write requests answer `status` (default 503) with
-- `body` (default a JSON error) and an optional Retry-After; `delay` seconds
-- before answering (blocks the whole server).
function Fake:fail_next(n, status, body, retry_after, delay)
  proc.write_file(self.dir .. "/control.json.new", cjson.encode {
    count = n or 1, status = status or 503, body = body, retry_after = retry_after, delay = delay })
  os.rename(self.dir .. "/control.json.new", self.dir .. "/control.json")
end

function Fake:clear()
  -- Truncate in place (the server appends with O_APPEND).
  proc.write_file(self.dir .. "/lines.txt", "")
  proc.write_file(self.dir .. "/requests.jsonl", "")
end

function Fake:log() return proc.read_file(self.log_path) or "" end

function Fake:running() return self.pid ~= nil and proc.alive(self.pid) end

function Fake:stop()
  if self.pid then proc.stop(self.pid, 5) end
  self.pid = nil
  live[self] = nil
  if self.dir then proc.rmdir(self.dir) end
  self.dir = nil
end
Fake.destroy = Fake.stop

M._sentinel = newproxy(true)
getmetatable(M._sentinel).__gc = function()
  for f in pairs(live) do pcall(f.stop, f) end
end

function M.stop_all()
  for f in pairs(live) do pcall(f.stop, f) end
end

return M
