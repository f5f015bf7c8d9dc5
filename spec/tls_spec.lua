-- TLS: HTTPS ingest (listen.tls_cert/tls_key, libmicrohttpd + GnuTLS) and
-- HTTPS to InfluxDB (monitoring.use_ssl, tls_verify, tls_ca). The certificate
-- is self-signed for 127.0.0.1, made by openssl at test time; everything is
-- on loopback. The InfluxDB behind TLS is a second luagw serving HTTPS in
-- front of a real influxd (luagw's /write is InfluxDB's), so verification
-- is exercised against a server that really speaks TLS.
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local proc = require("support.proc")
local socket = require("socket")
local wait = require("support.wait")

local function sh(cmd)
  -- (no sanitizer runtime preloaded into curl, node... under make test-asan)
  local p = io.popen("env -u LD_PRELOAD sh -c " .. require("support.proc").quote(cmd) .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

-- curl over HTTPS: status code (number) and body.
local function curl(args)
  local rc, out = sh("curl -s -o /dev/stdout -w '\\n%{http_code}' --max-time 5 " .. args)
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code) or 0, body or out, rc
end

describe("TLS", function()
  local dir, cert, key, db, back

  -- a luagw serving HTTPS, in front of db
  local function start_tls_gw(extra)
    local cfg = { listen = { tls_cert = cert, tls_key = key } }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    local g = luagw.start { influxd = db, config = cfg, wait = false }
    local url = "https://127.0.0.1:" .. g.port
    assert.is_true(wait(function() return (curl("--cacert " .. cert .. " " .. url .. "/ping")) == 204 end, 10),
      "no HTTPS /ping:\n" .. g:log())
    g.https = url
    return g
  end

  lazy_setup(function()
    dir = proc.tmpdir("luagw-tls")
    cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    local rc, out = sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 " ..
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost"):format(key, cert))
    assert(rc == 0, out)
    db = influxd.start { database = "luagw" }
    back = start_tls_gw()
  end)

  lazy_teardown(function()
    if back then back:destroy() end
    if db then db:destroy() end
    proc.rmdir(dir)
  end)

  it("serves ingest over HTTPS with the configured certificate", function()
    local code = curl("--cacert " .. cert .. " -X POST --data-binary 'tls v=1i 1700000000000000001' " ..
      back.https .. "/write")
    assert.equal(204, code)
    assert.is_true(wait(function() return db:count("tls", "luagw") == 1 end, 10))
    -- a client that does not trust the certificate refuses it
    local code2, _, rc = curl(back.https .. "/ping")
    assert.equal(0, code2)
    assert.equal(60, rc) -- curl: peer certificate cannot be authenticated
    -- and plain HTTP to the TLS port gets no HTTP answer
    assert.is_nil((back:get("/ping", nil, 1)) == 204 or nil)
  end)

  it("refuses to start with a missing key file or a cert without a key", function()
    local g = luagw.start { config = { listen = { tls_cert = cert, tls_key = dir .. "/nope.pem" } }, wait = false }
    finally(function() g:destroy() end)
    assert.equal(1, (g:wait_exit(5)))
    assert.matches("listen.tls_key: cannot open", g:log(), 1, true)
    local g2 = luagw.start { config = { listen = { tls_cert = cert } }, wait = false }
    finally(function() g2:destroy() end)
    assert.equal(1, (g2:wait_exit(5)))
    assert.matches("listen.tls_cert and listen.tls_key go together", g2:log(), 1, true)
  end)

  it("bursts of idle connections beyond listen.max_connections leave HTTPS /health, writes and SIGTERM working", function()
    -- libmicrohttpd 0.9.75 hung its workers at its own connection limit;
    -- over TLS both died (docs/hardening.md).
    local g = luagw.start { influxd = db, wait = false, config = {
      listen = { tls_cert = cert, tls_key = key, threads = 2, max_connections = 32, max_connections_per_client = 0 },
      log = { level = "error" } } }
    finally(function() g:destroy() end)
    local url = "https://127.0.0.1:" .. g.port
    local tls = "--cacert " .. cert .. " " .. url
    assert.is_true(wait(function() return (curl(tls .. "/ping")) == 204 end, 10), g:log())
    local function accepted()
      local code, body = curl(tls .. "/metrics")
      return code == 200 and tonumber(body:match("\nluagw_http_connections_accepted_total (%d+)")) or nil
    end
    for _ = 1, 3 do
      local before, looks, held = accepted(), 0, {}
      for i = 1, 80 do
        held[i] = assert(socket.tcp())
        held[i]:settimeout(2)
        assert(held[i]:connect("127.0.0.1", g.port))
      end
      assert.is_truthy(wait(function()
        looks = looks + 1
        local n = accepted()
        return n and n >= before + 80 + looks
      end, 15), "the burst was not taken in")
      for _, c in ipairs(held) do c:close() end
    end
    assert.equal(200, (curl(tls .. "/health")))
    assert.equal(204, (curl(tls .. "/write --data-binary 'tls_burst v=1i 1700000000000000005'")))
    assert.is_true(wait(function() return db:count("tls_burst", "luagw") == 1 end, 10))
    assert.equal(0, (g:stop(10)), "SIGTERM did not end luagw")
  end)

  local function front(mon)
    local m = { use_ssl = true, host = "127.0.0.1", port = back.port, retry_max = 0.2, timeout = 2,
      shutdown_timeout = 0.1 }
    for k, v in pairs(mon) do m[k] = v end
    return luagw.start { config = { monitoring = m } }
  end

  it("writes to InfluxDB over HTTPS, verifying against monitoring.tls_ca", function()
    local f = front { tls_ca = cert }
    finally(function() f:destroy() end)
    assert.equal(204, (f:post("/write", "tls_front v=1i 1700000000000000002")))
    assert.is_true(wait(function() return db:count("tls_front", "luagw") == 1 end, 10), f:log())
    assert.is_nil(f:log():find("without certificate verification", 1, true))
  end)

  it("verifies by default: an untrusted certificate is not written to, /health says so", function()
    local f = front {}
    finally(function() f:destroy() end)
    assert.equal(204, (f:post("/write", "tls_untrusted v=1i 1700000000000000003")))
    assert.is_true(wait(function() return (f:get("/health")) == 503 end, 10))
    assert.matches("certificate", f:log())
    assert.equal(0, db:count("tls_untrusted", "luagw"))
  end)

  it("tls_verify: false writes anyway and logs that verification is off", function()
    local f = front { tls_verify = false }
    finally(function() f:destroy() end)
    assert.matches("TLS to InfluxDB without certificate verification", f:log(), 1, true)
    assert.equal(204, (f:post("/write", "tls_noverify v=1i 1700000000000000004")))
    assert.is_true(wait(function() return db:count("tls_noverify", "luagw") == 1 end, 10))
  end)
end)
