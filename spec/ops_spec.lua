-- Running luagw in production: the command line (gateway/main.c), the man
-- page (docs/luagw.1), `make install` (Makefile, packaging/), /health's 503
-- (gateway/http.c) and rate-limited logs (gateway/log.c).
local core = require("support.core")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local ports = require("support.ports")
local proc = require("support.proc")
local wait = require("support.wait")
local cjson = require("cjson")

local ffi, lib = core.ffi, core.lib
local ROOT = luagw.ROOT
local BIN = os.getenv("LUAGW_BIN") or (ROOT .. "/gateway/luagw")

local function sh(cmd)
  -- (no sanitizer runtime preloaded into make, man and the like under make test-asan)
  local p = io.popen("cd " .. proc.quote(ROOT) .. " && env -u LD_PRELOAD sh -c " .. proc.quote(cmd)
    .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

describe("the command line", function()
  it("--help, --version, --help-config, and exit 2 on a bad option", function()
    local rc, out = proc.run { BIN, "--help" }
    assert.equal(0, rc)
    assert.matches("usage: luagw %[%-c FILE%]", out)
    rc, out = proc.run { BIN, "--version" }
    assert.equal(0, rc)
    assert.matches("^luagw %d+%.%d+%.%d+\n$", out)
    rc, out = proc.run { BIN, "--help-config" }
    assert.equal(0, rc)
    assert.matches("listen.port", out)
    rc = proc.run { BIN, "--bogus" }
    assert.equal(2, rc)
  end)

  it("--check-config -c FILE: 0 and ok, or 1 with file:line:column", function()
    local rc, out = proc.run { BIN, "--check-config", "-c", ROOT .. "/config/luagw.yaml" }
    assert.equal(0, rc, out)
    assert.matches("luagw.yaml: ok", out, 1, true)
    local dir = proc.tmpdir("luagw-ops")
    finally(function() proc.rmdir(dir) end)
    proc.write_file(dir .. "/bad.yaml", "listen:\n  port: 0\n")
    rc, out = proc.run { BIN, "--check-config", "-c", dir .. "/bad.yaml" }
    assert.equal(1, rc)
    assert.matches("bad.yaml:2:9: listen.port: must be an integer between 1 and 65535", out, 1, true)
  end)
end)

describe("the man page", function()
  it("renders with man -l and covers the options", function()
    local rc, out = sh("MANWIDTH=80 man -l docs/luagw.1 | cat")
    assert.equal(0, rc, out)
    assert.matches("LUAGW%(1%)", out)
    for _, opt in ipairs { "--check-config", "--help-config", "--version", "SIGHUP", "/metrics", "/health" } do
      assert.is_truthy(out:find(opt, 1, true), "man page lacks " .. opt)
    end
    rc, out = sh("LC_ALL=C.UTF-8 man --warnings -l docs/luagw.1 2>&1 >/dev/null")
    assert.equal(0, rc)
    assert.equal("", (out:gsub("rc=%d+%s*$", "")), "groff warnings")
  end)
end)

describe("make install", function()
  local dest
  before_each(function() dest = proc.tmpdir("luagw-install") end)
  after_each(function() proc.rmdir(dest) end)

  it("honours PREFIX and DESTDIR: binary, config and scripts, harness and library, man page, systemd unit", function()
    local rc, out = sh("make --no-print-directory install PREFIX=/opt/lg DESTDIR=" .. proc.quote(dest))
    assert.equal(0, rc, out)
    local root = dest .. "/opt/lg"
    for _, f in ipairs {
      "bin/luagw", "etc/luagw/luagw.yaml", "etc/luagw/series.yaml",
      "etc/luagw/scripts/requests.lua", "etc/luagw/scripts/errors.lua",
      "etc/luagw/scripts/subscription_error.lua", "share/lua/5.1/luagw/harness.lua",
      "lib/luagw/libluagw.so", "share/man/man1/luagw.1", "lib/systemd/system/luagw.service",
    } do
      assert.is_truthy(io.open(root .. "/" .. f), "missing " .. f)
    end
    -- nothing outside DESTDIR/PREFIX
    local _, tops = sh("ls " .. proc.quote(dest))
    assert.equal("opt\nrc=0\n", tops)
    local unit = proc.read_file(root .. "/lib/systemd/system/luagw.service")
    assert.matches("\nType=simple\n", unit, 1, true)
    assert.matches("\nExecStart=/opt/lg/bin/luagw %-c /opt/lg/etc/luagw/luagw.yaml\n", unit)
    assert.matches("\nExecReload=/bin/kill -HUP $MAINPID\n", unit, 1, true)
    assert.matches("\nEnvironmentFile=-/opt/lg/etc/default/luagw\n", unit, 1, true)
    assert.is_nil(unit:find("@[A-Z]+@"), "unfilled placeholder")
    -- the installed binary accepts the installed config from any working directory
    rc, out = sh("cd / && " .. root .. "/bin/luagw --check-config -c " .. root .. "/etc/luagw/luagw.yaml")
    assert.equal(0, rc, out)
    assert.is_nil(out:find("warning", 1, true), out)
    -- a second install keeps an edited config and puts the new one beside it
    proc.write_file(root .. "/etc/luagw/luagw.yaml", "# mine\n")
    rc, out = sh("make --no-print-directory install PREFIX=/opt/lg DESTDIR=" .. proc.quote(dest))
    assert.equal(0, rc, out)
    assert.equal("# mine\n", proc.read_file(root .. "/etc/luagw/luagw.yaml"))
    assert.is_truthy(io.open(root .. "/etc/luagw/luagw.yaml.new"))
  end)

  it("installs the shipped scripts by name, not every scripts/*.lua", function()
    local _, shipped = sh("ls scripts/*.lua")
    local scratch = ROOT .. "/scripts/zz_scratch_of_a_user.lua"
    proc.write_file(scratch, "return function(p) return p end\n")
    finally(function() os.remove(scratch) end)
    local rc, out = sh("make --no-print-directory install PREFIX=/opt/lg DESTDIR=" .. proc.quote(dest))
    os.remove(scratch)
    assert.equal(0, rc, out)
    local _, installed = sh("cd " .. proc.quote(dest .. "/opt/lg/etc/luagw") .. " && ls scripts/*.lua")
    assert.equal(shipped, installed) -- every one in the tree before the scratch file, and only those
  end)

  it("without DESTDIR: the installed binary reads the installed config without -c, the installed harness "
    .. "finds the installed library", function()
    local prefix = dest .. "/usr/local"
    local rc, out = sh("make --no-print-directory install PREFIX=" .. proc.quote(prefix))
    assert.equal(0, rc, out)
    rc, out = sh("cd / && " .. proc.quote(prefix .. "/bin/luagw") .. " --check-config")
    assert.equal(0, rc, out)
    assert.equal(prefix .. "/etc/luagw/luagw.yaml: ok\nrc=0\n", out)
    proc.write_file(dest .. "/check.lua", [[
      local h = assert(require("luagw.harness").new { config = arg[1] })
      print(h:run { series = "requests", tags = { method = "get", resource = "/v" },
                    fields = { request_id = "x", execution_time = 1.5 } }.points[1].tags.route)
    ]])
    rc, out = sh(("cd / && env -u LUAGW_LIB LUA_PATH=%s luajit %s %s"):format(
      proc.quote(prefix .. "/share/lua/5.1/?.lua;;"), proc.quote(dest .. "/check.lua"),
      proc.quote(prefix .. "/etc/luagw/luagw.yaml")))
    assert.equal(0, rc, out)
    assert.equal("GET:/v\nrc=0\n", out)
  end)
end)

describe("/health", function()
  local function health(gw)
    local st, body = gw:get("/health")
    return st, cjson.decode(body)
  end

  it("is 200 with status pass and no problems while InfluxDB takes the writes", function()
    local db = influxd.start { database = "luagw" }
    local gw = luagw.start { influxd = db }
    finally(function() gw:destroy(); db:destroy() end)
    assert.equal(204, (gw:post("/write", "h v=1i")))
    assert.is_true(wait(function() return db:count("h", "luagw") == 1 end, 10))
    local st, doc = health(gw)
    assert.equal(200, st)
    assert.equal("pass", doc.status)
    assert.same({}, doc.problems)
    assert.is_number(doc.points.written) -- the existing fields stay
    assert.equal("luagw", doc.name)
  end)

  it("is 503 saying InfluxDB is unreachable while nothing answers", function()
    local gw = luagw.start { config = { monitoring = { port = ports.free(), retry_max = 0.2, timeout = 0.5, shutdown_timeout = 0.1 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "h v=1i")))
    assert.is_true(wait(function() return (health(gw)) == 503 end, 10), "no 503")
    local st, doc = health(gw)
    assert.equal(503, st)
    assert.equal("fail", doc.status)
    assert.matches("influxdb unreachable", doc.problems[1], 1, true)
  end)

  it("is 503 saying InfluxDB refuses the credentials", function()
    local db = influxd.start { auth_enabled = true }
    -- With auth on, the first user may be created without credentials.
    db:query("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES")
    db:query('CREATE DATABASE "luagw"', nil, { u = "admin", p = "secret" })
    local gw = luagw.start { influxd = db, config = { monitoring = { user = "nobody", password = "wrong", retry_max = 0.2,
      shutdown_timeout = 0.1 } } }
    finally(function() gw:destroy(); db:destroy() end)
    assert.equal(204, (gw:post("/write", "h v=1i")))
    assert.is_true(wait(function() return (health(gw)) == 503 end, 10), "no 503")
    local _, doc = health(gw)
    assert.matches("influxdb refuses writes (HTTP 401)", doc.problems[1], 1, true)
    assert.matches("check credentials", doc.problems[1], 1, true)
  end)

  it("is 503 saying the buffer is full", function()
    local gw = luagw.start { config = { monitoring = { port = ports.free(), batch_size = 2, buffer_limit = 2,
      retry_max = 5, shutdown_timeout = 0.1 } } }
    finally(function() gw:destroy() end)
    assert.equal(204, (gw:post("/write", "h v=1i\nh v=2i")))
    local st, doc = health(gw)
    assert.equal(503, st)
    local all = table.concat(doc.problems, "\n")
    assert.matches("buffer full", all, 1, true)
  end)
end)

describe("logs", function()
  if not pcall(function() return lib.gw_log_limited end) then
    ffi.cdef [[
    typedef struct { long long last_ns; unsigned suppressed; } gw_log_limit_t;
    void gw_log_limited(gw_log_limit_t *lim, double every_s, int level, const char *msg, const char *fmt, ...);
    void gw_log_set_level(int level);
    ]]
  end
  for name, decl in pairs {
    dup = "int dup(int fd);", dup2 = "int dup2(int oldfd, int newfd);", close = "int close(int fd);",
    open = "int open(const char *path, int flags, int mode);",
  } do
    if not pcall(function() return ffi.C[name] end) then ffi.cdef(decl) end
  end

  -- Run f with the process's stderr (fd 2) going to a file; its text.
  local function capture(f)
    local path = os.tmpname()
    local saved = ffi.C.dup(2)
    local fd = ffi.C.open(path, 1 + 64 + 512, 420) -- O_WRONLY|O_CREAT|O_TRUNC, 0644
    ffi.C.dup2(fd, 2)
    ffi.C.close(fd)
    local ok, err = pcall(f)
    ffi.C.dup2(saved, 2)
    ffi.C.close(saved)
    local text = proc.read_file(path) or ""
    os.remove(path)
    assert(ok, err)
    return text
  end

  it("print repeated errors once per interval, then with the count of those left out", function()
    local lim = ffi.new("gw_log_limit_t[1]")
    local text = capture(function()
      for i = 1, 5 do lib.gw_log_limited(lim, 0.2, 3, "disk trouble", "n=%d", ffi.cast("int", i)) end
      require("socket").sleep(0.25)
      lib.gw_log_limited(lim, 0.2, 3, "disk trouble", "n=%d", ffi.cast("int", 6))
    end)
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(2, #lines, text)
    assert.matches('level=error msg="disk trouble" n=1$', lines[1])
    assert.matches('level=error msg="disk trouble" n=6 suppressed=4$', lines[2])
  end)

  it("log.level hides what is less severe", function()
    local gw = luagw.start { config = { log = { level = "error" } } }
    finally(function() gw:destroy() end)
    assert.is_nil(gw:log():find("level=info", 1, true))
    local gw2 = luagw.start { config = { log = { level = "debug" } } }
    finally(function() gw2:destroy() end)
    assert.is_truthy(gw2:log():find("level=info", 1, true))
  end)
end)
