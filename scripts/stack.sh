#!/usr/bin/env bash
# The production layout on this machine, without Docker: PostgreSQL and Redis (started
# by scripts/services.sh when down), two app instances behind nginx, and the one
# Mastodon ingester.
#
#   scripts/stack.sh start    start what is not running (safe to run again)
#   scripts/stack.sh stop     SIGTERM to everything it started, and wait
#   scripts/stack.sh status   what runs; exits 3 when something is down
#
# nginx serves http://127.0.0.1:8000 and the instances listen on :8001 and :8002
# (STACK_PORT moves all three: nginx on it, the instances on the next two). Pid and
# log files are under target/stack/. The data is the `switchyard` database (STACK_DB)
# with Redis keys under the same name.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$PWD
dir=$root/target/stack
bin=$root/target/release/switchyard
port=${STACK_PORT:-8000}
db=${STACK_DB:-switchyard}
database_url=postgres://postgres@127.0.0.1:5432/$db
redis_url=redis://127.0.0.1:6379
[[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "stack: STACK_DB must be a plain name" >&2; exit 1; }
# How long a process gets to stop after SIGTERM; the app's own deadline is 10 s.
stop_wait=15

say() { printf 'stack: %s\n' "$*"; }
die() {
  printf 'stack: %s\n' "$*" >&2
  exit 1
}

app_port() {
  case $1 in
    nginx) echo "$port" ;;
    app-a) echo $((port + 1)) ;;
    app-b) echo $((port + 2)) ;;
  esac
}

nginx_bin() {
  command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } ||
    die "nginx is not installed: apt-get install nginx"
}

log_file() {
  case $1 in
    nginx) echo "$dir/nginx-error.log" ;;
    *) echo "$dir/$1.log" ;;
  esac
}

pid_file() {
  case $1 in
    nginx) echo "$dir/nginx/nginx.pid" ;;
    *) echo "$dir/$1.pid" ;;
  esac
}

# Whether a process runs. A finished one stays a zombie until its parent (init, for
# these) reaps it, and `kill -0` still succeeds on a zombie.
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# The pid of a running process of ours, or nothing. A pid file whose process is gone,
# or is now another program, is stale and removed.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if alive "$pid" &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -e switchyard -e nginx; then
    echo "$pid"
  else
    rm -f "$file"
  fi
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1
}

wait_healthy() {
  local name=$1 at=$2
  for _ in $(seq 1 60); do
    healthy "$at" && return 0
    if [ -z "$(running_pid "$name")" ]; then
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name exited at start; see $(log_file "$name")"
    fi
    sleep 0.5
  done
  die "$name is not answering on 127.0.0.1:$at/healthz after 30 s; see $(log_file "$name")"
}

# Starts a process in a session of its own (so a Ctrl-C in this terminal does not
# reach it); it writes its own pid, then becomes the program.
spawn() {
  local name=$1
  shift
  # shellcheck disable=SC2016 # the inner shell expands $$, $0 and $@
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$name")" "$@" \
    >>"$(log_file "$name")" 2>&1 </dev/null &
  for _ in $(seq 1 50); do
    [ -s "$(pid_file "$name")" ] && return 0
    sleep 0.1
  done
  die "$name did not start; see $(log_file "$name")"
}

start_app() {
  local name=$1 listen
  listen=$(app_port "$name")
  if [ -n "$(running_pid "$name")" ]; then
    say "$name already running on 127.0.0.1:$listen"
    return
  fi
  if port_taken "$listen"; then
    die "127.0.0.1:$listen is taken by another program (make run?); stop it or set STACK_PORT"
  fi
  say "starting $name on 127.0.0.1:$listen"
  spawn "$name" env NO_COLOR=1 SWITCHYARD_LISTEN="127.0.0.1:$listen" \
    DATABASE_URL="$database_url" REDIS_URL="$redis_url" SWITCHYARD_REDIS_PREFIX="$db" \
    SWITCHYARD_NO_INGEST=true "$bin" serve
  wait_healthy "$name" "$listen"
}

start_ingest() {
  if [ -n "$(running_pid ingest)" ]; then
    say "ingest already running"
    return
  fi
  say "starting the ingester"
  spawn ingest env NO_COLOR=1 DATABASE_URL="$database_url" REDIS_URL="$redis_url" \
    SWITCHYARD_REDIS_PREFIX="$db" "$bin" ingest
  sleep 1
  [ -n "$(running_pid ingest)" ] || {
    tail -n 20 "$(log_file ingest)" >&2 || true
    die "the ingester exited at start; see $(log_file ingest)"
  }
}

