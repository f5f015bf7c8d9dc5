-- The C core (gateway/libluagw.so) through LuaJIT's FFI, with the shared
-- declarations of buf.h, arena.h and point.h. Specs add their module's own
-- declarations with ffi.cdef.
local ffi = require("ffi")

ffi.cdef [[
typedef struct { const char *p; size_t n; } gw_str_t;
typedef struct { char *data; size_t len; size_t cap; } gw_buf_t;
void gw_buf_free(gw_buf_t *b);

typedef struct gw_arena gw_arena_t;
gw_arena_t *gw_arena_create(size_t chunk_size);
void gw_arena_reset(gw_arena_t *a);
void gw_arena_destroy(gw_arena_t *a);

typedef struct { gw_str_t key; gw_str_t val; } gw_tag_t;
typedef struct {
  gw_str_t key; int type;
  union { double f; int64_t i; uint64_t u; int b; gw_str_t s; } v;
} gw_field_t;
typedef struct {
  gw_str_t series; int64_t time_ns; gw_tag_t *tags; gw_field_t *fields;
  uint32_t ntags; uint32_t nfields; uint32_t src; uint32_t lp_clean; gw_str_t lp_tail;
  const void *lp_pre;
} gw_point_t;
typedef struct { gw_point_t *v; uint32_t n; uint32_t cap; } gw_points_t;
void gw_points_free(gw_points_t *pts);
typedef struct {
  uint32_t accepted; uint32_t rejected; int has_error; int err_kind;
  uint32_t err_where; char err_msg[256];
} gw_result_t;
]]

local M = {}
M.ffi = ffi
M.lib = ffi.load(os.getenv("LUAGW_LIB") or "./gateway/libluagw.so")
M.FIELD = { [0] = "float", "int", "uint", "string", "bool" }
M.WHERE = { [0] = "line", "index", "body" }

function M.str(s) return ffi.string(s.p, s.n) end

-- A parse context: arena + points + result, freed by :free().
function M.context()
  local ctx = {
    arena = ffi.gc(M.lib.gw_arena_create(65536), M.lib.gw_arena_destroy),
    points = ffi.new("gw_points_t[1]"),
    result = ffi.new("gw_result_t[1]"),
  }
  function ctx:reset()
    M.lib.gw_arena_reset(self.arena)
    self.points[0].n = 0
    ffi.fill(self.result, ffi.sizeof("gw_result_t"))
  end
  function ctx:free() M.lib.gw_points_free(self.points) end
  return ctx
end

-- Convert a gw_point_t into a plain Lua table for assertions. Integers are
-- kept as int64/uint64 cdata, compared with tostring() in specs.
function M.point_table(p)
  local t = { series = M.str(p.series), time_ns = p.time_ns, tags = {}, fields = {}, types = {}, src = p.src }
  for i = 0, p.ntags - 1 do t.tags[M.str(p.tags[i].key)] = M.str(p.tags[i].val) end
  for i = 0, p.nfields - 1 do
    local f = p.fields[i]
    local k, ty = M.str(f.key), M.FIELD[f.type]
    t.types[k] = ty
    if ty == "float" then t.fields[k] = f.v.f
    elseif ty == "int" then t.fields[k] = f.v.i
    elseif ty == "uint" then t.fields[k] = f.v.u
    elseif ty == "string" then t.fields[k] = M.str(f.v.s)
    else t.fields[k] = f.v.b ~= 0 end
  end
  return t
end

function M.result_table(r)
  return {
    accepted = r.accepted, rejected = r.rejected, has_error = r.has_error ~= 0,
    where_kind = M.WHERE[r.err_kind], where = r.err_where, msg = ffi.string(r.err_msg),
  }
end

return M
