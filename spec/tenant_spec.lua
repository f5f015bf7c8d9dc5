-- gateway/tenant.c: the tokens of listen.tokens (names, tags, databases).
local core = require("support.core")
local tree = require("support.conftree")
local ffi, lib = core.ffi, core.lib
local seq, map = tree.seq, tree.map

for _, decl in ipairs {
  "typedef struct gw_tenants gw_tenants_t;",
  [[typedef struct {
    const char *name; const char *token; const gw_tag_t *tags; uint32_t ntags;
    const char *const *databases; uint32_t ndatabases;
  } gw_tenant_t;]],
  "int gw_name_ok(const char *s);",
  "int gw_tenants_check(const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen);",
  "int gw_tenants_tree_has(const gw_conf_node_t *tokens, const char *name);",
  "gw_tenants_t *gw_tenants_create(const gw_conf_node_t *tokens);",
  "void gw_tenants_destroy(gw_tenants_t *t);",
  "int gw_tenants_count(const gw_tenants_t *t);",
  "const gw_tenant_t *gw_tenants_find(const gw_tenants_t *t, const char *tok, size_t n);",
  "int gw_tenant_database(const gw_tenant_t *tn, gw_str_t db, gw_str_t *out);",
  "int gw_tenant_tag(const gw_tenant_t *tn, gw_point_t *p, uint32_t n, gw_arena_t *a);",
  "int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns, gw_arena_t *a, gw_points_t *out, gw_result_t *res);",
  "int gw_lp_encode(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen);",
} do pcall(ffi.cdef, decl) end

-- Check a tree: nil when valid, else the message and the path of the node it points at.
local function check(value)
  local root, where = tree.build(value)
  local bad, msg = ffi.new("const gw_conf_node_t *[1]"), ffi.new("char[512]")
  if lib.gw_tenants_check(root, bad, msg, 512) == 0 then return nil end
  return ffi.string(msg), where(bad[0])
end

local function compile(value)
  local root = tree.build(value)
  assert.equal(0, lib.gw_tenants_check(root, ffi.new("const gw_conf_node_t *[1]"), nil, 0))
  return ffi.gc(lib.gw_tenants_create(root), lib.gw_tenants_destroy), root
end

