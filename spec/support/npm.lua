-- npm packages for specs, installed at test time into the git-ignored
-- spec/.node/, each package in a directory of its own (an npm install
-- --no-save removes what an earlier one put beside it). node and npm come
-- from `make deps`.
--
--   local npm = require("support.npm")
--   local mod, why = npm.ensure("influx", "influx@5")
--   if not mod then pending(why) return end   -- the registry is unreachable
--   -- mod: the package's directory, for require() in a node script
--
-- Any other npm failure raises an error.
local luagw = require("support.luagw")
local proc = require("support.proc")

local M = {}
M.DIR = luagw.ROOT .. "/spec/.node"

-- Run cmd with sh, without the sanitizer runtime preloaded (make
-- test-asan): exit code and output (stdout and stderr).
function M.sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c " .. proc.quote(cmd) .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

-- The directory of package name, installed from spec (name@version) unless
-- it is there already; nil and why when the registry cannot be reached.
function M.ensure(name, spec)
  local dir = M.DIR .. "/" .. name:gsub("[^%w]", "_")
  local mod = dir .. "/node_modules/" .. name
  local f = io.open(mod .. "/package.json")
  if f then f:close() return mod end
  -- A package.json of its own anchors npm here: without one, npm installs
  -- into the nearest parent directory that has a node_modules.
  local rc, out = M.sh("mkdir -p " .. proc.quote(dir) .. " && cd " .. proc.quote(dir) ..
    " && { [ -f package.json ] || echo '{\"private\": true}' > package.json; }" ..
    " && npm install --no-audit --no-fund --no-save --loglevel=error " .. proc.quote(spec))
  if rc ~= 0 then
    if out:match("ENOTFOUND") or out:match("EAI_AGAIN") or out:match("ECONNREFUSED")
      or out:match("ETIMEDOUT") or out:match("ECONNRESET") or out:match("network") then
      return nil, "npm registry unreachable, " .. spec .. " not installed: " .. out:sub(1, 200)
    end
    error("npm install " .. spec .. " failed:\n" .. out)
  end
  return mod
end

return M
