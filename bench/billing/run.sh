#!/usr/bin/env bash
# billing benchmark: the monthly run, the daily prepaid charge, dunning and statements over the
# demo with mixed billing types, against issue 12's targets. See bench.py's docstring.
#
#   bench/billing/run.sh                          # 100,000 customers (~5 minutes)
#   BENCH_CUSTOMERS=1000000 bench/billing/run.sh  # the linearity check (~40 minutes)
#
# Results: a table on stdout and results.json in the work directory. It holds /tmp/bench.lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/billing: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver billing "$PYTHON" "$HERE/bench.py" "$@"
