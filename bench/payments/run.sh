#!/usr/bin/env bash
# payments benchmarks (issue 13), one line per part; each script's docstring says what it
# measures. With no argument every benchmark runs; with names, those:
#
#   bench/payments/run.sh               # all of them
#   bench/payments/run.sh statement     # a 10,000-line bank statement against 100,000 customers
#
# Results: a table on stdout and results.json in each run's work directory. Each holds /tmp/bench.lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/payments: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"

declare -A BENCHES=(
  [statement]="$HERE/statement.py"   # bank statements: import and matching
  [allocation]="$HERE/allocation.py" # a payment's allocation, status change and unblock
  [direct_debit]="$HERE/direct_debit.py" # a SEPA batch of 10,000 collections, settled, returns
  [webhooks]="$HERE/webhooks.py"     # 100 concurrent Stripe webhooks with duplicates, each recorded once
)

wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=("${!BENCHES[@]}")
for name in "${wanted[@]}"; do
  script=${BENCHES[$name]:-}
  if [ -z "$script" ]; then
    echo "bench/payments: no benchmark '$name' (there are: ${!BENCHES[*]})" >&2
    exit 2
  fi
  (PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver "payments-$name" "$PYTHON" "$script")
done
