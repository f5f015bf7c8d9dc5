-- Running luagw in production: the command line (gateway/main.c, with
-- --print-config from gateway/config.c), `make run` (tools/run.sh), the man
-- page (docs/luagw.1), `make install` (Makefile, packaging/), /health's 503
-- (gateway/http.c), stopping with a drain (gateway/main.c) and rate-limited
-- logs (gateway/log.c).
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

-- Run argv to its end with stdout and stderr apart: code, stdout, stderr.
local function run_apart(argv, env)
  local dir = proc.tmpdir("luagw-ops")
  local pid = proc.spawn { argv = argv, stdout = dir .. "/out", stderr = dir .. "/err", env = env, watchdog = false }
  local code = proc.wait(pid, 30)
  if code == nil then proc.stop(pid, 1) end
  local out, err = proc.read_file(dir .. "/out") or "", proc.read_file(dir .. "/err") or ""
  proc.rmdir(dir)
  return code, out, err
end

describe("--print-config", function()
  local dir, main
  before_each(function()
    dir = proc.tmpdir("luagw-print")
    main = dir .. "/main.yaml"
    proc.write_file(main, table.concat({
      "listen:",
      "  port: 9191",
      "monitoring:",
      '  password: "${SPEC_PRINT_PW:-unset}!"',
      '  user: "two\\nlines\\\\"',
      "spool:",
      "  dir: spool",
      "scripts:",
      "  params: {team: ops, ids: [1, \"2\"]}",
      "include: more.yaml",
    }, "\n") .. "\n")
    proc.write_file(dir .. "/more.yaml", "monitoring:\n  port: 18086\n  database: from_include\n")
  end)
  after_each(function() proc.rmdir(dir) end)

  it("prints one key's value alone: set in an included file, a default, ${VAR} expanded, a path resolved", function()
    local env = { SPEC_PRINT_PW = "s3cr3t" }
    local function value(key)
      local code, out, err = run_apart({ BIN, "-c", main, "--print-config", key }, env)
      assert.equal(0, code, err)
      assert.equal("", err)
      return out
    end
    assert.equal("18086\n", value("monitoring.port"))           -- from more.yaml
    assert.equal("from_include\n", value("monitoring.database"))
    assert.equal("9191\n", value("listen.port"))                -- from main.yaml
    assert.equal("5000\n", value("monitoring.batch_size"))      -- defaults
    assert.equal("16777216\n", value("listen.max_body_bytes"))  -- sizes in bytes
    assert.equal("10\n", value("monitoring.shutdown_timeout"))
    assert.equal("0\n", value("listen.drain_seconds"))
    assert.equal("false\n", value("monitoring.gzip"))
    assert.equal("s3cr3t!\n", value("monitoring.password"))     -- ${VAR:-default} expanded
    assert.equal(dir .. "/spool\n", value("spool.dir"))         -- beside the file that sets it
    assert.equal("two\nlines\\\n", value("monitoring.user"))  -- the value as it is
    assert.equal('{team: ops, ids: [1, "2"]}\n', value("scripts.params"))
    assert.equal("[]\n", value("listen.tokens"))
    env.SPEC_PRINT_PW = false
    assert.equal("unset!\n", value("monitoring.password"))
  end)

  it("prints key=value lines, escaped, for several keys, a section, or every key", function()
    local code, out, err = run_apart { BIN, "-c", main, "--print-config", "monitoring.port", "monitoring.user" }
    assert.equal(0, code, err)
    assert.equal("monitoring.port=18086\nmonitoring.user=two\\nlines\\\\\n", out)
    code, out = run_apart { BIN, "-c", main, "--print-config", "spool" }
    assert.equal(0, code)
    assert.equal("spool.dir=" .. dir .. "/spool\nspool.max_bytes=1073741824\nspool.fsync=batch\n"
      .. "spool.fsync_interval=1\n", out)
    local _, reference = proc.run { BIN, "--help-config" }
    code, out, err = run_apart { BIN, "-c", main, "--print-config" }
    assert.equal(0, code, err)
    local keys, want = {}, {}
    for line in out:gmatch("[^\n]+") do keys[#keys + 1] = assert(line:match("^([%w_.]+)="), line) end
    for line in reference:gmatch("[^\n]+") do want[#want + 1] = line:match("^(%S+)") end
    assert.same(want, keys) -- every key, once, in the reference's order
    assert.is_truthy(out:find("\nmonitoring.port=18086\n", 1, true))
    assert.is_truthy(out:find("\nlisten.port=9191\n", 1, true))
  end)

  it("an unknown key: exit 2, nothing on stdout, the nearest key suggested", function()
    local code, out, err = run_apart { BIN, "-c", main, "--print-config", "monitoring.port", "monitoring.prot" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal('luagw: --print-config: unknown key "monitoring.prot" (did you mean monitoring.port?)\n', err)
    code, out, err = run_apart { BIN, "-c", main, "--print-config", "nothing_like_it" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches('unknown key "nothing_like_it" (see luagw --help-config)', err, 1, true)
  end)

  it("a broken config: exit 1 with file:line:column", function()
    proc.write_file(dir .. "/more.yaml", "monitoring:\n  port: many\n")
    local code, out, err = run_apart { BIN, "-c", main, "--print-config", "monitoring.port" }
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("more.yaml:2:9: monitoring.port: must be an integer", err, 1, true)
  end)
end)

describe("make run (tools/run.sh)", function()
  local db, dir, port
  before_each(function()
    db = influxd.start { database = "luagw" }
    dir = proc.tmpdir("luagw-run")
    port = ports.free()
    -- InfluxDB's address comes from an included file, the database from the
    -- environment: run.sh must read the config as luagw does.
    proc.write_file(dir .. "/luagw.yaml", table.concat({
      "listen:", "  port: " .. port,
      "monitoring:", "  flushing_period: 0.1", '  database: "${RUN_SPEC_DB}"',
      "spool:", "  dir: spool",
      "scripts:", "  dir: scripts",
      "include: influx.yaml",
    }, "\n") .. "\n")
    proc.write_file(dir .. "/influx.yaml", "monitoring:\n  host: 127.0.0.1\n  port: " .. db.port .. "\n")
    os.execute("mkdir -p " .. proc.quote(dir .. "/scripts"))
    proc.write_file(dir .. "/scripts/m.lua", "return function(p) p.tags.v = 'one'; return p end\n")
  end)
  after_each(function()
    db:destroy()
    proc.rmdir(dir)
  end)

  local function stored_v(n)
    return wait(function()
      local rows = db:rows("SELECT f, v FROM m WHERE f = " .. n, "luagw")
      return rows[1] and rows[1].v
    end, 10)
  end

  it("uses the config's InfluxDB, passes SIGHUP on to luagw (scripts reloaded), keeps the pid file while luagw runs",
    function()
    local log, pid_file = dir .. "/run.log", dir .. "/luagw.pid"
    local run = proc.spawn { argv = { "bash", ROOT .. "/tools/run.sh", dir .. "/luagw.yaml" }, cwd = ROOT,
      env = { LUAGW_BIN = BIN, LUAGW_PID_FILE = pid_file, RUN_SPEC_DB = "luagw" }, stdout = log, stderr = "stdout" }
    finally(function() proc.stop(run, 30) end)
    local function text() return proc.read_file(log) or "" end
    assert.is_truthy(wait(function() return text():find("luagw started", 1, true) end, 20), text())
    assert.is_truthy(text():find("using the InfluxDB that answers at http://127.0.0.1:" .. db.port, 1, true), text())
    local pid = tonumber(text():match("luagw started.- pid=(%d+)"))
    assert.is_number(pid)
    assert.equal(pid, tonumber(proc.read_file(pid_file)))
    assert.equal("luagw\n", proc.read_file("/proc/" .. pid .. "/comm"))

    local url = "http://127.0.0.1:" .. port
    assert.equal(204, (require("support.http").post(url .. "/write", "m f=1i")))
    assert.equal("one", stored_v(1))

    proc.write_file(dir .. "/scripts/m.lua", "return function(p) p.tags.v = 'two'; return p end\n")
    assert.is_true(proc.kill(run, "HUP"))
    assert.is_truthy(wait(function() return text():find("scripts reloaded", 1, true) end, 10), text())
    assert.is_true(proc.alive(run))
    assert.is_true(proc.alive(pid))
    assert.equal(pid, tonumber(proc.read_file(pid_file)))
    assert.equal(204, (require("support.http").post(url .. "/write", "m f=2i")))
    assert.equal("two", stored_v(2))

    assert.is_true(proc.kill(run, "TERM"))
    assert.equal(0, proc.wait(run, 30))
    assert.is_false(proc.alive(pid))
    assert.is_nil(proc.read_file(pid_file))
    assert.is_truthy(text():find("stopped, everything delivered", 1, true), text())
  end)

  it("refuses to start a second luagw on the same pid file", function()
    local pid_file = dir .. "/luagw.pid"
    local gw = luagw.start { influxd = db }
    finally(function() gw:destroy() end)
    proc.write_file(pid_file, tostring(gw.pid) .. "\n")
    local code, out = proc.run({ "bash", ROOT .. "/tools/run.sh", dir .. "/luagw.yaml" }, 30,
      { cwd = ROOT, env = { LUAGW_BIN = BIN, LUAGW_PID_FILE = pid_file, RUN_SPEC_DB = "luagw" } })
    assert.equal(1, code, out)
    assert.matches("luagw already runs (pid " .. gw.pid .. ",", out, 1, true)
    assert.is_true(gw:running())
  end)
end)

describe("the man page", function()
  it("renders with man -l and covers the options", function()
    local rc, out = sh("MANWIDTH=80 man -l docs/luagw.1 | cat")
    assert.equal(0, rc, out)
    assert.matches("LUAGW%(1%)", out)
    for _, opt in ipairs { "--check-config", "--help-config", "--print-config", "--version", "SIGHUP",
      "listen.drain_seconds", "/metrics", "/health" } do
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
      print(h:run { series = "requests", tags = { method = "get", resource = "/v", status_code = "200" },
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
    assert.is_true(doc.ready)
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
    assert.is_true(doc.ready) -- it still takes points
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
    assert.is_false(doc.ready)
  end)
end)

describe("stopping with listen.drain_seconds", function()
  local http = require("support.http")

  it("SIGTERM: /health 503 at once, writes still 204 until the drain ends, then exit 0 with every point stored",
    function()
    local db = influxd.start { database = "luagw" }
    local gw = luagw.start { influxd = db, config = { listen = { drain_seconds = 2 } } }
    finally(function() gw:destroy(); db:destroy() end)
    assert.equal(204, (gw:post("/write", "d seq=0i 1")))
    assert.is_true(wait(function() return (gw:get("/health")) == 200 end, 10), "no 200 before SIGTERM")

    local t0 = proc.now()
    assert.is_true(gw:signal("TERM"))
    assert.is_truthy(wait(function() return (gw:get("/health", nil, 1)) == 503 end, 2),
      "/health did not answer 503 after SIGTERM")
    local st, body = gw:get("/health")
    assert.equal(503, st)
    local doc = cjson.decode(body)
    assert.equal("fail", doc.status)
    assert.is_true(doc.stopping)
    assert.is_false(doc.ready)
    assert.matches("^draining: ", doc.problems[#doc.problems])

    -- Ingest goes on while /health says 503, until the drain is over.
    local acked, seq, last_status, last_body, refused_at = 1, 0, nil, nil, nil
    local deadline = proc.now() + 20
    while proc.now() < deadline do
      seq = seq + 1
      last_status, last_body = http.post(gw.url .. "/write", ("d seq=%di %d"):format(seq, seq + 1), nil, 2)
      if last_status ~= 204 then refused_at = proc.now(); break end
      acked = acked + 1
      if seq % 50 == 0 then assert.equal(503, (gw:get("/health"))) end
    end
    assert.is_number(refused_at, "ingest never stopped")
    assert.is_true(acked > 10, "too few writes taken during the drain: " .. acked)
    -- A lower bound only: the drain cannot end before it began.
    assert.is_true(refused_at - t0 >= 1.9, ("ingest stopped %.2f s after SIGTERM"):format(refused_at - t0))
    if last_status then
      assert.equal(503, last_status)
      assert.matches("shutting down: nothing of this body was accepted", last_body, 1, true)
    end
    assert.equal(0, gw:wait_exit(20))
    local log = gw:log()
    assert.is_truthy(log:find('msg="draining: /health answers 503, ingest goes on" drain_seconds=2', 1, true), log)
    assert.is_truthy(log:find("drain over", 1, true), log)
    -- Every acknowledged point, the last 204 included, is in InfluxDB.
    assert.is_truthy(wait(function() return db:count("d", "luagw") == acked end, 10),
      ("stored %d of %d"):format(db:count("d", "luagw"), acked))
  end)

  it("a second SIGTERM ends the drain early", function()
    local gw = luagw.start { config = { listen = { drain_seconds = 600 }, monitoring = { shutdown_timeout = 0.1 } } }
    finally(function() gw:destroy() end)
    assert.is_true(gw:signal("TERM"))
    assert.is_truthy(wait(function() return (gw:get("/health", nil, 1)) == 503 end, 5))
    assert.equal(204, (gw:post("/write", "d v=1i")))
    assert.is_truthy(wait(function() return gw:log():find("draining:", 1, true) end, 5))
    assert.is_true(gw:signal("TERM"))
    assert.equal(0, gw:wait_exit(20))
    assert.is_truthy(gw:log():find('msg="drain cut short" signal=SIGTERM', 1, true), gw:log())
  end)

  it("without drain_seconds (the default): /health 503 and ingest 503 right away", function()
    -- An InfluxDB that takes the connection and never answers: the final
    -- flush lasts shutdown_timeout, long enough to look at both answers.
    local blackhole = assert(require("socket").bind("127.0.0.1", 0))
    local _, hole_port = blackhole:getsockname()
    local gw = luagw.start { config = { monitoring = { port = tonumber(hole_port), timeout = 60,
      shutdown_timeout = 3 } } }
    finally(function() gw:destroy(); blackhole:close() end)
    assert.equal(204, (gw:post("/write", "d v=1i")))
    assert.equal(200, (gw:get("/health")))
    assert.is_true(gw:signal("TERM"))
    -- Once /health says so, ingest refuses too: they turn together.
    assert.is_truthy(wait(function() return (gw:get("/health", nil, 1)) == 503 end, 5))
    local st, body = gw:post("/write", "d v=2i")
    assert.equal(503, st)
    assert.matches("shutting down", body, 1, true)
    st, body = gw:get("/health")
    assert.matches("draining: ", body, 1, true)
    assert.is_nil(gw:log():find("draining: /health", 1, true))
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
