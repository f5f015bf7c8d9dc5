#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs (after building luagw and the bench
# binaries). Loopback only, bounded in time (about two minutes by default).
# docs/performance.md explains every number it prints.
#
#   1. starts bench/sink (a counting InfluxDB stand-in) and gateway/luagw on a
#      generated config pointing at it (batch_size 5000), first with the
#      shipped scripts/ dir as it is, then with the shipped
#      subscription_error.lua on every point of every series (scripts.series)
#      and a deployment's params (2 tags, 2 fields to add);
#   2. drives load from bench/load: line protocol to /write and JSON to
#      /v1/points, at maximum load (closed loop) and at half of the maximum
#      that run reached (open loop, for latency); gzip'd line protocol at
#      maximum load; and line protocol with gzip'd batches to the sink
#      (monitoring.gzip). After each run it waits until the sink has counted every
#      accepted point (nothing lost) before going on;
#   3. runs the same maximum loads against bench/bare, a libmicrohttpd
#      handler set up like luagw's that only reads the body and answers 204
#      — the ceiling;
#   4. replays fixed bodies through parse → script → encode (bench/replay)
#      under callgrind: instructions per point, scripts off and on;
#   5. prints one table and writes it to bench/results/latest.txt (and a
#      dated copy). Every process it started is stopped by PID on exit, even
#      on failure.
#
# Environment (all optional):
#   BENCH_SECONDS=6        seconds of load per luagw run
#   BENCH_BARE_SECONDS=4   seconds of load per bare run
#   BENCH_CONNS=8          client connections
#   BENCH_LOAD_THREADS=1   load generator threads
#   BENCH_POINTS=1000      points per body
#   BENCH_BUFFER=500000    luagw monitoring.buffer_limit (points)
#   BENCH_THREADS=2        luagw listen.threads (and bare's pool)
#   BENCH_SCRIPTS=DIR      scripts.dir (default scripts/)
#   BENCH_SCRIPT=FILE      the script run on every point in the "+script" runs
#                          and the replay's "scripts on", relative to scripts.dir
#                          (default subscription_error.lua)
#   BENCH_REPLAY_ITER=10   replay iterations over 4 bodies under callgrind
#   BENCH_REPLAY_RUNS=3    callgrind runs of each scripts-on replay: LuaJIT's
#                          trace choices vary a little from run to run (its
#                          penalty counters are randomised), so the range is
#                          printed; scripts-off counts repeat exactly (1 run)
#   BENCH_MEMO_SHAPES=100000  distinct tag sets of the memo worst-case rows
#                          (more than scripts.memo_entries' 65,536)
#   BENCH_ONLY=replay      only the callgrind replay (about a minute; what
#                          `make bench-replay` runs): no servers, no load
#   BENCH_BIN=DIR          where the bench binaries are (bench/results/bin)
#   LUAGW_BIN=PATH         the luagw binary (gateway/luagw)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BENCH_BIN:-$ROOT/bench/results/bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
LUAGW_BIN=${LUAGW_BIN:-$ROOT/gateway/luagw}
RESULTS=$ROOT/bench/results
SECS=${BENCH_SECONDS:-6}
BARE_SECS=${BENCH_BARE_SECONDS:-4}
CONNS=${BENCH_CONNS:-8}
LTHREADS=${BENCH_LOAD_THREADS:-1}
NPOINTS=${BENCH_POINTS:-1000}
BUFFER=${BENCH_BUFFER:-500000}
GW_THREADS=${BENCH_THREADS:-2}
SCRIPTS_DIR=${BENCH_SCRIPTS:-$ROOT/scripts}
EVERY_SCRIPT=${BENCH_SCRIPT:-subscription_error.lua}
REPLAY_ITER=${BENCH_REPLAY_ITER:-10}
REPLAY_RUNS=${BENCH_REPLAY_RUNS:-3}
MEMO_SHAPES=${BENCH_MEMO_SHAPES:-100000}
ONLY=${BENCH_ONLY:-}
BATCH=5000
DRAIN_MAX=30 # seconds to wait for the sink to count every accepted point

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

