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

cd "$ROOT"
. "$ROOT/bench/driver.sh"
run_driver provision "$PYTHON" "$HERE/bench.py" "$@"
