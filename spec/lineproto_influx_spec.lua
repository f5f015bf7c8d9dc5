-- Line protocol (and JSON) through the real luagw binary against the real
-- influxd 1.6.7: the same lines straight to one influxd and through luagw to
-- another, the stored series, field types and rows compared line by line
-- (spec/support/lpdiff.lua). Every line luagw acknowledges must be stored
-- as influxd stores it; what influxd refuses (or dies on), luagw refuses.
-- Each line is also checked against fuzz/influx_model.c, the model of
-- influxd that the fuzzers use. tools/lp_differential.lua runs the same
-- search on tens of thousands of lines.
local cjson = require("cjson")
local influxd = require("support.influxd")
local lpdiff = require("support.lpdiff")
local wait = require("support.wait")

local P, T = lpdiff.prefix, lpdiff.ts

-- Lines of a known class, each with what must happen to it:
--   stored         luagw stores it exactly as influxd does
--   refused        neither stores anything that reads back (influxd may
--                  answer 204: a series with a backslash before , = or "
--                  is stored by influxd 1.6.7 and never read back)
--   luagw_refused  influxd stores it, luagw refuses it (a decision: see
--                  docs/hardening.md, "Line protocol as InfluxDB reads it")
--   crash          it kills influxd; luagw refuses it
local CASES = {
  -- what every client sends
  { "plain", "stored", function(i) return P(i) .. "requests,route=GET:/v,status_code=200 execution_time=0.0123,request_id=\"4f1c\" " .. T(i) end },
  { "plain", "stored", function(i) return P(i) .. "m,a=1,b=2 i=-9223372036854775808i,f=-1.5e-3,c=true,s=\"\" " .. T(i) end },
  { "types", "stored", function(i) return P(i) .. "m a=1,b=.5,c=5.,d=1E3,e=-0,f=0i,g=t,h=T,j=True,k=TRUE,l=F,m=False,n=FALSE " .. T(i) end },
  { "unicode", "stored", function(i) return P(i) .. "mé日本,tag😀=vál\226\128\174 fé=\"日本 😀\" " .. T(i) end },
  { "control", "stored", function(i) return P(i) .. "m\1\127,t=a\tb\27 f\2=\"x\ty\1\r\" " .. T(i) end },
  -- escapes that every reader of InfluxDB agrees on
  { "escapes", "stored", function(i) return P(i) .. "m\\,x\\ y,k\\,\\=\\ x=v\\,\\=\\ y f\\,\\=\\ \\\"x=\"a\\\"b\\\\c\" " .. T(i) end },
  { "escapes", "stored", function(i) return P(i) .. "m\\=x\\\"y,t=a\\\\,b f=1 " .. T(i) end },
  { "escapes", "stored", function(i) return P(i) .. "m,t=c:\\path\\\\x f\\\\\\,x=\"\\d\\\\\" " .. T(i) end },
  { "tag-value", "stored", function(i) return P(i) .. "m,t==x f=1 " .. T(i) end },
  -- backslashes the scanners of influxd read differently
  { "field-key", "refused", function(i) return P(i) .. "m a\\\\,b=1 " .. T(i) end },
  { "field-key", "refused", function(i) return P(i) .. "m a\\\\ b=1 " .. T(i) end },
  { "field-key", "luagw_refused", function(i) return P(i) .. "m \\\\,=\"\\=\",\\\\=\"=\"\" " .. T(i) end },
  { "field-key", "crash", function(i) return P(i) .. "m \\ b\\\\=\"\\\\t =\" " .. T(i) end },
  { "field-key", "crash", function(i) return P(i) .. "m k\\\\=\"=\" " .. T(i) end },
  { "measurement", "refused", function(i) return P(i) .. "a\\\\,b v=1 " .. T(i) end },
  { "measurement", "refused", function(i) return P(i) .. "a\\\\\"b v=1 " .. T(i) end },
  { "tag-value", "luagw_refused", function(i) return P(i) .. "m,t=a\\\\ b v=1 " .. T(i) end },
  -- lines that run into the next one in influxd's reading
  { "join", "luagw_refused", function(i) return { P(i) .. "m\\", "x v=1 " .. T(i) } end },
  { "join", "refused", function(i)
    local j = lpdiff.id()
    return { P(i) .. "m,t=a\\\\ b\\\\=\"x v=1 " .. T(i), P(j) .. "m v=2 " .. T(j) }
  end },
  { "join", "refused", function(i)
    local j = lpdiff.id()
    return { "  " .. P(i) .. "m=\"x v=1 " .. T(i), P(j) .. "m v=2 " .. T(j) }
  end },
  { "join", "stored", function(i)
    return { "# a comment, \"with\" a=quote", P(i) .. "m v=1 " .. T(i) }
  end },
  { "join", "refused", function(i) -- the comment runs to the closing quote
    local j = lpdiff.id()
    return { "# a comment x=\"with a quote", P(i) .. "m v=1 " .. T(i), "\"", P(j) .. "m v=2 " .. T(j) }
  end },
  -- fidelity: what influxd does with a line, luagw does
  { "time-field", "stored", function(i) return P(i) .. "m time=1,v=2 " .. T(i) end },
  { "time-field", "stored", function(i) return P(i) .. "m v=1,time=\"x\" " .. T(i) end },
  { "time-field", "refused", function(i) return P(i) .. "m time=1 " .. T(i) end },
  { "dup-field", "stored", function(i) return P(i) .. "m v=1,v=2 " .. T(i) end },
  { "dup-field", "stored", function(i) return P(i) .. "m v=\"a\",w=1i,v=\"b\" " .. T(i) end },
  { "dup-field", "refused", function(i) return P(i) .. "m v=1,v=2i " .. T(i) end },
  { "dup-tag", "refused", function(i) return P(i) .. "m,t=a,t=b v=1 " .. T(i) end },
  { "dup-tag", "refused", function(i) return P(i) .. "m,u=1,t=a,t=a v=1 " .. T(i) end },
  -- NUL bytes: stored by influxd, refused by luagw (its error header would
  -- carry them, which libcurl cannot read)
  { "nul", "luagw_refused", function(i) return P(i) .. "m\0x v=1 " .. T(i) end },
  { "nul", "luagw_refused", function(i) return P(i) .. "m,t\0=a v=1 " .. T(i) end },
  { "nul", "luagw_refused", function(i) return P(i) .. "m,t=a\0 v=1 " .. T(i) end },
  { "nul", "luagw_refused", function(i) return P(i) .. "m f\0=1 " .. T(i) end },
  { "nul", "luagw_refused", function(i) return P(i) .. "m f=\"a\0b\" " .. T(i) end },
  { "empty-field-key", "luagw_refused", function(i) return P(i) .. "m \t=1 " .. T(i) end },
}

