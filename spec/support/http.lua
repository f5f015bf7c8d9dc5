-- A tiny HTTP client for specs (LuaSocket's socket.http + ltn12), plus gzip.
--
--   local http = require("support.http")
--   local status, body, headers = http.request{ method = "POST", url = u,
--       body = s, headers = { ["Content-Type"] = "text/plain" }, timeout = 5 }
--   http.get(url, headers) / http.post(url, body, headers)  -- same returns
--   http.gzip(s) / http.gunzip(s)                             -- via zlib (FFI)
--   http.urlencode(s) / http.query{ db = "x", q = "..." }
--
-- On a connection failure status is nil and body is the error message.
-- Header keys in the result are lower case.
local socket = require("socket")
local shttp = require("socket.http")
local ltn12 = require("ltn12")

local M = {}
M.TIMEOUT = 5

function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- Encode a table as a query string, keys sorted (for stable URLs).
function M.query(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = M.urlencode(k) .. "=" .. M.urlencode(t[k]) end
  return table.concat(parts, "&")
end

function M.request(o)
  if type(o) == "string" then o = { url = o } end
  local timeout = o.timeout or M.TIMEOUT
  local body = o.body
  local method = o.method or (body and "POST" or "GET")
  local headers = {}
  for k, v in pairs(o.headers or {}) do headers[k:lower()] = tostring(v) end
  if body then headers["content-length"] = tostring(#body) end
  local chunks = {}
  local ok, code, rheaders = shttp.request {
    url = o.url,
    method = method,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
    redirect = false,
    create = function()
      local s = socket.tcp()
      s:settimeout(timeout)
      return s
    end,
  }
  if not ok then return nil, tostring(code), {} end
  local lower = {}
  for k, v in pairs(rheaders or {}) do lower[k:lower()] = v end
  return tonumber(code), table.concat(chunks), lower
end

function M.get(url, headers, timeout)
  return M.request { method = "GET", url = url, headers = headers, timeout = timeout }
end

function M.post(url, body, headers, timeout)
  return M.request { method = "POST", url = url, body = body or "", headers = headers, timeout = timeout }
end

-- gzip / gunzip through zlib (libz.so.1) with LuaJIT's FFI.
local zlib
local function z()
  if zlib then return zlib end
  local ffi = require("ffi")
  pcall(ffi.cdef, [[
typedef struct luagw_spec_z_stream {
  const unsigned char *next_in; unsigned avail_in; unsigned long total_in;
  unsigned char *next_out; unsigned avail_out; unsigned long total_out;
  const char *msg; void *state;
  void *zalloc; void *zfree; void *opaque;
  int data_type; unsigned long adler; unsigned long reserved;
} luagw_spec_z_stream;
int deflateInit2_(luagw_spec_z_stream *strm, int level, int method, int windowBits,
                  int memLevel, int strategy, const char *version, int stream_size);
int deflate(luagw_spec_z_stream *strm, int flush);
int deflateEnd(luagw_spec_z_stream *strm);
int inflateInit2_(luagw_spec_z_stream *strm, int windowBits, const char *version, int stream_size);
int inflate(luagw_spec_z_stream *strm, int flush);
int inflateEnd(luagw_spec_z_stream *strm);
const char *zlibVersion(void);
]])
  zlib = { ffi = ffi, lib = ffi.load("z") }
  return zlib
end

-- gzip-compress s (a gzip member, like `gzip -c`).
function M.gzip(s, level, window_bits) -- window_bits 15: a zlib stream instead of gzip
  local Z = z(); local ffi, lib = Z.ffi, Z.lib
  local strm = ffi.new("luagw_spec_z_stream")
  local rc = lib.deflateInit2_(strm, level or 6, 8, window_bits or 31, 8, 0, lib.zlibVersion(), ffi.sizeof(strm))
  assert(rc == 0, "deflateInit2 failed: " .. rc)
  local cap = #s + 64 + math.floor(#s / 100)
  local out = ffi.new("unsigned char[?]", cap)
  local parts = {}
  strm.next_in = ffi.cast("const unsigned char *", s); strm.avail_in = #s
  repeat
    strm.next_out = out; strm.avail_out = cap
    rc = lib.deflate(strm, 4) -- Z_FINISH
    parts[#parts + 1] = ffi.string(out, cap - strm.avail_out)
  until rc == 1 or (rc ~= 0 and rc ~= -5) -- Z_STREAM_END / error
  lib.deflateEnd(strm)
  assert(rc == 1, "deflate failed: " .. rc)
  return table.concat(parts)
end

-- Decompress gzip (or zlib) data; concatenated gzip members are supported.
-- Returns the data, or nil and an error message.
function M.gunzip(s)
  local Z = z(); local ffi, lib = Z.ffi, Z.lib
  local parts = {}
  local cap = 65536
  local out = ffi.new("unsigned char[?]", cap)
  local buf = ffi.cast("const unsigned char *", s)
  local pos = 0
  repeat
    local strm = ffi.new("luagw_spec_z_stream")
    local rc = lib.inflateInit2_(strm, 47, lib.zlibVersion(), ffi.sizeof(strm)) -- gzip or zlib
    if rc ~= 0 then return nil, "inflateInit2 failed: " .. rc end
    strm.next_in = buf + pos; strm.avail_in = #s - pos
    repeat
      strm.next_out = out; strm.avail_out = cap
      rc = lib.inflate(strm, 0)
      parts[#parts + 1] = ffi.string(out, cap - strm.avail_out)
    until rc ~= 0 or (strm.avail_in == 0 and strm.avail_out ~= 0)
    local msg = strm.msg ~= nil and ffi.string(strm.msg) or nil
    local consumed = (#s - pos) - strm.avail_in
    lib.inflateEnd(strm)
    if rc ~= 1 then return nil, "gzip: " .. (msg or ((rc == 0 or rc == -5) and "unexpected EOF" or ("inflate error " .. rc))) end
    pos = pos + consumed
  until pos >= #s
  return table.concat(parts)
end

return M
