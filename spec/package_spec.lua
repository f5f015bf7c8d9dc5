-- The Debian package (debian/, packaging/luagw.service.in, `make deb`).
--
-- `make deb` rebuilds build/deb/luagw_<version>_<arch>.deb only when a file
-- of the tree changed, so the suite pays for the build once. The package is
-- then checked as dpkg and systemd see it (control fields, conffiles, the
-- unit with systemd-analyze) and extracted with dpkg-deb -x into a temporary
-- root, where it has to work: the packaged binary on the packaged config and
-- scripts (ports moved to free loopback ones by a small config that includes
-- the packaged one) against a real influxd, and the packaged harness on the
-- packaged libluagw.so.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local ports = require("support.ports")
local proc = require("support.proc")
local wait = require("support.wait")
local cjson = require("cjson")

local ROOT = luagw.ROOT

-- A shell command from the repo root: rc, output. Without the sanitizer
-- runtime `make test-asan` preloads (make, dpkg and lintian are not ours),
-- and without its LUAGW_LIB (the packaged harness must find its own).
local function sh(cmd)
  local p = io.popen("cd " .. proc.quote(ROOT) .. " && env -u LD_PRELOAD -u LUAGW_LIB sh -c "
    .. proc.quote(cmd) .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a"); p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("the Debian package", function()
  local deb, root, build_out

  setup(function()
    local rc
    rc, build_out = sh("make --no-print-directory deb")
    assert(rc == 0, "make deb failed:\n" .. build_out:sub(-4000))
    deb = ROOT .. "/" .. assert(build_out:match("\ndeb: (%S+%.deb), %d+ KiB") or build_out:match("^deb: (%S+%.deb)"),
      "make deb did not name its package:\n" .. build_out:sub(-2000))
    root = proc.tmpdir("luagw-deb")
    assert(sh("dpkg-deb -x " .. proc.quote(deb) .. " " .. proc.quote(root)) == 0)
  end)
  teardown(function() proc.rmdir(root) end)

  local function field(name)
    local _, out = sh("dpkg-deb -f " .. proc.quote(deb) .. " " .. name)
    return (out:gsub("\n$", ""))
  end

  local function control_file(name)
    local _, out = sh("dpkg-deb --ctrl-tarfile " .. proc.quote(deb) .. " | tar -xOf - ./" .. name)
    return out
  end

  it("make deb builds luagw_<version>_<arch>.deb, and lintian reports no error and no warning", function()
    local _, version = sh("gateway/luagw --version")
    version = assert(version:match("^luagw (%S+)\n$"), version)
    local _, arch = sh("dpkg --print-architecture")
    arch = arch:gsub("%s+$", "")
    assert.are.equal(("%s/build/deb/luagw_%s_%s.deb"):format(ROOT, version, arch), deb)
    assert.are.equal("luagw", field("Package"))
    assert.are.equal(version, field("Version"))
    assert.are.equal(arch, field("Architecture"))
    local report = assert(proc.read_file(ROOT .. "/build/deb/lintian.txt"), "no lintian report")
    for _, l in ipairs(lines(report)) do
      -- E: error, W: warning; I: and O: (overridden, with the reason in
      -- debian/luagw.lintian-overrides) may stay.
      assert.is_nil(l:match("^[EW]: "), "lintian: " .. l)
    end
  end)

  it("depends on the shared libraries it links (from shlibs) and marks every file in /etc a conffile", function()
    local control = proc.read_file(ROOT .. "/debian/control")
    assert.matches("\nDepends: ${misc:Depends}, ${shlibs:Depends}, procps\n", control, 1, true)
    local depends = field("Depends")
    -- procps: /bin/kill for ExecReload; the rest computed from the libraries linked
    for _, lib in ipairs { "procps", "libc6 %(>= ", "libluajit", "libmicrohttpd12 ", "libcurl4 ",
      "libyaml%-0%-2", "zlib1g " } do
      assert.matches(lib, depends)
    end
    local _, etc = sh("cd " .. proc.quote(root) .. " && find etc -type f | sed 's|^|/|' | sort")
    assert.are.same({ "/etc/luagw/luagw.yaml", "/etc/luagw/scripts/errors.lua", "/etc/luagw/scripts/requests.lua",
      "/etc/luagw/scripts/subscription_error.lua", "/etc/luagw/series.yaml" }, lines(etc))
    local conffiles = lines(control_file("conffiles"))
    table.sort(conffiles)
    assert.are.same(lines(etc), conffiles)
    for _, f in ipairs { "usr/bin/luagw", "usr/lib/luagw/libluagw.so", "usr/share/lua/5.1/luagw/harness.lua",
      "usr/share/man/man1/luagw.1.gz", "lib/systemd/system/luagw.service", "usr/share/doc/luagw/copyright" } do
      assert.is_truthy(io.open(root .. "/" .. f), "missing /" .. f)
    end
    -- The luagw system user, made by systemd-sysusers when configured.
    assert.matches("\nu luagw %- ", "\n" .. proc.read_file(root .. "/usr/lib/sysusers.d/luagw.conf"))
    local postinst = control_file("postinst")
    assert.matches("systemd%-sysusers .- luagw%.conf", postinst)
    assert.matches("deb-systemd-helper enable 'luagw.service'", postinst, 1, true)
  end)

  it("has a hardened unit, running as luagw with a StateDirectory, that systemd-analyze verify accepts", function()
    local unit = proc.read_file(root .. "/lib/systemd/system/luagw.service")
    for _, l in ipairs { "User=luagw", "ExecStart=/usr/bin/luagw -c /etc/luagw/luagw.yaml",
      "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=luagw", "ProtectSystem=strict",
      "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes", "PrivateDevices=yes" } do
      assert.matches("\n" .. l .. "\n", unit, 1, true)
    end
    assert.is_nil(unit:find("@[A-Z]+@"), "unfilled placeholder")
    -- verify checks that the commands exist: point them at the extracted
    -- binary; Documentation=man:luagw(1) is looked up in the extracted pages.
    local dir = proc.tmpdir("luagw-unit")
    finally(function() proc.rmdir(dir) end)
    proc.write_file(dir .. "/luagw.service", (unit:gsub("/usr/bin/luagw", root .. "/usr/bin/luagw")))
    local rc, out = sh("MANPATH=" .. proc.quote(root .. "/usr/share/man") .. " systemd-analyze verify "
      .. proc.quote(dir .. "/luagw.service"))
    assert.are.equal(0, rc, out)
    assert.are.equal("", out)
    -- systemd's own score of the sandbox: 0 (locked down) .. 10 (exposed).
    rc, out = sh("systemd-analyze security --offline=yes " .. proc.quote(dir .. "/luagw.service"))
    local level = tonumber(out:match("Overall exposure level for luagw%.service: ([%d.]+)"))
    assert.is_truthy(level, out)
    assert.is_true(level <= 2.0, "exposure " .. tostring(level) .. "\n" .. out)
  end)

  it("runs: the extracted binary on the packaged config and scripts, against a real influxd", function()
    local bin, conf = root .. "/usr/bin/luagw", root .. "/etc/luagw/luagw.yaml"
    -- The packaged config names its scripts and series.yaml beside itself.
    local rc, out = proc.run({ bin, "--check-config", "-c", conf }, 30, { cwd = "/" })
    assert.are.equal(0, rc, out)
    assert.are.equal(conf .. ": ok\n", out)
    -- Without -c it reads /etc/luagw/luagw.yaml (SYSCONFDIR=/etc).
    if not io.open("/etc/luagw/luagw.yaml") then
      rc, out = proc.run({ bin, "--check-config" }, 30, { cwd = root })
      assert.are.equal(1, rc, out)
      assert.matches("neither ./config/luagw.yaml nor /etc/luagw/luagw.yaml exists", out, 1, true)
    end

    local db = influxd.start { database = "luna_monitoring" } -- the packaged config's database
    local dir = proc.tmpdir("luagw-deb-run")
    local port = ports.free()
    local gw
    finally(function() if gw then gw:destroy() end; db:destroy(); proc.rmdir(dir) end)
    gw = luagw.start { bin = bin, port = port, cwd = "/", env = { STATE_DIRECTORY = dir .. "/state" },
      raw_config = ("include: %s\nlisten:\n  port: %d\nmonitoring:\n  port: %d\n  flushing_period: 0.1\n")
        :format(conf, port, db.port) }
    local log = gw:log()
    assert.matches(('msg="scripts loaded" dir=%s/etc/luagw/scripts scripts=3'):format(root), log, 1, true)
    assert.matches('msg="series declarations loaded" series=5 service="luna-sender"', log, 1, true)

    -- requests.lua makes the route; series.yaml adds service=luna-sender.
    local st, body = gw.post("/write?precision=s",
      'requests,method=get,resource=/version,status_code=200 request_id="r1",execution_time=0.01 1700000000')
    assert.are.equal(204, st, body)
    -- series.yaml: status_code is required.
    st, body = gw.post("/write?precision=s", 'requests,method=get,resource=/v request_id="r2",execution_time=1 1700000001')
    assert.are.equal(400, st)
    assert.matches('series "requests": tag "status_code": required but missing', cjson.decode(body).error, 1, true)
    local q = "SELECT * FROM requests"
    assert.is_true(wait(function() return #db:rows(q, "luna_monitoring") == 1 end, 10), "the point was not stored")
    local row = db:rows(q, "luna_monitoring")[1]
    assert.are.equal("GET:/version", row.route)
    assert.are.equal("luna-sender", row.service)
    assert.are.equal("r1", row.request_id)
    -- The packaged spool lives in $STATE_DIRECTORY.
    local _, ls = sh("ls " .. proc.quote(dir .. "/state/spool"))
    assert.is_truthy(ls:find("%S"), "nothing in the spool directory")

    assert.is_true(gw:signal("HUP"))
    assert.is_truthy(wait(function() return gw:log():find('msg="scripts reloaded"', 1, true) end, 10), gw:log())
    assert.are.equal(0, (gw:stop()))
  end)

  it("ships the harness, which finds the packaged libluagw.so and runs the packaged scripts", function()
    local script = [[
      local harness = require("luagw.harness")
      local h = assert(harness.new { config = arg[1] })
      local p = h:run { series = "requests", tags = { method = "get", resource = "/v", status_code = "200" },
                        fields = { request_id = "x", execution_time = 0.5 } }.points[1]
      for l in io.lines("/proc/self/maps") do
        local lib = l:match("(/%S+/libluagw%.so)$")
        if lib then print(lib); break end
      end
      print(p.tags.route)
      h:close()
    ]]
    local file = root .. "/harness_check.lua"
    proc.write_file(file, script)
    local rc, out = sh(("cd / && LUA_PATH=%s luajit %s %s"):format(
      proc.quote(root .. "/usr/share/lua/5.1/?.lua;;"), proc.quote(file), proc.quote(root .. "/etc/luagw/luagw.yaml")))
    assert.are.equal(0, rc, out)
    assert.are.same({ root .. "/usr/lib/luagw/libluagw.so", "GET:/v" }, lines(out))
  end)
end)