start_nginx() {
  local nginx conf=$dir/nginx/nginx.conf
  nginx=$(nginx_bin)
  if [ -n "$(running_pid nginx)" ]; then
    say "nginx already running on 127.0.0.1:$port"
    return
  fi
  if port_taken "$port"; then
    die "127.0.0.1:$port is taken by another program (make run?); stop it or set STACK_PORT"
  fi
  mkdir -p "$dir/nginx"
  NGINX_LISTEN=127.0.0.1:$port \
    NGINX_APP_A=127.0.0.1:$(app_port app-a) \
    NGINX_APP_B=127.0.0.1:$(app_port app-b) \
    NGINX_RUN_DIR=$dir/nginx \
    NGINX_ACCESS_LOG=$dir/nginx-access.log \
    NGINX_ERROR_LOG=$dir/nginx-error.log \
    sh deploy/render-nginx.sh >"$conf"
  local flags=(-p "$dir/nginx" -c "$conf" -e "$dir/nginx-error.log")
  "$nginx" -t -q "${flags[@]}" || die "nginx refuses $conf (rendered from deploy/nginx.conf)"
  say "starting nginx on 127.0.0.1:$port"
  # nginx puts itself in the background and writes its pid file.
  "$nginx" "${flags[@]}" || die "nginx did not start; see $dir/nginx-error.log"
  wait_healthy nginx "$port"
}

start() {
  if [ -n "$(running_pid nginx)" ] && [ -n "$(running_pid app-a)" ] &&
    [ -n "$(running_pid app-b)" ] && [ -n "$(running_pid ingest)" ]; then
    say "already running: http://127.0.0.1:$port/"
    return
  fi
  nginx_bin >/dev/null
  # Before any slow step: a port held by another program stops everything.
  local name listen
  for name in app-a app-b nginx; do
    listen=$(app_port "$name")
    [ -n "$(running_pid "$name")" ] || ! port_taken "$listen" ||
      die "127.0.0.1:$listen is taken by another program (make run?); stop it or set STACK_PORT"
  done
  scripts/services.sh
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    say "creating the $db database"
    createdb -h 127.0.0.1 -U postgres "$db"
  fi
  say "building the release binary"
  cargo build --release --bin switchyard
  mkdir -p "$dir"
  # The first instance runs the migrations before the second one starts.
  start_app app-a
  start_app app-b
  start_ingest
  start_nginx
  say "serving http://127.0.0.1:$port/ (logs in target/stack/)"
}

stop_all() {
  local name pid pids=() names=()
  # nginx first, so no request reaches an instance that is going away.
  for name in nginx app-a app-b ingest; do
    pid=$(running_pid "$name")
    [ -n "$pid" ] || continue
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    names+=("$name")
    if [ "$name" = nginx ]; then
      wait_gone nginx "$pid"
    fi
  done
  [ ${#names[@]} -gt 0 ] || {
    say "nothing running"
    return
  }
  local i
  for i in "${!names[@]}"; do
    [ "${names[$i]}" = nginx ] || wait_gone "${names[$i]}" "${pids[$i]}"
  done
  say "stopped"
}

wait_gone() {
  local name=$1 pid=$2
  for _ in $(seq 1 $((stop_wait * 10))); do
    alive "$pid" || {
      rm -f "$(pid_file "$name")"
      return 0
    }
    sleep 0.1
  done
  say "$name (pid $pid) still running after ${stop_wait} s: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pid_file "$name")"
}

status() {
  local name pid down=0 where health
  for name in nginx app-a app-b ingest; do
    pid=$(running_pid "$name")
    case $name in
      nginx) where=127.0.0.1:$port ;;
      app-*) where=127.0.0.1:$(app_port "$name") ;;
      ingest) where=- ;;
    esac
    if [ -z "$pid" ]; then
      printf '%-8s %-8s %-8s %s\n' "$name" stopped - "$where"
      down=1
      continue
    fi
    health=
    if [ "$where" != - ]; then
      healthy "${where#*:}" && health="healthz ok" || health="healthz failing"
    fi
    printf '%-8s %-8s %-8s %s %s\n' "$name" running "$pid" "$where" "$health"
  done
  pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && health=ready || health="not answering"
  printf '%-8s %s\n' postgres "$health on 127.0.0.1:5432 (database $db)"
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && health=ready || health="not answering"
  printf '%-8s %s\n' redis "$health on 127.0.0.1:6379"
  [ "$down" -eq 0 ] || exit 3
}

case ${1:-} in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
