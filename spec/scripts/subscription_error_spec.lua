-- scripts/subscription_error.lua, through the harness (as luagw runs it).
local harness = require("luagw.harness")

describe("scripts/subscription_error.lua", function()
  local h

  local DEPLOYMENT = {
    tags = { datacenter = "eu-1", environment = "production", rack = 7 },
    fields = { release = "2026.11.1", instance = 3, weight = 0.5 },
  }

  before_each(function()
    h = assert(harness.new { dir = "scripts", params = { deployment = DEPLOYMENT } })
  end)
  after_each(function() h:close() end)

  local POINT = { series = "subscription_error", time = 1700000002,
    tags = { service = "luna-sender", error_code = "E42" } }

  it("adds the deployment's tags and fields from params", function()
    local out = h:run(POINT)
    assert.equal(0, #out.errors)
    local p = out.points[1]
    assert.same({ service = "luna-sender", error_code = "E42", datacenter = "eu-1",
      environment = "production", rack = "7" }, p.tags)
    assert.equal("2026.11.1", p.fields.release)
    assert.equal(3, p.fields.instance)
    assert.equal("integer", p.types.instance)
    assert.equal(0.5, p.fields.weight)
    assert.equal("float", p.types.weight)
    assert.equal("1700000002000000000", p.time_ns)
    assert.matches("^subscription_error,datacenter=eu%-1,environment=production,error_code=E42,rack=7,service=luna%-sender ", p.line)
  end)

  it("is memo'd: the second point of a shape is answered from the cache, the same as the first", function()
    local before = harness.memo_stats()
    local out = h:run { POINT, POINT }
    local after = harness.memo_stats()
    assert.same({ 1, 1 }, { after.misses - before.misses, after.hits - before.hits })
    assert.equal(out.points[1].line, out.points[2].line)
  end)

  it("keeps what the point already has", function()
    local pt = { series = "subscription_error", tags = { datacenter = "us-2", error_code = "E1" },
      fields = { release = "old", count = 5 } }
    local p = h:run(pt).points[1]
    assert.equal("us-2", p.tags.datacenter)
    assert.equal("old", p.fields.release)
    assert.equal(5, p.fields.count)
    assert.equal("integer", p.types.count)
  end)

  it("without deployment params it changes nothing (a point without fields stays rejected)", function()
    local bare = assert(harness.new { dir = "scripts" })
    local out = bare:run(POINT)
    bare:close()
    assert.equal(0, #out.points)
    assert.equal(1, #out.rejected)
    assert.matches("at least one field", out.rejected[1].error)
  end)

  it("gives a point that has no fields of its own the deployment fields, so InfluxDB can store it", function()
    local out = h:run(POINT)
    assert.equal(0, #out.rejected)
    assert.equal(1, #out.points)
  end)

  it("leaves other series alone", function()
    local p = h:run { series = "ws_requests", tags = { service = "x" }, fields = { v = 1 } }.points[1]
    assert.is_nil(p.tags.datacenter)
  end)
end)
