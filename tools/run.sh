#!/usr/bin/env bash
# tools/run.sh [CONFIG] — what `make run` calls.
#
# Asks luagw what the config sets (`luagw -c CONFIG --print-config KEY...`:
# the file as luagw reads it, include: followed, defaults applied, ${VAR}
# expanded) for monitoring.{host,port,database,version,use_ssl,user,password}.
# If something answers GET /ping with 204 there, it is used. Otherwise, when
# the host is a loopback address, Debian's influxd is started on that
# host:port with its data in var/influxdb/ (git-ignored), and the database is
# created. Then luagw runs in the foreground (its output on this terminal),
# with its pid in var/luagw.pid for as long as it runs.
#
# Signals: SIGHUP is passed on to luagw, which reloads its scripts (as
# `kill -HUP $(cat var/luagw.pid)` does); everything keeps running. Ctrl-C
# (SIGINT) or SIGTERM stops luagw (SIGTERM; a second Ctrl-C sends another,
# which ends luagw's drain early; after listen.drain_seconds +
# monitoring.shutdown_timeout + RUN_STOP_TIMEOUT, SIGKILL), then the influxd
# this script started, and exits 0.
#
# Environment: LUAGW_BIN (default gateway/luagw), INFLUXD_BIN (default
# influxd), LUAGW_PID_FILE (default var/luagw.pid), RUN_STOP_TIMEOUT (seconds
# added before luagw is killed; default 5).
set -u

# A shell without job control starts background jobs with SIGINT ignored, and
# bash cannot trap a signal that was ignored on entry: when that is so, start
# again with SIGINT/SIGQUIT back to their defaults, so Ctrl-C/SIGINT still work.
if [ -z "${_LUAGW_RUN_SIGDFL:-}" ] && command -v luajit >/dev/null; then
  ign=$(awk '/^SigIgn:/ { print $2 }' /proc/$$/status 2>/dev/null)
  if [ -n "$ign" ] && (( (16#$ign & 2) != 0 )); then
    export _LUAGW_RUN_SIGDFL=1
    exec luajit -e '
      local ffi = require("ffi")
      ffi.cdef[[ typedef void (*run_sh_t)(int); run_sh_t signal(int, run_sh_t);
                 int execv(const char *path, const char **argv); ]]
      ffi.C.signal(2, ffi.cast("run_sh_t", 0)); ffi.C.signal(3, ffi.cast("run_sh_t", 0))
      local argv = ffi.new("const char *[?]", #arg + 3)
      argv[0] = "bash"; argv[1] = arg[0]
      for i = 1, #arg do argv[i + 1] = arg[i] end
      ffi.C.execv("/bin/bash", argv)
      os.exit(126)' "$0" "$@"
  fi
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=${1:-config/luagw.yaml}
LUAGW_BIN=${LUAGW_BIN:-$ROOT/gateway/luagw}
INFLUXD_BIN=${INFLUXD_BIN:-influxd}
VAR=$ROOT/var/influxdb
PID_FILE=${LUAGW_PID_FILE:-$ROOT/var/luagw.pid}

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -r "$CONFIG" ] || die "config $CONFIG not found"
command -v luajit >/dev/null || die "luajit not found (make deps)"
command -v curl >/dev/null || die "curl not found (make deps)"
[ -x "$LUAGW_BIN" ] || command -v "$LUAGW_BIN" >/dev/null || die "$LUAGW_BIN not found: run make"

# --- the config, as luagw reads it: one key=value line per key, the value
# escaped C-style (\\, \n, \xHH), which printf %b undoes.
KEYS="monitoring.host monitoring.port monitoring.database monitoring.version monitoring.use_ssl
      monitoring.user monitoring.password monitoring.shutdown_timeout listen.drain_seconds"
# shellcheck disable=SC2086
settings=$("$LUAGW_BIN" -c "$CONFIG" --print-config $KEYS) || die "cannot read $CONFIG (luagw said why, above)"
while IFS= read -r kv; do
  k=${kv%%=*}
  printf -v v '%b' "${kv#*=}"
  case $k in
    monitoring.host) host=$v ;;
    monitoring.port) port=$v ;;
    monitoring.database) database=$v ;;
    monitoring.version) version=$v ;;
    monitoring.use_ssl) use_ssl=$v ;;
    monitoring.user) user=$v ;;
    monitoring.password) password=$v ;;
    monitoring.shutdown_timeout) shutdown_timeout=$v ;;
    listen.drain_seconds) drain_seconds=$v ;;
  esac
done <<<"$settings"

