-- What gateway/libluagw.so exports (gateway/exports.h; the core is built
-- with -fvisibility=hidden): exactly the C functions the Lua side calls
-- through FFI (the specs and their support, the busted harness, tools and
-- bench), and nothing else of gateway/.
local core = require("support.core")
local proc = require("support.proc")
local ffi = core.ffi

local LIB = os.getenv("LUAGW_LIB") or "./gateway/libluagw.so"

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

-- The functions the library defines in its dynamic symbol table (nm runs
-- without the sanitizer runtime that `make test-asan` preloads here).
local function exported()
  local set, n = {}, 0
  local p = assert(io.popen("env -u LD_PRELOAD nm -D --defined-only " .. proc.quote(LIB)))
  for l in p:lines() do
    local kind, name = l:match("^%x+ (%a) ([%w_]+)$")
    n = n + 1
    if kind == "T" and name:match("^%l") then set[name] = true end
  end
  p:close()
  assert(n > 0, "nm found no symbols in " .. LIB)
  return set
end

-- GW_EXPORT(name) lines of gateway/exports.h.
local function listed()
  local set = {}
  for name in assert(io.open("gateway/exports.h")):read("a"):gmatch("\nGW_EXPORT%(([%w_]+)%)") do
    set[name] = true
  end
  return set
end

-- Every C function of the core that Lua code names as a call.
local function used()
  local set = {}
  local p = assert(io.popen("ls spec/*.lua spec/support/*.lua scripts/luagw/*.lua tools/*.lua bench/*.lua 2>/dev/null"))
  for path in p:lines() do
    for name in assert(io.open(path)):read("a"):gmatch("%f[%w_](gw_[%w_]+)%s*%(") do
      set[name] = true
    end
  end
  p:close()
  return set
end

describe("libluagw.so's exports", function()
  it("are the list in gateway/exports.h, no more and no less", function()
    assert.same(sorted(listed()), sorted(exported()))
  end)

  it("are what the Lua side calls: nothing it needs is missing, nothing is exported for no one", function()
    assert.same(sorted(used()), sorted(listed()))
  end)

  it("hide the rest of the core from a caller", function()
    local lib = ffi.load(LIB)
    ffi.cdef [[ int http_ingest(void); int config_report(void); ]]
    for _, name in ipairs({ "http_ingest", "config_report" }) do
      local ok, err = pcall(function() return lib[name] end)
      assert.is_false(ok, name .. " is exported")
      assert.matches("undefined symbol", err)
    end
    assert.is_true((pcall(function() return lib.gw_buf_free end))) -- declared by support.core
  end)
end)
