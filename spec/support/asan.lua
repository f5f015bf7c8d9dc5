-- busted --helper for `make test-asan` (Makefile): the sanitizer runtime was
-- preloaded into this luajit so it can load build/asan/libluagw.so through
-- FFI. Children must not inherit that preload (influxd, gzip, sh are not
-- ours), and every luagw a spec spawns gets its own options with leak
-- checking on: LUAGW_CHILD_ASAN_OPTIONS. The host's options were read at
-- startup, so changing the environment now affects children only.
local ffi = require("ffi")
pcall(ffi.cdef, [[ int setenv(const char *name, const char *value, int overwrite); ]])
pcall(ffi.cdef, [[ int unsetenv(const char *name); ]])

ffi.C.unsetenv("LD_PRELOAD")
local child = os.getenv("LUAGW_CHILD_ASAN_OPTIONS")
if child then ffi.C.setenv("ASAN_OPTIONS", child, 1) end
