-- bench/scripts/general.lua — the benchmark's general script: not memo(f),
-- because it reads a field's value (a duration) to tag the point, so it
-- runs on every point. Otherwise it adds what subscription_error.lua adds
-- (the deployment's two tags), which keeps its rows comparable with the
-- memo'd script's.
local deployment = params.deployment or {}
local dtags = deployment.tags or {}
local dc, env = tostring(dtags.datacenter or "bench-1"), tostring(dtags.environment or "bench")

return function(point)
  local tags, fields = point.tags, point.fields
  if tags.datacenter == nil then tags.datacenter = dc end
  if tags.environment == nil then tags.environment = env end
  local d = fields.execution_time or fields.transport_time
  if d then tags.slow = d > 0.1 and "yes" or "no" end
  return point
end