case $use_ssl in true) scheme=https ;; *) scheme=http ;; esac
case $host in *:*) hostport="[$host]:$port" ;; *) hostport="$host:$port" ;; esac
base="$scheme://$hostport"
case $host in 127.*|localhost|::1|"[::1]") loopback=1 ;; *) loopback=0 ;; esac

ping_ok() {
  [ "$(curl -s -k -o /dev/null -w '%{http_code}' --max-time 2 "$base/ping" 2>/dev/null)" = 204 ]
}

# Poll a PID until it is gone or a zombie (bounded, seconds as $2).
gone() { # pid
  [ -r "/proc/$1/stat" ] || return 0
  case "$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null)" in " Z"*|" X"*|"") return 0 ;; esac
  return 1
}
wait_gone() { # pid seconds
  local i=0 n=$(( $2 * 10 ))
  while ! gone "$1"; do
    [ $i -ge "$n" ] && return 1
    sleep 0.1; i=$((i + 1))
  done
  return 0
}

INFLUXD_PID= INFLUXD_JOB= LUAGW_PID= LUAGW_JOB=

stop_pid() { # pid job seconds name
  local pid=$1 job=$2 secs=$3 name=$4
  [ -n "$pid" ] || return 0
  if ! gone "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" "$secs"; then
      say "$name did not stop in ${secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null
      wait_gone "$pid" 5
    fi
  fi
  [ -n "$job" ] && wait "$job" 2>/dev/null
  return 0
}

stop_influxd() {
  if [ -z "$INFLUXD_PID" ] && [ -n "$INFLUXD_JOB" ]; then
    # a signal during its start: the pid file may not be there yet
    INFLUXD_PID=$(cat "$VAR/influxd.pid" 2>/dev/null)
    INFLUXD_PID=${INFLUXD_PID:-$INFLUXD_JOB}
  fi
  if [ -n "$INFLUXD_PID" ]; then
    say "stopping influxd (pid $INFLUXD_PID)"
    stop_pid "$INFLUXD_PID" "$INFLUXD_JOB" 20 influxd
    rm -f "$VAR/influxd.pid"
    INFLUXD_PID= INFLUXD_JOB=
  fi
}

# The pid file is ours while it names a live luagw of this run.
remove_pid_file() {
  [ -n "$LUAGW_PID" ] && [ "$(cat "$PID_FILE" 2>/dev/null)" = "$LUAGW_PID" ] && rm -f "$PID_FILE"
  return 0
}

on_signal() {
  # A second Ctrl-C or SIGTERM: another SIGTERM to luagw ends its drain early.
  trap '[ -n "$LUAGW_PID" ] && kill -TERM "$LUAGW_PID" 2>/dev/null' INT TERM
  trap '' HUP
  local secs=${shutdown_timeout%%.*} drain=${drain_seconds%%.*}
  secs=$(( ${secs:-10} + ${drain:-0} + 1 + ${RUN_STOP_TIMEOUT:-5} ))
  if [ -n "$LUAGW_PID" ]; then
    say "stopping luagw (pid $LUAGW_PID)"
    stop_pid "$LUAGW_PID" "$LUAGW_JOB" "$secs" luagw
    remove_pid_file
  fi
  stop_influxd
  exit 0
}
trap on_signal INT TERM

# SIGHUP reloads luagw's scripts; this script and influxd go on.
HUPPED=
on_hup() {
  HUPPED=1
  # Before the pid file names it luagw has not started: it reads the
  # scripts as they are now anyway.
  [ -z "$LUAGW_PID" ] && [ -n "$LUAGW_JOB" ] && LUAGW_PID=$(cat "$PID_FILE" 2>/dev/null)
  if [ -n "$LUAGW_PID" ] && ! gone "$LUAGW_PID"; then
    say "SIGHUP: passing it on to luagw (pid $LUAGW_PID), which reloads its scripts"
    kill -HUP "$LUAGW_PID" 2>/dev/null
  else
    say "SIGHUP before luagw runs: nothing to reload (it reads the scripts when it starts)"
  fi
}
trap on_hup HUP

# A free loopback port for influxd's RPC service (backup/restore only).
free_port() {
  luajit -e 'local s=require("socket").bind("127.0.0.1",0); local _,p=s:getsockname(); s:close(); print(p)' 2>/dev/null \
    || echo 18088
}

start_influxd() {
  command -v "$INFLUXD_BIN" >/dev/null || die "influxd not found (make deps installs Debian's influxdb)"
  local bind=$host
  [ "$bind" = localhost ] && bind=127.0.0.1
  case $bind in *:*) bind="[${bind#[}"; bind="${bind%]}]" ;; esac
  mkdir -p "$VAR/meta" "$VAR/data" "$VAR/wal"
  cat >"$VAR/influxdb.conf" <<EOF