-- JSON through luagw, against the line protocol that says the same.
local JSON_CASES = {
  { "json-dup-field", "stored", function(i)
    return P(i) .. "m v=2i " .. T(i),
      ('{"series":"%sm","time":"%s","fields":{"v":1,"v":2}}'):format(P(i), lpdiff.rfc3339(i)) end },
  { "json-dup-tag", "stored", function(i)
    return P(i) .. "m,t=b v=1i " .. T(i),
      ('{"series":"%sm","time":"%s","tags":{"t":"a","t":"b"},"fields":{"v":1}}'):format(P(i), lpdiff.rfc3339(i)) end },
  { "json-time-field", "stored", function(i)
    return P(i) .. "m time=5i,v=1.5 " .. T(i),
      ('{"series":"%sm","time":"%s","fields":{"time":5,"v":1.5}}'):format(P(i), lpdiff.rfc3339(i)) end },
  { "json-nul", "luagw_refused", function(i)
    return P(i) .. "m v=\"a\0\" " .. T(i),
      ('{"series":"%sm","time":"%s","fields":{"v":"a\\u0000"}}'):format(P(i), lpdiff.rfc3339(i)) end },
}

describe("line protocol through luagw against the real influxd", function()
  local run

  lazy_setup(function()
    run = lpdiff.start()
  end)

  lazy_teardown(function()
    if run then run:stop() end
  end)

  -- Fail with the summary: counts by class and each mismatch with its line.
  local function assert_clean(report)
    assert(#report.mismatches == 0, "\n" .. lpdiff.summary(report, 30))
  end

  it("stores 1,500 generated backslash-heavy lines as influxd does, or refuses them", function()
    local report = run:check(lpdiff.corpus(1500, 20261207))
    assert_clean(report)
    -- the corpus reaches every class, and both ways
    local stored, refused = 0, 0
    for _, class in ipairs(lpdiff.CLASSES) do
      local c = report.counts[class]
      assert(c and c.lines > 50, class .. ": " .. lpdiff.summary(report, 0))
      stored, refused = stored + c.stored, refused + c.refused + c.luagw_refused
    end
    assert(stored > 500 and refused > 200, lpdiff.summary(report, 0))
    assert.same({ 0, 0 }, { report.dropped, report.undelivered })
  end)

  it("does with each known class of line what influxd does with it", function()
    local bodies, want = {}, {}
    for _, c in ipairs(CASES) do
      local b = lpdiff.fixed({ { c[1], c[3] } })[1]
      bodies[#bodies + 1] = b
      want[#want + 1] = { b, c[2] }
    end
    for _, c in ipairs(JSON_CASES) do
      local line, json
      local b = lpdiff.fixed({ { c[1], function(i) line, json = c[3](i); return line end } })[1]
      b.json = json
      bodies[#bodies + 1] = b
      want[#want + 1] = { b, c[2] }
    end
    local report = run:check(bodies)
    assert_clean(report)
    for _, w in ipairs(want) do
      local id = tonumber(table.concat(w[1].lines, "\n"):match("L(%d+)_"))
      assert(report.by_id[id] == w[2], ("%s: %q: %s, not %s\n%s"):format(w[1].class,
        table.concat(w[1].lines, "\n"), tostring(report.by_id[id]), w[2], lpdiff.summary(report, 5)))
    end
    assert.same({ 0, 0 }, { report.dropped, report.undelivered })
  end)

  it("counts and logs the fields named time it drops", function()
    local before = run:metric("luagw_time_fields_dropped_total")
    local id = lpdiff.id()
    assert.equal(204, (run.gw:post("/write", P(id) .. "m time=1,v=2,time=3 " .. T(id))))
    assert.equal(before + 2, run:metric("luagw_time_fields_dropped_total"))
    assert.truthy(wait(function() return run.gw:log():find("dropped a field named time", 1, true) end, 5))
  end)

  it("refuses every line that kills influxd, which stays up behind luagw", function()
    -- each of these kills a fresh influxd 1.6.7...
    local lines = { "m \\ b\\\\=\"\\\\t =\" 1", "m k\\\\=\"=\" 1" }
    for _, l in ipairs(lines) do
      local db = influxd.start {}
      db:create_database("d")
      db:write(l .. "\n", "d")
      assert(wait(function() return not db:running() end, 5), "influxd survived " .. l)
      db:destroy()
    end
    -- ...and luagw answers 400 naming the line and column, nothing more
    for _, l in ipairs(lines) do
      local st, body = run.gw:post("/write", "m v=1 1\n" .. l .. "\n")
      assert.equal(400, st)
      assert.matches('line 2: column 3: field key "[^"]*" ends with a backslash', cjson.decode(body).error)
    end
    assert.is_true(run.behind:running())
  end)
end)
