#!/usr/bin/env bash
# RADIUS benchmark of issue #3: lastmile radiusd against FreeRADIUS 3.2 (rlm_sql on the same
# PostgreSQL and subscribers, and its `files` setup), loaded by radclient. `make bench` runs it.
#
#   bench/radius/run.sh                 # full: 100,000 subscribers, 3 runs of ~12 s each (~10 min)
#   BENCH_QUICK=1 bench/radius/run.sh   # quick: 10,000 subscribers, one run of ~3 s each (~1 min)
#   BENCH_SERVERS=freeradius-files,lastmile bench/radius/run.sh   # a subset
#   BENCH_SCENARIO=storm bench/radius/run.sh                 # the auth storm after a BRAS reboot (storm.py):
#                                                            # 100,000 subscribers re-dial (~6 min; quick: 10,000)
#
# Every knob is an environment variable; see Settings.from_env in bench.py (and StormSettings in
# storm.py). Results: bench/results/radius-<date>[-quick].{csv,md}, or for the storm
# bench/results/storm-<date>[-quick].{md,csv} and -timeline.csv. Everything it starts (PostgreSQL, FreeRADIUS,
# lastmile radiusd, radclient) is stopped by PID when it ends, fails or is interrupted. Timed
# runs wait while another benchmark holds /tmp/bench.lock. Work files go to a new temporary
# directory, removed at the end (BENCH_KEEP=1 keeps it; BENCH_WORKDIR names an empty one).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

missing=()
for tool in radclient freeradius; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x "$PYTHON" ] || missing+=("$PYTHON (run make install)")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench/radius: missing: ${missing[*]} (apt-get install freeradius freeradius-postgresql freeradius-utils)" >&2
  exit 1
fi

if [ -n "${BENCH_WORKDIR:-}" ]; then
  WORK=$BENCH_WORKDIR
  created=0
else
  WORK=$(mktemp -d /tmp/lastmile-bench-radius.XXXXXX)
  created=1
fi
export BENCH_WORKDIR="$WORK"
driver=""

# Stop, by PID, whatever the driver recorded in $WORK/pids and left running (only if it was
# killed itself): each line is "PID<TAB>command line", and a PID is signalled only while its
# command line still starts with the recorded program. SIGINT is a fast shutdown for
# PostgreSQL and stops FreeRADIUS and lastmile too; SIGKILL after 10 s.
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
    echo "bench/radius: work files in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "${BENCH_SCENARIO:-throughput}" in
  throughput) script=bench.py ;;
  storm) script=storm.py ;;
  *) echo "bench/radius: BENCH_SCENARIO is throughput (the default) or storm, not '$BENCH_SCENARIO'" >&2; exit 2 ;;
esac

cd "$ROOT"
"$PYTHON" "$HERE/$script" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=""
exit "$rc"
