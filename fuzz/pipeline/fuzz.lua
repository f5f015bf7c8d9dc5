-- fuzz/pipeline/fuzz.lua — the scripts of the whole-pipeline fuzzer
-- (fuzz/pipeline.c): one per params.mode, each loaded into a worker of its
-- own. fuzz/pipeline.c knows what each does to a point:
--   identity    returns the point as it came (after the checks below)
--   error       changes the point, then raises an error (on_error: pass)
--   fanout      the point, a new table sharing its tags and fields tables,
--               and a copy with tables of its own: three equal points
--   drop        returns nil
--   add_tags    adds tags (some from the input, sometimes a 70 kB value)
--   add_fields  adds fields (sometimes a 100 kB string, sometimes 300)
--   delete      removes a tag and every other field
--   enrich      a pure function of the point's shape: adds tags that sort
--               before, among and after the point's (with bytes to
--               escape), overrides one, adds a field of each type
--   memo        memo(enrich): the memo cache's answers, which fuzz/pipeline.c
--               compares byte for byte with enrich's
-- identity, error and fanout keep the point as it came, so the harness
-- compares what is stored with what was sent. They also look for anything
-- an earlier point's script left in the reused tables (a leak becomes a
-- field, fz_leak, and fails the comparison) and leave dirt of their own
-- behind, by the paths the engine must notice: a new key on the point,
-- rawset on it, table.insert on its tags and fields.
local mode = params.mode

local function check_clean(p)
  for k in pairs(p) do
    if k ~= "series" and k ~= "time" and k ~= "tags" and k ~= "fields" then
      p.fields.fz_leak = "point." .. tostring(k)
    end
  end
  for k in pairs(p.tags) do
    if type(k) ~= "string" then p.fields.fz_leak = "tags[" .. tostring(k) .. "]" end
  end
  for k in pairs(p.fields) do
    if type(k) ~= "string" then p.fields.fz_leak = "fields[" .. tostring(k) .. "]" end
  end
end

-- Dirt the engine must clean up before the next point. The integer keys
-- (only with ints) make this point's own return value bad: it then passes
-- as it came.
local function dirty(p, ints)
  local how = #p.series % (ints and 4 or 2)
  if how == 0 then
    p.fz_seen = true
  elseif how == 1 then
    rawset(p, "fz_mark", true)
  elseif how == 2 then
    table.insert(p.tags, 2, "x")
  else
    table.insert(p.fields, 2, 7)
  end
end

local modes = {}

function modes.identity(p)
  check_clean(p)
  dirty(p, true)
  return p
end

function modes.error(p)
  p.tags.fz = "x"
  p.fields.fz = 1
  error("fuzz: this script always fails")
end

function modes.fanout(p)
  check_clean(p)
  local copy = { series = p.series, tags = {}, fields = {} }
  for k, v in pairs(p.tags) do copy.tags[k] = v end
  for k, v in pairs(p.fields) do copy.fields[k] = v end
  dirty(p, false)
  return { p, { series = p.series, tags = p.tags, fields = p.fields }, copy }
end

function modes.drop(p)
  return nil
end

function modes.add_tags(p)
  local t = p.tags
  t.fz_a = "x"
  t[p.series] = p.series
  for k in pairs(p.fields) do t["t_" .. k] = k end
  if #p.series % 3 == 0 then t.fz_big = string.rep("v", 70000) end
  return p
end

function modes.add_fields(p)
  local f = p.fields
  f.fz_n, f.fz_i, f.fz_s, f.fz_b = 1.5, int(7), p.series, true
  for k, v in pairs(p.tags) do f["f_" .. k] = v end
  if #p.series % 2 == 0 then f.fz_big = string.rep("s", 100000) end
  if #p.series % 5 == 0 then
    for i = 1, 300 do f["x" .. i] = i end
  end
  return p
end

function modes.delete(p)
  local k = next(p.tags)
  if k then p.tags[k] = nil end
  local n = 0
  for key in pairs(p.fields) do
    n = n + 1
    if n % 2 == 0 then p.fields[key] = nil end
  end
  return p
end

function modes.enrich(p)
  local t, f = p.tags, p.fields
  t.aa, t.mm, t.zz = "first", "mid dle,x=y", "la\\st"
  if t.host then t.host = "over=ridden" end
  t.gone = nil
  f.fz_s, f.fz_n, f.fz_i, f.fz_b = 'say "hi"\\', 0.1, int(-7), true
  return p
end

if mode == "memo" then return memo(modes.enrich) end
return assert(modes[mode], "fuzz.lua: unknown params.mode")