for b in sink load bare replay; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing (run: make bench)"
done
[ -x "$LUAGW_BIN" ] || die "$LUAGW_BIN missing (run: make)"
[ -r "$SCRIPTS_DIR/$EVERY_SCRIPT" ] || die "$SCRIPTS_DIR/$EVERY_SCRIPT missing (set BENCH_SCRIPT)"
command -v curl >/dev/null || die "curl not found (make deps)"
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
mkdir -p "$RESULTS" || die "cannot create $RESULTS"

WORK=$(mktemp -d /tmp/luagw-bench.XXXXXX) || die "mktemp failed"
PIDS=()
STOP_RC=0

# Stop one process we started: SIGTERM, up to $2 seconds, then SIGKILL.
# Its exit status is left in STOP_RC.
stop_pid() {
  local pid=$1 wait_s=${2:-10} i
  STOP_RC=0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    STOP_RC=$?
    forget_pid "$pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < wait_s * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not stop in ${wait_s}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  STOP_RC=$?
  forget_pid "$pid"
}

# Once reaped, a PID may be reused: drop it from the list cleanup() stops.
forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid" 5; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# The first "port N" line a server prints, within 10 s.
read_port() {
  local out=$1 pid=$2 i p
  for ((i = 0; i < 100; i++)); do
    p=$(awk '/^port [0-9]+/ { print $2; exit }' "$out" 2>/dev/null)
    [ -n "$p" ] && { echo "$p"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# A loopback port nothing listens on (luagw takes its port from the config).
free_port() {
  local p
  for ((p = 20000 + RANDOM % 20000; ; p++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

kv() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }
now() { date +%s.%N; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
# "tid ticks" of each libmicrohttpd worker thread of PID (threads it starts
# inherit the name, so a helper thread may be listed too).
worker_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    # MHD-worker: a thread pool (bench/bare); MHD-single: luagw's one-thread daemons
    case "$(cat "$t/comm" 2>/dev/null)" in MHD-worker|MHD-single) ;; *) continue ;; esac
    echo "${t##*/} $(sed 's/^.*) //' "$t/stat" | awk '{ print $12 + $13 }')"
  done
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
sink_lines() {
  curl -s --max-time 2 "http://127.0.0.1:$SINK_PORT/count" | sed -n 's/.*"lines":\([0-9]*\).*/\1/p'
}
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

# ---------------------------------------------------------------- one run
# run_load NAME PID PORT SINK(0|1) SECONDS LOAD_ARGS... — drives load at the
# server PID listens on, appends one row to $WORK/rows (unless NAME starts
# with "warmup") and prints the accepted points/s. Row fields:
#   name acc dlv drain lost 503s errs p50 p99 cpu% cpu_ns_per_pt rss_mb load% sink% idle% est workers
run_load() {
  local name=$1 pid=$2 port=$3 sink=$4 secs=$5
  shift 5
  local s0=0 s1=0 c0 c1 c2 k0=0 k1=0 w0 w1 w2 out acc pts p50 p99 s503 errs lines=0 lost=0
  local deliv=- drain=- hwm lcpu i st0 st1 wt0 wt1 workers
  if [ "$sink" = 1 ]; then
    s0=$(sink_lines)
    k0=$(cpu_ticks "$SINK_PID")
  fi
  reset_hwm "$pid"
  c0=$(cpu_ticks "$pid")
  wt0=$(worker_ticks "$pid")
  st0=$(head -1 /proc/stat)
  w0=$(now)
  out=$("$BIN/load" -p "$port" -c "$CONNS" -t "$LTHREADS" -n "$NPOINTS" -d "$secs" "$@") ||
    die "$name: load generator failed: $out"
  w1=$(now)
  c1=$(cpu_ticks "$pid")
  wt1=$(worker_ticks "$pid")
  st1=$(head -1 /proc/stat)
  # Each worker thread's CPU% during the load, busiest first, as many as
  # there are workers: "97/3" means one worker did nearly everything.
  workers=$(awk -v tck="$CLK_TCK" -v secs="$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" \
              -v n="$GW_THREADS" 'NR == FNR { t0[$1] = $2; next } { print 100 * ($2 - t0[$1]) / tck / secs }' \
              <(echo "$wt0") <(echo "$wt1") | sort -rn | head -"$GW_THREADS" |
            awk '{ printf "%s%.0f", (NR > 1 ? "/" : ""), $1 }')
  echo "$name: $out" >>"$WORK/load.log"
  pts=$(kv points "$out")
  acc=$(kv points_per_s "$out")
  p50=$(kv p50_ms "$out")
  p99=$(kv p99_ms "$out")
  s503=$(kv status_503 "$out")
  errs=$(($(kv errors "$out") + $(kv status_other "$out") + $(kv status_400 "$out")))
  lcpu=$(awk -v c="$(kv cpu_s "$out")" -v s="$(kv seconds "$out")" 'BEGIN { printf "%.0f", 100 * c / s }')
  [ "$errs" -gt 0 ] && say "$name: $errs requests failed or were answered 400/5xx (see $RESULTS/latest-load.log)"
  [ "${pts:-0}" -gt 0 ] || die "$name: no point was accepted: $out"
  if [ "$sink" = 1 ]; then
    s1=$(sink_lines)
    k1=$(cpu_ticks "$SINK_PID")
    # Everything accepted must reach the sink: wait for it (bounded).
    for ((i = 0; i < DRAIN_MAX * 20; i++)); do
      lines=$(sink_lines)
      [ "${lines:-0}" -ge $((s0 + pts * SINK_COPIES)) ] && break
      sleep 0.05
    done
    w2=$(now)
    lines=$(sink_lines)
    lost=$(((s0 + pts * SINK_COPIES - ${lines:-0}) / SINK_COPIES))
    [ "$lost" -lt 0 ] && lost=0
    deliv=$(awk -v d="$((${s1:-0} - s0))" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", d / (b - a) }')
    drain=$(awk -v a="$w1" -v b="$w2" 'BEGIN { printf "%.2f", b - a }')
    [ "$lost" -gt 0 ] && say "$name: $lost accepted points never reached the sink within ${DRAIN_MAX}s"
  fi
  c2=$(cpu_ticks "$pid")
  hwm=$(hwm_kb "$pid")
  case $name in
    warmup*) ;;
    *)
      awk -v name="$name" -v acc="$acc" -v deliv="$deliv" -v drain="$drain" -v lost="$lost" \
          -v s503="$s503" -v errs="$errs" -v p50="$p50" -v p99="$p99" -v c0="$c0" -v c1="$c1" -v c2="$c2" \
          -v w0="$w0" -v w1="$w1" -v k0="$k0" -v k1="$k1" -v sink="$sink" -v pts="$pts" \
          -v tck="$CLK_TCK" -v hwm="${hwm:-0}" -v lcpu="$lcpu" -v st0="$st0" -v st1="$st1" \
          -v ncpu="$NCPU" -v workers="${workers:--}" 'BEGIN {
            cpu = 100 * (c1 - c0) / tck / (w1 - w0)
            nspp = (c2 - c0) / tck * 1e9 / pts
            sc = sink ? 100 * (k1 - k0) / tck / (w1 - w0) : 0
            scpu = sink ? sprintf("%.0f", sc) : "-"
            # System-wide idle (idle + iowait) over the load, from /proc/stat.
            n = split(st0, a, " "); split(st1, b, " ")
            for (i = 2; i <= n; i++) tot += b[i] - a[i]
            idle = tot > 0 ? 100 * (b[5] - a[5] + b[6] - a[6]) / tot : 0
            # What the host could do if luagw had every core the load
            # generator and the sink leave: a CPU-bound projection.
            est = nspp > 0 ? ncpu * 1e9 / nspp * (1 - (lcpu + sc) / (100 * ncpu)) : 0
            printf "%s %s %s %s %s %s %s %.2f %.2f %.0f %.0f %.1f %s %s %.0f %.0f %s\n", name, acc, deliv,
                   drain, lost, s503, errs, p50, p99, cpu, nspp, hwm / 1024, lcpu, scpu, idle, est,
                   workers }' >>"$WORK/rows"
      ;;
  esac
  echo "$acc"
}

# The request rate for half of a maximum in points/s.
half() { awk -v m="$1" -v n="$NPOINTS" 'BEGIN { printf "%.2f", m / 2 / n }'; }

# ---------------------------------------------------------------- luagw
count_scripts() { find "$1" -maxdepth 1 -name '*.lua' 2>/dev/null | wc -l; }
if nm "$ROOT/gateway/pipeline.o" 2>/dev/null | grep -q ' U gw_script_run$'; then
  ENGINE=integrated
else
  ENGINE="not integrated"
fi

# scripts_yaml MODE: the scripts section. "shipped" = scripts.dir as it is;
# "every" = $EVERY_SCRIPT on every seed series, with a deployment's params
# (what subscription_error.lua adds: 2 tags and 2 fields; it returns
# memo(f)); "general" = bench/scripts/general.lua on every seed series (not
# memo'd: it reads a field value), with the same params.
scripts_yaml() {
  local script=$EVERY_SCRIPT
  echo "scripts:"
  if [ "$1" = general ]; then
    echo "  dir: $ROOT/bench/scripts"
    script=general.lua
  else
    echo "  dir: $SCRIPTS_DIR"
  fi
  [ "$1" = every ] || [ "$1" = general ] || return 0
  echo "  series:"
  for s in requests errors subscription_error ws_requests redis_message; do
    echo "    $s: $script"
  done
  echo "  params:"
  echo "    deployment:"
  echo "      tags:"
  echo "        datacenter: bench-1"
  echo "        environment: bench"
  echo "      fields:"
  echo "        release: \"2026.11.1\""
  echo "        instance: 3"
}

# output_yaml INDENT DATABASE: the keys of one output towards the sink.
output_yaml() {
  local in=$1
  echo "${in}version: 1"
  echo "${in}host: 127.0.0.1"
  echo "${in}port: $SINK_PORT"
  echo "${in}database: $2"
  echo "${in}flushing_period: 1"
  echo "${in}batch_size: $BATCH"
  echo "${in}buffer_limit: $BUFFER"
  echo "${in}shutdown_timeout: 10"
}

# start_luagw TAG: a luagw on a generated config (scripts_yaml TAG), warmed
# up for a second; sets GW_PID and GW_PORT.
start_luagw() {
  local tag=$1 st=000 i
  GW_PORT=$(free_port)
  {
    echo "# generated by bench/run.sh"
    echo "listen:"
    echo "  address: 127.0.0.1"
    echo "  port: $GW_PORT"
    echo "  threads: $GW_THREADS"
    if [ "$tag" = fanout ]; then
      # Two outputs (an HA pair) on the same sink, each its own database:
      # every point delivered twice, from one shared copy.
      echo "outputs:"
      for o in a b; do
        echo "  $o:"
        output_yaml "    " "bench_$o"
      done
    else
      echo "monitoring:"
      output_yaml "  " bench
    fi
    [ "$tag" = gzipout ] && echo "  gzip: true"
    scripts_yaml "$tag"
    echo "log:"
    echo "  level: warn"
  } >"$WORK/luagw-$tag.yaml"
  "$LUAGW_BIN" -c "$WORK/luagw-$tag.yaml" >"$WORK/luagw-$tag.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  for ((i = 0; i < 100; i++)); do
    st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$GW_PORT/ping")
    [ "$st" = 204 ] && break
    kill -0 "$GW_PID" 2>/dev/null || die "luagw ($tag) exited: $(tail -5 "$WORK/luagw-$tag.log")"
    sleep 0.1
  done
  [ "$st" = 204 ] || die "luagw ($tag) does not answer /ping on port $GW_PORT"
  say "luagw ($tag scripts) pid $GW_PID on :$GW_PORT; warm-up 1 s"
  run_load "warmup-$tag" "$GW_PID" "$GW_PORT" 1 1 -f lp >/dev/null || exit 1
  # What the sink received last must show the script's work.
  if [ "$tag" = every ] && ! curl -s "http://127.0.0.1:$SINK_PORT/sample" | grep -q 'datacenter=bench-1'; then
    SCRIPT_CHECK="NOT RUN: the points reaching the sink lack the script's tags"
    say "luagw (every): $SCRIPT_CHECK"
  fi
}
SCRIPT_CHECK="checked: the sink's points carry its tags"

# stop_luagw TAG: SIGTERM, and note how it ended in GW_EXIT.
stop_luagw() {
  stop_pid "$GW_PID" 20
  GW_EXIT="$GW_EXIT $1: exit $STOP_RC"
  if grep -qi 'undelivered' "$WORK/luagw-$1.log"; then
    GW_EXIT="$GW_EXIT ($(grep -i -m1 undelivered "$WORK/luagw-$1.log"))"
  fi
  GW_EXIT="$GW_EXIT;"
}

GW_EXIT=""
GW_TOTAL=0
SINK_COPIES=1 # copies of each accepted point the sink gets (outputs)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/rows"
: >"$WORK/load.log"
if [ "$ONLY" = replay ]; then
  SCRIPT_CHECK="the replay checks that it makes the output longer"
else
  "$BIN/sink" -o "$WORK/sink.count" >"$WORK/sink.out" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  SINK_PORT=$(read_port "$WORK/sink.out" "$SINK_PID") || die "sink did not start: $(cat "$WORK/sink.out")"
  say "sink pid $SINK_PID on :$SINK_PORT; ${SECS}s per run, $CONNS connections, $NPOINTS points per body"

  # 1. the shipped scripts dir, as it is
  start_luagw shipped
  say "line protocol, maximum load"
  max=$(run_load "lp-max" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp) || exit 1
  say "line protocol, half of $max points/s"
  run_load "lp-half" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp -r "$(half "$max")" >/dev/null || exit 1
  say "JSON, maximum load"
  max=$(run_load "json-max" "$GW_PID" "$GW_PORT" 1 "$SECS" -f json) || exit 1
  say "JSON, half of $max points/s"
  run_load "json-half" "$GW_PID" "$GW_PORT" 1 "$SECS" -f json -r "$(half "$max")" >/dev/null || exit 1
  say "line protocol gzip'd, maximum load"
  run_load "lp-max/gzip-in" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp -z >/dev/null || exit 1
  stop_luagw shipped

  # 1b. fan-out: the same points to two outputs (docs/outputs.md)
  SINK_COPIES=2
  start_luagw fanout
  say "line protocol, maximum load, two outputs"
  run_load "lp-max/2-outputs" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp >/dev/null || exit 1
  SINK_COPIES=1
  stop_luagw fanout

  # 2. the same, gzip towards InfluxDB (monitoring.gzip)
  start_luagw gzipout
  say "line protocol, maximum load, gzip'd batches to the sink"
  run_load "lp-max/gzip-out" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp >/dev/null || exit 1
  stop_luagw gzipout

  # 3. one script on every point
  start_luagw every
  say "line protocol + script, maximum load"
  max=$(run_load "lp-max+script" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp) || exit 1
  say "line protocol + script, half of $max points/s"
  run_load "lp-half+script" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp -r "$(half "$max")" >/dev/null || exit 1
  say "JSON + script, maximum load"
  run_load "json-max+script" "$GW_PID" "$GW_PORT" 1 "$SECS" -f json >/dev/null || exit 1
  say "line protocol + script, $MEMO_SHAPES distinct tag sets cycling (memo misses and evictions)"
  run_load "lp-max+memo-miss" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp -k "$MEMO_SHAPES" \
    -b $(((MEMO_SHAPES + NPOINTS - 1) / NPOINTS)) >/dev/null || exit 1
  stop_luagw every

  # 4. a general script (not memo'd) on every point
  start_luagw general
  say "line protocol + general script (reads a field value), maximum load"
  run_load "lp-max+general" "$GW_PID" "$GW_PORT" 1 "$SECS" -f lp >/dev/null || exit 1
  stop_luagw general
  GW_TOTAL=$(sink_lines)
  stop_pid "$SINK_PID" 5

  # ---------------------------------------------------------------- ceiling
  "$BIN/bare" -t "$GW_THREADS" >"$WORK/bare.out" 2>&1 &
  BARE_PID=$!
  PIDS+=("$BARE_PID")
  BARE_PORT=$(read_port "$WORK/bare.out" "$BARE_PID") || die "bare did not start: $(cat "$WORK/bare.out")"
  say "bare ceiling: line protocol, JSON (${BARE_SECS}s each)"
  run_load "bare-lp-max" "$BARE_PID" "$BARE_PORT" 0 "$BARE_SECS" -f lp >/dev/null || exit 1
  run_load "bare-json-max" "$BARE_PID" "$BARE_PORT" 0 "$BARE_SECS" -f json >/dev/null || exit 1
  stop_pid "$BARE_PID" 5
fi
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- replay
# Instructions per point of parse → script → encode: callgrind's totals over
# bench/replay's measured() region, divided by the points it replayed.
replay_ipp() { # FORMAT OUTNAME [replay args...]
  local fmt=$1 name=$2 out tot pts rc
  shift 2
  out=$(valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured \
          --smc-check=all-non-file --callgrind-out-file="$RESULTS/callgrind.$name.out" \
          "$BIN/replay" -f "$fmt" -i "$REPLAY_ITER" -n "$NPOINTS" "$@" 2>"$WORK/valgrind.$name.log")
  rc=$?
  if [ $rc = 3 ]; then echo "n/a (scripting engine not linked)"; return; fi
  if [ $rc != 0 ]; then
    say "replay $name failed: $(tail -3 "$WORK/valgrind.$name.log")"
    echo "failed"
    return
  fi
  echo "$out" >"$WORK/replay.$name.txt"
  grep -m1 '^replay: rejected' "$WORK/valgrind.$name.log" >&2
  pts=$(kv points "$out")
  tot=$(awk '/^(totals|summary):/ { print $2; exit }' "$RESULTS/callgrind.$name.out")
  if [ -z "$tot" ] || [ "${pts:-0}" = 0 ]; then echo "failed"; return; fi
  awk -v t="$tot" -v p="$pts" -v r="$(kv rejected "$out")" \
    'BEGIN { printf "%.0f%s", t / p, (r > 0 ? sprintf(" (%d rejected!)", r) : "") }'
}
{
  scripts_yaml every
  echo "log:"
  echo "  level: error"
} >"$WORK/replay.yaml"
# A scripts-on count REPLAY_RUNS times: "min-max (median)"; the profile
# kept is the last run's.
replay_range() { # FORMAT OUTNAME [replay args...]
  local i v vals=()
  for ((i = 0; i < REPLAY_RUNS; i++)); do
    v=$(replay_ipp "$@")
    case $v in *[!0-9]*) echo "$v"; return ;; esac
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 1) print v[1]; else printf "%d-%d (median %d, %d runs)", v[1], v[NR], v[int((NR + 1) / 2)], NR }'
}
say "callgrind replay: line protocol and JSON, scripts off and on ($REPLAY_RUNS runs each with scripts)"
IPP_LP_OFF=$(replay_ipp lp lp-off)
IPP_JSON_OFF=$(replay_ipp json json-off)
if [ "$ENGINE" = integrated ]; then
  IPP_LP_ON=$(replay_range lp lp-on -c "$WORK/replay.yaml")
  IPP_JSON_ON=$(replay_range json json-on -c "$WORK/replay.yaml")
  # The memo'd script's worst case: MEMO_SHAPES distinct tag sets cycling,
  # more than scripts.memo_entries, so every point misses and evicts (one
  # warm-up pass, then one measured pass over all of them).
  IPP_LP_MEMO_MISS=$(replay_ipp lp lp-memo-miss -c "$WORK/replay.yaml" -k "$MEMO_SHAPES" \
    -b $(((MEMO_SHAPES + NPOINTS - 1) / NPOINTS)) -w 1 -i 1)
  # A general script (not memo'd: it reads a field value).
  {
    scripts_yaml general
    echo "log:"
    echo "  level: error"
  } >"$WORK/general.yaml"
  IPP_LP_GENERAL=$(replay_range lp lp-general -c "$WORK/general.yaml")
  # The same enrichment without Lua: the deployment's tags and fields as
  # series-declaration defaults (schema.c), no scripts.
  mkdir -p "$WORK/noscripts"
  {
    echo "scripts:"
    echo "  dir: $WORK/noscripts"
    echo "series:"
    for s in requests errors subscription_error ws_requests redis_message; do
      echo "  $s:"
      echo "    tags: {datacenter: {default: bench-1}, environment: {default: bench}}"
      echo "    fields: {release: {type: string, default: \"2026.11.1\"}, instance: {type: int, default: 3i}}"
    done
    echo "log:"
    echo "  level: error"
  } >"$WORK/defaults.yaml"
  IPP_LP_DEFAULTS=$(replay_ipp lp lp-defaults -c "$WORK/defaults.yaml")
  # No scripts, the shipped series declarations (what config/luagw.yaml includes).
  printf 'include: %s\nservice: luna-sender\nscripts:\n  dir: %s\nlog:\n  level: error\n' \
    "$ROOT/config/series.yaml" "$WORK/noscripts" >"$WORK/declared.yaml"
  IPP_LP_DECLARED=$(replay_ipp lp lp-declared -c "$WORK/declared.yaml")
  # The script adds tags and fields: with it the output must be longer.
  for f in lp json; do
    off=$(kv bytes_out "$(cat "$WORK/replay.$f-off.txt" 2>/dev/null)")
    on=$(kv bytes_out "$(cat "$WORK/replay.$f-on.txt" 2>/dev/null)")
    if [ -n "$on" ] && [ "${on:-0}" -le "${off:-0}" ]; then
      if [ $f = lp ]; then IPP_LP_ON="$IPP_LP_ON (the script did NOT change the output)"; else IPP_JSON_ON="$IPP_JSON_ON (the script did NOT change the output)"; fi
    fi
  done
