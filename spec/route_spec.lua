-- gateway/route.c: routes checked, compiled and matched.
local core = require("support.core")
local tree = require("support.conftree")
local ffi, lib = core.ffi, core.lib
local seq, map = tree.seq, tree.map

for _, decl in ipairs {
  "typedef struct gw_routes gw_routes_t;",
  [[typedef struct {
    uint64_t token_pass; uint64_t pass; gw_str_t db; const char *last; size_t lastn; uint64_t last_routes;
  } gw_route_req_t;]],
  [[int gw_routes_check(const gw_conf_node_t *routes, const char *const *outputs, int noutputs,
    const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen, char *warn, size_t warnlen);]],
  "gw_routes_t *gw_routes_create(const gw_conf_node_t *routes, const char *const *outputs, int noutputs);",
  "void gw_routes_destroy(gw_routes_t *r);",
  "int gw_routes_count(const gw_routes_t *r);",
  "void gw_routes_begin(const gw_routes_t *r, const char *token, gw_str_t db, gw_route_req_t *rq);",
  "uint64_t gw_routes_match(const gw_routes_t *r, gw_route_req_t *rq, const gw_point_t *p, const gw_str_t *db, int *route);",
  "int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns, gw_arena_t *a, gw_points_t *out, gw_result_t *res);",
} do pcall(ffi.cdef, decl) end

local OUTPUTS = { "primary", "replica", "archive" }
local TOKENS = seq { map { "name", "ops", "token", "T1" }, map { "name", "billing", "token", "T2" }, "plain" }

