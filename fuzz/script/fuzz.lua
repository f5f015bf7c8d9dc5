-- fuzz/script/fuzz.lua — the script of fuzz/script.c: the point's field
-- `d` (hex) is a little program that builds the value the script returns,
-- so the fuzzer explores what scripts can hand back to the C side: points
-- changed in place, new point tables, fan-out arrays, nested and cyclic
-- tables, every Lua type in every slot, odd numbers, long strings.
local KEYS = { "series", "time", "tags", "fields", 1, 2, "x", "", "time", "a b", "k=v" }
local NUMS = { 0, -0.0, 1, -1, 0.5, 1e300, -1e300, 2^53, 2^53 + 1, 2^63, -2^63, 2^64, 1/0, -1/0, 0/0,
  1e-320, 123456789.123, 4294967296 }
local INTS = { "0", "1", "-1", "9223372036854775807", "-9223372036854775808", "18446744073709551615",
  "18446744073709551616", "x", "" }

return function(point)
  local hex = point.fields.d
  if type(hex) ~= "string" then return point end
  local bytes = {}
  for h in hex:gmatch("%x%x") do bytes[#bytes + 1] = tonumber(h, 16) end
  local pos, stack = 1, { point }
  local function nextb()
    local b = bytes[pos] or 0
    pos = pos + 1
    return b
  end
  local function top() return stack[#stack] end
  local function pop()
    local v = stack[#stack]
    if #stack > 1 then stack[#stack] = nil end
    return v
  end
  while pos <= #bytes do
    local op = nextb() % 18
    if op == 0 then stack[#stack + 1] = {}
    elseif op == 1 then
      local n, t = nextb() % 24, {}
      for i = 1, n do t[i] = string.char(nextb()) end
      stack[#stack + 1] = table.concat(t)
    elseif op == 2 then stack[#stack + 1] = NUMS[nextb() % #NUMS + 1]
    elseif op == 3 then stack[#stack + 1] = (nextb() % 2 == 0)
    elseif op == 4 then stack[#stack + 1] = false
    elseif op == 5 then
      local ok, v = pcall(int, INTS[nextb() % #INTS + 1])
      stack[#stack + 1] = ok and v or 0
    elseif op == 6 then
      local v, k, t = pop(), pop(), top()
      if type(t) == "table" and k ~= nil and k == k then t[k] = v end
    elseif op == 7 then
      local v, t = pop(), top()
      if type(t) == "table" then t[#t + 1] = v end
    elseif op == 8 then stack[#stack + 1] = point
    elseif op == 9 then stack[#stack + 1] = top()
    elseif op == 10 then stack[#stack + 1] = function() end
    elseif op == 11 then stack[#stack + 1] = ({ "fz", "other", "", "a,b c", "time" })[nextb() % 5 + 1]
    elseif op == 12 then
      local t = top()
      if type(t) == "table" then t[nextb() % 2 == 0 and "self" or 1] = t end
    elseif op == 13 then stack[#stack + 1] = ("x"):rep(nextb() * 33)
    elseif op == 14 then stack[#stack + 1] = KEYS[nextb() % #KEYS + 1]
    elseif op == 15 then stack[#stack + 1] = point.fields
    elseif op == 16 then stack[#stack + 1] = point.tags
    else
      local b, t = nextb(), {}
      for i = 1, b == 255 and 1001 or b % 8 * 20 do t[i] = { series = "fz", fields = { v = i } } end
      stack[#stack + 1] = t
    end
    if #stack > 64 then pop() end
  end
  if nextb() % 2 == 0 then return stack[#stack] end
  return stack[1]
end
