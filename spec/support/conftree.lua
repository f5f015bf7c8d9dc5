-- Config trees (gw_conf_node_t of config.h) built from Lua values, for the
-- specs of the modules that check and compile them (tenant.c, route.c)
-- through the FFI, without a YAML file.
--
--   local tree = require("support.conftree")
--   local root, where = tree.build(tree.seq {
--     "plain-token",
--     tree.map { "name", "billing", "token", "T", "tags", tree.map { "tenant", "billing" } },
--   })
--   where(bad)  --> "[1].tags", the path of a node (as the spec built it)
--
-- A map keeps its keys in the order written: map { k1, v1, k2, v2 }. A
-- string is a plain scalar. The nodes live as long as root is referenced.
local core = require("support.core")
local ffi = core.ffi

pcall(ffi.cdef, [[
typedef struct gw_conf_node {
  int kind; char *key; char *value; int plain; size_t line, column;
  struct gw_conf_node *child; struct gw_conf_node *next;
} gw_conf_node_t;
]])

local M = {}
local SEQ, MAP = {}, {}
M.live = {}

function M.seq(items) return { [SEQ] = true, items = items } end
function M.map(kv) return { [MAP] = true, kv = kv } end

function M.build(value)
  local keep, paths, line = {}, {}, 0
  local function cstr(s)
    if s == nil then return nil end
    local c = ffi.new("char[?]", #s + 1, s)
    keep[#keep + 1] = c
    return c
  end
  local function node(v, key, path)
    local n = ffi.new("gw_conf_node_t")
    keep[#keep + 1] = n
    line = line + 1
    n.line, n.column, n.key = line, 1, cstr(key)
    paths[tostring(ffi.cast("void *", n))] = path
    local prev
    local function add(child)
      if prev then prev.next = child else n.child = child end
      prev = child
    end
    if type(v) == "table" and v[SEQ] then
      n.kind = 1
      for i, item in ipairs(v.items) do add(node(item, nil, ("%s[%d]"):format(path, i - 1))) end
    elseif type(v) == "table" and v[MAP] then
      n.kind = 2
      for i = 1, #v.kv, 2 do add(node(v.kv[i + 1], v.kv[i], path .. "." .. v.kv[i])) end
    else
      n.kind, n.plain, n.value = 0, 1, cstr(tostring(v))
    end
    return n
  end
  local root = node(value, nil, "")
  M.live[#M.live + 1] = keep -- a spec's trees live until the run ends
  local function where(p)
    if p == nil then return nil end
    return paths[tostring(ffi.cast("void *", p))]
  end
  return root, where
end

return M
