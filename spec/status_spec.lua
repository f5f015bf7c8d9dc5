-- The status page (gateway/status.c, gateway/status.html): GET /status.json's
-- fields against a real gateway and influxd (rates, per-series errors, the
-- output's state, reloads), the token rule for the page and its JSON, and the
-- page itself in Debian's headless Chromium, which must show a series that
-- is being written with a non-zero rate; its screenshots are kept under
-- build/spec-output/status/ (phone and desktop widths).
local cjson = require("cjson")
local http = require("support.http")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local wait = require("support.wait")

local ROOT = luagw.ROOT
local OUT = ROOT .. "/build/spec-output/status"

local function status(gw, query, headers)
  local st, body, h = http.get(gw.url .. "/status.json" .. (query or ""), headers, 5)
  return st, st == 200 and cjson.decode(body) or body, h
end

local function series_of(s, name)
  for _, x in ipairs(s.series) do
    if x.name == name then return x end
  end
end

local function scripts_dir(files)
  local dir = proc.tmpdir("luagw-status-scripts")
  for name, src in pairs(files) do proc.write_file(dir .. "/" .. name, src) end
  return dir
end

-- Write n points of series name in one body (timestamps: now).
local function write(gw, name, n, headers)
  local lines = {}
  for i = 1, n do lines[i] = ("%s,host=h%d v=%di"):format(name, i % 3, i) end
  return gw:post("/write", table.concat(lines, "\n"), headers)
end

describe("GET /status.json", function()
  local db, gw, dir

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    dir = scripts_dir { ["flaky.lua"] = [[
return function(p)
  if p.fields.v == 2 then error("flaky cannot take v=2") end
  return p
end]] }
    gw = luagw.start { influxd = db, config = { scripts = { dir = dir }, listen = { max_tags = 3 } } }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
    proc.rmdir(dir)
  end)

  it("names the gateway, its config, buffer and scripts; no points before any write", function()
    local st, s, h = status(gw)
    assert.equal(200, st, s)
    assert.matches("^application/json", h["content-type"])
    assert.equal("luagw", s.name)
    assert.matches("^%d+%.%d+%.%d+", s.version)
    assert.equal(gw.config_path, s.config)
    assert.is_true(s.uptime_seconds >= 0 and s.uptime_seconds < 600)
    assert.equal(300, s.history_seconds)
    assert.equal(0, s.buffer.points)
    assert.is_true(s.buffer.limit > 0 and s.buffer.limit_bytes > 0)
    assert.equal(1, s.scripts.loaded)
    assert.equal(cjson.null, s.scripts.last_reload)
    -- The series with a script has its counters from the start, at zero.
    assert.equal(1, #s.series)
    assert.equal("flaky", s.series[1].name)
    assert.equal(0, s.series[1].accepted)
    local o = s.outputs[1]
    assert.equal("monitoring", o.name)
    assert.equal("http://127.0.0.1:" .. db.port, o.url)
    assert.equal("luagw", o.target)
    assert.equal("idle", o.state)
    assert.equal(cjson.null, o.last_success)
    assert.equal(cjson.null, o.last_failure)
  end)

  it("shows points/s per series with its history, and the output's last success", function()
    local s = wait.wait_until(function()
      assert.equal(204, (write(gw, "spec_rate", 20)))
      local _, s = status(gw)
      local x = series_of(s, "spec_rate")
      return x and x.rate > 0 and #x.history >= 2 and s.outputs[1].last_success ~= cjson.null and s
    end, 15, 0.2)
    assert.is_truthy(s, "no rate for spec_rate")
    local x = series_of(s, "spec_rate")
    assert.is_true(x.accepted >= 20 and x.accepted % 20 == 0)
    assert.equal(x.accepted, x.received)
    local sum = 0
    for _, v in ipairs(x.history) do sum = sum + v end
    assert.is_true(sum > 0 and sum <= x.accepted, "history sums to " .. sum)
    assert.is_true(#x.history <= 300)
    assert.equal(cjson.null, x.last_error)
    assert.equal("healthy", s.outputs[1].state)
    assert.is_true(math.abs(s.outputs[1].last_success - s.now) < 60)
  end)

  it("counts rejected points and script errors per series, with the last message and its time", function()
    assert.equal(400, (gw:post("/write", "spec_bad,a=1,b=2,c=3,d=4 v=1i")))
    local st, body = gw:post("/write", "flaky v=1i\nflaky v=2i")
    assert.is_true(st == 204 or st == 400, body)
    local _, s = status(gw)
    local bad = series_of(s, "spec_bad")
    assert.equal(1, bad.rejected)
    assert.equal("rejected", bad.last_error.kind)
    assert.matches("max_tags", bad.last_error.message)
    assert.is_true(math.abs(bad.last_error.time - s.now) < 60)
    local flaky = series_of(s, "flaky")
    assert.equal(1, flaky.script_errors)
    assert.equal("script", flaky.last_error.kind)
    assert.matches("flaky cannot take v=2", flaky.last_error.message, 1, true)
    assert.is_true(s.scripts.errors.errors >= 1)
  end)

  it("reports each reload's result", function()
    assert.is_true(gw:signal("HUP"))
    local s = wait.wait_until(function()
      local _, s = status(gw)
      return s.scripts.last_reload ~= cjson.null and s
    end, 10)
    assert.is_truthy(s)
    assert.is_true(s.scripts.last_reload.ok)
    assert.equal(1, s.scripts.loaded)
    proc.write_file(dir .. "/flaky.lua", "return function(p) return p")
    local t0 = s.scripts.last_reload.time
    assert.is_true(gw:signal("HUP"))
    s = wait.wait_until(function()
      local _, s = status(gw)
      return s.scripts.last_reload.time > t0 and s
    end, 10)
    assert.is_truthy(s)
    assert.is_false(s.scripts.last_reload.ok)
    assert.matches("flaky.lua", s.scripts.last_reload.error, 1, true)
  end)

  it("keeps a history for 64 series at most; the others show their counters", function()
    local lines = {}
    for i = 1, 70 do lines[i] = ("spec_many_%02d v=1i"):format(i) end
    assert.equal(204, (gw:post("/write", table.concat(lines, "\n"))))
    local s = wait.wait_until(function()
      local _, s = status(gw)
      local tracked = 0
      for _, x in ipairs(s.series) do
        if #x.history > 0 then tracked = tracked + 1 end
      end
      return tracked == 64 and s
    end, 10)
    assert.is_truthy(s, "the tracks were not all taken")
    local many, bare = 0, 0
    for _, x in ipairs(s.series) do
      if x.name:match("^spec_many_") then
        many = many + 1
        assert.equal(1, x.accepted)
        if #x.history == 0 then bare = bare + 1 end
      end
    end
    assert.equal(70, many)
    assert.is_true(bare >= 6, bare .. " series without a history")
  end)

  it("shows the output retrying, with the last failure's reason, while InfluxDB is down", function()
    db:stop()
    finally(function() db:start_again() end)
    assert.equal(204, (write(gw, "spec_down", 5)))
    local s = wait.wait_until(function()
      local _, s = status(gw)
      return s.outputs[1].state == "retrying" and s
    end, 15)
    assert.is_truthy(s, "output never shown retrying")
    local o = s.outputs[1]
    assert.is_true(o.queue_points >= 5)
    assert.equal(0, o.last_failure.status) -- no answer at all
    assert.is_true(#o.last_failure.reason > 0)
    assert.is_true(s.buffer.points >= 5)
  end)
end)

describe("GET /status with listen.tokens", function()
  local db, gw
  local TOKEN = "s3cret-status"

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    gw = luagw.start { influxd = db, config = { listen = { tokens = { TOKEN } } } }
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
  end)

  it("answers 401 without a token: the page with a Basic challenge, the JSON with a JSON error", function()
    local st, body, h = http.get(gw.url .. "/status", nil, 5)
    assert.equal(401, st)
    assert.matches('^Basic realm="luagw status"', h["www-authenticate"])
    assert.matches("token", body)
    st, body = http.get(gw.url .. "/status.json", nil, 5)
    assert.equal(401, st)
    assert.matches("unauthorized", cjson.decode(body).error)
    st = http.get(gw.url .. "/status.json?token=wrong", nil, 5)
    assert.equal(401, st)
    st = http.get(gw.url .. "/status.json", { Authorization = "Bearer wrong" }, 5)
    assert.equal(401, st)
  end)

  it("takes the token as ?token=, Bearer, Token or Basic's password, like writes", function()
    local b64 = require("mime").b64
    for _, how in ipairs {
      { "?token=" .. TOKEN, nil },
      { "", { Authorization = "Bearer " .. TOKEN } },
      { "", { Authorization = "Token " .. TOKEN } },
      { "", { Authorization = "Basic " .. b64("ops:" .. TOKEN) } },
    } do
      local st, s = status(gw, how[1], how[2])
      assert.equal(200, st, s)
      assert.equal("luagw", s.name)
      local pst, page = http.get(gw.url .. "/status" .. how[1], how[2], 5)
      assert.equal(200, pst)
      assert.matches("<title>luagw status</title>", page, 1, true)
    end
  end)
end)

describe("the status page in headless Chromium", function()
  local db, gw, profile
  local AUTH = { Authorization = "Bearer page-token" }

  local function chromium(args)
    local argv = { "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-dev-shm-usage", "--user-data-dir=" .. profile, "--virtual-time-budget=4000" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local rc, out = proc.run(argv, 60, { env = { LD_PRELOAD = false } })
    return rc, out
  end

  lazy_setup(function()
    db = influxd.start {}
    db:create_database("luagw")
    gw = luagw.start { influxd = db, config = { listen = { tokens = { "page-token" } } } }
    profile = proc.tmpdir("luagw-chromium")
    os.execute("mkdir -p " .. proc.quote(OUT))
  end)
  lazy_teardown(function()
    if gw then gw:destroy() end
    if db then db:destroy() end
    proc.rmdir(profile)
  end)

  it("is one page under 30 KB, with nothing fetched from elsewhere", function()
    local st, page = http.get(gw.url .. "/status?token=page-token", nil, 5)
    assert.equal(200, st)
    assert.is_true(#page < 30 * 1024, #page .. " bytes")
    assert.is_nil(page:gsub("http://www.w3.org/2000/svg", ""):match("https?://"), "the page refers to another site")
    assert.is_nil(page:match("<script[^>]+src="))
    assert.is_nil(page:match("<link[^>]+href="))
    print(("status page: %d bytes"):format(#page))
  end)

  it("shows a series being written, with a non-zero rate, and is saved as screenshots", function()
    local url = gw.url .. "/status?token=page-token"
    local dom
    local ok = wait.wait_until(function()
      assert.equal(204, (write(gw, "spec_page", 50, AUTH)))
      local rc, out = chromium { "--dump-dom", url }
      assert.equal(0, rc, out)
      dom = out
      local row = out:match('<tr data%-series="spec_page">(.-)</tr>')
      local rate = row and row:match('<td class="rate">([%d.k]+)</td>')
      return rate and tonumber((rate:gsub("k$", ""))) > 0
    end, 90, 0.5)
    assert.is_truthy(ok, "the page never showed spec_page with a rate:\n" .. (dom or ""):sub(1, 3000))
    assert.matches('class="state healthy"', dom, 1, true)
    for _, shot in ipairs { { "phone", "412,900" }, { "desktop", "1280,800" } } do
      local path = OUT .. "/status-" .. shot[1] .. ".png"
      os.remove(path)
      assert.equal(204, (write(gw, "spec_page", 50, AUTH)))
      local rc, out = chromium { "--hide-scrollbars", "--window-size=" .. shot[2], "--screenshot=" .. path, url }
      assert.equal(0, rc, out)
      local png = proc.read_file(path)
      assert.is_truthy(png, "no screenshot at " .. path .. ":\n" .. out)
      assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
      assert.is_true(#png > 5000, "screenshot too small to show anything")
      print("status page screenshot: " .. path)
    end
  end)
end)
