-- subscription_error: add this deployment's tags and fields to every point.
--
-- The services that report subscription errors do not know where they run;
-- the operator says it once, in the config, and every point gets it:
--
--   scripts:
--     params:
--       deployment:
--         tags: {datacenter: eu-1, environment: production}
--         fields: {release: "2026.11.1", instance: 3}
--
-- A tag or field the point already has is kept as it is. Tag values become
-- strings; integral numbers become integer fields, other numbers floats.
-- (subscription_error has no fields of its own and InfluxDB cannot store a
-- point without any: deployment fields give it some.)
--
-- A pure function of the point's tag and field keys and params: memo(f)
-- lets luagw run it once per shape and apply the result in C after that.
local deployment = params.deployment or {}

-- The pairs as arrays, built once: the per-point loop walks arrays.
local tag_keys, tag_values = {}, {}
for k, v in pairs(deployment.tags or {}) do
  tag_keys[#tag_keys + 1] = tostring(k)
  tag_values[#tag_values + 1] = tostring(v)
end
local field_keys, field_values = {}, {}
for k, v in pairs(deployment.fields or {}) do
  if type(v) == "number" and v == math.floor(v) then v = int(v) end
  field_keys[#field_keys + 1] = tostring(k)
  field_values[#field_values + 1] = v
end
local ntags, nfields = #tag_keys, #field_keys

return memo(function(point)
  local tags, fields = point.tags, point.fields
  for i = 1, ntags do
    local k = tag_keys[i]
    if tags[k] == nil then tags[k] = tag_values[i] end
  end
  for i = 1, nfields do
    local k = field_keys[i]
    if fields[k] == nil then fields[k] = field_values[i] end
  end
  return point
end)