local function outputs(list)
  local arr = ffi.new("const char *[?]", #list)
  local keep = {}
  for i, n in ipairs(list) do keep[i] = n; arr[i - 1] = n end
  return arr, #list, keep
end

-- nil, warning when valid; else the message and the path of the node it points at.
local function check(routes, tokens, outs)
  local root, where = tree.build(routes)
  local troot = tokens ~= false and tree.build(tokens or TOKENS) or nil
  local arr, n = outputs(outs or OUTPUTS)
  local bad, msg, warn = ffi.new("const gw_conf_node_t *[1]"), ffi.new("char[512]"), ffi.new("char[512]")
  if lib.gw_routes_check(root, arr, n, troot, bad, msg, 512, warn, 512) == 0 then
    return nil, ffi.string(warn)
  end
  return ffi.string(msg), where(bad[0])
end

-- A compiled router: match(body, token, db, point_db) -> names of the outputs of each point, and route index.
local function router(routes)
  local root = tree.build(routes)
  local arr, n = outputs(OUTPUTS)
  local r = ffi.gc(lib.gw_routes_create(root, arr, n), lib.gw_routes_destroy)
  local ctx = core.context()
  local R = { r = r }
  function R.match(body, token, db, pdb)
    ctx:reset()
    assert.equal(0, lib.gw_lp_parse(body, #body, 1, 0, ctx.arena, ctx.points, ctx.result))
    local rq = ffi.new("gw_route_req_t[1]")
    lib.gw_routes_begin(r, token, db and ffi.new("gw_str_t", db, #db) or ffi.new("gw_str_t"), rq)
    local out, idx = {}, ffi.new("int[1]")
    local pd = pdb and ffi.new("gw_str_t[1]", { { pdb, #pdb } }) or nil
    for i = 0, ctx.points[0].n - 1 do
      local m = lib.gw_routes_match(r, rq, ctx.points[0].v + i, pd, idx)
      local names = {}
      for o = 0, #OUTPUTS - 1 do
        if bit.band(bit.rshift(m, o), 1ULL) ~= 0ULL then names[#names + 1] = OUTPUTS[o + 1] end
      end
      out[#out + 1] = table.concat(names, "+") .. "@" .. idx[0]
    end
    return table.concat(out, " ")
  end
  return R
end

local function route(match, to) return map { "match", match, "to", seq(to) } end
local function catchall(to) return map { "to", seq(to) } end

describe("routes", function()
  describe("checking", function()
    it("takes every criterion, a value or a list of values, and a catch-all", function()
      local msg, warn = check(seq {
        route(map { "series", seq { "requests" } }, { "primary" }),
        route(map { "series", "errors", "tags", map { "tenant", seq { "a", "b" }, "zone", "eu" } }, { "replica" }),
        route(map { "db", seq { "billing" }, "token", seq { "billing" } }, { "primary", "replica" }),
        catchall { "primary", "replica" },
      })
      assert.is_nil(msg)
      assert.equal("", warn)
    end)

    it("warns, without refusing, when no route takes every point", function()
      local msg, warn = check(seq { route(map { "series", "requests" }, { "primary" }) })
      assert.is_nil(msg)
      assert.matches("no route matches every point: a point no route matches is refused %(400%)", warn)
    end)

    it("refuses an unknown output, an output named twice, an empty or missing to:", function()
      local msg, at = check(seq { catchall { "primary", "nope" } })
      assert.equal('routes[0].to: no output is named "nope"', msg)
      assert.equal("[0].to[1]", at)
      msg, at = check(seq { catchall { "primary", "primary" } })
      assert.equal('routes[0].to: output "primary" is named twice', msg)
      msg, at = check(seq { catchall {} })
      assert.matches("routes%[0%]%.to: an empty list", msg)
      msg, at = check(seq { route(map { "series", "x" }, { "primary" }), map { "match", map { "series", "y" } } })
      assert.matches("routes%[1%]%.to: missing", msg)
      assert.equal("[1]", at)
    end)

    it("refuses unknown keys, empty criteria and bad shapes", function()
      local msg, at = check(seq { map { "match", map { "serie", "x" }, "to", seq { "primary" } } })
      assert.equal("routes[0].match.serie: unknown key (expected series, tags, db, token)", msg)
      assert.equal("[0].match.serie", at)
      msg = check(seq { map { "to", seq { "primary" }, "when", "x" } })
      assert.equal("routes[0].when: unknown key (expected match, to)", msg)
      msg, at = check(seq { route(map { "series", seq {} }, { "primary" }) })
      assert.equal("routes[0].match.series: an empty list matches nothing", msg)
      msg = check(seq { route(map { "tags", map { "k", seq {} } }, { "primary" }) })
      assert.equal("routes[0].match.tags.k: an empty list matches nothing", msg)
      msg = check(seq { route(map { "tags", seq { "k" } }, { "primary" }) })
      assert.matches("routes%[0%]%.match%.tags: must be a mapping", msg)
      msg = check(seq { route(map { "db", map { "a", "b" } }, { "primary" }) })
      assert.matches("routes%[0%]%.match%.db: must be a name or a list of names", msg)
      msg = check(map { "to", "primary" })
      assert.matches("routes: must be a list of routes", msg)
      msg = check(seq { "primary" })
      assert.matches("routes%[0%]: must be a mapping", msg)
    end)

    it("refuses a token name no token has, and token: without listen.tokens", function()
      local msg, at = check(seq { route(map { "token", seq { "ops", "bill" } }, { "primary" }), catchall { "primary" } })
      assert.equal('routes[0].match.token: no token of listen.tokens is named "bill"', msg)
      assert.equal("[0].match.token[1]", at)
      msg = check(seq { route(map { "token", "ops" }, { "primary" }) }, false)
      assert.equal("routes[0].match.token: can never match: listen.tokens is not set", msg)
    end)

    it("refuses a route after a catch-all, or narrower than an earlier one", function()
      local msg, at = check(seq { catchall { "primary" }, route(map { "series", "x" }, { "replica" }) })
      assert.matches("^routes%[1%]: can never match: routes%[0%] %(line %d+%) takes every point it could match$", msg)
      assert.equal("[1]", at)
      -- series within an earlier route's series, other criteria added
      msg = check(seq {
        route(map { "series", seq { "a", "b" } }, { "primary" }),
        route(map { "series", "a", "tags", map { "k", "v" } }, { "replica" }),
      })
      assert.matches("routes%[1%]: can never match: routes%[0%]", msg)
      -- tag values within an earlier route's
      msg = check(seq {
        route(map { "tags", map { "k", seq { "v", "w" } } }, { "primary" }),
        route(map { "tags", map { "k", "w", "z", "1" }, "db", "d" }, { "replica" }),
      })
      assert.matches("routes%[1%]: can never match: routes%[0%]", msg)
      -- the same criteria twice
      msg = check(seq { route(map { "token", "ops" }, { "primary" }), route(map { "token", "ops" }, { "replica" }) })
      assert.matches("routes%[1%]: can never match", msg)
    end)

    it("accepts a later route that is wider, or differs, in any criterion", function()
      assert.is_nil((check(seq {
        route(map { "series", "a", "tags", map { "k", "v" } }, { "primary" }),
        route(map { "series", seq { "a", "b" } }, { "replica" }),  -- wider
        route(map { "tags", map { "k", "v" } }, { "archive" }),    -- no series: wider
        route(map { "db", "x" }, { "primary" }),
        route(map { "db", "y" }, { "primary" }),
        route(map { "tags", map { "k", seq { "v", "w" } } }, { "replica" }),
        catchall { "archive" },
      })))
    end)
  end)

  describe("matching", function()
    it("sends every point everywhere without routes", function()
      local R = router(seq {})
      assert.equal(0, lib.gw_routes_count(R.r))
      assert.equal("primary+replica+archive@0 primary+replica+archive@0", R.match("a v=1 1\nb v=1 1\n"))
    end)

    it("takes the first route that matches, by series, with a catch-all", function()
      local R = router(seq {
        route(map { "series", seq { "requests", "ws_requests" } }, { "primary" }),
        route(map { "series", "errors" }, { "replica" }),
        catchall { "primary", "replica" },
      })
      assert.equal("primary@0 replica@1 primary+replica@2 primary@0 primary@0 primary+replica@2",
        R.match("requests v=1 1\nerrors v=1 1\nother v=1 1\nws_requests v=1 1\nrequests v=2 2\nrequest v=1 1\n"))
    end)

    it("refuses (0) a point no route matches", function()
      local R = router(seq { route(map { "series", "requests" }, { "primary" }) })
      assert.equal("primary@0 @-1", R.match("requests v=1 1\nerrors v=1 1\n"))
    end)

    it("matches tags: each key listed, one of its values, an empty value being no tag", function()
      local R = router(seq {
        route(map { "tags", map { "tenant", seq { "a", "b" }, "zone", "eu" } }, { "primary" }),
        route(map { "series", "m", "tags", map { "tenant", "c" } }, { "replica" }),
        catchall { "archive" },
      })
      assert.equal("primary@0 primary@0 archive@2 archive@2 replica@1 archive@2 archive@2",
        R.match("m,tenant=a,zone=eu v=1 1\nm,zone=eu,tenant=b,x=1 v=1 1\nm,tenant=a v=1 1\nm,tenant=a,zone=us v=1 1\n" ..
          "m,tenant=c v=1 1\nn,tenant=c v=1 1\nm,tenant=ab,zone=eu v=1 1\n"))
    end)

    it("matches the request's token by name and its database", function()
      local R = router(seq {
        route(map { "token", "ops" }, { "replica" }),
        route(map { "db", seq { "billing", "audit" } }, { "archive" }),
        route(map { "db", "x", "token", "billing" }, { "primary", "archive" }),
        catchall { "primary" },
      })
      assert.equal("replica@0", R.match("m v=1 1\n", "ops", "billing"))
      assert.equal("archive@1", R.match("m v=1 1\n", "billing", "billing"))
      assert.equal("archive@1", R.match("m v=1 1\n", nil, "audit"))
      assert.equal("primary+archive@2", R.match("m v=1 1\n", "billing", "x"))
      assert.equal("primary@3", R.match("m v=1 1\n", nil, "x"))
      assert.equal("primary@3", R.match("m v=1 1\n", nil, nil))
      assert.equal("primary@3", R.match("m v=1 1\n", "billin", "audi"))
    end)

    it("matches db: against a point's own database when a script set one", function()
      local R = router(seq { route(map { "db", "audit" }, { "archive" }), catchall { "primary" } })
      assert.equal("archive@0 archive@0", R.match("m v=1 1\nn v=1 1\n", nil, "x", "audit"))
      assert.equal("primary@1", R.match("m v=1 1\n", nil, "audit", "x"))
    end)

    it("keeps the series of each point apart while matching a body that mixes them", function()
      local R = router(seq {
        route(map { "series", "a" }, { "primary" }),
        route(map { "series", "b", "tags", map { "k", "1" } }, { "replica" }),
        route(map { "series", "b" }, { "archive" }),
      })
      local body, want = {}, {}
      for i = 1, 200 do
        local s = ({ "a", "b", "b", "c" })[i % 4 + 1]
        local k = i % 3 == 0 and ",k=1" or ""
        body[#body + 1] = ("%s%s v=%di %d"):format(s, k, i, i)
        want[#want + 1] = s == "a" and "primary@0" or s == "c" and "@-1" or k ~= "" and "replica@1" or "archive@2"
      end
      assert.equal(table.concat(want, " "), R.match(table.concat(body, "\n")))
    end)
  end)
end)
