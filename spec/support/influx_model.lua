-- fuzz/influx_model.c (a model of how influxd 1.6.7 reads line protocol),
-- through LuaJIT's FFI from build/influx_model.so (`make test` builds it).
--
--   local model = require("support.influx_model")
--   model.lines(body)  --> { "line 1 text", "line 2 text", ... } as influxd splits body
--   model.line(text)   --> outcome ("stored", "skipped", "refused", "server error",
--                          "lost", "crash"), why, point (support.core.point_table)
--                          for "stored" and "lost"
local core = require("support.core")
local luagw = require("support.luagw")
local ffi = core.ffi

for _, decl in ipairs({
  "size_t im_line_end(const char *buf, size_t len, size_t i);",
  "int im_parse_line(const char *line, size_t n, int64_t now_ns, gw_arena_t *a,"
    .. " gw_point_t *out, const char **why);",
  "const char *im_outcome_name(int outcome);",
}) do
  pcall(ffi.cdef, decl)
end

local M = {}
M.lib = ffi.load(os.getenv("INFLUX_MODEL_LIB") or (luagw.ROOT .. "/build/influx_model.so"))

local arena = ffi.gc(M.lib.gw_arena_create(65536), M.lib.gw_arena_destroy)
local point = ffi.new("gw_point_t[1]")
local why = ffi.new("const char *[1]")

function M.lines(body)
  local out, i = {}, 0
  while i < #body do
    local e = tonumber(M.lib.im_line_end(body, #body, i))
    out[#out + 1] = body:sub(i + 1, e)
    i = e + 1
  end
  return out
end

-- now_ns for a line without a time: the same in every call.
M.NOW = 1700000000000000000LL

function M.line(text)
  M.lib.gw_arena_reset(arena)
  local rc = M.lib.im_parse_line(text, #text, M.NOW, arena, point, why)
  assert(rc >= 0, "influx_model: out of memory")
  local name = ffi.string(M.lib.im_outcome_name(rc))
  local p
  if name == "stored" or name == "lost" then p = core.point_table(point[0]) end
  return name, ffi.string(why[0]), p
end

return M