# generated by tools/run.sh; data stays in this directory
reporting-enabled = false
bind-address = "127.0.0.1:$(free_port)"

[meta]
  dir = "$VAR/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "$VAR/data"
  wal-dir = "$VAR/wal"
  index-version = "inmem"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "$bind:$port"
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false
  bind-socket = "$VAR/influxd.sock"

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  log-enabled = false
EOF
  say "starting influxd on $hostport (data in ${VAR#"$ROOT"/}, log ${VAR#"$ROOT"/}/influxd.log)"
  rm -f "$VAR/influxd.pid"
  # Own session: a Ctrl-C on the terminal reaches this script only, which
  # stops luagw first and influxd after it.
  setsid -w sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$VAR/influxd.pid" \
    "$INFLUXD_BIN" -config "$VAR/influxdb.conf" </dev/null >>"$VAR/influxd.log" 2>&1 &
  INFLUXD_JOB=$!
  local i=0
  while [ ! -s "$VAR/influxd.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  INFLUXD_PID=$(cat "$VAR/influxd.pid" 2>/dev/null)
  [ -n "$INFLUXD_PID" ] || { stop_influxd; die "influxd did not start"; }
  i=0
  until ping_ok; do
    if gone "$INFLUXD_PID"; then
      INFLUXD_PID= INFLUXD_JOB=
      say "influxd exited; last lines of its log:"
      tail -n 20 "$VAR/influxd.log" >&2
      exit 1
    fi
    if [ $i -ge 300 ]; then
      say "influxd did not answer $base/ping within 30s; last lines of its log:"
      tail -n 20 "$VAR/influxd.log" >&2
      stop_influxd
      exit 1
    fi
    sleep 0.1; i=$((i + 1))
  done
}

# One luagw per pid file: a second `make run` would only fight for the port.
old_pid=$(cat "$PID_FILE" 2>/dev/null)
if [ -n "$old_pid" ] && ! gone "$old_pid" && [ "$(cat "/proc/$old_pid/comm" 2>/dev/null)" = luagw ]; then
  die "luagw already runs (pid $old_pid, in ${PID_FILE#"$ROOT"/}); stop it first"
fi

if ping_ok; then
  say "using the InfluxDB that answers at $base"
elif [ "$loopback" = 1 ] && [ "$scheme" = http ]; then
  if [ "$version" = 2 ]; then
    say "monitoring.version is 2 but nothing answers at $base; Debian's influxd (1.x) has no 2.x API,"
    say "so none is started: luagw will buffer and retry until an InfluxDB 2.x answers there"
  else
    start_influxd
  fi
else
  say "nothing answers at $base/ping; starting luagw anyway (it buffers and retries)"
fi

if [ "$version" = 1 ] && [ -n "$database" ] && ping_ok; then
  q="CREATE DATABASE \"$(printf '%s' "$database" | sed 's/\\/\\\\/g; s/"/\\"/g')\""
  auth=()
  [ -n "$user" ] && auth=(-u "$user:$password")
  out=$(curl -s -k --max-time 10 "${auth[@]}" -XPOST "$base/query" --data-urlencode "q=$q" 2>&1)
  case $out in
    *'"error"'*|"") say "could not create database \"$database\": ${out:-no answer}" ;;
    *) say "database \"$database\" ready" ;;
  esac
fi

say "starting $LUAGW_BIN -c $CONFIG"
rm -f "$PID_FILE"
mkdir -p "$(dirname "$PID_FILE")"
# Own session too (signals are forwarded by on_signal and on_hup).
setsid -w sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PID_FILE" \
  "$LUAGW_BIN" -c "$CONFIG" </dev/null &
LUAGW_JOB=$!
i=0
while [ ! -s "$PID_FILE" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
LUAGW_PID=$(cat "$PID_FILE" 2>/dev/null)
LUAGW_PID=${LUAGW_PID:-$LUAGW_JOB}
say "luagw runs as pid $LUAGW_PID (${PID_FILE#"$ROOT"/}); SIGHUP to it or to this script reloads its scripts"

# A trapped signal ends `wait` early: after a SIGHUP, wait again.
while :; do
  HUPPED=
  wait "$LUAGW_JOB"
  rc=$?
  [ -z "$HUPPED" ] && break
done
remove_pid_file
LUAGW_PID=
say "luagw exited with status $rc"
stop_influxd
exit "$rc"
