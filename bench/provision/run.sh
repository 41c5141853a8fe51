#!/usr/bin/env bash
# provisiond benchmark: 20 RouterOS API doubles (tests/fakes/routeros.py) with 500 services each;
# the first full reconcile from empty, no-change passes, and block/unblock propagation while
# reconciles run, with provisiond's CPU and memory. See bench.py's docstring for what is measured.
# `make bench` runs it.
#
#   bench/provision/run.sh                 # full: 20 routers x 500 services, 2 x 1,000 changes (~2 minutes)
#   BENCH_QUICK=1 bench/provision/run.sh   # quick: 5 routers x 100 services, 2 x 200 changes (~1 minute)
#   BENCH_ROUTERS=40 BENCH_RATE=100 bench/provision/run.sh   # every knob is an environment variable
#
# Results: a Markdown report on stdout and in bench/results/provision-<date>[-quick].md (each
# change's times in the .csv beside it). Everything it starts (PostgreSQL, the doubles,
# provisiond) is stopped by PID when it ends, fails or is interrupted. The timed part waits while
# another benchmark holds /tmp/bench.lock. Work files (logs, the database) go to a new temporary
# directory, removed at the end (BENCH_KEEP=1 keeps it; BENCH_WORKDIR names an empty one).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ] || [ ! -x "$ROOT/.venv/bin/lastmile" ]; then
  echo "bench/provision: no .venv with lastmile here; run 'make install' first" >&2
  exit 2
fi

if [ -n "${BENCH_WORKDIR:-}" ]; then
  WORK=$BENCH_WORKDIR
  created=0
else
  WORK=$(mktemp -d /tmp/lastmile-bench-provision.XXXXXX)
  created=1
fi
export BENCH_WORKDIR="$WORK"
driver=""

# Stop, by PID, whatever the driver recorded in $WORK/pids and left running (only if it was
# killed itself): each line is "PID<TAB>command line", and a PID is signalled only while its
# command line still starts with the recorded program. SIGINT is a fast shutdown for
# PostgreSQL and stops the doubles and provisiond too; SIGKILL after 10 s.
reap() {
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

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  reap
  if [ "$created" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "bench/provision: work files in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$ROOT"
"$PYTHON" "$HERE/bench.py" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=""
exit "$rc"
