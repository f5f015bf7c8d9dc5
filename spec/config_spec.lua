-- gateway/config.c: loading config/luagw.yaml, defaults, every value type,
-- ${VAR} expansion, paths taken beside the config file, and the one-line
-- "file:line:column: key: what" errors; gateway/main.c: which file is read
-- without -c.
local core = require("support.core")
local proc = require("support.proc")
local ffi, lib = core.ffi, core.lib

-- Declare only what no other spec declared yet: busted runs every spec in
-- one LuaJIT state, and ffi.cdef refuses a second definition. The config is
-- opaque here: values are read by key (gw_config_value), as --print-config
-- prints them, so the layout of gw_config_t is free to change.
local function declared(f) return (pcall(f)) end
if not declared(function() return ffi.typeof("gw_conf_node_t") end) then
  ffi.cdef [[
  typedef struct gw_conf_node {
    int kind; char *key; char *value; int plain; size_t line, column;
    struct gw_conf_node *child; struct gw_conf_node *next;
  } gw_conf_node_t;
  ]]
end
if not declared(function() return ffi.typeof("gw_config_t") end) then
  ffi.cdef "typedef struct gw_config gw_config_t;"
end
if not declared(function() return lib.gw_config_value end) then
  ffi.cdef [[
  int gw_config_value(const gw_config_t *cfg, const char *key, gw_buf_t *out);
  const gw_conf_node_t *gw_config_tree(const gw_config_t *cfg, const char *key);
  ]]
end
if not declared(function() return lib.gw_config_load end) then
  ffi.cdef [[
  gw_config_t *gw_config_load(const char *path, char *err, size_t errlen);
  void gw_config_free(gw_config_t *cfg);
  ]]
end
if not declared(function() return ffi.typeof("FILE") end) then ffi.cdef "typedef struct _IO_FILE FILE;" end
if not declared(function() return lib.gw_config_print_reference end) then
  ffi.cdef "void gw_config_print_reference(FILE *out);"
end
for name, decl in pairs {
  setenv = "int setenv(const char *name, const char *value, int overwrite);",
  unsetenv = "int unsetenv(const char *name);",
  fopen = "FILE *fopen(const char *path, const char *mode);",
  fclose = "int fclose(FILE *f);",
} do
  if not declared(function() return ffi.C[name] end) then
    ffi.cdef(decl)
  end
end

-- Every key of the contract, with its default.
local DEFAULTS = {
  ["listen.address"] = "127.0.0.1", ["listen.port"] = 8080, ["listen.threads"] = 2,
  ["listen.max_body_bytes"] = 16 * 1024 * 1024, ["listen.connection_timeout"] = 30,
  ["listen.max_connections"] = 1024, ["listen.max_header_bytes"] = 32 * 1024,
  ["listen.max_points"] = 1000000, ["listen.max_line_bytes"] = 1024 * 1024, ["listen.max_tags"] = 65535,
  ["listen.max_fields"] = 65535, ["listen.max_key_bytes"] = 1024, ["listen.max_value_bytes"] = 64 * 1024,
  ["monitoring.storage_type"] = "influx", ["monitoring.version"] = 1,
  ["monitoring.host"] = "127.0.0.1", ["monitoring.port"] = 8086, ["monitoring.use_ssl"] = false,
  ["monitoring.database"] = "luna_monitoring", ["monitoring.rp"] = "", ["monitoring.user"] = "",
  ["monitoring.password"] = "", ["monitoring.organization"] = "luna",
  ["monitoring.bucket"] = "luna_monitoring", ["monitoring.token"] = "",
  ["monitoring.flushing_period"] = 1, ["monitoring.batch_size"] = 5000,
  ["monitoring.buffer_limit"] = 1000000, ["monitoring.buffer_limit_bytes"] = 128 * 1024 * 1024,
  ["monitoring.gzip"] = false, ["monitoring.timeout"] = 10,
  ["monitoring.retry_max"] = 30, ["monitoring.shutdown_timeout"] = 10,
  ["monitoring.overflow"] = "reject", ["monitoring.dead_letter"] = "",
  ["spool.dir"] = "", ["spool.max_bytes"] = 1024 * 1024 * 1024, ["spool.fsync"] = "batch",
  ["spool.fsync_interval"] = 1,
  ["scripts.dir"] = "scripts", ["scripts.timeout_ms"] = 50, ["scripts.memory_limit"] = 64 * 1024 * 1024,
  ["scripts.on_error"] = "pass", ["scripts.memo_entries"] = 65536, ["scripts.memo_verify"] = false,
  ["scripts.series"] = "{}", ["scripts.params"] = "{}",
  ["log.level"] = "info",
  ["service"] = "", ["series"] = "{}", -- top-level keys
  ["listen.tokens"] = "[]", ["listen.tls_cert"] = "", ["listen.tls_key"] = "",
  ["monitoring.tls_verify"] = true, ["monitoring.tls_ca"] = "",
  ["listen.max_connections_per_client"] = 256, ["listen.probe_connections"] = 16,
  ["listen.drain_seconds"] = 0,
  ["listen.max_inflight_bytes"] = 128 * 1024 * 1024,
  ["outputs"] = "{}", ["routes"] = "[]", ["monitoring.passthrough"] = false, ["monitoring.max_databases"] = 64,
}
local TREES = { ["scripts.series"] = true, ["scripts.params"] = true, ["series"] = true, ["listen.tokens"] = true,
  ["outputs"] = true, ["routes"] = true }
