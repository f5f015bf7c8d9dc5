-- Clean points (gateway/lp_encode.c, point.h GW_LP_CLEAN): a line-protocol
-- point nothing changed is written from its own text; one a script or a
-- series declaration changed is written from its values. Through the
-- harness (the real engine, as POST /v1/debug/transform runs it) and end to
-- end against influxd for the declarations.
local harness = require("luagw.harness")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local wait = require("support.wait")

local tmpdirs, open = {}, {}

local function gw(files, opts)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'") == 0)
  tmpdirs[#tmpdirs + 1] = dir
  for name, src in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(src)
    f:close()
  end
  opts = opts or {}
  opts.dir = dir
  local h = assert(harness.new(opts))
  open[#open + 1] = h
  return h
end

teardown(function()
  for _, h in ipairs(open) do h:close() end
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf '" .. d .. "'") end
end)

local function lines(doc)
  local t = {}
  for i, p in ipairs(doc.points) do t[i] = p.line end
  return t
end

describe("a script's points", function()
  local h
  lazy_setup(function()
    h = gw({
      ["fields.lua"] = [[return function(p) p.fields.f = p.fields.f * 2; p.fields.s = "new"; return p end]],
      ["tags.lua"] = [[return function(p) p.tags.z = "v 2"; p.tags.a = nil; p.tags.y = "added"; return p end]],
      ["head.lua"] = [[return function(p) p.series = "renamed"; p.time = 2; return p end]],
      ["same.lua"] = [[return function(p) return p end]],
      ["types.lua"] = [[return function(p) p.fields.n = p.fields.n + 0.5; p.fields.g = 3; return p end]],
      ["fan.lua"] = [[return function(p) return { p, { series = "fan2", time = 7, tags = { k = "v" }, fields = { x = 1 } } } end]],
      ["fails.lua"] = [[return function(p) error("no") end]],
      ["adds.lua"] = [[return function(p)
        p.tags["x y"] = "a,b"; p.tags.b = "changed"; p.tags.c = nil
        p.fields.added = 'q"uote\\'; p.fields.n = int(5)
        return p end]],
      ["timekey.lua"] = [[return function(p) p.fields.time = 1 return p end]],
    }, { version = 2 }) -- unsigned written as such
  end)

  -- { what, body, precision, the lines written }
  local cases = {
    { "changed fields are written from their values",
      'fields,b=1,a=2 f=1.5,s="old",i=3i 1700000000000000000\n', "ns",
      { 'fields,a=2,b=1 f=3,s="new",i=3i 1700000000000000000' } },
    { "changed, removed and added tags are written from their values, escaped",
      "tags,z=1,a=2 f=1 5\n", "ns", { "tags,y=added,z=v\\ 2 f=1 5" } },
    { "a changed series and time are written", "head,t=v f=1 5\n", "ns", { "renamed,t=v f=1 2000000000" } },
    { "a point returned unchanged is written canonical",
      "same,b=1,a=2 f=1.0,g=T,h=007i 5\n", "ns", { "same,a=2,b=1 f=1,g=true,h=7i 5" } },
    { "fields follow the type rules, not the text they came with",
      "types n=1i,g=1.5,u=2u 5\n", "ns", { "types n=1.5,g=3,u=2u 5" } },
    { "a point fanned out is written from its values",
      "fan,b=1,a=2 f=1 5\n", "s", { "fan,a=2,b=1 f=1 5000000000", "fan2,k=v x=1 7000000000" } },
    { "a point whose script failed, passed by on_error, keeps its text",
      'fails,b=1,a=2 f=0.5,s="x" 5\n', "ns", { 'fails,a=2,b=1 f=0.5,s="x" 5' } },
    { "points of other series pass as written, tags sorted, among changed ones",
      'other,b=1,a=2 f=0.163896,s="x y",t=true 1700000000000000001\n' ..
      'fields,b=1,a=2 f=0.25,s="old" 1700000000000000002\nother,b=1,a=2 f=0.163896 3\n', "ns",
      { 'other,a=2,b=1 f=0.163896,s="x y",t=true 1700000000000000001',
        'fields,a=2,b=1 f=0.5,s="new" 1700000000000000002', "other,a=2,b=1 f=0.163896 3" } },
    { "tags changed, removed or added and fields added: the line's text copied, the rest written",
      'adds,b=1,a=2,c=3 f=0.163896,s="x y" 1700000000000000005\n', "ns",
      { 'adds,a=2,b=changed,x\\ y=a\\,b f=0.163896,s="x y",added="q\\"uote\\\\",n=5i 1700000000000000005' } },
    { "fields added before a time that is written, not copied",
      "adds,a=2 f=0.5 5\n", "s", { 'adds,a=2,b=changed,x\\ y=a\\,b f=0.5,added="q\\"uote\\\\",n=5i 5000000000' } },
    { "points of other series keep the precision's scaled time",
      "other f=1 5\nfields f=1 5\n", "ms", { "other f=1 5000000", 'fields f=2,s="new" 5000000' } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.same(c[4], lines(h:run_lines(c[2], c[3])))
    end)
  end

  it("an added field the encoder refuses is reported as for any point", function()
    local doc = h:run_lines("timekey,a=1 f=1 5\n")
    assert.same({}, doc.points)
    assert.equal(1, #doc.rejected)
    assert.matches('"time"', doc.rejected[1].error)
  end)
end)

describe("series declarations and limits on clean points", function()
  local db = influxd.for_block { database = "luagw" }
  local g
  local S = influxd.str
  local function rows(q) return db:rows(q, "luagw") end

  lazy_setup(function()
    -- A series no shipped script runs for: its points reach the
    -- declaration clean.
    g = luagw.start { influxd = db, config = {
      series = { decl = {
        tags = { region = { default = "eu west" } },
        fields = { n = { type = "float" }, c = { type = "int", default = "3i" } },
      } },
      listen = { max_key_bytes = 64, max_value_bytes = 100 },
    } }
  end)

  lazy_teardown(function()
    if g then g:destroy() end
  end)

  it("write the defaults they add and the types they convert, from the values", function()
    assert.equal(204, (g:post("/write",
      'decl,host=a n=2i,s="x" 1700000200000000000\n' ..
      'decl,host=b,region=x n=0.5,c=7i 1700000200000000001\n' ..
      'free_form,b=1,a=2 x=1.5,y="z" 1700000200000000002\n')))
    local q = "SELECT * FROM decl"
    assert.is_true(wait(function() return #rows(q) == 2 end, 10), "not stored")
    local r = rows(q)
    assert.same({ "a", "eu west", "2", "3", "x" }, { r[1].host, r[1].region, S(r[1].n), S(r[1].c), r[1].s })
    assert.same({ "b", "x", "0.5", "7" }, { r[2].host, r[2].region, S(r[2].n), S(r[2].c) })
    assert.same({ n = "float", c = "integer", s = "string" }, db:field_types("decl", "luagw"))
    q = "SELECT * FROM free_form"
    assert.is_true(wait(function() return #rows(q) == 1 end, 10), "not stored")
    assert.same({ "1", "2", "1.5", "z" }, { rows(q)[1].b, rows(q)[1].a, S(rows(q)[1].x), rows(q)[1].y })
  end)

  it("check each name and value against the limits when the line is longer than them", function()
    local long = {}
    for i = 1, 10 do long[i] = ("k%d=%s"):format(i, ("v"):rep(90)) end
    local st, body = g:post("/write", table.concat({
      "lim,t=a,x=" .. ("v"):rep(101) .. " f=1 1700000300000000000",
      "lim,t=b " .. ("f"):rep(65) .. "=1 1700000300000000001",
      'lim,t=c s="' .. ("s"):rep(101) .. '" 1700000300000000002',
      "lim,t=d," .. table.concat(long, ",") .. " f=1 1700000300000000003",
      "lim,t=e f=1 1700000300000000004",
    }, "\n"))
    assert.equal(400, st)
    local doc = require("cjson").decode(body)
    assert.same({ 2, 3, 1 }, { doc.accepted, doc.rejected, doc.line })
    assert.matches("tag value of 101 bytes, longer than listen.max_value_bytes (100)", doc.error, 1, true)
    local q = "SELECT * FROM lim"
    assert.is_true(wait(function() return #rows(q) == 2 end, 10), "not stored")
    assert.same({ "d", "e" }, { rows(q)[1].t, rows(q)[2].t })
  end)
end)

describe("a declared series' clean point", function()
  -- What reaches InfluxDB, byte for byte (a fake 2.x server keeps the
  -- lines). A float sent as its shortest digits shows the path: written from
  -- the text it stays as sent; written from its value Grisu2 may add a digit.
  local fake2 = require("support.fake_influx2")
  local f2, g

  lazy_setup(function()
    f2 = fake2.start {}
    g = luagw.start { fake2 = f2, config = {
      monitoring = { flushing_period = 0.1 },
      series = { decl2 = {
        tags = { host = { required = true }, zone = { default = "z1" } },
        fields = { x = { type = "float" }, n = { type = "float" } },
      } },
    } }
  end)

  lazy_teardown(function()
    if g then g:destroy() end
    if f2 then f2:stop() end
  end)

  it("is written from its text when the declaration adds to it, from its values when it converts", function()
    assert.equal(204, (g:post("/write", table.concat({
      "decl2,host=a,zone=z9 x=0.163896 1700000500000000000", -- nothing to add or convert
      "decl2,host=b x=0.163896 1700000500000000001",         -- zone added
      "decl2,host=c,zone=z9 x=0.163896,n=2i 1700000500000000002", -- n converted to a float
    }, "\n"))))
    assert.is_true(wait(function() return #f2:lines() == 3 end, 10), "not delivered")
    local got = f2:lines()
    table.sort(got, function(a, b) return a:match("%d+$") < b:match("%d+$") end)
    local written = ("%.17g"):format(0.163896)
    assert.are_not.equal("0.163896", written) -- the case needs a float Grisu2 lengthens
    assert.same({
      "decl2,host=a,zone=z9 x=0.163896 1700000500000000000",
      "decl2,host=b,zone=z1 x=0.163896 1700000500000000001", -- the default written, the rest copied
      "decl2,host=c,zone=z9 x=" .. written .. ",n=2 1700000500000000002",
    }, got)
  end)
end)