local function find(set, tok)
  local tn = lib.gw_tenants_find(set, tok, #tok)
  return tn ~= nil and tn or nil
end

local function s(p) return p ~= nil and ffi.string(p) or nil end

local function database(tn, db)
  local out = ffi.new("gw_str_t[1]")
  local rc = lib.gw_tenant_database(tn, db and ffi.new("gw_str_t", db, #db) or ffi.new("gw_str_t"), out)
  if rc ~= 0 then return rc end
  return rc, out[0].p ~= nil and core.str(out[0]) or nil
end

local BILLING = map { "name", "billing", "token", "Tbill", "tags", map { "tenant", "billing" },
  "databases", seq { "billing", "luna_monitoring" } }

describe("tokens", function()
  describe("checking listen.tokens", function()
    it("takes strings, maps and a mix of both", function()
      assert.is_nil(check(seq { "a", "b" }))
      assert.is_nil(check(seq { BILLING, "plain", map { "token", "x" }, map { "token", "y", "databases", "one" } }))
    end)

    it("refuses a map without token:, an empty token, and unknown keys", function()
      local msg, at = check(seq { "ok", map { "name", "n" } })
      assert.matches("listen.tokens%[1%]%.token: missing", msg)
      assert.equal("[1]", at)
      msg, at = check(seq { map { "token", "" } })
      assert.matches("listen.tokens%[0%]%.token: must be a non%-empty string", msg)
      assert.equal("[0].token", at)
      msg, at = check(seq { "" })
      assert.matches("a token must not be empty", msg)
      msg, at = check(seq { map { "token", "x", "tag", map { "a", "b" } } })
      assert.matches("listen.tokens%[0%]%.tag: unknown key %(expected name, token, tags, databases%)", msg)
      assert.equal("[0].tag", at)
    end)

    it("refuses a token without a name that sets tags", function()
      local msg, at = check(seq { map { "token", "x", "tags", map { "tenant", "a" } } })
      assert.matches("listen.tokens%[0%]%.tags: a token that sets tags needs a name", msg)
      assert.equal("[0].tags", at)
    end)

    it("refuses two tokens of one name, and two of one secret without quoting it", function()
      local msg, at = check(seq { map { "name", "a", "token", "x" }, map { "name", "a", "token", "y" } })
      assert.matches('listen.tokens%[1%]%.name: "a" is the name of listen.tokens%[0%] already', msg)
      assert.equal("[1].name", at)
      msg, at = check(seq { "s3cret", map { "name", "b", "token", "s3cret" } })
      assert.matches("listen.tokens%[1%]: the same token as listen.tokens%[0%]", msg)
      assert.is_nil(msg:find("s3cret", 1, true))
      assert.equal("[1]", at)
    end)

    it("refuses bad names, empty tag values and an empty databases list", function()
      assert.matches("%.name: must be 1 to 64 letters", (check(seq { map { "name", "a b", "token", "x" } })))
      assert.matches("%.name: must be", (check(seq { map { "name", "-a", "token", "x" } })))
      assert.matches("%.name: must be", (check(seq { map { "name", ("n"):rep(65), "token", "x" } })))
      assert.is_nil(check(seq { map { "name", ("n"):rep(64), "token", "x" } }))
      assert.matches("tags%.tenant: must be a non%-empty value",
        (check(seq { map { "name", "a", "token", "x", "tags", map { "tenant", "" } } })))
      local msg, at = check(seq { map { "token", "x", "databases", seq {} } })
      assert.matches("databases: an empty list lets the token write nowhere", msg)
      assert.equal("[0].databases", at)
      assert.matches("databases: each item must be a non%-empty name",
        (check(seq { map { "token", "x", "databases", seq { "a", "" } } })))
    end)

    it("knows which names the tree has", function()
      local root = tree.build(seq { BILLING, "plain" })
      assert.equal(1, lib.gw_tenants_tree_has(root, "billing"))
      assert.equal(0, lib.gw_tenants_tree_has(root, "plain"))
      assert.equal(0, lib.gw_tenants_tree_has(nil, "billing"))
    end)

    it("accepts names of letters, digits, _, - and .", function()
      assert.equal(1, lib.gw_name_ok("a-b_c.9"))
      assert.equal(0, lib.gw_name_ok(".a"))
      assert.equal(0, lib.gw_name_ok(""))
      assert.equal(0, lib.gw_name_ok("a/b"))
    end)
  end)

  describe("finding a token", function()
    it("finds each token by its secret, whole, and nothing else", function()
      local set = compile(seq { BILLING, "plain", map { "name", "ops", "token", "Tops" } })
      assert.equal(3, lib.gw_tenants_count(set))
      assert.equal("billing", s(find(set, "Tbill").name))
      assert.is_nil(s(find(set, "plain").name))
      assert.equal("plain", s(find(set, "plain").token))
      assert.equal("ops", s(find(set, "Tops").name))
      assert.is_nil(find(set, "Tbil"))
      assert.is_nil(find(set, "Tbill2"))
      assert.is_nil(find(set, ""))
      assert.is_nil(find(set, "Tbill\0"))
    end)

    it("has no tokens for no tree", function()
      local set = ffi.gc(lib.gw_tenants_create(nil), lib.gw_tenants_destroy)
      assert.equal(0, lib.gw_tenants_count(set))
      assert.is_nil(find(set, "x"))
    end)
  end)

  describe("databases", function()
    local set
    before_each(function() set = compile(seq { BILLING, "plain", map { "name", "one", "token", "T1", "databases", "solo" } }) end)

    it("lets a token write to its databases, the first when it names none, and no other", function()
      local tn = find(set, "Tbill")
      assert.same({ 0, "billing" }, { database(tn, nil) })
      assert.same({ 0, "billing" }, { database(tn, "") })
      assert.same({ 0, "luna_monitoring" }, { database(tn, "luna_monitoring") })
      assert.equal(-1, (database(tn, "other")))
      assert.equal(-1, (database(tn, "billin")))
      assert.same({ 0, "solo" }, { database(find(set, "T1"), nil) })
    end)

    it("lets a token without databases, or no token, name any database and default to none", function()
      local tn = find(set, "plain")
      assert.same({ 0, "x" }, { database(tn, "x") })
      assert.same({ 0 }, { database(tn, nil) })
      assert.same({ 0, "y" }, { database(nil, "y") })
    end)
  end)

  describe("tags", function()
    local ctx, buf
    before_each(function() ctx = core.context(); buf = ffi.new("gw_buf_t[1]") end)
    after_each(function() ctx:free(); lib.gw_buf_free(buf) end)

    -- Parse body, tag its points with tn, encode them: the lines.
    local function tag(tn, body)
      ctx:reset()
      assert.equal(0, lib.gw_lp_parse(body, #body, 1, 0, ctx.arena, ctx.points, ctx.result))
      assert.equal(0, lib.gw_tenant_tag(tn, ctx.points[0].v, ctx.points[0].n, ctx.arena))
      buf[0].len = 0
      local err = ffi.new("char[256]")
      for i = 0, ctx.points[0].n - 1 do
        assert.equal(0, lib.gw_lp_encode(buf, ctx.points[0].v + i, 0, err, 256), ffi.string(err))
      end
      return ffi.string(buf[0].data, buf[0].len)
    end

    it("sets the token's tags over a client's own value, and adds them where missing", function()
      local set = compile(seq { map { "name", "b", "token", "T", "tags", map { "tenant", "billing", "zone", "z 1" } } })
      local tn = find(set, "T")
      assert.equal(table.concat({
        "m,tenant=billing,zone=z\\ 1 v=1i 1",
        "m,a=1,tenant=billing,zone=z\\ 1 v=2i 2",
        "m,tenant=billing,zone=z\\ 1,zz=9 v=3i 3",
        "m,tenant=billing,zone=z\\ 1 v=4i 4",
      }, "\n") .. "\n", tag(tn, "m v=1i 1\nm,tenant=ops,a=1 v=2i 2\nm,zz=9,zone=x v=3i 3\nm,tenant=billing v=4i 4\n"))
    end)

    it("leaves points alone for a token without tags, or none", function()
      local set = compile(seq { "plain" })
      assert.equal("m,tenant=ops v=1i 1\n", tag(find(set, "plain"), "m,tenant=ops v=1i 1\n"))
      assert.equal("m,tenant=ops v=1i 1\n", tag(nil, "m,tenant=ops v=1i 1\n"))
    end)
  end)
end)
