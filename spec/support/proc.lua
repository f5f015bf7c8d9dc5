-- Child processes for specs, through LuaJIT's FFI (fork/execvp/waitpid), so
-- the spec process is the real parent: exact exit codes and signals, no shell
-- in between, and signals sent by PID reach the program itself.
--
-- Every spawned child also gets a watchdog (a tiny `sh` loop) that kills it
-- if the spec process dies without stopping it, so nothing outlives a run.
--
--   local proc = require("support.proc")
--   local pid = proc.spawn{ argv = {"influxd", "-config", f}, stdout = log, stderr = "stdout" }
--   proc.alive(pid); proc.kill(pid, "TERM"); proc.wait(pid, 5) --> code, signame
--   proc.stop(pid, 10) -- TERM, bounded wait, KILL
local ffi = require("ffi")
local bit = require("bit")
local socket = require("socket")

local function cdef(s) pcall(ffi.cdef, s) end
cdef [[ typedef int pid_t; ]]
cdef [[ pid_t fork(void); ]]
cdef [[ int execvp(const char *file, const char **argv); ]]
cdef [[ void _exit(int status); ]]
cdef [[ int open(const char *path, int flags, ...); ]]
cdef [[ int dup2(int oldfd, int newfd); ]]
cdef [[ int close(int fd); ]]
cdef [[ pid_t waitpid(pid_t pid, int *status, int options); ]]
cdef [[ int kill(pid_t pid, int sig); ]]
cdef [[ pid_t getpid(void); ]]
cdef [[ int setenv(const char *name, const char *value, int overwrite); ]]
cdef [[ int unsetenv(const char *name); ]]
cdef [[ int chdir(const char *path); ]]
cdef [[ char *strerror(int errnum); ]]
cdef [[ typedef void (*luagw_spec_sighandler_t)(int); ]]
cdef [[ typedef struct { long tv_sec; long tv_nsec; } luagw_spec_timespec; ]]
cdef [[ int clock_gettime(int clk, luagw_spec_timespec *ts); ]]
cdef [[ luagw_spec_sighandler_t signal(int signum, luagw_spec_sighandler_t handler); ]]

local C = ffi.C
local M = {}

M.SIGNALS = {
  HUP = 1, INT = 2, QUIT = 3, ILL = 4, TRAP = 5, ABRT = 6, BUS = 7, FPE = 8,
  KILL = 9, USR1 = 10, SEGV = 11, USR2 = 12, PIPE = 13, ALRM = 14, TERM = 15,
  CHLD = 17, CONT = 18, STOP = 19, TSTP = 20,
}
local SIGNAME = {}
for k, v in pairs(M.SIGNALS) do SIGNAME[v] = k end

local O_WRONLY, O_RDONLY, O_CREAT, O_APPEND = 1, 0, 64, 1024
local WNOHANG = 1

local children = {} -- pid -> { status = nil | {code, sig} }
local watchdogs = {} -- pid of watchdog -> true

function M.getpid() return C.getpid() end

-- Seconds from CLOCK_MONOTONIC: deadlines that a wall-clock jump cannot break.
local ts = ffi.new("luagw_spec_timespec")
local ok_mono = pcall(function() return C.clock_gettime(1, ts) end)
function M.now()
  if ok_mono and C.clock_gettime(1, ts) == 0 then
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  return socket.gettime()
end

local function signum(sig)
  if type(sig) == "number" then return sig end
  sig = tostring(sig or "TERM"):upper():gsub("^SIG", "")
  local n = M.SIGNALS[sig]
  if not n then error("unknown signal " .. tostring(sig), 3) end
  return n
end
M.signum = signum

-- Decode a wait status: exit code (0..255), or 128+signo and the signal name.
local function decode(st)
  local low = bit.band(st, 0x7f)
  if low == 0 then return bit.band(bit.rshift(st, 8), 0xff), nil end
  return 128 + low, SIGNAME[low] or tostring(low)
end

