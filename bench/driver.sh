# Sourced by bench/<component>/run.sh: run a Python benchmark driver in a work directory of its
# own, and stop whatever it started when it ends, fails or is interrupted.
#
#   . "$ROOT/bench/driver.sh"
#   run_driver NAME "$PYTHON" SCRIPT ARGS...
#
# Work files go to a new /tmp/lastmile-bench-NAME.XXXXXX, removed at the end (BENCH_KEEP=1 keeps
# it; BENCH_WORKDIR names an empty one), exported to the driver as BENCH_WORKDIR. The driver
# records what it starts in $BENCH_WORKDIR/pids ("PID<TAB>command line"); if the driver itself
# is killed, those PIDs are stopped here, each only while its command line still starts with the
# recorded program: SIGINT (a fast shutdown for PostgreSQL, a stop for the daemons), SIGKILL
# after 10 s.

_bench_reap() {
  local pid cmd now left=()
  [ -f "$WORK/pids" ] || return 0
  while IFS=$'\t' read -r pid cmd; do
    [ -r "/proc/$pid/cmdline" ] || continue
    now=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    case "$now" in
      "${cmd%% *}"*) kill -INT "$pid" 2>/dev/null && left+=("$pid") ;;
    esac
  done <"$WORK/pids"
  for _ in $(seq 1 20); do
    [ "${#left[@]}" -gt 0 ] || return 0
    local still=()
    for pid in "${left[@]}"; do kill -0 "$pid" 2>/dev/null && still+=("$pid"); done
    left=("${still[@]}")
    sleep 0.5
  done
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

_bench_cleanup() {
  trap - EXIT INT TERM
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  _bench_reap
  if [ "$created" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "bench/$BENCH_NAME: work files in $WORK" >&2
  fi
}

run_driver() {
  BENCH_NAME=$1
  local python=$2
  shift 2
  if [ -n "${BENCH_WORKDIR:-}" ]; then
    WORK=$BENCH_WORKDIR
    created=0
  else
    WORK=$(mktemp -d "/tmp/lastmile-bench-$BENCH_NAME.XXXXXX")
    created=1
  fi
  export BENCH_WORKDIR="$WORK"
  driver=""
  trap _bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$python" "$@" &
  driver=$!
  local rc=0
  wait "$driver" || rc=$?
  driver=""
  return "$rc"
}
