# luagw — build, run and test. `make run` and `make test` set up everything.

CC       ?= cc
PREFIX   ?= /usr/local
OPT      ?= -O2 -g
WARN     ?= -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wno-unused-parameter
PKGS     := luajit libmicrohttpd libcurl yaml-0.1 jansson zlib libdeflate
CFLAGS   ?= $(OPT)
CFLAGS   += $(WARN) -std=gnu11 -fPIC -pthread -MMD -MP -D_GNU_SOURCE
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
BUSTED   ?= luajit /usr/bin/busted
LUAJIT   ?= luajit
CONFIG   ?= config/luagw.yaml

# Debian packages the build, the tests and `make run` need; the last line is
# for `make deb` and spec/package_spec.lua (debhelper, lintian,
# systemd-analyze), spec/scaling_spec.lua (haproxy), spec/status_spec.lua
# (chromium) and spec/query_spec.lua (influxdb-client: the influx CLI).
DEB_PKGS := build-essential pkg-config libluajit-5.1-dev luajit libmicrohttpd-dev \
            libcurl4-openssl-dev libyaml-dev libjansson-dev zlib1g-dev libdeflate-dev \
            lua-busted lua-socket lua-cjson influxdb curl ca-certificates \
            python3-influxdb openssl man-db clang libclang-rt-14-dev \
            debhelper dpkg-dev fakeroot lintian systemd haproxy chromium influxdb-client

# The core's objects export only what gateway/exports.h lists: the functions
# the specs and the harness call through FFI. Everything else is hidden.
VISIBILITY := -fvisibility=hidden -include gateway/exports.h

