#!/usr/bin/env bash
# admin benchmark: the admin (`lastmile admin`, pinned to one core) over the 100,000-customer demo;
# every GET page and API list, the search box, the customer page, API throughput on one core and
# the login's cost, each against issue 11's targets. See bench.py's docstring for what is
# measured. `make bench` runs it.
#
#   bench/admin/run.sh                       # full: 100,000 customers, 200 requests per route (~6 minutes)
#   BENCH_QUICK=1 bench/admin/run.sh         # quick: 5,000 customers, 50 requests per route (~2 minutes)
#   BENCH_CUSTOMERS=20000 BENCH_REQUESTS=100 bench/admin/run.sh   # every knob is an environment variable
#
# Results: a table on stdout, bench/results/admin-<date>[-quick].md and .json (and results.json in
# the work directory). Everything it starts (PostgreSQL, the admin, py-spy) is stopped by PID
# when it ends, fails or is interrupted. It holds /tmp/bench.lock while it runs (waiting for it
# first). Work files go to a new temporary directory, removed at the end (BENCH_KEEP=1 keeps it;
# BENCH_WORKDIR names an empty one).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ] || [ ! -x "$ROOT/.venv/bin/lastmile" ]; then
  echo "bench/admin: no .venv with lastmile here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
run_driver admin "$PYTHON" "$HERE/bench.py" "$@"
