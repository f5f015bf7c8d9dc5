-- gateway/arena.c: the per-request bump allocator.
local core = require("support.core")
local ffi, lib = core.ffi, core.lib

ffi.cdef [[
void *gw_arena_alloc(gw_arena_t *a, size_t n);
void *gw_arena_dup(gw_arena_t *a, const void *p, size_t n);
size_t gw_arena_used(const gw_arena_t *a);
]]

describe("arena", function()
  local a
  before_each(function() a = ffi.gc(lib.gw_arena_create(4096), lib.gw_arena_destroy) end)

  it("hands out 16-byte aligned, non-overlapping blocks that keep their contents across chunks", function()
    local blocks = {}
    for i = 1, 500 do
      local n = (i * 37) % 300 + 1
      local p = ffi.cast("uint8_t *", lib.gw_arena_alloc(a, n))
      assert.equal(0, tonumber(ffi.cast("uintptr_t", p)) % 16)
      ffi.fill(p, n, i % 256)
      blocks[i] = { p, n }
    end
    for i, b in ipairs(blocks) do
      for k = 0, b[2] - 1 do
        if b[1][k] ~= i % 256 then error(("block %d byte %d overwritten"):format(i, k)) end
      end
    end
  end)

  it("serves blocks larger than a chunk and copies with dup", function()
    local big = ffi.cast("uint8_t *", lib.gw_arena_alloc(a, 100000))
    ffi.fill(big, 100000, 7)
    local s = "hello, arena"
    local d = lib.gw_arena_dup(a, s, #s)
    assert.equal(s, ffi.string(d, #s))
    assert.equal(7, big[99999])
    assert.equal(100000 + #s, tonumber(lib.gw_arena_used(a)))
  end)

  it("starts empty after a reset and keeps serving correct blocks, oversized ones included", function()
    for round = 1, 5 do
      local ps = {}
      for i = 1, 300 do
        local n = i == 150 and 50000 or 100
        ps[i] = { ffi.cast("uint8_t *", lib.gw_arena_alloc(a, n)), n }
        ffi.fill(ps[i][1], n, (i + round) % 256)
      end
      for i, b in ipairs(ps) do
        assert.equal((i + round) % 256, b[1][0])
        assert.equal((i + round) % 256, b[1][b[2] - 1])
      end
      assert.equal(299 * 100 + 50000, tonumber(lib.gw_arena_used(a)))
      lib.gw_arena_reset(a)
      assert.equal(0, tonumber(lib.gw_arena_used(a)))
    end
  end)

end)
