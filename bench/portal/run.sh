#!/usr/bin/env bash
# portal benchmark: the customer portal (`lastmile admin`, pinned to one core) over the
# 100,000-customer demo; every GET portal page, as a logged-in customer with some years of
# invoices, payments, sessions, traffic and tickets (the public ones logged out), each against
# issue 17's target (p95 < 100 ms). See bench.py's docstring for what is measured. `make bench`
# runs it.
#
#   bench/portal/run.sh                       # full: 100,000 customers, 200 requests per route
#   BENCH_QUICK=1 bench/portal/run.sh         # quick: 5,000 customers, 50 requests per route
#   BENCH_CUSTOMERS=20000 BENCH_REQUESTS=100 bench/portal/run.sh   # every knob is an environment variable
#
# Results: a table on stdout, bench/results/portal-<date>[-quick].md and .json (and results.json
# in the work directory). Everything it starts (PostgreSQL, the admin) is stopped by PID when it
# ends, fails or is interrupted. It holds /tmp/bench.lock while it runs (waiting for it first).
# Work files go to a new temporary directory, removed at the end (BENCH_KEEP=1 keeps it;
# BENCH_WORKDIR names an empty one).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ] || [ ! -x "$ROOT/.venv/bin/lastmile" ]; then
  echo "bench/portal: no .venv with lastmile here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
run_driver portal "$PYTHON" "$HERE/bench.py" "$@"
