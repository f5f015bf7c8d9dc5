# luagw — build, run and test. `make run` and `make test` set up everything.

CC       ?= cc
PREFIX   ?= /usr/local
OPT      ?= -O2 -g
WARN     ?= -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wno-unused-parameter
PKGS     := luajit libmicrohttpd libcurl yaml-0.1 jansson zlib
CFLAGS   ?= $(OPT)
CFLAGS   += $(WARN) -std=gnu11 -fPIC -pthread -MMD -MP -D_GNU_SOURCE
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
BUSTED   ?= luajit /usr/bin/busted
LUAJIT   ?= luajit
CONFIG   ?= config/luagw.yaml

# Debian packages the build, the tests and `make run` need.
DEB_PKGS := build-essential pkg-config libluajit-5.1-dev luajit libmicrohttpd-dev \
            libcurl4-openssl-dev libyaml-dev libjansson-dev zlib1g-dev \
            lua-busted lua-socket lua-cjson influxdb curl ca-certificates

CORE_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
CORE_LUA := $(wildcard gateway/*.lua)
CORE_OBJ := $(CORE_SRC:.c=.o) $(CORE_LUA:.lua=_lua.o)
MAIN_OBJ := gateway/main.o

.PHONY: all deps run test check clean bench

all: gateway/luagw gateway/libluagw.so

gateway/luagw: $(MAIN_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The core as a shared library, so specs can call it through LuaJIT's FFI.
gateway/libluagw.so: $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(LDLIBS)

gateway/%.o: gateway/%.c
	$(CC) $(CFLAGS) -c -o $@ $<

# Lua parts of the core (gateway/script.lua), compiled in as bytecode: the
# object defines luaJIT_BC_gw_<name>.
gateway/%_lua.o: gateway/%.lua
	$(LUAJIT) -bg -n gw_$* $< $@

# Install what is missing (as root, from Debian's archive), once.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Start a local InfluxDB (unless one answers) and luagw in the foreground.
run: deps
	@$(MAKE) --no-print-directory all
	./tools/run.sh $(CONFIG)

# Every spec, under LuaJIT so specs may use ffi.
test: deps
	@$(MAKE) --no-print-directory all
	$(BUSTED) $(BUSTED_ARGS)

check: test

# The benchmark (docs/performance.md): its binaries go to the git-ignored
# bench/results/bin, then bench/run.sh measures and writes bench/results/latest.txt.
BENCH_BIN := bench/results/bin
bench: all $(BENCH_BIN)/sink $(BENCH_BIN)/load $(BENCH_BIN)/bare $(BENCH_BIN)/replay
	BENCH_BIN=$(BENCH_BIN) ./bench/run.sh

$(BENCH_BIN)/sink: bench/sink.c
$(BENCH_BIN)/bare: bench/bare.c
$(BENCH_BIN)/load: bench/load.c bench/bodies.c bench/bodies.h
$(BENCH_BIN)/replay: bench/replay.c bench/bodies.c bench/bodies.h $(CORE_OBJ)
$(BENCH_BIN)/%:
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

clean:
	rm -f gateway/*.o gateway/*.d gateway/luagw gateway/libluagw.so

-include $(wildcard gateway/*.d)
