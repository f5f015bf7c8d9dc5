-- memo(f) (gateway/memo.c, the memo phases of gateway/script_run.c):
-- through the harness, which runs /write's pipeline, so a hit is what luagw
-- stores. The counters are the process's (harness.memo_stats): each spec
-- compares a reading before and after.
local harness = require("luagw.harness")
local proc = require("support.proc")

local SCRIPTS = {
  -- a pure enrichment: route from two tags, a constant tag and field, a
  -- tag removed, drop on a tag value
  ["enrich.lua"] = [[
    return memo(function(p)
      local t = p.tags
      if t.drop == "yes" then return nil end
      if t.method and t.resource then t.route = t.method:upper() .. ":" .. t.resource end
      t.secret = nil
      t.dc = params.dc
      p.fields.release = "r1"
      p.fields.instance = int(3)
      return p
    end)]],
  -- its output depends on every tag key and value: a signature
  ["sig.lua"] = [[
    return memo(function(p)
      local keys = {}
      for k in pairs(p.tags) do keys[#keys + 1] = k end
      table.sort(keys)
      local s = {}
      for _, k in ipairs(keys) do s[#s + 1] = #k .. ":" .. k .. "=" .. #p.tags[k] .. ":" .. p.tags[k] end
      p.tags.sig = table.concat(s, ";")
      return p
    end)]],
  -- changes a field's value or the time: uncacheable, runs every time
  ["double.lua"] = "return memo(function(p) p.fields.v = p.fields.v * 2 return p end)",
  ["shift.lua"] = "return memo(function(p) p.time = p.time + 1 return p end)",
  -- the ways memo is wrong (docs/scripts.md, memo)
  ["rand.lua"] = "return memo(function(p) p.tags.r = tostring(math.random(1, 1e9)) return p end)",
  ["clock.lua"] = "return memo(function(p) p.tags.at = string.format('%.9f', now()) return p end)",
  ["counter.lua"] = "local n = 0\nreturn memo(function(p) n = n + 1 p.tags.n = tostring(n) return p end)",
  ["reads.lua"] = [[return memo(function(p)
    p.tags.level = p.fields.v > 10 and "high" or "low"
    return p end)]],
  -- a chain of a memo'd script and a plain one is not memoized
  ["mixed_a.lua"] = "return memo(function(p) p.tags.a = 'x' return p end)",
  ["mixed_b.lua"] = "local n = 0\nreturn function(p) n = n + 1 p.tags.b = tostring(n) return p end",
  ["notfn.lua"] = "return memo(42)",
  -- reads the request: its token and database are part of the key
  ["who.lua"] = "return memo(function(p, req) p.tags.by = req.token or 'none' p.tags.db = req.db or 'none' return p end)",
  -- the exactness specs' rule: tags added before, among and after the
  -- point's (their values with bytes to escape, one empty), one
  -- overridden, one removed; fields of every type added
  ["exact.lua"] = [[
    return memo(function(p)
      local t, f = p.tags, p.fields
      t.aa = "first"
      t.mm = "mid dle,x=y"
      t.zz = params.dc
      t.host = "over\\ridden"
      t.empty = ""
      t.gone = nil
      f.s = "say \"hi\"\\ there"
      f.fl = 0.1
      f.n = int(-7)
      f.ok = true
      if params.big then f.big = int("18446744073709551615") end
      return p
    end)]],
}

-- the same rule without memo: the reference
SCRIPTS["plain.lua"] = SCRIPTS["enrich.lua"]:gsub("return memo%(function", "return function"):gsub("end%)%s*$", "end")

local dir

local function open(o)
  o = o or {}
  o.dir = o.dir or dir
  o.params = o.params or { dc = "eu-1" }
  o.series = o.series or { mixed = { "mixed_a.lua", "mixed_b.lua" } }
  return assert(harness.new(o))
end

local function delta(f)
  local a = harness.memo_stats()
  local r = table.pack(f())
  local b = harness.memo_stats()
  local d = {}
  for k, v in pairs(b) do d[k] = v - a[k] end
  return d, table.unpack(r, 1, r.n)
end

local function lines_of(out)
  local t = {}
  for i, p in ipairs(out.points) do t[i] = p.line end
  return t
end

describe("memo(f)", function()
  lazy_setup(function()
    dir = proc.tmpdir("luagw-memo")
    for name, src in pairs(SCRIPTS) do proc.write_file(dir .. "/" .. name, src) end
    -- a script that is not memo'd must not be touched by the rest: notfn
    -- is loaded in a dir of its own
    os.remove(dir .. "/notfn.lua")
  end)
  lazy_teardown(function() if dir then proc.rmdir(dir) end end)

  -- The same body for series a and b (the memo'd and the plain script).
  local function body(series, n, shapes)
    local t = {}
    for i = 1, n do
      local k = (i - 1) % shapes
      t[i] = ("%s,method=get,resource=/r%d,secret=s%d v=%di,w=%d.5 17000000000%08d"):format(series, k, k, i, i, i)
    end
    return table.concat(t, "\n")
  end

  it("runs the function once per shape and answers the rest from the cache, as the plain script would", function()
    local h = open()
    local d, out = delta(function() return h:run_lines(body("enrich", 200, 5)) end)
    assert.same({ hits = 195, misses = 5, uncacheable = 0, evictions = 0, verified = 0, mismatches = 0 }, d)
    local ref = h:run_lines(body("plain", 200, 5))
    assert.equal(200, #out.points)
    local a, b = lines_of(out), lines_of(ref)
    for i = 1, 200 do assert.equal((b[i]:gsub("^plain", "enrich")), a[i]) end
    local p = out.points[7]
    assert.equal("GET:/r1", p.tags.route)
    assert.is_nil(p.tags.secret)
    assert.equal("eu-1", p.tags.dc)
    assert.equal("r1", p.fields.release)
    assert.equal("integer", p.types.instance)
    assert.equal(7, p.fields.v)
    assert.equal(7.5, p.fields.w)
    assert.equal("1700000000000000007", p.time_ns)
    -- The next request hits from its first point.
    d, out = delta(function() return h:run_lines(body("enrich", 3, 5)) end)
    assert.same({ 3, 0 }, { d.hits, d.misses })
    -- JSON points are keyed apart from line protocol (whose key is the
    -- line's text): their first point runs the script, the next one hits.
    local jp = { series = "enrich", time = 1700000001, tags = { method = "get", resource = "/r1", secret = "s1" },
      fields = { v = 1, w = 2.5 } }
    d, out = delta(function() return h:run { jp, jp } end)
    assert.same({ 1, 1 }, { d.hits, d.misses })
    assert.equal(out.points[1].line, out.points[2].line)
    assert.equal("enrich,dc=eu-1,method=get,resource=/r1,route=GET:/r1 v=1i,w=2.5,release=\"r1\",instance=3i 1700000001000000000",
      out.points[1].line)
    h:close()
  end)

  it("keys on the request's token and database: a memo'd script may read req.token and req.db", function()
    local h = open()
    local text = "who,host=a v=1i 1\nwho,host=a v=2i 2"
    local jp = { series = "who", time = 1, tags = { host = "a" }, fields = { v = 1 } }
    local seen = {}
    for _, req in ipairs { { token = "billing", db = "b1" }, { token = "ops", db = "b1" }, { token = "ops", db = "b2" }, {} } do
      local d, out = delta(function() return h:run_lines(text, "ns", req) end)
      assert.same({ 1, 1 }, { d.hits, d.misses }) -- each request's own first point misses
      for _, p in ipairs(out.points) do
        assert.equal(req.token or "none", p.tags.by)
        assert.equal(req.db or "none", p.tags.db)
      end
      local o2 = h:run({ jp }, req)
      assert.equal(req.token or "none", o2.points[1].tags.by)
      seen[#seen + 1] = out.points[1].line
    end
    -- and a request seen before hits again
    local d, out = delta(function() return h:run_lines(text, "ns", { token = "billing", db = "b1" }) end)
    assert.same({ 2, 0 }, { d.hits, d.misses })
    assert.equal(seen[1], out.points[1].line)
    h:close()
  end)

  it("caches a drop", function()
    local h = open()
    local lines = {}
    for i = 1, 10 do lines[i] = ("enrich,drop=yes v=%di %d"):format(i, i) end
    local d, out = delta(function() return h:run_lines(table.concat(lines, "\n")) end)
    assert.equal(0, #out.points)
    assert.equal(0, out.verdict.rejected)
    assert.same({ 9, 1 }, { d.hits, d.misses })
    h:close()
  end)

  it("keys on field keys: a point with another field set is another shape", function()
    local h = open()
    local d = delta(function()
      return h:run_lines("enrich,method=get,resource=/x v=1i 1\nenrich,method=get,resource=/x w=1i 2\n" ..
        "enrich,method=get,resource=/x v=2i 3")
    end)
    assert.same({ 1, 2 }, { d.hits, d.misses })
    h:close()
  end)

  it("never confuses two shapes whose names concatenate to the same bytes", function()
    local h = open()
    -- "abc" as key+value three ways, "a=b=c" as key=value two ways, and a
    -- field key that could pass for a tag's
    local pts = {
      { series = "sig", time = 1, tags = { a = "bc" }, fields = { v = 1 } },
      { series = "sig", time = 2, tags = { ab = "c" }, fields = { v = 1 } },
      { series = "sig", time = 3, tags = { abc = "" , x = "y" }, fields = { v = 1 } },
      { series = "sig", time = 4, tags = { a = "b=c" }, fields = { v = 1 } },
      { series = "sig", time = 5, tags = { ["a=b"] = "c" }, fields = { v = 1 } },
      { series = "sig", time = 6, tags = { a = "bc" }, fields = { v = 1, w = 2 } },
      { series = "sig", time = 7, tags = { a = "bc" }, fields = { vw = 1 } },
      { series = "sigx", time = 8, tags = { a = "bc" }, fields = { v = 1 } },
      { series = "sig", time = 9, tags = { a = "bc" }, fields = { v = 1 } },
    }
    local d, out = delta(function() return h:run(pts) end)
    assert.same({ 1, 7 }, { d.hits, d.misses })
    local sigs = {}
    for i, p in ipairs(out.points) do sigs[i] = p.tags.sig or "-" end
    assert.same({ "1:a=2:bc", "2:ab=1:c", "1:x=1:y", "1:a=3:b=c", "3:a=b=1:c", "1:a=2:bc", "1:a=2:bc", "-",
      "1:a=2:bc" }, sigs)
    h:close()
  end)

  it("keys line protocol by the line's text, and never confuses two lines' shapes", function()
    local h = open()
    local text = table.concat({
      "sig,a=bc v=1i 1", "sig,ab=c v=1i 2", "sig,a=b\\,c v=1i 3", "sig,a=b,c=d v=1i 4", "sig,a=b\\ c v=1i 5",
      "sig,a=b\\,c v=1i 6", "sig,a=bc v=1i 7", "sig,a=bc vw=1i 8", "sig,a=bc v=1i,w=1i 9",
    }, "\n")
    local d, out = delta(function() return h:run_lines(text) end)
    assert.same({ 2, 7 }, { d.hits, d.misses })
    local sigs = {}
    for i, p in ipairs(out.points) do sigs[i] = p.tags.sig end
    assert.same({ "1:a=2:bc", "2:ab=1:c", "1:a=3:b,c", "1:a=1:b;1:c=1:d", "1:a=3:b c", "1:a=3:b,c", "1:a=2:bc",
      "1:a=2:bc", "1:a=2:bc" }, sigs)
    h:close()
  end)

  it("a hit that adds more tags than the request's arrays hold grows them", function()
    local d = proc.tmpdir("luagw-memo-wide")
    proc.write_file(d .. "/wide.lua", [[return memo(function(p)
      for i = 1, 150 do p.tags["w" .. i] = tostring(i) end
      p.fields["f1"] = 1.5
      return p end)]])
    local h = open { dir = d, series = {} }
    h:run_lines("wide,a=b v=1i 1\nwide,a=c v=1i 1")
    -- two hits in one request: the second's tags must not land on the first's
    local dd, out = delta(function() return h:run_lines("wide,a=b v=2i 2\nwide,a=c v=3i 3") end)
    assert.equal(2, dd.hits)
    for k, want in ipairs { { "b", 2 }, { "c", 3 } } do
      local p = out.points[k]
      local n = 0
      for _ in pairs(p.tags) do n = n + 1 end
      assert.equal(151, n)
      for i = 1, 150 do assert.equal(tostring(i), p.tags["w" .. i]) end
      assert.equal(want[1], p.tags.a)
      assert.equal(want[2], p.fields.v)
      assert.equal(1.5, p.fields.f1)
    end
    h:close()
    proc.rmdir(d)
  end)

  it("a shape whose run changes a field value or the time is uncacheable: it runs every time", function()
    local h = open()
    local d, out = delta(function() return h:run_lines("double v=1i 1\ndouble v=2i 2\ndouble v=3i 3") end)
    assert.same({ 0, 1, 2 }, { d.hits, d.misses, d.uncacheable })
    assert.same({ 2, 4, 6 }, { out.points[1].fields.v, out.points[2].fields.v, out.points[3].fields.v })
    d, out = delta(function() return h:run_lines("shift v=1i 1000000000\nshift v=1i 2000000000") end)
    assert.same({ 0, 1, 1 }, { d.hits, d.misses, d.uncacheable })
    assert.same({ "2000000000", "3000000000" }, { out.points[1].time_ns, out.points[2].time_ns })
    h:close()
  end)

  it("a chain with a script that is not memo'd runs every time", function()
    local h = open()
    local d, out = delta(function() return h:run_lines("mixed v=1i 1\nmixed v=1i 2") end)
    assert.same({ 0, 0 }, { d.hits, d.misses })
    assert.same({ "1", "2" }, { out.points[1].tags.b, out.points[2].tags.b })
    h:close()
  end)

  it("memo() takes a function", function()
    local d = proc.tmpdir("luagw-memo-bad")
    proc.write_file(d .. "/notfn.lua", SCRIPTS["notfn.lua"])
    local h, err = harness.new { dir = d }
    assert.is_nil(h)
    assert.matches("notfn%.lua: memo: expected a function, got a number", err)
    proc.rmdir(d)
  end)

  it("is bounded by scripts.memo_entries: 100 shapes cycling through 8 entries evict, and stay right", function()
    local h = open { memo_entries = 8 }
    local d, out = delta(function() return h:run_lines(body("enrich", 400, 100)) end)
    assert.equal(400, d.hits + d.misses)
    assert.is_true(d.misses >= 100)
    assert.is_true(d.evictions >= 92)
    local ref = h:run_lines(body("plain", 400, 100))
    local a, b = lines_of(out), lines_of(ref)
    for i = 1, 400 do assert.equal((b[i]:gsub("^plain", "enrich")), a[i]) end
    h:close()
  end)

  it("scripts.memo_entries: 0 turns memo off", function()
    local h = open { memo_entries = 0 }
    local d, out = delta(function() return h:run_lines(body("enrich", 20, 2)) end)
    assert.same({ 0, 0 }, { d.hits, d.misses })
    assert.equal("GET:/r1", out.points[2].tags.route)
    h:close()
  end)

  -- What memo must not be used for (docs/scripts.md): without verify, the
  -- first run's result is applied to every later point of the shape.
  for _, case in ipairs {
    { "randomness", "rand", "r" },
    { "now()", "clock", "at" },
    { "a counter in an upvalue", "counter", "n" },
  } do
    it("is wrong with " .. case[1] .. ": the cache repeats the first result; memo_verify catches it", function()
      local series, tag = case[2], case[3]
      local text = ("%s v=1i 1\n%s v=1i 2\n%s v=1i 3"):format(series, series, series)
      local h = open()
      local out = h:run_lines(text)
      assert.equal(out.points[1].tags[tag], out.points[3].tags[tag])
      h:close()
      h = open { memo_verify = true }
      local d
      d, out = delta(function() return h:run_lines(text) end)
      -- the first hit is verified, disagrees, and the shape becomes uncacheable
      assert.same({ 1, 0, 1, 1 }, { d.misses, d.hits, d.verified, d.mismatches })
      assert.equal(1, d.uncacheable)
      assert.are_not.equal(out.points[1].tags[tag], out.points[2].tags[tag])
      assert.are_not.equal(out.points[2].tags[tag], out.points[3].tags[tag])
      h:close()
    end)
  end

  it("is wrong when the function reads a field value (not in the key); memo_verify catches it", function()
    local text = "reads v=1i 1\nreads v=50i 2\nreads v=60i 3"
    local h = open()
    local out = h:run_lines(text)
    assert.equal("low", out.points[2].tags.level) -- the cached result of v=1
    h:close()
    h = open { memo_verify = true }
    local d
    d, out = delta(function() return h:run_lines(text) end)
    assert.equal(1, d.mismatches)
    assert.same({ "low", "high", "high" }, { out.points[1].tags.level, out.points[2].tags.level,
      out.points[3].tags.level })
    h:close()
  end)

  it("memo_verify on a pure function finds nothing to report, and checks a shape's hits 1, 2, 4, 8...", function()
    local h = open { memo_verify = true }
    local d, out = delta(function() return h:run_lines(body("enrich", 100, 1)) end)
    assert.same({ 92, 1, 0 }, { d.hits, d.misses, d.mismatches })
    assert.equal(7, d.verified) -- hits 1, 2, 4, 8, 16, 32, 64
    assert.equal("GET:/r0", out.points[100].tags.route)
    h:close()
  end)

  describe("writes a hit's line byte for byte as a miss's and as no memo at all", function()
    -- Each shape three times (a miss, then two hits) with other field
    -- values and times, through the memo cache and without it.
    local shapes = {
      "exact,host=h1,region=eu v=1i,w=2.5", -- clean: the hit copies text made in advance
      "exact,b=1,c=2,d=3,e=4,f=5,g=6,h=7,i=8,j=9,k=10,l=11,m=12,n=13,o=14,p=15,q=16,r=17,host=x,gone=y v=1i",
      "exact,zzz=last,a=first,host=h2 msg=\"a b, c=d \\\" e\",v=1i", -- unsorted; a string with blanks
      "exact v=1i", -- no tags of its own
      "exact,host=a\\ b,k\\,1=v\\=2 v=1i", -- escapes: not clean, written from values
      "ex\\ act,host=h3 v=1i",
      "exact,gone=only f\\ ield=1i,v=2i",
    }
    local function request(times)
      local t = {}
      for i, sh in ipairs(shapes) do
        for r = 1, 3 do t[#t + 1] = ("%s,rep=%di %s"):format(sh, r * 10 + i, times(i, r)) end
      end
      return table.concat(t, "\n")
    end
    local function check(o, precision, times)
      local text = request(times)
      local series = { ["ex act"] = { "exact.lua" } }
      local ref = open { memo_entries = 0, params = o.params, version = o.version, series = series }
      local want = ref:run_lines(text, precision)
      ref:close()
      local h = open { params = o.params, version = o.version, series = series }
      local d, got = delta(function() return h:run_lines(text, precision) end)
      h:close()
      assert.same({ 2 * #shapes, #shapes }, { d.hits, d.misses })
      assert.equal(#shapes * 3, #want.points)
      local a, b = lines_of(want), lines_of(got)
      if o.now then -- the time of receipt: each run's own
        for i = 1, #a do a[i], b[i] = a[i]:gsub(" %d+$", ""), b[i]:gsub(" %d+$", "") end
      end
      assert.same(a, b)
      return b
    end

    it("with the time in the line", function()
      local lines = check({}, nil, function(i, r) return ("17000000000000%02d%d"):format(i, r) end)
      assert.equal('exact,aa=first,host=over\\ridden,mm=mid\\ dle\\,x\\=y,region=eu,zz=eu-1 v=1i,w=2.5,rep=21i,' ..
        's="say \\"hi\\"\\\\ there",fl=0.1,n=-7i,ok=true 17000000000000012', lines[2])
      assert.equal('exact,a=first,aa=first,host=over\\ridden,mm=mid\\ dle\\,x\\=y,zz=eu-1,zzz=last ' ..
        'msg="a b, c=d \\" e",v=1i,rep=33i,s="say \\"hi\\"\\\\ there",fl=0.1,n=-7i,ok=true 17000000000000033',
        lines[9])
    end)

    it("with a time the encoder writes (precision s), and with none", function()
      check({}, "s", function(i, r) return tostring(1700000000 + i * 10 + r) end)
      local lines = check({ now = true }, nil, function() return "" end)
      assert.matches(",ok=true$", lines[4])
    end)

    it("with an unsigned field added, as the target writes it", function()
      local lines = check({ params = { dc = "eu-1", big = true }, version = 2 }, nil, function(i, r) return tostring(i * 10 + r) end)
      assert.matches(",big=18446744073709551615u ", lines[1], 1, true)
    end)

    it("when a series declaration adds to a hit afterwards", function()
      local text = request(function(i, r) return tostring(i * 10 + r) end)
      local declare = { exact = { tags = { yy = { default = "decl" } }, fields = { dflt = { type = "int", default = "5i" } } } }
      local ref = open { memo_entries = 0, declare = declare }
      local want = lines_of(ref:run_lines(text))
      ref:close()
      local h = open { declare = declare }
      local got = lines_of(h:run_lines(text))
      h:close()
      assert.same(want, got)
      assert.matches(",yy=decl,zz=eu-1 v=1i,w=2.5,rep=21i,s=", got[2], 1, true)
      assert.matches(",ok=true,dflt=5i 12$", got[2])
    end)
  end)

  it("starts empty with new params (a reload builds a new set)", function()
    local h = open()
    assert.equal("eu-1", h:run_lines("enrich v=1i 1").points[1].tags.dc)
    h:close()
    h = open { params = { dc = "us-2" } }
    local d, out = delta(function() return h:run_lines("enrich v=1i 1") end)
    assert.equal(1, d.misses)
    assert.equal("us-2", out.points[1].tags.dc)
    h:close()
  end)
end)
