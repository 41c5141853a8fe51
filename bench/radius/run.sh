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

case "${BENCH_SCENARIO:-throughput}" in
  throughput) script=bench.py ;;
  storm) script=storm.py ;;
  *) echo "bench/radius: BENCH_SCENARIO is throughput (the default) or storm, not '$BENCH_SCENARIO'" >&2; exit 2 ;;
esac

cd "$ROOT"
. "$ROOT/bench/driver.sh"
run_driver radius "$PYTHON" "$HERE/$script" "$@"
