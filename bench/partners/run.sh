#!/usr/bin/env bash
# partners benchmark: a year of percentage-mode commissions for 50 partners (issue 18's
# "commission statements for a year under 2 s"). See bench.py's docstring.
#
#   bench/partners/run.sh                       # 100,000 customers, 1,200,000 commissions (~3 minutes)
#   BENCH_CUSTOMERS=20000 bench/partners/run.sh  # smaller
#
# Results: a table on stdout and results.json in the work directory. It holds /tmp/bench.lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/partners: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver partners "$PYTHON" "$HERE/bench.py" "$@"