else
  IPP_LP_ON="n/a (scripting engine not integrated)"
  IPP_JSON_ON=$IPP_LP_ON
fi
for f in lp-off lp-on; do
  [ -s "$RESULTS/callgrind.$f.out" ] || continue
  callgrind_annotate "$RESULTS/callgrind.$f.out" 2>/dev/null |
    awk '/file:function/ { on = 1; next } on && NF == 0 && n > 0 { exit } on && /[0-9]/ { print; n++ }' |
    sed "s|$ROOT/||; s| \[[^]]*\]$||" | head -12 >"$RESULTS/callgrind.$f.top.txt"
done

# ---------------------------------------------------------------- table
row() { awk -v n="$1" '$1 == n { print $2 }' "$WORK/rows"; }
BARE_LP=$(row bare-lp-max)
BARE_JSON=$(row bare-json-max)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
dirty=$(git -C "$ROOT" status --porcelain -- gateway 2>/dev/null | grep -q . && echo ", gateway/ has uncommitted changes")
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_gb=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
body() { kv body_bytes "$(grep -m1 "^$1:" "$WORK/load.log")"; }

{
  echo "luagw benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname): $(nproc) x $cpu_model, ${mem_gb} GB;" \
       "load average $LOADAVG_START at start, $LOADAVG_END at end"
  echo "tree: $commit$dirty. luagw: listen.threads $GW_THREADS, batch_size $BATCH, buffer_limit $BUFFER, flushing_period 1"
  echo "scripts: engine $ENGINE; $SCRIPTS_DIR has $(count_scripts "$SCRIPTS_DIR") series scripts, run as shipped except in" \
       "'+script' runs and the replay's 'on': $EVERY_SCRIPT on every point ($SCRIPT_CHECK)"
  if [ "$ONLY" != replay ]; then
  echo "load: $CONNS keep-alive connections, $NPOINTS points per body (lp $(body lp-max) B, JSON $(body json-max) B," \
       "gzip'd lp $(body lp-max/gzip-in) B); ${SECS}s per luagw run, ${BARE_SECS}s per bare run"
  echo
  printf '%-16s %10s %10s %6s %5s %5s %5s %7s %7s %5s %8s %7s %5s %6s %5s %5s %5s %10s\n' \
    run "acc pts/s" "dlv pts/s" drain lost 503s errs "p50 ms" "p99 ms" "CPU%" workers "ns/pt" "RSS MB" "/bare" load% sink% idle% "est pts/s"
  while read -r name acc deliv drain lost s503 errs p50 p99 cpu nspp rss lcpu scpu idle est workers; do
    ceil=-
    case $name in
      lp-max | lp-max+* | lp-max/gzip-*) ceil=$(awk -v a="$acc" -v b="$BARE_LP" 'BEGIN { if (b > 0) printf "%.2f", a / b }') ;;
      json-max | json-max+script) ceil=$(awk -v a="$acc" -v b="$BARE_JSON" 'BEGIN { if (b > 0) printf "%.2f", a / b }') ;;
      bare-*) ceil=1.00 ;;
    esac
    printf '%-16s %10s %10s %6s %5s %5s %5s %7s %7s %5s %8s %7s %5s %6s %5s %5s %5s %10s\n' \
      "$name" "$acc" "$deliv" "$drain" "$lost" "$s503" "$errs" "$p50" "$p99" "$cpu" "$workers" "$nspp" "$rss" "$ceil" "$lcpu" "$scpu" "$idle" "$est"
  done <"$WORK/rows"
  echo
  fi
  echo "instructions per point (callgrind; replay of $((REPLAY_ITER * 4)) bodies of $NPOINTS points through parse -> script -> encode):"
  echo "  line protocol: scripts off $IPP_LP_OFF, scripts on $IPP_LP_ON"
  echo "  JSON:          scripts off $IPP_JSON_OFF, scripts on $IPP_JSON_ON"
  echo "  line protocol, the script's tags and fields as series defaults instead (no Lua): ${IPP_LP_DEFAULTS:-n/a}"
  echo "  line protocol, no scripts, the shipped series declarations (config/series.yaml): ${IPP_LP_DECLARED:-n/a}"
  echo "  line protocol, the memo'd script, $MEMO_SHAPES tag sets cycling (every point a miss and an eviction): ${IPP_LP_MEMO_MISS:-n/a}"
  echo "  line protocol, a general script on every point (bench/scripts/general.lua, reads a field value): ${IPP_LP_GENERAL:-n/a}"
  [ "$ONLY" = replay ] || echo "sink counted $GW_TOTAL points in total; luagw after SIGTERM:$GW_EXIT"
  echo
  for f in lp-off lp-on; do
    [ -s "$RESULTS/callgrind.$f.top.txt" ] || continue
    echo "top functions, line protocol, scripts ${f#lp-} (callgrind, self instructions):"
    sed 's/^/  /' "$RESULTS/callgrind.$f.top.txt"
  done
  echo
  echo "targets: >= 2,000,000 pts/s delivered, lp, script on every point (JSON within 2x); <= 400 instr/pt without script,"
  echo "  <= 1,500 with the subscription_error-style script; p99 <= 2 ms at half load; RSS <= 64 MB + the buffer."
  echo "columns (docs/performance.md): acc = points acknowledged (204) per second of load; dlv = points the sink"
  echo "  counted per second of load; drain = seconds after the load until the sink had every accepted point; lost ="
  echo "  accepted minus delivered after ${DRAIN_MAX}s; errs = requests answered 400 (some points rejected: a bug, the"
  echo "  bodies are valid), other statuses or failed; CPU% = luagw's CPU during the load (200 = both cores); ns/pt ="
  echo "  luagw CPU time per point, delivery included; workers = CPU% of each libmicrohttpd worker thread, busiest"
  echo "  first (\"99/0\": every connection landed on one worker); RSS = VmHWM during the run; /bare = acc / bare acc;"
  echo "  load%, sink% = CPU of the load generator and of the sink; idle% = the whole machine's idle CPU during the"
  echo "  run: near 0 with luagw's CPU% well below $((NCPU * 100)) means other work took the cores and the rates are low;"
  echo "  est pts/s = $NCPU cores / ns/pt, less what load and sink used: a CPU-bound projection, not a measurement."
} >"$WORK/table"

if [ "$ONLY" = replay ]; then
  cp "$WORK/table" "$RESULTS/replay-latest.txt"
else
  cp "$WORK/table" "$RESULTS/latest.txt"
  cp "$WORK/table" "$RESULTS/$(date -u +%Y%m%d-%H%M%S).txt"
  cp "$WORK/load.log" "$RESULTS/latest-load.log"
fi
cat "$WORK/table"