local function fork_exec(o)
  local argv = o.argv
  assert(type(argv) == "table" and argv[1], "proc.spawn: argv required")
  -- Everything the child needs is prepared before fork.
  local cargv = ffi.new("const char *[?]", #argv + 1)
  local keep = {}
  for i, a in ipairs(argv) do
    keep[i] = tostring(a); cargv[i - 1] = keep[i]
  end
  cargv[#argv] = nil
  local envs = {}
  for k, v in pairs(o.env or {}) do envs[#envs + 1] = { k, v } end
  io.stdout:flush(); io.stderr:flush()
  local pid = C.fork()
  if pid < 0 then error("fork failed: " .. ffi.string(C.strerror(ffi.errno()))) end
  if pid == 0 then
    -- Child: only plain syscalls from here to exec.
    for s = 1, 15 do if s ~= 9 then C.signal(s, ffi.cast("luagw_spec_sighandler_t", 0)) end end
    local fd = C.open(o.stdin or "/dev/null", O_RDONLY)
    if fd >= 0 then C.dup2(fd, 0); if fd ~= 0 then C.close(fd) end end
    if o.stdout then
      fd = C.open(o.stdout, bit.bor(O_WRONLY, O_CREAT, O_APPEND), 420)
      if fd >= 0 then C.dup2(fd, 1); if fd ~= 1 then C.close(fd) end end
    end
    if o.stderr == "stdout" then C.dup2(1, 2)
    elseif o.stderr then
      fd = C.open(o.stderr, bit.bor(O_WRONLY, O_CREAT, O_APPEND), 420)
      if fd >= 0 then C.dup2(fd, 2); if fd ~= 2 then C.close(fd) end end
    end
    for f = 3, 1023 do C.close(f) end
    for _, kv in ipairs(envs) do
      if kv[2] == false then C.unsetenv(kv[1]) else C.setenv(kv[1], tostring(kv[2]), 1) end
    end
    if o.cwd and C.chdir(o.cwd) ~= 0 then C._exit(126) end
    C.execvp(cargv[0], cargv)
    C._exit(127)
  end
  return pid
end

local function reap_watchdogs()
  local st = ffi.new("int[1]")
  for w in pairs(watchdogs) do
    if C.waitpid(w, st, WNOHANG) ~= 0 then watchdogs[w] = nil end
  end
end

-- Start a child. o = { argv = {...}, stdout = path, stderr = path|"stdout",
-- stdin = path (default /dev/null), env = {NAME = value|false}, cwd = dir,
-- watchdog = true (default), orphan_dir = a /tmp dir the watchdog removes
-- after killing the child when this process died first }. Returns the PID.
function M.spawn(o)
  reap_watchdogs()
  local pid = fork_exec(o)
  children[pid] = { argv = o.argv }
  if o.watchdog ~= false then
    -- Kills the child if this process goes away first; ends by itself as soon
    -- as the child is gone (reaped) or a zombie.
    local script = ([[
owner=%d; pid=%d
while kill -0 "$owner" 2>/dev/null; do
  [ -r /proc/$pid/stat ] || exit 0
  case "$(cut -d')' -f2 /proc/$pid/stat 2>/dev/null)" in " Z"*|" X"*|"") exit 0;; esac
  sleep 1
done
kill -TERM "$pid" 2>/dev/null; sleep 3; kill -KILL "$pid" 2>/dev/null
case "$dir" in /tmp/?*) rm -rf -- "$dir";; esac
exit 0
]]):format(C.getpid(), pid)
    script = "dir=" .. M.quote(o.orphan_dir or "") .. "\n" .. script
    local w = fork_exec { argv = { "sh", "-c", script }, stdout = "/dev/null", stderr = "stdout" }
    watchdogs[w] = true
  end
  return pid
end

-- Non-blocking check; collects the exit status of our own children.
local function poll(pid)
  local c = children[pid]
  if c and c.status then return false end
  local st = ffi.new("int[1]")
  local r = C.waitpid(pid, st, WNOHANG)
  if r == pid then
    local code, sig = decode(st[0])
    if c then c.status = { code = code, sig = sig } else children[pid] = { status = { code = code, sig = sig } } end
    return false
  end
  if r == 0 then return true end
  -- Not our child (or already reaped elsewhere): look at /proc.
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("*a") or ""; f:close()
  local state = s:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

function M.alive(pid) return pid ~= nil and poll(pid) end

-- Wait up to timeout seconds (default 10) for pid to end. Returns its exit
-- code (128+signo when killed by a signal) and the signal name, or nil on
-- timeout. For a process that is not our child the code is unknown (true).
function M.wait(pid, timeout)
  local deadline = M.now() + (timeout or 10)
  while true do
    if not poll(pid) then
      reap_watchdogs()
      local c = children[pid]
      if c and c.status then return c.status.code, c.status.sig end
      return true
    end
    if M.now() >= deadline then return nil end
    socket.sleep(0.02)
  end
end

-- Send a signal (name like "TERM"/"SIGHUP" or a number). Returns true if sent.
function M.kill(pid, sig)
  if not M.alive(pid) then return false end
  return C.kill(pid, signum(sig)) == 0
end

-- TERM, wait up to timeout (default 10 s), then KILL. Returns code, signame.
function M.stop(pid, timeout, sig)
  if pid == nil then return nil end
  if M.alive(pid) then C.kill(pid, signum(sig or "TERM")) end
  local code, name = M.wait(pid, timeout or 10)
  if code == nil then
    C.kill(pid, 9)
    code, name = M.wait(pid, 5)
  end
  return code, name
end

-- Run a command to completion (argv list), returning exit code, output
-- (stdout and stderr) and signal name. opts: cwd, env (as for spawn).
function M.run(argv, timeout, opts)
  local out = os.tmpname()
  opts = opts or {}
  local pid = M.spawn { argv = argv, stdout = out, stderr = "stdout", watchdog = false, cwd = opts.cwd, env = opts.env }
  local code, sig = M.wait(pid, timeout or 30)
  if code == nil then M.stop(pid, 1); code = nil end
  local f = io.open(out); local s = f and f:read("*a") or ""; if f then f:close() end
  os.remove(out)
  return code, s, sig
end

-- Shell-quote one word.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A fresh temp dir (mktemp -d).
function M.tmpdir(prefix)
  local p = io.popen("mktemp -d /tmp/" .. (prefix or "luagw-spec") .. ".XXXXXX")
  local d = p:read("*l"); p:close()
  assert(d and d ~= "", "mktemp -d failed")
  return d
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/.+") then os.execute("rm -rf " .. M.quote(dir)) end
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a"); f:close()
  return s
end

function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s); f:close()
end

-- Last n lines of a file (for error messages).
function M.tail(path, n)
  local s = M.read_file(path) or ""
  local lines = {}
  for l in s:gmatch("[^\n]*") do lines[#lines + 1] = l end
  while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
  local from = math.max(1, #lines - (n or 20) + 1)
  return table.concat(lines, "\n", from)
end

return M
