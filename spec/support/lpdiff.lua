-- The differential of line protocol against the real influxd: the same
-- bodies straight to one influxd and through the real luagw binary to
-- another, the stored series, field types and rows compared line by line.
-- Each line is also checked against the model of influxd's reading
-- (support.influx_model, fuzz/influx_model.c), which the fuzzers rely on.
-- Used by spec/lineproto_influx_spec.lua and tools/lp_differential.lua.
--
--   local lpdiff = require("support.lpdiff")
--   local bodies = lpdiff.corpus(2000, 7)   -- generated, backslash-heavy
--   local run = lpdiff.start()               -- two influxd, one luagw
--   local report = run:check(bodies)
--   print(lpdiff.summary(report)); run:stop()
--
-- A body is { class = "field-key", lines = { "L00001_m f\\=1i 17..." } }:
-- every line's measurement starts with its own id, L%05d_, and its time is
-- T0 + id, so stored series and rows are told apart by line. Ids are given
-- by lpdiff.id() in corpus order. With body.json set, luagw gets that JSON
-- (on /v1/points) instead of the lines, which say what it should store.
-- With body.via = { text = ..., precision = ... }, luagw gets that text
-- (on /write, with that precision) instead: what luagw takes on purpose and
-- influxd 1.6.7 does not (CRLF, `u` integers), against the lines influxd
-- stores the same from. body.precision (default "ns") is sent to both
-- sides as ?precision=; the model is not asked about such a body (it
-- reads nanoseconds), nor about one with body.model == false. A stored
-- time within an hour of the check is a time of receipt (a line without
-- its own: each side's clock).
--
-- report.mismatches: { class, id, kind, line, detail } where kind is
--   "acked-refused"     luagw answered 204, influxd refused the body
--   "corrupted"         both stored the line, not the same way
--   "stored-refused"    luagw stored a line that influxd does not store
--   "acked-not-stored"  luagw answered 204 and nothing reached influxd
--   "crash-accepted"    luagw accepted a body with a line that kills influxd
--   "model"             influxd did not do what the model says
-- report.counts[class]: lines, stored (by both, the same), refused (by
--   both: nothing of it reads back), luagw_refused (influxd stores it,
--   luagw refuses it: allowed, where luagw cannot store it faithfully),
--   crash (kills influxd).
-- report.by_id[id]: that word for the line, or its mismatch kind.
-- report.crash_lines: the lines the model says kill influxd (never sent to
-- it directly). report.dropped: points luagw dead-lettered (influxd refused
-- them after luagw acknowledged them); report.undelivered: points luagw
-- accepted and had not delivered after opts.deliver_timeout (60 s).
local cjson = require("cjson")
local ffi = require("ffi")
local http = require("support.http")
local influxd = require("support.influxd")
local luagw = require("support.luagw")
local model = require("support.influx_model")
local wait = require("support.wait")

local M = {}
M.T0 = 1700000000000000000LL
M.DB = "d"

---------------------------------------------------------------------------
-- The corpus

-- A small deterministic generator (Park-Miller): r(n) in 1..n.
local function rng(seed)
  local s = seed % 2147483646 + 1
  return function(n)
    s = s * 48271 % 2147483647
    return s % n + 1
  end
end

local LETTERS = { "a", "b", "x", "y", "z", "0", "_", ":", "/", "." }
local RUNS = { "\\", "\\\\", "\\\\\\", "\\\\\\\\" }
local DELIMS = { ",", " ", "=", '"' }
local UNICODE = { "\195\169", "\230\151\165\230\156\172", "\240\159\152\128", "\226\128\174" }
local CONTROL = { "\t", "\1", "\127", "\27", "\r" }

local function pick(r, t) return t[r(#t)] end

-- A name: letters, backslash runs before delimiters or letters, escaped
-- and bare delimiters, unicode, control bytes.
local function name(r, n)
  local out = {}
  for i = 1, n or r(4) do
    local k = r(14)
    if k <= 4 then out[i] = pick(r, LETTERS)
    elseif k <= 7 then out[i] = pick(r, RUNS) .. (r(3) == 1 and pick(r, LETTERS) or pick(r, DELIMS))
    elseif k <= 10 then out[i] = "\\" .. pick(r, DELIMS)
    elseif k == 11 then out[i] = pick(r, DELIMS)
    elseif k <= 13 then out[i] = pick(r, UNICODE)
    else out[i] = pick(r, CONTROL) end
  end
  return table.concat(out)
end

-- The text of a string value (between its quotes).
local function text(r, n)
  local out = {}
  for i = 1, n or r(5) do
    local k = r(14)
    if k <= 4 then out[i] = pick(r, LETTERS)
    elseif k <= 7 then out[i] = pick(r, RUNS) .. (r(2) == 1 and pick(r, LETTERS) or pick(r, DELIMS))
    elseif k == 8 then out[i] = '\\"'
    elseif k == 9 then out[i] = '"'
    elseif k == 10 then out[i] = pick(r, DELIMS)
    elseif k == 11 then out[i] = "\n"
    elseif k <= 13 then out[i] = pick(r, UNICODE)
    else out[i] = pick(r, CONTROL) end
  end
  return table.concat(out)
end

local next_id = 0
function M.id()
  next_id = next_id + 1
  return next_id
end
function M.prefix(id) return ("L%05d_"):format(id) end
function M.ts(id) return (tostring(M.T0 + id):gsub("LL$", "")) end
function M.rfc3339(id) return ("2023-11-14T22:13:20.%09dZ"):format(id) end

-- Generators of one line, by class.
local GEN = {
  measurement = function(r, id)
    return M.prefix(id) .. name(r) .. ",t=a f=1i " .. M.ts(id)
  end,
  ["tag-key"] = function(r, id)
    return M.prefix(id) .. "m,k" .. name(r) .. "=v f=1i " .. M.ts(id)
  end,
  ["tag-value"] = function(r, id)
    return M.prefix(id) .. "m,k=" .. (r(6) == 1 and "=" or "v") .. name(r) .. " f=1i " .. M.ts(id)
  end,
  ["field-key"] = function(r, id)
    return M.prefix(id) .. "m f" .. name(r) .. "=1i " .. M.ts(id)
  end,
  ["field-key-string"] = function(r, id)
    return M.prefix(id) .. "m " .. name(r) .. '="' .. text(r) .. '" ' .. M.ts(id)
  end,
  -- a key that ends in a backslash run: influxd's scanners then disagree
  -- on where it ends, and some such lines kill influxd
  ["field-key-run"] = function(r, id)
    return M.prefix(id) .. "m " .. name(r, 2) .. pick(r, RUNS) .. '="' .. text(r) .. '"' ..
      (r(2) == 1 and "" or "," .. name(r, 1) .. "=1") .. " " .. M.ts(id)
  end,
  ["string-value"] = function(r, id)
    return M.prefix(id) .. 'm s="' .. text(r) .. '",n=1i ' .. M.ts(id)
  end,
  mixed = function(r, id)
    return M.prefix(id) .. name(r) .. ",k" .. name(r) .. "=v" .. name(r) .. " f" .. name(r) ..
      '="' .. text(r) .. '",g=1 ' .. M.ts(id)
  end,
  ["leading-space"] = function(r, id)
    return (" "):rep(r(2)) .. M.prefix(id) .. name(r, 2) .. ",k=" .. name(r, 2) .. " f=" ..
      (r(2) == 1 and '"' .. text(r) .. '"' or "1") .. " " .. M.ts(id)
  end,
}
local ORDER = { "measurement", "tag-key", "tag-value", "field-key", "field-key-string",
  "field-key-run", "string-value", "mixed", "leading-space" }
M.CLASSES = ORDER

-- n generated lines from seed: one line per body, and a tenth of them in
-- bodies of two or three lines ("lines:<class>"), where one line can run
-- into the next.
function M.corpus(n, seed)
  local r, bodies, made = rng(seed or 1), {}, 0
  while made < n do
    local class = ORDER[r(#ORDER)]
    local k = r(10) == 1 and r(2) + 1 or 1
    local b = { class = k > 1 and "lines:" .. class or class, lines = {} }
    for i = 1, k do
      -- no CR at the end of a line: luagw takes CRLF line ends, on purpose
      b.lines[i] = GEN[class](r, M.id()):gsub("\r\n", "\27\n"):gsub("\r$", "\27")
    end
    bodies[#bodies + 1] = b
    made = made + k
  end
  return bodies
end

-- Bodies from a list of { class, function(id) -> line or { lines } }: the
-- function gets a fresh id (and M.id for more).
function M.fixed(list)
  local bodies = {}
  for _, c in ipairs(list) do
    local l = c[2](M.id())
    bodies[#bodies + 1] = { class = c[1], lines = type(l) == "table" and l or { l } }
  end
  return bodies
end

---------------------------------------------------------------------------
-- The two sides

local Run = {}
Run.__index = Run

-- Two influxd (the second behind luagw), database M.DB in each.
function M.start(opts)
  local self = setmetatable({ opts = opts or {} }, Run)
  self.direct = influxd.start {}
  self.direct:create_database(M.DB)
  self.behind = influxd.start {}
  self.behind:create_database(M.DB)
  self.gw = luagw.start { influxd = self.behind, database = M.DB,
    config = (opts or {}).config or { monitoring = { flushing_period = 0.1 } } }
  return self
end

function Run:stop()
  if self.gw then self.gw:destroy() end
  if self.direct then self.direct:destroy() end
  if self.behind then self.behind:destroy() end
end

-- luagw's counters from /metrics.
function Run:metric(name)
  local st, body = self.gw:get("/metrics")
  assert(st == 200, "GET /metrics: " .. tostring(st))
  return tonumber(body:match("\n" .. name .. " (%S+)")) or 0
end

---------------------------------------------------------------------------
-- What a database holds, by line id

local function id_of(s)
  -- (after blanks, or a byte order mark, which is part of the name)
  local n = s and s:match("^[%s\239\187\191]*L(%d%d%d%d%d)_")
  return n and tonumber(n)
end

-- s as Go's encoding/json writes it: each byte of invalid UTF-8 becomes
-- U+FFFD (as utf8.DecodeRune reads: no overlong forms, no surrogates).
local function go_utf8(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c, k = s:byte(i), 0
    if c >= 0xC2 and c <= 0xDF then k = 1
    elseif c >= 0xE0 and c <= 0xEF then k = 2
    elseif c >= 0xF0 and c <= 0xF4 then k = 3 end
    local ok = c < 0x80 or k > 0
    local lo, hi = 0x80, 0xBF
    if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F
    elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    for j = 1, k do
      local b = s:byte(i + j)
      if not b or b < (j == 1 and lo or 0x80) or b > (j == 1 and hi or 0xBF) then ok = false end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + k)
      i = i + k + 1
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

-- A float as str() shows influxd's: its JSON writes one of 2^53 or more
-- and below 1e21 in plain digits (the shortest that read back, then zeros),
-- which read back as an exact integer.
local function float_str(v)
  if v ~= math.floor(v) or math.abs(v) < 2 ^ 53 or math.abs(v) >= 1e21 then return ("%.17g"):format(v) end
  local e
  for prec = 15, 17 do
    e = ("%." .. prec .. "e"):format(v)
    if tonumber(e) == v then break end
  end
  local sign, int, frac, exp = e:match("^(-?)(%d)%.?(%d*)e%+(%d+)$")
  local digits = (int .. frac):gsub("0+$", "")
  return sign .. digits .. ("0"):rep(tonumber(exp) + 1 - #digits)
end

local function str(v)
  if v == cjson.null then return "null" end
  if type(v) == "string" then return ("%q"):format(go_utf8(v)) end
  if type(v) == "number" then return ("%.17g"):format(v) end
  return influxd.str(v)
end

-- The FROM of a SELECT for measurement name: quoted, or, when InfluxQL
-- cannot quote it (it reads a carriage return as a newline, stops at a NUL,
-- and reads only valid UTF-8), a regular expression for its unique prefix
-- (slow: it is matched against every measurement).
local function source(name)
  -- (SHOW MEASUREMENTS writes invalid UTF-8 as U+FFFD: the name is not that)
  if not name:find("[%z\r]") and go_utf8(name) == name and not name:find("\239\191\189", 1, true) then
    return '"' .. name:gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n") .. '"'
  end
  return ("/^(\\x{FEFF})?L%05d_/"):format(id_of(name))
end

-- { [id] = { series = {...}, fields = {...}, rows = {...} } }, each list
-- sorted, from SHOW SERIES, SHOW FIELD KEYS and SELECT *.
local function holdings(db)
  local by = {}
  local now = ffi.new("int64_t", os.time()) * 1000000000
  local function slot(id)
    by[id] = by[id] or { series = {}, fields = {}, rows = {}, types = {} }
    return by[id]
  end
  local function results(q)
    local doc = db:query(q, M.DB)
    local r = doc.results and doc.results[1] or {}
    assert(not r.error, q .. ": " .. tostring(r.error))
    return r.series or {}
  end
  for _, s in ipairs(results("SHOW SERIES")) do
    for _, v in ipairs(s.values or {}) do
      local id = id_of(v[1])
      if id then table.insert(slot(id).series, v[1]) end
    end
  end
  for _, s in ipairs(results("SHOW FIELD KEYS")) do
    local id = id_of(s.name)
    for _, v in ipairs(id and s.values or {}) do
      table.insert(slot(id).fields, s.name .. "|" .. v[1] .. ":" .. v[2])
      slot(id).types[s.name .. "|" .. v[1]] = v[2]
    end
  end
  -- One SELECT per measurement (a query of many gives each field one type
  -- across them all and leaves out the rows of the others), many
  -- statements a request.
  local names = {}
  for _, s in ipairs(results("SHOW MEASUREMENTS")) do
    for _, v in ipairs(s.values or {}) do
      if id_of(v[1]) then names[#names + 1] = v[1] end
    end
  end
  for i = 1, #names, 100 do
    local q = {}
    for j = i, math.min(i + 99, #names) do
      q[#q + 1] = "SELECT * FROM " .. source(names[j])
    end
    local doc = db:query(table.concat(q, "; "), M.DB)
    assert(doc.results, "influxd: " .. tostring(doc.error) .. ": " .. table.concat(q, "; "))
    for _, r in ipairs(doc.results) do
      assert(not r.error, tostring(r.error))
      for _, s in ipairs(r.series or {}) do
        local id = id_of(s.name)
        for _, v in ipairs(id and s.values or {}) do
          local cells = {}
          for k, c in ipairs(s.columns) do
            if c == "time" and v[k] > now - 3600e9 and v[k] < now + 3600e9 then
              cells[#cells + 1] = "time=receipt" -- a line without its own: each side's clock
            elseif v[k] ~= cjson.null then
              cells[#cells + 1] = c .. "=" .. str(v[k])
            end
          end
          table.sort(cells)
          table.insert(slot(id).rows, s.name .. "|" .. table.concat(cells, ","))
        end
      end
    end
  end
  for _, h in pairs(by) do
    table.sort(h.series); table.sort(h.fields); table.sort(h.rows)
    h.text = table.concat(h.series, "\n") .. "\n--\n" .. table.concat(h.fields, "\n") ..
      "\n--\n" .. table.concat(h.rows, "\n")
  end
  return by
end

-- The model's stored point as the row holdings() would show for it.
local TYPE = { float = "float", int = "integer", uint = "integer", string = "string", bool = "boolean" }
local function model_view(p)
  local cells, fields = {}, {}
  -- a line without a time gets influxd's clock, not the model's
  cells[1] = p.time_ns == model.NOW and "time=receipt" or "time=" .. influxd.str(p.time_ns)
  for k, v in pairs(p.tags) do cells[#cells + 1] = go_utf8(k) .. "=" .. str(v) end
  for k, v in pairs(p.fields) do
    local t = p.types[k]
    local val = t == "float" and float_str(v) or t == "bool" and tostring(v) or
      t == "string" and str(v) or influxd.str(v)
    -- influxd's SELECT names a field with an empty key val0
    cells[#cells + 1] = (k == "" and "val0" or go_utf8(k)) .. "=" .. val
    fields[#fields + 1] = go_utf8(p.series) .. "|" .. go_utf8(k) .. ":" .. TYPE[t]
  end
  table.sort(cells); table.sort(fields)
  return go_utf8(p.series) .. "|" .. table.concat(cells, ","), table.concat(fields, "\n")
end

---------------------------------------------------------------------------
-- The check

local function count(report, class, key, id)
  local c = report.counts[class] or { lines = 0, stored = 0, refused = 0, luagw_refused = 0, crash = 0 }
  report.counts[class] = c
  c[key] = c[key] + 1
  if id and key ~= "lines" then report.by_id[id] = key end
end

local function mismatch(report, class, id, kind, line, detail)
  table.insert(report.mismatches, { class = class, id = id, kind = kind, line = line, detail = detail })
  if id then report.by_id[id] = kind end
end

-- Send every body both ways, wait for luagw's delivery, compare.
function Run:check(bodies)
  local report = { mismatches = {}, counts = {}, crash_lines = {}, by_id = {} }
  local lines = {} -- id -> { class, text, body }
  local accepted0 = self:metric("luagw_points_accepted_total")
  local dropped0 = self:metric("luagw_points_dropped_total")
  local done0 = self:metric("luagw_points_written_total") + dropped0

  for _, b in ipairs(bodies) do
    local text = table.concat(b.lines, "\n") .. "\n"
    b.text = text
    for _, l in ipairs(b.lines) do
      local id = id_of(l)
      if id then lines[id] = { class = b.class, text = l, body = b } end
    end
    -- influxd's own reading of the body, line by line
    b.outcomes = {}
    local prec = b.precision or "ns"
    for _, l in ipairs((prec == "ns" and b.model ~= false) and model.lines(text) or {}) do
      local outcome, why, p = model.line(l)
      table.insert(b.outcomes, { text = l, id = id_of(l), outcome = outcome, why = why, point = p })
      if outcome == "crash" then
        b.crash = true
        table.insert(report.crash_lines, l)
      end
    end
    if not b.crash then
      b.direct = self.direct:write(text, M.DB, { precision = prec })
      if not b.direct then
        mismatch(report, b.class, id_of(b.lines[1]), "model", text, "influxd died on the body (the model missed a crash)")
        self.direct:stop()
        self.direct:start_again()
      end
    end
    if b.json then -- the same point as JSON, through /v1/points
      b.luagw = self.gw:post("/v1/points", b.json, { ["Content-Type"] = "application/json" })
    elseif b.via then
      b.luagw = self.gw:post("/write?" .. http.query({ precision = b.via.precision or prec }), b.via.text)
    else
      b.luagw = self.gw:post("/write?" .. http.query({ precision = prec }), text)
    end
    if b.crash and b.luagw == 204 then
      mismatch(report, b.class, id_of(b.lines[1]), "crash-accepted", text, "luagw answered 204")
    end
    if b.luagw == 204 and b.direct and b.direct ~= 204 then
      mismatch(report, b.class, id_of(b.lines[1]), "acked-refused", text,
        ("luagw 204, influxd %s"):format(tostring(b.direct)))
    end
  end

  -- luagw delivers what it accepted (or dead-letters it, or keeps retrying
  -- a point influxd fails on: both are mismatches below)
  local want = self:metric("luagw_points_accepted_total") - accepted0
  local function done() return self:metric("luagw_points_written_total") + self:metric("luagw_points_dropped_total") end
  wait(function() return done() - done0 >= want end, (self.opts or {}).deliver_timeout or 60)
  report.undelivered = want - (done() - done0)
  report.dropped = self:metric("luagw_points_dropped_total") - dropped0

  local direct, via = holdings(self.direct), holdings(self.behind)
  -- A side stored a line when it reads back rows of it: influxd keeps the
  -- series of some points it then refuses or cannot read back.
  for id, l in pairs(lines) do
    local d, v, b = direct[id], via[id], l.body
    local dr, vr = d and #d.rows > 0, v and #v.rows > 0
    count(report, l.class, "lines")
    if b.crash then
      count(report, l.class, "crash", id)
    elseif dr and vr and v.text == d.text then
      count(report, l.class, "stored", id)
    elseif dr and vr then
      mismatch(report, l.class, id, "corrupted", l.text, "influxd:\n" .. d.text .. "\nthrough luagw:\n" .. v.text)
    elseif vr then
      mismatch(report, l.class, id, "stored-refused", l.text, "through luagw:\n" .. v.text)
    elseif b.luagw == 204 and #b.lines == 1 then
      mismatch(report, l.class, id, "acked-not-stored", l.text, "influxd:\n" .. (d and d.text or "(nothing)"))
    elseif dr then
      count(report, l.class, "luagw_refused", id)
    else
      count(report, l.class, "refused", id)
    end
  end

  -- the model against influxd, for the bodies it was sent: the status (a
  -- server error wins over a refusal), and each line's rows (influxd may
  -- keep the series and field keys of a point it then fails to write)
  for _, b in ipairs(bodies) do
    local status = #b.outcomes > 0 and 204 or b.direct
    for _, o in ipairs(b.outcomes) do
      if o.outcome == "server error" then
        status = 500
      elseif o.outcome == "refused" and status == 204 then
        status = 400
      end
    end
    for _, o in ipairs(b.direct and b.outcomes or {}) do
      local d = o.id and direct[o.id]
      local why
      if status == 500 then -- the engine fails on the shard of that point: whether
        -- the others are written depends on their shards, which the model
        -- does not know
      elseif o.outcome == "stored" then
        local row, fields = model_view(o.point)
        if not d or #d.rows ~= 1 or d.rows[1] ~= row or table.concat(d.fields, "\n") ~= fields then
          why = ("model: stored as\n%s\n%s\ninfluxd:\n%s"):format(row, fields, d and d.text or "(nothing)")
        end
      elseif o.outcome == "lost" then
        if not d or #d.series == 0 or #d.rows > 0 then
          why = "model: lost (series, no rows); influxd:\n" .. (d and d.text or "(nothing)")
        end
      elseif d and #d.rows > 0 then
        why = ("model: %s (%s); influxd:\n%s"):format(o.outcome, o.why, d.text)
      end
      if why then mismatch(report, b.class, o.id, "model", o.text, why) end
    end
    if b.direct and b.direct ~= status then
      mismatch(report, b.class, id_of(b.lines[1]), "model", b.text,
        ("model: status %d; influxd: %d"):format(status, b.direct))
    end
  end
  table.sort(report.mismatches, function(a, b) return (a.id or 0) < (b.id or 0) end)
  return report
end

-- A readable summary: counts per class, then up to max mismatches of each
-- kind.
function M.summary(report, max)
  local out, classes = {}, {}
  for c in pairs(report.counts) do classes[#classes + 1] = c end
  table.sort(classes)
  out[#out + 1] = ("%-26s %7s %7s %7s %9s %6s"):format("class", "lines", "stored", "refused",
    "luagw-400", "crash")
  for _, c in ipairs(classes) do
    local k = report.counts[c]
    out[#out + 1] = ("%-26s %7d %7d %7d %9d %6d"):format(c, k.lines, k.stored, k.refused,
      k.luagw_refused, k.crash)
  end
  local kinds = {}
  for _, m in ipairs(report.mismatches) do kinds[m.kind] = (kinds[m.kind] or 0) + 1 end
  out[#out + 1] = ("luagw dead-lettered %d points; %d accepted were not delivered"):format(
    report.dropped or 0, report.undelivered or 0)
  out[#out + 1] = ("mismatches: %d"):format(#report.mismatches)
  for k, n in pairs(kinds) do out[#out + 1] = ("  %s: %d"):format(k, n) end
  local shown = {}
  for _, m in ipairs(report.mismatches) do -- the first max of each kind
    shown[m.kind] = (shown[m.kind] or 0) + 1
    if shown[m.kind] <= (max or 20) then
      out[#out + 1] = ("[%s] %s, line %s: %q\n    %s"):format(m.kind, m.class, tostring(m.id),
        m.line, (m.detail or ""):gsub("\n", "\n    "))
    end
  end
  return table.concat(out, "\n")
end

return M