local KEYS = {}
for k in pairs(DEFAULTS) do KEYS[#KEYS + 1] = k end
table.sort(KEYS)

-- The value of key in a loaded config, as text (what --print-config KEY
-- prints); nil for an unknown key.
local function value(cfg, key)
  local b = ffi.new("gw_buf_t[1]")
  local rc = lib.gw_config_value(cfg, key, b)
  local text = b[0].data ~= nil and ffi.string(b[0].data, b[0].len) or ""
  lib.gw_buf_free(b)
  if rc ~= 0 then return nil end
  return text
end

-- A loaded config as a flat Lua table keyed like the YAML, each value of the
-- type of its default: strings, numbers, booleans; a tree as its default
-- ("{}", "[]") when empty, else "tree".
local function flatten(cfg)
  local t = {}
  for _, key in ipairs(KEYS) do
    local v, d = assert(value(cfg, key), key), DEFAULTS[key]
    if TREES[key] then
      v = lib.gw_config_tree(cfg, key) == nil and d or "tree"
    elseif type(d) == "boolean" then
      assert(v == "true" or v == "false", key .. " = " .. v)
      v = v == "true"
    elseif type(d) == "number" then
      v = assert(tonumber(v), key .. " = " .. v)
    end
    t[key] = v
  end
  return t
end

local function load(path)
  local err = ffi.new("char[512]")
  local cfg = lib.gw_config_load(path, err, 512)
  if cfg == nil then return nil, ffi.string(err) end
  return ffi.gc(cfg, lib.gw_config_free)
end

-- The defaults as loaded from a file in dir: scripts.dir, a path, is taken
-- beside the file.
local function defaults_in(dir)
  local t = {}
  for k, v in pairs(DEFAULTS) do t[k] = v end
  t["scripts.dir"] = dir .. "/scripts"
  return t
end
-- Where write() puts its files (os.tmpname's directory).
local TMP = (function()
  local p = os.tmpname()
  os.remove(p)
  return p:match("^(.*)/[^/]*$")
end)()

local written = {}
local function write(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  written[#written + 1] = path
  return path
end

-- Load YAML text; return the flattened config, or fail the test with the error.
local function values(text)
  local cfg, err = load(write(text))
  assert(cfg, err)
  return flatten(cfg)
end

-- Load YAML text that must fail; check the whole error line: exact location
-- and key, and the message (exact string, or a Lua pattern when plain is false).
local function rejects(text, where, key, what, pattern)
  local path = write(text)
  local cfg, err = load(path)
  assert.is_nil(cfg)
  assert.is_nil(err:find("\n", 1, true), "error must be one line: " .. err)
  local prefix = ("%s:%s: %s: "):format(path, where, key)
  assert.are.equal(prefix, err:sub(1, #prefix))
  local rest = err:sub(#prefix + 1)
  if pattern then
    assert.is_truthy(rest:find(what), ("%q does not match %q"):format(rest, what))
  else
    assert.are.equal(what, rest)
  end
end

local function setenv(name, value)
  if value == nil then ffi.C.unsetenv(name) else ffi.C.setenv(name, value, 1) end
end

after_each(function()
  for _, p in ipairs(written) do os.remove(p) end
  written = {}
end)

describe("config/luagw.yaml as shipped", function()
  it("loads without error and holds exactly the documented defaults", function()
    setenv("STATE_DIRECTORY", nil)
    local cfg, err = load("config/luagw.yaml")
    assert(cfg, err)
    local want = defaults_in("config")
    -- The deployment's service, and the series declarations it includes.
    want.service, want.series = "luna-sender", "tree"
    -- The spool in systemd's StateDirectory (/var/lib/luagw without systemd).
    want["spool.dir"] = "/var/lib/luagw/spool"
    assert.are.same(want, flatten(cfg))
    setenv("STATE_DIRECTORY", "/run/elsewhere")
    cfg = assert(load("config/luagw.yaml"))
    setenv("STATE_DIRECTORY", nil)
    assert.are.equal("/run/elsewhere/spool", value(cfg, "spool.dir"))
  end)

  it("spells out every key, each once", function()
    local seen, section = {}, nil
    for line in io.lines("config/luagw.yaml") do
      local s = line:match("^(%w+):%s*$")
      local k = line:match("^  (%w[%w_]*):")
      local top = line:match("^(%w+):%s*[^%s#]")
      if s then section = s end
      if top == "include" and line:match("series%.yaml") then seen.series = true
      elseif top then seen[top] = true end
      if k then
        local key = section .. "." .. k
        assert.is_nil(seen[key], "twice: " .. key)
        seen[key] = true
      end
    end
    for _, key in ipairs(KEYS) do assert.is_true(seen[key], "missing: " .. key) end
    for key in pairs(seen) do assert.is_not_nil(DEFAULTS[key], "not in the contract: " .. key) end
  end)
end)

describe("defaults", function()
  it("an empty file means every default", function()
    assert.are.same(defaults_in(TMP), values(""))
  end)

  it("a file of only comments, or a lone ---, means every default", function()
    assert.are.same(defaults_in(TMP), values("# nothing here\n\n   # really\n"))
    assert.are.same(defaults_in(TMP), values("---\n"))
  end)

  it("a section with every key commented out means its defaults", function()
    assert.are.same(defaults_in(TMP), values("listen:\n  # port: 1\nlog:\n"))
  end)

  it("fills only the keys the file leaves out", function()
    local v = values("listen:\n  port: 9000\nmonitoring:\n  rp: weekly\n")
    local want = defaults_in(TMP)
    want["listen.port"], want["monitoring.rp"] = 9000, "weekly"
    assert.are.same(want, v)
  end)

  it("every key reads back by name; an unknown one does not", function()
    local cfg = assert(load(write("")))
    for _, key in ipairs(KEYS) do
      local v = value(cfg, key)
      assert.is_not_nil(v, key)
      assert.is_nil(v:find("(null)", 1, true), key) -- a NULL string printed
    end
    assert.is_nil(value(cfg, "listen.nope"))
    assert.is_nil(value(cfg, "listen"))
    assert.is_true(lib.gw_config_tree(cfg, "listen.port") == nil) -- not a tree
  end)
end)

describe("a fully set file (fixtures/config/v2_full.yaml)", function()
  it("reads every key of every type", function()
    setenv("LUAGW_SPEC_TOKEN", "s3cr3t==")
    local cfg, err = load("spec/fixtures/config/v2_full.yaml")
    setenv("LUAGW_SPEC_TOKEN", nil)
    assert(cfg, err)
    assert.are.same({
      ["listen.address"] = "::1", ["listen.port"] = 9090, ["listen.threads"] = 8,
      ["listen.max_body_bytes"] = 512 * 1024, ["listen.connection_timeout"] = 120,
      ["listen.max_connections"] = 300, ["listen.max_header_bytes"] = 16 * 1024, ["listen.max_points"] = 50000,
      ["listen.max_connections_per_client"] = 32, ["listen.probe_connections"] = 4,
      ["listen.max_inflight_bytes"] = 64 * 1024 * 1024,
      ["listen.max_line_bytes"] = 64 * 1024, ["listen.max_tags"] = 32, ["listen.max_fields"] = 64,
      ["listen.max_key_bytes"] = 128, ["listen.max_value_bytes"] = 4 * 1024,
      ["monitoring.storage_type"] = "influx", ["monitoring.version"] = 2,
      ["monitoring.host"] = "influx.example.org", ["monitoring.port"] = 443, ["monitoring.use_ssl"] = true,
      ["monitoring.database"] = "", ["monitoring.rp"] = "autogen", ["monitoring.user"] = "reader",
      ["monitoring.password"] = 'p@ss: "word"', ["monitoring.organization"] = "Luna Org",
      ["monitoring.bucket"] = "metrics/raw", ["monitoring.token"] = "s3cr3t==",
      ["monitoring.flushing_period"] = 0.25, ["monitoring.batch_size"] = 10000,
      ["monitoring.buffer_limit"] = 2000000, ["monitoring.buffer_limit_bytes"] = 256 * 1024 * 1024,
      ["monitoring.gzip"] = true, ["monitoring.timeout"] = 2.5,
      ["monitoring.retry_max"] = 60, ["monitoring.shutdown_timeout"] = 0,
      ["monitoring.overflow"] = "drop_oldest", ["monitoring.dead_letter"] = "/var/lib/luagw/dead-letter.lp",
      ["spool.dir"] = "/var/lib/luagw/spool", ["spool.max_bytes"] = 64 * 1024 * 1024 * 1024,
      ["spool.fsync"] = "interval", ["spool.fsync_interval"] = 0.5,
      ["scripts.dir"] = "/etc/luagw/scripts", ["scripts.timeout_ms"] = 50,
      ["scripts.memory_limit"] = 64 * 1024 * 1024, ["scripts.on_error"] = "pass",
      ["scripts.memo_entries"] = 65536, ["scripts.memo_verify"] = false,
      ["scripts.series"] = "{}", ["scripts.params"] = "{}", ["log.level"] = "debug",
      ["service"] = "", ["series"] = "{}",
      ["listen.tokens"] = "[]", ["listen.tls_cert"] = "", ["listen.tls_key"] = "",
      ["monitoring.tls_verify"] = true, ["monitoring.tls_ca"] = "",
      ["listen.drain_seconds"] = 7.5,
      ["outputs"] = "{}", ["routes"] = "[]", ["monitoring.passthrough"] = false, ["monitoring.max_databases"] = 64,
    }, flatten(cfg))
  end)
end)

describe("value types", function()
  local function one(section, key, yaml_value)
    return values(("%s:\n  %s: %s\n"):format(section, key, yaml_value))[section .. "." .. key]
  end

  it("int: decimal within bounds, quoted or not", function()
    assert.are.equal(1, one("listen", "port", "1"))
    assert.are.equal(65535, one("listen", "port", "65535"))
    assert.are.equal(8081, one("listen", "port", '"8081"'))
    assert.are.equal(8082, one("listen", "port", "+8082"))
    assert.are.equal(256, one("listen", "threads", "256"))
    assert.are.equal(2, one("monitoring", "version", "2"))
  end)

  it("int: rejects out of bounds and anything not a plain decimal", function()
    local want = "must be an integer between 1 and 65535, got "
    for _, bad in ipairs { "0", "65536", "-1", "8080.0", "0x1F90", "8_080", "1e3", "99999999999999999999" } do
      rejects("listen:\n  port: " .. bad .. "\n", "2:9", "listen.port", want .. '"' .. bad .. '"')
    end
    rejects('listen:\n  port: " 8080"\n', "2:9", "listen.port", want .. '" 8080"')
    rejects("listen:\n  threads: 257\n", "2:12", "listen.threads",
      'must be an integer between 1 and 256, got "257"')
    rejects("monitoring:\n  version: 3\n", "2:12", "monitoring.version",
      'must be an integer between 1 and 2, got "3"')
  end)

  it("uint32: full range up to the bound", function()
    assert.are.equal(1000000000, one("monitoring", "buffer_limit", "1000000000"))
    assert.are.equal(1, one("monitoring", "batch_size", "1"))
    rejects("monitoring:\n  buffer_limit: 1000000001\n", "2:17", "monitoring.buffer_limit",
      'must be an integer between 1 and 1000000000, got "1000000001"')
    rejects("monitoring:\n  batch_size: -5\n", "2:15", "monitoring.batch_size",
      'must be an integer between 1 and 1000000, got "-5"')
  end)

  it("size: bytes or a whole number with a 1024-based suffix", function()
    local cases = {
      ["1024"] = 1024, ["4096"] = 4096, ["1k"] = 1024, ["1K"] = 1024, ["1KiB"] = 1024,
      ["16M"] = 16 * 2 ^ 20, ["16MiB"] = 16 * 2 ^ 20, ["1G"] = 2 ^ 30, ["1GiB"] = 2 ^ 30,
      ['"512 KiB"'] = 512 * 1024, ['"10MiB"'] = 10 * 2 ^ 20,
      -- SI units, powers of 1000
      ["16MB"] = 16000000, ["2000kB"] = 2000000, ["1GB"] = 1000000000, ["4096B"] = 4096,
    }
    for text, want in pairs(cases) do
      -- (max_line_bytes: same bounds as max_body_bytes, and no rule beside it)
      assert.are.equal(want, one("listen", "max_line_bytes", text), text)
    end
    assert.are.equal(16000000, one("listen", "max_body_bytes", "16MB"))
  end)

  it("size: rejects KB (1000 or 1024?), fractions, and values out of 1KiB..1GiB", function()
    local want = "must be a size between 1KiB and 1GiB (bytes, or a whole number with KiB, MiB, GiB, TiB or kB, MB, " ..
      "GB, TB), got "
    for _, bad in ipairs { "1023", "2GiB", "1073741825", "1100MB", "16KB", "16mb", "16m", "1.5MiB", "-1k", "MiB",
      "16 MiB x", "99999999999999999999G", "18014398509481984G", "16777216TB", "1TB" } do
      rejects("listen:\n  max_body_bytes: " .. bad .. "\n", "2:19", "listen.max_body_bytes", want .. '"' .. bad .. '"')
    end
  end)

  it("seconds: fractions and exponents, bounds inclusive", function()
    assert.are.equal(0.2, one("monitoring", "flushing_period", "0.2"))
    assert.are.equal(0.001, one("monitoring", "flushing_period", "0.001"))
    assert.are.equal(0.001, one("monitoring", "flushing_period", "1e-3"))
    assert.are.equal(0.5, one("monitoring", "flushing_period", ".5"))
    assert.are.equal(3600, one("monitoring", "flushing_period", "3600"))
    assert.are.equal(0, one("monitoring", "shutdown_timeout", "0"))
    assert.are.equal(0.1, one("monitoring", "timeout", "0.1"))
    assert.are.equal(600, one("monitoring", "timeout", "600"))
  end)

  it("seconds: rejects zero period, units, inf/nan and out of bounds", function()
    local want = "must be a number of seconds between 0.001 and 3600, got "
    for _, bad in ipairs { "0", "0.0009", "3600.5", "-1", "1s", "inf", ".inf", "nan", "0x10", "." } do
      rejects("monitoring:\n  flushing_period: " .. bad .. "\n", "2:20", "monitoring.flushing_period",
        want .. '"' .. bad .. '"')
    end
    rejects("monitoring:\n  timeout: 0.05\n", "2:12", "monitoring.timeout",
      'must be a number of seconds between 0.1 and 600, got "0.05"')
    rejects("monitoring:\n  retry_max: 3601\n", "2:14", "monitoring.retry_max",
      'must be a number of seconds between 0.1 and 3600, got "3601"')
  end)

  it("bool: true/false, yes/no, on/off in any case", function()
    for text, want in pairs { ["true"] = true, ["false"] = false, ["yes"] = true, ["no"] = false,
      ["on"] = true, ["off"] = false, ["True"] = true, ["NO"] = false, ['"on"'] = true } do
      assert.are.equal(want, one("monitoring", "gzip", text), text)
    end
    for _, bad in ipairs { "1", "0", "y", "enabled", '""' } do
      rejects("monitoring:\n  use_ssl: " .. bad .. "\n", "2:12", "monitoring.use_ssl",
        "must be true or false (or yes/no, on/off), got " .. (bad == '""' and '""' or '"' .. bad .. '"'))
    end
  end)

  it("enum: exactly one of the listed names", function()
    for _, level in ipairs { "debug", "info", "warn", "error" } do
      assert.are.equal(level, one("log", "level", level))
    end
    rejects("log:\n  level: INFO\n", "2:10", "log.level",
      'must be one of debug, info, warn, error, got "INFO"')
    rejects("log:\n  level: verbose\n", "2:10", "log.level",
      'must be one of debug, info, warn, error, got "verbose"')
    rejects("monitoring:\n  storage_type: prometheus\n", "2:17", "monitoring.storage_type",
      'must be one of influx, got "prometheus"')
  end)

  it("string: any scalar as text; an empty value is the empty string", function()
    assert.are.equal("123", one("monitoring", "database", "123"))
    assert.are.equal("a b: c", one("monitoring", "password", "'a b: c'"))
    assert.are.equal("ünï", one("monitoring", "user", "ünï"))
    assert.are.equal("", one("monitoring", "rp", ""))
    assert.are.equal("", one("monitoring", "rp", "~"))
    assert.are.equal("null", one("monitoring", "rp", '"null"'))
    assert.are.equal("two\nlines\n", values("monitoring:\n  password: |\n    two\n    lines\n")["monitoring.password"])
  end)

  it("string: required ones must not be empty", function()
    rejects('listen:\n  address: ""\n', "2:12", "listen.address", 'must be a non-empty string, got ""')
    rejects("scripts:\n  dir:\n", "2:7", "scripts.dir", 'must be a non-empty string, got ""')
  end)

  it("string: a NUL byte is refused, not silently cut", function()
    rejects('monitoring:\n  password: "ab\\0cd"\n', "2:13", "monitoring.password", "must not contain a NUL byte")
  end)
end)

describe("${VAR} expansion", function()
  before_each(function()
    setenv("LUAGW_T_HOST", "db.internal")
    setenv("LUAGW_T_PORT", "9999")
    setenv("LUAGW_T_EMPTY", "")
    setenv("LUAGW_T_UNSET", nil)
  end)
  after_each(function()
    for _, n in ipairs { "LUAGW_T_HOST", "LUAGW_T_PORT", "LUAGW_T_EMPTY" } do setenv(n, nil) end
  end)

  it("replaces a whole value, typed after expansion", function()
    local v = values("monitoring:\n  host: ${LUAGW_T_HOST}\n  port: ${LUAGW_T_PORT}\n")
    assert.are.equal("db.internal", v["monitoring.host"])
    assert.are.equal(9999, v["monitoring.port"])
  end)

  it("expands several references inside one value, in any quoting", function()
    local v = values("monitoring:\n  database: 'x-${LUAGW_T_HOST}:${LUAGW_T_PORT}-y'\n" ..
      '  user: "${LUAGW_T_PORT}${LUAGW_T_PORT}"\n')
    assert.are.equal("x-db.internal:9999-y", v["monitoring.database"])
    assert.are.equal("99999999", v["monitoring.user"])
  end)

  it("${VAR:-default} takes the default when unset or empty, the value otherwise", function()
    local v = values("listen:\n  port: ${LUAGW_T_UNSET:-7070}\n  address: ${LUAGW_T_EMPTY:-0.0.0.0}\n" ..
      "monitoring:\n  host: ${LUAGW_T_HOST:-fallback}\n  rp: ${LUAGW_T_UNSET:-}\n" ..
      "  password: ${LUAGW_T_UNSET:-a:b-c}\n")
    assert.are.equal(7070, v["listen.port"])
    assert.are.equal("0.0.0.0", v["listen.address"])
    assert.are.equal("db.internal", v["monitoring.host"])
    assert.are.equal("", v["monitoring.rp"])
    assert.are.equal("a:b-c", v["monitoring.password"])
  end)

  it("a set but empty variable without default expands to the empty string", function()
    assert.are.equal("", values("monitoring:\n  token: ${LUAGW_T_EMPTY}\n")["monitoring.token"])
  end)

  it("$$ is a literal $, a lone $ stays as it is", function()
    local v = values("monitoring:\n  password: 'a$$b$${LUAGW_T_HOST}c$d$'\n")
    assert.are.equal("a$b${LUAGW_T_HOST}c$d$", v["monitoring.password"])
  end)

  it("an unset variable without default is an error naming it", function()
    rejects("monitoring:\n  host: ok\n  token: ${LUAGW_T_UNSET}\n", "3:10", "monitoring.token",
      "environment variable LUAGW_T_UNSET is not set (write ${LUAGW_T_UNSET:-default} for a fallback)")
    rejects("monitoring:\n  host: 'a${LUAGW_T_HOST}b${LUAGW_T_UNSET}'\n", "2:9", "monitoring.host",
      "environment variable LUAGW_T_UNSET is not set (write ${LUAGW_T_UNSET:-default} for a fallback)")
  end)

  it("a malformed reference is an error, without echoing the value", function()
    rejects("monitoring:\n  password: 'se${cret'\n", "2:13", "monitoring.password",
      "unterminated ${ (write $$ for a literal $)")
    rejects("monitoring:\n  user: ${9LIVES}\n", "2:9", "monitoring.user",
      'bad variable reference "${9LIVES}": expected ${NAME} or ${NAME:-default}')
    rejects("monitoring:\n  user: ${A-B}\n", "2:9", "monitoring.user",
      'bad variable reference "${A-B}": expected ${NAME} or ${NAME:-default}')
    rejects("monitoring:\n  user: ${}\n", "2:9", "monitoring.user",
      'bad variable reference "${}": expected ${NAME} or ${NAME:-default}')
  end)

  it("a bad expanded value shows both what was checked and what was written", function()
    setenv("LUAGW_T_PORT", "80a")
    rejects("monitoring:\n  port: ${LUAGW_T_PORT}\n", "2:9", "monitoring.port",
      'must be an integer between 1 and 65535, got "80a" (from "${LUAGW_T_PORT}")')
  end)

  it("keys are not expanded", function()
    rejects("listen:\n  ${LUAGW_T_HOST}: 1\n", "2:3", "listen.${LUAGW_T_HOST}", "unknown key", true)
  end)
end)

describe("paths", function()
  local luagw = require("support.luagw")
  local BIN = os.getenv("LUAGW_BIN") or (luagw.ROOT .. "/gateway/luagw")
  local dir
  before_each(function() dir = proc.tmpdir("luagw-paths") end)
  after_each(function() proc.rmdir(dir); setenv("LUAGW_T_SPOOL", nil) end)

  local function str(cfg, key) return value(cfg, key) end

  it("a relative path is taken beside the config file; an absolute one as written, \"\" as none", function()
    setenv("LUAGW_T_SPOOL", "var/spool")
    proc.write_file(dir .. "/luagw.yaml", table.concat({
      "listen:", "  tls_cert: tls/cert.pem", "  tls_key: /abs/key.pem",
      "monitoring:", "  tls_ca: ../ca.pem", "  dead_letter: dead.lp",
      "spool:", "  dir: ${LUAGW_T_SPOOL}", "scripts:", "  dir: my scripts", "" }, "\n"))
    local cfg = assert(load(dir .. "/luagw.yaml"))
    assert.are.equal(dir .. "/tls/cert.pem", str(cfg, "listen.tls_cert"))
    assert.are.equal("/abs/key.pem", str(cfg, "listen.tls_key"))
    assert.are.equal(dir .. "/../ca.pem", str(cfg, "monitoring.tls_ca"))
    assert.are.equal(dir .. "/dead.lp", str(cfg, "monitoring.dead_letter"))
    assert.are.equal(dir .. "/var/spool", str(cfg, "spool.dir")) -- after ${} expansion
    assert.are.equal(dir .. "/my scripts", str(cfg, "scripts.dir"))
    proc.write_file(dir .. "/none.yaml", "spool:\n  dir: \"\"\nmonitoring:\n  dead_letter:\n")
    cfg = assert(load(dir .. "/none.yaml"))
    assert.are.equal("", str(cfg, "spool.dir"))
    assert.are.equal("", str(cfg, "monitoring.dead_letter"))
    assert.are.equal(dir .. "/scripts", str(cfg, "scripts.dir")) -- the default, too
  end)

  it("a path set in an included file is taken beside that file, as include: itself is", function()
    os.execute("mkdir -p " .. proc.quote(dir .. "/conf.d"))
    proc.write_file(dir .. "/conf.d/more.yaml", "spool:\n  dir: spool\nscripts:\n  dir: scripts\n")
    proc.write_file(dir .. "/luagw.yaml", "include: conf.d/more.yaml\nmonitoring:\n  dead_letter: dl.lp\n")
    local cfg = assert(load(dir .. "/luagw.yaml"))
    assert.are.equal(dir .. "/conf.d/spool", str(cfg, "spool.dir"))
    assert.are.equal(dir .. "/conf.d/scripts", str(cfg, "scripts.dir"))
    assert.are.equal(dir .. "/dl.lp", str(cfg, "monitoring.dead_letter"))
    -- set again after the include, in the main file: beside the main file
    proc.write_file(dir .. "/luagw.yaml", "include: conf.d/more.yaml\nscripts:\n  dir: mine\n")
    cfg = assert(load(dir .. "/luagw.yaml"))
    assert.are.equal(dir .. "/mine", str(cfg, "scripts.dir"))
  end)

  it("luagw --check-config from another working directory checks the scripts beside the config", function()
    os.execute("mkdir -p " .. proc.quote(dir .. "/s"))
    proc.write_file(dir .. "/luagw.yaml", "scripts:\n  dir: s\n")
    proc.write_file(dir .. "/s/requests.lua", "return 42\n") -- not a function: the config is bad
    local rc, out = proc.run({ BIN, "--check-config", "-c", dir .. "/luagw.yaml" }, 30, { cwd = "/" })
    assert.are.equal(1, rc, out)
    assert.matches(dir .. "/s/requests.lua", out, 1, true)
    proc.write_file(dir .. "/s/requests.lua", "return function(p) return p end\n")
    rc, out = proc.run({ BIN, "--check-config", "-c", dir .. "/luagw.yaml" }, 30, { cwd = "/" })
    assert.are.equal(0, rc, out)
    assert.are.equal(dir .. "/luagw.yaml: ok\n", out)
  end)

  it("a scripts.dir that is set but missing is a warning (--check-config and the log); the default is silent", function()
    -- (keys after scripts.dir do not hide it)
    proc.write_file(dir .. "/luagw.yaml", "scripts:\n  dir: nope\n  timeout_ms: 60\nlog:\n  level: info\n")
    local rc, out = proc.run({ BIN, "--check-config", "-c", dir .. "/luagw.yaml" }, 30, { cwd = "/" })
    assert.are.equal(0, rc, out)
    assert.matches(("warning: %s/luagw.yaml:2:8: scripts.dir: directory \"%s/nope\" does not exist: "
      .. "no script will run\n"):format(dir, dir), out, 1, true)
    assert.matches(dir .. "/luagw.yaml: ok\n", out, 1, true)
    proc.write_file(dir .. "/quiet.yaml", "log:\n  level: info\n")
    rc, out = proc.run({ BIN, "--check-config", "-c", dir .. "/quiet.yaml" }, 30, { cwd = "/" })
    assert.are.equal(0, rc, out)
    assert.are.equal(dir .. "/quiet.yaml: ok\n", out)
    local gw = luagw.start { config = { scripts = { dir = dir .. "/gone" } } }
    finally(function() gw:destroy() end)
    assert.matches('level=warn msg="configuration warning" warning=".-scripts.dir: directory \'' .. dir:gsub("%p", "%%%0")
      .. "/gone' does not exist", gw:log())
  end)

  it("without -c: ./config/luagw.yaml if it exists, else the installed one", function()
    os.execute("mkdir -p " .. proc.quote(dir .. "/here/config") .. " " .. proc.quote(dir .. "/empty"))
    proc.write_file(dir .. "/here/config/luagw.yaml", "log:\n  level: warn\n")
    local rc, out = proc.run({ BIN, "--check-config" }, 30, { cwd = dir .. "/here" })
    assert.are.equal(0, rc, out)
    assert.are.equal("config/luagw.yaml: ok\n", out)
    rc, out = proc.run({ BIN, "--check-config" }, 30, { cwd = dir .. "/empty" })
    local installed = out:match("nor (%S+) exists") or "/etc/luagw/luagw.yaml"
    if not io.open(installed) then -- (spec/ops_spec.lua installs one and reads it)
      assert.are.equal(1, rc, out)
      assert.matches("luagw: no configuration file: neither ./config/luagw.yaml nor /.-/luagw/luagw.yaml exists "
        .. "%(give one with %-c FILE%)\n$", out)
    end
  end)
end)

describe("errors: file:line:column: key: what", function()
  it("the documented example (fixtures/config/bad_port.yaml)", function()
    local cfg, err = load("spec/fixtures/config/bad_port.yaml")
    assert.is_nil(cfg)
    assert.are.equal('spec/fixtures/config/bad_port.yaml:7:9: monitoring.port: ' ..
      'must be an integer between 1 and 65535, got "80a"', err)
  end)

  it("a missing file: path: cannot open: reason", function()
    local cfg, err = load("spec/fixtures/config/no-such-file.yaml")
    assert.is_nil(cfg)
    assert.are.equal("spec/fixtures/config/no-such-file.yaml: cannot open: No such file or directory", err)
  end)

  it("a directory: path: cannot read: reason", function()
    local cfg, err = load("spec/fixtures/config")
    assert.is_nil(cfg)
    assert.are.equal("spec/fixtures/config: cannot read: Is a directory", err)
  end)

  it("unknown key with a did-you-mean by edit distance", function()
    rejects("listen:\n  port: 1\n  prot: 2\n", "3:3", "listen.prot", "unknown key (did you mean listen.port?)")
    rejects("log:\n  levle: info\n", "2:3", "log.levle", "unknown key (did you mean log.level?)")
    -- A swap of two letters counts as one edit, even in a two-letter key.
    rejects("monitoring:\n  pr: x\n", "2:3", "monitoring.pr", "unknown key (did you mean monitoring.rp?)")
    rejects("monitoring:\n  flush_period: 1\n", "2:3", "monitoring.flush_period",
      "unknown key (did you mean monitoring.flushing_period?)", false)
  end)

  it("a known key in the wrong section points to the right one", function()
    rejects("listen:\n  database: x\n", "2:3", "listen.database", "unknown key (did you mean monitoring.database?)")
  end)

  it("an unknown key with nothing close lists the keys of its section", function()
    rejects("listen:\n  zzz: 1\n", "2:3", "listen.zzz",
      "unknown key (expected one of: address, port, threads, max_body_bytes, connection_timeout, "
      .. "max_connections, max_connections_per_client, probe_connections, max_header_bytes, max_inflight_bytes, max_points, "
      .. "max_line_bytes, max_tags, max_fields, "
      .. "max_key_bytes, max_value_bytes, tokens, tls_cert, tls_key, drain_seconds)")
  end)

  it("an unknown section, close or not", function()
    rejects("listn:\n  port: 1\n", "1:1", "listn", "unknown key (did you mean listen?)")
    rejects("\n\nhttp:\n  port: 1\n", "3:1", "http", "unknown key (expected one of: listen, monitoring, spool, scripts, log, service, series, outputs, routes, include)")
  end)

  it("a dotted key at the top level explains the nesting", function()
    rejects("listen.port: 1\n", "1:1", "listen.port",
      'unknown key (write it nested: "listen:" then "port:" indented under it)')
  end)

  it("a mapping or a sequence where a scalar is expected", function()
    rejects("listen:\n  port:\n    value: 1\n", "3:5", "listen.port",
      "must be an integer between 1 and 65535, got a mapping")
    rejects("monitoring:\n  host: [a, b]\n", "2:9", "monitoring.host", "must be a non-empty string, got a sequence")
    rejects("monitoring:\n  gzip:\n    - true\n", "3:5", "monitoring.gzip",
      "must be true or false (or yes/no, on/off), got a sequence")
  end)

  it("an empty value where a number is expected", function()
    rejects("listen:\n  port:\n  threads: 2\n", "2:8", "listen.port",
      "must be an integer between 1 and 65535, got an empty value")
  end)

  it("a section that is not a mapping", function()
    rejects("listen: 8080\n", "1:9", "listen", "must be a mapping of keys, got a scalar")
    rejects("log:\n  - info\n", "2:3", "log", "must be a mapping of keys, got a sequence")
  end)

  it("a top level that is not a mapping", function()
    rejects("- listen\n- log\n", "1:1", "yaml",
      "the top level must be a mapping of sections (listen:, monitoring:, spool:, scripts:, log:), got a sequence")
    rejects("just text\n", "1:1", "yaml",
      "the top level must be a mapping of sections (listen:, monitoring:, spool:, scripts:, log:), got a scalar")
  end)

  it("a duplicate key, nested or at the top, at the second occurrence", function()
    rejects("listen:\n  port: 1\n  threads: 2\n  port: 3\n", "4:3", "listen.port",
      "duplicate key (first at line 2, column 3)")
    rejects("log:\n  level: info\nlisten: {}\nlog:\n  level: warn\n", "4:1", "log",
      "duplicate key (first at line 1, column 1)")
  end)

  it("a key that is not a scalar", function()
    rejects("listen:\n  ? [port]\n  : 1\n", "2:5", "listen", "keys must be scalars, got a sequence")
  end)

  it("YAML syntax errors use the parser's mark and the key yaml", function()
    local cfg, err = load("spec/fixtures/config/syntax_error.yaml")
    assert.is_nil(cfg)
    assert.are.equal("spec/fixtures/config/syntax_error.yaml:5:7: yaml: did not find expected ',' or ']' " ..
      "(while parsing a flow sequence at line 4, column 9)", err)
    rejects("listen:\n  port: 1\n\tthreads: 2\n", "3:1", "yaml", "^found a tab character", true)
    -- libyaml's mark for a missing ':' is where it gave up (the next line);
    -- the context names the line at fault.
    rejects("listen:\n  port: 1\n  bad\n", "4:1", "yaml",
      "could not find expected ':' (while scanning a simple key at line 3, column 3)")
    rejects("listen:\n  port: 1: 2\n", "2:10", "yaml", "mapping values are not allowed in this context")
    rejects("listen:\n  address: 'open\n", "3:1", "yaml", "^found unexpected end of stream", true)
  end)

  it("invalid UTF-8 is a YAML error at its line and column", function()
    rejects("listen:\n  address: ab\255\n", "2:14", "yaml", "invalid leading UTF-8 octet")
  end)

  it("a second document is an error at its ---", function()
    local cfg, err = load("spec/fixtures/config/two_documents.yaml")
    assert.is_nil(cfg)
    assert.are.equal("spec/fixtures/config/two_documents.yaml:3:1: yaml: only one document is allowed, " ..
      "found a second one", err)
  end)

  it("the first error wins, and a multi-line value stays on one line", function()
    rejects("listen:\n  port: |\n    80\n    81\n  prot: 1\n", "2:9", "listen.port",
      'must be an integer between 1 and 65535, got "80\\n81\\n"')
  end)

  it("a long value is cut in the message", function()
    local long = string.rep("9", 100)
    rejects("listen:\n  port: " .. long .. "\n", "2:9", "listen.port",
      'must be an integer between 1 and 65535, got "' .. string.rep("9", 60) .. '"...')
  end)

  it("errors into a too small buffer are cut, not overflowed", function()
    local err = ffi.new("char[16]", "xxxxxxxxxxxxxxx")
    assert.is_true(lib.gw_config_load(write("listen:\n  port: 0\n"), err, 10) == nil)
    assert.are.equal(9, #ffi.string(err))
    assert.are.equal(string.byte("x"), err[10])
    -- A NULL buffer is allowed.
    assert.is_true(lib.gw_config_load(write("listen:\n  port: 0\n"), nil, 0) == nil)
  end)
end)

describe("cross-checks", function()
  it("buffer_limit below batch_size is reported at buffer_limit", function()
    rejects("monitoring:\n  buffer_limit: 100\n  batch_size: 200\n", "2:17", "monitoring.buffer_limit",
      "must be at least monitoring.batch_size (200), got 100")
    -- Also against the default batch_size.
    rejects("monitoring:\n  buffer_limit: 4999\n", "2:17", "monitoring.buffer_limit",
      "must be at least monitoring.batch_size (5000), got 4999")
    assert.are.equal(5000, values("monitoring:\n  buffer_limit: 5000\n")["monitoring.buffer_limit"])
  end)

  it("max_inflight_bytes below max_body_bytes is reported at max_inflight_bytes", function()
    rejects("listen:\n  max_body_bytes: 32MiB\n  max_inflight_bytes: 16MiB\n", "3:23", "listen.max_inflight_bytes",
      "must be at least listen.max_body_bytes (33554432), got 16777216")
    -- Also against the default max_inflight_bytes, at the key that was set.
    rejects("listen:\n  max_body_bytes: 256MiB\n", "2:19", "listen.max_inflight_bytes",
      "must be at least listen.max_body_bytes (268435456), got 134217728")
    assert.are.equal(32 * 1024 * 1024,
      values("listen:\n  max_body_bytes: 32MiB\n  max_inflight_bytes: 32MiB\n")["listen.max_inflight_bytes"])
  end)

  it("version 1 needs a database", function()
    rejects("monitoring:\n  version: 1\n  database: ''\n", "3:13", "monitoring.database",
      "must not be empty with monitoring.version 1")
  end)

  it("version 2 needs an organization and a bucket", function()
    rejects("monitoring:\n  version: 2\n  organization: ''\n", "3:17", "monitoring.organization",
      "must not be empty with monitoring.version 2")
    rejects("monitoring:\n  bucket:\n  version: 2\n", "2:10", "monitoring.bucket",
      "must not be empty with monitoring.version 2")
  end)

  it("each version ignores the other's keys; a v2 token may be empty", function()
    local v = values("monitoring:\n  version: 2\n  database: ''\n  token: ''\n")
    assert.are.equal(2, v["monitoring.version"])
    assert.are.equal("", v["monitoring.database"])
    v = values("monitoring:\n  organization: ''\n  bucket: ''\n")
    assert.are.equal(1, v["monitoring.version"])
  end)
end)

describe("scripts: limits, chains and params", function()
  -- A gw_conf_node_t tree as plain Lua: scalars as {value=, plain=, line=},
  -- mappings keyed by their keys, sequences as arrays; kind in t.kind.
  local function tree(n)
    if n == nil then return nil end
    if n.kind == 0 then
      return { value = ffi.string(n.value), plain = n.plain ~= 0, line = tonumber(n.line), column = tonumber(n.column) }
    end
    local t, i, c = { kind = n.kind == 1 and "seq" or "map" }, 0, n.child
    while c ~= nil do
      i = i + 1
      if n.kind == 2 then t[ffi.string(c.key)] = tree(c) else t[i] = tree(c) end
      c = c.next
    end
    return t
  end
  local function cfg_of(text) return assert(load(write(text))) end

  it("reads timeout_ms, memory_limit and on_error with their bounds", function()
    local v = values("scripts:\n  timeout_ms: 7\n  memory_limit: 16MiB\n  on_error: drop\n")
    assert.are.equal(7, v["scripts.timeout_ms"])
    assert.are.equal(16 * 1024 * 1024, v["scripts.memory_limit"])
    assert.are.equal("drop", v["scripts.on_error"])
    rejects("scripts:\n  timeout_ms: 0\n", "2:15", "scripts.timeout_ms", 'must be an integer between 1 and 60000, got "0"')
    rejects("scripts:\n  memory_limit: 512k\n", "2:17", "scripts.memory_limit", "must be a size between 1MiB and 64GiB", true)
    rejects("scripts:\n  on_error: ignore\n", "2:13", "scripts.on_error", 'must be one of pass, drop, got "ignore"')
  end)

  it("scripts.series maps a series to one file or a list of files, in order", function()
    local cfg = cfg_of("scripts:\n  series:\n    errors: [a.lua, lib/b.lua]\n    requests: route.lua\n")
    local t = tree(lib.gw_config_tree(cfg, "scripts.series"))
    assert.are.equal("map", t.kind)
    assert.are.equal("seq", t.errors.kind)
    assert.are.equal("a.lua", t.errors[1].value)
    assert.are.equal("lib/b.lua", t.errors[2].value)
    assert.are.equal("route.lua", t.requests.value)
    assert.are.equal(4, t.requests.line)
  end)

  it("scripts.series rejects what is not a chain, at its line and column", function()
    rejects("scripts:\n  series: [a.lua]\n", "2:11", "scripts.series",
      "must be a mapping of series to a list of script files, got a sequence")
    rejects("scripts:\n  series:\n    errors: []\n", "3:13", "scripts.series.errors",
      "must be a script file or a non-empty list of script files")
    rejects("scripts:\n  series:\n    errors: {a: b}\n", "3:13", "scripts.series.errors",
      "must be a script file or a non-empty list of script files")
    rejects("scripts:\n  series:\n    errors: [a.lua, [b.lua]]\n", "3:13", "scripts.series.errors",
      "must be a script file or a non-empty list of script files")
    rejects("scripts:\n  series:\n    errors: a.lua\n    errors: b.lua\n", "4:5", "scripts.series.errors",
      "duplicate key (first at line 3, column 5)")
  end)

  it("scripts.params keeps any mapping, scalars ${}-expanded and marked plain or quoted", function()
    setenv("LUAGW_SPEC_DC", "eu-2")
    local cfg = cfg_of("scripts:\n  params:\n    datacenter: ${LUAGW_SPEC_DC}\n    port: 8080\n" ..
      "    quoted: '8080'\n    deployment:\n      tags: {env: prod}\n      list: [1, two]\n")
    setenv("LUAGW_SPEC_DC", nil)
    local t = tree(lib.gw_config_tree(cfg, "scripts.params"))
    assert.are.equal("eu-2", t.datacenter.value)
    assert.is_true(t.port.plain)
    assert.are.equal("8080", t.quoted.value)
    assert.is_false(t.quoted.plain)
    assert.are.equal("prod", t.deployment.tags.env.value)
    assert.are.equal("two", t.deployment.list[2].value)
    assert.is_true(lib.gw_config_tree(cfg_of("scripts:\n  params:\n"), "scripts.params") == nil)
    assert.is_true(lib.gw_config_tree(cfg_of("scripts:\n  params: {}\n"), "scripts.params") == nil)
  end)

  it("scripts.params must be a mapping; its keys unique; its variables set", function()
    rejects("scripts:\n  params: 3\n", "2:11", "scripts.params", "must be a mapping, got a scalar")
    rejects("scripts:\n  params:\n    a: 1\n    a: 2\n", "4:5", "scripts.params.a", "duplicate key (first at line 3, column 5)")
    setenv("LUAGW_SPEC_UNSET", nil)
    rejects("scripts:\n  params:\n    a: ${LUAGW_SPEC_UNSET}\n", "3:8", "scripts.params",
      "environment variable LUAGW_SPEC_UNSET is not set", true)
  end)
end)

describe("gw_config_print_reference", function()
  local function reference()
    local path = os.tmpname()
    written[#written + 1] = path
    local f = ffi.C.fopen(path, "w")
    lib.gw_config_print_reference(f)
    ffi.C.fclose(f)
    local lines = {}
    for line in io.lines(path) do lines[#lines + 1] = line end
    return lines
  end

  it("prints one line per key: key, type, default, help", function()
    local lines, seen = reference(), {}
    assert.are.equal(#KEYS, #lines)
    for _, line in ipairs(lines) do
      local key, typ, def, help = line:match("^(%S+)%s+(.-)%s+default (%S+)%s+(.+)$")
      assert.is_not_nil(key, line)
      assert.is_nil(seen[key], "twice: " .. key)
      seen[key] = true
      assert.is_not_nil(DEFAULTS[key], "not in the contract: " .. key)
      assert.is_true(#help > 10, line)
      assert.is_true(#typ > 0, line)
      local want = DEFAULTS[key]
      if want == "" then want = '""' end
      if key == "listen.max_body_bytes" then want = "16MiB" end
      if key == "listen.max_header_bytes" then want = "32KiB" end
      if key == "listen.max_inflight_bytes" then want = "128MiB" end
      if key == "listen.max_line_bytes" then want = "1MiB" end
      if key == "listen.max_key_bytes" then want = "1KiB" end
      if key == "listen.max_value_bytes" then want = "64KiB" end
      if key == "scripts.memory_limit" then want = "64MiB" end
      if key == "spool.max_bytes" then want = "1GiB" end
      if key == "monitoring.buffer_limit_bytes" then want = "128MiB" end
      assert.are.equal(tostring(want), def, key)
    end
    assert.is_truthy(table.concat(lines, "\n"):find("listen.port%s+int 1..65535%s+default 8080"))
    assert.is_truthy(table.concat(lines, "\n"):find("monitoring.flushing_period%s+seconds 0.001..3600%s+default 1 "))
    assert.is_truthy(table.concat(lines, "\n"):find("log.level%s+enum debug|info|warn|error%s+default info"))
  end)

  it("every key is documented in docs/configuration.md", function()
    local f = assert(io.open("docs/configuration.md"))
    local doc = f:read("*a")
    f:close()
    for _, line in ipairs(reference()) do
      local key = line:match("^(%S+)")
      assert.is_truthy(doc:find("`" .. key .. "`", 1, true), "undocumented: " .. key)
      -- The reference block in the docs is the table's own output.
      assert.is_truthy(doc:find(line, 1, true), "docs out of date for: " .. key)
    end
  end)
end)
