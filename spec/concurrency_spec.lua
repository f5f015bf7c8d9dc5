-- Many parallel clients while SIGHUP reloads the scripts: no
-- request is lost or refused, every point is taken exactly once, and luagw
-- keeps running. Under `make test-asan` this also runs the reload path
-- (script sets published and released while workers use them) with ASan.
local cjson = require("cjson")
local socket = require("socket")
local luagw = require("support.luagw")
local proc = require("support.proc")
local ports = require("support.ports")

local function write_atomic(path, text)
  proc.write_file(path .. ".tmp", text)
  assert(os.rename(path .. ".tmp", path))
end

describe("many parallel clients during SIGHUP reloads", function()
  it("every request gets 204 and every point is taken, while the scripts reload", function()
    local dir = proc.tmpdir("luagw-conc")
    finally(function() proc.rmdir(dir) end)
    proc.write_file(dir .. "/m.lua", 'return function(p) p.tags.v = "0" return p end\n')
    -- InfluxDB on a port where nothing listens: every accepted point stays in
    -- the buffer, so /health counts them (a server on the default 8086, e.g.
    -- one left by `make run`, would drain it).
    local gw = luagw.start { config = { listen = { threads = 4 }, scripts = { dir = dir },
      monitoring = { port = ports.free(), shutdown_timeout = 0 }, log = { level = "info" } } }
    finally(function() gw:destroy() end)

    local CLIENTS, REQS = 8, 100
    local pids, outs = {}, {}
    for c = 1, CLIENTS do
      outs[c] = dir .. "/client" .. c .. ".out"
      local loop = ("for i in $(seq %d); do curl -s -o /dev/null -w '%%{http_code}\\n' --max-time 10 "
        .. "--data-binary \"m,c=%d v=$i\" %s/write; done"):format(REQS, c, gw.url)
      pids[c] = proc.spawn { argv = { "sh", "-c", loop }, stdout = outs[c], stderr = "stdout" }
    end

    local reloads, t0 = 0, proc.now()
    local function running()
      for _, pid in ipairs(pids) do if proc.alive(pid) then return true end end
      return false
    end
    while running() and proc.now() - t0 < 60 do
      reloads = reloads + 1
      write_atomic(dir .. "/m.lua", ('return function(p) p.tags.v = "%d" return p end\n'):format(reloads))
      assert.is_true(gw:signal("HUP"))
      socket.sleep(0.05)
    end
    for _, pid in ipairs(pids) do proc.wait(pid, 10) end

    for c = 1, CLIENTS do
      local codes = {}
      for code in (proc.read_file(outs[c]) or ""):gmatch("[^\n]+") do codes[code] = (codes[code] or 0) + 1 end
      assert.same({ ["204"] = REQS }, codes, "client " .. c)
    end
    assert.is_true(reloads >= 5, "only " .. reloads .. " reloads")
    assert.is_true(gw:running())
    local _, body = gw:get("/health")
    assert.equal(CLIENTS * REQS, cjson.decode(body).buffer.points)
    assert.matches("scripts reloaded", gw:log())
    assert.is_nil(gw:log():find("reload failed", 1, true))
  end)
end)
