-- requests: route = METHOD:resource when the point has no route.
--
-- Services that send the HTTP method and the resource as separate tags
-- (method=get, resource=/version) get the route tag that dashboards group
-- by (route=GET:/version). A point that has a route keeps it; a point
-- without both method and resource is left alone. The method and resource
-- tags stay.
--
-- A pure function of the tags: memo(f) lets luagw run it once per tag set
-- and apply the result to the other points of that tag set in C.
local upper = string.upper

return memo(function(point)
  local tags = point.tags
  if tags.route == nil then
    local method, resource = tags.method, tags.resource
    if method and resource then
      tags.route = upper(method) .. ":" .. resource
    end
  end
  return point
end)
