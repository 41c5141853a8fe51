#!/usr/bin/env bash
# notifications benchmark: scheduling reminders, delivering mail, rendering templates, webhooks
# (issue 14's targets). See bench.py's docstring.
#
#   bench/notify/run.sh                           # 100,000 customers (~5 minutes)
#
# Results: a table on stdout and results.json in the work directory. It holds /tmp/bench.lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/notify: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver notify "$PYTHON" "$HERE/bench.py" "$@"
