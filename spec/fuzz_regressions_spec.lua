-- Regressions from fuzzing and the sanitizer build (docs/hardening.md).
--
-- Every file of the fuzzers' committed corpora (fuzz/corpus/<name>/, seeds
-- and any crash a fuzzer found, which is added there once fixed) is replayed
-- here through the same library entry points and properties as fuzz/*.c, so
-- `make test` and `make test-asan` keep them fixed. Findings that came with
-- a specific input get an `it` of their own below.
local core = require("support.core")
local harness = require("luagw.harness")
local ffi, lib = core.ffi, core.lib

for _, decl in ipairs {
  "int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns,"
    .. " gw_arena_t *a, gw_points_t *out, gw_result_t *res);",
  "int gw_lp_encode(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen);",
  "int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,"
    .. " gw_points_t *out, gw_result_t *res);",
} do
  pcall(ffi.cdef, decl)
end

local ROOT = require("support.luagw").ROOT

local function corpus(name)
  local files = {}
  local p = io.popen("ls -1 '" .. ROOT .. "/fuzz/corpus/" .. name .. "' 2>/dev/null")
  for f in p:lines() do files[#files + 1] = ROOT .. "/fuzz/corpus/" .. name .. "/" .. f end
  p:close()
  return files
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- fuzz/roundtrip.h: a point the encoder takes parses back from its line unchanged.
local function roundtrip(ctx, p, file)
  local out = ffi.new("gw_buf_t[1]")
  local err = ffi.new("char[256]")
  local rc = lib.gw_lp_encode(out, p, 0, err, 256)
  assert.is_true(rc == 0 or rc == 1, file)
  if rc == 0 then
    local line = ffi.string(out[0].data, out[0].len)
    ctx:reset()
    assert.equal(0, lib.gw_lp_parse(line, #line, 1, 0, ctx.arena, ctx.points, ctx.result))
    assert.equal(1, ctx.points[0].n, file .. ": " .. line)
    local a, b = core.point_table(p), core.point_table(ctx.points[0].v[0])
    a.src, b.src = nil, nil
    for k, v in pairs(a.fields) do
      if v ~= v then a.fields[k], b.fields[k] = "nan", (b.fields[k] ~= b.fields[k]) and "nan" or b.fields[k] end
    end
    assert.same(a, b, file .. ": " .. line)
  end
  lib.gw_buf_free(out)
end

local function replay(name, parse)
  local files = corpus(name)
  assert.is_true(#files > 0, "no corpus for " .. name)
  local ctx, back = core.context(), core.context()
  for _, file in ipairs(files) do
    local body = read(file)
    ctx:reset()
    assert.equal(0, parse(body, ctx), file)
    for i = 0, ctx.points[0].n - 1 do roundtrip(back, ctx.points[0].v + i, file) end
  end
  ctx:free()
  back:free()
end

describe("fuzz corpora replayed", function()
  it("fuzz/corpus/lineproto: every point round-trips through the encoder", function()
    replay("lineproto", function(body, ctx)
      return lib.gw_lp_parse(body, #body, 1, 1700000000000000000LL, ctx.arena, ctx.points, ctx.result)
    end)
  end)

  it("fuzz/corpus/json: every accepted point round-trips through the encoder", function()
    replay("json", function(body, ctx)
      return lib.gw_json_parse(body, #body, 1700000000000000000LL, ctx.arena, ctx.points, ctx.result)
    end)
  end)

  it("fuzz/corpus/script: fuzz/script/fuzz.lua's answers are JSON with a points array", function()
    local h = assert(harness.new { dir = ROOT .. "/fuzz/script", series = { fz = "fuzz.lua" }, timeout_ms = 200 })
    finally(function() h:close() end)
    local files = corpus("script")
    assert.is_true(#files > 0)
    for _, file in ipairs(files) do
      local hex = read(file):sub(1, 4096):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
      local doc = h:run_lines('fz,host=a d="' .. hex .. '",n=1i,u=7u,f=1.5,b=t,s="x" 1700000000000000000\n')
      assert.is_table(doc.points, file)
    end
  end)

  it("fuzz/corpus/pipeline: every body through gw_pipeline_run keeps fuzz/pipeline.c's properties", function()
    -- build/fuzz/replay/pipeline: the harness with fuzz/replay.c's main()
    -- (make test builds it), in a process of its own: a crash fails this.
    local files = corpus("pipeline")
    assert.is_true(#files > 0)
    local bin = ROOT .. "/build/fuzz/replay/pipeline"
    assert.is_truthy(io.open(bin), bin .. " missing (make test builds it)")
    local p = io.popen("'" .. bin .. "' '" .. table.concat(files, "' '") .. "' 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    assert.matches("replayed " .. #files .. " inputs\nexit=0\n$", out)
  end)

  it("fuzz/corpus/config: every file loads or fails with one line", function()
    pcall(ffi.cdef, [[
      void *gw_config_load(const char *path, char *err, size_t errlen);
      void gw_config_free(void *cfg);
    ]])
    for _, file in ipairs(corpus("config")) do
      local err = ffi.new("char[512]")
      local cfg = lib.gw_config_load(file, err, 512)
      if cfg ~= nil then lib.gw_config_free(cfg)
      else assert.is_nil(ffi.string(err):find("\n"), file) end
    end
  end)
end)

describe("sanitizer findings", function()
  -- UBSan under `make test-asan`: gateway/script.c merge() did
  -- memcpy(dst, NULL, 0) when every point of a request was dropped and no
  -- script had emitted anything yet (null pointer passed as argument 1).
  it("a request whose points are all dropped by a script", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'") == 0)
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local f = assert(io.open(dir .. "/m.lua", "w"))
    f:write("return function(p) return nil end\n")
    f:close()
    local h = assert(harness.new { dir = dir })
    finally(function() h:close() end)
    local doc = h:run_lines("m v=1\nm v=2\n")
    assert.same({}, doc.points)
  end)
end)