CORE_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
CORE_LUA := $(wildcard gateway/*.lua)
CORE_OBJ := $(CORE_SRC:.c=.o) $(CORE_LUA:.lua=_lua.o)
MAIN_OBJ := gateway/main.o

.PHONY: all deps run test check clean bench bench-replay bench-delivery asan test-asan tsan test-tsan fuzz deb FORCE

all: gateway/luagw gateway/libluagw.so

gateway/luagw: $(MAIN_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The core as a shared library, so specs can call it through LuaJIT's FFI.
gateway/libluagw.so: $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(LDLIBS)

gateway/%.o: gateway/%.c gateway/exports.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(VISIBILITY) -c -o $@ $<

# Lua parts of the core (gateway/script.lua), compiled in as bytecode: the
# object defines luaJIT_BC_gw_<name>.
gateway/%_lua.o: gateway/%.lua
	$(LUAJIT) -bg -n gw_$* $< $@

# ThreadSanitizer build of the binary, apart from the others (build/tsan/luagw),
# and the specs that drive the binary (many clients, reloads) run against it;
# any report fails (docs/hardening.md).
TSAN_DIR   ?= build/tsan
TSAN_CC    ?= clang
TSAN_FLAGS ?= -O1 -g -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJ   := $(patsubst gateway/%.c,$(TSAN_DIR)/%.o,$(CORE_SRC)) $(CORE_LUA:.lua=_lua.o)
TSAN_LOGS  := $(CURDIR)/$(TSAN_DIR)/logs
TSAN_SPECS ?= spec/concurrency_spec.lua spec/e2e_spec.lua spec/e2e_scripts_spec.lua \
              spec/delivery_spec.lua spec/limits_spec.lua

tsan: $(TSAN_DIR)/luagw

$(TSAN_DIR)/luagw: $(TSAN_DIR)/main.o $(TSAN_OBJ)
	$(TSAN_CC) $(CFLAGS) $(TSAN_FLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TSAN_DIR)/%.o: gateway/%.c gateway/exports.h
	@mkdir -p $(@D)
	$(TSAN_CC) $(CFLAGS) $(TSAN_FLAGS) $(VISIBILITY) -c -o $@ $<

test-tsan: deps
	@$(MAKE) --no-print-directory all tsan
	@rm -rf $(TSAN_LOGS) && mkdir -p $(TSAN_LOGS)
	LUAGW_BIN=$(CURDIR)/$(TSAN_DIR)/luagw TSAN_OPTIONS=log_path=$(TSAN_LOGS)/luagw \
	$(BUSTED) $(TSAN_SPECS); rc=$$?; \
	if [ -n "$$(ls -A $(TSAN_LOGS))" ]; then \
	  echo "test-tsan: sanitizer reports:"; tail -n +1 $(TSAN_LOGS)/*; exit 1; fi; \
	exit $$rc

# libFuzzer harnesses (fuzz/, clang), each run for FUZZ_SECONDS with the seeds
# of fuzz/corpus/<name> (and the dictionary fuzz/<name>.dict if there is
# one); what they find lands in build/fuzz/crashes/<name>/ and fails the
# target (docs/hardening.md). Each links fuzz/influx_model.c, the model of
# influxd. `make fuzz FUZZ_TARGETS=pipeline` runs one.
FUZZ_DIR     ?= build/fuzz
FUZZ_CC      ?= clang
FUZZ_FLAGS   ?= -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= lineproto json config script pipeline
FUZZ_OBJ     := $(patsubst gateway/%.c,$(FUZZ_DIR)/obj/%.o,$(CORE_SRC)) $(CORE_LUA:.lua=_lua.o)
FUZZ_DEFS    := -DFUZZ_SCRIPT_DIR='"$(CURDIR)/fuzz/script"' -DFUZZ_SRC_DIR='"$(CURDIR)/fuzz"'
# The harnesses whose committed corpus `make test` replays
# (spec/fuzz_regressions_spec.lua), built with fuzz/replay.c's main().
FUZZ_REPLAY  := $(FUZZ_DIR)/replay/pipeline

fuzz: $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ $$dict \
	    $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_DIR)/$$t.log 2>&1 || rc=1; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_DIR)/$$t.log); \
	  found=$$(ls $(FUZZ_DIR)/crashes/$$t | wc -l); \
	  echo "fuzz: $$t: $${runs:-?} executions in $(FUZZ_SECONDS) s, $$found crashes (log $(FUZZ_DIR)/$$t.log)"; \
	done; exit $$rc

$(FUZZ_DIR)/%: fuzz/%.c fuzz/roundtrip.h fuzz/influx_model.c fuzz/influx_model.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer $(FUZZ_DEFS) $(LDFLAGS) -o $@ $< fuzz/influx_model.c \
	  $(FUZZ_OBJ) $(LDLIBS)

$(FUZZ_DIR)/replay/%: fuzz/%.c fuzz/replay.c fuzz/roundtrip.h fuzz/influx_model.c fuzz/influx_model.h $(CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FUZZ_DEFS) $(LDFLAGS) -o $@ $< fuzz/replay.c fuzz/influx_model.c $(CORE_OBJ) $(LDLIBS)

.PRECIOUS: $(FUZZ_DIR)/obj/%.o
$(FUZZ_DIR)/obj/%.o: gateway/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

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
	@# spec/clients_spec.lua runs node and npm (its package lands in spec/.node).
	@# A node from elsewhere (nodesource) brings its own npm: keep it.
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "deps: installing nodejs npm"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm; \
	fi

# Start a local InfluxDB (unless one answers) and luagw in the foreground;
# the config's spool (under $STATE_DIRECTORY) goes to var/ here.
run: deps
	@$(MAKE) --no-print-directory all
	STATE_DIRECTORY=$${STATE_DIRECTORY:-$(CURDIR)/var} ./tools/run.sh $(CONFIG)

# Every spec, under LuaJIT so specs may use ffi.
test: deps
	@$(MAKE) --no-print-directory all $(MODEL_SO) $(FUZZ_REPLAY)
	$(BUSTED) $(BUSTED_ARGS)

# The model of influxd's line-protocol reading (fuzz/influx_model.c) as a
# library, for the differential spec and tools/lp_differential.lua (FFI).
MODEL_SO := build/influx_model.so
$(MODEL_SO): fuzz/influx_model.c fuzz/influx_model.h gateway/arena.c gateway/arena.h
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -shared -o $@ fuzz/influx_model.c gateway/arena.c -lm

check: test

# AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) build, apart
# from the normal one: build/asan/luagw and build/asan/libluagw.so.
# `make test-asan` runs every spec against it; any sanitizer report fails it
# (docs/hardening.md).
ASAN_DIR   ?= build/asan
ASAN_CC    ?= clang
ASAN_FLAGS ?= -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_OBJ   := $(patsubst gateway/%.c,$(ASAN_DIR)/%.o,$(CORE_SRC)) $(CORE_LUA:.lua=_lua.o)
ASAN_LOGS  := $(CURDIR)/$(ASAN_DIR)/logs

asan: $(ASAN_DIR)/luagw $(ASAN_DIR)/libluagw.so

$(ASAN_DIR)/luagw: $(ASAN_DIR)/main.o $(ASAN_OBJ)
	$(ASAN_CC) $(CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(ASAN_DIR)/libluagw.so: $(ASAN_OBJ)
	$(ASAN_CC) $(CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -shared -shared-libasan -o $@ $^ $(LDLIBS)

$(ASAN_DIR)/%.o: gateway/%.c gateway/exports.h
	@mkdir -p $(@D)
	$(ASAN_CC) $(CFLAGS) $(ASAN_FLAGS) $(VISIBILITY) -c -o $@ $<

# The busted host (luajit) loads the sanitized library through FFI, so the
# runtime is preloaded there, without leak checking (luajit and busted are not
# ours); spec/support/asan.lua then drops LD_PRELOAD and gives every luagw the
# specs spawn LUAGW_CHILD_ASAN_OPTIONS, leak checking on. Reports go to files
# in $(ASAN_LOGS); any file there fails the target.
test-asan: deps
	@$(MAKE) --no-print-directory all asan $(MODEL_SO) $(FUZZ_REPLAY)
	@rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS)
	LUAGW_BIN=$(CURDIR)/$(ASAN_DIR)/luagw LUAGW_LIB=$(CURDIR)/$(ASAN_DIR)/libluagw.so \
	LD_PRELOAD=$$($(ASAN_CC) -print-file-name=libclang_rt.asan-x86_64.so) \
	ASAN_OPTIONS=detect_leaks=0:log_path=$(ASAN_LOGS)/host \
	LUAGW_CHILD_ASAN_OPTIONS=detect_leaks=1:log_path=$(ASAN_LOGS)/luagw \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(ASAN_LOGS)/ubsan \
	$(BUSTED) --helper=spec/support/asan.lua $(BUSTED_ARGS); rc=$$?; \
	if [ -n "$$(ls -A $(ASAN_LOGS))" ]; then \
	  echo "test-asan: sanitizer reports:"; tail -n +1 $(ASAN_LOGS)/*; exit 1; fi; \
	exit $$rc

# The benchmark (docs/performance.md): its binaries go to the git-ignored
# bench/results/bin, then bench/run.sh measures and writes bench/results/latest.txt.
BENCH_BIN := bench/results/bin
bench: all $(BENCH_BIN)/sink $(BENCH_BIN)/load $(BENCH_BIN)/bare $(BENCH_BIN)/replay
	BENCH_BIN=$(BENCH_BIN) ./bench/run.sh

# What a bad point costs the points behind it, and the memory bound in bytes,
# against the real binary and influxd (docs/delivery.md, "Bounds"; a minute).
bench-delivery: all
	$(LUAJIT) bench/delivery.lua

# Only the callgrind instruction counts (about a minute): bench/results/replay-latest.txt.
bench-replay: all $(BENCH_BIN)/sink $(BENCH_BIN)/load $(BENCH_BIN)/bare $(BENCH_BIN)/replay
	BENCH_BIN=$(BENCH_BIN) BENCH_ONLY=replay ./bench/run.sh

$(BENCH_BIN)/sink: bench/sink.c
$(BENCH_BIN)/bare: bench/bare.c
$(BENCH_BIN)/load: bench/load.c bench/bodies.c bench/bodies.h
$(BENCH_BIN)/replay: bench/replay.c bench/bodies.c bench/bodies.h $(CORE_OBJ)
$(BENCH_BIN)/%:
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# Install under PREFIX (staged under DESTDIR; debian/rules runs this too):
#   $(BINDIR)/luagw               built apart (build/install/) with
#                                 GW_SYSCONFDIR=$(SYSCONFDIR): without -c it reads
#                                 $(SYSCONFDIR)/luagw/luagw.yaml
#   $(SYSCONFDIR)/luagw/          luagw.yaml, series.yaml and scripts/ with the
#                                 shipped scripts, by name; an existing file is
#                                 kept and the new one written beside it as *.new
#   $(LUADIR)/luagw/harness.lua   require("luagw.harness"); it finds
#   $(LIBDIR)/libluagw.so         by the relative path written into it here
#   $(MANDIR)/man1/luagw.1 and $(SYSTEMDDIR)/luagw.service (the paths filled in)
# SYSCONFDIR is /etc for PREFIX=/usr, else $(PREFIX)/etc.
BINDIR          ?= $(PREFIX)/bin
SYSCONFDIR      ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LIBDIR          ?= $(PREFIX)/lib/luagw
LUADIR          ?= $(PREFIX)/share/lua/5.1
MANDIR          ?= $(PREFIX)/share/man
SYSTEMDDIR      ?= $(PREFIX)/lib/systemd/system
SHIPPED_SCRIPTS := errors.lua requests.lua subscription_error.lua
INSTALL_DIR     := build/install

.PHONY: install
install: $(INSTALL_DIR)/luagw gateway/libluagw.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/luagw/scripts $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(LUADIR)/luagw $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDDIR)
	install -m 755 $(INSTALL_DIR)/luagw $(DESTDIR)$(BINDIR)/luagw
	install -m 644 gateway/libluagw.so $(DESTDIR)$(LIBDIR)/libluagw.so
	rel=$$(realpath -m --relative-to=$(LUADIR)/luagw $(LIBDIR)/libluagw.so) && \
	  sed "s|^local INSTALLED_LIB = nil$$|local INSTALLED_LIB = \"$$rel\"|" scripts/luagw/harness.lua \
	    > $(DESTDIR)$(LUADIR)/luagw/harness.lua && \
	  grep -q '^local INSTALLED_LIB = "' $(DESTDIR)$(LUADIR)/luagw/harness.lua
	chmod 644 $(DESTDIR)$(LUADIR)/luagw/harness.lua
	@# config/scripts links to ../scripts: the config's own layout.
	@for f in luagw.yaml series.yaml $(addprefix scripts/,$(SHIPPED_SCRIPTS)); do \
	  t=$(DESTDIR)$(SYSCONFDIR)/luagw/$$f; [ -e $$t ] && t=$$t.new; \
	  echo "install -m 644 config/$$f $$t"; install -m 644 config/$$f $$t || exit 1; \
	done
	install -m 644 docs/luagw.1 $(DESTDIR)$(MANDIR)/man1/luagw.1
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  packaging/luagw.service.in > $(DESTDIR)$(SYSTEMDDIR)/luagw.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/luagw.service

# The installed binary differs from gateway/luagw only in main.o.
$(INSTALL_DIR)/luagw: $(INSTALL_DIR)/main.o $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(INSTALL_DIR)/main.o: gateway/main.c $(INSTALL_DIR)/sysconfdir
	$(CC) $(CPPFLAGS) $(CFLAGS) -DGW_SYSCONFDIR='"$(SYSCONFDIR)"' -c -o $@ $<

# Holds SYSCONFDIR; rewritten (and so main.o rebuilt) only when it changes.
$(INSTALL_DIR)/sysconfdir: FORCE
	@mkdir -p $(@D); echo '$(SYSCONFDIR)' | cmp -s - $@ || echo '$(SYSCONFDIR)' > $@

# The Debian package (debian/, debhelper 13): build/deb/luagw_<version>_<arch>.deb,
# then lintian, whose report stays in build/deb/lintian.txt (an error fails
# the target; debian/luagw.lintian-overrides says why each kept tag is kept).
# dpkg-buildpackage writes beside the source tree, so it builds a copy of the
# tree's files (tracked or new, not ignored) in build/deb/src. The package is
# rebuilt only when one of those files changed.
DEB_DIR     := build/deb
DEB_VERSION := $(shell head -n 1 debian/changelog | tr -d '()' | cut -d ' ' -f 2)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB         := $(DEB_DIR)/luagw_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_FILES    = { git ls-files --cached --others --exclude-standard 2>/dev/null || \
                 find . -path ./build -prune -o ! -type d -print; }

deb: deps
	@$(MAKE) --no-print-directory $(DEB)
	@echo "deb: $(DEB), $$(du -k $(DEB) | cut -f1) KiB; lintian: $(DEB_DIR)/lintian.txt"

# (config/scripts, a link to a directory, is no input: its files are.)
$(DEB): $(filter-out config/scripts,$(wildcard $(shell $(DEB_FILES))))
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	$(DEB_FILES) | tar -T - --ignore-failed-read -cf - | tar -C $(DEB_DIR)/src -xf -
	cd $(DEB_DIR)/src && DEB_BUILD_OPTIONS="nocheck parallel=$$(nproc) $${DEB_BUILD_OPTIONS:-}" \
	  dpkg-buildpackage -us -uc -b
	lintian --fail-on error --display-info --pedantic --show-overrides $@ > $(DEB_DIR)/lintian.txt 2>&1 || { cat $(DEB_DIR)/lintian.txt; rm -f $@; exit 1; }
	@cat $(DEB_DIR)/lintian.txt

FORCE:

clean:
	rm -f gateway/*.o gateway/*.d gateway/luagw gateway/libluagw.so
	rm -rf build

-include $(wildcard gateway/*.d)
-include $(wildcard $(ASAN_DIR)/*.d)
-include $(wildcard $(FUZZ_DIR)/obj/*.d)
-include $(wildcard $(TSAN_DIR)/*.d)
-include $(wildcard $(INSTALL_DIR)/*.d)

# The status page is compiled into status_page.o (.incbin, status_page.c).
gateway/status_page.o $(ASAN_DIR)/status_page.o $(TSAN_DIR)/status_page.o \
$(FUZZ_DIR)/obj/status_page.o: gateway/status.html
