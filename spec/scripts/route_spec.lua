-- scripts/requests.lua and scripts/errors.lua (the same rule for both
-- series), through the harness (as luagw runs them).
local harness = require("luagw.harness")

for _, series in ipairs { "requests", "errors" } do
  describe("scripts/" .. series .. ".lua", function()
    local h
    setup(function() h = assert(harness.new { dir = "scripts" }) end)
    teardown(function() h:close() end)

    local function run(tags)
      local out = h:run { series = series, time = 1700000000.5, tags = tags, fields = { request_id = "r-1" } }
      assert.equal(0, #out.errors)
      return out.points[1]
    end

    it("builds route = METHOD:resource from method and resource when route is absent", function()
      local p = run { service = "luna-sender", method = "get", resource = "/version" }
      assert.equal("GET:/version", p.tags.route)
      assert.equal("get", p.tags.method)
      assert.equal("/version", p.tags.resource)
      assert.equal("r-1", p.fields.request_id)
      assert.equal("1700000000500000000", p.time_ns)
    end)

    it("keeps a route the point has", function()
      assert.equal("POST:/subscribe", run({ route = "POST:/subscribe", method = "get", resource = "/x" }).tags.route)
    end)

    it("needs both method and resource", function()
      assert.is_nil(run({ method = "get" }).tags.route)
      assert.is_nil(run({ resource = "/x" }).tags.route)
      assert.is_nil(run({}).tags.route)
    end)

    it("is memo'd: one run per shape, the other points answered from the cache", function()
      local before = harness.memo_stats()
      local lines = {}
      for i = 1, 50 do lines[i] = (series .. ",method=get,resource=/m%d request_id=\"%d\" %d"):format(i % 2, i, i) end
      local out = h:run_lines(table.concat(lines, "\n"))
      local after = harness.memo_stats()
      assert.equal(2, after.misses - before.misses)
      assert.equal(48, after.hits - before.hits)
      assert.equal("GET:/m1", out.points[49].tags.route)
      assert.equal("GET:/m0", out.points[50].tags.route)
      assert.equal("50", out.points[50].fields.request_id)
    end)

    it("works on line protocol too, for many points", function()
      local lines = {}
      for i = 1, 100 do lines[i] = (series .. ",method=post,resource=/r%d request_id=\"%d\" %d"):format(i, i, i) end
      local out = h:run_lines(table.concat(lines, "\n"))
      assert.equal(100, #out.points)
      assert.equal("POST:/r100", out.points[100].tags.route)
    end)
  end)
end
